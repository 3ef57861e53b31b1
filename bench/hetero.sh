#!/bin/bash
# hetero.sh - Helix's claim measured on a real heterogeneous cluster on one host (issue 13):
# GPU workers sharing one card through CUDA MPS, each with its own SM share
# (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE) and memory cap (--mem-bytes), CPU workers pinned to
# disjoint cores with their own memory caps; links with the cluster file's bandwidth and
# latency through the transport's link shaper (HELIX_LINK_SHAPE; tests and benches only).
#
#   bench/hetero.sh OUT [STEP...]     STEP: prepare plan run table (default: all four)
#
#   prepare  the model (a Llama-2-7B shape with random bf16 weights, 13.5 GB: bigger than any
#            worker's cap), the MPS daemon, every worker profiled with `helix profile` as it
#            will run (device, SM share, cores, memory cap) - first each alone, then the GPU
#            workers all at once (are they independent?) - and the workload (Azure
#            conversation lengths scaled by 1/HETERO_LEN_SCALE, cut to HETERO_MAX_INPUT)
#   plan     the cluster file from the profiles, `helix plan` for every method, and
#            `helix simulate` of each placement (offline and online) on the same workload
#   run      bench_hetero per placement (maxflow IWRR) and per scheduler on the default
#            placement: offline decode tokens/s and online TTFT / TPOT
#   table    OUT/table.md: every figure next to the best baseline and the simulator
#
# Environment (defaults in brackets):
#   HETERO_CONFIG     gpu | cpu (the bundled model on CPU workers, a smoke test) [gpu]
#   HETERO_WORKERS    workers file: NAME DEVICE MPS_PERCENT CPUS THREADS MEM (bench_hetero.c)
#                     [gpu: a100-like 25 % 12G, l4-like 10 % 6G, t4-like 5 % 4G]
#   HETERO_MODEL      model directory [gpu: $HETERO_TMP/llama7b; cpu: models/kjv-llama-6m]
#   HETERO_TMP        work dir for the model [/tmp/hetero]
#   HETERO_LINK       bandwidth and latency of every link, as the cluster file writes them
#                     ["10000 * mbps|1 * MilliSec"]; HETERO_SHAPE=0 turns the shaper off
#   HETERO_METHODS    placements [auto,auto-maxflow,petals,swarm,separate,memory]
#   HETERO_SCHEDS     schedulers run on the first placement besides maxflow [swarm,random]
#   HETERO_INFLIGHT   offline requests in flight [32]      HETERO_RATE  online req/s [auto:
#                     half the simulator's offline decode rate of the first placement]
#   HETERO_WARMUP / HETERO_SECONDS   each phase's warm-up and window [8 / 20]
#   HETERO_PROFILE_S  `helix profile --max-seconds` [2]     HETERO_PLAN_S  plan time limit [20]
#   HELIX / BENCH_HETERO / BENCH_ENGINE   binaries [carry/bin/* if present, else build/release/*]
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:?usage: bench/hetero.sh OUT [prepare|plan|run|table ...]}
shift
STEPS=${*:-prepare plan run table}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
BIN=$ROOT/build/release
[ -x "$ROOT/carry/bin/helix" ] && BIN=$ROOT/carry/bin
HELIX=${HELIX:-$BIN/helix}
BENCH_HETERO=${BENCH_HETERO:-$BIN/bench_hetero}
BENCH_ENGINE=${BENCH_ENGINE:-$BIN/bench_engine}
CONFIG=${HETERO_CONFIG:-gpu}
TMPW=${HETERO_TMP:-/tmp/hetero}
LINK=${HETERO_LINK:-10000 * mbps|1 * MilliSec}
METHODS=${HETERO_METHODS:-auto,auto-maxflow,petals,swarm,separate,memory}
SCHEDS=${HETERO_SCHEDS:-swarm,random}
INFLIGHT=${HETERO_INFLIGHT:-32}
WARMUP=${HETERO_WARMUP:-8}
SECONDS_W=${HETERO_SECONDS:-20}
PROFILE_S=${HETERO_PROFILE_S:-2}
PLAN_S=${HETERO_PLAN_S:-20}
LEN_SCALE=${HETERO_LEN_SCALE:-4}
if [ "$CONFIG" = cpu ]; then
    MODEL=${HETERO_MODEL:-$ROOT/models/kjv-llama-6m}
    MAX_INPUT=${HETERO_MAX_INPUT:-128}
