#!/bin/sh
# t0506: `helix run --local` (what `make run` does) starts a coordinator and three worker
# processes, prints a working URL and curl line, serves the bundled model with the greedy text
# of `helix generate`, and on Ctrl-C (SIGINT) stops and leaves no worker behind.
set -u
HELIX=${HELIX:-build/debug/helix}
command -v curl >/dev/null 2>&1 || { echo "curl not installed"; exit 77; }
command -v jq >/dev/null 2>&1 || { echo "jq not installed"; exit 77; }
out=$(mktemp)
"$HELIX" run --local --port 0 > "$out" 2>&1 &
pid=$!
trap 'ws=$(pgrep -P $pid 2>/dev/null); kill -9 $pid 2>/dev/null; for w in $ws; do kill -9 $w 2>/dev/null; done; rm -f "$out"' EXIT
i=0
while ! grep -q 'curl -s' "$out"; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 $pid 2>/dev/null; then echo "FAIL: no URL"; cat "$out"; exit 1; fi
    sleep 0.1
done
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$out" | head -1)
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
echo "ok: helix run --local serves and cleans up"
