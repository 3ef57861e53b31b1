/*
 * coord_int.h - the coordinator's private state, shared by its parts: coordinator.c (the
 * loop: membership, routing, requests) and coord_view.c (what operators see: /metrics, the
 * GET /v1/cluster JSON and its history and events). Nothing outside src/runtime/coord*.c
 * includes it.
 */
#ifndef HX_RUNTIME_COORD_INT_H
#define HX_RUNTIME_COORD_INT_H

#include <pthread.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "runtime/proto.h"
#include "runtime/runtime.h"
#include "runtime/xsec.h"

struct creq;
struct eng_tok;
struct eng_tok_stream;
struct sched;
struct sched_link_desc;
struct sched_swarm;
struct xport;
struct xport_msg;
struct xport_ctx;
struct xport_live;

/* ---- the operator view's state (coord_view.c) ------------------------------------------ */

#define COORD_EVENTS 64   /* membership events kept for /v1/cluster */
#define COORD_HISTORY 300 /* 1 s samples kept (5 minutes) */

struct coord_view_event {
    int64_t t_us; /* hx_clock_now_us() */
    int64_t unix_ms;
    char node[RT_NAME_MAX + 1];
    char kind[16]; /* register, ready, down, refused */
    char detail[160];
};

struct coord_view_sample {
    double t_s;          /* since the coordinator started */
    double req_per_s;    /* requests finished (completed + failed) per second */
    double tokens_per_s; /* tokens generated per second (all requests) */
    int queued;
    int running;
    double ttft_ms;  /* mean time to first token of the window's first tokens; -1: none */
    double tpot_ms;  /* mean time between tokens within the window; -1: none */
    uint64_t failed; /* failed requests in the window */
};

struct coord_view_state {
    struct coord_view_event events[COORD_EVENTS];
    uint64_t n_events; /* ever logged; the ring holds the last COORD_EVENTS */
    struct coord_view_sample hist[COORD_HISTORY];
    uint64_t n_hist;
    int64_t win_start_us;
    uint64_t win_completed;
    uint64_t win_failed;
    uint64_t gen_tokens; /* tokens generated, ever */
    uint64_t win_gen_tokens;
    double win_ttft_sum_ms;
    uint64_t win_ttft_n;
    double win_tpot_sum_ms;
    uint64_t win_tpot_n;
    double ttft_sum_s; /* ever, for /metrics */
    uint64_t ttft_n;
    double tpot_sum_s;
    uint64_t tpot_n;
};

/* Log a membership event (loop thread). */
void coord_view_event(struct coord *c, const char *node, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A request's token arrived at time now (loop thread): TTFT and per-token latency. */
void coord_view_token(struct coord *c, struct creq *r, int64_t now_us);
/* Re-render /metrics and /v1/cluster (loop thread, every 250 ms; rates over >= 1 s windows). */
void coord_view_render(struct coord *c);

/* ---- between the loop (coordinator.c) and membership (coord_members.c) ------------------- */

/* coordinator.c */
int coord_node_by_name(const struct coord *c, const char *name); /* -1: not in the plan */
int coord_send_ctrl(struct coord *c, int node, struct proto_header *h, const union proto_body *b);
void coord_sched_sync(struct coord *c); /* recompute the flow over live, undrained nodes */
void coord_req_requeue(struct coord *c, struct creq *r, int64_t delay_us);
size_t coord_node_block_bytes(const struct coord *c, int i);

/* coord_members.c */
void coord_handle_register(struct coord *c, struct xport_msg *m);
void coord_handle_ready(struct coord *c, int i, const struct proto_ready *rd);
void coord_node_down(struct coord *c, int i, const char *why); /* re-routes its requests */
void coord_node_drain(struct coord *c, int i, const char *why);
void coord_send_assign(struct coord *c, int node); /* its range and the live peer table */
void coord_ping_workers(struct coord *c);
void coord_members_tick(struct coord *c);      /* the silent, the dead, drains */
void coord_node_heard(struct coord *c, int i); /* a silent node spoke: back in the flow */

/* ---- the coordinator ---------------------------------------------------------------------- */

#define COORD_KV_BLOCK ENG_KV_BLOCK
#define COORD_RETRY_MAX 8
#define COORD_RETRY_DELAY_US 300000

enum node_state {
    NODE_WAITING = 0, /* never registered */
    NODE_LOADING = 1, /* ASSIGN sent, waiting for READY */
    NODE_READY = 2,
    NODE_DEAD = 3,
};

const char *coord_node_state_name(int s);

struct cnode {
    struct coord_node_spec spec;
    int state;
    char endpoint[PROTO_ENDPOINT_MAX + 1];
    /* what the worker computes on, from REGISTER (updated by heartbeats) */
    char backend[PROTO_BACKEND_MAX + 1];
    char device[PROTO_DEVICE_MAX + 1];
    uint64_t mem_cap_bytes; /* REGISTER.mem_bytes: the worker's --mem-bytes (0: none) */
    /* CURVE: the key it registered with (its connection's key); "" in plain mode */
    char curve_key[PROTO_CURVE_KEY_LEN + 1];
    /* what the worker refused, from its heartbeats (struct proto_heartbeat) */
    uint64_t hb_refused[4];
    long kv_blocks_total;
    long kv_blocks_used; /* reserved by admitted requests */
    int n_active;
    /* heartbeat telemetry */
    uint32_t hb_active;
    uint64_t hb_kv_used;
    uint64_t hb_kv_total;
    /* counters */
    uint64_t tokens; /* tokens processed (prefill + decode) by this node */
    uint64_t steps;  /* forward messages through this node */
    uint64_t joins;
    int64_t last_reject_us;
    int64_t last_seen_us; /* last message from this worker */
    int64_t ready_us;     /* when it last became READY (0: never) */
    /* draining (DRAIN from the worker, or coord_drain): READY for the requests in flight, out
     * of routing for new ones; SHUTDOWN "drained" once none runs through it */
    int draining;
    int silent; /* READY but unheard for 3 heartbeat periods: out of the flow until it speaks */
    int left;   /* its last exit was a finished drain (shown as "left", not "down") */
    int64_t drain_start_us;
    char drain_why[128];
    double rate_tokens; /* tokens/s over the last window */
    uint64_t win_tokens;
};

/* Per directed link endpoint pair, as sched link index; counters for /metrics. */
struct clink {
    int from;
    int to;
    uint64_t bytes;
    uint64_t tokens;
    uint64_t win_bytes;
    uint64_t win_tokens;
    double rate_bytes;
    double rate_tokens;
};

struct coord_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    struct strbuf pending; /* produced, not yet read */
    struct strbuf out;     /* handed to the reader by the last coord_stream_next */
    int done;              /* 1 = DONE, 2 = ERROR */
    int code;
    char finish[16];
    char err[512];
    int prompt_tokens;
    int completion_tokens;
    int cancelled;
};