else
    MODEL=${HETERO_MODEL:-$TMPW/llama7b}
    MAX_INPUT=${HETERO_MAX_INPUT:-512}
fi
log() { echo "hetero: $*" >&2; }

write_default_workers() {
    if [ -n "${HETERO_WORKERS:-}" ]; then
        cp "$HETERO_WORKERS" "$OUT/workers.txt"
    elif [ "$CONFIG" = cpu ]; then
        # three CPU workers of unequal memory on a small machine (cores may be shared)
        cat > "$OUT/workers.txt" <<EOF
# NAME DEVICE MPS_PERCENT CPUS THREADS MEM
big cpu 0 - 1 40M
mid cpu 0 - 1 24M
small cpu 0 - 1 20M
EOF
    else
        # Helix's A100 / L4 / T4 in proportion: SM shares whose standalone bandwidths add up
        # to about the card's (an H100: 25 % 1821, 10 % 761, 5 % ~380 of ~3000 GB/s), memory
        # caps that do not hold the 13.5 GB model alone. A CPU server (e.g. "cpu8 cpu 0 0-7 8
        # 6G") can be added with HETERO_WORKERS: measured on the lent H100's host, a 7B layer
        # decodes at 7.1 ms (batch 1) to 42.8 ms (batch 16) on 8 cores, 25x the t4 worker, and
        # its profile takes ~340 s of the call, so the default leaves it out.
        cat > "$OUT/workers.txt" <<EOF
# NAME DEVICE MPS_PERCENT CPUS THREADS MEM
a100 cuda:0 25 12-15 1 12G
l4 cuda:0 10 12-15 1 6G
t4 cuda:0 5 12-15 1 4G
EOF
    fi
}

# name device mps cpus threads mem per line, comments dropped
workers() { grep -v '^#' "$OUT/workers.txt" | grep -v '^[[:space:]]*$'; }

# run a command as worker NAME would run: its MPS share and cores
as_worker() { # MPS CPUS cmd...
    local mps=$1 cpus=$2
    shift 2
    local pre=()
    [ "$cpus" != - ] && pre=(taskset -c "$cpus")
    if [ "$mps" != 0 ]; then
        CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=$mps "${pre[@]}" "$@"
    else
        env -u CUDA_MPS_ACTIVE_THREAD_PERCENTAGE "${pre[@]}" "$@"
    fi
}

mps_start() {
    workers | awk '$3 != 0 {f=1} END {exit !f}' || return 0
    if ! command -v nvidia-cuda-mps-control > /dev/null; then
        log "no nvidia-cuda-mps-control: GPU workers would time-slice, not share"; return 1
    fi
    export CUDA_MPS_PIPE_DIRECTORY=$TMPW/mps-pipe CUDA_MPS_LOG_DIRECTORY=$TMPW/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if ! echo get_server_list | nvidia-cuda-mps-control > /dev/null 2>&1; then
        nvidia-cuda-mps-control -d || { log "MPS daemon did not start"; return 1; }
        trap 'echo quit | nvidia-cuda-mps-control > /dev/null 2>&1' EXIT
    fi
    log "MPS daemon up (pipe $CUDA_MPS_PIPE_DIRECTORY)"
    echo "mps daemon: started; per-client CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" > "$OUT/mps.txt"
}

