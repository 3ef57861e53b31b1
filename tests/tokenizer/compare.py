#!/usr/bin/env python3
"""compare.py - helix's tokenizer against Hugging Face `tokenizers` (the reference
implementation of tokenizer.json), for tests/integration/t0200-tokenizer.sh.

    python compare.py TOK_DUMP WORKDIR NAME=TOKENIZER.json ...

For each tokenizer: every string of teststrings.all_strings(family) (family = NAME up to the
first '-') is encoded by `TOK_DUMP encode` (helix) and by tokenizers, and must give identical

  - ids with add_special_tokens=False        (helix: flags 0),
  - ids with add_special_tokens=True         (helix: ENG_TOK_ADD_BOS: the post-processor's
                                              template, e.g. Llama-2's BOS),
  - ids with encode_special_tokens=True      (helix: ENG_TOK_NO_SPECIAL),
  - decode(ids, skip_special_tokens=True) and decode(ids, skip_special_tokens=False) of the
    add_special_tokens=True ids,
  - the streaming decode (helix's eng_tok_stream, ids fed one at a time, SKIP_SPECIAL): helix
    promises the concatenation of its chunks equals decode(), which must also be what
    tokenizers.decoders.DecodeStream yields in all; and after every id, what helix has emitted
    so far must start with what DecodeStream has (helix emits each character as soon as its
    last byte is in; DecodeStream waits until the whole text decoded so far ends in a complete
    character, so it is sometimes later, never earlier);

then 150 random id sequences are decoded both ways (decode, decode_keep, stream concatenation).
Then derived tokenizers (VARIANTS below: added tokens with lstrip / rstrip / single_word /
normalized, other normalizers and pre-tokenizers, a BOS+EOS template), built with tokenizers'
own API and saved to WORKDIR, are checked the same way on a smaller set of strings.

Prints every mismatch (the first 20 in full), one summary line per tokenizer; exit 1 on any
mismatch or if helix refuses a file, 2 on usage errors.
"""
import json
import os
import random
import subprocess
import sys
import time

import teststrings

try:
    import tokenizers
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers import processors
    from tokenizers.decoders import DecodeStream
except ImportError as exc:  # the caller checks this first; be clear anyway
    print("compare: cannot import Hugging Face tokenizers: %s" % exc)
    sys.exit(1)

MAX_SHOWN = int(os.environ.get("HX_COMPARE_SHOW", "20"))
shown = 0


def show(msg):
    global shown
    shown += 1
    if shown <= MAX_SHOWN:
        print(msg)
    elif shown == MAX_SHOWN + 1:
        print("compare: (further mismatches counted, not shown)")


def run_dump(tok_dump, mode, path, items, workdir):
    inp = os.path.join(workdir, "in.json")
    with open(inp, "w", encoding="utf-8") as f:
        json.dump(items, f, ensure_ascii=False)
    p = subprocess.run([tok_dump, mode, path, inp], capture_output=True)
    if p.returncode != 0:
        return None, p.stderr.decode("utf-8", "replace").strip()
    lines = p.stdout.decode("utf-8").split("\n")
    return [json.loads(line) for line in lines[: len(items)]], None


def hf_stream(tk, ids):
    ds = DecodeStream(skip_special_tokens=True)
    out = []
    for i in ids:
        c = ds.step(tk, i)
        out.append(c if c is not None else "")
    return out


def check_encode(name, tk, strings, got):
    """Compare helix's encode lines with tokenizers; returns the number of bad strings."""
    bad = 0
    for s, g in zip(strings, got):
        problems = []
        if "error" in g:
            problems.append("helix error: %s" % g["error"])
        else:
            ids = tk.encode(s, add_special_tokens=False).ids
            ids_sp = tk.encode(s, add_special_tokens=True).ids
            tk.encode_special_tokens = True
            ids_ns = tk.encode(s, add_special_tokens=False).ids
            tk.encode_special_tokens = False
            for key, want in (("ids", ids), ("ids_special", ids_sp), ("ids_nosplit", ids_ns)):
                if g[key] != want:
                    problems.append("%s\n    want %s\n    got  %s" % (key, want, g[key]))
            problems += check_decodes(tk, ids_sp, g, True)
        if problems:
            bad += 1
            show("MISMATCH %s %s:\n  %s" % (name, json.dumps(s, ensure_ascii=False),
                                            "\n  ".join(problems)))
    return bad


