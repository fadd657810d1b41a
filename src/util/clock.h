/* clock.h - monotonic time in milliseconds. */
#ifndef RILL_UTIL_CLOCK_H
#define RILL_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t rill__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Absolute CLOCK_MONOTONIC deadline ms from now, for timed waits. */
static inline struct timespec rill__deadline_ts(int64_t abs_ms)
{
    struct timespec ts;
    ts.tv_sec = (time_t)(abs_ms / 1000);
    ts.tv_nsec = (long)(abs_ms % 1000) * 1000000L;
    return ts;
}

#endif
