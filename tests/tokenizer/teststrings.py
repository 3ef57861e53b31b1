"""teststrings.py - the strings tests/integration/t0200-tokenizer.sh tokenizes: a fixed list of
edge cases, seeded pseudo-random mixes (the same generator on every run and machine), and, per
tokenizer family, strings that exercise what that family does differently (digit runs, NFC vs
NFD input, upper-case contractions, its special and added tokens).

Imported by compare.py and split_check.py; `python3 teststrings.py [FAMILY]` prints the strings
as a JSON array.
"""
import json
import math
import sys
import unicodedata


def fixed_strings():
    return [
        "", " ", "  ", "   ", "\n", "\n\n", "\t", " \t \n ", "a", "A", "0", ".", "'", "\"",
        "Hello, my dog is cute", "Hello world", " Hello world", "  Hello  world  ",
        "Hello\nworld", "Hello\n\nworld\n", "\r\n", "line1\r\nline2\r\n",
        "In the beginning God created the heaven and the earth.",
        "And the LORD said unto Moses,", "The quick brown fox jumps over the lazy dog.",
        "don't", "I'm", "we're", "they've", "you'll", "he'd", "it's", "'s", "'twas",
        "DON'T SHOUT", "rock 'n' roll", "O'Neil's",
        "1", "12", "123", "1234", "12345678901234567890", "3.14159", "-42", "1,000,000",
        "2024-01-01", "10:30pm", "$100", "50%", "#hashtag", "@user", "user@example.com",
        "https://example.com/path?q=1&r=2#frag", "C:\\Windows\\System32", "a/b/c",
        "!!!", "???", "...", "---", "***", "((()))", "[]{}<>", "a+b=c", "x^2 + y^2 = z^2",
        "<s>", "</s>", "<unk>", "a<s>b", "<s>hello", "hello</s>", "<s> </s>", "<s><s>",
        "<<s>>", "<s", "s>", "</s >",
        "café", "naïve", "résumé", "Ångström", "Zürich", "façade", "São Paulo", "crème brûlée",
        "Español: ¿Dónde está la biblioteca?", "Français: où est-il ?", "Deutsch: Straße, Größe",
        "Ελληνικά", "Русский язык", "Привет, мир!", "עברית", "العربية", "हिन्दी", "ไทย", "한국어",
        "日本語", "こんにちは世界", "カタカナ", "中文", "你好，世界！", "我爱北京天安门",
        "繁體中文字", "𠀀𠀁", "😀", "🦙", "👍🏽", "👨‍👩‍👧‍👦", "🇺🇸", "❤️", "✓ ✗ ★",
        "emoji 😀 in text", "mixed 中文 and English", "tab\tseparated\tvalues",
        "trailing spaces   ", "   leading spaces", "multiple\n\n\nnewlines",
        "\u00a0non-breaking\u00a0space", "zero\u200bwidth", "e\u0301 combining", "\u2581already",
        "▁▁▁", "under_score", "camelCaseWord", "snake_case_word", "SCREAMING_SNAKE",
        "function foo(x) { return x * 2; }", "if (a && b || !c) {}", "int main(void) { return 0; }",
        "def f(x):\n    return x\n", "    indented", "\tindented", "<html><body>hi</body></html>",
        "{\"key\": \"value\", \"n\": [1, 2, 3]}", "SELECT * FROM t WHERE id = 1;",
        "½ ¼ ¾", "①②③", "Ⅻ", "²³", "٣٤٥", "۱۲۳", "१२३", "〇一二三",
        "ﬁ ﬂ ligatures", "ｆｕｌｌｗｉｄｔｈ", "ǅ ǈ ǋ", "ß", "İstanbul", "ǰ", "ŉ",
        "\u0001\u0002control", "bell\u0007", "del\u007f", "\u00ad soft hyphen",
        "a" * 50, "ab" * 40, " " * 17, "\n" * 5, "9" * 30,
        "Supercalifragilisticexpialidocious", "antidisestablishmentarianism",
        "pneumonoultramicroscopicsilicovolcanoconiosis",
    ]


