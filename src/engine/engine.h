/*
 * engine.h - the inference engine's public API: load a LLaMA-family model (or one contiguous
 * range of its layers) from a Hugging Face directory, and step a batch that mixes prefill
 * chunks and decodes over a paged KV cache (continuous batching at layer granularity).
 *
 * Objects, in the order a worker creates them:
 *   struct eng_backend  - where the math runs (eng_cpu_backend_new; CUDA later), backend.h
 *   struct eng_model    - config + weights of layers [begin, end) on a backend (mmap'd)
 *   struct eng_engine   - KV cache, sequence table and all activation scratch, sized up front
 *   struct eng_sampler  - per-sequence sampling state (greedy/temperature/top-k/top-p, seed)
 * Nothing is allocated by eng_engine_step or eng_sampler_sample (the token loop).
 * None of these objects is thread-safe; one thread drives an engine (the CPU backend uses its
 * own worker threads inside each op).
 */
#ifndef HX_ENGINE_ENGINE_H
#define HX_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

struct hx_diag;
struct eng_backend;

/*
 * Element types of weights (safetensors names BF16, F16, F32; GGUF also holds ggml's block
 * formats). Q8_0 and Q4_0 are ggml's, bit for bit: a row is cols / 32 blocks, each an fp16
 * scale d and 32 values, q8_0 int8 q (x = d q), q4_0 4-bit u in 16 bytes (element j < 16 in
 * the low nibble of byte j, element j + 16 in its high nibble; x = d (u - 8)).
 */
enum eng_dtype {
    ENG_DTYPE_F32 = 0,
    ENG_DTYPE_F16 = 1,
    ENG_DTYPE_BF16 = 2,
    ENG_DTYPE_OTHER = 3, /* a safetensors dtype we parse but cannot compute with (I64, F64...) */
    ENG_DTYPE_Q8_0 = 4,
    ENG_DTYPE_Q4_0 = 5,
};

#define ENG_QBLOCK 32 /* elements per Q8_0 / Q4_0 block */

/* Bytes per element (0 for ENG_DTYPE_OTHER and the block formats: see eng_dtype_row_bytes). */
size_t eng_dtype_size(enum eng_dtype dt);
/* Bytes of a row of cols elements (block formats: cols must be a multiple of ENG_QBLOCK); 0
 * for ENG_DTYPE_OTHER. */
size_t eng_dtype_row_bytes(enum eng_dtype dt, int64_t cols);
/* Whether dt is a block format (cols must be a multiple of ENG_QBLOCK). */
int eng_dtype_is_quant(enum eng_dtype dt);
/* "F32", "F16", "BF16", "Q8_0", "Q4_0", "other". */
const char *eng_dtype_name(enum eng_dtype dt);
/* A weight format name for --weights: "bf16", "f16", "f32", "q8_0", "q4_0" (any case).
 * 0, or -1 for any other. */
int eng_weight_format_parse(const char *name, enum eng_dtype *out);

/* ---- config.json ------------------------------------------------------------------------ */

/* The LLaMA-family block: llama, mistral, qwen2 (q/k/v bias). */
struct eng_config {
    char model_type[32];
    int n_layers;
    int hidden;     /* hidden_size */
    int n_heads;    /* num_attention_heads */
    int n_kv_heads; /* num_key_value_heads (GQA); = n_heads when absent */
    int head_dim;   /* head_dim, or hidden / n_heads */
    int ffn;        /* intermediate_size */
    int vocab;
    int max_pos;       /* max_position_embeddings */
    double rope_theta; /* top level or rope_parameters.rope_theta; default 10000 */
    double rms_eps;    /* rms_norm_eps */
    int tied;          /* tie_word_embeddings */
    int qkv_bias;      /* qwen2, or attention_bias: true */
    int bos_id;        /* -1 when absent */
    int eos_id;        /* -1 when absent (first of a list) */
};

/*
 * Parse config.json text (len bytes, need not be NUL-terminated). path names the file in
 * error messages. Returns 0, HX_EPARSE (bad JSON, missing or bad key: the message names it)
 * or HX_ENOTSUP (an architecture, activation or rope scaling we do not implement).
 */
