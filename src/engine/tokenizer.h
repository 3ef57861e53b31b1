/*
 * tokenizer.h - BPE tokenizers loaded from a Hugging Face tokenizer.json.
 *
 * Supported (anything else is refused at load time with HX_ENOTSUP, naming the key), as
 * Hugging Face tokenizers does it (tests/integration/t0200-tokenizer.sh checks Llama 2, Llama 3,
 * Qwen 3 and the bundled model against it):
 *  - byte-level BPE (GPT-2, Llama 3, Qwen 2/3): pre_tokenizer ByteLevel(use_regex=true) (GPT-2
 *    regex), or Sequence[Split(<GPT-2, Llama-3 or Qwen-2 regex>), ByteLevel(use_regex=false)];
 *    decoder ByteLevel;
 *  - SentencePiece-style BPE (Llama 2, Mistral): normalizer Prepend("▁")+Replace(" ","▁") or a
 *    Metaspace pre_tokenizer, model.byte_fallback, decoder Replace/ByteFallback/Fuse/Strip or
 *    Metaspace;
 *  - normalizers Prepend, Replace (String), NFC, NFD, and Sequences of them, with either kind;
 *  - added tokens (special or not) with lstrip / rstrip / single_word; normalized=false ones are
 *    found in the raw text, normalized=true ones in the normalized text;
 *  - TemplateProcessing post_processor ("single" template): its special tokens are what
 *    ENG_TOK_ADD_BOS adds (Llama 2: the BOS in front); eng_tok_bos_id is its first token, else
 *    an added token named "<|begin_of_text|>", "<s>" or "<bos>".
 * The pre-tokenizer regexes are matched by hand-written code using generated Unicode
 * L/N/White_Space tables (tools/gen_unicode_tables.py), not by a regex engine; NFC/NFD use
 * generated tables too (tools/gen_tok_unidata.py). See docs/tokenizer.md.
 *
 * Ids are int32_t. A loaded tokenizer is immutable: every const function below may be called from
 * several threads at once. A stream is single-threaded.
 */
#ifndef HX_ENGINE_TOKENIZER_H
#define HX_ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"

struct eng_tok;
struct eng_tok_stream;

/* Flags for eng_tok_encode / eng_tok_decode / eng_tok_stream_new. */
enum eng_tok_flags {
    /*
     * encode: add the post_processor template's special tokens around the text, as Hugging
     * Face's add_special_tokens=True does (Llama: BOS in front). Nothing if there is no template.
     */
    ENG_TOK_ADD_BOS = 1 << 0,
    /*
     * encode: do NOT recognise the strings of added tokens marked special (e.g.
     * "<|end_of_text|>") in the text; they are tokenized as plain text (Hugging Face's
     * split_special_tokens). Non-special added tokens are still matched. Default: recognised.
     */
    ENG_TOK_NO_SPECIAL = 1 << 1,
    /*
     * decode/stream: drop special tokens (BOS, EOS, ...) - as Hugging Face's
     * skip_special_tokens, any id whose decoded string is the content of an added token marked
     * "special" (so not a special token with normalized=true whose normalized form differs).
     */
    ENG_TOK_SKIP_SPECIAL = 1 << 2,
};

/*
 * Load a tokenizer.json from path (borrowed). On success *out owns a new tokenizer (free with
 * eng_tok_free). Returns HX_OK, HX_EIO (unreadable), HX_EPARSE (bad JSON / missing keys / bad
 * merges), HX_ENOTSUP (a normalizer, pre-tokenizer, model or decoder we do not implement) or
 * HX_ENOMEM; diag names the file and the key at fault. *out is NULL on failure.
 */
int eng_tok_load(const char *path, struct eng_tok **out, struct hx_diag *diag);

/*
 * Same as eng_tok_load, from a JSON text of len bytes in memory (borrowed; need not be
 * NUL-terminated). name is used only in diagnostics (may be NULL).
 */
int eng_tok_load_mem(const char *json, size_t len, const char *name, struct eng_tok **out,
                     struct hx_diag *diag);

/*
 * Load the tokenizer a GGUF file carries (tokenizer.ggml.*: model "gpt2", i.e. byte-level BPE,
 * with its tokens, merges, token types, pre-tokenizer "gpt-2"/"default"/"llama-bpe"/"qwen2",
 * and BOS when add_bos_token). Other tokenizer models are HX_ENOTSUP naming the key.
 */
int eng_tok_load_gguf(const char *path, struct eng_tok **out, struct hx_diag *diag);

/* Free a tokenizer. NULL does nothing. */
void eng_tok_free(struct eng_tok *tok);

/* Number of ids: max(id)+1 over model.vocab and added_tokens. */
int32_t eng_tok_vocab_size(const struct eng_tok *tok);

