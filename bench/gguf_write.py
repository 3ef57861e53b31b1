#!/usr/bin/env python3
"""gguf_write.py - write a Hugging Face LLaMA directory (config.json, model.safetensors in
BF16/F16/F32, tokenizer.json) as a GGUF file with llama.cpp's conventions, using gguf-py (llama.cpp's
own writer; it needs numpy): llama.* metadata, the tokenizer (byte-level BPE as "gpt2" with its
merges; SentencePiece-style BPE as "llama", score -id), the rows of each head of q_proj / k_proj
reordered for ggml's interleaved RoPE (as convert_hf_to_gguf.py's LlamaModel.permute), norms as F32,
matrices in their stored 16-bit type.

    usage: python3 bench/gguf_write.py MODEL_DIR OUT.gguf
    PYTHONPATH must reach gguf-py (the llama.cpp source's gguf-py folder).
"""
import json
import struct
import sys

import numpy as np
import gguf


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, t in hdr.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = (t["dtype"], t["shape"], data[b:e])
    return out


def as_f32(dtype, raw, shape):
    if dtype == "BF16":
        u = raw.view(np.uint16).astype(np.uint32) << 16
        return u.view(np.float32).reshape(shape)
    if dtype == "F16":
        return raw.view(np.float16).astype(np.float32).reshape(shape)
    return raw.view(np.float32).reshape(shape)


def permute(w, n_head):
    # HF rotate-half rows -> ggml interleaved pairs (convert_hf_to_gguf.py LlamaModel.permute)
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def main():
    src, out = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{src}/config.json"))
    tj = json.load(open(f"{src}/tokenizer.json"))
    n_head = cfg["num_attention_heads"]
    n_kv = cfg.get("num_key_value_heads", n_head)
    head_dim = cfg.get("head_dim", cfg["hidden_size"] // n_head)
    theta = cfg.get("rope_theta", cfg.get("rope_parameters", {}).get("rope_theta", 10000.0))
    w = gguf.GGUFWriter(out, "llama")
    w.add_name(src.rstrip("/").split("/")[-1])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_key_length(head_dim)
    w.add_value_length(head_dim)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(float(theta))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_vocab_size(cfg["vocab_size"])

    # tokenizer
    vocab = tj["model"]["vocab"]
    n_vocab = cfg["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    ttype = [gguf.TokenType.UNUSED] * n_vocab
    for t, i in vocab.items():
        if i < n_vocab:
            tokens[i] = t
            ttype[i] = gguf.TokenType.NORMAL
    for a in tj.get("added_tokens", []):
        if a["id"] < n_vocab:
            tokens[a["id"]] = a["content"]
            ttype[a["id"]] = gguf.TokenType.CONTROL if a.get("special") else gguf.TokenType.USER_DEFINED
    byte_level = json.dumps(tj.get("pre_tokenizer")).find("ByteLevel") >= 0
    if byte_level:
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt-2")
        merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
        w.add_token_merges(merges)
        w.add_token_list(tokens)
        w.add_token_types(ttype)
    else:
        w.add_tokenizer_model("llama")
        w.add_tokenizer_pre("default")
        for i, t in enumerate(tokens):
            if len(t) == 6 and t.startswith("<0x") and t.endswith(">"):
                ttype[i] = gguf.TokenType.BYTE
        w.add_token_list(tokens)
        w.add_token_scores([-float(i) for i in range(n_vocab)])
        w.add_token_types(ttype)
    bos, eos = cfg.get("bos_token_id"), cfg.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    if bos is not None:
        w.add_bos_token_id(bos)
        w.add_add_bos_token(True)
    if eos is not None:
        w.add_eos_token_id(eos)
    w.add_add_eos_token(False)

    st = read_safetensors(f"{src}/model.safetensors")
    ftype = None
    names = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
             "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
             "self_attn.o_proj.weight": "attn_output.weight",
             "post_attention_layernorm.weight": "ffn_norm.weight",
             "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
             "mlp.down_proj.weight": "ffn_down.weight"}

    def gname(n):
        if n == "model.embed_tokens.weight":
            return "token_embd.weight"
        if n == "model.norm.weight":
            return "output_norm.weight"
        if n == "lm_head.weight":
            return "output.weight"
        parts = n.split(".")
        return f"blk.{parts[2]}." + names[".".join(parts[3:])]

    order = ["model.embed_tokens.weight"]
    for l in range(cfg["num_hidden_layers"]):
        order += [f"model.layers.{l}.{k}" for k in names]
    order += ["model.norm.weight"] + (["lm_head.weight"] if "lm_head.weight" in st else [])
    for n in order:
        dtype, shape, raw = st[n]
        if len(shape) == 1:
            w.add_tensor(gname(n), np.ascontiguousarray(as_f32(dtype, raw, shape)))
            continue
        if dtype == "F32":
            arr = raw.view(np.float32).reshape(shape)
            qt = gguf.GGMLQuantizationType.F32
        else:
            arr = raw.view(np.uint16).reshape(shape)
            qt = gguf.GGMLQuantizationType.BF16 if dtype == "BF16" else gguf.GGMLQuantizationType.F16
            ftype = ftype or (gguf.LlamaFileType.MOSTLY_BF16 if dtype == "BF16" else gguf.LlamaFileType.MOSTLY_F16)
        if n.endswith("q_proj.weight"):
            arr = permute(arr, n_head)
        elif n.endswith("k_proj.weight"):
            arr = permute(arr, n_kv)
        if qt == gguf.GGMLQuantizationType.F32:
            w.add_tensor(gname(n), np.ascontiguousarray(arr))
        else:
            # raw 16-bit elements: gguf-py takes the byte shape for raw types
            w.add_tensor(gname(n), np.ascontiguousarray(arr).view(np.uint8), raw_dtype=qt)
    if ftype is not None:
        w.add_file_type(ftype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
