#!/bin/bash
# gpu_session.sh - what one call on a lent GPU machine runs: the carried CUDA build's GPU tests,
# the device integration tests, then the benchmark; every log under OUT.
#   scripts/gpu_session.sh OUT [tests|bench|all] [bench args...]
# Expects carrypk/carry.tar.xz (scripts/carry.sh build/release-cuda carry, then
# tar -cJf carrypk/carry.tar.xz carry) in the repository root; the llama.cpp peer, where
# bench/gpu_bench.sh runs it, in build/peers.
set -u
out=${1:?usage: gpu_session.sh OUT [tests|bench|all] [bench args]}
what=${2:-all}
shift 2 2>/dev/null || shift $#
mkdir -p "$out"
if [ ! -x carry/bin/helix ]; then
    tar -xJf carrypk/carry.tar.xz || { echo "gpu_session: no carry/ (carrypk/carry.tar.xz)"; exit 1; }
fi
export LD_LIBRARY_PATH=$PWD/carry/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv \
    | tee "$out/gpu.txt"
if [ "$what" = tests ] || [ "$what" = all ]; then
    carry/bin/test_runner engine_cuda 2>&1 | tee "$out/tests_cuda.txt" | grep -E "^(ok|not ok|#)" \
        | cut -c1-200
    HELIX=carry/bin/helix sh tests/integration/t0509-device.sh 2>&1 | tee "$out/t0509.txt"
    if [ -f tests/integration/t0510-worker-device.sh ]; then
        HELIX=carry/bin/helix sh tests/integration/t0510-worker-device.sh > "$out/t0510.txt" 2>&1
        echo "t0510: exit $? (log in t0510.txt)"; tail -3 "$out/t0510.txt"
    fi
    carry/bin/helix generate --device cuda --prompt "In the beginning" -n 32 --json \
        > "$out/generate.json" 2>&1; tail -c 600 "$out/generate.json"; echo
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
    if [ -x bench/gpu_bench.sh ] && [ "${GPU_SESSION_PLAIN:-0}" = 0 ]; then
        bench/gpu_bench.sh "$out" "$@"
    else
        carry/bin/bench_engine --device cuda "$@" 2>&1 | tee "$out/bench_engine.txt"
    fi
fi
