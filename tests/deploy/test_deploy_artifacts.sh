#!/usr/bin/env bash
# tests/deploy/test_deploy_artifacts.sh: checks the deployment artefacts of
# deploy/ (issue 6 item 4) against the real binary.
#
#  systemd  `systemd-analyze verify` prints nothing for the unit, unmodified,
#           with the binary installed at its ExecStart path inside a
#           temporary --root; `systemd-analyze security` rates it OK; the
#           hardening, restart and stop directives are there, and their
#           numbers agree with the binary (exit status 2 for bad
#           configuration, TimeoutStopSec against shutdown.drain_timeout_ms).
#  sandbox  one run of userpipe on the dev stack (consume, send, dead-letter,
#           /metrics, /healthz, /readyz scraped, SIGTERM) under strace: every
#           system call is allowed by the unit's SystemCallFilter=, every
#           socket family by RestrictAddressFamilies=, no file is opened for
#           writing (read-only file system), no memory is mapped writable and
#           executable (MemoryDenyWriteExecute=).  And the slowest stop (Moesif
#           refusing connections) fits the stop budget.
#  samples  the sample properties files (systemd, Kubernetes ConfigMap) are
#           accepted by `userpipe run` itself on the dev stack; they hold
#           secrets by reference only (issue 22): each ${file:} of the
#           systemd sample names a LoadCredential= of the unit (the sample
#           runs with those credentials in a folder of the test's), each
#           ${env:}/${file:} of the ConfigMap an env entry or a read-only,
#           readable mount of the example Secret's key; LimitCORE=0.
#  docker   the Dockerfile, statically (`make image-test` builds and runs
#           it: tests/deploy/test_image.sh): two debian:12-slim stages, the
#           build stage installs the Makefile's -dev packages, the runtime
#           stage's packages provide every library the binary links
#           (apt-cache closure), a numeric non-root USER, the ENTRYPOINT,
#           STOPSIGNAL, no secret, and the Dockerfile names make image-test.
#  k8s      the manifests with python3-yaml: replicas, probes, security
#           context, resources, the Secret reference, the ConfigMap mount at
#           the image's config path, the PodDisruptionBudget.
#
# Prints "ok: ..." and "FAIL: ..." lines (and "NOTE: ..." for what it could
# not check), exits 0 when nothing failed.  Needs BUILD (default
# build/release) and USERPIPE (default build/userpipe).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
USERPIPE=${USERPIPE:-$ROOT/build/userpipe}
export BUILD=${BUILD:-build/release}
UNIT=$ROOT/deploy/systemd/userpipe.service
PROPS=$ROOT/deploy/systemd/userpipe.properties
ENVEX=$ROOT/deploy/systemd/userpipe.env.example
DOCKERFILE=$ROOT/deploy/docker/Dockerfile
K8S=$ROOT/deploy/k8s

fails=0
fail() {
    echo "FAIL: $*"
    fails=$((fails + 1))
}
ok() { echo "ok: $*"; }
note() { echo "NOTE: $*"; }

T=$(mktemp -d "${TMPDIR:-/tmp}/userpipe-deploy.XXXXXX")
. "$ROOT/tests/lib/dev.sh"
dev_at_exit "rm -rf '$T'"
# dev.sh's traps run dev_at_exit commands and stop the stack; without a
# stack they still clean up
trap _dev_on_exit EXIT

for f in "$UNIT" "$PROPS" "$ENVEX" "$DOCKERFILE" "$K8S/deployment.yaml" \
    "$K8S/configmap.yaml" "$K8S/secret.example.yaml" "$K8S/pdb.yaml" \
    "$ROOT/deploy/SCALING.md"; do
    [ -f "$f" ] || fail "missing ${f#"$ROOT"/}"
done
[ -x "$USERPIPE" ] || {
    fail "no binary at $USERPIPE (run make)"
    exit 1
}

# ---- what the binary says ---------------------------------------------------
REFERENCE=$("$USERPIPE" config-reference)
# key_default KEY: the default column of `userpipe config-reference`
key_default() {
    awk -F'|' -v k="\`$1\`" '{ gsub(/ /, "", $2) } $2 == k { gsub(/ /, "", $4); print $4 }' <<<"$REFERENCE"
}
key_known() { [ -n "$(key_default "$1")" ]; }
DRAIN_MS=$(key_default shutdown.drain_timeout_ms)
[[ $DRAIN_MS =~ ^[0-9]+$ ]] || {
    fail "cannot read the default of shutdown.drain_timeout_ms from config-reference"
    DRAIN_MS=30000
}
METRICS_KNOWN=0
key_known metrics.listen && METRICS_KNOWN=1
[ $METRICS_KNOWN = 1 ] ||
    note "this binary has no metrics.listen key (issue 6 item 1 not built): the probes' endpoint is not checked"

