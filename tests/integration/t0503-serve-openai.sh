#!/bin/sh
# t0503: the official `openai` Python client (PyPI, pinned by scripts/pyenv.sh) against a real
# local cluster (`helix serve` + two `helix worker`s on 127.0.0.1, --api-key set): a streamed
# chat completion equals the non-streamed one; plain and streamed completions equal
# `helix generate`; models.list() lists the model; a wrong key raises AuthenticationError (401),
# no key is 401 too; an unknown model raises NotFoundError (404). The client is a hard
# requirement: if it cannot be installed or imported the test FAILS (never skips).
# Python: $HX_PYTHON, else build/venv/bin/python (created by scripts/pyenv.sh if missing).
. tests/serve/lib.sh
NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
export NO_PROXY no_proxy
CHECK=tests/serve/openai_check.py
PY=${HX_PYTHON:-build/venv/bin/python}
if [ -z "${HX_PYTHON:-}" ] && [ ! -x "$PY" ]; then
    timeout 300 scripts/pyenv.sh >"$WORK/pyenv.out" 2>"$WORK/pyenv.err" ||
        fail "scripts/pyenv.sh could not install the openai client: $(tail -3 "$WORK/pyenv.err")"
    PY=$(tail -1 "$WORK/pyenv.out")
fi
[ -x "$PY" ] || fail "no python at '$PY' (HX_PYTHON=${HX_PYTHON:-unset})"
# run CHECK ARGS...: one check of openai_check.py against the cluster, bounded by a timeout
run() {
    timeout 60 "$PY" "$CHECK" --base-url "$URL/v1" --api-key "$KEY" --timeout 30 "$@" \
        2>"$WORK/py.err" || fail "openai_check.py $1 (python client) failed:
$(cat "$WORK/py.err")"
}
timeout 60 "$PY" "$CHECK" version 2>"$WORK/py.err" ||
    fail "the official openai client is not usable with $PY: $(cat "$WORK/py.err")"
KEY=sk-t05-$$
SERVE_EXTRA="--api-key $KEY" HEALTH_AUTH=$KEY serve_start a:0:3 b:3:6
c=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/models")
[ "$c" = 401 ] || fail "no API key: got $c, want 401"
run chat-stream --prompt "In the beginning" --max-tokens 24
for p in "In the beginning" "And God said, Let there be light"; do
    "$HELIX" generate --model "$MODEL" --prompt "$p" -n 16 --threads 1 --json \
        >"$WORK/gen.json" 2>"$WORK/gen.err" || fail "helix generate: $(tail -3 "$WORK/gen.err")"
    run completion --prompt "$p" --max-tokens 16 --generate-json "$WORK/gen.json"
done
run models --expect-id kjv-llama-6m
run bad-key
run bad-model
echo "ok: the official openai python client works against helix serve"
