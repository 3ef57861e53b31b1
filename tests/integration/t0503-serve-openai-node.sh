#!/bin/sh
# t0503: the official `openai` npm package (driven by node) streams a chat completion from
# `helix serve`, gets a plain completion equal to `helix generate`, and lists the model; the
# API key is enforced. Skips (77) without node/npm or when the npm registry is unreachable.
. tests/serve/lib.sh
command -v node >/dev/null 2>&1 || skip "node not installed"
command -v npm >/dev/null 2>&1 || skip "npm not installed"
if [ ! -d tests/serve/node_modules/openai ]; then
    (cd tests/serve && timeout 180 npm install --no-save --no-audit --no-fund openai \
        > "$WORK/npm.log" 2>&1) || skip "npm install openai failed (registry unreachable?): $(tail -1 "$WORK/npm.log")"
fi
KEY=sk-t05-$$
SERVE_EXTRA="--api-key $KEY" HEALTH_AUTH=$KEY serve_start a:0:3 b:3:6
c=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/models")
[ "$c" = 401 ] || fail "no API key: got $c, want 401"
out=$(timeout 120 node tests/serve/chat_stream.mjs "$URL" "$KEY" 2>"$WORK/node.err") ||
    fail "node client failed: $(tail -5 "$WORK/node.err")"
printf "%s\n" "$out"
[ "$(printf "%s\n" "$out" | jq -r .finish)" = length ] || fail "finish_reason is not 'length'"
[ "$(printf "%s\n" "$out" | jq -r .chunks)" -ge 3 ] || fail "not streamed in chunks"
[ -n "$(printf "%s\n" "$out" | jq -r .text)" ] || fail "empty chat text"
[ "$(printf "%s\n" "$out" | jq -r .completion)" = "$(reference "In the beginning" 16)" ] ||
    fail "completion differs from helix generate"
[ "$(printf "%s\n" "$out" | jq -r '.usage.completion_tokens')" = 16 ] || fail "usage.completion_tokens"
[ "$(printf "%s\n" "$out" | jq -r '.usage.prompt_tokens')" -gt 0 ] || fail "usage.prompt_tokens"
printf "%s\n" "$out" | jq -e '.models | index("kjv-llama-6m")' >/dev/null || fail "model not listed"
echo "ok: openai npm package streams from helix serve"
