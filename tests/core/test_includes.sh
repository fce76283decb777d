#!/usr/bin/env bash
# test_includes.sh: the house's one rule, checked (issue 14): includes run
# one way, cmd/ -> stages -> core/.  core/ includes nothing of the
# project; a stage (schemas/ transform/ ingest/ sink/) includes core/ and
# its own folder only, but for the one stage-to-stage edge transform/ ->
# schemas/; nothing but cmd/ and the tests includes cmd/.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
bad=0
for f in $(git ls-files 'core/*.[ch]' 'schemas/*.[ch]' 'transform/*.[ch]' \
    'ingest/*.[ch]' 'sink/*.[ch]'); do
    dir=${f%%/*}
    while read -r inc; do
        to=${inc#../}
        to=${to%%/*}
        case "$dir:$to" in
        core:*) ok=0 ;;
        *:core | transform:schemas) ok=1 ;;
        *) ok=0 ;;
        esac
        if [ "$ok" -eq 0 ]; then
            echo "FAIL $f includes \"$inc\": $dir/ may not include $to/"
            bad=1
        fi
    done < <(sed -n 's/^#include "\(\.\.\/[^"]*\)".*/\1/p' "$f")
done
n=$(git ls-files '*.[ch]' | grep -v '^cmd/\|^tests/' | xargs grep -l '#include "\(\.\./\)*cmd/' 2>/dev/null | wc -l)
if [ "$n" -ne 0 ]; then
    echo "FAIL $n files outside cmd/ and tests/ include cmd/"
    bad=1
fi
[ "$bad" -eq 0 ] && echo "ok: includes run cmd/ -> stages -> core/"
exit $bad
