#!/bin/bash
# hetero_session.sh - what one call on a lent GPU machine runs for bench/hetero.sh:
#   scripts/hetero_session.sh OUT STEP...       (STEP: prepare plan run table, as hetero.sh)
# unpacks carrypk/carry.tar.xz (scripts/carry.sh BUILD carry), puts its libraries on the path,
# optionally restores an earlier call's OUT (HETERO_RESTORE=all.tgz), runs the CUDA unit tests
# (HETERO_UNIT=1) and t0511 (HETERO_RUNLOCAL=1, the default), runs bench/hetero.sh OUT STEP... and packs OUT's small files into OUT/all.tgz (the call
# returns only a few files).
set -u
out=${1:?usage: hetero_session.sh OUT STEP...}
shift
mkdir -p "$out"
if [ ! -x carry/bin/helix ]; then
    tar -xJf carrypk/carry.tar.xz || { echo "hetero_session: no carry/"; exit 1; }
fi
export LD_LIBRARY_PATH=$PWD/carry/lib:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
nproc | sed 's/^/cores /' | tee -a "$out/gpu.txt"
mkdir -p "$out/h"
if [ -n "${HETERO_RESTORE:-}" ]; then # an earlier call's all.tgz: its profiles, plans, runs
    tar -xzf "$HETERO_RESTORE" -C "$out" h || { echo "hetero_session: cannot restore"; exit 1; }
fi
if [ "${HETERO_UNIT:-0}" = 1 ]; then # the GPU unit tests of this build
    timeout 240 carry/bin/test_runner engine_cuda > "$out/h/unit_cuda.txt" 2>&1
    echo "unit engine_cuda: exit $?"; tail -1 "$out/h/unit_cuda.txt"
fi
if [ "${HETERO_RUNLOCAL:-1}" = 1 ]; then # `helix run --local` with a GPU worker (t0511)
    HELIX=carry/bin/helix timeout 120 sh tests/integration/t0511-run-local-gpu.sh > "$out/h/t0511.txt" 2>&1
    echo "t0511: exit $?"; tail -2 "$out/h/t0511.txt"
fi
bench/hetero.sh "$out/h" "$@"
rc=$?
tar -czf "$out/all.tgz" -C "$out" h gpu.txt 2>/dev/null
exit $rc
