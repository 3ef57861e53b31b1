#!/bin/sh
# t0200-tokenizer.sh - helix's tokenizer against Hugging Face `tokenizers` (PyPI), the reference
# implementation of tokenizer.json, and its pre-tokenizer matchers against the real regexes:
#  1. tests/tokenizer/split_check.py: the GPT-2, Llama-3 and Qwen-2 matchers vs python `regex`;
#  2. tests/tokenizer/compare.py: four real tokenizer.json files - Llama 2, Llama 3 and Qwen 3
#     from ../shared/data/tokenizers, and the bundled models/kjv-llama-6m - plus tokenizers
#     derived from them with tokenizers' own API (added-token flags, other normalizers and
#     pre-tokenizers, templates): ids with and without add_special_tokens and with
#     encode_special_tokens, decode with and without skip_special_tokens, and the streaming
#     decoder chunk by chunk against DecodeStream, on several hundred strings each.
# The peers come from the venv of scripts/pyenv.sh: $HX_PYTHON if set, else build/venv/bin/python
# (created by running scripts/pyenv.sh if missing). If they cannot be installed or imported the
# test fails (exit 1) saying why; it never skips. Needs the build's libhelix.a (next to $HELIX).
set -u
HELIX=${HELIX:-build/debug/helix}
BUILD=$(dirname "$HELIX")
LIB=$BUILD/libhelix.a
SHARED=${HX_SHARED:-../shared}
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in tests/tokenizer
[ -f "$LIB" ] || { echo "t0200: $LIB not built"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

PY=${HX_PYTHON:-build/venv/bin/python}
if [ -z "${HX_PYTHON:-}" ] && [ ! -x "$PY" ]; then
    echo "t0200: $PY missing: running scripts/pyenv.sh"
    out=$(scripts/pyenv.sh) || { echo "t0200: FAIL: scripts/pyenv.sh failed"; exit 1; }
    PY=$(printf '%s\n' "$out" | tail -n 1)
fi
[ -x "$PY" ] || { echo "t0200: FAIL: no python at $PY"; exit 1; }
"$PY" -c 'import tokenizers, regex' 2>"$tmp/py.err" || {
    cat "$tmp/py.err"
    echo "t0200: FAIL: $PY cannot import tokenizers and regex (run scripts/pyenv.sh)"
    exit 1
}

for f in "$SHARED/data/tokenizers/llama2/tokenizer.json" \
    "$SHARED/data/tokenizers/llama3/tokenizer.json" \
    "$SHARED/data/tokenizers/qwen3/tokenizer.json" models/kjv-llama-6m/tokenizer.json; do
    [ -f "$f" ] || { echo "t0200: FAIL: $f missing (shared/ beside the clone?)"; exit 1; }
done

# Build the test-only driver against the library, with the library's sanitizer flags if any.
san=""
if nm "$LIB" 2>/dev/null | grep -q __asan_init; then
    san="-fsanitize=address,undefined"
elif nm "$LIB" 2>/dev/null | grep -q __tsan_init; then
    san="-fsanitize=thread"
fi
CC=${CC:-cc}
# shellcheck disable=SC2046,SC2086
$CC -std=c11 -O1 -g $san -D_POSIX_C_SOURCE=200809L -Isrc $(pkg-config --cflags libcjson) \
    tests/tokenizer/tok_dump.c "$LIB" $(pkg-config --libs libcjson) -lm -o "$tmp/tok_dump" ||
    { echo "t0200: FAIL: cannot build tests/tokenizer/tok_dump.c"; exit 1; }

# 1. pre-tokenizer regexes.
"$PY" tests/tokenizer/split_check.py "$tmp/tok_dump" ||
    { echo "t0200: FAIL: pre-tokenizer matchers differ from the regexes"; exit 1; }

# 2. the tokenizers.
"$PY" tests/tokenizer/compare.py "$tmp/tok_dump" "$tmp" \
    "llama2=$SHARED/data/tokenizers/llama2/tokenizer.json" \
    "llama3=$SHARED/data/tokenizers/llama3/tokenizer.json" \
    "qwen3=$SHARED/data/tokenizers/qwen3/tokenizer.json" \
    "kjv=models/kjv-llama-6m/tokenizer.json" ||
    { echo "t0200: FAIL: helix's tokenizer differs from Hugging Face tokenizers"; exit 1; }
echo "t0200: ok"
