#!/bin/sh
# pyenv.sh - the Python test peers, in a virtual environment under build/ (never the system
# Python): Hugging Face `tokenizers` (the reference for tokenizer.json, t0200), the official
# `openai` client (t0503) and `regex` (pre-tokenizer patterns, t0200). Idempotent: a no-op
# when build/venv already holds these exact versions. Called by `make test` / `make check`.
# Prints the venv's python path on the last line of stdout.
set -eu
cd "$(dirname "$0")/.."
VENV=${HX_VENV:-build/venv}
REQS="tokenizers==0.23.3 openai==3.63.0 regex==2026.12.2"
stamp="$VENV/.helix-reqs"
if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$REQS" ]; then
    echo "$VENV/bin/python"
    exit 0
fi
PY=$(command -v python3 || true)
[ -n "$PY" ] || { echo "pyenv: error: python3 not found" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
    echo "pyenv: creating $VENV" >&2
    "$PY" -m venv "$VENV" || {
        echo "pyenv: error: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
        exit 1
    }
fi
echo "pyenv: installing $REQS" >&2
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install -q --disable-pip-version-check $REQS >&2 || {
    echo "pyenv: error: pip could not install $REQS (is PyPI reachable?)" >&2
    exit 1
}
echo "$REQS" >"$stamp"
echo "$VENV/bin/python"
