#!/bin/sh
# run_builds.sh - run the whole suite (tests/run.sh) once per build directory given, e.g.
#   tests/run_builds.sh build/debug build/debug-cuda
# and print one combined "N passed, N failed, N skipped" line last (CI reads the last one).
set -u
p=0; f=0; s=0; rc=0
for b in "$@"; do
    echo "== suite against $b =="
    log=$(mktemp)
    HELIX=$b/helix RUNNER=$b/test_runner tests/run.sh | tee "$log"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
    rm -f "$log"
    [ -n "$line" ] || { line="0 passed, 1 failed"; }
    bp=$(echo "$line" | sed 's/^\([0-9]*\) passed.*/\1/')
    bf=$(echo "$line" | sed 's/.* \([0-9]*\) failed.*/\1/')
    bs=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
    echo "== $b: $bp passed, $bf failed, ${bs:-0} skipped =="
    p=$((p + bp)); f=$((f + bf)); s=$((s + ${bs:-0}))
done
echo "$p passed, $f failed, $s skipped"
[ "$f" -eq 0 ]