def _rng(seed):
    """xorshift32, as compare.js had it, so the strings are the ones earlier runs used."""
    state = [seed & 0xFFFFFFFF or 1]

    def r():
        x = state[0]
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        state[0] = x
        return x / 4294967296.0

    return r


WORDS = ["the", "The", "and", "LORD", "God", "said", "unto", "hello", "world", "token", "izer",
         "running", "jumped", "quickly", "x", "I", "a", "an", "of", "to", "in", "is", "naïve",
         "café", "über", "niño", "señor", "coöperate", "Ærø", "œuvre", "ﬁn"]
PUNCT = [".", ",", "!", "?", ";", ":", "-", "—", "–", "'", "\"", "(", ")", "[", "]", "{", "}",
         "/", "\\", "@", "#", "$", "%", "^", "&", "*", "_", "+", "=", "<", ">", "|", "~", "`",
         "…", "«", "»", "“", "”", "‘", "’", "¡", "¿", "§", "¶", "•", "°", "€", "£", "¥"]
SPACES = [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\u3000",
          "\u00a0"]
CJK = ["中", "文", "字", "日本", "語", "한", "국", "어", "の", "は", "を", "カ", "ナ", "你好",
       "世界", "龍", "鳳", "𠮷", "々"]
EMOJI = ["😀", "😂", "🦙", "🚀", "🌍", "👍", "👍🏽", "❤️", "🇯🇵", "👩‍💻", "🎉", "🤖", "🔥"]
OTHER = ["Привет", "мир", "γειά", "σου", "שלום", "مرحبا", "नमस्ते", "สวัสดี", "ሰላም", "Ձեռք",
         "ქართ", "ᚠᚢᚦ", "ꙮ"]
LLAMA_SPECIALS = ["<s>", "</s>", "<unk>"]


def random_strings(count, seed=20240611, specials=None, extra=None):
    """Seeded mixes of words, whitespace runs, punctuation, digit runs, CJK, emoji, other
    scripts and special-token strings. With the defaults: compare.js's 400 strings exactly.
    extra: a list of further pieces (picked instead of a plain space 7% of the time)."""
    r = _rng(seed)
    specials = LLAMA_SPECIALS if specials is None else specials

    def pick(a):
        return a[math.floor(r() * len(a))]

    def digits():
        return str(math.floor(r() * math.pow(10, 1 + math.floor(r() * 8))))

    out = []
    for _ in range(count):
        n = 1 + math.floor(r() * 12)
        s = ""
        for _ in range(n):
            c = r()
            if c < 0.35:
                s += pick(WORDS)
            elif c < 0.50:
                s += pick(SPACES)
            elif c < 0.60:
                s += pick(PUNCT)
            elif c < 0.68:
                s += digits()
            elif c < 0.76:
                s += pick(CJK)
            elif c < 0.83:
                s += pick(EMOJI)
            elif c < 0.91:
                s += pick(OTHER)
            elif c < 0.93:
                s += pick(specials)
            else:
                s += pick(extra) if extra else " "
        out.append(s)
    return out


def _nfd(strings):
    return [unicodedata.normalize("NFD", s) for s in strings]


# What each family does differently.
DIGITS = ["7", "42", "999", "1000", "65536", "3141592653", "1,234,567.89", "v1.2.3", "0x1F600",
          "2024年3月15日", "٣٤٥٦٧", "१२३४", "①②③④", "Ⅻ2Ⅲ", "½12", "x²³⁴", "1 22 333 4444 55555",
          "abc123def4567", "\u00a0123", " 1234", "\n12345\n", "12\u0301345"]
CONTRACTIONS = ["DON'T", "I'M", "WE'RE", "THEY'VE", "YOU'LL", "HE'D", "IT'S", "'S", "'T", "'RE",
                "'Ve", "'lL", "'D", "'M", "don'T", "Can'T Won'T", "O'NEIL'S", "'ll've'd",
                "''s", "' s", "'sS", "ſ'S", "'ſ", "'ſx", "X'ſT", "'\u212ax",
                "rock'N'roll", "\u2019s don\u2019t"]
