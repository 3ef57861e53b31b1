#!/bin/sh
# t0509-device.sh - `helix generate --device`: a bad name is a usage error; --device cuda on a
# binary without CUDA, or on a machine without a GPU, fails with a clear message and exit
# status 2; where a GPU is usable, the greedy continuation on cuda equals the one on cpu.
set -u
HELIX=${HELIX:-build/debug/helix}
fail() { echo "t0509: $*"; exit 1; }
err=$(mktemp)
trap 'rm -f "$err"' EXIT
"$HELIX" generate --device gpu7 --prompt "In the beginning" -n 4 2>"$err" >/dev/null
[ $? -eq 2 ] || fail "--device gpu7: want exit 2"
grep -q "bad value 'gpu7' for --device" "$err" || fail "--device gpu7 message: $(cat "$err")"
cpu=$("$HELIX" generate --device cpu --prompt "In the beginning" -n 24 --json) || fail "cpu run"
gpu=$("$HELIX" generate --device cuda --prompt "In the beginning" -n 24 --json 2>"$err")
rc=$?
if [ $rc -eq 0 ]; then
    a=$(echo "$cpu" | sed 's/.*"generated_ids":\(\[[^]]*\]\).*/\1/')
    b=$(echo "$gpu" | sed 's/.*"generated_ids":\(\[[^]]*\]\).*/\1/')
    [ -n "$a" ] && [ "$a" = "$b" ] || fail "cuda ids $b differ from cpu ids $a"
    echo "t0509: a GPU is here: cuda's greedy ids equal cpu's ($a)"
    exit 0
fi
[ $rc -eq 2 ] || fail "--device cuda without a GPU: want exit 2, got $rc: $(cat "$err")"
grep -Eq "built without CUDA|no usable GPU|no GPU" "$err" || fail "unclear message: $(cat "$err")"
echo "t0509: no GPU here: exit 2, $(cat "$err")"
