#!/bin/sh
# t0514: the dashboard in a real browser (docs/dashboard.md). A local 3-stage pipeline
# (a, b, c on layers [0, 2), [2, 4), [4, 6)) serves a steady load behind an API key; headless Chromium
# opens /dashboard?key=K and the DOM must show every worker with its device, its layer range
# and a non-zero achieved rate; /dashboard and /v1/cluster without the key are refused. Then
# c is killed with SIGKILL: the page must show it not up (silent, then down) within 2 s, and
# down once the coordinator declares it dead. DASH_SHOT=FILE also saves a screenshot under
# load (the one in docs/). Every series the Grafana dashboard (docs/grafana/helix.json) queries
# must be in /metrics.
. tests/serve/lib.sh
command -v chromium >/dev/null 2>&1 || skip "chromium not installed (the README's commands install it)"
KEY=t0514-key-$$
SERVE_EXTRA="--api-key $KEY" HEALTH_AUTH=$KEY serve_start a:0:2 b:2:4 c:4:6

code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/dashboard")
[ "$code" = 401 ] || fail "/dashboard without the key: HTTP $code, want 401"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/cluster")
[ "$code" = 401 ] || fail "/v1/cluster without the key: HTTP $code, want 401"
code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/dashboard?key=wrong")
[ "$code" = 401 ] || fail "/dashboard with a wrong key: HTTP $code, want 401"
curl -sf "$URL/dashboard?key=$KEY" | grep -q '<svg id="graph"' || fail "/dashboard is not the page"
curl -sf -H "Authorization: Bearer $KEY" "$URL/v1/cluster" | jq -e '.workers | length == 3' >/dev/null ||
    fail "/v1/cluster does not list 3 workers"
# the page loads nothing from another origin
curl -sf "$URL/dashboard?key=$KEY" | grep -Eq '(src|href)="?(https?:)?//' && fail "the page references another origin"

# steady load: 4 clients, one streamed request after another
load() {
    while [ ! -f "$WORK/stop" ]; do
        jq -n '{model:"kjv-llama-6m",prompt:"And God said",max_tokens:48,temperature:0,stream:true}' |
            curl -sN -m 20 "$URL/v1/completions" -H "Authorization: Bearer $KEY" \
                -H 'Content-Type: application/json' -d @- > /dev/null 2>&1
    done
}
for i in 1 2 3 4; do load & echo $! >> "$WORK/pids"; done

# the Grafana dashboard in docs/ asks only for series /metrics has
curl -sf "$URL/metrics" > "$WORK/metrics.txt" || fail "no /metrics"
names=$(jq -r '.panels[].targets[].expr' docs/grafana/helix.json | grep -o 'helix_[a-z_]*' | sort -u)
[ -n "$names" ] || fail "no helix_ series in docs/grafana/helix.json"
for m in $names; do
    grep -Eq "^$m(\{| )" "$WORK/metrics.txt" || fail "docs/grafana/helix.json uses $m, which /metrics lacks"
done

python3 - "$URL" "$KEY" "$(cat "$WORK/pid.c")" "${DASH_SHOT:-}" <<'PYEOF' || fail "dashboard checks failed"
import os, signal, sys, time
sys.path.insert(0, "tests/serve")
from browser import Browser

url, key, cpid, shot = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
want = {"a": "0-2", "b": "2-4", "c": "4-6"}
with Browser() as b:
    b.open(url + "/dashboard?key=" + key)
    n, t = b.wait_for("document.querySelectorAll('#graph g.worker').length", timeout=10)
    print("graph drawn with %d workers after %.2f s" % (n, t))
    assert n == 3, n
    # every worker, its range, its device and a non-zero achieved rate under load
    expr = ("Array.from(document.querySelectorAll('#graph g.worker')).every("
            "g => parseFloat(g.dataset.achieved) > 0)")
    _, t = b.wait_for(expr, timeout=15)
    print("every worker shows a non-zero achieved rate after %.2f s" % t)
    rows = b.eval("""Array.from(document.querySelectorAll('#graph g.worker')).map(g => ({
        name: g.dataset.name, range: g.dataset.range, state: g.dataset.state,
        achieved: parseFloat(g.dataset.achieved), text: g.textContent}))""")
    table = b.eval("""Array.from(document.querySelectorAll('#workers tbody tr')).map(tr =>
        Array.from(tr.children).map(td => td.textContent))""")
    for r in rows:
        print("  %s: layers %s, %s, %.1f tokens/s" % (r["name"], r["range"], r["state"], r["achieved"]))
        assert want[r["name"]] == r["range"], r
        assert r["state"] == "ready", r
    for name, rng in want.items():
        s, e = rng.split("-")
        row = [x for x in table if x[0] == name]
        assert row, "no table row for %s: %s" % (name, table)
        assert row[0][1] == "cpu", row      # the device the worker registered with
        assert row[0][2] == "[%s, %s)" % (s, e), row
        assert float(row[0][4].replace(",", "")) > 0, row
    planned = b.eval("document.getElementById('c-planned').textContent")
    assert planned not in ("", "-"), planned
    if shot:
        time.sleep(3)  # a few seconds of history in the charts
        b.screenshot(shot)
        print("screenshot: " + shot)
    # kill c: the page must show it not up within 2 s, and down once declared dead
    os.kill(cpid, signal.SIGKILL)
    t0 = time.monotonic()
    sel = "document.querySelector('#graph g.worker[data-name=\"c\"]')"
    b.wait_for(sel + ".dataset.up === '0'", timeout=10, poll=0.02)
    t_notup = time.monotonic() - t0
    st = b.eval(sel + ".dataset.state")
    print("c shown %s %.2f s after SIGKILL" % (st, t_notup))
    assert t_notup <= 2.0, "c was shown up for %.2f s after it was killed" % t_notup
    b.wait_for(sel + ".dataset.state === 'down'", timeout=10, poll=0.05)
    t_down = time.monotonic() - t0
    print("c shown down %.2f s after SIGKILL (the coordinator's --dead-ms is 3000)" % t_down)
    ev = b.eval("document.getElementById('events').textContent")
    assert "c down" in ev, ev
    conn = b.eval("document.getElementById('conn').textContent")
    assert conn == "live", conn
PYEOF
touch "$WORK/stop"
[ "$(curl -sf -H "Authorization: Bearer $KEY" "$URL/v1/cluster" | jq '.requests.completed')" -gt 0 ] ||
    fail "no request completed under the load"
echo "ok: dashboard shows every worker, range and achieved rate; a killed worker shown down"