UNICODE_FORMS = ["é", "e\u0301", "Å", "A\u030a", "\u212b", "ñ", "n\u0303", "ệ", "e\u0323\u0302",
                 "e\u0302\u0323", "q\u0307\u0323", "\u1e0b\u0323", "d\u0323\u0307",
                 "한국어", "\u1112\u1161\u11ab\u1100\u116e\u11a8", "\u1100\u1161", "\uac00\u11a8",
                 "\u0958", "\u2126", "\u00c5\u0327", "ﬁ", "\u0344", "\u0f73", "\u1f80\u0301",
                 "\u05d1\u05bc\u05b0", "\u0627\u0653", "\u0915\u093c", "\u09c7\u09be",
                 "\U0001d15e", "\u3071\u309a", "\u304b\u3099", "Ω\u0301\u0345",
                 "a\u0300\u0301\u0302", "\u0301start", "end\u0301", "e\u0301\u0301", "\u0041\u030a\u0301"]
WHITESPACE = ["a\u2028b", "x\u2029y", "\u3000\u3000word", "tab\t\tand\n\nnl", "\r\r\n\n",
              " \r\n word", "word \n", "  \n  \n  x", "\u00a0\u00a0", "\x0b\x0c", "\x85next",
              "trailing\t", "a \u200b b"]


def family_strings(family):
    """Strings aimed at one tokenizer family: llama2, llama3, qwen3, kjv."""
    base = CONTRACTIONS + DIGITS + WHITESPACE + UNICODE_FORMS
    base += _nfd(["café crème", "Ångström résumé naïve", "Ελληνικά ἀρχή", "Tiếng Việt có dấu",
                  "한국어 텍스트", "français à côté", "Zürich Öl Äpfel"])
    if family == "llama2":
        sp = ["<s>", "</s>", "<unk>"]
        base += ["<s>[INST] hi [/INST]", "</s><s>", " <s> ", "a </s> b", "<unk><unk>",
                 "▁<s>▁", "<0x41>", "<0xE4><0xB8>", "\U0001f9ec\U0001fae0", "\u0f3a\u0f3b",
                 "ꙮꙮꙮ", "\U00010348\U00010330", "☃☃ ☃"]
    elif family == "llama3":
        sp = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
              "<|eot_id|>", "<|reserved_special_token_0|>", "<|reserved_special_token_250|>"]
        base += ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
                 "<|eot_id|><|eot_id|>", " <|eot_id|> ", "<|eot_id", "<|eot_id|>x",
                 "<|reserved_special_token_9999|>", "<|begin_of_text|>1234567"]
    elif family == "qwen3":
        sp = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>",
              "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|vision_pad|>"]
        base += ["<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>",
                 "<think>\n\n</think>\n\n", "<tool_call>{\"a\": 1}</tool_call>", "<|im_start|",
                 " <|im_end|> ", "<think><tool_call>", "a<|endoftext|>b", "<|im_start|>12345"]
    else:
        sp = ["<|begin_of_text|>", "<|end_of_text|>"]
        base += ["<|begin_of_text|>In the beginning", "<|end_of_text|><|begin_of_text|>",
                 " <|end_of_text|> ", "<|end_of_text"]
    base += [a + b for a in sp[:4] for b in sp[:4]]
    base += ["x" + t + "y" for t in sp] + [" " + t + " " for t in sp] + [t + "\n" for t in sp]
    return base, sp


def all_strings(family):
    """Everything for one tokenizer: fixed + family + 400 random (compare.js's) + 200 random
    with the family's own special tokens, NFD-mixed and digit-heavy pieces."""
    fam, sp = family_strings(family)
    extra = sp + DIGITS + _nfd(["é", "ö", "ñ", "Å", "ệ"]) + ["'S", "'LL", "\u2028"]
    out = fixed_strings() + fam + random_strings(400)
    out += random_strings(200, seed=0x5EED0000 + len(family), specials=sp, extra=extra)
    # NUL cannot go through the C driver's NUL-terminated strings.
    return [s for s in out if "\x00" not in s]


if __name__ == "__main__":
    json.dump(all_strings(sys.argv[1] if len(sys.argv) > 1 else "llama2"), sys.stdout,
              ensure_ascii=False)
