#!/bin/sh
# t0506: `helix run --local` (what `make run` does) starts a coordinator and three worker
# processes, prints a working URL and curl line, serves the bundled model with the greedy text
# of `helix generate`, and on Ctrl-C (SIGINT) stops and leaves no worker behind. It plans from
# real numbers: each thread count is profiled (fresh cache here), the plan printed with its
# predicted max-flow and the per-kind profile file named; a second run reuses the cache.
set -u
HELIX=${HELIX:-build/debug/helix}
command -v curl >/dev/null 2>&1 || { echo "curl not installed"; exit 77; }
command -v jq >/dev/null 2>&1 || { echo "jq not installed"; exit 77; }
out=$(mktemp)
out2=$(mktemp)
XDG_CACHE_HOME=$(mktemp -d)
export XDG_CACHE_HOME
pid2=
"$HELIX" run --local --port 0 --profile-seconds 0.5 > "$out" 2>&1 &
pid=$!
trap 'for p in $pid $pid2; do ws=$(pgrep -P $p 2>/dev/null); kill -9 $p 2>/dev/null; for w in $ws; do kill -9 $w 2>/dev/null; done; done; rm -rf "$out" "$out2" "$XDG_CACHE_HOME"' EXIT
i=0
while ! grep -q 'curl -s' "$out"; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then echo "FAIL: no URL"; cat "$out"; exit 1; fi
    sleep 0.1
done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$out" | head -1)
# profiled (two thread counts in the default SPEC), planned, every layer placed
[ "$(grep -c '^profile cpu-t[0-9]*: measured' "$out")" -eq 2 ] || { echo "FAIL: not profiled"; cat "$out"; exit 1; }
grep -q '^plan (auto over the profile .*predicted max-flow [0-9.]* tokens/s' "$out" || { echo "FAIL: no plan"; cat "$out"; exit 1; }
[ "$(grep -c 'layers \[[0-9], [0-9]) capacity [0-9.]* tokens/s' "$out")" -eq 3 ] || { echo "FAIL: plan lines"; cat "$out"; exit 1; }
prof=$(sed -n 's/^plan (auto over the profile \(.*\), [0-9.]* s).*/\1/p' "$out")
[ -f "$prof" ] || { echo "FAIL: no profile file '$prof'"; exit 1; }
grep -q '^\[gpu cpu-t1-kv16\]' "$prof" || { echo "FAIL: no worker kind type in $prof"; exit 1; }
workers=$(pgrep -P $pid | wc -l)
[ "$workers" -eq 3 ] || { echo "FAIL: $workers worker processes, want 3"; exit 1; }
# the printed curl line works as printed
line=$(grep 'curl -s' "$out" | sed 's/^ *//')
got=$(sh -c "$line" | jq -r '.choices[0].text')
want=$("$HELIX" generate --prompt "In the beginning" -n 32 --threads 1 --json 2>/dev/null | jq -r .text)
[ -n "$got" ] && [ "$got" = "$want" ] || { echo "FAIL: '$got' != '$want'"; exit 1; }
kids=$(pgrep -P $pid)
kill -INT $pid
i=0
while kill -0 $pid 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "FAIL: did not stop on SIGINT"; exit 1; }; sleep 0.1
done
wait $pid
for k in $kids; do
    kill -0 "$k" 2>/dev/null && { echo "FAIL: worker $k left running"; exit 1; }
done
# a second run reuses the cached profiles (no measuring) and plans again
"$HELIX" run --local --port 0 > "$out2" 2>&1 &
pid2=$!
i=0
while ! grep -q 'curl -s' "$out2"; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 $pid2 2>/dev/null; then echo "FAIL: second run"; cat "$out2"; exit 1; fi
    sleep 0.1
done
[ "$(grep -c '^profile cpu-t[0-9]*: cached' "$out2")" -eq 2 ] || { echo "FAIL: cache not used"; cat "$out2"; exit 1; }
kill -INT $pid2
wait $pid2
echo "ok: helix run --local profiles, plans, serves and cleans up"
