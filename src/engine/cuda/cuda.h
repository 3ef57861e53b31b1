/*
 * cuda.h - the CUDA backend's entry points beyond backend.h (C linkage; no CUDA types), for
 * the engine's device selection (device.c) and the CUDA tests. Built only with make CUDA=1.
 */
#ifndef HX_ENGINE_CUDA_CUDA_H
#define HX_ENGINE_CUDA_CUDA_H

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

#endif
