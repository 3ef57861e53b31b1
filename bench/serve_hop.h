/*
 * serve_hop.h - bench_serve's per-hop part (serve_hop.c): one worker-to-worker hop of the data
 * plane, DEALER -> ROUTER over 127.0.0.1 between two ZeroMQ contexts as between two workers,
 * plain or with CURVE (a ZAP handler admitting the sender's key, as a worker's data socket
 * does).
 */
#ifndef HX_BENCH_SERVE_HOP_H
#define HX_BENCH_SERVE_HOP_H

#include <stddef.h>

struct hop_result {
    double decode_us_p50; /* one-way latency of a DECODE (header + one activation row) */
    double decode_us_p95;
    double prefill_mb_s; /* one-way bandwidth of PREFILL messages, MB/s (10^6 bytes) */
};

/*
 * Measure a hop: n_rt round trips of a DECODE of one `hidden`-wide f32 row (latency = RTT/2),
 * and n_prefill one-way PREFILLs of prefill_tokens x hidden f32 rows (zero-copy sends).
 * 0, or -1 with a message on stderr.
 */
int hop_bench_run(int curve, int hidden, int n_rt, int prefill_tokens, int n_prefill,
                  struct hop_result *out);

#endif
