# shellcheck shell=bash
# tests/lib/debootstrap.sh: a Debian chroot made by debootstrap, for the
# tests that need another Debian root than the host's: `make
# test-debian13` (tests/distro/debian13.sh, a Debian 13 chroot that builds
# and tests userpipe) and `make image-test` (tests/deploy/test_image.sh,
# Debian 12 as the base image of deploy/docker/Dockerfile).  Source it,
# set DEBOOT_SAY to the script's name, and call:
#
#   deboot_link DIR LINK          mkdir DIR (outside the work tree) and
#                                 make LINK (under build/) point at it
#   deboot_make SUITE ROOT MIRROR debootstrap --variant=minbase SUITE into
#                                 ROOT, once: ROOT.complete marks a finished
#                                 one, which later calls reuse
#   deboot_proc ROOT              mount /proc in ROOT
#   deboot_unmount                unmount what deboot_proc mounted; call it
#                                 from the script's EXIT trap
#   deboot_in ROOT CMD...         CMD in ROOT, with a clean environment
#   worktree_copy SRC DEST        the files of the work tree SRC as git
#                                 sees them (tracked and untracked, not
#                                 ignored; never build/) copied afresh to
#                                 DEST: what a clean clone holds, with the
#                                 uncommitted changes
#
# Why outside the work tree: the root Makefile includes every `find build
# -name '*.d'`, which would name a chroot's /etc/*.d folders and stop
# every make ("Is a directory"); find does not follow the link in build/,
# and `make clean` removes the link only.  /proc is the only mount (the
# chroot's /dev nodes come from debootstrap, the network is the host's),
# and the callers' EXIT traps unmount it, so `make clean` or an `rm -rf`
# of the folder never walks into a host file system.

DEBOOT_SAY=${DEBOOT_SAY:-debootstrap}
DEBOOT_MOUNTED=()

deboot_say() { printf '%s: %s\n' "$DEBOOT_SAY" "$*"; }
deboot_die() {
    deboot_say "FAIL: $*" >&2
    exit 1
}

deboot_unmount() {
    local m
    for m in ${DEBOOT_MOUNTED[@]+"${DEBOOT_MOUNTED[@]}"}; do
        umount "$m" || umount -l "$m" || deboot_say "could not unmount $m" >&2
    done
    DEBOOT_MOUNTED=()
}

# deboot_link DIR LINK
deboot_link() {
    local dir=$1 link=$2
    mkdir -p "$dir" "$(dirname "$link")"
    [ -L "$link" ] || [ ! -e "$link" ] ||
        deboot_die "$link exists and is no link: a chroot's /etc/*.d folders there stop make; remove it"
    ln -sfn "$dir" "$link"
}

# deboot_make SUITE ROOT MIRROR: the log is ROOT.log; installs debootstrap
# from Debian where it is missing (the Makefile's targets install it first).
deboot_make() {
    local suite=$1 root=$2 mirror=$3 t0=$SECONDS
    [ -e "$root.complete" ] && return 0
    if ! command -v debootstrap >/dev/null; then
        deboot_say "installing debootstrap"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
    fi
    rm -rf "$root"
    deboot_say "debootstrap --variant=minbase $suite $root $mirror (log: $root.log)"
    debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$root.log" 2>&1 ||
        {
            tail -n 20 "$root.log" >&2
            deboot_die "debootstrap failed (log above)"
        }
    touch "$root.complete"
    deboot_say "debootstrap took $((SECONDS - t0)) s"
}

# deboot_proc ROOT
deboot_proc() {
    mount -t proc proc "$1/proc"
    DEBOOT_MOUNTED+=("$1/proc")
}

# deboot_in ROOT CMD...
deboot_in() {
    local root=$1
    shift
    chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# worktree_copy SRC DEST
worktree_copy() {
    local src=$1 dest=$2
    rm -rf "$dest"
    mkdir -p "$dest"
    (cd "$src" && git ls-files -z --cached --others --exclude-standard | grep -zv '^build/' |
        xargs -0 tar -cf - --no-recursion) | tar -xf - -C "$dest"
}