int eng_config_parse(const char *json, size_t len, const char *path, struct eng_config *out,
                     struct hx_diag *diag);

/* ---- safetensors ------------------------------------------------------------------------ */

/* One tensor of a safetensors file. Offsets are absolute within the file. */
struct eng_st_tensor {
    char *name;
    enum eng_dtype dtype;
    char dtype_name[8];
    int n_dims;
    int64_t shape[8];
    uint64_t begin; /* absolute byte offset of the first element */
    uint64_t end;   /* one past the last byte */
};

struct eng_st_file {
    struct eng_st_tensor *tensors;
    int n_tensors;
    uint64_t data_start; /* 8 + header length */
};

/*
 * Parse the header of a safetensors file held in memory (buf: the whole file, len bytes;
 * borrowed). Validates the header length, the JSON, each dtype and shape, and that each
 * tensor's byte range matches its shape and lies inside the file. On success fills out
 * (release with eng_st_release). Errors: HX_EPARSE with a message naming path and tensor.
 * Safe on arbitrary input (it is the libFuzzer target's entry point).
 */
int eng_st_parse(const void *buf, size_t len, const char *path, struct eng_st_file *out,
                 struct hx_diag *diag);
void eng_st_release(struct eng_st_file *f);
/* The tensor called name, or NULL. */
const struct eng_st_tensor *eng_st_find(const struct eng_st_file *f, const char *name);

/* ---- model ------------------------------------------------------------------------------ */

struct eng_model;

/*
 * Load layers [layer_begin, layer_end) of the model in dir (config.json plus
 * model.safetensors or model.safetensors.index.json and its shards) onto backend be
 * (borrowed; must outlive the model). layer_end = -1 means all layers. The first range
 * (begin 0) also loads the token embedding; the last range (end = n_layers) the final norm
 * and the LM head (the embedding when tied). Files are mmap'd; only the tensors of the range
 * are touched. Returns 0, HX_EIO (cannot open/map), HX_EPARSE (malformed, truncated, missing
 * tensor, wrong shape), HX_ENOTSUP (unsupported dtype/architecture), HX_EINVAL (bad range),
 * HX_ENOMEM. diag names the file and the tensor.
 */
int eng_model_load(const char *dir, int layer_begin, int layer_end, struct eng_backend *be,
                   struct eng_model **out, struct hx_diag *diag);

/* How eng_model_open loads. */
struct eng_model_opts {
    int layer_begin;
    int layer_end; /* -1: all layers */
    /* ENG_DTYPE_OTHER: every weight as stored. ENG_DTYPE_Q8_0 / ENG_DTYPE_Q4_0: the matmul
     * weights (q, k, v, o, gate, up, down, lm_head) of a BF16/F16/F32 checkpoint are quantized
     * at load into memory the model owns, with ggml's rounding (the same bytes llama.cpp's
     * quantizer writes); the embedding and the norms stay as stored. Weights already in a
     * block format are used as they are. */
    enum eng_dtype weights;
};

/*
 * eng_model_load with options (opts NULL: all layers, as stored). path is a Hugging Face
 * model directory, or a GGUF file (a path whose file starts with the GGUF magic; see
 * docs/formats.md): the LLaMA architecture, its layer range's tensors mmap'd. The backend
 * must compute with every dtype the range uses (HX_ENOTSUP naming the tensor otherwise).
 */
int eng_model_open(const char *path, const struct eng_model_opts *opts, struct eng_backend *be,
                   struct eng_model **out, struct hx_diag *diag);
void eng_model_free(struct eng_model *m);
/* Whether path is a regular file starting with the GGUF magic (eng_model_open reads it as
 * GGUF; its tokenizer: eng_tok_load_gguf). */
int eng_gguf_is_file(const char *path);

