/*
 * backend_cpu.c - the CPU backend, the reference implementation of backend.h. Backend memory
 * is host memory (buffers are hx_calloc'd, weights point into the mmap'd files: zero copy).
 * Elementwise ops are straightforward loops; matmul (op_matmul.c) and attention
 * (op_attention.c) split their work over the thread pool. Numerics follow Hugging Face's
 * float32 LLaMA: RMSNorm in float with the weight applied after normalising, RoPE angles
 * formed in float32 like transformers' inv_freq, SiLU as x / (1 + e^-x).
 */
#include "engine/cpu/cpu_int.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/status.h"
#include "engine/engine_int.h"

#define MAX_HEAD_DIM 1024

static int cpu_buf_alloc(struct eng_backend *be, size_t n, void **out)
{
    (void)be;
    *out = hx_calloc(1, n);
    return *out ? HX_OK : HX_ENOMEM;
}

static void cpu_buf_free(struct eng_backend *be, void *p)
{
    (void)be;
    xfree(p);
}

static int cpu_weight_upload(struct eng_backend *be, const struct eng_weight *host,
                             struct eng_weight *out, struct hx_diag *diag)
{
    (void)be;
    (void)diag;
    *out = *host; /* zero copy: the model keeps the file mapped */
    return HX_OK;
}

static void cpu_weight_release(struct eng_backend *be, struct eng_weight *w)
{
    (void)be;
    w->data = NULL;
}

static void cpu_memcpy(struct eng_backend *be, void *dst, const void *src, size_t n)
{
    (void)be;
    if (n) {
        memcpy(dst, src, n);
    }
}

static void cpu_sync(struct eng_backend *be)
{
    (void)be;
}

int cpu_scratch_reserve(struct eng_cpu_backend *cb, size_t n)
{
    if (n <= cb->scratch_floats) {
        return HX_OK;
    }
    for (int i = 0; i < cb->pool.n_threads; i++) {
        float *p = hx_malloc(n * sizeof(float));
        if (!p) {
            return HX_ENOMEM;
        }
        xfree(cb->scratch[i]);
        cb->scratch[i] = p;
    }
    cb->scratch_floats = n;
    return HX_OK;
}

static int cpu_reserve(struct eng_backend *be, int max_rows, int max_cols, struct hx_diag *diag)
{
    struct eng_cpu_backend *cb = (struct eng_cpu_backend *)be;
    size_t split = (size_t)(max_rows < CPU_SMALL_M ? max_rows : CPU_SMALL_M) * (size_t)max_cols;
    if (cb->wide && split > cb->xsplit_floats) {
        float *p = hx_malloc(split * sizeof(float));
        if (!p) {
            return hx_diag_set(diag, HX_ENOMEM, "cpu backend: cannot allocate %zu bytes of scratch",
                               split * sizeof(float));
        }
        xfree(cb->xsplit);
        cb->xsplit = p;
        cb->xsplit_floats = split;
    }
    /* input rows quantized for the Q8_0/Q4_0 kernels: int8 values, a scale and a sum per 32 */
    if (split > cb->xq_elems) {
        size_t nb = split / ENG_QBLOCK + 1;
        int8_t *q = hx_malloc(split);
        int16_t *q2 = hx_malloc(split * sizeof(int16_t));
        float *d = hx_malloc(nb * sizeof(float));
        int32_t *sm = hx_malloc(nb * sizeof(int32_t));
        if (!q || !q2 || !d || !sm) {
            xfree(q);
            xfree(q2);
            xfree(d);
            xfree(sm);
            return hx_diag_set(diag, HX_ENOMEM, "cpu backend: cannot allocate %zu bytes of scratch",
                               3 * split + 2 * nb * sizeof(float));
        }
        xfree(cb->xq);
        xfree(cb->x16);
        xfree(cb->xqd);
        xfree(cb->xqs);
        cb->xq = q;
        cb->x16 = q2;
        cb->xqd = d;
        cb->xqs = sm;
        cb->xq_elems = split;
    }
    /* the largest tile any k <= max_cols uses: rows x k <= max(target, 16 x k) */
    size_t need = (size_t)CPU_TILE_TARGET_FLOATS;
    if ((size_t)16 * (size_t)max_cols > need) {
        need = (size_t)16 * (size_t)max_cols;
    }
    if (cpu_scratch_reserve(cb, need) != HX_OK) {
        return hx_diag_set(diag, HX_ENOMEM, "cpu backend: cannot allocate %zu bytes of scratch",
                           need * sizeof(float));
    }
    return HX_OK;
}

