#!/bin/sh
# t0510-worker-device.sh - devices in `helix worker` and `helix profile` (issue #12, part 2):
#  (a) a bad --device is a usage error (exit 2); both --help texts name --device;
#  (b) --device cuda exits 2 with a clear message: "built without CUDA" from a plain build,
#      "no usable GPU" / "no GPU" from a CUDA build (build dir *-cuda) on a machine without
#      one; where a GPU is usable, profile writes a type named after the card instead;
#  (c) profile --device cpu writes what it always did (type cpu-t1, "CPU backend");
#  (d) a served run: /metrics names each worker's device and --mem-bytes cap
#      (helix_node_info{node=...,backend=...,device="cpu"} 1, helix_node_mem_cap_bytes), the
#      KV budget stays within --kv-bytes, and a completion works;
#  (e) a worker whose --mem-bytes cannot hold its assigned layers exits 2 naming both numbers.
. tests/serve/lib.sh
case "$HELIX" in
*-cuda/helix) want_nogpu="no usable GPU|no GPU" ;;
*) want_nogpu="built without CUDA" ;;
esac
err=$WORK/err

# (a)
for cmd in worker profile; do
    "$HELIX" $cmd --coordinator tcp://127.0.0.1:9 --name w --token x --device gpu7 2>"$err" >/dev/null
    rc=$?
    [ "$cmd" = profile ] && { "$HELIX" profile --device gpu7 2>"$err" >/dev/null; rc=$?; }
    [ $rc -eq 2 ] || fail "$cmd --device gpu7: want exit 2, got $rc"
    grep -q "bad value 'gpu7' for --device" "$err" || fail "$cmd --device gpu7: $(cat "$err")"
    "$HELIX" $cmd --help | grep -q -- '--device D' || fail "$cmd --help does not name --device"
done
"$HELIX" worker --help | grep -q -- '--mem-bytes N' || fail "worker --help does not name --mem-bytes"
"$HELIX" worker --coordinator tcp://127.0.0.1:9 --name w --token x --mem-bytes 12Q 2>"$err"
[ $? -eq 2 ] && grep -q "mem-bytes wants a byte count" "$err" || fail "--mem-bytes 12Q: $(cat "$err")"
echo "(a) ok: bad --device / --mem-bytes values are usage errors"

# (b)
gpu=0
"$HELIX" profile --device cuda --threads 1 --max-seconds 0.3 --quiet --out "$WORK/pg" \
    >"$WORK/pg.out" 2>"$err"
rc=$?
if [ $rc -eq 0 ]; then
    gpu=1
    ini=$WORK/pg/kjv-llama-6m.ini
    grep -q '^# measured on cuda:0 ' "$ini" || fail "(b) GPU profile does not say its device"
    t=$(sed -n 's/^\[gpu \(.*\)\]$/\1/p' "$ini")
    case "$t" in cpu-t*|"") fail "(b) GPU profile type is '$t', want the card's name" ;; esac
    echo "(b) ok: a GPU is here: profile type $t"
else
    [ $rc -eq 2 ] || fail "(b) profile --device cuda: want exit 2, got $rc: $(cat "$err")"
    grep -Eq "$want_nogpu" "$err" || fail "(b) profile message (want $want_nogpu): $(cat "$err")"
    timeout 30 "$HELIX" worker --coordinator tcp://127.0.0.1:9 --name w --token x \
        --device cuda:0 2>"$err" >/dev/null
    rc=$?
    [ $rc -eq 2 ] || fail "(b) worker --device cuda:0: want exit 2, got $rc: $(cat "$err")"
    grep -Eq "$want_nogpu" "$err" || fail "(b) worker message (want $want_nogpu): $(cat "$err")"
    echo "(b) ok: no GPU: exit 2, $(head -1 "$err")"
fi

# (c)
"$HELIX" profile --device cpu --threads 1 --max-seconds 0.3 --quiet --out "$WORK/pc" \
    >"$WORK/pc.out" 2>"$err" || fail "(c) profile --device cpu: $(cat "$err")"
ini=$WORK/pc/kjv-llama-6m.ini
grep -q '^\[gpu cpu-t1\]$' "$ini" || fail "(c) no [gpu cpu-t1] in $ini"
grep -q 'one layer, CPU backend, this machine' "$ini" || fail "(c) the header changed"
grep -q '^# measured with 1 threads' "$ini" || fail "(c) the type comment changed"
echo "(c) ok: profile --device cpu writes type cpu-t1 as before"

# (d)
if [ $gpu -eq 1 ]; then dev=cuda; else dev=cpu; fi
WORKER_EXTRA="--device $dev --mem-bytes 256M" serve_start a:0:3 b:3:6
# /metrics is rendered every 250 ms: wait for both workers' info lines
for _ in $(seq 1 50); do
    m=$(curl -sf "$URL/metrics") || fail "(d) no /metrics"
    [ "$(echo "$m" | grep -c '^helix_node_info{')" -eq 2 ] && break
    sleep 0.1
done
for n in a b; do
    line=$(echo "$m" | grep "^helix_node_info{node=\"$n\",")
    if [ $gpu -eq 1 ]; then
        echo "$line" | grep -Eq '^helix_node_info\{node="'$n'",backend="cuda",device="cuda:0 [^"]+"\} 1$' ||
            fail "(d) node $n: '$line'"
    else
        [ "$line" = "helix_node_info{node=\"$n\",backend=\"cpu\",device=\"cpu\"} 1" ] ||
            fail "(d) node $n: '$line' (metrics: $(echo "$m" | grep helix_node_info))"
    fi
    echo "$m" | grep -qx "helix_node_mem_cap_bytes{node=\"$n\"} 268435456" ||
        fail "(d) node $n: mem cap: $(echo "$m" | grep "mem_cap_bytes{node=\"$n\"")"
done
kv=$(wait_metric 'helix_node_kv_total_bytes{node="a"}' -gt 0)
[ "$kv" -gt 0 ] && [ "$kv" -le 8000000 ] || fail "(d) KV total $kv not in (0, 8000000]"
txt=$(complete "In the beginning" 8)
[ -n "$txt" ] || fail "(d) empty completion"
echo "(d) ok: /metrics: $(echo "$m" | grep '^helix_node_info{node="a"'), KV $kv bytes; text '$txt'"

# (e) restart b with a cap below the weights of layers [3, 6)
kill -9 "$(cat "$WORK/pid.b")"
WORKER_EXTRA="--device $dev --mem-bytes 1M" worker_start b
bp=$(cat "$WORK/pid.b")
i=0
while kill -0 "$bp" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 300 ] && fail "(e) the capped worker did not exit in 30 s"
    sleep 0.1
done
wait "$bp"
rc=$?
[ $rc -eq 2 ] || fail "(e) worker b with --mem-bytes 1M: want exit 2, got $rc"
grep -q -- '--mem-bytes 1048576 cannot hold the weights of layers \[3, 6): [0-9]* bytes' \
    "$WORK/worker.b.log" || fail "(e) message: $(grep error "$WORK/worker.b.log" | tail -1)"
curl -sf "$URL/health" >/dev/null 2>&1 || curl -s "$URL/health" >/dev/null ||
    fail "(e) the coordinator went away"
echo "(e) ok: $(grep 'cannot hold' "$WORK/worker.b.log" | tail -1)"