const struct eng_config *eng_model_config(const struct eng_model *m);
int eng_model_layer_begin(const struct eng_model *m);
int eng_model_layer_end(const struct eng_model *m);
/* Bytes of weights the range reads per forward pass (its layers, plus embed/norm/head). */
size_t eng_model_weight_bytes(const struct eng_model *m);
/* Bytes of one decoder layer's weights (as stored, or as quantized at load). */
size_t eng_model_layer_bytes(const struct eng_model *m);
/* The element type of the range's largest matmul weights (what --weights chose, or as
 * stored): the format the planner's profiles record. */
enum eng_dtype eng_model_weight_dtype(const struct eng_model *m);

/* ---- engine: KV cache, sequences, batched step ------------------------------------------ */

#define ENG_KV_BLOCK 16 /* tokens per KV block */

struct eng_engine_opts {
    int max_seqs;    /* sequences alive at once (default 16) */
    int max_tokens;  /* tokens per step, all sequences together (default 256) */
    int max_ctx;     /* tokens per sequence (default: the model's max_position_embeddings) */
    size_t kv_bytes; /* KV cache budget in bytes (default: enough for max_seqs x max_ctx) */
};

struct eng_engine;

/*
 * Create an engine for model m (borrowed; must outlive it): allocates the KV cache (whole
 * blocks of ENG_KV_BLOCK tokens within opts->kv_bytes) and every scratch buffer for
 * opts->max_tokens tokens. opts may be NULL (defaults). Returns 0, HX_EINVAL (bad options,
 * budget below one block), HX_ENOMEM.
 */
int eng_engine_new(struct eng_model *m, const struct eng_engine_opts *opts, struct eng_engine **out,
                   struct hx_diag *diag);
void eng_engine_free(struct eng_engine *e);
/* The options in effect (defaults filled in). */
void eng_engine_get_opts(const struct eng_engine *e, struct eng_engine_opts *out);
const struct eng_model *eng_engine_model(const struct eng_engine *e);

/* Start a sequence with no tokens. HX_EINVAL if id exists, HX_EFULL if max_seqs are alive. */
int eng_seq_add(struct eng_engine *e, int64_t seq_id, struct hx_diag *diag);
/* End a sequence and free its KV blocks. HX_ENOTFOUND if unknown. */
int eng_seq_remove(struct eng_engine *e, int64_t seq_id);
/* Tokens cached for a sequence, or -1 if unknown. */
int eng_seq_len(const struct eng_engine *e, int64_t seq_id);
/* KV usage, for telemetry: blocks in use and in total. */
void eng_kv_usage(const struct eng_engine *e, int *used_blocks, int *total_blocks);
/* Bytes of one KV block (all layers of the range, K and V). */
size_t eng_kv_block_bytes(const struct eng_engine *e);

/*
 * One sequence's share of a step: n_tokens tokens starting at position pos, which must equal
 * the sequence's cached length (a prefill chunk has n_tokens >= 1, a decode n_tokens = 1).
 * The first stage reads tokens (ids, borrowed); later stages read act_in
 * (float32 [n_tokens x hidden], borrowed).
 */
struct eng_seq_step {
    int64_t seq_id;
    int pos;
    int n_tokens;
    const int32_t *tokens;
    const float *act_in;
};

/* Caller-owned output buffers of a step (host memory); NULL ones are not produced. */
struct eng_step_out {
    /* Output activations of the range's last layer, float32 [T x hidden], T = total tokens,
     * in step order. Any stage may ask; the non-last stages pass these to the next worker. */
    float *act;
    /* Last stage only: logits float32 [n_seqs x vocab] of each sequence's last token, or
     * [T x vocab] of every token when all_logits is set. */
    float *logits;
    int all_logits;
    /* Optional per-layer hidden states, float32 [(n_local_layers + 1) x T x hidden]: entry 0
     * is the range's input (the embedding output on the first stage), entry i the output of
     * local layer i-1. */
    float *layer_hidden;
    /* Optional, last stage only: final-norm output float32 [T x hidden]. */
    float *norm_hidden;
};

/*
 * Run the model's layer range over a batch of n_seqs sequence steps (borrowed), appending
 * their K/V to the cache. Validates everything before changing anything: unknown sequence,
 * pos != cached length, too many tokens (HX_EINVAL/HX_ENOTFOUND/HX_ERANGE), and the KV
 * blocks the step needs (HX_EFULL "KV cache full", with the counts). On error no sequence
 * changes. Allocates nothing.
 */
