/*
 * runtime.h - helix's serving runtime: workers that each run one contiguous layer range of a
 * model, and a coordinator that is source and sink of every request (spec §8): it tokenises,
 * routes each request along a pipeline of workers chosen by the scheduler over the max-flow,
 * drives decode iterations, detokenises and streams text to clients.
 *
 * Transport is xport.h (ZeroMQ): the coordinator's ROUTER is the control plane (REGISTER,
 * ASSIGN, READY, HEARTBEAT, the first hop's PREFILL/DECODE, the last hop's TOKEN, RELEASE);
 * workers send activations straight to the next worker of a request's route over their own
 * ROUTER/DEALER data plane. docs/serving.md describes the message flow and failure handling.
 *
 * Threading: worker_run blocks the calling thread. The coordinator runs its own loop thread
 * (coord_start); coord_submit / coord_stream_* / coord_metrics may be called from any thread
 * (the HTTP server's), they talk to the loop through a locked inbox and per-request streams.
 */
#ifndef HX_RUNTIME_RUNTIME_H
#define HX_RUNTIME_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

struct hx_diag;
struct strbuf;
struct model_profile;
struct eng_backend;
struct eng_config;
struct xsec_peer;

#define RT_NAME_MAX 63       /* = PROTO_NAME_MAX */
#define RT_MAX_NODES 64      /* workers one coordinator drives */
#define RT_MAX_SEQS 64       /* sequences alive at once on one worker */
#define RT_MAX_STOP 4        /* stop strings per request (OpenAI's limit) */
#define RT_STOP_MAX_BYTES 64 /* bytes per stop string */

/* ---- CURVE on the wire (docs/protocol.md §8) ---------------------------------------------- */

/*
 * Whether a process encrypts and authenticates its sockets with ZeroMQ CURVE. AUTO = on
 * unless the endpoint that decides (the coordinator's bind address; a worker's coordinator
 * address) stays on this host (xsec_endpoint_is_loopback): plain mode is for loopback
 * development and says so in the log.
 */
enum rt_curve {
    RT_CURVE_AUTO = 0,
    RT_CURVE_ON = 1,
    RT_CURVE_OFF = 2,
};

/* Parse "auto" | "on" | "off". 0 or HX_EINVAL. */
int rt_curve_parse(const char *s, enum rt_curve *out);
/* Resolve AUTO for endpoint: 1 (CURVE) or 0 (plain). */
int rt_curve_on(enum rt_curve mode, const char *endpoint);

/* ---- worker ------------------------------------------------------------------------------ */

struct worker_opts {
    const char *coordinator;   /* control endpoint, "tcp://HOST:PORT" */
    const char *name;          /* node name ([A-Za-z0-9._-]{1,63}), as the plan names it */
    const char *token;         /* shared secret (required) */
    const char *data_endpoint; /* where to bind the data ROUTER; NULL: "tcp://127.0.0.1:*" */
    const char *model_dir;     /* overrides the model path sent in ASSIGN (NULL: use it) */
    int threads;               /* CPU backend threads (<= 0: all online CPUs) */
    uint64_t kv_bytes;         /* KV budget (0: the engine's default) */
    /*
     * Cap on this worker's weights + activation scratch + KV cache (0: none; then kv_bytes
     * applies). Once the layer range is known the KV budget becomes mem_bytes - the range's
     * weight bytes - worker_act_bytes() (worker_mem_budget), so one big card can stand in for
     * a smaller one. A kv_bytes below that budget lowers it further.
     */
    uint64_t mem_bytes;
    /* The backend to compute on (borrowed; must outlive worker_run), e.g. from
     * eng_backend_open. NULL: a CPU backend of `threads` threads, opened at assignment. */
    struct eng_backend *backend;
    /* What the worker reports in REGISTER and heartbeats, e.g. "cpu" or
     * "cuda:0 NVIDIA H100 80GB HBM3" (bytes outside 0x20..0x7e become '?', cut at
     * PROTO_DEVICE_MAX). REGISTER.backend is "cuda" when it starts with "cuda", else "cpu".
     * NULL: "cpu". */
    const char *device;
    /* Polled every loop iteration (<= 50 ms): the worker exits cleanly once *stop != 0. */
    volatile int *stop;
    /*
     * Polled likewise: once *drain != 0 the worker sends DRAIN (drain_reason) and keeps serving
     * the requests in flight; the coordinator routes nothing new to it and says SHUTDOWN
     * ("drained") when they are done. It exits then, or after drain_timeout_ms (0: 60 s), or
     * on *stop. NULL: no draining.
     */
    volatile int *drain;
    const char *drain_reason;
    int drain_timeout_ms;
    /* CURVE on the control connection and the data plane (AUTO: on unless `coordinator` is
     * a loopback endpoint). Must match the coordinator's mode. */
    enum rt_curve curve;
    /* The coordinator's public key (Z85); NULL: derived from `token` (xsec_keypair_from_token),
     * which is what a coordinator without --key-file uses. */
    const char *coordinator_key;
    /* This worker's secret key (Z85), e.g. from --key-file when the coordinator admits keys
     * from a keys file; NULL: a fresh key pair at every start. */
    const char *secret_key;
};

