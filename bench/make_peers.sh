#!/bin/sh
# Assemble build/peers (the carry folder) from a llama.cpp build dir.
# usage: sh build/llamacpp/make_peers.sh BUILD_DIR   (run from the repo root)
set -eu
B=${1:?build dir}
SRC=build/llamacpp/llama_cpp_python-0.3.36
LC=$SRC/vendor/llama.cpp
P=build/peers
rm -rf "$P"; mkdir -p "$P/lib" "$P/python"
# libs under their sonames (what NEEDED names), plain files, no symlinks
for l in ggml-base ggml-cpu ggml-cuda ggml; do
  [ -f "$B/bin/lib$l.so.0" ] || continue
  cp -L "$B/bin/lib$l.so.0" "$P/lib/lib$l.so.0"
done
cp -L "$B/bin/libllama.so" "$P/lib/libllama.so"

# libgomp: not part of a stock Ubuntu 24.04 minimal image
cp -L "$(gcc -print-file-name=libgomp.so.1)" "$P/lib/libgomp.so.1"
strip --strip-unneeded "$P"/lib/*.so*
if command -v patchelf >/dev/null 2>&1; then
  for f in "$P"/lib/lib*.so*; do patchelf --set-rpath '$ORIGIN' "$f"; done
fi
# libggml-cuda.so.0 is ~39 MiB stripped (sm_90 SASS + host stubs): carried xz-compressed (~18 MiB);
# bench/peer_llamacpp.py unpacks it on first use (or: xz -dk build/peers/lib/libggml-cuda.so.0.xz)
if [ -f "$P/lib/libggml-cuda.so.0" ]; then
  ( cd "$P/lib" && sha256sum libggml-cuda.so.0 > libggml-cuda.so.0.sha256 && xz -T2 -9 libggml-cuda.so.0 )
fi
rm -f "$P/lib/libggml.so"
# pure python: low-level bindings (no server), gguf-py, converter + its local package
mkdir -p "$P/python/llama_cpp"
cp "$SRC"/llama_cpp/*.py "$SRC"/llama_cpp/py.typed "$P/python/llama_cpp/"
cp -r "$LC/gguf-py/gguf" "$P/python/gguf"
rm -rf "$P/python/gguf/scripts/gguf_editor_gui.py"
cp "$LC/convert_hf_to_gguf.py" "$P/python/"
cp -r "$LC/conversion" "$P/python/conversion"
# the Llama-2 tokenizer: bench_engine copies it next to the random weights (llama.cpp's
# converter reads tokenizer.json); the GPU host has no ../shared
T=../shared/data/tokenizers/llama2
if [ -f "$T/tokenizer.json" ]; then
  mkdir -p "$P/tokenizer/llama2"
  cp "$T/tokenizer.json" "$T/tokenizer_config.json" "$P/tokenizer/llama2/"
  chmod 644 "$P"/tokenizer/llama2/*
fi
find "$P" -name __pycache__ -prune -exec rm -rf {} +
( cd "$LC" && git log -1 --format='%H %cd' 2>/dev/null || true ) > "$P/LLAMA_CPP_COMMIT"
grep -m1 -o 'LLAMA_BUILD_NUMBER[^)]*' "$B/CMakeCache.txt" >> "$P/LLAMA_CPP_COMMIT" 2>/dev/null || true
du -sh "$P"; du -a "$P/lib" | sort -n
