#!/bin/bash
# hetero_session.sh - what one call on a lent GPU machine runs for bench/hetero.sh:
#   scripts/hetero_session.sh OUT STEP...       (STEP: prepare plan run table, as hetero.sh)
# unpacks carrypk/carry.tar.xz (scripts/carry.sh BUILD carry), puts its libraries on the path,
# runs bench/hetero.sh OUT STEP... and packs OUT's small files into OUT/all.tgz (the call
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
if [ "${HETERO_RUNLOCAL:-1}" = 1 ]; then # `helix run --local` with a GPU worker (t0511)
    HELIX=carry/bin/helix timeout 120 sh tests/integration/t0511-run-local-gpu.sh > "$out/h/t0511.txt" 2>&1
    echo "t0511: exit $?"; tail -2 "$out/h/t0511.txt"
fi
bench/hetero.sh "$out/h" "$@"
rc=$?
tar -czf "$out/all.tgz" -C "$out" h gpu.txt 2>/dev/null
exit $rc