int eng_engine_step(struct eng_engine *e, const struct eng_seq_step *seqs, int n_seqs,
                    const struct eng_step_out *out, struct hx_diag *diag);

/* ---- sampling --------------------------------------------------------------------------- */

struct eng_sampler_params {
    float temperature; /* <= 0: greedy (argmax) */
    int top_k;         /* <= 0: off */
    float top_p;       /* >= 1 or <= 0: off */
    uint64_t seed;
};

struct eng_sampler;

/* Create a sampler for a vocab of n entries (allocates its scratch now). HX_EINVAL/ENOMEM. */
int eng_sampler_new(const struct eng_sampler_params *p, int vocab, struct eng_sampler **out);
void eng_sampler_free(struct eng_sampler *s);
/* Draw the next token from logits[vocab] (borrowed, not modified). Deterministic per seed. */
int32_t eng_sampler_sample(struct eng_sampler *s, const float *logits);
/* The token with the largest logit (lowest id on ties). */
int32_t eng_argmax(const float *logits, int n);

/*
 * Generate with a whole model (first and last stage in one engine): prefill prompt
 * (n_prompt ids, borrowed) into a new sequence seq_id in chunks of at most max_tokens, then
 * decode up to max_new tokens with sampler s, stopping after eos_id (included in the output;
 * eos_id < 0: never). Writes the new ids to out_ids (room for max_new) and their count to
 * *n_out. The sequence is removed before returning. Returns 0 or an error from the step.
 */
int eng_generate(struct eng_engine *e, int64_t seq_id, const int32_t *prompt, int n_prompt,
                 struct eng_sampler *s, int max_new, int eos_id, int32_t *out_ids, int *n_out,
                 struct hx_diag *diag);

/* ---- backends --------------------------------------------------------------------------- */

/*
 * The CPU backend (the reference): OpenBLAS sgemm for batches, bf16/fp16/fp32 gemv for single
 * rows, n_threads worker threads (<= 0: the number of online CPUs). Returns 0 or HX_ENOMEM.
 */
int eng_cpu_backend_new(int n_threads, struct eng_backend **out, struct hx_diag *diag);
/*
 * The CUDA backend on GPU `device` (backend.h; src/engine/cuda/). HX_EDEVICE when no GPU or
 * driver is usable, HX_EINVAL for a device index that does not exist, HX_ENOTSUP when this
 * binary was built without CUDA (the message says to rebuild with `make CUDA=1`).
 */
int eng_cuda_backend_new(int device, struct eng_backend **out, struct hx_diag *diag);
/* GPUs usable by this binary (0 without CUDA, without a driver or without a GPU). */
int eng_cuda_available(void);
/* Parse a device name: "cpu", "cuda" (= cuda:0), "cuda:N". HX_EINVAL naming it otherwise. */
int eng_device_parse(const char *device, int *is_cuda, int *index, struct hx_diag *diag);
/* The backend a device name names (n_threads: the CPU backend's threads, 0 = all CPUs). */
int eng_backend_open(const char *device, int n_threads, struct eng_backend **out,
                     struct hx_diag *diag);
/* Free any backend (NULL is fine). */
void eng_backend_free(struct eng_backend *be);
/* The backend's name ("cpu"). */
const char *eng_backend_name(const struct eng_backend *be);
/* The KV cache element type of engines made on be from now on: "f32" or "bf16". The CPU
 * backend keeps float32 only (HX_ENOTSUP otherwise); CUDA defaults to bf16. */
int eng_backend_set_kv_dtype(struct eng_backend *be, const char *dtype, struct hx_diag *diag);
/* A KV cache dtype name, "f32" or "bf16": 0, or -1 for any other. */
int eng_kv_dtype_parse(const char *name, enum eng_dtype *out);
/* The backend's KV cache element type now. */
enum eng_dtype eng_backend_kv_dtype(const struct eng_backend *be);

#endif