/*
 * Register with the coordinator, load the assigned layers, then serve until SHUTDOWN or *stop.
 * Returns 0 on a clean exit, HX_EAUTH (the coordinator refused our token), HX_EINVAL
 * (refused: unknown name, bad options), HX_EFULL (name taken), HX_ETIMEDOUT (no coordinator),
 * HX_ERANGE (mem_bytes cannot hold the assigned range: diag names the numbers), or a load
 * error (HX_EIO, HX_EPARSE, ...) with diag naming the cause.
 */
int worker_run(const struct worker_opts *o, struct hx_diag *diag);

/*
 * The activation allowance under a memory cap: the engine's scratch for a step of max_tokens
 * tokens (float32 x, xn, o [hidden]; q, att [heads x head_dim]; k, v [kv_heads x head_dim];
 * gate, up [ffn]; logits [vocab] on the last stage), an estimate from the config.
 */
uint64_t worker_act_bytes(const struct eng_config *cfg, int max_tokens, int last);
/*
 * The KV budget a memory cap leaves: mem_bytes - weight_bytes - act_bytes into *kv_bytes.
 * HX_ERANGE when nothing is left, with diag naming all three numbers ("--mem-bytes N cannot
 * hold the weights of layers [s, e): W bytes").
 */
int worker_mem_budget(uint64_t mem_bytes, uint64_t weight_bytes, uint64_t act_bytes,
                      int layer_start, int layer_end, uint64_t *kv_bytes, struct hx_diag *diag);
/*
 * Parse a byte count: decimal digits with an optional K, M, G or T suffix (binary: 1024^n,
 * either case), optionally followed by "B" or "iB": "4096", "512M", "40G", "1GiB".
 * 0, or HX_EINVAL on junk, an empty number or overflow of 64 bits.
 */
int rt_size_parse(const char *s, uint64_t *out);

/* ---- coordinator ------------------------------------------------------------------------- */

/* How a prompt's route is chosen (decodes always follow their prompt's route). */
enum coord_sched {
    COORD_SCHED_MAXFLOW = 0, /* IWRR over the max-flow, KV-aware (spec §5.1) */
    COORD_SCHED_RANDOM = 1,  /* uniform among next hops that cover the next layer (§5.2) */
    COORD_SCHED_SWARM = 2,   /* per-hop EMA of measured stage latency (§5.2) */
};

/* Parse "maxflow" | "random" | "swarm". Returns 0 or HX_EINVAL. */
int coord_sched_parse(const char *s, enum coord_sched *out);
const char *coord_sched_name(enum coord_sched s);

/* One node of the plan: the worker of this name runs layers [layer_start, layer_end). */
struct coord_node_spec {
    char name[RT_NAME_MAX + 1];
    int layer_start;
    int layer_end;
    double capacity; /* tokens/s through this node with its layers (the flow's node capacity) */
};

struct coord_opts {
    const char *model_dir; /* HF model dir: tokenizer.json + config.json (sent to workers) */
    const char *workers;   /* control endpoint to bind, "tcp://HOST:PORT"; port may be a wildcard */
    const char *token;     /* shared secret workers must present (required) */
    int n_nodes;           /* 1..RT_MAX_NODES */
    const struct coord_node_spec *nodes; /* copied */
    enum coord_sched sched;
    uint64_t seed;        /* for the random scheduler */
    int heartbeat_ms;     /* worker heartbeat period (0: 200) */
    int dead_ms;          /* declared dead after this long unheard (0: 3000) */
    int max_queue;        /* requests waiting for admission before submit fails (0: 1024) */
    int drain_timeout_ms; /* a draining node's requests are re-routed after this (0: 60000) */
    /* When no route of live workers covers every layer, a request waits this long for one
     * (a worker restarting) before it fails with HX_ECLOSED (HTTP 503). 0: fail at once. */
    int route_wait_ms;
    /* CURVE on the control socket (AUTO: on unless `workers` is a loopback endpoint); the
     * workers' data sockets follow. */
    enum rt_curve curve;
    /* The coordinator's secret key (Z85); NULL: derived from `token`, so workers need only
     * the token. */
    const char *secret_key;
    /* When n_worker_keys > 0: only these (name, public key) may connect and register (an
     * operator-managed keys file); each node's REGISTER must present its listed key. Else any
     * key that completes the handshake may register with the token. Copied. */
    const struct xsec_peer *worker_keys;
    int n_worker_keys;
};

