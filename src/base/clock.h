/*
 * clock.h - monotonic and wall clocks. Pure modules (plan, sim, sched) never include this:
 * callers inject time so those modules stay deterministic.
 */
#ifndef HX_BASE_CLOCK_H
#define HX_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic time in seconds (CLOCK_MONOTONIC). */
static inline double hx_clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Monotonic time in microseconds. */
static inline int64_t hx_clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
