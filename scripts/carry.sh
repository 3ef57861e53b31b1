#!/bin/sh
# carry.sh - pack a build for a GPU machine that reaches no package registry:
#   scripts/carry.sh BUILD_DIR OUT_DIR      e.g. scripts/carry.sh build/release-cuda carry
# copies helix, test_runner and bench programs of BUILD_DIR into OUT_DIR/bin and every shared
# library they load that a stock Ubuntu 24.04 + CUDA machine does not have (the Debian packages
# helix links: ZeroMQ, CBC/CLP/CoinUtils, GLPK, OpenBLAS, libmicrohttpd, cJSON, inih and their
# own dependencies) into OUT_DIR/lib. glibc, libstdc++/libgcc and the CUDA runtime/driver
# libraries stay behind: the GPU machine has its own. Run there as
#   LD_LIBRARY_PATH=$PWD/OUT_DIR/lib OUT_DIR/bin/helix generate --device cuda ...
set -eu
[ $# -eq 2 ] || { echo "usage: scripts/carry.sh BUILD_DIR OUT_DIR" >&2; exit 2; }
b=$1; out=$2
mkdir -p "$out/bin" "$out/lib"
for f in "$b/helix" "$b/test_runner" "$b"/bench_*; do
    [ -f "$f" ] && [ -x "$f" ] && cp "$f" "$out/bin/"
done
[ -f "$out/bin/helix" ] || { echo "carry: $b/helix not built" >&2; exit 1; }
for f in "$out"/bin/*; do
    ldd "$f" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
    case $(basename "$lib") in
    libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*|\
    libcuda.so*|libcudart.so*|libcublas*.so*|libnvidia*|libresolv.so*) ;;
    *) cp -L "$lib" "$out/lib/" ;;
    esac
done
strip --strip-unneeded "$out"/lib/*.so* 2>/dev/null || true
du -sh "$out" | awk '{print "carry: " $1 " in " FILENAME}' FILENAME="$out"