struct coord;

/* Load the tokenizer and config, bind the control socket. Nothing runs until coord_start. */
int coord_new(const struct coord_opts *o, struct coord **out, struct hx_diag *diag);
/* Start the loop thread. 0 or HX_EIO. */
int coord_start(struct coord *c, struct hx_diag *diag);
/* The bound control endpoint (port resolved), for workers to connect to. */
const char *coord_endpoint(const struct coord *c);
/* The control socket's CURVE public key (Z85), or "" in plain mode. */
const char *coord_public_key(const struct coord *c);
/*
 * Wait until every node of the plan is READY (or timeout_ms passes; -1 = forever).
 * 0, HX_ETIMEDOUT (diag names the nodes still missing).
 */
int coord_wait_ready(struct coord *c, int timeout_ms, struct hx_diag *diag);
/* Number of nodes READY now, and whether the live nodes cover all layers (1/0). */
int coord_ready_count(struct coord *c, int *covered);
/* Send SHUTDOWN to every worker, stop the loop thread, fail open streams, free. NULL ok. */
void coord_free(struct coord *c);

/* The model's name (its directory's basename) and context limit, for /v1/models. */
const char *coord_model_name(const struct coord *c);
int coord_max_context(const struct coord *c);

/*
 * Optional push interface for a request's output (used by the HTTP front end): every call
 * runs on the coordinator's loop thread and must not block. With a sink, coord_submit returns
 * no stream; cancellation is polled through cancelled().
 */
struct coord_sink {
    /* One call per generated token (EOS excluded); text holds the complete UTF-8 it adds
     * (possibly empty while a character is split across tokens). Return nonzero to cancel. */
    int (*token)(void *user, const char *text, size_t len);
    /* Normal end: finish_reason "stop" or "length". */
    void (*done)(void *user, const char *finish_reason, int prompt_tokens, int completion_tokens);
    /* Abnormal end (no route left, shutdown, worker error): code is an HX_E* status. */
    void (*error)(void *user, int code, const char *message);
    /* Optional: 1 once the consumer has gone away (the request is then dropped). */
    int (*cancelled)(void *user);
    /* Optional: the coordinator holds `user` no more (called exactly once, last). */
    void (*release)(void *user);
    /* Optional: the prompt's token count, called once by coord_submit (caller's thread)
     * before any other callback. */
    void (*prompt_tokens)(void *user, int n);
};

struct coord_request {
    const struct coord_sink *sink; /* NULL: pull the output with coord_stream_next */
    void *sink_user;
    const char *prompt; /* text (borrowed; tokenised with BOS) */
    size_t prompt_len;
    int max_tokens;    /* new tokens (> 0; clamped to the context) */
    float temperature; /* 0 = greedy */
    float top_p;       /* (0, 1]; 1 = off */
    uint64_t seed;
    int n_stop; /* 0..RT_MAX_STOP */
    const char *stop[RT_MAX_STOP];
    int ignore_eos;
};

enum coord_event_type {
    COORD_EVENT_TEXT = 1,  /* text: a UTF-8 delta (possibly empty) */
    COORD_EVENT_DONE = 2,  /* finish_reason: "stop" | "length"; usage counts filled */
    COORD_EVENT_ERROR = 3, /* text: the error; code: HX_E* */
};

struct coord_event {
    enum coord_event_type type;
    const char *text; /* owned by the stream, valid until the next coord_stream_next/free */
    size_t len;
    const char *finish_reason;
    int code;
    int prompt_tokens;
    int completion_tokens;
};

struct coord_stream;

/*
 * Submit a request. On success *out is the client's end of it (free with coord_stream_free,
 * which cancels it if still running); with r->sink set, *out is NULL and output goes to the
 * sink (on success the sink's release() will run exactly once; on failure never). Returns 0,
 * HX_EINVAL (bad parameters, prompt longer than the context), HX_EFULL (the admission queue is
 * full) or HX_ECLOSED (shutting down). A request that cannot be admitted now waits in a FIFO queue;
 * it is never dropped silently.
 */
int coord_submit(struct coord *c, const struct coord_request *r, struct coord_stream **out,
                 struct hx_diag *diag);
