#!/usr/bin/env bash
# tests/deploy/test_image.sh: `make image-test` (issue 19, item 5): the
# container image of deploy/docker/Dockerfile is built and run, not only
# read.  No image registry is reachable from the machines this runs on,
# but Debian's archive is, so:
#
#  base   the image the Dockerfile names, docker.io/library/debian:12-slim,
#         is made here: debootstrap --variant=minbase bookworm, trimmed as
#         the official slim variant is (its dpkg path excludes and apt
#         settings, no documentation, man pages or locales; bookworm-updates
#         and bookworm-security in its sources, upgraded from them), imported
#         with `buildah from scratch` and committed under that name.  Made
#         once: later runs reuse it from IMAGE_DIR's image storage.
#  build  `buildah bud --isolation chroot` of the Dockerfile as it is, over
#         the work tree as git sees it (tests/lib/debootstrap.sh
#         worktree_copy: a clean clone with the uncommitted changes; the
#         host's build/ never reaches the context).  Every stage is built
#         afresh each run (no --layers): its apt-get, the librdkafka build
#         from Debian 13's source package and `make` are the ones a user's
#         `docker build` runs.
#  image  the image's configuration: the numeric non-root USER 10001:10001
#         and the exec-form ENTRYPOINT; inside, `id` says 10001/10001, no
#         librdkafka shared library exists anywhere and the binary names
#         none in its dynamic section; `userpipe --version` in the image
#         equals the one of the binary `make` builds (userpipe and librdkafka
#         versions) and the image's binary carries the same librdkafka
#         build (its BUILT_WITH feature list, less LDS (below), from the
#         same Debian revision).
#  run    the image's ENTRYPOINT, read from the image, run with `buildah
#         run --isolation chroot` (host network: the dev stack listens on
#         loopback) and the configuration mounted read-only at its path, the
#         application id in the environment, over the sample events on
#         kafka-dev and moesif-dev: every valid event reaches moesif-dev as
#         transformed, every invalid one is in the dead-letter topic
#         (tests/e2e/check_pipeline.py), the committed offsets are the end
#         offsets, the User-Agent names the image's version, the id is not
#         in the log, which ends with the closing summary line.
#
# Why buildah's chroot isolation: podman's and buildah's OCI runtime (crun)
# cannot set its rlimits on these machines; the chroot isolation runs the
# same image file system, user and environment without a runtime.
#
# Storage: IMAGE_DIR (/var/tmp/userpipe-image-<work tree folder name>,
# linked from build/image, outside the work tree for the reason
# tests/lib/debootstrap.sh gives) holds buildah's image storage (storage/;
# its run state is in /run/<the same name>), the build context and
# the logs (bud.log, run.log).  `make image-clean` removes it all.
#
# Env: IMAGE_DIR, IMAGE_MIRROR (http://deb.debian.org/debian), USERPIPE
# (build/userpipe), BUILD (build/release: the dev stack's binaries).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
. "$ROOT/tests/e2e/lib.sh"
DEBOOT_SAY=image
. "$ROOT/tests/lib/debootstrap.sh"
say() { deboot_say "$@"; }