# ---- systemd: the directives ----------------------------------------------------
# unit_values KEY: every value KEY has in the [Service] section, one a line
unit_values() {
    awk -v k="$1" '
        /^\[/ { sec = $0; next }
        sec == "[Service]" && /^[A-Za-z]+=/ {
            i = index($0, "="); if (substr($0, 1, i - 1) == k) print substr($0, i + 1)
        }' "$UNIT"
}
unit_value() { unit_values "$1" | tail -n 1; }
# seconds SPAN: a systemd time span in whole seconds
seconds() {
    systemd-analyze timespan "$1" 2>/dev/null |
        awk '/μs:/ { printf "%d\n", $2 / 1000000 }'
}
expect_unit() { # KEY VALUE-REGEX WHY
    local v
    v=$(unit_value "$1")
    if [[ $v =~ ^($2)$ ]]; then
        ok "unit: $1=$v"
    else
        fail "unit: $1 is '${v:-<unset>}', want $2${3:+ ($3)}"
    fi
}

if ! command -v systemd-analyze >/dev/null; then
    fail "systemd-analyze is missing: install the Debian package systemd (it is not in the Makefile's DEB_PKGS)"
else
    if [ "$(unit_value DynamicUser)" = yes ]; then
        ok "unit: DynamicUser=yes (its own user)"
    else
        u=$(unit_value User)
        if [ -n "$u" ] && [ "$u" != root ] && [ "$u" != 0 ]; then
            ok "unit: User=$u"
        else
            fail "unit: neither DynamicUser=yes nor a User= other than root"
        fi
    fi
    expect_unit ProtectSystem strict "read-only file system"
    expect_unit ReadOnlyPaths '.+' "read-only paths"
    expect_unit NoNewPrivileges yes "no new privileges"
    expect_unit PrivateTmp yes ""
    expect_unit ProtectHome 'yes|read-only|tmpfs' ""
    expect_unit ProtectKernelTunables yes ""
    expect_unit ProtectKernelModules yes ""
    expect_unit ProtectKernelLogs yes ""
    expect_unit ProtectControlGroups yes ""
    expect_unit RestrictAddressFamilies 'AF_INET AF_INET6 AF_UNIX' ""
    if unit_values CapabilityBoundingSet | grep -qv '^$' ||
        ! grep -q '^CapabilityBoundingSet=$' "$UNIT"; then
        fail "unit: CapabilityBoundingSet= must be present and empty"
    else
        ok "unit: CapabilityBoundingSet= (empty)"
    fi
    if unit_values SystemCallFilter | grep -qx '@system-service'; then
        ok "unit: SystemCallFilter=@system-service"
    else
        fail "unit: no SystemCallFilter=@system-service"
    fi
    expect_unit LimitCORE '0' "no core file: it would hold the secrets"
    expect_unit Restart on-failure ""
    expect_unit KillSignal 'SIGTERM|TERM|15' "userpipe stops cleanly on SIGTERM"
    if unit_values RestartPreventExitStatus | tr ' ' '\n' | grep -qx 2; then
        ok "unit: RestartPreventExitStatus has 2 (bad configuration is not restarted)"
    else
        fail "unit: RestartPreventExitStatus= lacks 2: a bad configuration would restart in a loop"
    fi
    rs=$(seconds "$(unit_value RestartSec)")
    if [ -n "$rs" ] && [ "$rs" -ge 1 ]; then
        ok "unit: RestartSec=$(unit_value RestartSec) (${rs}s between restarts)"
    else
        fail "unit: RestartSec= missing or under 1 s (a tight restart loop)"
    fi
    mm=$(unit_value MemoryMax)
    if [[ $mm =~ ^([0-9]+)M$ ]] && [ "${BASH_REMATCH[1]}" -ge 128 ] && [ "${BASH_REMATCH[1]}" -le 512 ]; then
        ok "unit: MemoryMax=$mm (the pipeline's budget is 128 MB)"
    else
        fail "unit: MemoryMax='$mm', want 128M..512M (the pipeline's budget is 128 MB)"
    fi
    # the slowest stop is 2 x drain (stop loop, final drain) plus 15 s of
    # producer flushes; the unit must wait at least that, with a margin
    ts=$(seconds "$(unit_value TimeoutStopSec)")
    need=$((2 * DRAIN_MS / 1000 + 15))
    if [ -n "$ts" ] && [ "$ts" -gt $((DRAIN_MS / 1000)) ] && [ "$ts" -ge "$need" ]; then
        ok "unit: TimeoutStopSec=${ts}s >= 2 x shutdown.drain_timeout_ms (${DRAIN_MS} ms) + 15 s = ${need}s"
    else
        fail "unit: TimeoutStopSec='$(unit_value TimeoutStopSec)' under 2 x shutdown.drain_timeout_ms (${DRAIN_MS} ms) + 15 s = ${need}s"
    fi

    # ---- systemd-analyze verify: the unit as written, the binary at its
    # ExecStart path inside a temporary root holding the system's units
    exe=$(unit_value ExecStart | awk '{ print $1 }')
    unitdir=""
    for d in /usr/lib/systemd/system /lib/systemd/system; do
        [ -f "$d/sysinit.target" ] && unitdir=$d && break
    done
    if [ -z "$unitdir" ]; then
        fail "no systemd unit directory with sysinit.target: cannot verify"
    elif [[ $exe != /* ]]; then
        fail "unit: ExecStart does not start with an absolute path: '$exe'"
    else
        R=$T/root
        mkdir -p "$R/usr/lib/systemd" "$R/etc/systemd/system" "$R$(dirname "$exe")"
        cp -a "$unitdir" "$R/usr/lib/systemd/system"
        install -m 0755 "$USERPIPE" "$R$exe"
        cp "$UNIT" "$R/etc/systemd/system/userpipe.service"
        out=$(systemd-analyze verify --root="$R" userpipe.service 2>&1)
        rc=$?
        echo "--- systemd-analyze verify --root=<tmp> userpipe.service (exit $rc):"
        [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
        echo "---"
        if [ $rc -eq 0 ] && [ -z "$out" ]; then
            ok "systemd-analyze verify: exit 0, no message"
        else
            fail "systemd-analyze verify: exit $rc, with the messages above"
        fi
        # verify reports bad settings only as messages (exit 0): make sure
        # it does here, so that "no message" above means something
        cp "$UNIT" "$R/etc/systemd/system/userpipe-broken.service"
        printf '[Service]\nProtectSystem=bogus\n' >>"$R/etc/systemd/system/userpipe-broken.service"
        if systemd-analyze verify --root="$R" userpipe-broken.service 2>&1 | grep -q 'ProtectSystem\|protect system'; then
            ok "systemd-analyze verify reports a bad setting in a broken copy"
        else
            fail "systemd-analyze verify does not report a bad setting: the check above proves nothing"
        fi
        rm -f "$R/etc/systemd/system/userpipe-broken.service"
        sec=$(systemd-analyze security --offline=true --root="$R" userpipe.service 2>&1 |
            grep 'Overall exposure level')
        echo "    systemd-analyze security: ${sec#*→ }"
        if systemd-analyze security --offline=true --threshold=20 --root="$R" \
            userpipe.service >/dev/null 2>&1; then
            ok "systemd-analyze security: exposure 2.0 or lower"
        else
            fail "systemd-analyze security: exposure above 2.0 ($sec)"
        fi
    fi
fi

# ---- the exit status the unit relies on -------------------------------------------
rc=0
MOESIF_APPLICATION_ID=x "$USERPIPE" run -c "$T/no-such-file.properties" 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && ok "a missing configuration file exits 2" ||
    fail "a missing configuration file exits $rc, not 2 (RestartPreventExitStatus=2): $(cat "$T/err")"
printf 'source.topics=t\nno.such.key=1\n' >"$T/bad.properties"
rc=0
MOESIF_APPLICATION_ID=x "$USERPIPE" run -c "$T/bad.properties" 2>"$T/err" || rc=$?
[ $rc -eq 2 ] && ok "an unknown configuration key exits 2" ||
    fail "an unknown configuration key exits $rc, not 2: $(cat "$T/err")"

# ---- the dev stack: sandbox coverage, stop time, the sample files -----------------
if ! dev_start >"$T/dev-start.log" 2>&1; then
    fail "the dev stack did not start: $(tail -3 "$T/dev-start.log")"
else
    produce_file users "$ROOT/deploy/dev/sample-events.ndjson"
    # write_props FILE GROUP [key=value]...: a properties file for the stack
    write_props() {
        local f=$1 g=$2
        shift 2
        {
            echo "kafka.bootstrap.servers=$BOOTSTRAP"
            echo "kafka.group.id=$g"
            echo "kafka.session.timeout.ms=6000"
            echo "source.topics=users"
            echo "moesif.base_url=$MOESIF_URL"
            echo "batch.linger_ms=100"
            [ $METRICS_KNOWN = 1 ] && echo "metrics.listen=127.0.0.1:0"
            printf '%s\n' "$@"
        } >"$f"
    }
    # wait_log FILE REGEX SECONDS PID: waits for a line, or the process's end
    wait_log() {
        local i
        for ((i = 0; i < $3 * 5; i++)); do
            grep -q "$2" "$1" 2>/dev/null && return 0
            kill -0 "$4" 2>/dev/null || return 1
            sleep 0.2
        done
        return 1
    }
    # stop PID: SIGTERM, then its exit status (killed after 60 s)
    stop() {
        local i rc=0
        kill -TERM "$1" 2>/dev/null
        for ((i = 0; i < 300; i++)); do
            kill -0 "$1" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$1" 2>/dev/null && kill -KILL "$1"
        wait "$1" || rc=$?
        return $rc
    }

    # -- the sample properties, through userpipe's own loader: the stack's
    # addresses replace the example hosts; every other key is the file's
    check_sample() { # FILE LABEL [SED-SCRIPT]
        local f=$1 label=$2 log=$T/sample.log pid rc
        sed -e "${3:-}" "$f" >"$T/sample.properties"
        if [ $METRICS_KNOWN = 0 ] && grep -q '^[[:space:]]*metrics\.listen' "$f"; then
            sed -i '/^[[:space:]]*metrics\.listen/d' "$T/sample.properties"
            note "$label: metrics.listen left out (unknown to this binary)"
        fi
        local xs=(-X "kafka.bootstrap.servers=$BOOTSTRAP" -X "moesif.base_url=$MOESIF_URL"
            -X source.topics=users -X "kafka.group.id=deploy-sample-$RANDOM")
        [ $METRICS_KNOWN = 1 ] && xs+=(-X metrics.listen=127.0.0.1:0)
        MOESIF_APPLICATION_ID=$APP_ID "$USERPIPE" run -c "$T/sample.properties" "${xs[@]}" 2>"$log" &
        pid=$!
        dev_at_exit "kill -9 $pid"
        if wait_log "$log" 'component=run msg="started"' 30 "$pid"; then
            rc=0
            stop "$pid" || rc=$?
            [ $rc -eq 0 ] && ok "$label: accepted by \`userpipe run\`, which then stopped on SIGTERM with exit 0" ||
                fail "$label: accepted, but SIGTERM gave exit $rc"
        else
            rc=0
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
            wait "$pid" || rc=$?
            fail "$label: \`userpipe run\` did not start (exit $rc): $(grep -v 'level=' "$log" | tail -2)"
        fi
    }
    # the unit's credentials (LoadCredential=, commented out or not) in
    # a folder standing for /run/credentials/userpipe.service; each
    # ${file:} reference of the properties (commented out or not) must
    # name one of them (issue 22)
    creddir=/run/credentials/userpipe.service
    creds=$T/creds
    mkdir -p "$creds"
    for name in $(sed -n 's/^#\{0,1\}LoadCredential=\([^:]*\):.*/\1/p' "$UNIT"); do
        printf '%s\n' "$APP_ID" >"$creds/$name"
    done
    nrefs=0
    for ref in $(grep -oE "\\\$\{file:$creddir/[^}]+\}" "$PROPS" | sed "s|.*$creddir/||; s|}\$||"); do
        nrefs=$((nrefs + 1))
        [ -f "$creds/$ref" ] ||
            fail "systemd: userpipe.properties reads the credential '$ref', which the unit has no LoadCredential= for"
    done
    [ $nrefs -gt 0 ] && ok "systemd: the properties' $nrefs \${file:$creddir/...} references name credentials the unit loads" ||
        fail "systemd: userpipe.properties names no credential (\${file:$creddir/...}): a secret would sit in the file"
    check_sample "$PROPS" "deploy/systemd/userpipe.properties" "s|$creddir/|$creds/|g"
    if /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
        /usr/bin/python3 -c 'import sys, yaml; sys.stdout.write(yaml.safe_load(open(sys.argv[1]))["data"]["userpipe.properties"])' \
            "$K8S/configmap.yaml" >"$T/k8s.properties" 2>/dev/null &&
            check_sample "$T/k8s.properties" "deploy/k8s/configmap.yaml's userpipe.properties"
    else
        sed -n '/^  userpipe.properties: |/,$p' "$K8S/configmap.yaml" | tail -n +2 | sed 's/^    //' >"$T/k8s.properties"
        check_sample "$T/k8s.properties" "deploy/k8s/configmap.yaml's userpipe.properties"
    fi

    # -- one run under strace, checked against the unit's sandbox
    if [ "${VARIANT:-release}" != release ]; then
        note "a $VARIANT build: the sandbox and the image are checked against the release binary only (sanitizers need ptrace and their own libraries)"
    elif ! command -v strace >/dev/null; then
        note "strace is missing: the system calls of a run are not checked against SystemCallFilter="
    elif ! strace -f -qq -o /dev/null true 2>/dev/null; then
        note "strace cannot trace here (ptrace denied): the system calls are not checked"
    else
        write_props "$T/strace.properties" deploy-strace
        log=$T/strace-run.log
        MOESIF_APPLICATION_ID=$APP_ID strace -f -qq -o "$T/strace.out" \
            "$USERPIPE" run -c "$T/strace.properties" --from-beginning 2>"$log" &
        spid=$!
        dev_at_exit "kill -9 $spid"
        accepted=$("$USERPIPE" transform <"$ROOT/deploy/dev/sample-events.ndjson" 2>/dev/null | wc -l)
        users=$("$USERPIPE" transform <"$ROOT/deploy/dev/sample-events.ndjson" 2>/dev/null |
            /usr/bin/python3 -c 'import json,sys; print(len({json.loads(l)["user_id"] for l in sys.stdin}))')
        if ! wait_log "$log" 'component=run msg="started"' 60 "$spid"; then
            fail "strace run: userpipe did not start: $(tail -3 "$log")"
        else
            for ((i = 0; i < 300; i++)); do
                n=$(curl -sf "$MOESIF_URL/_dev/stats" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin).get("upserts", 0))' 2>/dev/null || echo 0)
                # the sample's 60 users: a user's consecutive updates merge
                # into one object (sink/merge.c), so the objects stored
                # range from 60 to the accepted events; the users seen is
                # what does not depend on the batcher's timing
                [ "$n" -ge "$users" ] && [ "$(topic_count users.dlq)" -gt 0 ] && break
                sleep 0.2
            done
            [ "$n" -ge "$users" ] || fail "strace run: only $n upserts reached moesif-dev ($users users, $accepted events)"
            if [ $METRICS_KNOWN = 1 ]; then
                port=$(sed -n 's/.*msg="metrics listening" port=\([0-9]*\).*/\1/p' "$log" | head -n 1)
                for p in /healthz /readyz /metrics; do
                    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$p")
                    case $code in 200 | 503) ;; *) fail "strace run: GET $p answered '$code'" ;; esac
                done
            fi
            sleep 1
            rc=0
            # strace's child is userpipe: signal it, not strace
            upid=$(pgrep -P "$spid" -x userpipe | head -n 1)
            if [ -n "$upid" ]; then
                kill -TERM "$upid"
                wait "$spid" || rc=$?
            else
                stop "$spid" || rc=$?
            fi
            [ $rc -eq 0 ] && ok "strace run: consumed, sent $n upserts, dead-lettered, served the metrics endpoint, stopped on SIGTERM with exit 0" ||
                fail "strace run: exit $rc: $(tail -3 "$log")"
            # expand GROUP...: the system calls of filter groups, recursively
            expand() {
                local g s
                for g in "$@"; do
                    case $g in
                    @*) systemd-analyze syscall-filter "$g" | awk 'NR > 1 && $1 !~ /^#/ { print $1 }' |
                        while read -r s; do expand "$s"; done ;;
                    *) echo "$g" ;;
                    esac
                done
            }
            allow=() deny=()
            while read -r line; do
                if [[ $line == ~* ]]; then
                    read -ra w <<<"${line#\~}"
                    deny+=("${w[@]}")
                else
                    read -ra w <<<"$line"
                    allow+=("${w[@]}")
                fi
            done < <(unit_values SystemCallFilter)
            expand "${allow[@]}" | sort -u >"$T/allow.txt"
            if [ ${#deny[@]} -gt 0 ]; then expand "${deny[@]}" | sort -u >"$T/deny.txt"; else : >"$T/deny.txt"; fi
            sed -E 's/^[0-9]+ +//' "$T/strace.out" | grep -oE '^[a-z_0-9]+\(' | tr -d '(' |
                sort -u >"$T/used.txt"
            missing=$(comm -23 "$T/used.txt" "$T/allow.txt" | tr '\n' ' ')
            denied=$(comm -12 "$T/used.txt" "$T/deny.txt" | tr '\n' ' ')
            if [ -z "$missing$denied" ]; then
                ok "sandbox: the $(wc -l <"$T/used.txt") system calls of the run are all allowed by SystemCallFilter= ($(unit_values SystemCallFilter | paste -sd' ' -))"
            else
                fail "sandbox: system calls the unit's SystemCallFilter= would refuse: ${missing}${denied}"
            fi
            allowed_fams=" $(unit_value RestrictAddressFamilies) "
            bad=""
            for fam in $(grep -oE 'socket(pair)?\(AF_[A-Z0-9]+' "$T/strace.out" | sed 's/.*(//' | sort -u); do
                case $allowed_fams in
                *" $fam "*) ;;
                *)
                    if [ "$fam" = AF_NETLINK ] &&
                        ! grep -E 'socket\(AF_NETLINK' "$T/strace.out" | grep -qv NETLINK_ROUTE; then
                        note "sandbox: the run opened NETLINK_ROUTE sockets (glibc getaddrinfo's interface probe); RestrictAddressFamilies= denies them and glibc then assumes IPv4 and IPv6"
                    else
                        bad="$bad $fam"
                    fi
                    ;;
                esac
            done
            [ -z "$bad" ] && ok "sandbox: socket families within RestrictAddressFamilies=${allowed_fams% }" ||
                fail "sandbox: socket families outside RestrictAddressFamilies=:$bad"
            writes=$(grep -E '(openat|open|creat)\(' "$T/strace.out" | grep -E 'O_WRONLY|O_RDWR|O_CREAT|creat\(' | grep -v ' = -1 ' | head -3)
            [ -z "$writes" ] && ok "sandbox: no file opened for writing (read-only file system)" ||
                fail "sandbox: files opened for writing: $writes"
            wx=$(grep -E '(mmap|mprotect|pkey_mprotect)\(' "$T/strace.out" | grep 'PROT_WRITE' | grep 'PROT_EXEC' | head -2)
            [ -z "$wx" ] && ok "sandbox: no writable and executable memory (MemoryDenyWriteExecute=)" ||
                fail "sandbox: writable+executable mappings: $wx"
        fi
        rm -f "$T/strace.out"
    fi

    # -- the slowest stop: Moesif refusing connections, events in flight
    drain=2000
    write_props "$T/stop.properties" deploy-stop "shutdown.drain_timeout_ms=$drain" \
        sink.retry_backoff_max_ms=500
    curl -sf -X POST "$MOESIF_URL/_dev/faults?refuse_for_ms=120000" >/dev/null ||
        fail "cannot make moesif-dev refuse connections"
    log=$T/stop-run.log
    MOESIF_APPLICATION_ID=$APP_ID "$USERPIPE" run -c "$T/stop.properties" --from-beginning 2>"$log" &
    pid=$!
    dev_at_exit "kill -9 $pid"
    if wait_log "$log" 'retrying' 60 "$pid"; then
        t0=$(date +%s%N)
        rc=0
        stop "$pid" || rc=$?
        ms=$((($(date +%s%N) - t0) / 1000000))
        limit=$((2 * drain + 5000))
        if [ $rc -eq 0 ] && [ $ms -le $limit ]; then
            ok "stop with Moesif unreachable: exit 0 after ${ms} ms (drain ${drain} ms; the unit allows 2 x drain + 15 s)"
        else
            fail "stop with Moesif unreachable: exit $rc after ${ms} ms, over 2 x drain + 5 s = ${limit} ms: TimeoutStopSec and terminationGracePeriodSeconds assume 2 x drain"
        fi
    else
        fail "stop run: no retry seen: $(tail -3 "$log")"
        kill -KILL "$pid" 2>/dev/null
    fi
    curl -sf -X POST "$MOESIF_URL/_dev/faults?refuse_for_ms=0" >/dev/null || true