def check_decodes(tk, ids, g, chunkwise):
    problems = []
    dec = tk.decode(ids, skip_special_tokens=True)
    keep = tk.decode(ids, skip_special_tokens=False)
    for key, want in (("decode", dec), ("decode_keep", keep)):
        if g[key] != want:
            problems.append("%s of %s\n    want %r\n    got  %r" % (key, ids, want, g[key]))
    chunks = g["stream"]
    if "".join(chunks) != dec:
        problems.append("stream of %s\n    want %r (decode)\n    got  %r" % (ids, dec, chunks))
    if chunkwise:
        ref = hf_stream(tk, ids)
        if "".join(ref) != dec:
            # tokenizers' own stream and decode disagree - only where the text decoded is not
            # valid UTF-8 (DecodeStream never emits a trailing U+FFFD): nothing to compare.
            g["hf_inconsistent"] = True
        else:
            have, want = "", ""
            for k, (c, r) in enumerate(zip(chunks, ref)):
                have, want = have + c, want + r
                if not have.startswith(want):
                    problems.append("stream after id %d of %s: %r is behind DecodeStream's %r"
                                    % (k, ids, have, want))
                    break
    return problems


def random_id_lists(tk, n, seed):
    """Random id sequences over the whole vocabulary (partial UTF-8 bytes included, so decode's
    lossy repair is exercised). Byte-fallback tokens <0xNN> only come as whole, valid UTF-8
    characters: for invalid runs of them tokenizers' ByteFallback writes one U+FFFD per byte
    where helix writes one per maximal invalid subsequence (docs/tokenizer.md)."""
    r = random.Random(seed)
    size = tk.get_vocab_size(with_added_tokens=True)
    fallback = {tk.token_to_id("<0x%02X>" % b) for b in range(256)} - {None}
    out = []
    for _ in range(n):
        ids = []
        for _ in range(r.randint(1, 16)):
            if fallback and r.random() < 0.15:
                ch = chr(r.choice([0xE9, 0x4E2D, 0x1F600, 0x0915, 0x10348, 0xA66E]))
                ids += [tk.token_to_id("<0x%02X>" % b) for b in ch.encode("utf-8")]
            else:
                i = r.randrange(size)
                while i in fallback or tk.id_to_token(i) is None:
                    i = r.randrange(size)
                ids.append(i)
        out.append(ids)
    return out


def check_tokenizer(name, path, tok_dump, workdir, strings=None, n_random=150):
    family = name.split("-")[0].split("+")[0]
    t0 = time.time()
    tk = Tokenizer.from_file(path)
    if strings is None:
        strings = teststrings.all_strings(family)
    got, err = run_dump(tok_dump, "encode", path, strings, workdir)
    if got is None:
        show("MISMATCH %s: helix refused %s: %s" % (name, path, err))
        return 1
    bad = check_encode(name, tk, strings, got)
    odd = sum(1 for g in got if g.get("hf_inconsistent"))
    lists = random_id_lists(tk, n_random, seed=len(name))
    dgot, err = run_dump(tok_dump, "decode", path, lists, workdir)
    dbad = 0
    for ids, g in zip(lists, dgot or []):
        problems = ["helix error: %s" % g["error"]] if "error" in g else \
            check_decodes(tk, ids, g, False)
        if problems:
            dbad += 1
            show("MISMATCH %s decode %s:\n  %s" % (name, ids, "\n  ".join(problems)))
    status = "pass" if bad == 0 and dbad == 0 else "FAIL"
    print("compare: %-16s %4d strings: %d identical (ids x3, decode x2, stream); "
          "%d/%d random id lists decode identically; %.1f s; %s"
          % (name, len(strings), len(strings) - bad, len(lists) - dbad, len(lists),
             time.time() - t0, status))
    if odd:
        print("compare: %-16s (%d of them decode to invalid UTF-8, where tokenizers' "
              "DecodeStream differs from its own decode: stream checked against decode only)"
              % (name, odd))
    return bad + dbad


# ---- derived tokenizers ---------------------------------------------------------------------

def v_added(base, tokens):
    def make(tk):
        tk.add_tokens(tokens)
        return tk
    return base, make


def v_setattr(base, **attrs):
    def make(tk):
        for k, v in attrs.items():
            setattr(tk, k, v)
        return tk
    return base, make