/*
 * Next event of a stream, waiting up to timeout_ms (-1 forever). Returns 0 with *ev filled,
 * or HX_ETIMEDOUT. After DONE or ERROR every further call returns that event again.
 * TEXT events are coalesced: one event carries all text produced since the last call.
 */
int coord_stream_next(struct coord_stream *s, int timeout_ms, struct coord_event *ev);
void coord_stream_free(struct coord_stream *s);

/* Append Prometheus text-format metrics (per node, per link, planned vs achieved flow). */
void coord_metrics(struct coord *c, struct strbuf *out);
/*
 * Append the operator view as one JSON object (GET /v1/cluster; docs/dashboard.md lists the
 * fields): workers, links, the live bottleneck, request counters, a 5-minute history and the
 * last membership events. Rendered by the loop every 250 ms; thread-safe.
 */
void coord_cluster_json(struct coord *c, struct strbuf *out);
/*
 * Drain worker `name` (thread-safe; the loop acts within a few ms): nothing new is routed to
 * it, the requests running through it finish in place, then it gets SHUTDOWN ("drained") and
 * leaves; after drain_timeout_ms what still runs there is re-routed. A worker drains itself
 * the same way on SIGTERM (DRAIN). 0, or HX_ENOTFOUND (no such node in the plan).
 */
int coord_drain(struct coord *c, const char *name, struct hx_diag *diag);

/* ---- streaming stop-string matcher (pure; exposed for tests) ----------------------------- */

/*
 * Given all generated text so far (text, len) of which `emitted` bytes were already sent, and
 * the stop strings: returns how many more bytes may be emitted now, and sets *stopped to 1
 * when a stop string occurs (then text[emitted .. emitted + returned) is the final piece, the
 * stop string itself excluded). Bytes that might begin a stop string are held back.
 */
size_t coord_stop_scan(const char *text, size_t len, size_t emitted, const char *const *stop,
                       int n_stop, int *stopped);

/* ---- profiling: measure this machine for the planner (profile.c) ------------------------ */

/*
 * A measured "model x node type" profile in our model-profile format (docs/formats.md, the
 * same as data/models/llama2_70b.ini + its CSVs): written by rt_profile_write, read back by
 * model_profile_read_file. Curves are per layer, x = batch tokens, milliseconds.
 */
struct rt_prof_type {
    char type[32];
    int threads;        /* CPU backend threads it was measured with */
    uint64_t kv_bytes;  /* the KV budget the kv_blocks come from (0: the worker default) */
    uint64_t mem_bytes; /* a worker's --mem-bytes cap they come from instead (0: none) */
    char device[64];    /* "" or "cpu": the CPU backend; else the GPU it was measured on */
    int max_layers;
    int *kv_blocks;           /* [max_layers], k = 1..max_layers */
    int *prompt_max_requests; /* [max_layers] */
    int *decode_max_tokens;   /* [max_layers] */
    int typical_layers;
    int typical_layers_large;
    double initial_perf;
    int n_prompt;
    double *prompt_x; /* total prompt tokens of a batch, strictly increasing from 0 */
    double *prompt_ms;
    int n_decode;
    double *decode_x; /* sequences of a decode batch (one token each), from 0 */
    double *decode_ms;
};

struct rt_prof {
    char name[64]; /* model name (the directory's basename, sanitised) */
    int n_layers;
    double layer_bytes;      /* one layer's weights in weight_format */
    char weight_format[16];  /* "bf16", "q8_0", "q4_0" ...: what the layer was measured in */
    double token_bytes;      /* int32 token ids on the wire: 4 */
    double activation_bytes; /* f32 activations: 4 * hidden */
    int hidden, heads, kv_heads, ffn;
    int avg_input_len, avg_output_len, max_input_len, kv_block_size;
    int decode_per_token_max_context;
    double kv_cache_hwm;
    int iterations;
    int n_types;
    struct rt_prof_type *types;
};

