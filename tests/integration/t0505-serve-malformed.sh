#!/bin/sh
# t0505: malformed HTTP bodies and garbage on the workers' ZeroMQ port crash nothing (each bad
# request gets a 4xx, the coordinator keeps serving correct text); a worker presenting a wrong
# token, or a name the plan does not have, is refused and exits with an error.
. tests/serve/lib.sh
serve_start a:0:3 b:3:6
code() { curl -s -o /dev/null -w '%{http_code}' "$URL/v1/completions" -H 'Content-Type: application/json' --data-binary "$1"; }
for body in '{' '[]' '' 'null' '{"prompt": 5}' '{"model":"kjv-llama-6m"}' \
    '{"model":"kjv-llama-6m","prompt":"a","max_tokens":-1}' \
    '{"model":"kjv-llama-6m","prompt":"a","max_tokens":100000000}' \
    '{"model":"kjv-llama-6m","prompt":"a","temperature":"hot"}' \
    '{"model":"kjv-llama-6m","prompt":"a","top_p":7}' \
    '{"model":"kjv-llama-6m","prompt":["a","b"]}' \
    '{"model":"kjv-llama-6m","prompt":"a","stop":[1,2]}'; do
    c=$(code "$body")
    case $c in 4??) ;; *) fail "body '$body' answered $c, want 4xx" ;; esac
done
# a long prompt beyond the context: a clean 400, not a crash
long=$(python3 -c 'print("{\"model\":\"kjv-llama-6m\",\"prompt\":\"" + "and " * 3000 + "\"}")' 2>/dev/null)
[ -n "$long" ] && { c=$(code "$long"); case $c in 4??) ;; *) fail "over-long prompt answered $c" ;; esac; }
# bytes that are not JSON at all, and invalid UTF-8
c=$(head -c 3000 /dev/urandom | curl -s -o /dev/null -w '%{http_code}' "$URL/v1/chat/completions" -H 'Content-Type: application/json' --data-binary @-)
case $c in 4??) ;; *) fail "random bytes answered $c" ;; esac
# garbage on the ZeroMQ port: HTTP and random bytes instead of ZMTP
curl -s --max-time 1 "http://127.0.0.1:$WPORT/" >/dev/null 2>&1
head -c 5000 /dev/urandom | curl -s --max-time 1 --data-binary @- "http://127.0.0.1:$WPORT/x" >/dev/null 2>&1
python3 - "$WPORT" <<'PY' 2>/dev/null
import os, socket, sys
for n in (1, 10, 64, 300, 4096):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
    # a valid ZMTP 3 greeting prefix, then junk
    s.sendall(b"\xff" + b"\0" * 8 + b"\x7f\x03\x00NULL" + b"\0" * 16 + os.urandom(n))
    s.close()
PY
sleep 0.3
kill -0 "$SERVE_PID" 2>/dev/null || fail "helix serve died"
got=$(complete "In the beginning" 16)
[ "$got" = "$(reference "In the beginning" 16)" ] || fail "wrong text after malformed input: '$got'"
# a worker with the wrong token is refused (b's slot is freed first: ZeroMQ ignores a second
# live connection under a name that is already connected)
kill -9 "$(cat "$WORK/pid.b")"
i=0
while curl -sf "$URL/health" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 50 ] && fail "b's death not noticed"; sleep 0.1
done
HELIX_TOKEN=wrong timeout 20 "$HELIX" worker --coordinator "$COORD" --name b > "$WORK/bad.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "worker with a wrong token: exit $rc"
grep -qi 'auth\|token\|secret' "$WORK/bad.log" || fail "refusal does not say why: $(cat "$WORK/bad.log")"
# a name the plan does not have is refused
timeout 20 "$HELIX" worker --coordinator "$COORD" --name intruder > "$WORK/bad2.log" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "unknown worker name: exit $rc"
# the real worker b comes back and the cluster serves again
worker_start b
i=0
while ! curl -sf "$URL/health" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 300 ] && fail "b did not rejoin"; sleep 0.1
done
got=$(complete "And God said" 16)
[ "$got" = "$(reference "And God said" 16)" ] || fail "wrong text after refusals"
echo "ok: malformed input and bad workers refused, service intact"
