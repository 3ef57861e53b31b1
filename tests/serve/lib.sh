# lib.sh - shared helpers for tests/integration/t05*-serve-*.sh (sourced, POSIX sh).
#
# serve_start NAME:START:END ...   writes a cluster INI and a placement for those nodes into
#                                  $WORK, starts `helix serve` and one `helix worker` per node
#                                  (ports: random free ones on 127.0.0.1), waits for /health.
# worker_start NAME                (re)starts the worker NAME; its pid goes into $WORK/pid.NAME
#                                  ($WORKER_EXTRA: more `helix worker` options, e.g. --device;
#                                  $WORKER_KEYDIR: pass --key-file $WORKER_KEYDIR/NAME.key)
# Every process started here is recorded in $WORK/pids and killed (by pid) on exit.
set -u
HELIX=${HELIX:-build/debug/helix}
MODEL=${MODEL:-models/kjv-llama-6m}
TOKEN=t05-secret-$$
export HELIX_TOKEN=$TOKEN
WORK=$(mktemp -d)
: > "$WORK/pids"

skip() { echo "$*"; exit 77; }
fail() {
    echo "FAIL: $*"
    for f in "$WORK"/serve.log "$WORK"/worker.*.log; do
        [ -f "$f" ] && { echo "--- $f"; grep -v 'dropped malformed' "$f" | tail -25; }
    done
    echo "FAIL: $*" # again, last: the test runner shows only the end of the output
    exit 1
}

cleanup() {
    for p in $(cat "$WORK/pids" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    for p in $(cat "$WORK/pids" 2>/dev/null); do wait "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v curl >/dev/null 2>&1 || skip "curl not installed"
command -v jq >/dev/null 2>&1 || skip "jq not installed"
[ -x "$HELIX" ] || skip "no helix binary at $HELIX"
[ -d "$MODEL" ] || skip "model $MODEL missing"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + $(od -An -N2 -tu2 /dev/urandom) % 40000))
}

# serve_start [--sched S] NAME:START:END ...
serve_start() {
    sched=maxflow
    if [ "$1" = "--sched" ]; then sched=$2; shift 2; fi
    n=$#
    names=""
    {
        echo "[NodeNames]"; echo "total_compute_nodes=$n"; echo
        all=""; i=0; for _ in "$@"; do all="$all${all:+, }$i"; i=$((i + 1)); done
        echo "[SourceNode]"; echo "connected_nodes=[$all]"; echo
        echo "[SinkNode]"; echo "connected_nodes=[$all]"; echo
        i=0
        for _ in "$@"; do
            echo "[ComputeNode-$i]"; echo "type=T4"; echo "connected_nodes=['source', 'sink']"; echo
            i=$((i + 1))
        done
        i=0
        for _ in "$@"; do
            echo "[Link-source-$i]"; echo "bandwidth=1000 * mbps"; echo "latency=1 * MilliSec"; echo
            echo "[Link-$i-sink]"; echo "bandwidth=1000 * mbps"; echo "latency=1 * MilliSec"; echo
            i=$((i + 1))
        done
    } > "$WORK/cluster.ini"
    mkdir -p "$WORK/plan"
    { echo "[Settings]"; echo "offset=2"; echo; echo "[Solution]"; } > "$WORK/plan/placement.ini"
    i=0
    for spec in "$@"; do
        name=${spec%%:*}; rest=${spec#*:}; s=${rest%%:*}; e=${rest#*:}
        layers=""; l=$s; while [ "$l" -lt "$e" ]; do layers="$layers${layers:+, }$l"; l=$((l + 1)); done
        echo "compute_node_$((i + 2))=[$layers]" >> "$WORK/plan/placement.ini"
        names="$names${names:+,}$name"
        i=$((i + 1))
    done
    HTTP_PORT=$(free_port)
    WPORT=$(free_port)
    URL=http://127.0.0.1:$HTTP_PORT
    COORD=tcp://127.0.0.1:$WPORT
    HX_LOG=${HX_LOG:-info} "$HELIX" serve --cluster "$WORK/cluster.ini" --plan "$WORK/plan" \
        --model "$MODEL" --listen 127.0.0.1:$HTTP_PORT --workers "$COORD" --names "$names" \
        --sched "$sched" --dead-ms 3000 ${SERVE_EXTRA:-} >> "$WORK/serve.log" 2>&1 &
    echo $! >> "$WORK/pids"
    SERVE_PID=$!
    for spec in "$@"; do worker_start "${spec%%:*}"; done
    i=0
    while ! curl -sf ${HEALTH_AUTH:+-H "Authorization: Bearer $HEALTH_AUTH"} "$URL/health" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 600 ] && fail "the cluster did not become healthy in 60 s"
        kill -0 $SERVE_PID 2>/dev/null || fail "helix serve exited"
        sleep 0.1
    done
}

worker_start() {
    HX_LOG=${HX_LOG:-info} "$HELIX" worker --coordinator "$COORD" --name "$1" --threads 1 \
        --kv-bytes 8000000 ${WORKER_EXTRA:-} ${WORKER_KEYDIR:+--key-file "$WORKER_KEYDIR/$1.key"} \
        >> "$WORK/worker.$1.log" 2>&1 &
    echo $! >> "$WORK/pids"
    echo $! > "$WORK/pid.$1"
}

# wait_metric SERIES TEST VALUE: the value of SERIES (e.g. 'helix_node_tokens_total{node="a"}')
# once it passes `[ value TEST VALUE ]`, polling up to 5 s: /metrics is rendered every 250 ms
# (docs/serving.md), so work that just finished may not be in it yet. Prints the last value.
wait_metric() {
    v=0
    for _ in $(seq 1 50); do
        v=$(curl -sf "$URL/metrics" | awk -v k="$1" '$1 == k { print $2 }')
        v=${v:-0}
        [ "$v" "$2" "$3" ] && break
        sleep 0.1
    done
    echo "$v"
}

# complete PROMPT MAX_TOKENS -> the text of a greedy non-streaming completion
complete() {
    jq -n --arg p "$1" --argjson n "$2" '{model:"kjv-llama-6m",prompt:$p,max_tokens:$n,temperature:0}' |
        curl -sf "$URL/v1/completions" -H 'Content-Type: application/json' -d @- | jq -r '.choices[0].text'
}

# reference PROMPT MAX_TOKENS -> the greedy text of single-process `helix generate`
reference() {
    "$HELIX" generate --model "$MODEL" --prompt "$1" -n "$2" --threads 1 --json 2>/dev/null | jq -r '.text'
}

# stream PROMPT MAX_TOKENS OUTFILE: SSE streaming completion; OUTFILE gets the raw events
stream() {
    jq -n --arg p "$1" --argjson n "$2" \
        '{model:"kjv-llama-6m",prompt:$p,max_tokens:$n,temperature:0,stream:true}' |
        curl -sN "$URL/v1/completions" -H 'Content-Type: application/json' -d @- > "$3"
}

# sse_text FILE -> the concatenated text of an SSE completion stream
sse_text() {
    sed -n 's/^data: //p' "$1" | grep -v '^\[DONE\]' | jq -j 'select(.choices) | .choices[0].text // ""'
}