fi

# ---- Dockerfile and Kubernetes manifests ---------------------------------------------
DEB_PKGS=$(make -C "$ROOT" -s --no-print-directory \
    --eval='print-deb-pkgs: ; @echo $(DEB_PKGS)' print-deb-pkgs 2>/dev/null)
[ -n "$DEB_PKGS" ] || fail "cannot read DEB_PKGS from the Makefile"
HAVE_YAML=0
/usr/bin/python3 -c 'import yaml' 2>/dev/null && HAVE_YAML=1
[ $HAVE_YAML = 1 ] ||
    note "python3-yaml is not importable by /usr/bin/python3: the manifests get a structural grep check only"
# the runtime packages' dependency closure, and which package holds each
# library the binary links
closure=""
if apt-cache show libc6 >/dev/null 2>&1; then
    rt_pkgs=$(/usr/bin/python3 - "$DOCKERFILE" <<'EOF'
import re, sys
text = re.sub(r'\\\n', ' ', open(sys.argv[1]).read())
stages = re.split(r'(?im)^FROM\s', text)
last = stages[-1]
pk = []
for m in re.finditer(r'apt-get install([^&\n]*)', last):
    pk += [w for w in m.group(1).split() if not w.startswith('-')]
print(' '.join(pk))
EOF
    )
    # shellcheck disable=SC2086
    closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
        --no-breaks --no-replaces --no-enhances $rt_pkgs 2>/dev/null | grep -v '^[ <]' | sort -u)
    libs_missing=""
    [ "${VARIANT:-release}" = release ] && while read -r lib; do
        [ -n "$lib" ] || continue
        pkg=$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -n 1 | cut -d: -f1)
        [ -n "$pkg" ] || pkg=$(dpkg -S "$lib" 2>/dev/null | head -n 1 | cut -d: -f1)
        [ -n "$pkg" ] || pkg=$(dpkg -S "/usr$lib" 2>/dev/null | head -n 1 | cut -d: -f1)
        if [ -z "$pkg" ]; then
            libs_missing="$libs_missing $lib(no package)"
        elif ! grep -qx "$pkg" <<<"$closure"; then
            libs_missing="$libs_missing $lib($pkg)"
        fi
    done < <(ldd "$USERPIPE" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }')
    [ -z "$libs_missing" ] &&
        ok "docker: the runtime stage's packages ($rt_pkgs) provide every library the binary links" ||
        fail "docker: libraries the runtime stage would lack:$libs_missing"
    for p in $rt_pkgs; do
        apt-cache show "$p" >/dev/null 2>&1 || fail "docker: no Debian package named $p"
    done
