/*
 * cuda.h - the CUDA backend's entry points beyond backend.h (C linkage; no CUDA types), for
 * the engine's device selection (device.c) and the CUDA tests. Built only with make CUDA=1.
 */
#ifndef HX_ENGINE_CUDA_CUDA_H
#define HX_ENGINE_CUDA_CUDA_H

#include <stddef.h>

struct eng_backend;
struct hx_diag;

/* GPUs the driver sees. HX_EDEVICE (no driver, no GPU: the message says which) sets *n = 0. */
int eng_cuda_device_count(int *n, struct hx_diag *diag);
/* The first CUDA error any op of be hit (ops are void: errors are sticky), or HX_OK. */
int eng_cuda_backend_error(struct eng_backend *be, struct hx_diag *diag);
/* The device's name ("NVIDIA H100 80GB HBM3"). */
const char *eng_cuda_device_name(const struct eng_backend *be);

/* Device-memory read bandwidth in bytes/s: best of reps timed passes of a kernel summing a
 * fresh buffer of `bytes` (the anchor of decode, which streams every weight once). 0 on error. */
double eng_cuda_read_bandwidth(struct eng_backend *be, size_t bytes, int reps);

/* The high-water mark of device memory this backend has allocated (weights, KV, buffers,
 * scratch), in bytes (backend_cuda.cu). */
size_t eng_cuda_peak_bytes(const struct eng_backend *be);

/* Per-op device time: on (1) every op is bracketed by events from then on; the report lists,
 * per op name, calls, total ms and the bytes of weights and KV it read, as GB/s. */
void eng_cuda_profile(struct eng_backend *be, int on);
/* Write the profile table (one line per op, "# " prefixed) to f (a FILE *); resets it. */
void eng_cuda_profile_report(struct eng_backend *be, void *f);

/* probe.cu: the card's dense bf16 GEMM rate in FLOP/s (cuBLAS, n x n x n, bf16 inputs, fp32
 * accumulation, random data; best of reps after a warm-up), 0 on error. */
double eng_cuda_gemm_rate(struct eng_backend *be, int n, int reps);
/* probe.cu: free and total device memory of be's device, bytes. */
void eng_cuda_mem_info(struct eng_backend *be, size_t *free_b, size_t *total_b);

#endif
