#!/usr/bin/env bash
# gpu_bench.sh - the GPU benchmark, the one script to run on the GPU host (from anywhere; it
# works in the repository root): helix's bench_engine --device cuda on a random
# Llama-2-7B-shaped bf16 model, then the peers on the same weights (Hugging Face transformers,
# llama.cpp CUDA), then one table of helix against both. See bench/PEERS.md.
#
#   bench/gpu_bench.sh OUTDIR          run everything, results and logs in OUTDIR
#   bench/gpu_bench.sh --table OUTDIR  only print the table of what OUTDIR holds
#
# OUTDIR gets: gpu.txt (nvidia-smi), helix.txt, hf.json + hf.log, gguf.log, llamacpp.json +
# llamacpp.log, summary.md and summary.json (the table), times.txt (seconds per step).
#
# Environment (defaults in brackets):
#   GPU_BENCH_TMP       work dir for the model (13.5 GB) and its GGUF (13.5 GB) [$TMPDIR/gpu_bench]
#   GPU_BENCH_HELIX     1: run helix's bench_engine; 0: skip it (the model is still written) [1]
#   GPU_BENCH_PEERS     peers to run, comma-separated: hf, llamacpp; empty or none: none [hf,llamacpp]
#   GPU_BENCH_BATCHES / GPU_BENCH_CTX / GPU_BENCH_PREFILL   the cases [1,16,64 / 512,2048 / 512,2048]
#   GPU_BENCH_STEPS / GPU_BENCH_WARMUP   timed / warm-up decode steps, all engines [10 / 3]
#   GPU_BENCH_HF_ATTN   transformers attention implementations (the first is the anchor) [eager]
#   GPU_BENCH_PROFILE   1: bench_engine --profile (the CUDA backend's per-op table) [1]
#   GPU_BENCH_BUDGET    seconds for the whole run; each step gets at most what is left [530]
#   GPU_BENCH_T_HELIX / _T_HF / _T_GGUF / _T_LLAMACPP   each step's own limit [240 / 170 / 150 / 200]
#   HELIX_CARRY         the carried helix build: bin/bench_engine, lib/ [<repo>/carry; else
#                       <repo>/carrypk/carry.tar.xz unpacked into GPU_BENCH_TMP]
#   BENCH_ENGINE        the bench_engine binary [$HELIX_CARRY/bin/bench_engine]
#   GPU_BENCH_HF_ARGS / GPU_BENCH_LLAMACPP_ARGS   more options for a peer (e.g. --device cpu /
#                       --n-gpu-layers 0 to test this script on a machine without a GPU) []
#   PEERS               the peers' carry folder (llama.cpp libs + python) [<repo>/build/peers]
#   PYTHON              [python3]
# Every step runs under `timeout` and the run goes on when one fails; the table shows what
# each step left behind.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}

