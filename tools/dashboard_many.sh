#!/bin/sh
# dashboard_many.sh - the dashboard with many workers (is it readable at 64?): N workers of the
# bundled model on loopback (tests/serve/lib.sh: a cluster file and a placement, thirds of the
# model each), a light load, then a full-page screenshot by headless Chromium.
#   tools/dashboard_many.sh OUT.png [N]      (default 64; FULL=0: only the first 1400x1000)
out=${1:?usage: tools/dashboard_many.sh OUT.png [N]}
n=${2:-64}
. tests/serve/lib.sh
specs=""
i=0
while [ $i -lt "$n" ]; do
    case $((i % 3)) in 0) r=0:2 ;; 1) r=2:4 ;; *) r=4:6 ;; esac
    specs="$specs w$i:$r"
    i=$((i + 1))
done
# shellcheck disable=SC2086
serve_start $specs
for c in 1 2 3 4; do
    ( while [ ! -f "$WORK/stop" ]; do
        jq -n '{model:"kjv-llama-6m",prompt:"And God said",max_tokens:32,temperature:0}' |
            curl -s -m 30 "$URL/v1/completions" -H 'Content-Type: application/json' -d @- > /dev/null
      done ) &
    echo $! >> "$WORK/pids"
done
python3 - "$URL" "$out" "$n" <<'PY' || fail "screenshot failed"
import os, sys, time
sys.path.insert(0, "tests/serve")
from browser import Browser
url, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Browser() as b:
    b.open(url + "/dashboard", width=1400, height=1000)
    b.wait_for("document.querySelectorAll('#graph g.worker').length == %d" % n, timeout=20)
    time.sleep(8)
    b.screenshot(out, full_page=os.environ.get("FULL", "1") == "1")
    print("dashboard_many: %d workers drawn; %s" % (n, out))
PY
touch "$WORK/stop"