/*
 * BOS / EOS ids, or -1 if the tokenizer has none. EOS is the added token named
 * "<|end_of_text|>", "</s>", "<|endoftext|>" or "<eos>" (first found); chat models may stop on
 * other ids too (e.g. "<|eot_id|>": look it up with eng_tok_token_to_id).
 */
int32_t eng_tok_bos_id(const struct eng_tok *tok);
int32_t eng_tok_eos_id(const struct eng_tok *tok);

/* True (1) if id is an added token marked "special" (BOS, EOS, ...), else 0. */
int eng_tok_is_special(const struct eng_tok *tok, int32_t id);

/*
 * Id of the token whose vocabulary string (as written in tokenizer.json, e.g. "Ġthe" or "▁the"
 * or "<|end_of_text|>") is the len bytes at token (borrowed), or -1 if there is none.
 */
int32_t eng_tok_token_to_id(const struct eng_tok *tok, const char *token, size_t len);

/*
 * The vocabulary string of id (NUL-terminated, owned by tok, valid until eng_tok_free), and its
 * length in *len_out (len_out may be NULL). NULL if id is out of range or unused.
 */
const char *eng_tok_id_to_token(const struct eng_tok *tok, int32_t id, size_t *len_out);

/*
 * The raw bytes id decodes to on its own (e.g. " the"; for a byte-fallback token "<0xE4>" the
 * single byte 0xE4; not necessarily valid UTF-8), owned by tok. NULL if id is out of range.
 * Does not apply the decoder's leading-space strip (see eng_tok_decode).
 */
const char *eng_tok_token_bytes(const struct eng_tok *tok, int32_t id, size_t *len_out);

/* Longest eng_tok_token_bytes over the vocabulary, in bytes. */
size_t eng_tok_max_token_bytes(const struct eng_tok *tok);

/*
 * Encode len bytes of text (borrowed; need not be NUL-terminated) into ids. flags: ENG_TOK_ADD_BOS,
 * ENG_TOK_NO_SPECIAL. Any bytes are accepted: an invalid UTF-8 byte is handled as a one-byte
 * character (byte-level BPE encodes it losslessly; SentencePiece-style uses byte fallback).
 * On success *ids_out is a new array (free with xfree; non-NULL even when *n_out is 0) of *n_out
 * ids. Returns HX_OK, HX_ENOMEM, or HX_ENOTFOUND (a character with no token and no byte fallback
 * or unk token). Outputs are cleared on failure.
 */
int eng_tok_encode(const struct eng_tok *tok, const char *text, size_t len, unsigned flags,
                   int32_t **ids_out, size_t *n_out, struct hx_diag *diag);

/*
 * Decode n ids into text. flags: ENG_TOK_SKIP_SPECIAL. The token bytes are concatenated (the
 * first token's as the decoder treats a first token: Metaspace drops its "▁"s), the Strip
 * decoder's leading space is stripped, and the result is made valid UTF-8 by replacing each
 * maximal invalid subsequence with U+FFFD (Rust's from_utf8_lossy, which Hugging Face uses).
 * On success *text_out is a new NUL-terminated string (free with xfree) of *len_out bytes.
 * Returns HX_OK, HX_ERANGE (an id out of range; diag names its index) or HX_ENOMEM. Outputs
 * are cleared on failure.
 */
int eng_tok_decode(const struct eng_tok *tok, const int32_t *ids, size_t n, unsigned flags,
                   char **text_out, size_t *len_out, struct hx_diag *diag);

/*
 * Streaming decoder: feed ids one at a time; each call returns the bytes that now form complete
 * UTF-8 characters (possibly none). Never returns part of a character. The concatenation of
 * every feed's output plus the final flush equals eng_tok_decode of all ids with the same flags.
 * All memory is allocated by eng_tok_stream_new; feed and flush never allocate.
 */

/* New stream over tok (borrowed; must outlive the stream). flags: ENG_TOK_SKIP_SPECIAL. */
int eng_tok_stream_new(const struct eng_tok *tok, unsigned flags, struct eng_tok_stream **out,
                       struct hx_diag *diag);
/* Free a stream. NULL does nothing. */
void eng_tok_stream_free(struct eng_tok_stream *s);
/* Forget pending bytes and start a new text (as if just created). */
void eng_tok_stream_reset(struct eng_tok_stream *s);

/*
 * Feed one id. On HX_OK *text points at *len bytes of complete UTF-8 (owned by the stream, valid
 * until the next feed/flush/reset/free; *len may be 0). Returns HX_ERANGE for an id out of
 * range (the stream is unchanged).
 */
int eng_tok_stream_feed(struct eng_tok_stream *s, int32_t id, const char **text, size_t *len);

/*
 * End of text: returns the held-back bytes of an incomplete character as U+FFFD (usually
 * nothing), same ownership as feed, and resets the stream.
 */
void eng_tok_stream_flush(struct eng_tok_stream *s, const char **text, size_t *len);

#endif