table() { # OUTDIR
    "$PY" - "$1" <<'PYEOF'
import json, os, re, sys

out = sys.argv[1]
def load_json(name):
    p = os.path.join(out, name)
    try:
        with open(p) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except Exception as e:
        sys.stderr.write("gpu_bench: %s: %s\n" % (p, e))
        return None

hx = {"decode": {}, "prefill": {}, "keys": {}}
try:
    text = open(os.path.join(out, "helix.txt")).read()
except FileNotFoundError:
    text = ""
num = r"([-+0-9.eE]+|nan|inf)"
for line in text.splitlines():
    m = re.match(r"decode_b(\d+)_ctx(\d+)_ms %s tok_s %s floor_ms %s ratio %s" % (num, num, num, num), line)
    if m:
        b, c = int(m.group(1)), int(m.group(2))
        hx["decode"][(b, c)] = {"ms": float(m.group(3)), "tok_s": float(m.group(4)),
                                "floor_ms": float(m.group(5)), "ratio": float(m.group(6))}
        continue
    m = re.match(r"decode_b(\d+)_ctx(\d+) (skipped|failed) \((.*)\)$", line)
    if m:
        hx["decode"][(int(m.group(1)), int(m.group(2)))] = {"error": "%s (%s)" % (m.group(3), m.group(4))}
        continue
    m = re.match(r"prefill_(\d+)_ms %s tok_s %s TFLOPs %s gemm_frac %s" % (num, num, num, num), line)
    if m:
        hx["prefill"][int(m.group(1))] = {"ms": float(m.group(2)), "tok_s": float(m.group(3)),
                                          "tflops": float(m.group(4)), "gemm_frac": float(m.group(5))}
        continue
    m = re.match(r"prefill_(\d+) (skipped|failed) \((.*)\)$", line)
    if m:
        hx["prefill"][int(m.group(1))] = {"error": "%s (%s)" % (m.group(2), m.group(3))}
        continue
    m = re.match(r"([A-Za-z][A-Za-z0-9_]*) (.*)$", line)
    if m and not line.startswith(("decode_", "prefill_")):
        hx["keys"][m.group(1)] = m.group(2)

def first_float(key):
    v = hx["keys"].get(key)
    if v is None:
        return None
    m = re.match(num, v)
    return float(m.group(1)) if m else None

bw = first_float("mem_read_bandwidth_GBps")          # GB/s, the GPU's, measured by helix
gemm = next((first_float(k) for k in hx["keys"] if re.match(r"gemm_\w+_TFLOPs$", k)), None)
wbytes = first_float("llama7b_weight_bytes")
kv_tok = first_float("kv_bytes_per_token")
kv_elem = None
m = re.search(r"\(([0-9.]+) bytes per element\)", hx["keys"].get("kv_bytes_per_token", ""))
if m:
    kv_elem = float(m.group(1))
kv_tok16 = kv_tok / kv_elem * 2 if kv_tok and kv_elem else None  # the peers' bf16/f16 KV

peers = []
for name, fname in (("HF", "hf.json"), ("llama.cpp", "llamacpp.json")):
    j = load_json(fname)
    if j is None:
        continue
    d = {(int(r["batch"]), int(r["ctx"])): r for r in j.get("decode", []) if "batch" in r}
    p = {int(r["tokens"]): r for r in j.get("prefill", []) if "tokens" in r}
    peers.append((name, j, d, p))

def peer_floor_ms(b, c):
    if not (bw and wbytes and kv_tok16):
        return None
    return (wbytes + b * c * kv_tok16) / (bw * 1e9) * 1e3

def fmt(x, f="%.2f"):
    return "-" if x is None else f % x

cases = sorted(set(hx["decode"]) | {k for _, _, d, _ in peers for k in d}, key=lambda k: (k[1], k[0]))
pre = sorted(set(hx["prefill"]) | {k for _, _, _, p in peers for k in p})
lines = []
say = lines.append
say("# GPU bench: helix vs peers (%s)" % hx["keys"].get("gpu_name", "GPU unknown"))
say("")
say("anchors (measured by helix's bench_engine in the same run): read bandwidth %s GB/s, "
    "GEMM %s TFLOP/s; weights read per step %s GB; KV %s bytes/token (helix), %s (peers, 16-bit)"
    % (fmt(bw, "%.0f"), fmt(gemm, "%.1f"), fmt(wbytes and wbytes / 1e9), fmt(kv_tok, "%.0f"), fmt(kv_tok16, "%.0f")))
for name, j, _, _ in peers:
    ver = j.get("version", "")
    if isinstance(ver, dict):
        ver = ", ".join("%s %s" % (k, str(v)[:12]) for k, v in ver.items())
    say("%s: %s %s%s" % (name, j.get("peer", ""), ver,
                         ", flash_attn %s" % j["flash_attn"] if j.get("flash_attn") is not None else ""))
say("")
hdr = ["batch", "ctx", "helix ms", "helix tok/s", "helix x floor"]
for name, _, _, _ in peers:
    hdr += ["%s ms" % name, "%s tok/s" % name, "%s x floor" % name, "helix/%s" % name]
say("| " + " | ".join(hdr) + " |")
say("|" + "---|" * len(hdr))
summary = {"anchors": {"read_GBps": bw, "gemm_bf16_TFLOPs": gemm, "weight_bytes": wbytes,
                       "kv_bytes_per_token": kv_tok}, "decode": [], "prefill": []}
for (b, c) in cases:
    h = hx["decode"].get((b, c), {})
    row = [str(b), str(c)]
    if "ms" in h:
        row += [fmt(h["ms"]), fmt(h["tok_s"], "%.1f"), fmt(h["ratio"])]
    else:
        row += [h.get("error", "-")[:40], "-", "-"]
    rec = {"batch": b, "ctx": c, "helix": h}
    for name, _, d, _ in peers:
        r = d.get((b, c), {})
        ms = r.get("ms")
        tok = r.get("tok_s") or (b * 1000.0 / ms if ms else None)
        fl = peer_floor_ms(b, c)
        ratio = h["tok_s"] / tok if ("tok_s" in h and tok) else None
        row += [fmt(ms) if ms else (r.get("error") or "-")[:30], fmt(tok, "%.1f"),
                fmt(ms / fl if ms and fl else None), fmt(ratio) + ("x" if ratio else "")]
        rec[name] = {"ms": ms, "tok_s": tok, "x_floor": ms / fl if ms and fl else None,
                     "helix_over_peer": ratio, "error": r.get("error")}
    summary["decode"].append(rec)
    say("| " + " | ".join(row) + " |")
say("")
hdr = ["prefill tokens", "helix ms", "helix tok/s", "helix of GEMM"]
for name, _, _, _ in peers:
    hdr += ["%s ms" % name, "%s tok/s" % name, "helix/%s" % name]
say("| " + " | ".join(hdr) + " |")
say("|" + "---|" * len(hdr))
for n in pre:
    h = hx["prefill"].get(n, {})
    row = [str(n)]
    if "ms" in h:
        row += [fmt(h["ms"], "%.1f"), fmt(h["tok_s"], "%.0f"), fmt(h["gemm_frac"])]
    else:
        row += [h.get("error", "-")[:40], "-", "-"]
    rec = {"tokens": n, "helix": h}
    for name, _, _, p in peers:
        r = p.get(n, {})
        ms = r.get("ms")
        tok = n * 1000.0 / ms if ms else None
        ratio = h["tok_s"] / tok if ("tok_s" in h and tok) else None
        row += [fmt(ms, "%.1f") if ms else (r.get("error") or "-")[:30], fmt(tok, "%.0f"),
                fmt(ratio) + ("x" if ratio else "")]
        rec[name] = {"ms": ms, "tok_s": tok, "helix_over_peer": ratio, "error": r.get("error")}
    summary["prefill"].append(rec)
    say("| " + " | ".join(row) + " |")
say("")
mem = ["helix peak allocations %s MB, device used (max) %s MB" %
       (hx["keys"].get("peak_alloc_MB", "-").split(" ")[0], hx["keys"].get("device_used_max_MB", "-").split(" ")[0])]
for name, j, _, _ in peers:
    pk = j.get("peak_mem_bytes")
    mem.append("%s peak %s MB" % (name, fmt(pk / 1e6 if pk else None, "%.0f")))
say("memory: " + "; ".join(mem))
say("x floor: ms per step over (weights + the KV bytes that step reads) / helix's measured read "
    "bandwidth; helix/peer: helix tok/s over the peer's (> 1: helix faster)")
text = "\n".join(lines) + "\n"
sys.stdout.write(text)
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write(text)
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
PYEOF
}

