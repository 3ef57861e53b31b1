#!/bin/sh
# run.sh - run the unit test runner, then every tests/integration/t*.sh, and print one
# combined "N passed, N failed, N skipped" line last (CI reads it).
# Env: RUNNER (test_runner path), HELIX (helix binary path).
set -u
RUNNER=${RUNNER:-build/debug/test_runner}
HELIX=${HELIX:-build/debug/helix}
export HELIX
out=$(mktemp)
"$RUNNER" "$@" | tee "$out"
summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -1)
rm -f "$out"
if [ -z "$summary" ]; then
    echo "run.sh: the unit runner crashed before its summary" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
p=$(echo "$summary" | sed 's/^\([0-9]*\) passed.*/\1/')
f=$(echo "$summary" | sed 's/.* \([0-9]*\) failed.*/\1/')
s=$(echo "$summary" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
s=${s:-0}
if [ $# -eq 0 ]; then
    for t in tests/integration/t*.sh; do
        [ -e "$t" ] || continue
        start=$(date +%s)
        log=$(mktemp)
        timeout 600 sh "$t" >"$log" 2>&1
        rc=$?
        secs=$(( $(date +%s) - start ))
        if [ $rc -eq 0 ]; then
            p=$((p + 1)); echo "ok - $t (${secs}s)"
        elif [ $rc -eq 77 ]; then
            s=$((s + 1)); echo "ok - $t # SKIP $(tail -1 "$log")"
        else
            f=$((f + 1)); echo "not ok - $t (exit $rc, ${secs}s)"; sed 's/^/#   /' "$log" | tail -60
        fi
        rm -f "$log"
    done
fi
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