DIR=${IMAGE_DIR:-/var/tmp/userpipe-image-${ROOT##*/}}
RUNROOT=/run/${DIR##*/}
MIRROR=${IMAGE_MIRROR:-http://deb.debian.org/debian}
BASE=docker.io/library/debian:12-slim
SUITE=bookworm
BAH=(buildah --root "$DIR/storage" --runroot "$RUNROOT")
bah() { "${BAH[@]}" "$@"; }

# `test_image.sh clean` (make image-clean): the images, the storage and
# every mount below IMAGE_DIR (none is left after a run; an interrupted
# buildah may leave one), so the rm never walks into a mounted file system
if [ "${1:-}" = clean ]; then
    if [ -d "$DIR/storage" ] && command -v buildah >/dev/null; then
        bah rm -a >/dev/null 2>&1 || true
        bah rmi -a -f >/dev/null 2>&1 || true
    fi
    { findmnt -rn -o TARGET | grep -F "$DIR/" || true; } | sort -r | xargs -r -n 1 umount -l
    rm -rf "$DIR" "$RUNROOT" "$ROOT/build/image"
    say "removed $DIR"
    exit 0
fi
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot, buildah)"
command -v buildah >/dev/null || fail "no buildah (make image-test installs it)"
[ -x "$USERPIPE" ] || fail "no binary at $USERPIPE (run make)"
# dev.sh's EXIT trap runs the dev_at_exit commands (and stops the dev
# stack once started)
trap _dev_on_exit EXIT
trap '_dev_on_signal INT 2' INT
trap '_dev_on_signal TERM 15' TERM
dev_at_exit deboot_unmount
t_start=$SECONDS
deboot_link "$DIR" "$ROOT/build/image"

# ---- base: debian:12-slim from Debian's archive -----------------------------
# slim_rootfs R: what debuerreotype's slim variant does to a minbase root
slim_rootfs() {
    local r=$1
    rm -f "$r/etc/apt/sources.list"
    cat >"$r/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# the "slim" variant: files containers do not need stay out
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    echo force-unsafe-io >"$r/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
    cat >"$r/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::GzipIndexes "true";' >"$r/etc/apt/apt.conf.d/docker-gzip-indexes"
    echo 'Acquire::Languages "none";' >"$r/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$r/etc/apt/apt.conf.d/docker-autoremove-suggests"
    cp /etc/resolv.conf "$r/etc/resolv.conf"
    deboot_proc "$r"
    {
        deboot_in "$r" apt-get update -qq &&
            deboot_in "$r" apt-get upgrade -y -qq &&
            deboot_in "$r" apt-get clean
    } >"$DIR/base-apt.log" 2>&1 || {
        tail -n 20 "$DIR/base-apt.log" >&2
        fail "apt-get upgrade in the base image failed (log above)"
    }
    deboot_unmount
    rm -rf "$r"/var/lib/apt/lists/* "$r"/var/cache/apt/* "$r"/var/log/apt/* \
        "$r"/usr/share/groff/* "$r"/usr/share/info/* "$r"/usr/share/linda/* \
        "$r"/usr/share/lintian/overrides/* "$r"/usr/share/man/* \
        "$r/etc/resolv.conf" "$r/etc/hostname"
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete
    find "$r/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias \
        -exec rm -rf {} +
}

if bah inspect --type image "$BASE" >/dev/null 2>&1; then
    say "base image $BASE: cached ($DIR/storage)"
else
    t0=$SECONDS
    rootfs=$DIR/rootfs
    deboot_make "$SUITE" "$rootfs" "$MIRROR"
    slim_rootfs "$rootfs"
    ctr=$(bah from scratch)
    dev_at_exit "${BAH[*]} rm $ctr"
    mnt=$(bah mount "$ctr")
    # /dev, /proc and /sys stay empty: the container's are mounted at run time
    tar -C "$rootfs" --numeric-owner --xattrs -cf - --exclude='./dev/*' \
        --exclude='./proc/*' --exclude='./sys/*' . | tar -C "$mnt" --numeric-owner --xattrs -xpf -
    bah umount "$ctr" >/dev/null
    bah config --os linux --arch amd64 --cmd bash \
        --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    bah commit -q --rm "$ctr" "$BASE" >/dev/null
    rm -rf "$rootfs" "$rootfs.complete"
    say "base image $BASE made in $((SECONDS - t0)) s," \
        "$(bah images --format '{{.Size}}' "$BASE")"
fi

# ---- build: the Dockerfile as it is ------------------------------------------
version=$("$USERPIPE" --version)
tag=${version#userpipe }
IMAGE=localhost/userpipe:${tag%% *}
worktree_copy "$ROOT" "$DIR/context"
bah rmi -f "$IMAGE" >/dev/null 2>&1 || true
say "buildah bud --isolation chroot -f deploy/docker/Dockerfile -t $IMAGE (log: $DIR/bud.log)"
t0=$SECONDS
bah bud --isolation chroot --network host -f "$DIR/context/deploy/docker/Dockerfile" \
    -t "$IMAGE" "$DIR/context" >"$DIR/bud.log" 2>&1 || {
    tail -n 40 "$DIR/bud.log" >&2
    fail "buildah bud failed after $((SECONDS - t0)) s (log above)"
}
rm -rf "$DIR/context"
say "image $IMAGE built in $((SECONDS - t0)) s, $(bah images --format '{{.Size}}' "$IMAGE")"

# ---- image: its configuration, its user, its librdkafka ----------------------
ctr=$(bah from -q "$IMAGE")
dev_at_exit "${BAH[*]} rm $ctr"
mnt=$(bah mount "$ctr")
dev_at_exit "${BAH[*]} umount $ctr"
in_image() { bah run --isolation chroot --network host "$ctr" -- "$@"; }

# the image's configuration, one "KEY VALUE" line per item (Entrypoint as
# JSON)
bah inspect --type image "$IMAGE" | python3 -c '
import json, sys
c = json.load(sys.stdin)["OCIv1"]["config"]
print("User", c.get("User", ""))
print("Entrypoint", json.dumps(c.get("Entrypoint") or []))
for a in c.get("Entrypoint") or []:
    print("Arg", a)
' >"$DIR/config.txt"
user=$(sed -n 's/^User //p' "$DIR/config.txt")
[ "$user" = 10001:10001 ] || fail "the image's USER is '$user', want 10001:10001"
entry=$(sed -n 's/^Entrypoint //p' "$DIR/config.txt")
[ "$entry" = '["userpipe", "run", "-c", "/etc/userpipe/userpipe.properties"]' ] ||
    fail "the image's ENTRYPOINT is $entry"
mapfile -t ENTRYPOINT < <(sed -n 's/^Arg //p' "$DIR/config.txt")
ids=$(in_image sh -c 'echo "$(id -u) $(id -g)"')
[ "$ids" = "10001 10001" ] || fail "a command in the image runs as uid/gid $ids, want 10001 10001"
say "USER $user (id in the image: $ids), ENTRYPOINT $entry"

# the same librdkafka: no shared one in the image, none named by the binary
found=$(find "$mnt" -xdev -name 'librdkafka*' | sed "s|^$mnt||")
[ -z "$found" ] || fail "the image holds librdkafka files: $found"
! readelf -d "$mnt/usr/local/bin/userpipe" | grep -i 'NEEDED.*rdkafka' ||
    fail "the image's binary names a librdkafka shared library"
in_version=$(in_image userpipe --version)
[ "$in_version" = "$version" ] ||
    fail "userpipe --version is '$in_version' in the image, '$version' from make"
# librdkafka's BUILT_WITH (its configure's feature list) is in every
# binary that links it; LDS (the linker script of librdkafka.so, which
# configure enables only where python3 is, as on the host but not in the
# build stage) is the one item that may differ: librdkafka.a has no use
# for it
features() {
    grep -aoE 'GCC GXX [A-Z0-9_ ]+' "$1" | sort -u | tr ' ' '\n' | grep -vx LDS | sort | xargs
}
host_features=$(features "$USERPIPE")
image_features=$(features "$mnt/usr/local/bin/userpipe")
want_features=$(sed -n 's/^built_with=//p' "$ROOT/build/librdkafka/BUILT" | tr ' ' '\n' | grep -vx LDS | sort | xargs)
[ -n "$host_features" ] && [ "$host_features" = "$want_features" ] ||
    fail "the binary of make carries librdkafka features '$host_features', build/librdkafka/BUILT says '$want_features'"
[ "$image_features" = "$host_features" ] ||
    fail "librdkafka's features differ: image '$image_features', make '$host_features'"
host_deb=$(sed -n 's/^debian=//p' "$ROOT/build/librdkafka/BUILT")
image_deb=$(sed -n "s/^librdkafka: built .* from Debian's librdkafka \([^ ]*\) .*/\1/p" "$DIR/bud.log")
[ -n "$host_deb" ] && [ "$image_deb" = "$host_deb" ] ||
    fail "librdkafka's Debian source: '$image_deb' in the image build, '$host_deb' for make"
say "$in_version in the image and from make; librdkafka $host_deb linked statically in both" \
    "(features: $host_features); no librdkafka file in the image"

# ---- run: the ENTRYPOINT on the dev stack ------------------------------------
sample_stack image-test
# the image's user reads it
chmod 0644 "$CFG"
t0=$SECONDS
# the application id of the dev stack (a test value) is given with --env:
# buildah run takes no value from its own environment
rc=0
timeout "${RUN_TIMEOUT:-180}" "${BAH[@]}" run --isolation chroot --network host \
    --env "MOESIF_APPLICATION_ID=$APP_ID" \
    --volume "$CFG:/etc/userpipe/userpipe.properties:ro" \
    "$ctr" -- "${ENTRYPOINT[@]}" --from-beginning --exit-at-end 2>"$DIR/run.log" || rc=$?
[ $rc -eq 0 ] || {
    tail -n 20 "$DIR/run.log" >&2
    fail "the image's userpipe run exited $rc"
}
# check_sample_run: USERPIPE's version, asserted above to be the image's
check_sample_run image-test "$DIR/run.log"
grep -q 'msg="stopped"' "$DIR/run.log" || fail "no closing summary line in the image's log"
upserts=$(moesif_stat upserts)
say "the image's ENTRYPOINT ran $TOTAL events in $((SECONDS - t0)) s: $upserts user updates" \
    "in moesif-dev, $(topic_count users.dlq) dead-lettered, committed $COMMITTED"
echo "ok: image $IMAGE built and run in $((SECONDS - t_start)) s"
