/*
 * device.c - choosing a backend by name: "cpu", "cuda" (device 0) or "cuda:N". In a build
 * without CUDA (plain `make`), eng_cuda_backend_new says so; with `make CUDA=1` it is
 * src/engine/cuda/backend_cuda.cu.
 */
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "engine/engine.h"

#ifndef HX_HAVE_CUDA
int eng_cuda_backend_new(int device, struct eng_backend **out, struct hx_diag *diag)
{
    *out = NULL;
    return hx_diag_set(diag, HX_ENOTSUP,
                       "--device cuda:%d: this helix binary was built without CUDA "
                       "(rebuild with `make CUDA=1`)",
                       device);
}

int eng_cuda_available(void)
{
    return 0;
}
#else
#include "engine/cuda/cuda.h"

int eng_cuda_available(void)
{
    int n = 0;
    return eng_cuda_device_count(&n, NULL) == HX_OK ? n : 0;
}
#endif

int eng_device_parse(const char *device, int *is_cuda, int *index, struct hx_diag *diag)
{
    *is_cuda = 0;
    *index = 0;
    if (!device || strcmp(device, "cpu") == 0) {
        return HX_OK;
    }
    if (strcmp(device, "cuda") == 0) {
        *is_cuda = 1;
        return HX_OK;
    }
    if (strncmp(device, "cuda:", 5) == 0 && device[5] >= '0' && device[5] <= '9') {
        char *end = NULL;
        long v = strtol(device + 5, &end, 10);
        if (*end == '\0' && v >= 0 && v < 1024) {
            *is_cuda = 1;
            *index = (int)v;
            return HX_OK;
        }
    }
    return hx_diag_set(diag, HX_EINVAL, "bad device '%s' (want cpu, cuda or cuda:N)", device);
}

int eng_backend_open(const char *device, int n_threads, struct eng_backend **out,
                     struct hx_diag *diag)
{
    *out = NULL;
    int is_cuda = 0;
    int index = 0;
    int rc = eng_device_parse(device, &is_cuda, &index, diag);
    if (rc != HX_OK) {
        return rc;
    }
    return is_cuda ? eng_cuda_backend_new(index, out, diag)
                   : eng_cpu_backend_new(n_threads, out, diag);
}