static void cpu_embed(struct eng_backend *be, const struct eng_weight *table, const int32_t *ids,
                      int n, float *out)
{
    (void)be;
    size_t dim = (size_t)table->cols;
    size_t row_bytes = eng_dtype_row_bytes(table->dtype, table->cols);
    for (int i = 0; i < n; i++) {
        const unsigned char *row = (const unsigned char *)table->data + (size_t)ids[i] * row_bytes;
        eng_dequant_row(table->dtype, row, out + (size_t)i * dim, dim);
    }
}

struct rms_ctx {
    const float *x;
    const struct eng_weight *w;
    int n;
    float eps;
    float *out;
};

#define ROWS_PER_TASK 4
#define ELEMS_PER_TASK 16384

static void rmsnorm_task(void *ctx, int task, int thread)
{
    (void)thread;
    const struct rms_ctx *c = ctx;
    size_t dim = (size_t)c->w->cols;
    int i1 = (task + 1) * ROWS_PER_TASK < c->n ? (task + 1) * ROWS_PER_TASK : c->n;
    for (int i = task * ROWS_PER_TASK; i < i1; i++) {
        const float *xi = c->x + (size_t)i * dim;
        float *oi = c->out + (size_t)i * dim;
        double ss = 0.0;
        for (size_t j = 0; j < dim; j++) {
            ss += (double)xi[j] * (double)xi[j];
        }
        float scale = (float)(1.0 / sqrt(ss / (double)dim + (double)c->eps));
        for (size_t j = 0; j < dim; j++) {
            oi[j] = eng_weight_get(c->w, j) * (xi[j] * scale);
        }
    }
}

static void cpu_rmsnorm(struct eng_backend *be, const float *x, const struct eng_weight *w, int n,
                        float eps, float *out)
{
    struct eng_cpu_backend *cb = (struct eng_cpu_backend *)be;
    struct rms_ctx c = {x, w, n, eps, out};
    cpu_pool_run_sized(&cb->pool, rmsnorm_task, &c, (n + ROWS_PER_TASK - 1) / ROWS_PER_TASK,
                       (size_t)n * (size_t)w->cols * 4);
}

static void cpu_rope(struct eng_backend *be, float *x, int n, int n_heads, int head_dim,
                     const int32_t *pos, double theta)
{
    (void)be;
    int half = head_dim / 2;
    float cosv[MAX_HEAD_DIM / 2];
    float sinv[MAX_HEAD_DIM / 2];
    for (int t = 0; t < n; t++) {
        for (int j = 0; j < half; j++) {
            /* as transformers: inv_freq and the angle are float32 */
            float inv_freq = (float)(1.0 / pow(theta, (double)(2 * j) / (double)head_dim));
            float angle = (float)pos[t] * inv_freq;
            cosv[j] = (float)cos((double)angle);
            sinv[j] = (float)sin((double)angle);
        }
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * (size_t)n_heads + (size_t)h) * (size_t)head_dim;
            for (int j = 0; j < half; j++) {
                float a = v[j];
                float b = v[j + half];
                v[j] = a * cosv[j] - b * sinv[j];
                v[j + half] = b * cosv[j] + a * sinv[j];
            }
        }
    }
}

struct ew_ctx {
    const float *a;
    const float *b;
    float *out;
    size_t n;
};

static void swiglu_task(void *ctx, int task, int thread)
{
    (void)thread;
    const struct ew_ctx *c = ctx;
    size_t i0 = (size_t)task * ELEMS_PER_TASK;
    size_t i1 = i0 + ELEMS_PER_TASK < c->n ? i0 + ELEMS_PER_TASK : c->n;
    for (size_t i = i0; i < i1; i++) {
        float g = c->a[i];
        c->out[i] = g / (1.0f + expf(-g)) * c->b[i];
    }
}

static void add_task(void *ctx, int task, int thread)
{
    (void)thread;
    const struct ew_ctx *c = ctx;
    size_t i0 = (size_t)task * ELEMS_PER_TASK;
    size_t i1 = i0 + ELEMS_PER_TASK < c->n ? i0 + ELEMS_PER_TASK : c->n;
    for (size_t i = i0; i < i1; i++) {
        c->out[i] += c->b[i];
    }
}

static int elem_tasks(size_t n)
{
    return (int)((n + ELEMS_PER_TASK - 1) / ELEMS_PER_TASK);
}

/* SiLU costs an exponential: count it as 16 multiply-adds for the pool's threshold. */
static void cpu_swiglu(struct eng_backend *be, const float *gate, const float *up, size_t n,
                       float *out)
{
    struct eng_cpu_backend *cb = (struct eng_cpu_backend *)be;
    struct ew_ctx c = {gate, up, out, n};
    cpu_pool_run_sized(&cb->pool, swiglu_task, &c, elem_tasks(n), n * 16);
}