struct rt_profile_opts {
    const char *model_dir; /* HF model directory */
    const char *type;      /* node type name ([A-Za-z0-9._-]{1,31}); NULL: "cpu-t<threads>" */
    int threads;           /* CPU backend threads (<= 0: all online CPUs) */
    /* Measure on this backend (borrowed, e.g. eng_backend_open("cuda:0")); NULL: the CPU
     * backend with `threads` threads. */
    struct eng_backend *backend;
    /* The backend in words for the profile's comments ("cuda:0 NVIDIA H100 80GB HBM3");
     * NULL or "cpu": the CPU backend (the comments then read as they always did). */
    const char *device;
    uint64_t kv_bytes; /* KV budget of a worker of this type (0: the worker's default) */
    /* Memory cap of a worker of this type (`helix worker --mem-bytes`; 0: none): with k layers
     * its KV budget is mem_bytes - k layers' weights - the activation scratch - the embedding
     * and LM head (room for both: the type may be a first or last stage; kv_bytes, if set,
     * lowers it further), so max_layers and kv_blocks follow the cap. */
    uint64_t mem_bytes;
    /* Weight format to measure in: "q8_0", "q4_0" (quantized at load), "bf16", "f16", "f32";
     * NULL: as stored. The profile's model name gets "-<format>" (one layer_bytes per INI). */
    const char *weights;
    double max_seconds; /* measuring time budget (<= 0: 3 s); at least one run per point */
    /* Longest prompt of the workload (max_input_len; 0: half the model's context). Larger
     * than the context is allowed (prompts of a batch are then measured as several
     * sequences), e.g. 2048 to simulate the bundled Azure traces on a short-context model. */
    int max_input_len;
    /* The workload's average prompt and output lengths (avg_input_len / avg_output_len: the
     * throughput model's typical request, and the decode context measured at; 0: Helix's 750
     * and 240, clamped to the context), e.g. those of the trace a simulation replays. */
    int avg_input_len;
    int avg_output_len;
    /* Optional progress, called after each measured point (what = "prompt" | "decode"). */
    void (*progress)(void *user, const char *what, double x, double ms, int i, int n);
    void *progress_user;
};

/*
 * Measure one transformer layer of the model on this machine (o->backend, or the CPU backend
 * with o->threads) for prefill batches of growing total token counts and decode batches of
 * growing sequence counts (each sequence at a realistic context: avg_input_len +
 * avg_output_len / 2), and derive the type's constants (kv_blocks per k from the KV budget,
 * prompt_max_requests, decode_max_tokens, typical layers, initial perf). Adds the type to *inout
 * (replacing one of the same name), or creates the profile when *inout is NULL. Times are the
 * minimum over the repetitions that fit the budget (the least-disturbed run on a shared machine).
 * Returns 0, HX_EINVAL (bad options, a KV budget that cannot hold one full-context sequence with
 * one layer, a profile of another model), or the engine's load/step errors.
 */
int rt_profile_measure(const struct rt_profile_opts *o, struct rt_prof **inout,
                       struct hx_diag *diag);
/*
 * Add to *inout (created as an empty copy of src's model when NULL) a type named `type` with
 * src_type's measured curves and initial perf but the KV constants of a worker with kv_bytes
 * (0: the worker default) - a node kind that computes like src_type and has another KV
 * budget. model_dir is the model (its config.json). 0, HX_ENOTFOUND, HX_EINVAL.
 */
int rt_profile_derive(const struct rt_prof *src, const char *src_type, const char *model_dir,
                      const char *type, uint64_t kv_bytes, struct rt_prof **inout,
                      struct hx_diag *diag);
/* The profile's model name for a model directory: its basename, characters outside
 * [A-Za-z0-9._-] as '_' (the INI is <name>.ini). */
void rt_profile_model_name(const char *dir, char *out, size_t n);
/* Convert a profile read by model_profile_read_file (curves loaded) for merging. */
int rt_profile_from_model(const struct model_profile *m, struct rt_prof **out,
                          struct hx_diag *diag);
/*
 * Write DIR/<name>.ini, DIR/profiles/<name>/<type>/{prompt,decode}_bs2time.csv and
 * DIR/machine_profiles.ini (the types' NICs as loopback, memory = 2 x max_layers x layer_bytes;
 * for `helix plan/simulate --machine-profiles`), creating directories. ini_path (may be NULL)
 * receives the INI's path. 0 or HX_EIO.
 */
int rt_profile_write(const struct rt_prof *p, const char *dir, char *ini_path, size_t n,
                     struct hx_diag *diag);
void rt_profile_free(struct rt_prof *p);

/*
 * Plan a local cluster: nodes i = 0..n-1 of type types[i] (in m), all linked over loopback
 * (every pair, source and sink; 10 Gbit/s, 0.1 ms), planned with `auto` within time_limit_s,
 * strict connectivity. Fills nodes[i] (names[i], range, capacity = the throughput model's
 * TP(k), i.e. model_node_capacity) and *objective (planner max-flow, tokens/s). A node the plan
 * leaves unused gets layer_start = layer_end = 0. Returns 0 or the planner's error.
 */
int rt_plan_local(const struct model_profile *m, int n, const char *const *types,
                  const char *const *names, double time_limit_s, struct coord_node_spec *nodes,
                  double *objective, struct hx_diag *diag);

#endif