else
    note "no apt package lists: the runtime stage's libraries are not checked against the binary"
fi

UID_FILE=$T/docker-uid
DRAIN_MS=$DRAIN_MS DEB_PKGS=$DEB_PKGS HAVE_YAML=$HAVE_YAML UID_FILE=$UID_FILE \
    METRICS_KNOWN=$METRICS_KNOWN /usr/bin/python3 - "$DOCKERFILE" "$K8S" <<'EOF' >"$T/py.out" 2>&1
import json, os, re, sys

dockerfile, k8s = sys.argv[1], sys.argv[2]
drain_ms = int(os.environ["DRAIN_MS"])
fails = 0


def ok(msg):
    print("ok: " + msg)


def fail(msg):
    global fails
    fails += 1
    print("FAIL: " + msg)


def check(cond, good, bad):
    ok(good) if cond else fail(bad)


# ---- Dockerfile ----
raw = open(dockerfile).read()
text = re.sub(r"\\\n", " ", raw)
lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
instr = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if len(l.split(None, 1)) > 1 else "") for l in lines]
froms = [a for i, a in instr if i == "FROM"]
check(len(froms) >= 2, "docker: %d stages (multi-stage)" % len(froms), "docker: %d FROM line(s), want a build and a runtime stage" % len(froms))
check(all(re.match(r"debian:12-slim(@sha256:[0-9a-f]+)?(\s|$)", f) for f in froms),
      "docker: every stage FROM debian:12-slim", "docker: stages %s, want debian:12-slim" % froms)
