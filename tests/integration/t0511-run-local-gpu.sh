#!/bin/sh
# t0511: `helix run --local` uses a GPU when there is one (issue 13, part 3): with a CUDA build
# on a machine with a GPU the default cluster is a GPU worker under a 24 MiB memory cap plus
# two CPU workers; the GPU type is profiled on the card under its cap, the plan splits the
# model (the GPU worker holds fewer than all 6 layers), and a completion gives the greedy text
# of `helix generate` on the CPU. Skipped (exit 77) without a CUDA build or a GPU.
set -u
HELIX=${HELIX:-build/debug/helix}
command -v curl >/dev/null 2>&1 || { echo "curl not installed"; exit 77; }
out=$(mktemp)
err=$(mktemp)
"$HELIX" profile --device cuda --threads 1 --max-seconds 0.2 --quiet --out "$(mktemp -d)" \
    >/dev/null 2>"$err" || { echo "no usable GPU here: $(head -c 200 "$err")"; rm -f "$out" "$err"; exit 77; }
XDG_CACHE_HOME=$(mktemp -d)
export XDG_CACHE_HOME
"$HELIX" run --local --port 0 --profile-seconds 0.5 > "$out" 2>&1 &
pid=$!
trap 'ws=$(pgrep -P $pid 2>/dev/null); kill -9 $pid 2>/dev/null; for w in $ws; do kill -9 $w 2>/dev/null; done; rm -rf "$out" "$err" "$XDG_CACHE_HOME"' EXIT
i=0
while ! grep -q 'curl -s' "$out"; do
    i=$((i + 1))
    if [ $i -gt 900 ] || ! kill -0 $pid 2>/dev/null; then echo "FAIL: no URL"; cat "$out"; exit 1; fi
    sleep 0.1
done
cat "$out"
grep -q '^profile gpu-mem24: measured on cuda:0' "$out" || { echo "FAIL: GPU type not profiled"; exit 1; }
line=$(grep 'w0-gpu *cuda:0 mem=24 MiB layers' "$out") || { echo "FAIL: the GPU worker is unused"; exit 1; }
a=$(echo "$line" | sed 's/.*layers \[\([0-9]*\), \([0-9]*\)).*/\1/')
b=$(echo "$line" | sed 's/.*layers \[\([0-9]*\), \([0-9]*\)).*/\2/')
[ $((b - a)) -ge 1 ] && [ $((b - a)) -lt 6 ] || { echo "FAIL: GPU range [$a, $b) does not split the model"; exit 1; }
url=$(grep -o 'http://127.0.0.1:[0-9]*' "$out" | head -1)
got=$(curl -s "$url/v1/completions" -H 'Content-Type: application/json' \
    -d '{"model": "kjv-llama-6m", "prompt": "In the beginning", "max_tokens": 16, "temperature": 0}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
want=$("$HELIX" generate --prompt "In the beginning" -n 16 --threads 1 --json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')
[ -n "$got" ] && [ "$got" = "$want" ] || { echo "FAIL: '$got' != '$want'"; exit 1; }
kill -INT $pid
wait $pid
echo "ok: helix run --local put layers [$a, $b) on the GPU worker and served the greedy text"
