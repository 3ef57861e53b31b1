#!/bin/sh
# dashboard_shot.sh - the screenshot in docs/dashboard.md: `helix run --local SPEC` (measured
# profiles, a planned placement) under a steady load of streamed completions, photographed by
# headless Chromium after SECONDS of load (tests/serve/browser.py). At most 8 workers (what
# `helix run --local` takes).
#   tools/dashboard_shot.sh OUT.png [SPEC] [SECONDS]    (defaults: 2:32,1:16,1:8,1:8 and 20)
set -eu
out=${1:?usage: tools/dashboard_shot.sh OUT.png [SPEC] [SECONDS]}
spec=${2:-2:32,1:16,1:8,1:8}
secs=${3:-20}
HELIX=${HELIX:-build/release/helix}
[ -x "$HELIX" ] || { echo "dashboard_shot: no $HELIX (make VARIANT=release build)" >&2; exit 1; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
"$HELIX" run --local "$spec" --port "$port" > "$log" 2>&1 &
run=$!
pids=$run
trap 'kill $pids 2>/dev/null; rm -f "$log"' EXIT
url=http://127.0.0.1:$port
i=0
until curl -sf "$url/health" > /dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 1200 ] || ! kill -0 $run 2>/dev/null; then cat "$log" >&2; exit 1; fi
    sleep 0.1
done
for c in 1 2 3 4 5 6; do
    ( while :; do
        curl -sN -m 30 "$url/v1/completions" -H 'Content-Type: application/json' \
            -d '{"model":"kjv-llama-6m","prompt":"And God said","max_tokens":64,"temperature":0,"stream":true}' \
            > /dev/null 2>&1 || sleep 0.2
      done ) &
    pids="$pids $!"
done
python3 - "$url" "$out" "$secs" <<'PY'
import sys, time
sys.path.insert(0, "tests/serve")
from browser import Browser
url, out, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
with Browser() as b:
    b.open(url + "/dashboard", width=1400, height=1000)
    b.wait_for("document.querySelectorAll('#graph g.worker').length > 0", timeout=10)
    time.sleep(secs)
    b.screenshot(out)
print("dashboard_shot: " + out)
PY