stages, cur = [], None
for i, a in instr:
    if i == "FROM":
        cur = {"from": a, "instr": []}
        stages.append(cur)
    elif cur is not None:
        cur["instr"].append((i, a))
build, final = (stages[0], stages[-1]) if stages else ({"instr": [], "from": ""}, {"instr": [], "from": ""})
bname = re.search(r"(?i)\sAS\s+(\S+)", build["from"])
bname = bname.group(1) if bname else "0"


def installs(stage):
    pk = []
    for i, a in stage["instr"]:
        if i == "RUN":
            for m in re.finditer(r"apt-get install([^&;|]*)", a):
                pk += [w for w in m.group(1).split() if not w.startswith("-")]
    return set(pk)


want_build = {p for p in os.environ["DEB_PKGS"].split() if p.endswith("-dev") or p in ("build-essential", "pkg-config")}
miss = sorted(want_build - installs(build))
check(not miss, "docker: the build stage installs build-essential and the -dev packages of DEB_PKGS (%s)" % " ".join(sorted(want_build)),
      "docker: the build stage lacks %s (Makefile DEB_PKGS)" % " ".join(miss))
check(any(i == "RUN" and re.search(r"\bmake\b", a) for i, a in build["instr"]),
      "docker: the build stage runs make", "docker: the build stage never runs make")
