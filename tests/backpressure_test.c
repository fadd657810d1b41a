/* backpressure_test.c - a blocked or slow consumer bounds what producers
 * emit ahead of it.
 *
 * The bound follows the documented buffer layout: a record takes a 16-byte
 * header plus its length rounded up to a multiple of 8, so a buffer of B
 * bytes holds at most B / (16 + 8) records of 8 bytes. One channel holds
 * at most `capacity` queued buffers, plus the buffer its producer is
 * filling (or blocked sending) and the buffer its consumer is reading:
 * capacity + 2 buffers. A producer also counts a record just before it
 * calls rill_emit, so one more record per producer may be counted but not
 * yet in a buffer. SLACK records per channel cover that with room to spare.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "rill.h"
#include "common.h"

#define BUF_SIZE 4096
#define CAPACITY 2
#define REC_SPACE (16 + 8) /* header + 8-byte record */
#define PER_BUFFER (BUF_SIZE / REC_SPACE)
#define SLACK 8
/* Records a channel can hold between a producer's count and its consumer. */
#define PER_CHANNEL ((CAPACITY + 1 + 1) * PER_BUFFER + SLACK)

static atomic_ullong emitted;  /* counted by the generator before rill_emit */
static atomic_ullong consumed; /* records the sink has taken */
static atomic_int entered;     /* the blocking sink holds its first record */
static atomic_int released;    /* lets the blocking sink go on */

static void reset(void)
{
    atomic_store(&emitted, 0);
    atomic_store(&consumed, 0);
    atomic_store(&entered, 0);
    atomic_store(&released, 0);
}

static int gen_counting(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    atomic_fetch_add(&emitted, 1);
    return rill_emit(ctx, &index, sizeof index);
}

/* Subtask 0 blocks on its first record until released; others consume. */
static int sink_blocking(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    atomic_fetch_add(&consumed, 1);
    if (rill_ctx_subtask(ctx) == 0 && !atomic_load(&released)) {
        atomic_store(&entered, 1);
        while (!atomic_load(&released))
            sleep_ms(1);
    }
    return 0;
}

/* Until `emitted` stops changing over `rounds` sleeps of 20 ms (<= ~20 s).
 * Returns the count it settled at, or UINT64_MAX if it never did. */
static uint64_t settled_count(int rounds)
{
    unsigned long long last = atomic_load(&emitted);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        sleep_ms(20);
        unsigned long long now = atomic_load(&emitted);
        same = now == last ? same + 1 : 0;
        last = now;
        if (same >= rounds)
            return last;
    }
    return UINT64_MAX;
}

/* generator(p_g, unbounded) -> [rebalance] -> sink(p_k, own thread) with
 * subtask 0 blocked; `bound` is the most the generator may emit. */
static void run_blocked(int p_g, int p_k, uint64_t bound)
{
    reset();
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_set_parallelism(env, p_g), RILL_OK);
    cr_assert_eq(rill_env_set_buffer_size(env, BUF_SIZE), RILL_OK);
    cr_assert_eq(rill_env_set_channel_capacity(env, CAPACITY), RILL_OK);
    rill_stream *g = rill_generator(env, "gen", RILL_UNBOUNDED, gen_counting, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(g, p_g));
    rill_stream *k = rill_sink(rill_rebalance(g), "blocked", sink_blocking, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, p_k));
    cr_assert_not_null(rill_stream_disable_chaining(k));

    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "backpressure"), RILL_OK, "%s", rill_env_errmsg(env));
    for (int i = 0; i < 10000 && !atomic_load(&entered); i++)
        sleep_ms(1);
    cr_assert_eq(atomic_load(&entered), 1, "the sink never got a record");
    uint64_t n = settled_count(5);
    cr_assert_neq(n, UINT64_MAX, "the generator never stopped: no backpressure");
    cr_assert_leq(n, bound, "emitted %llu records with the sink blocked; bound %llu",
                  (unsigned long long)n, (unsigned long long)bound);
    /* Blocked, not stopped early: at least the channel to subtask 0 filled. */
    cr_assert_geq(n, (uint64_t)CAPACITY, "emitted only %llu", (unsigned long long)n);
    cr_assert_eq(rill_job_status(job), RILL_JOB_RUNNING);

    atomic_store(&released, 1);
    /* Released: records flow again. */
    for (int i = 0; i < 10000 && atomic_load(&emitted) <= n + 10 * PER_BUFFER; i++)
        sleep_ms(1);
    cr_assert_gt(atomic_load(&emitted), n + 10 * PER_BUFFER, "no progress after release");
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_ECANCELED, "wait: %s", rill_err_name(rc));
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    rill_job_free(job);
    rill_env_free(env);
}