if [ "${1:-}" = "--table" ]; then
    [ $# -eq 2 ] || { echo "usage: bench/gpu_bench.sh --table OUTDIR" >&2; exit 2; }
    [ -d "$2" ] || { echo "gpu_bench: no directory $2" >&2; exit 1; }
    table "$2"
    exit $?
fi
[ $# -eq 1 ] || { echo "usage: bench/gpu_bench.sh OUTDIR | --table OUTDIR" >&2; exit 2; }
OUT=$1
mkdir -p "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)
cd "$ROOT" || exit 1

WORK=${GPU_BENCH_TMP:-${TMPDIR:-/tmp}/gpu_bench}
mkdir -p "$WORK" || exit 1
M=$WORK/llama7b
GGUF=$WORK/llama7b.gguf
B=${GPU_BENCH_BATCHES:-1,16,64}
C=${GPU_BENCH_CTX:-512,2048}
P=${GPU_BENCH_PREFILL:-512,2048}
STEPS=${GPU_BENCH_STEPS:-10}
WARM=${GPU_BENCH_WARMUP:-3}
PEERS_RUN=,${GPU_BENCH_PEERS-hf,llamacpp},
PEERS=${PEERS:-$ROOT/build/peers}
BUDGET=${GPU_BENCH_BUDGET:-530}
START=$SECONDS
: >"$OUT/times.txt"

# limit_for DEFAULT: the step's own limit, cut to what is left of the budget (at least 10 s)
limit_for() {
    local left=$((BUDGET - (SECONDS - START)))
    local t=$1
    [ "$left" -lt "$t" ] && t=$left
    [ "$t" -lt 10 ] && t=10
    echo "$t"
}
# step NAME DEFAULT_LIMIT CMD...: run under timeout, note its status and time, never fail
step() {
    local name=$1 lim t0 rc
    lim=$(limit_for "$2")
    shift 2
    echo "== $name (limit ${lim}s, $((SECONDS - START))s into the run)"
    t0=$SECONDS
    timeout -k 15 "$lim" "$@"
    rc=$?
    [ $rc -eq 124 ] && echo "== $name: timed out after ${lim}s"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "== $name: failed (exit $rc)"
    echo "$name $((SECONDS - t0)) s, exit $rc" >>"$OUT/times.txt"
    return 0
}

{ nvidia-smi -L && nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version \
    --format=csv; } >"$OUT/gpu.txt" 2>&1 || echo "(nvidia-smi failed)" >>"$OUT/gpu.txt"
cat "$OUT/gpu.txt"
df -h "$WORK" | tail -1

# bash -c "$TEE" LOG CMD...: CMD's output to the console and LOG, CMD's exit status
# shellcheck disable=SC2016
TEE='"$@" 2>&1 | tee "$0"; exit "${PIPESTATUS[0]}"'
# shellcheck disable=SC2016
QUIET='"$@" >"$0" 2>&1; rc=$?; tail -3 "$0"; exit $rc'

# the carried helix build
CARRY=${HELIX_CARRY:-$ROOT/carry}
if [ ! -x "${BENCH_ENGINE:-$CARRY/bin/bench_engine}" ] && [ -z "${HELIX_CARRY:-}" ] &&
    [ -f "$ROOT/carrypk/carry.tar.xz" ]; then
    echo "unpacking carrypk/carry.tar.xz into $WORK"
    tar -xJf "$ROOT/carrypk/carry.tar.xz" -C "$WORK" && CARRY=$WORK/carry
fi
BENCH=${BENCH_ENGINE:-$CARRY/bin/bench_engine}
if [ ! -x "$BENCH" ]; then
    echo "gpu_bench: no bench_engine at $BENCH (scripts/carry.sh build/release-cuda carry)" >&2
    exit 1
fi
# helix's libraries for helix only (the peers' python must not load carry/lib's copies)
HX_LD=$CARRY/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# 1. helix (writes the model, or reuses it, and keeps it for the peers). The Llama-2
# tokenizer files that llama.cpp's converter needs travel in the peers' carry folder.
tok=()
[ -f "$PEERS/tokenizer/llama2/tokenizer.json" ] && tok=(--tokenizer "$PEERS/tokenizer/llama2")
if [ "${GPU_BENCH_HELIX:-1}" != 0 ]; then
    prof=()
    [ "${GPU_BENCH_PROFILE:-1}" != 0 ] && prof=(--profile)
    step helix "${GPU_BENCH_T_HELIX:-240}" bash -c "$TEE" \
        "$OUT/helix.txt" env LD_LIBRARY_PATH="$HX_LD" "$BENCH" --device cuda --model-dir "$M" --keep \
        --batches "$B" --ctx "$C" --prefill "$P" --steps "$STEPS" --warmup "$WARM" "${prof[@]}" "${tok[@]}"
else
    step model 120 env LD_LIBRARY_PATH="$HX_LD" "$BENCH" --write-only --model-dir "$M" "${tok[@]}"
fi

# 2. transformers
read -r -a hf_args <<<"${GPU_BENCH_HF_ARGS:-}"
read -r -a lc_args <<<"${GPU_BENCH_LLAMACPP_ARGS:-}"
if [[ $PEERS_RUN == *,hf,* ]]; then
    step hf "${GPU_BENCH_T_HF:-170}" bash -c "$TEE" \
        "$OUT/hf.log" "$PY" bench/peer_hf.py --model "$M" --json "$OUT/hf.json" \
        --attn "${GPU_BENCH_HF_ATTN:-eager}" --batches "$B" --ctx "$C" --prefill "$P" \
        --steps "$STEPS" --warmup "$WARM" "${hf_args[@]}"
fi

# 3. llama.cpp: the same weights as a bf16 GGUF (converted once; reused while newer than the model)
if [[ $PEERS_RUN == *,llamacpp,* ]]; then
    if [ ! -s "$GGUF" ] || [ "$M/model.safetensors" -nt "$GGUF" ]; then
        rm -f "$GGUF"
        step gguf "${GPU_BENCH_T_GGUF:-150}" bash -c "$QUIET" \
            "$OUT/gguf.log" env PEERS="$PEERS" PYTHON="$PY" sh bench/peer_gguf.sh "$M" "$GGUF"
    fi
    if [ -s "$GGUF" ]; then
        lim=$(limit_for "${GPU_BENCH_T_LLAMACPP:-200}")
        step llamacpp "$lim" bash -c "$TEE" \
            "$OUT/llamacpp.log" env LD_LIBRARY_PATH="$PEERS/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            PYTHONPATH="$PEERS/python${PYTHONPATH:+:$PYTHONPATH}" "$PY" bench/peer_llamacpp.py \
            --gguf "$GGUF" --json "$OUT/llamacpp.json" --batches "$B" --ctx "$C" --prefill "$P" \
            --steps "$STEPS" --warmup "$WARM" --case-timeout $((lim / 3 > 30 ? lim / 3 : 30)) "${lc_args[@]}"
    else
        echo "== llamacpp: no GGUF (see $OUT/gguf.log)"
    fi
fi

echo "== total $((SECONDS - START)) s"
echo "total $((SECONDS - START)) s" >>"$OUT/times.txt"
table "$OUT"
