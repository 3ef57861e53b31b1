#!/usr/bin/env python3
"""split_check.py - check helix's hand-written GPT-2, Llama-3 and Qwen-2 pre-tokenizer matchers
against the real regexes (python's `regex` module, which supports \\p{L}/\\p{N} like Oniguruma
does). Run with the venv's python (scripts/pyenv.sh installs `regex`):

    build/venv/bin/python split_check.py TOK_DUMP

Splits every string tests/integration/t0200-tokenizer.sh tokenizes (teststrings.py, all
families) plus 3000 seeded random strings over an alphabet of tricky characters (whitespace
kinds, \\r\\n, apostrophes, letters/digits of several scripts, marks, symbols) with each
pattern, and compares with `TOK_DUMP split gpt2|llama3|qwen2`. Exit 1 on any mismatch or if
the regex module is missing.
"""
import json
import os
import random
import subprocess
import sys
import tempfile

import teststrings

try:
    import regex
except ImportError:
    print("split_check: FAIL: python module 'regex' not installed (run scripts/pyenv.sh)")
    sys.exit(1)

GPT2 = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
          r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2 = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
         r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

ALPHABET = (list("aZé'sStTrReEvVlLmMdDſ") +  # ſ (U+017F) case-folds to s in (?i:'s)
            [" ", " ", " ", "\t", "\n", "\r", "\r\n", "\x0b", "\x1c", "\x0c", "\x85", "\u00a0",
             "\u3000", "\u2028", "\u200b"] +
            list("0123456789") + ["\u0661", "\u2167", "\u00bd", "\u00b2"] +
            list(".,!?-_()\"#$") + ["\u0301", "\u0915\u093f", "\u4e2d", "\U0001F600", "\u2581",
                                    "\ufeff", "\u00ad", "\u01c5", "\u02b0", "\u3005"])


def random_strings(n):
    r = random.Random(20240611)
    return ["".join(r.choice(ALPHABET) for _ in range(r.randint(1, 24))) for _ in range(n)]


def main():
    tok_dump = sys.argv[1]
    strings = {}
    for family in ("llama2", "llama3", "qwen3", "kjv"):
        strings.update(dict.fromkeys(teststrings.all_strings(family)))
    strings = list(strings) + random_strings(3000)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(strings, f)
        path = f.name
    bad = 0
    for name, pat in (("gpt2", GPT2), ("llama3", LLAMA3), ("qwen2", QWEN2)):
        rx = regex.compile(pat)
        out = subprocess.run([tok_dump, "split", name, path], capture_output=True, check=True,
                             text=True, encoding="utf-8").stdout.split("\n")
        for i, s in enumerate(strings):
            want = rx.findall(s)
            got = json.loads(out[i])
            if want != got:
                bad += 1
                if bad <= 20:
                    print("MISMATCH %s %r:\n    want %r\n    got  %r" % (name, s, want, got))
    os.unlink(path)
    total = 3 * len(strings)
    print("split_check: %d/%d splits match (GPT-2, Llama-3 and Qwen-2 patterns)"
          % (total - bad, total))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