Test(backpressure, blocked_sink_bounds_one_channel)
{
    /* One channel: 4 buffers of 170 records + slack = 688. */
    run_blocked(1, 1, PER_CHANNEL);
}

Test(backpressure, blocked_sink_bounds_two_producers)
{
    /* Two generator subtasks, one channel each into the sink. */
    run_blocked(2, 1, 2 * PER_CHANNEL);
}

Test(backpressure, one_blocked_subtask_stalls_a_round_robin_producer)
{
    /* Rebalance from one producer alternates between the two subtasks, so
     * it can get at most one record ahead on the free one's channel. */
    run_blocked(1, 2, 2 * PER_CHANNEL + 1);
}

/* ---- slow sink ---------------------------------------------------------------- */

enum { SLOW_N = 200000 };

typedef struct slow {
    /* Only the sink's single subtask writes these; read after the job. */
    uint64_t count, sum;
    int64_t last_lo, last_hi; /* last record from each generator subtask */
    uint64_t out_of_order;
    uint64_t max_in_flight;
} slow;

static int sink_slow(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    slow *s = ud;
    uint64_t v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    /* Records counted by the generators but not yet taken here. */
    uint64_t ahead = atomic_load(&emitted) - atomic_fetch_add(&consumed, 1);
    if (ahead > s->max_in_flight)
        s->max_in_flight = ahead;
    int64_t *last = v < SLOW_N / 2 ? &s->last_lo : &s->last_hi;
    if ((int64_t)v <= *last)
        s->out_of_order++;
    *last = (int64_t)v;
    s->count++;
    s->sum += v;
    if (s->count % 10000 == 0)
        sleep_ms(3);
    return 0;
}

Test(backpressure, slow_sink_gets_exact_results)
{
    reset();
    slow s = {0, 0, -1, -1, 0, 0};
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_set_parallelism(env, 2), RILL_OK);
    cr_assert_eq(rill_env_set_buffer_size(env, BUF_SIZE), RILL_OK);
    cr_assert_eq(rill_env_set_channel_capacity(env, CAPACITY), RILL_OK);
    rill_stream *g = rill_generator(env, "gen", SLOW_N, gen_counting, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(g, 2));
    rill_stream *k = rill_sink(g, "slow", sink_slow, &s);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    int rc = rill_env_execute(env, "slow sink");
    cr_assert_eq(rc, RILL_OK, "execute: %s (%s)", rill_err_name(rc), rill_env_errmsg(env));
    cr_assert_eq(s.count, SLOW_N);
    cr_assert_eq(s.sum, (uint64_t)SLOW_N * (SLOW_N - 1) / 2);
    cr_assert_eq(s.out_of_order, 0);
    cr_assert_eq(s.last_lo, SLOW_N / 2 - 1);
    cr_assert_eq(s.last_hi, SLOW_N - 1);
    cr_assert_eq(atomic_load(&emitted), SLOW_N);
    /* Two channels into the sink: never more than they hold in flight. */
    cr_assert_leq(s.max_in_flight, 2 * PER_CHANNEL, "%llu records in flight, bound %d",
                  (unsigned long long)s.max_in_flight, 2 * PER_CHANNEL);
    rill_env_free(env);
}

Test(backpressure, slow_chained_sink_gets_exact_results)
{
    reset();
    slow s = {0, 0, -1, -1, 0, 0};
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_set_parallelism(env, 1), RILL_OK);
    cr_assert_eq(rill_env_set_buffer_size(env, BUF_SIZE), RILL_OK);
    cr_assert_eq(rill_env_set_channel_capacity(env, 1), RILL_OK);
    rill_stream *g = rill_generator(env, "gen", SLOW_N, gen_counting, NULL);
    rill_sink(g, "slow", sink_slow, &s);
    cr_assert_eq(rill_env_execute(env, "slow chained sink"), RILL_OK, "%s",
                 rill_env_errmsg(env));
    cr_assert_eq(s.count, SLOW_N);
    cr_assert_eq(s.sum, (uint64_t)SLOW_N * (SLOW_N - 1) / 2);
    cr_assert_eq(s.out_of_order, 0);
    /* Chained: each record reaches the sink inside its rill_emit call. */
    cr_assert_eq(s.max_in_flight, 1);
    rill_env_free(env);
}