struct coord_hop {
    int node;
    int layer_start;
    int layer_end;
};

enum req_state {
    REQ_QUEUED = 0,
    REQ_RUNNING = 1,
    REQ_RETRY = 2, /* waiting until retry_at_us, then queued again */
};

struct creq {
    uint64_t id;
    uint64_t wire_id;
    struct coord_stream *stream;
    const struct coord_sink *sink;
    void *sink_user;
    int32_t *prompt;
    int n_prompt;
    int32_t *gen;
    int n_gen;
    int max_new;
    float temperature;
    float top_p;
    uint64_t seed;
    int n_stop;
    char stop[RT_MAX_STOP][RT_STOP_MAX_BYTES + 1];
    int ignore_eos;
    int state;
    int64_t retry_at_us;
    int attempts;
    int n_hops;
    struct coord_hop hops[PROTO_MAX_HOPS];
    int hop_link[PROTO_MAX_HOPS + 1]; /* sched link index of each hop, and into the sink */
    long reserve_blocks;
    uint32_t expect_seq; /* seq of the TOKEN we wait for */
    int sent_tokens;     /* tokens in the forward message in flight */
    int64_t sent_us;
    int64_t submit_us;     /* when coord_submit took it (TTFT starts here) */
    int64_t wait_start_us; /* since when it waits for a route (submit, or losing its route) */
    int64_t last_tok_us;   /* when its last token arrived (0: none yet) */
    struct eng_tok_stream *detok;
    struct strbuf text;
    size_t emitted;
};

struct coord {
    struct coord_opts o;
    struct cnode *nodes;
    int n_nodes;
    int n_layers;
    int hidden;
    int max_ctx;
    int kv_dim;
    int eos_id;
    char model_name[128];
    char *model_dir;
    char *token;
    struct eng_tok *tok;
    struct xport_ctx *ctx;
    struct xport *ctrl;
    struct xport_live *live;
    /* CURVE (docs/protocol.md §8): our key pair and the ZAP handler of the control socket */
    int curve;
    struct xsec_keypair kp;
    struct xsec *sec;
    struct xsec_peer *worker_keys; /* the keys file's set, or NULL: any key with the token */
    int n_worker_keys;
    uint64_t refused_messages; /* messages over a handshake whose key is not the node's */
    struct sched *sched;
    int n_links;
    struct sched_link_desc *link_desc;
    struct clink *links;
    double *iwrr_load; /* per link: IWRR virtual load (reset when the flow is recomputed) */
    struct sched_swarm *swarm;
    int *swarm_n_out;  /* per sender (0 = source, 1 + i = node i) */
    int **swarm_links; /* per sender: its out-links (link indices), link order */
    uint64_t rng;
    /* loop-owned */
    struct creq **reqs;
    int n_reqs;
    int cap_reqs;
    uint64_t next_wire;
    int64_t win_start_us;
    uint64_t completed;
    uint64_t failed;
    uint64_t rerouted;
    uint64_t cancelled; /* the client went away, or the api stopped it (stop string, limit) */
    /* shared with client threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct creq **inbox;
    int n_inbox;
    int cap_inbox;
    int n_queued_shared;
    int n_ready_shared;
    int covered_shared;
    uint64_t next_id;
    int stopping;
    struct strbuf metrics;
    /* coord_drain: node names to drain, taken by the loop (under mu) */
    char (*drain_inbox)[RT_NAME_MAX + 1];
    int n_drain_inbox;
    int cap_drain_inbox;
    struct strbuf cluster_json; /* GET /v1/cluster, rendered with the metrics */
    /* the operator view (coord_view.c), loop-owned */
    int64_t start_us;
    struct coord_view_state view;
    pthread_t thread;
    int started;
};

/* Whether new requests may be routed through node n: ready, not draining, not silent. The
 * flow (coord_sched_sync), the route search and admission all ask this. */
static inline int coord_node_routable(const struct cnode *n)
{
    return n->state == NODE_READY && !n->draining && !n->silent;
}

#endif