static void cpu_add(struct eng_backend *be, float *x, const float *y, size_t n)
{
    struct eng_cpu_backend *cb = (struct eng_cpu_backend *)be;
    struct ew_ctx c = {NULL, y, x, n};
    cpu_pool_run_sized(&cb->pool, add_task, &c, elem_tasks(n), n);
}

static void cpu_destroy(struct eng_backend *be)
{
    struct eng_cpu_backend *cb = (struct eng_cpu_backend *)be;
    for (int i = 0; i < cb->pool.n_threads; i++) {
        xfree(cb->scratch[i]);
    }
    cpu_pool_release(&cb->pool);
    xfree(cb->scratch);
    xfree(cb->xsplit);
    xfree(cb->xq);
    xfree(cb->x16);
    xfree(cb->xqd);
    xfree(cb->xqs);
    xfree(cb);
}

static const struct eng_backend_ops cpu_ops = {
    .name = "cpu",
    .kv_dtypes = 1u << ENG_DTYPE_F32, /* the oracle: exact float32, as transformers' golden runs */
    .weight_dtypes = (1u << ENG_DTYPE_F32) | (1u << ENG_DTYPE_F16) | (1u << ENG_DTYPE_BF16) |
                     (1u << ENG_DTYPE_Q8_0) | (1u << ENG_DTYPE_Q4_0),
    .destroy = cpu_destroy,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .weight_upload = cpu_weight_upload,
    .weight_release = cpu_weight_release,
    .to_device = cpu_memcpy,
    .to_host = cpu_memcpy,
    .copy = cpu_memcpy,
    .sync = cpu_sync,
    .reserve = cpu_reserve,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .matmul = cpu_op_matmul,
    .rope = cpu_rope,
    .kv_store = cpu_op_kv_store,
    .attention = cpu_op_attention,
    .swiglu = cpu_swiglu,
    .add = cpu_add,
};

int eng_cpu_backend_new(int n_threads, struct eng_backend **out, struct hx_diag *diag)
{
    *out = NULL;
    if (n_threads <= 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = online > 0 ? (int)online : 1;
    }
    if (n_threads > 256) {
        return hx_diag_set(diag, HX_EINVAL, "cpu backend: %d threads (at most 256)", n_threads);
    }
    struct eng_cpu_backend *cb = hx_calloc(1, sizeof(*cb));
    if (!cb) {
        return hx_diag_set(diag, HX_ENOMEM, "cpu backend: out of memory");
    }
    cb->base.ops = &cpu_ops;
    cb->base.kv_dtype = ENG_DTYPE_F32;
    cb->wide = cpu_matmul_wide_ok();
    cb->quant_kind = cpu_quant_kind();
    /* our pool splits the work; each sgemm call runs on the thread that makes it */
    openblas_set_num_threads(1);
    cpu_pool_init(&cb->pool, n_threads);
    cb->scratch = xcalloc((size_t)cb->pool.n_threads, sizeof(float *));
    *out = &cb->base;
    return HX_OK;
}

void eng_backend_free(struct eng_backend *be)
{
    if (be) {
        be->ops->destroy(be);
    }
}

const char *eng_backend_name(const struct eng_backend *be)
{
    return be->ops->name;
}

int eng_kv_dtype_parse(const char *name, enum eng_dtype *out)
{
    if (strcmp(name, "f32") == 0) {
        *out = ENG_DTYPE_F32;
    } else if (strcmp(name, "bf16") == 0) {
        *out = ENG_DTYPE_BF16;
    } else {
        return -1;
    }
    return 0;
}

int eng_backend_set_kv_dtype(struct eng_backend *be, const char *dtype, struct hx_diag *diag)
{
    enum eng_dtype dt;
    if (eng_kv_dtype_parse(dtype, &dt) != 0) {
        return hx_diag_set(diag, HX_EINVAL, "bad KV cache dtype '%s' (f32 or bf16)", dtype);
    }
    if (!(be->ops->kv_dtypes & (1u << dt))) {
        return hx_diag_set(diag, HX_ENOTSUP,
                           "the %s backend keeps its KV cache in float32 (bf16 is the GPU's)",
                           be->ops->name);
    }
    be->kv_dtype = dt;
    return HX_OK;
}

enum eng_dtype eng_backend_kv_dtype(const struct eng_backend *be)
{
    return be->kv_dtype;
}
