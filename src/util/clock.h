/* clock.h - monotonic time in milliseconds, and condition variables that
 * wait on it. */
#ifndef RILL_UTIL_CLOCK_H
#define RILL_UTIL_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static inline int64_t rill__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The monotonic clock as of the kernel's last timer tick: a few times
 * cheaper to read than rill__now_ms, and behind it by less than
 * rill__coarse_res_ms(). rill__now_ms where there is no such clock. */
static inline int64_t rill__coarse_ms(void)
{
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
#endif
    return rill__now_ms();
}

/* How far rill__coarse_ms may lag behind rill__now_ms, in whole ms. */
static inline int64_t rill__coarse_res_ms(void)
{
#ifdef CLOCK_MONOTONIC_COARSE
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0)
        return (int64_t)res.tv_sec * 1000 + (res.tv_nsec + 999999) / 1000000;
#endif
    return 1;
}

/* Absolute CLOCK_MONOTONIC deadline ms from now, for timed waits. */
static inline struct timespec rill__deadline_ts(int64_t abs_ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(abs_ms / 1000);
    ts.tv_nsec = (long)(abs_ms % 1000) * 1000000L;
    return ts;
}

/* A condition variable whose timed waits take rill__deadline_ts
 * deadlines (CLOCK_MONOTONIC). Returns 0, or non-zero when it cannot be
 * made. */
static inline int rill__cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a))
        return -1;
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &a);
    pthread_condattr_destroy(&a);
    return rc;
}

#endif