profile_one() { # OUTDIR name device mps cpus threads mem
    local dir=$1 name=$2 dev=$3 mps=$4 cpus=$5 thr=$6 mem=$7
    local args=(profile --model "$MODEL" --device "$dev" --type "$name" --out "$dir"
        --max-seconds "$PROFILE_S" --max-input-len "$MAX_INPUT" --quiet)
    # the trace's typical request, so the throughput model plans for the workload served
    read -r avg_in avg_out < "$OUT/traces/avg.txt"
    args+=(--avg-input-len "$avg_in" --avg-output-len "$avg_out")
    [ "$thr" != 0 ] && args+=(--threads "$thr")
    [ "$mem" != - ] && [ "$mem" != 0 ] && args+=(--mem-bytes "$mem")
    as_worker "$mps" "$cpus" "$HELIX" "${args[@]}"
}

step_prepare() {
    write_default_workers
    mkdir -p "$TMPW"
    if [ "$CONFIG" != cpu ] && [ ! -f "$MODEL/model.safetensors" ]; then
        log "writing the 7B-shaped model to $MODEL"
        mkdir -p "$MODEL"
        "$BENCH_ENGINE" --write-only --model-dir "$MODEL" >&2 || return 1
    fi
    mps_start || return 1
    # the workload: scaled Azure conversation lengths, the same table for simulator and bench
    mkdir -p "$OUT/traces"
    cp "$ROOT/data/traces/azure_conv_arrivals.csv" "$OUT/traces/"
    awk -F, -v s="$LEN_SCALE" -v m="$MAX_INPUT" '/^[0-9]/ {
            i = int($1 / s); o = int($2 / s); if (i < 1) i = 1; if (i > m) i = m;
            if (o < 1) o = 1; print i "," o }' \
        "$ROOT/data/traces/azure_conv_lengths.csv" > "$OUT/traces/azure_conv_lengths.csv"
    awk -F, '{ i += $1; o += $2; n++ } END { printf "%d %d\n", i / n + 0.5, o / n + 0.5 }' \
        "$OUT/traces/azure_conv_lengths.csv" > "$OUT/traces/avg.txt"
    log "trace lengths: average input/output $(cat "$OUT/traces/avg.txt")"
    rm -rf "$OUT/profile" "$OUT/together"
    log "profiling every worker alone"
    while read -r name dev mps cpus thr mem; do
        local t0=$SECONDS
        profile_one "$OUT/profile" "$name" "$dev" "$mps" "$cpus" "$thr" "$mem" \
            2> "$OUT/profile-$name.log" || { log "profile $name failed:"; tail -3 "$OUT/profile-$name.log" >&2; return 1; }
        log "  $name ($dev mps=$mps cpus=$cpus mem=$mem): $((SECONDS - t0)) s"
    done < <(workers)
    if workers | awk '$3 != 0 {n++} END {exit !(n > 1)}'; then
        log "profiling the GPU workers all at once (independence)"
        local pids=()
        while read -r name dev mps cpus thr mem; do
            [ "$mps" = 0 ] && continue
            profile_one "$OUT/together/$name" "$name" "$dev" "$mps" "$cpus" "$thr" "$mem" \
                2> "$OUT/together-$name.log" &
            pids+=($!)
        done < <(workers)
        for p in "${pids[@]}"; do wait "$p"; done
    fi
}

