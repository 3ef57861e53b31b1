/*
 * pool.c - the CPU backend's thread pool: n_threads - 1 workers sleep on a condition variable;
 * cpu_pool_run wakes them for one op, the caller works too, and tasks are handed out with an
 * atomic counter (so uneven tasks balance). One op at a time; the caller returns only when
 * every task has finished.
 */
#include "engine/cpu/cpu_int.h"

#include "base/alloc.h"
#include "base/status.h"

static void run_tasks(struct cpu_pool *p, int id)
{
    for (;;) {
        int t = atomic_fetch_add(&p->next, 1);
        if (t >= p->n_tasks) {
            break;
        }
        p->fn(p->ctx, t, id);
    }
}

static void *worker_main(void *arg)
{
    struct cpu_worker *wa = arg;
    struct cpu_pool *p = wa->pool;
    int id = wa->id;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->gen == seen && !p->stop) {
            pthread_cond_wait(&p->start, &p->mu);
        }
        if (p->stop) {
            break;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, id);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) {
            pthread_cond_signal(&p->done);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int cpu_pool_init(struct cpu_pool *p, int n_threads)
{
    p->n_threads = n_threads < 1 ? 1 : n_threads;
    p->gen = 0;
    p->pending = 0;
    p->stop = 0;
    atomic_init(&p->next, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->start, NULL);
    pthread_cond_init(&p->done, NULL);
    p->threads = xcalloc((size_t)p->n_threads, sizeof(pthread_t));
    p->workers = xcalloc((size_t)p->n_threads, sizeof(*p->workers));
    for (int i = 1; i < p->n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].id = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->workers[i]) != 0) {
            p->n_threads = i; /* run with the threads we have */
            break;
        }
    }
    return HX_OK;
}

void cpu_pool_release(struct cpu_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++) {
        pthread_join(p->threads[i], NULL);
    }
    xfree(p->threads);
    xfree(p->workers);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->start);
    pthread_cond_destroy(&p->done);
}

void cpu_pool_run(struct cpu_pool *p, cpu_task_fn *fn, void *ctx, int n_tasks)
{
    cpu_pool_run_sized(p, fn, ctx, n_tasks, (size_t)-1);
}

void cpu_pool_run_sized(struct cpu_pool *p, cpu_task_fn *fn, void *ctx, int n_tasks, size_t work)
{
    if (p->n_threads == 1 || n_tasks <= 1 || work < CPU_POOL_MIN_WORK) {
        for (int t = 0; t < n_tasks; t++) {
            fn(ctx, t, 0);
        }
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store(&p->next, 0);
    p->pending = p->n_threads - 1;
    p->gen++;
    pthread_cond_broadcast(&p->start);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) {
        pthread_cond_wait(&p->done, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
}
