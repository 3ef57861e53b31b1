#!/bin/sh
# t0513: ZeroMQ CURVE between separate processes (docs/protocol.md §8). With --curve on, a
# 2-stage pipeline serves the greedy text of `helix generate`; an impostor with a live
# worker's name but no key (plain, or a CURVE key derived from a wrong secret) gets no answer
# at all; junk thrown at a worker's data socket while streams are in flight is refused at the
# handshake and counted in /metrics, and every stream equals the undisturbed text; a killed
# worker's key is revoked; and with operator-managed keys (helix keygen, --key-file,
# --worker-keys) a worker whose key the keys file does not list gets nothing.
. tests/serve/lib.sh
BPORT=$(free_port)
SERVE_EXTRA="--curve on"
WORKER_EXTRA="--curve on"
serve_start a:0:3 b:3:6
grep -q "CURVE on" "$WORK/serve.log" || fail "serve.log does not say CURVE is on"
grep -q "CURVE on" "$WORK/worker.a.log" || fail "worker a does not say CURVE is on"
[ "$(wait_metric helix_curve_enabled -ge 1)" = 1 ] || fail "helix_curve_enabled is not 1"
got=$(complete "In the beginning" 24)
want=$(reference "In the beginning" 24)
[ -n "$want" ] && [ "$got" = "$want" ] || fail "CURVE pipeline '$got' != generate '$want'"

# impostors under a live worker's name: plain, and a CURVE key from a wrong shared secret
HELIX_TOKEN=wrong timeout 5 "$HELIX" worker --coordinator "$COORD" --name b --curve on > "$WORK/imp1.log" 2>&1
[ $? -eq 124 ] || fail "impostor with a wrong secret did not hang unanswered: $(cat "$WORK/imp1.log")"
timeout 5 "$HELIX" worker --coordinator "$COORD" --name b --curve off > "$WORK/imp2.log" 2>&1
[ $? -eq 124 ] || fail "plain impostor did not hang unanswered: $(cat "$WORK/imp2.log")"
for f in imp1 imp2; do
    grep -qi "registered\|rejected\|assigned" "$WORK/$f.log" && fail "$f learned something: $(cat "$WORK/$f.log")"
done
h=$(wait_metric 'helix_refused_total{at="coordinator",reason="handshake"}' -ge 2)
[ "$h" -ge 2 ] || fail "coordinator counted $h refused handshakes, want >= 2"

# junk into b's data socket while 4 streams run
bep=$(sed -n 's/.*serving layers \[3, 6) on tcp:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/worker.b.log" | tail -1)
[ -n "$bep" ] || fail "no data endpoint in b's log"
for i in 1 2 3 4; do stream "And God said, Let there be light" 40 "$WORK/s$i.sse" & echo $! > "$WORK/spid.$i"; done
python3 - "$bep" <<'PY' 2>/dev/null
import os, socket, sys
port = int(sys.argv[1])
def greet(mech):
    return b"\xff" + b"\0" * 8 + b"\x7f\x03\x00" + mech.ljust(20, b"\0") + b"\0" * 31
for n in range(20):
    for mech in (b"NULL", b"CURVE", b"PLAIN"):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            s.sendall(greet(mech))
            # a READY claiming identity "a" (plain), or a HELLO of noise (CURVE)
            s.sendall(b"\x04\x29\x05READY\x0bSocket-Type\0\0\0\x06DEALER\x08Identity\0\0\0\x01a" + os.urandom(64 + n))
            s.close()
        except OSError:
            pass
PY
for i in 1 2 3 4; do wait "$(cat "$WORK/spid.$i")"; done
ref=$(reference "And God said, Let there be light" 40)
for i in 1 2 3 4; do
    [ "$(sse_text "$WORK/s$i.sse")" = "$ref" ] || fail "stream $i under injection differs: $(sse_text "$WORK/s$i.sse")"
done
h=$(wait_metric 'helix_refused_total{at="b",reason="handshake"}' -ge 1)
[ "$h" -ge 1 ] || fail "b counted $h refused handshakes"
[ "$(wait_metric helix_requests_failed_total -ge 0)" = 0 ] || fail "a request failed"

# a killed worker's key is revoked; its restart (a new key) serves again
kill -9 "$(cat "$WORK/pid.a")"
i=0
while ! grep -q "key of a revoked" "$WORK/serve.log"; do
    i=$((i + 1)); [ $i -gt 100 ] && fail "a's key was not revoked"; sleep 0.1
done
worker_start a
i=0
while ! curl -sf "$URL/health" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 300 ] && fail "a did not rejoin"; sleep 0.1
done
[ "$(complete "In the beginning" 24)" = "$want" ] || fail "wrong text after a rejoined"

# operator-managed keys: a keys file of a and b; a third key pair is not in it
for p in $(cat "$WORK/pids"); do kill -9 "$p" 2>/dev/null; done
mkdir -p "$WORK/keys"
"$HELIX" keygen --out "$WORK/keys/coord.key" > "$WORK/keys/coord.pub" || fail "helix keygen failed"
"$HELIX" keygen --out "$WORK/keys/coord.key" > /dev/null 2>&1 && fail "keygen overwrote a key file"
: > "$WORK/keys/workers"
for n in a b x; do
    pub=$("$HELIX" keygen --out "$WORK/keys/$n.key") || fail "keygen $n"
    [ "$n" = x ] || echo "$n $pub" >> "$WORK/keys/workers"
done
[ "$(stat -c %a "$WORK/keys/a.key")" = 600 ] || fail "key file is not mode 600"
: > "$WORK/serve.log"
SERVE_EXTRA="--key-file $WORK/keys/coord.key --worker-keys $WORK/keys/workers"
WORKER_EXTRA="--curve on --coordinator-key $(cat "$WORK/keys/coord.pub")"
WORKER_KEYDIR="$WORK/keys"
serve_start a:0:3 b:3:6
grep -q "only the keys file's workers" "$WORK/serve.log" || fail "serve.log does not name the keys file mode"
[ "$(complete "In the beginning" 24)" = "$want" ] || fail "wrong text with a keys file"
timeout 5 "$HELIX" worker --coordinator "$COORD" --name x --curve on --key-file "$WORK/keys/x.key" \
    --coordinator-key "$(cat "$WORK/keys/coord.pub")" > "$WORK/imp3.log" 2>&1
[ $? -eq 124 ] || fail "unlisted key: $(cat "$WORK/imp3.log")"
k=$(wait_metric 'helix_refused_total{at="coordinator",reason="key"}' -ge 1)
[ "$k" -ge 1 ] || fail "coordinator counted $k refused keys"
echo "ok: CURVE pipeline, impostors and injected frames refused and counted, keys revoked, keys file"
