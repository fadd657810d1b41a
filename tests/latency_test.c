/* latency_test.c - records, watermarks and lines reach their consumer
 * while the job runs, whatever the rate of the source: buffers leave on
 * their timeout, periodic watermarks on their interval, the file source
 * passes on each line of a pipe as it comes and stops when the job is
 * canceled, the print sink flushes its stream.
 *
 * Each test waits for something to happen while the job runs, and gives up
 * after CAP_MS (then it fails): none of them measures how long it took. */
#define TEST_NAME "latency"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

/* How long a test waits for what it expects before it fails. */
#define CAP_MS 10000
/* How long one step of a slow source blocks. */
#define STEP_MS 400

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a beacon: one thread counts arrivals, another waits for them ------ */

typedef struct beacon {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int seen;
} beacon;

static void beacon_init(beacon *b)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, &a);
    pthread_condattr_destroy(&a);
    b->seen = 0;
}

static void beacon_free(beacon *b)
{
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
}

static void beacon_signal(beacon *b)
{
    pthread_mutex_lock(&b->mu);
    b->seen++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Wait until b has seen at least want arrivals, at most ms: 1 if it has. */
static int beacon_wait(beacon *b, int want, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->mu);
    while (b->seen < want && pthread_cond_timedwait(&b->cv, &b->mu, &until) == 0)
        ;
    int ok = b->seen >= want;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

static int signal_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    beacon_signal(ud);
    return 0;
}

/* ---- a slow source: one record, then steps that block ------------------ */

/* Emits one record (timestamp 1000), then returns RILL_SOURCE_MORE from
 * steps that each block up to STEP_MS, until the beacon has seen what the
 * test waits for (then it ends) or CAP_MS passed (then it gives up). */
typedef struct slow_source {
    beacon b;
    int emitted;
    int gave_up;
    int64_t since;
} slow_source;

static int emit_then_wait(rill_ctx *ctx, void *ud)
{
    slow_source *s = ud;
    if (!s->emitted) {
        uint64_t v = 7;
        s->emitted = 1;
        s->since = mono_ms();
        return rill_emit_ts(ctx, &v, sizeof v, 1000) ? -1 : RILL_SOURCE_MORE;
    }
    if (beacon_wait(&s->b, 1, STEP_MS))
        return RILL_SOURCE_END;
    if (mono_ms() - s->since > CAP_MS) {
        s->gave_up = 1;
        return RILL_SOURCE_END;
    }
    return RILL_SOURCE_MORE;
}

static rill_stream *slow_stream(rill_env *env, slow_source *s)
{
    beacon_init(&s->b);
    s->emitted = s->gave_up = 0;
    return rill_stream_set_parallelism(rill_source(env, "slow", emit_then_wait, s), 1);
}

/* ---- buffer timeout ------------------------------------------------------ */

static const struct {
    const char *name;
    int64_t timeout; /* buffer timeout, ms */
    int keyed;       /* key_by, else rebalance */
} slow_cases[] = {
    {"1 ms, rebalance", 1, 0},
    {"20 ms, key_by", 20, 1},
    {"100 ms (the default), rebalance", 100, 0},
    {"1000 ms, key_by", 1000, 1},
};

/* A record in a partly filled buffer leaves on the buffer timeout while
 * its source is still running (blocking in each step), not at its end. */
Test(buffer_timeout, partly_filled_buffer_leaves_while_a_slow_source_runs)
{
    for (size_t i = 0; i < sizeof slow_cases / sizeof slow_cases[0]; i++) {
        rill_env *env = new_env(2);
        cr_assert_eq(rill_env_set_buffer_timeout(env, slow_cases[i].timeout), RILL_OK);
        slow_source src;
        rill_stream *s = slow_stream(env, &src);
        s = slow_cases[i].keyed ? rill_key_by_bytes(s, 0, 8) : rill_rebalance(s);
        cr_assert_not_null(rill_sink(s, "seen", signal_sink, &src.b));
        run_ok(env);
        cr_assert_eq(src.gave_up, 0, "%s: the record stayed in its buffer for %d ms",
                     slow_cases[i].name, CAP_MS);
        cr_assert_eq(src.b.seen, 1, "%s", slow_cases[i].name);
        beacon_free(&src.b);
        rill_env_free(env);
    }
}

/* ---- periodic watermarks ------------------------------------------------- */

/* An event-time timer at the record's timestamp - 1 (the first periodic
 * watermark after it, with no out-of-orderness allowed) signals the
 * beacon when it fires. */
static int register_timer(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return rill_timer_register(ctx, RILL_EVENT_TIME, rill_ctx_timestamp(ctx) - 1);
}

static int timer_signals(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)ctx;
    (void)ts;
    (void)domain;
    beacon_signal(ud);
    return 0;
}

/* A periodic watermark goes out on its interval while the source still
 * runs (blocking in each step), and fires an event-time timer downstream. */
Test(periodic_watermark, emitted_while_a_slow_source_runs)
{
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_set_watermark_interval(env, 10), RILL_OK);
    cr_assert_eq(rill_env_set_buffer_timeout(env, 10), RILL_OK);
    slow_source src;
    rill_stream *s = rill_assign_timestamps(slow_stream(env, &src), "ts", NULL, 0, NULL);
    s = rill_process(rill_key_by_bytes(s, 0, 8), "timer", register_timer, timer_signals, &src.b);
    cr_assert_not_null(rill_sink(s, "end", signal_sink, &src.b));
    run_ok(env);
    cr_assert_eq(src.gave_up, 0, "no watermark reached the timer in %d ms", CAP_MS);
    beacon_free(&src.b);
    rill_env_free(env);
}