rt = installs(final)
need_rt = {"libssl3", "libsasl2-2", "libyajl2", "libcurl4", "libdeflate0", "zlib1g", "ca-certificates"}
# librdkafka is linked statically (deps/librdkafka.mk): Debian's 2.0.2 must not come along
check("librdkafka1" not in rt, "docker: no librdkafka1 in the runtime stage (librdkafka is in the binary)", "docker: the runtime stage installs librdkafka1, which the binary does not load")
check(need_rt <= rt, "docker: the runtime stage installs %s" % " ".join(sorted(rt)),
      "docker: the runtime stage lacks %s" % " ".join(sorted(need_rt - rt)))
dev = sorted(p for p in rt if p.endswith("-dev") or p in ("build-essential", "gcc", "make", "pkg-config"))
check(not dev, "docker: no build tools in the runtime stage", "docker: build tools in the runtime stage: %s" % dev)
check(any(i == "COPY" and re.search(r"--from=(%s|0)\b" % re.escape(bname), a) for i, a in final["instr"]),
      "docker: the runtime stage copies the binary from the build stage", "docker: the runtime stage copies nothing from the build stage")
users = [a for i, a in final["instr"] if i == "USER"]
uid = None
if not users:
    fail("docker: no USER in the runtime stage: the container would run as root")
else:
    u = users[-1].split(":")[0]
    if u in ("root", "0"):
        fail("docker: USER %s is root" % users[-1])
    elif not u.isdigit():
        fail("docker: USER %s is not numeric: Kubernetes runAsNonRoot cannot verify a user name" % users[-1])
    else:
        uid = int(u)
        ok("docker: USER %s (numeric, not root)" % users[-1])
        open(os.environ["UID_FILE"], "w").write(str(uid))
entry = [a for i, a in final["instr"] if i == "ENTRYPOINT"]
ep = None
try:
    ep = json.loads(entry[-1]) if entry else None
except ValueError:
    pass
check(ep == ["userpipe", "run", "-c", "/etc/userpipe/userpipe.properties"],
      'docker: ENTRYPOINT ["userpipe","run","-c","/etc/userpipe/userpipe.properties"] (exec form: userpipe is PID 1 and gets the SIGTERM)',
      "docker: ENTRYPOINT is %r" % (entry[-1] if entry else None))
stop = [a for i, a in final["instr"] if i == "STOPSIGNAL"]
check(stop and stop[-1] in ("SIGTERM", "15", "TERM"), "docker: STOPSIGNAL SIGTERM", "docker: STOPSIGNAL is %r" % stop)
secretish = []
for i, a in instr:
    if i in ("ENV", "ARG", "LABEL") and re.search(r"(?i)application[_-]?id|password|secret|token|api[_-]?key", a):
        secretish.append("%s %s" % (i, a))
    if i in ("COPY", "ADD") and re.search(r"(?i)\.env\b|\.properties\b|\.pem\b|\.key\b", a):
        secretish.append("%s %s" % (i, a))
check(not secretish, "docker: no secret or configuration baked into the image (no ENV/ARG of an id or password, no .env/.properties/.key copied)",
      "docker: secret-looking lines: %s" % secretish)
check("make image-test" in raw, "docker: the Dockerfile names make image-test, which builds and runs it",
      "docker: the Dockerfile does not name make image-test, the test that builds and runs it")

# ---- Kubernetes ----
def props_of(text):
    d = {}
    for l in text.splitlines():
        l = l.strip()
        if not l or l[0] in "#!":
            continue
        m = re.match(r"([^=:]+?)\s*[=:]\s*(.*)$", l)
        if m:
            d[m.group(1)] = m.group(2)
    return d