ADDED = [
    AddedToken("<x>", normalized=True),                      # matched in the normalized text
    AddedToken("a b", normalized=True),                      # Llama-2: its "▁" form
    AddedToken("é", normalized=True),                        # NFC: also matches "e\u0301"
    AddedToken("[MASK]", lstrip=True, special=True, normalized=False),
    AddedToken("<end>", rstrip=True, special=True, normalized=False),
    AddedToken("<both>", lstrip=True, rstrip=True, normalized=False),
    AddedToken("word", single_word=True, normalized=False),
    AddedToken("ing", single_word=True, normalized=True),
    AddedToken("<t>", normalized=False),
    AddedToken("<t>!", special=True, normalized=False),      # longest match, special
    AddedToken("<ns>", special=True, normalized=True),       # special, normalized
]
ADDED_STRINGS = [
    "<x>", "a<x>b", " <x> ", "a b", "xa by", "a  b", "é", "e\u0301", "cafe\u0301s", "[MASK]",
    "I saw a   [MASK] here", "[MASK][MASK]", "  [MASK]", "x<end>   y", "<end>\n\nz",
    "a <both>  b", " \t<both>\n", "word", "a word.", "words", "sword", "_word", "word_", "1word",
    "wordé", "(word)", "ing", "going", "ing!", " ing ", "<t>", "<t>!", "<t>!!", "x<t>!y",
    "<t> !", "[MASK]<end><both><t>!word", "\u3000<both>\u3000", "\u00a0[MASK]", "word\u0301",
    "ingé", "é ing", "<s><x></s>", "<|im_start|><x><|im_end|>", "<ns>", "a<ns>b", " <ns> ",
]


def variants():
    nfd_strings = ["café", "e\u0301", "Å", "\u212b", "한국어", "\u1e0b\u0323", "ệ x", "ﬁ"]
    return {
        # Added tokens with every flag, over each normalizer shape.
        "llama2+added": v_added("llama2", ADDED),
        "qwen3+added": v_added("qwen3", ADDED),
        "kjv+added": v_added("kjv", ADDED),
        # Metaspace pre-tokenizer (instead of Llama-2's normalizer), both prepend schemes.
        "llama2+ms-first": v_setattr(
            "llama2", normalizer=None,
            pre_tokenizer=pre_tokenizers.Metaspace(prepend_scheme="first", split=True),
            decoder=decoders.Metaspace(prepend_scheme="first", split=True)),
        "llama2+ms-always": v_setattr(
            "llama2", normalizer=None,
            pre_tokenizer=pre_tokenizers.Metaspace(prepend_scheme="always", split=False),
            decoder=decoders.Metaspace(prepend_scheme="always", split=False)),
        # No decoder: tokenizers joins the tokens with spaces.
        "llama2+nodecoder": v_setattr("llama2", decoder=None),
        # Other Unicode normalizers over Qwen's vocabulary.
        "qwen3+nfd": (v_setattr("qwen3", normalizer=normalizers.NFD()), nfd_strings),
        "qwen3+nfc-seq": v_setattr("qwen3", normalizer=normalizers.Sequence(
            [normalizers.NFD(), normalizers.NFC()])),
        # ByteLevel's prefix space, with and without a Split before it.
        "kjv+prefix": v_setattr("kjv", pre_tokenizer=pre_tokenizers.ByteLevel(
            add_prefix_space=True, use_regex=True)),
        "llama3+prefix": v_setattr("llama3", pre_tokenizer=pre_tokenizers.Sequence([
            pre_tokenizers.Split(tokenizers.Regex(LLAMA3_RE), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)])),
        # Meta's own Llama-3 post-processor shape, and a BOS + EOS template.
        "llama3+bos": v_setattr("llama3", post_processor=processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                special_tokens=[("<|begin_of_text|>", 128000)])])),
        "qwen3+boseos": v_setattr("qwen3", post_processor=processors.TemplateProcessing(
            single="<|im_start|> $A <|im_end|> <|endoftext|>", pair="$A $B",
            special_tokens=[("<|im_start|>", 151644), ("<|im_end|>", 151645),
                            ("<|endoftext|>", 151643)])),
    }


LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def check_variants(paths, tok_dump, workdir):
    bad = 0
    for name, spec in variants().items():
        extra = []
        if isinstance(spec[0], tuple):
            (base, make), extra = spec
        else:
            base, make = spec
        if base not in paths:
            continue
        tk = make(Tokenizer.from_file(paths[base]))
        path = os.path.join(workdir, name + ".json")
        tk.save(path)
        fam, _ = teststrings.family_strings(base)
        strings = (ADDED_STRINGS + extra + teststrings.fixed_strings() + fam +
                   teststrings.random_strings(60, seed=len(name)))
        bad += check_tokenizer(name, path, tok_dump, workdir, strings, n_random=20)
    return bad


def main():
    if len(sys.argv) < 4 or not all("=" in a for a in sys.argv[3:]):
        print(__doc__)
        sys.exit(2)
    tok_dump, workdir = sys.argv[1], sys.argv[2]
    print("compare: Hugging Face tokenizers %s" % tokenizers.__version__)
    paths = dict(a.split("=", 1) for a in sys.argv[3:])
    bad = 0
    for name, path in paths.items():
        bad += check_tokenizer(name, path, tok_dump, workdir)
    bad += check_variants(paths, tok_dump, workdir)
    print("compare: %s" % ("all identical" if bad == 0 else "%d mismatches" % bad))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