step_plan() {
    local prof
    prof=$(ls "$OUT"/profile/*.ini | head -1)
    [ -f "$prof" ] || { log "no profile in $OUT/profile (run prepare)"; return 1; }
    "$PY" - "$OUT" "$LINK" <<'PYEOF' || return 1
import sys
out, link = sys.argv[1], sys.argv[2]
bw, lat = link.split("|")
names, types = [], []
for line in open(out + "/workers.txt"):
    f = line.split()
    if not f or f[0].startswith("#"):
        continue
    names.append(f[0])
n = len(names)
units = {"kbps": 1e3, "mbps": 1e6, "gbps": 1e9, "MilliSec": 1e-3, "Sec": 1.0}
def value(s):
    a, u = [x.strip() for x in s.split("*")]
    return float(a) * units[u]
s = ["[NodeNames]", "total_compute_nodes=%d" % n, "", "[SourceNode]",
     "connected_nodes=[%s]" % ", ".join(map(str, range(n))), "", "[SinkNode]",
     "connected_nodes=[%s]" % ", ".join(map(str, range(n))), ""]
for i, nm in enumerate(names):
    others = ", ".join(str(j) for j in range(n) if j != i)
    s += ["[ComputeNode-%d]" % i, "type=%s" % nm,
          "connected_nodes=['source'%s, 'sink']" % (", " + others if others else ""), ""]
def lk(a, b):
    return ["[Link-%s-%s]" % (a, b), "bandwidth=%s" % bw.strip(), "latency=%s" % lat.strip(), ""]
for i in range(n):
    s += lk("source", i) + lk(i, "sink")
    for j in range(i + 1, n):
        s += lk(i, j)
open(out + "/cluster.ini", "w").write("\n".join(s))
# the shaper's view of the same links, by worker name (docs/serving.md, link shaping)
b, l = value(bw), value(lat)
sh = ["# FROM TO BANDWIDTH(bytes/s) LATENCY(s), from cluster.ini"]
for i, a in enumerate(names):
    sh.append("coordinator %s %.0f %g" % (a, b, l))
    sh.append("%s coordinator %.0f %g" % (a, b, l))
    for j, c in enumerate(names):
        if i != j:
            sh.append("%s %s %.0f %g" % (a, c, b, l))
open(out + "/links.shape", "w").write("\n".join(sh) + "\n")
PYEOF
    mkdir -p "$OUT/plans" "$OUT/sim"
    local mp=$OUT/profile/machine_profiles.ini
    IFS=, read -r -a ms <<< "$METHODS"
    for m in "${ms[@]}"; do
        local args=(plan --model "$prof" --cluster "$OUT/cluster.ini" --machine-profiles "$mp"
            --out "$OUT/plans/$m" --traces "$OUT/traces" --time-limit "$PLAN_S" -q)
        case $m in
        auto) args+=(--method auto) ;;
        auto-maxflow) args+=(--method auto --objective maxflow) ;;
        *) args+=(--method "$m") ;;
        esac
        if ! "$HELIX" "${args[@]}" > "$OUT/plans/$m.log" 2>&1; then
            log "plan $m failed: $(tail -1 "$OUT/plans/$m.log")"; continue
        fi
        log "plan $m: $(grep -m1 -i 'max-flow\|objective' "$OUT/plans/$m.log" | cut -c1-100)"
    done
    local first=${ms[0]}
    IFS=, read -r -a ss <<< "maxflow,$SCHEDS"
    for m in "${ms[@]}"; do
        [ -f "$OUT/plans/$m/placement.ini" ] || continue
        for s in "${ss[@]}"; do
            [ "$s" != maxflow ] && [ "$m" != "$first" ] && continue
            "$HELIX" simulate --model "$prof" --plan "$OUT/plans/$m" --traces "$OUT/traces" \
                --scheduler "$s" --mode offline --initial-queries "$INFLIGHT" --warmup 60 \
                --measure 300 --json -q > "$OUT/sim/$m-$s-offline.json" 2> "$OUT/sim/$m-$s.log" ||
                log "simulate $m $s offline failed: $(tail -1 "$OUT/sim/$m-$s.log")"
        done
    done
    # the online rate: half what the simulator says the first placement serves offline
    local rate=${HETERO_RATE:-}
    if [ -z "$rate" ]; then
        rate=$("$PY" - "$OUT" "$first" <<'PYEOF'
import json, sys
out, first = sys.argv[1], sys.argv[2]
try:
    j = json.load(open("%s/sim/%s-maxflow-offline.json" % (out, first)))
    tput = j["decode_throughput"]
except Exception:
    tput = 0
ls = [tuple(map(int, l.split(","))) for l in open(out + "/traces/azure_conv_lengths.csv")]
avg_out = sum(o for _, o in ls) / len(ls)
print("%.3f" % max(0.05, 0.5 * tput / avg_out))
PYEOF
)
    fi
    echo "$rate" > "$OUT/online_rate.txt"
    local tok_s
    tok_s=$("$PY" -c "
import sys
ls=[tuple(map(int,l.split(','))) for l in open('$OUT/traces/azure_conv_lengths.csv')]
print('%.3f' % ($rate * sum(a+b for a,b in ls)/len(ls)))")
    for m in "${ms[@]}"; do
        [ -f "$OUT/plans/$m/placement.ini" ] || continue
        for s in "${ss[@]}"; do
            [ "$s" != maxflow ] && [ "$m" != "$first" ] && continue
            "$HELIX" simulate --model "$prof" --plan "$OUT/plans/$m" --traces "$OUT/traces" \
                --scheduler "$s" --mode online --rate "$tok_s" --duration 300 --json -q \
                > "$OUT/sim/$m-$s-online.json" 2>> "$OUT/sim/$m-$s.log" ||
                log "simulate $m $s online failed: $(tail -1 "$OUT/sim/$m-$s.log")"
        done
    done
    log "online rate $rate req/s ($tok_s tokens/s of the trace)"
}

step_run() {
    local prof
    prof=$(ls "$OUT"/profile/*.ini | head -1)
    if [ "$CONFIG" != cpu ] && [ ! -f "$MODEL/model.safetensors" ]; then # a fresh machine
        log "writing the 7B-shaped model to $MODEL"
        mkdir -p "$MODEL"
        "$BENCH_ENGINE" --write-only --model-dir "$MODEL" >&2 || return 1
    fi
    mps_start || return 1
    if [ "${HETERO_SHAPE:-1}" = 1 ] && [ -f "$OUT/links.shape" ]; then
        export HELIX_LINK_SHAPE=$OUT/links.shape
    fi
    local rate
    rate=$(cat "$OUT/online_rate.txt" 2> /dev/null || echo 0)
    mkdir -p "$OUT/runs" "$OUT/logs"
    IFS=, read -r -a ms <<< "$METHODS"
    IFS=, read -r -a ss <<< "maxflow,$SCHEDS"
    local first=${ms[0]}
    for m in "${ms[@]}"; do
        [ -f "$OUT/plans/$m/placement.ini" ] || continue
        for s in "${ss[@]}"; do
            [ "$s" != maxflow ] && [ "$m" != "$first" ] && continue
            if grep -q '^offline_tokens_per_s' "$OUT/runs/$m-$s.txt" 2> /dev/null; then
                log "run $m $s: done in an earlier call, kept"; continue
            fi
            local t0=$SECONDS
            rm -f "$OUT"/logs/worker-*.log
            "$BENCH_HETERO" --helix "$HELIX" --model "$MODEL" --cluster "$OUT/cluster.ini" \
                --plan "$OUT/plans/$m" --model-profile "$prof" \
                --machine-profiles "$OUT/profile/machine_profiles.ini" \
                --workers "$OUT/workers.txt" --lengths "$OUT/traces/azure_conv_lengths.csv" \
                --sched "$s" --offline "$INFLIGHT" --online "$rate" --warmup "$WARMUP" \
                --seconds "$SECONDS_W" --max-input "$MAX_INPUT" --log-dir "$OUT/logs" \
                > "$OUT/runs/$m-$s.txt" 2> "$OUT/runs/$m-$s.err"
            local rc=$?
            mkdir -p "$OUT/logs/$m-$s" && mv "$OUT"/logs/worker-*.log "$OUT/logs/$m-$s/" 2> /dev/null
            log "run $m $s: exit $rc, $((SECONDS - t0)) s: $(grep -E '^(offline_tokens_per_s|online_tpot_p50_s)' "$OUT/runs/$m-$s.txt" | tr '\n' ' ')"
            [ $rc -ne 0 ] && tail -3 "$OUT/runs/$m-$s.err" >&2
        done
    done
}

step_table() {
    "$PY" "$ROOT/bench/hetero_table.py" "$OUT" "$METHODS" "$SCHEDS" | tee "$OUT/table.md"
}

for s in $STEPS; do
    case $s in
    prepare) step_prepare || { log "prepare failed"; exit 1; } ;;
    plan) step_plan || { log "plan failed"; exit 1; } ;;
    run) step_run || { log "run failed"; exit 1; } ;;
    table) step_table ;;
    *) log "unknown step $s"; exit 2 ;;
    esac
done