if os.environ["HAVE_YAML"] == "1":
    import yaml

    def load(name):
        try:
            docs = [d for d in yaml.safe_load_all(open(os.path.join(k8s, name))) if d]
        except Exception as e:  # noqa
            fail("k8s: %s does not parse: %s" % (name, e))
            return {}
        if len(docs) != 1:
            fail("k8s: %s holds %d documents, want 1" % (name, len(docs)))
            return docs[0] if docs else {}
        return docs[0]

    dep, cm, sec, pdb = (load(n) for n in ("deployment.yaml", "configmap.yaml", "secret.example.yaml", "pdb.yaml"))
    check(dep.get("kind") == "Deployment" and dep.get("apiVersion") == "apps/v1", "k8s: deployment.yaml is an apps/v1 Deployment", "k8s: deployment.yaml kind %r" % dep.get("kind"))
    check(cm.get("kind") == "ConfigMap", "k8s: configmap.yaml is a ConfigMap", "k8s: configmap.yaml kind %r" % cm.get("kind"))
    check(sec.get("kind") == "Secret", "k8s: secret.example.yaml is a Secret", "k8s: secret.example.yaml kind %r" % sec.get("kind"))
    check(pdb.get("kind") == "PodDisruptionBudget" and pdb.get("apiVersion") == "policy/v1", "k8s: pdb.yaml is a policy/v1 PodDisruptionBudget", "k8s: pdb.yaml kind %r %r" % (pdb.get("kind"), pdb.get("apiVersion")))
    spec = dep.get("spec", {})
    tmpl = spec.get("template", {})
    pod = tmpl.get("spec", {})
    labels = tmpl.get("metadata", {}).get("labels", {})
    sel = spec.get("selector", {}).get("matchLabels", {})
    check(spec.get("replicas") == 3, "k8s: replicas 3", "k8s: replicas %r, want 3" % spec.get("replicas"))
    check(sel and all(labels.get(k) == v for k, v in sel.items()), "k8s: the selector matches the pod labels", "k8s: selector %r vs labels %r" % (sel, labels))
    psel = pdb.get("spec", {}).get("selector", {}).get("matchLabels", {})
    check(psel and all(labels.get(k) == v for k, v in psel.items()), "k8s: the PodDisruptionBudget selects the Deployment's pods", "k8s: PDB selector %r vs labels %r" % (psel, labels))
    check(pdb.get("spec", {}).get("maxUnavailable") == 1 and "minAvailable" not in pdb.get("spec", {}),
          "k8s: PodDisruptionBudget maxUnavailable 1", "k8s: PDB spec %r" % pdb.get("spec"))
    cs = pod.get("containers", [])
    c = cs[0] if len(cs) == 1 else {}
    check(len(cs) == 1, "k8s: one container", "k8s: %d containers" % len(cs))
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True or csc.get("runAsNonRoot") is True, "k8s: runAsNonRoot", "k8s: runAsNonRoot not set")
    ru = csc.get("runAsUser", psc.get("runAsUser"))
    check(ru is None or (ru != 0 and (uid is None or ru == uid)), "k8s: runAsUser %r, the image's USER" % ru, "k8s: runAsUser %r but the image's USER is %r" % (ru, uid))
    check(csc.get("readOnlyRootFilesystem") is True, "k8s: readOnlyRootFilesystem", "k8s: readOnlyRootFilesystem not true")
    check(csc.get("allowPrivilegeEscalation") is False, "k8s: allowPrivilegeEscalation false", "k8s: allowPrivilegeEscalation not false")
    check("ALL" in (csc.get("capabilities", {}).get("drop") or []), "k8s: capabilities drop ALL", "k8s: capabilities not dropped")
    check(not csc.get("privileged"), "k8s: not privileged", "k8s: privileged")

    def mib(q):
        m = re.match(r"^(\d+(?:\.\d+)?)(Mi|Gi|M|G|Ki|k)?$", str(q))
        if not m:
            return None
        f = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "G": 1e9 / 2**20, "Ki": 1 / 1024, "k": 1e3 / 2**20, None: 1 / 2**20}[m.group(2)]
        return float(m.group(1)) * f

    res = c.get("resources", {})
    rq, lm = mib(res.get("requests", {}).get("memory")), mib(res.get("limits", {}).get("memory"))
    check(rq is not None and lm is not None and 100 <= rq <= lm <= 512,
          "k8s: memory request %s, limit %s (the pipeline's budget is 128 MB)" % (res.get("requests", {}).get("memory"), res.get("limits", {}).get("memory")),
          "k8s: memory resources %r, want a request ~128Mi and a limit above it" % res)
    tg = pod.get("terminationGracePeriodSeconds")
    cmtext = cm.get("data", {}).get("userpipe.properties", "")
    props = props_of(cmtext)
    drain = int(props.get("shutdown.drain_timeout_ms", drain_ms))
    need = 2 * drain // 1000 + 15
    check(isinstance(tg, int) and tg > 30 and tg >= need,
          "k8s: terminationGracePeriodSeconds %r >= 2 x shutdown.drain_timeout_ms (%d ms) + 15 s" % (tg, drain),
          "k8s: terminationGracePeriodSeconds %r, want > 30 and >= %d (2 x drain + 15 s)" % (tg, need))
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}

    def probe(kind, path):
        p = c.get(kind, {}).get("httpGet", {})
        port = p.get("port")
        port = ports.get(port, port)
        check(p.get("path") == path and port == 9464, "k8s: %s GET %s on port 9464" % (kind, path), "k8s: %s is %r" % (kind, c.get(kind)))

    probe("livenessProbe", "/healthz")
    probe("readinessProbe", "/readyz")
    listen = props.get("metrics.listen", "")
    check(listen.split(":")[-1] == "9464" and listen.rsplit(":", 1)[0] in ("0.0.0.0", "::", "[::]"),
          "k8s: the ConfigMap's metrics.listen %s is reachable by the kubelet on the probes' port" % listen,
          "k8s: the ConfigMap's metrics.listen is %r: the kubelet probes the pod IP on 9464 (the default 127.0.0.1 is unreachable)" % listen)
    refonly = re.compile(r"^\$\{(env|file):[^}]+\}$")
    check(refonly.match(props.get("moesif.application_id", "${env:MOESIF_APPLICATION_ID}")),
          "k8s: no application id in the ConfigMap (%s)" % props.get("moesif.application_id", "from MOESIF_APPLICATION_ID"),
          "k8s: moesif.application_id in the ConfigMap: use the Secret, by reference")
    env = {e.get("name"): e for e in c.get("env", [])}
    # issue 22: every reference of the ConfigMap, commented out or not,
    # names what the Deployment provides: ${env:NAME} an env entry,
    # ${file:PATH} a key of the example Secret mounted at dirname(PATH),
    # readable by the pod's user (others, or fsGroup and group)
    for name in re.findall(r"\$\{env:([^}]+)\}", cmtext):
        check(name in env, "k8s: ${env:%s} is an env entry of the container" % name,
              "k8s: the ConfigMap reads ${env:%s}, which the container's env lacks" % name)
    mounts = {m.get("mountPath", "").rstrip("/"): m for m in c.get("volumeMounts", [])}
    vols_by_name = {v.get("name"): v for v in pod.get("volumes", [])}
    sec_keys = set(sec.get("stringData", {}) or {}) | set(sec.get("data", {}) or {})
    file_refs = re.findall(r"\$\{file:([^}]+)\}", cmtext)
    check(file_refs, "k8s: the ConfigMap reads %d secret(s) from files" % len(file_refs),
          "k8s: the ConfigMap shows no ${file:...} reference (a Secret mounted as a file)")
    for path in file_refs:
        d, base = os.path.dirname(path), os.path.basename(path)
        m = mounts.get(d)
        v = vols_by_name.get(m.get("name")) if m else None
        s = (v or {}).get("secret") or {}
        items = {i.get("path"): i.get("key") for i in s.get("items", [])} or {k: k for k in sec_keys}
        mode = s.get("defaultMode", 0o644)
        readable = mode & 0o004 or (mode & 0o040 and psc.get("fsGroup") is not None)
        check(s.get("secretName") == sec.get("metadata", {}).get("name") and items.get(base) in sec_keys
              and m.get("readOnly") is True and readable,
              "k8s: ${file:%s} is the Secret's key %s, mounted read-only (mode %o)" % (path, items.get(base), mode),
              "k8s: ${file:%s}: no read-only, readable mount of the Secret's key there (mount %r, volume %r)" % (path, m, v))
    ref = env.get("MOESIF_APPLICATION_ID", {}).get("valueFrom", {}).get("secretKeyRef", {})
    sdata = dict(sec.get("stringData", {}) or {})
    sdata.update(sec.get("data", {}) or {})
    check(ref and "value" not in env.get("MOESIF_APPLICATION_ID", {}) and ref.get("name") == sec.get("metadata", {}).get("name") and ref.get("key") in sdata,
          "k8s: MOESIF_APPLICATION_ID from secretKeyRef %s/%s, the example Secret's name and key" % (ref.get("name"), ref.get("key")),
          "k8s: MOESIF_APPLICATION_ID is %r; the Secret is %r with keys %r" % (env.get("MOESIF_APPLICATION_ID"), sec.get("metadata", {}).get("name"), list(sdata)))
    vals = [str(v) for v in sdata.values()]
    check(vals and all(re.search(r"(?i)replace|example|placeholder|changeme", v) for v in vals) and not sec.get("data"),
          "k8s: secret.example.yaml holds a placeholder only", "k8s: secret.example.yaml holds a value that is not a placeholder")
    vols = {v.get("name"): v for v in pod.get("volumes", [])}
    path = None
    for m in c.get("volumeMounts", []):
        v = vols.get(m.get("name"), {})
        cmref = v.get("configMap") or {}
        if cmref.get("name") == cm.get("metadata", {}).get("name"):
            items = {i.get("key"): i.get("path") for i in cmref.get("items", [])} or {"userpipe.properties": "userpipe.properties"}
            if "userpipe.properties" in items:
                path = m.get("mountPath").rstrip("/") + "/" + items["userpipe.properties"]
                check(m.get("readOnly") is True, "k8s: the configuration is mounted read-only", "k8s: the configuration mount is writable")
    check(path == "/etc/userpipe/userpipe.properties" and (ep is None or ep[-1] == path),
          "k8s: the ConfigMap is mounted at %s, the image's ENTRYPOINT config path" % path,
          "k8s: the ConfigMap reaches %r, the ENTRYPOINT reads %r" % (path, ep[-1] if ep else None))
    check(not c.get("command"), "k8s: the image's ENTRYPOINT is kept (no command:)", "k8s: command: overrides the ENTRYPOINT")
