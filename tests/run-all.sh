#!/usr/bin/env bash
# run-all.sh: runs the cmocka unit tests, then the shell tests, and prints
# one closing line "N passed, N failed".  Usage: run-all.sh UNIT... -- SCRIPT...
# Each shell test exits 0 on success; its output is shown only on failure
# (or always with VERBOSE=1).  A test that runs longer than TEST_TIMEOUT
# seconds (default 900) fails.  A shell test written "apache:PATH" runs
# with DEV_KAFKA=apache (the same test on a real Apache Kafka, issue 13)
# and is named "NAME@apache".
set -u
export CMOCKA_MESSAGE_OUTPUT=${CMOCKA_MESSAGE_OUTPUT:-STDOUT}
passed=0
failed=0
failures=()
timeout_s=${TEST_TIMEOUT:-900}
mode=unit
mkdir -p "$BUILD/test-logs"
for t in "$@"; do
    if [ "$t" = "--" ]; then
        mode=script
        continue
    fi
    broker=dev
    case $t in
    apache:*)
        broker=apache
        t=${t#apache:}
        ;;
    esac
    name=$(basename "$t")
    [ "$broker" = dev ] || name="$name@$broker"
    log="$BUILD/test-logs/$name.log"
    start=$(date +%s)
    if [ "$mode" = unit ]; then
        timeout "$timeout_s" "$t" >"$log" 2>&1
    else
        DEV_KAFKA=$broker timeout "$timeout_s" bash "$t" >"$log" 2>&1
    fi
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $name (${secs}s)"
        [ "${VERBOSE:-0}" = 1 ] && cat "$log"
    else
        failed=$((failed + 1))
        failures+=("$name")
        echo "FAIL $name (exit $rc, ${secs}s); its output:"
        tail -n 60 "$log" | sed 's/^/    /'
    fi
done
echo
[ $failed -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
