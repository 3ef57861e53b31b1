#!/bin/sh
# peer_gguf.sh - convert a Hugging Face LLaMA directory (as helix's bench writes it) to a bf16
# GGUF for the llama.cpp peer, with llama.cpp's own convert_hf_to_gguf.py from the carry folder.
#   usage: sh bench/peer_gguf.sh MODEL_DIR OUT.gguf
#   env:   PEERS (default: <repo>/build/peers), PYTHON (default: python3)
# helix's config.json has no "architectures" key (the converter needs it), so the conversion
# reads a temporary directory of symlinks with a completed config.json; MODEL_DIR is not touched.
set -eu
[ $# -eq 2 ] || { echo "usage: sh bench/peer_gguf.sh MODEL_DIR OUT.gguf" >&2; exit 2; }
MODEL=$1
OUT=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS=${PEERS:-$ROOT/build/peers}
PY=${PYTHON:-python3}
[ -f "$PEERS/python/convert_hf_to_gguf.py" ] || { echo "peer_gguf: no $PEERS/python/convert_hf_to_gguf.py" >&2; exit 1; }
[ -f "$MODEL/config.json" ] || { echo "peer_gguf: no $MODEL/config.json" >&2; exit 1; }
MODEL=$(cd "$MODEL" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/peer_gguf.XXXXXX")
trap 'rm -rf "$TMP"' EXIT INT TERM
for f in "$MODEL"/*; do
  [ "$(basename "$f")" = config.json ] || ln -s "$f" "$TMP/$(basename "$f")"
done
"$PY" - "$MODEL/config.json" "$TMP/config.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1]))
c.setdefault("architectures", ["LlamaForCausalLM"])
c.setdefault("model_type", "llama")
c.setdefault("torch_dtype", "bfloat16")
c.setdefault("bos_token_id", 1)
c.setdefault("eos_token_id", 2)
c.setdefault("hidden_act", "silu")
json.dump(c, open(sys.argv[2], "w"), indent=1)
PYEOF
PYTHONPATH="$PEERS/python${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" "$PEERS/python/convert_hf_to_gguf.py" "$TMP" --outtype bf16 --model-name "$(basename "$MODEL")" --outfile "$OUT"
ls -l "$OUT"