else:
    # structural grep fallback
    dep = open(os.path.join(k8s, "deployment.yaml")).read()
    for pat, what in [(r"replicas:\s*3\b", "replicas 3"), (r"runAsNonRoot:\s*true", "runAsNonRoot"),
                      (r"readOnlyRootFilesystem:\s*true", "readOnlyRootFilesystem"),
                      (r"allowPrivilegeEscalation:\s*false", "allowPrivilegeEscalation false"),
                      (r"path:\s*/healthz", "/healthz probe"), (r"path:\s*/readyz", "/readyz probe"),
                      (r"secretKeyRef:", "secretKeyRef"), (r"containerPort:\s*9464", "port 9464"),
                      (r"terminationGracePeriodSeconds:\s*\d+", "terminationGracePeriodSeconds")]:
        check(re.search(pat, dep), "k8s (grep): " + what, "k8s (grep): no " + what)
    pdb = open(os.path.join(k8s, "pdb.yaml")).read()
    check(re.search(r"maxUnavailable:\s*1\b", pdb), "k8s (grep): PDB maxUnavailable 1", "k8s (grep): PDB maxUnavailable not 1")
sys.exit(1 if fails else 0)
EOF
cat "$T/py.out"
fails=$((fails + $(grep -c '^FAIL' "$T/py.out")))
grep -q '^Traceback' "$T/py.out" && fail "the manifest checker crashed (above)"

# ---- SCALING.md --------------------------------------------------------------
if [ -f "$ROOT/deploy/SCALING.md" ]; then
    for w in 'consumer group' 'partition' 'user_id' 'drain_timeout_ms' 'dead-letter' 'group.id'; do
        grep -qi -- "$w" "$ROOT/deploy/SCALING.md" || fail "deploy/SCALING.md never mentions '$w'"
    done
fi

echo
if [ $fails -eq 0 ]; then
    echo "ok: every deployment artefact check passed"
    exit 0
fi
echo "$fails check(s) failed"
exit 1
