/* process_test.c - process functions: event-time and processing-time
 * timers, timers on non-keyed streams, onTimer never concurrent with the
 * process function, side outputs, co_map / co_flat_map / co_process,
 * connect_broadcast with broadcast state, and keyed state of every kind.
 *
 * Deterministic cases run in a test harness; end-to-end cases run real
 * jobs at parallelism 2 whose callbacks only record what they see (under a
 * mutex or in atomics), asserted after the job ended.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

#define TEST_NAME "process"
#include "harness_common.h"

TestSuite(event_timers, .fini = rm_tmp);
TestSuite(processing_timers, .fini = rm_tmp);
TestSuite(unkeyed_timers, .fini = rm_tmp);
TestSuite(side_outputs, .fini = rm_tmp);
TestSuite(co_map, .fini = rm_tmp);
TestSuite(co_flat_map, .fini = rm_tmp);
TestSuite(co_process, .fini = rm_tmp);
TestSuite(broadcast, .fini = rm_tmp);
TestSuite(keyed_state, .fini = rm_tmp);

/* A sink counting its records in an atomic_int (ud may be NULL). */
static int count_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    if (ud)
        atomic_fetch_add((atomic_int *)ud, 1);
    return 0;
}

/* ---- timers in a harness -------------------------------------------------- */

/* What on_timer saw, in order. */
typedef struct tlog {
    int n;
    int64_t ts[32];
    int domain[32];
    int64_t ctx_ts[32]; /* rill_ctx_timestamp */
    int32_t key[32];
    int in_process;     /* set while the process function runs */
    int nested;         /* on_timer ran inside the process function */
    int rc[32];         /* results the process function noted */
    int n_rc;
} tlog;

static void note_rc(tlog *l, int rc)
{
    if (l && l->n_rc < 32)
        l->rc[l->n_rc++] = rc;
}

/* {key, val}: val >= 0 registers a timer at val in domain (ud's first
 * int), val < 0 deletes the one at -val; the result is noted. */
typedef struct reg_ud {
    int domain;
    tlog log;
} reg_ud;

static int reg_timer(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    reg_ud *u = ud;
    if (len != sizeof(kv))
        return -1;
    u->log.in_process = 1;
    kv r = kv_read(rec);
    int rc = r.val >= 0 ? rill_timer_register(ctx, u->domain, r.val)
                        : rill_timer_delete(ctx, u->domain, -(int64_t)r.val);
    note_rc(&u->log, rc);
    u->log.in_process = 0;
    return rc;
}

/* Emits {key, timer time} and logs the call. */
static int on_timer_log(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    reg_ud *u = ud;
    tlog *l = &u->log;
    const void *key;
    size_t klen;
    if (rill_ctx_key(ctx, &key, &klen) != RILL_OK || klen != sizeof(int32_t))
        return -1;
    int32_t k;
    memcpy(&k, key, sizeof k);
    if (l->in_process)
        l->nested++;
    if (l->n < 32) {
        l->ts[l->n] = ts;
        l->domain[l->n] = domain;
        l->ctx_ts[l->n] = rill_ctx_timestamp(ctx);
        l->key[l->n] = k;
        l->n++;
    }
    return emit_kv(ctx, k, (int32_t)ts);
}

/* A harness on a keyed process function registering timers in domain. */
static rill_harness *timer_harness(rill_env *env, reg_ud *u, int domain)
{
    memset(u, 0, sizeof *u);
    u->domain = domain;
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *p = rill_process(in, "timers", reg_timer, on_timer_log, u);
    cr_assert_not_null(p, "%s", rill_env_errmsg(env));
    return hnew(env, p);
}

Test(event_timers, fire_in_time_order_before_the_watermark)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    push_kv(h, 0, 1, 300, 1);
    push_kv(h, 0, 2, 100, 2);
    push_kv(h, 0, 1, 200, 3);
    push_kv(h, 0, 3, 250, 4);
    EXPECT_EMPTY(h, NULL);
    HOK(h, rill_harness_watermark(h, 0, 260));
    EXPECT_OUT(h, NULL, W_REC(2, 100, 100), W_REC(1, 200, 200), W_REC(3, 250, 250), W_WM(260));
    HOK(h, rill_harness_watermark(h, 0, 1000));
    EXPECT_OUT(h, NULL, W_REC(2, 100, 100), W_REC(1, 200, 200), W_REC(3, 250, 250), W_WM(260),
               W_REC(1, 300, 300), W_WM(1000));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(event_timers, timer_fires_when_the_watermark_equals_its_time)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    push_kv(h, 0, 1, 100, 1);
    HOK(h, rill_harness_watermark(h, 0, 99));
    EXPECT_OUT(h, NULL, W_WM(99));
    HOK(h, rill_harness_watermark(h, 0, 100));
    EXPECT_OUT(h, NULL, W_WM(99), W_REC(1, 100, 100), W_WM(100));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(event_timers, on_timer_gets_time_domain_and_timestamp)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    push_kv(h, 0, 5, 40, 1);
    push_kv(h, 0, 6, 70, 1);
    HOK(h, rill_harness_watermark(h, 0, 100));
    cr_assert_eq(u.log.n, 2);
    cr_assert_eq(u.log.ts[0], 40);
    cr_assert_eq(u.log.ts[1], 70);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(u.log.domain[i], RILL_EVENT_TIME);
        cr_assert_eq(u.log.ctx_ts[i], u.log.ts[i], "ctx timestamp %lld in the timer at %lld",
                     (long long)u.log.ctx_ts[i], (long long)u.log.ts[i]);
    }
    rill_harness_free(h);
    rill_env_free(env);
}

Test(event_timers, on_timer_has_the_timer_key)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    push_kv(h, 0, 11, 10, 1);
    push_kv(h, 0, 22, 20, 1);
    push_kv(h, 0, 33, 30, 1);
    push_kv(h, 0, 44, 5, 1); /* the last record's key is 44 */
    HOK(h, rill_harness_watermark(h, 0, 30));
    cr_assert_eq(u.log.n, 4);
    int32_t keys[4] = {44, 11, 22, 33};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(u.log.key[i], keys[i], "timer %d: key %d, expected %d", i, u.log.key[i],
                     keys[i]);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(event_timers, timer_at_or_before_the_watermark_fires_at_the_next_one)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    HOK(h, rill_harness_watermark(h, 0, 500));
    push_kv(h, 0, 1, 100, 1);
    push_kv(h, 0, 2, 500, 2);
    EXPECT_OUT(h, NULL, W_WM(500));
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 2);
    HOK(h, rill_harness_watermark(h, 0, 600));
    EXPECT_OUT(h, NULL, W_WM(500), W_REC(1, 100, 100), W_REC(2, 500, 500), W_WM(600));
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(event_timers, same_key_and_time_is_one_timer)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    push_kv(h, 0, 1, 100, 1);
    push_kv(h, 0, 1, 100, 2);
    push_kv(h, 0, 1, 100, 3);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 1);
    push_kv(h, 0, 2, 100, 4);
    push_kv(h, 0, 1, 101, 5);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 3);
    HOK(h, rill_harness_watermark(h, 0, 200));
    cr_assert_eq(u.log.n, 3);
    cr_assert_eq(rill_harness_count(h, NULL), 4); /* three records and the watermark */
    cr_assert_eq(u.log.ts[0], 100);
    cr_assert_eq(u.log.ts[1], 100);
    cr_assert_eq(u.log.key[0] + u.log.key[1], 3, "keys 1 and 2 at 100");
    cr_assert_eq(u.log.ts[2], 101);
    cr_assert_eq(u.log.key[2], 1);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(event_timers, deleted_timer_does_not_fire)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    push_kv(h, 0, 1, 100, 1);
    push_kv(h, 0, 1, 200, 1);
    push_kv(h, 0, 2, 100, 1);
    push_kv(h, 0, 1, -100, 1);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 2);
    HOK(h, rill_harness_watermark(h, 0, 300));
    EXPECT_OUT(h, NULL, W_REC(2, 100, 100), W_REC(1, 200, 200), W_WM(300));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(event_timers, deleting_a_missing_timer_is_ok)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    push_kv(h, 0, 1, -100, 1);
    push_kv(h, 0, 1, 100, 1);
    push_kv(h, 0, 2, -100, 1); /* another key's time */
    cr_assert_eq(u.log.n_rc, 3);
    cr_assert_eq(u.log.rc[0], RILL_OK);
    cr_assert_eq(u.log.rc[2], RILL_OK);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 1);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(event_timers, processing_time_does_not_fire_them)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    push_kv(h, 0, 1, 100, 1);
    HOK(h, rill_harness_set_time(h, 100000));
    EXPECT_EMPTY(h, NULL);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 1);
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(event_timers, end_of_input_fires_the_rest)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_EVENT_TIME);
    push_kv(h, 0, 1, 900, 1);
    push_kv(h, 0, 2, 50, 1);
    HOK(h, rill_harness_end(h));
    EXPECT_OUT(h, NULL, W_REC(2, 50, 50), W_REC(1, 900, 900), W_WM(RILL_TS_MAX));
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- processing-time timers ------------------------------------------------ */

Test(processing_timers, fire_when_the_clock_reaches_them)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_PROCESSING_TIME);
    push_kv(h, 0, 1, 100, 1);
    push_kv(h, 0, 2, 300, 2);
    push_kv(h, 0, 1, 200, 3);
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 3);
    HOK(h, rill_harness_set_time(h, 99));
    EXPECT_EMPTY(h, NULL);
    HOK(h, rill_harness_set_time(h, 150));
    EXPECT_OUT(h, NULL, W_REC(1, 100, RILL_TS_MIN));
    HOK(h, rill_harness_set_time(h, 300));
    EXPECT_OUT(h, NULL, W_REC(1, 100, RILL_TS_MIN), W_REC(1, 200, RILL_TS_MIN),
               W_REC(2, 300, RILL_TS_MIN));
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(processing_timers, on_timer_gets_domain_and_no_timestamp)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_PROCESSING_TIME);
    push_kv(h, 0, 7, 10, 555);
    HOK(h, rill_harness_set_time(h, 10));
    cr_assert_eq(u.log.n, 1);
    cr_assert_eq(u.log.ts[0], 10);
    cr_assert_eq(u.log.domain[0], RILL_PROCESSING_TIME);
    cr_assert_eq(u.log.ctx_ts[0], RILL_TS_MIN);
    cr_assert_eq(u.log.key[0], 7);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(processing_timers, timer_in_the_past_fires_right_after_the_push)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_PROCESSING_TIME);
    HOK(h, rill_harness_set_time(h, 1000));
    push_kv(h, 0, 1, 500, 1);
    EXPECT_OUT(h, NULL, W_REC(1, 500, RILL_TS_MIN));
    push_kv(h, 0, 2, 1000, 2); /* due now */
    EXPECT_OUT(h, NULL, W_REC(1, 500, RILL_TS_MIN), W_REC(2, 1000, RILL_TS_MIN));
    cr_assert_eq(u.log.nested, 0, "on_timer ran inside the process function");
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(processing_timers, deleted_timer_does_not_fire)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_PROCESSING_TIME);
    push_kv(h, 0, 1, 100, 1);
    push_kv(h, 0, 1, 200, 1);
    push_kv(h, 0, 1, -100, 1);
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 1);
    HOK(h, rill_harness_set_time(h, 500));
    EXPECT_OUT(h, NULL, W_REC(1, 200, RILL_TS_MIN));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(processing_timers, watermarks_do_not_fire_them)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_PROCESSING_TIME);
    push_kv(h, 0, 1, 100, 1);
    HOK(h, rill_harness_watermark(h, 0, 100000));
    EXPECT_OUT(h, NULL, W_WM(100000));
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 1);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(processing_timers, same_key_and_time_is_one_timer)
{
    rill_env *env = state_env(1);
    reg_ud u;
    rill_harness *h = timer_harness(env, &u, RILL_PROCESSING_TIME);
    push_kv(h, 0, 1, 100, 1);
    push_kv(h, 0, 1, 100, 1);
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 1);
    HOK(h, rill_harness_set_time(h, 100));
    EXPECT_OUT(h, NULL, W_REC(1, 100, RILL_TS_MIN));
    rill_harness_free(h);
    rill_env_free(env);
}

/* on_timer: {key, ts}, then a new processing-time timer 10 ms later while
 * ts < 100. */
static int timer_chain(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    int rc = on_timer_log(ctx, ts, domain, ud);
    if (!rc && ts < 100)
        rc = rill_timer_register(ctx, RILL_PROCESSING_TIME, ts + 10);
    return rc;
}

Test(processing_timers, timers_set_by_timers_fire_up_to_the_clock)
{
    rill_env *env = state_env(1);
    reg_ud u;
    memset(&u, 0, sizeof u);
    u.domain = RILL_PROCESSING_TIME;
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_harness *h = hnew(env, rill_process(in, "chain", reg_timer, timer_chain, &u));
    push_kv(h, 0, 1, 10, 1);
    HOK(h, rill_harness_set_time(h, 55));
    EXPECT_OUT(h, NULL, W_REC(1, 10, RILL_TS_MIN), W_REC(1, 20, RILL_TS_MIN),
               W_REC(1, 30, RILL_TS_MIN), W_REC(1, 40, RILL_TS_MIN), W_REC(1, 50, RILL_TS_MIN));
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 1);
    HOK(h, rill_harness_set_time(h, 1000));
    cr_assert_eq(rill_harness_count(h, NULL), 10); /* 10, 20, ..., 100 */
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- timers on a stream that is not keyed --------------------------------- */

/* Registers a timer and notes the result, and rill_ctx_key's; returns 0. */
static int try_timer(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    tlog *l = ud;
    note_rc(l, rill_timer_register(ctx, RILL_EVENT_TIME, 100));
    note_rc(l, rill_timer_register(ctx, RILL_PROCESSING_TIME, 100));
    const void *key;
    size_t klen;
    note_rc(l, rill_ctx_key(ctx, &key, &klen));
    return 0;
}

/* Returns what rill_timer_register returns. */
static int timer_or_fail(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return rill_timer_register(ctx, RILL_EVENT_TIME, 100);
}

static int no_timer(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)ctx;
    (void)ts;
    (void)domain;
    (void)ud;
    return 0;
}

Test(unkeyed_timers, register_is_einval)
{
    rill_env *env = state_env(1);
    tlog l;
    memset(&l, 0, sizeof l);
    rill_stream *p = rill_process(rill_harness_input(env, "in"), "plain", try_timer, no_timer, &l);
    rill_harness *h = hnew(env, p);
    push_kv(h, 0, 1, 1, 1);
    cr_assert_eq(l.n_rc, 3);
    cr_assert_eq(l.rc[0], RILL_EINVAL);
    cr_assert_eq(l.rc[1], RILL_EINVAL);
    cr_assert_eq(l.rc[2], RILL_EINVAL, "rill_ctx_key on a non-keyed operator: %d", l.rc[2]);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 0);
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(unkeyed_timers, returning_the_error_fails_the_job)
{
    rill_env *env = state_env(2);
    rill_stream *s = rill_from_array(env, "src", "abcdefgh", 1, 8);
    rill_stream *p = rill_process(s, "plain", timer_or_fail, no_timer, NULL);
    rill_sink(p, "out", count_sink, NULL);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "timers"), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "plain");
    assert_has(rill_job_errmsg(job), "not keyed");
    assert_has(rill_job_errmsg(job), "plain");
    rill_job_free(job);
    rill_env_free(env);
}

Test(unkeyed_timers, execute_reports_not_keyed)
{
    rill_env *env = state_env(2);
    rill_stream *s = rill_from_array(env, "src", "abcdefgh", 1, 8);
    rill_stream *p = rill_process(s, NULL, timer_or_fail, no_timer, NULL);
    rill_sink(p, "out", count_sink, NULL);
    cr_assert_eq(rill_env_execute(env, "timers"), RILL_EUSER);
    assert_has(rill_env_errmsg(env), "not keyed");
    assert_has(rill_env_errmsg(env), "process");
    rill_env_free(env);
}

/* Registers with a domain that does not exist; notes the result. */
static int bad_domain(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    note_rc(ud, rill_timer_register(ctx, 7, 100));
    note_rc(ud, rill_timer_delete(ctx, -1, 100));
    return 0;
}

Test(unkeyed_timers, bad_domain_is_einval_on_a_keyed_stream)
{
    rill_env *env = state_env(1);
    tlog l;
    memset(&l, 0, sizeof l);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_harness *h = hnew(env, rill_process(in, "p", bad_domain, no_timer, &l));
    push_kv(h, 0, 1, 1, 1);
    cr_assert_eq(l.n_rc, 2);
    cr_assert_eq(l.rc[0], RILL_EINVAL);
    cr_assert_eq(l.rc[1], RILL_EINVAL);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- onTimer and the process function never overlap ------------------------ */

typedef struct overlap {
    atomic_int busy[MAXSUB];
    atomic_int overlaps;
    atomic_int records, event_fired, proc_fired, errors;
} overlap;

typedef struct u64pair {
    uint64_t key, idx;
} u64pair;

static int gen_pair(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    u64pair p = {index % 64, index};
    return rill_emit(ctx, &p, sizeof p);
}

static void enter(overlap *o, rill_ctx *ctx)
{
    if (atomic_exchange(&o->busy[rill_ctx_subtask(ctx)], 1) != 0)
        atomic_fetch_add(&o->overlaps, 1);
}

static void leave(overlap *o, rill_ctx *ctx)
{
    /* Widen the window in which an overlap would be seen. */
    for (volatile int i = 0; i < 200; i++)
        ;
    atomic_store(&o->busy[rill_ctx_subtask(ctx)], 0);
}

static int overlap_process(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    overlap *o = ud;
    if (len != sizeof(u64pair))
        return -1;
    enter(o, ctx);
    u64pair p;
    memcpy(&p, rec, sizeof p);
    int rc = rill_timer_register(ctx, RILL_EVENT_TIME, (int64_t)p.idx);
    if (!rc)
        rc = rill_timer_register(ctx, RILL_PROCESSING_TIME, rill_ctx_processing_time(ctx) - 1);
    if (rc)
        atomic_fetch_add(&o->errors, 1);
    atomic_fetch_add(&o->records, 1);
    leave(o, ctx);
    return rc;
}

static int overlap_timer(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    overlap *o = ud;
    (void)ts;
    enter(o, ctx);
    atomic_fetch_add(domain == RILL_EVENT_TIME ? &o->event_fired : &o->proc_fired, 1);
    leave(o, ctx);
    return 0;
}

Test(event_timers, on_timer_never_runs_with_the_process_function)
{
    rill_env *env = state_env(2);
    overlap *o = calloc(1, sizeof *o);
    cr_assert_not_null(o);
    rill_stream *g = rill_generator(env, "gen", 20000, gen_pair, NULL);
    rill_stream *p =
        rill_process(rill_key_by_bytes(g, 0, 8), "both", overlap_process, overlap_timer, o);
    rill_sink(p, "out", count_sink, NULL);
    run_ok(env);
    cr_assert_eq(atomic_load(&o->records), 20000);
    cr_assert_eq(atomic_load(&o->errors), 0);
    cr_assert_eq(atomic_load(&o->overlaps), 0, "on_timer and process ran at the same time");
    cr_assert_eq(atomic_load(&o->event_fired), 20000);
    cr_assert_geq(atomic_load(&o->proc_fired), 1);
    free(o);
    rill_env_free(env);
}

/* ---- side outputs ----------------------------------------------------------- */

/* Even vals to the main output, odd ones to "odd". */
static int split_odd(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
    if (r.val % 2)
        return rill_emit_side(ctx, "odd", rec, len);
    return rill_emit(ctx, rec, len);
}

Test(side_outputs, harness_keeps_them_by_tag)
{
    rill_env *env = state_env(1);
    rill_stream *p = rill_process(rill_harness_input(env, "in"), "split", split_odd, NULL, NULL);
    rill_harness *h = hnew(env, p);
    for (int i = 1; i <= 4; i++)
        push_kv(h, 0, 0, i, 10 * i);
    EXPECT_OUT(h, NULL, W_REC(0, 2, 20), W_REC(0, 4, 40));
    EXPECT_OUT(h, "odd", W_REC(0, 1, 10), W_REC(0, 3, 30));
    EXPECT_EMPTY(h, "even");
    rill_harness_free(h);
    rill_env_free(env);
}

Test(side_outputs, watermarks_reach_side_outputs)
{
    rill_env *env = state_env(1);
    rill_stream *p = rill_process(rill_harness_input(env, "in"), "split", split_odd, NULL, NULL);
    cr_assert_not_null(rill_side_output(p, "odd"));
    rill_harness *h = hnew(env, p);
    push_kv(h, 0, 0, 1, 10);
    HOK(h, rill_harness_watermark(h, 0, 50));
    push_kv(h, 0, 0, 2, 60);
    EXPECT_OUT(h, NULL, W_WM(50), W_REC(0, 2, 60));
    EXPECT_OUT(h, "odd", W_REC(0, 1, 10), W_WM(50));
    rill_harness_free(h);
    rill_env_free(env);
}

static int split_u64(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    uint64_t v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    if (v % 2) {
        int rc = rill_emit_side(ctx, "odd", rec, len);
        if (!rc)
            rc = rill_emit_side(ctx, "nobody", rec, len);
        return rc;
    }
    return rill_emit(ctx, rec, len);
}

Test(side_outputs, side_output_stream_in_a_job)
{
    rill_env *env = state_env(2);
    sum_total even, odd;
    memset(&even, 0, sizeof even);
    memset(&odd, 0, sizeof odd);
    rill_stream *g = rill_generator(env, "gen", 1000, gen_index, NULL);
    rill_stream *p = rill_process(g, "split", split_u64, NULL, NULL);
    rill_sink(p, "evens", total_sink, &even);
    rill_stream *s = rill_side_output(p, "odd");
    cr_assert_not_null(s);
    rill_sink(s, "odds", total_sink, &odd);
    run_ok(env);
    cr_assert_eq(atomic_load(&even.count), 500);
    cr_assert_eq(atomic_load(&even.sum), 249500); /* 0 + 2 + ... + 998 */
    cr_assert_eq(atomic_load(&odd.count), 500);
    cr_assert_eq(atomic_load(&odd.sum), 250000); /* 1 + 3 + ... + 999 */
    rill_env_free(env);
}

Test(side_outputs, side_output_through_an_operator_with_another_parallelism)
{
    rill_env *env = state_env(2);
    sum_total odd;
    memset(&odd, 0, sizeof odd);
    rill_stream *g = rill_generator(env, "gen", 1000, gen_index, NULL);
    rill_stream *p = rill_process(g, "split", split_u64, NULL, NULL);
    rill_sink(p, "evens", count_sink, NULL);
    rill_stream *k = rill_sink(rill_side_output(p, "odd"), "odds", total_sink, &odd);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    run_ok(env);
    cr_assert_eq(atomic_load(&odd.count), 500);
    cr_assert_eq(atomic_load(&odd.sum), 250000);
    rill_env_free(env);
}

/* on_timer: {key, ts} to the side output "late" instead of the main one. */
static int timer_to_side(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)domain;
    (void)ud;
    const void *key;
    size_t klen;
    if (rill_ctx_key(ctx, &key, &klen) != RILL_OK || klen != 4)
        return -1;
    kv r;
    memcpy(&r.key, key, 4);
    r.val = (int32_t)ts;
    return rill_emit_side(ctx, "late", &r, sizeof r);
}

Test(side_outputs, on_timer_emits_with_the_timer_time)
{
    rill_env *env = state_env(1);
    reg_ud u;
    memset(&u, 0, sizeof u);
    u.domain = RILL_EVENT_TIME;
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_harness *h = hnew(env, rill_process(in, "p", reg_timer, timer_to_side, &u));
    push_kv(h, 0, 3, 40, 1);
    HOK(h, rill_harness_watermark(h, 0, 50));
    EXPECT_OUT(h, NULL, W_WM(50));
    EXPECT_OUT(h, "late", W_REC(3, 40, 40));
    rill_harness_free(h);
    rill_env_free(env);
}

/* A source of 60 records {i % 4, i} at timestamps 10, 20, ..., each
 * followed by a watermark at its timestamp. */
static int marked_source(rill_ctx *ctx, void *ud)
{
    int *i = ud;
    if (*i == 60)
        return RILL_SOURCE_END;
    kv r = {*i % 4, *i};
    int64_t ts = 10 * (int64_t)(*i + 1);
    int rc = rill_emit_ts(ctx, &r, sizeof r, ts);
    if (!rc)
        rc = rill_emit_watermark(ctx, ts);
    (*i)++;
    return rc ? rc : RILL_SOURCE_MORE;
}

/* Everything to the side output "all". */
static int all_to_side(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return rill_emit_side(ctx, "all", rec, len);
}

static int pass_kv(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return rill_emit(ctx, rec, len);
}

/* Counts records whose watermark is not the previous record's timestamp
 * (marked_source: ts - 10, none before the first). */
typedef struct wm_prev {
    atomic_int records, wrong;
} wm_prev;

static int check_prev_wm(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    wm_prev *w = ud;
    (void)rec;
    (void)len;
    int64_t ts = rill_ctx_timestamp(ctx);
    int64_t want = ts == 10 ? RILL_TS_MIN : ts - 10;
    atomic_fetch_add(&w->records, 1);
    if (rill_ctx_watermark(ctx) != want)
        atomic_fetch_add(&w->wrong, 1);
    return 0;
}

Test(side_outputs, watermarks_flow_through_side_outputs_in_a_job)
{
    rill_env *env = state_env(2);
    int count = 0;
    wm_prev w;
    memset(&w, 0, sizeof w);
    rill_stream *src = rill_source(env, "src", marked_source, &count);
    src = rill_stream_set_parallelism(src, 1);
    rill_stream *p = rill_process(rill_map(src, "pass", pass_kv, NULL), "split", all_to_side,
                                  NULL, NULL);
    rill_sink(p, "main", count_sink, NULL);
    rill_sink(rill_side_output(p, "all"), "check", check_prev_wm, &w);
    run_ok(env);
    cr_assert_eq(atomic_load(&w.records), 60);
    cr_assert_eq(atomic_load(&w.wrong), 0, "%d records saw another watermark",
                 atomic_load(&w.wrong));
    rill_env_free(env);
}

static int odd_to_side(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    uint64_t v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    return v % 2 ? rill_emit_side(ctx, "odd", rec, len) : rill_emit(ctx, rec, len);
}

Test(side_outputs, side_output_can_be_keyed)
{
    rill_env *env = state_env(2);
    sum_total odd;
    memset(&odd, 0, sizeof odd);
    rill_stream *g = rill_generator(env, "gen", 1000, gen_index, NULL);
    rill_stream *p = rill_process(g, "split", odd_to_side, NULL, NULL);
    rill_sink(p, "evens", count_sink, NULL);
    rill_stream *k = rill_key_by_bytes(rill_side_output(p, "odd"), 0, 8);
    rill_sink(k, "odds", total_sink, &odd);
    run_ok(env);
    cr_assert_eq(atomic_load(&odd.count), 500);
    cr_assert_eq(atomic_load(&odd.sum), 250000, "sum %llu: not the odd records",
                 (unsigned long long)atomic_load(&odd.sum));
    rill_env_free(env);
}

Test(side_outputs, side_output_can_be_rebalanced)
{
    rill_env *env = state_env(2);
    sum_total odd;
    memset(&odd, 0, sizeof odd);
    rill_stream *g = rill_generator(env, "gen", 1000, gen_index, NULL);
    rill_stream *p = rill_process(g, "split", odd_to_side, NULL, NULL);
    rill_sink(p, "evens", count_sink, NULL);
    rill_sink(rill_rebalance(rill_side_output(p, "odd")), "odds", total_sink, &odd);
    run_ok(env);
    cr_assert_eq(atomic_load(&odd.count), 500);
    cr_assert_eq(atomic_load(&odd.sum), 250000, "sum %llu: not the odd records",
                 (unsigned long long)atomic_load(&odd.sum));
    rill_env_free(env);
}

/* ---- co_map ------------------------------------------------------------------ */

/* fn1: {input, val + 1000}; fn2: {input, val + 2000}. A val of 13 on
 * input 1 emits twice; a val of 0 on input 0 emits nothing. */
static int co_first(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
    if (r.val == 0)
        return 0;
    return emit_kv(ctx, rill_ctx_input(ctx), r.val + 1000);
}

static int co_second(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
    int rc = emit_kv(ctx, rill_ctx_input(ctx), r.val + 2000);
    if (!rc && r.val == 13)
        rc = emit_kv(ctx, rill_ctx_input(ctx), r.val + 2000);
    return rc;
}

static rill_harness *co_map_harness(rill_env *env, const char *name)
{
    rill_stream *a = rill_harness_input(env, "a");
    rill_stream *b = rill_harness_input(env, "b");
    rill_stream *c = rill_co_map(a, b, name, co_first, co_second, NULL);
    cr_assert_not_null(c, "%s", rill_env_errmsg(env));
    return hnew(env, c);
}

Test(co_map, maps_both_inputs_in_order)
{
    rill_env *env = state_env(1);
    rill_harness *h = co_map_harness(env, "both");
    push_kv(h, 0, 9, 1, 1);
    push_kv(h, 1, 9, 2, 2);
    push_kv(h, 0, 9, 3, 3);
    EXPECT_OUT(h, NULL, W_REC(0, 1001, 1), W_REC(1, 2002, 2), W_REC(0, 1003, 3));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(co_map, two_emits_for_one_record_fail)
{
    rill_env *env = state_env(1);
    rill_harness *h = co_map_harness(env, "both");
    kv r = {0, 13};
    cr_assert_eq(rill_harness_push(h, 1, &r, sizeof r, 1), RILL_EUSER);
    assert_has(rill_harness_errmsg(h), "co_map");
    assert_has(rill_harness_errmsg(h), "both");
    rill_harness_free(h);
    rill_env_free(env);
}

Test(co_map, no_emit_for_one_record_fails)
{
    rill_env *env = state_env(1);
    rill_harness *h = co_map_harness(env, NULL);
    kv r = {0, 0};
    cr_assert_eq(rill_harness_push(h, 0, &r, sizeof r, 1), RILL_EUSER);
    assert_has(rill_harness_errmsg(h), "co_map");
    rill_harness_free(h);
    rill_env_free(env);
}

/* Input 0: v * 2; input 1: v * 3 (uint64 records). */
static int times2(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return emit_u64_affine(ctx, rec, len, 2, 0);
}

static int times3(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return emit_u64_affine(ctx, rec, len, 3, 0);
}

static int times3_twice_at_7(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int rc = emit_u64_affine(ctx, rec, len, 3, 0);
    uint64_t v = 0;
    memcpy(&v, rec, len < 8 ? len : 8);
    if (!rc && v == 7)
        rc = emit_u64_affine(ctx, rec, len, 3, 0);
    return rc;
}

Test(co_map, job_maps_both_inputs)
{
    rill_env *env = state_env(2);
    sum_total t;
    memset(&t, 0, sizeof t);
    rill_stream *a = rill_generator(env, "a", 1000, gen_index, NULL);
    rill_stream *b = rill_generator(env, "b", 500, gen_index, NULL);
    rill_sink(rill_co_map(a, b, "both", times2, times3, NULL), "out", total_sink, &t);
    run_ok(env);
    cr_assert_eq(atomic_load(&t.count), 1500);
    cr_assert_eq(atomic_load(&t.sum), 2 * 499500 + 3 * 124750);
    rill_env_free(env);
}

Test(co_map, job_fails_on_an_extra_emit)
{
    rill_env *env = state_env(2);
    rill_stream *a = rill_generator(env, "a", 100, gen_index, NULL);
    rill_stream *b = rill_generator(env, "b", 100, gen_index, NULL);
    rill_sink(rill_co_map(a, b, "both", times2, times3_twice_at_7, NULL), "out", count_sink,
              NULL);
    cr_assert_eq(rill_env_execute(env, "co_map"), RILL_EUSER);
    assert_has(rill_env_errmsg(env), "co_map");
    assert_has(rill_env_errmsg(env), "both");
    rill_env_free(env);
}

/* ---- co_flat_map --------------------------------------------------------------- */

/* Input 0: val copies of {input, val}; input 1: nothing. */
static int copies(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
    for (int i = 0; i < r.val; i++) {
        int rc = emit_kv(ctx, rill_ctx_input(ctx), r.val);
        if (rc)
            return rc;
    }
    return 0;
}

static int nothing(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return 0;
}

Test(co_flat_map, emits_any_number_per_record)
{
    rill_env *env = state_env(1);
    rill_stream *a = rill_harness_input(env, "a");
    rill_stream *b = rill_harness_input(env, "b");
    rill_harness *h = hnew(env, rill_co_flat_map(a, b, "flat", copies, nothing, NULL));
    push_kv(h, 0, 0, 2, 5);
    push_kv(h, 1, 0, 5, 6);
    push_kv(h, 0, 0, 0, 7);
    push_kv(h, 0, 0, 1, 8);
    EXPECT_OUT(h, NULL, W_REC(0, 2, 5), W_REC(0, 2, 5), W_REC(0, 1, 8));
    rill_harness_free(h);
    rill_env_free(env);
}

static int twice(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int rc = rill_emit(ctx, rec, len);
    return rc ? rc : rill_emit(ctx, rec, len);
}

Test(co_flat_map, job_emits_any_number_per_record)
{
    rill_env *env = state_env(2);
    sum_total t;
    memset(&t, 0, sizeof t);
    rill_stream *a = rill_generator(env, "a", 1000, gen_index, NULL);
    rill_stream *b = rill_generator(env, "b", 500, gen_index, NULL);
    rill_sink(rill_co_flat_map(a, b, "flat", twice, nothing, NULL), "out", total_sink, &t);
    run_ok(env);
    cr_assert_eq(atomic_load(&t.count), 2000);
    cr_assert_eq(atomic_load(&t.sum), 2 * 499500);
    rill_env_free(env);
}

Test(co_process, watermark_is_the_minimum_of_both_inputs)
{
    rill_env *env = state_env(1);
    rill_stream *a = rill_harness_input(env, "a");
    rill_stream *b = rill_harness_input(env, "b");
    rill_harness *h = hnew(env, rill_co_flat_map(a, b, "flat", copies, nothing, NULL));
    HOK(h, rill_harness_watermark(h, 0, 100));
    EXPECT_EMPTY(h, NULL);
    HOK(h, rill_harness_watermark(h, 1, 50));
    HOK(h, rill_harness_watermark(h, 1, 150));
    HOK(h, rill_harness_watermark(h, 0, 120));
    EXPECT_OUT(h, NULL, W_WM(50), W_WM(100), W_WM(120));
    HOK(h, rill_harness_end(h));
    EXPECT_OUT(h, NULL, W_WM(50), W_WM(100), W_WM(120), W_WM(150), W_WM(RILL_TS_MAX));
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- co_process: keyed state shared by both inputs ------------------------------ */

/* Input 0 stores val in "last"; input 1 emits {key, last} ({key, -1} when
 * there is none). */
static int store_last(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    rill_state *st = rill_ctx_state(ctx, "last");
    if (!st)
        return -2;
    kv r = kv_read(rec);
    return rill_state_put(st, &r.val, sizeof r.val);
}

static int read_last(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    rill_state *st = rill_ctx_state(ctx, "last");
    if (!st)
        return -2;
    kv r = kv_read(rec);
    const void *v;
    size_t vl;
    int rc = rill_state_get(st, &v, &vl);
    if (rc == RILL_ENOTFOUND)
        return emit_kv(ctx, r.key, -1);
    if (rc || vl != sizeof(int32_t))
        return -3;
    int32_t last;
    memcpy(&last, v, sizeof last);
    return emit_kv(ctx, r.key, last);
}

Test(co_process, keyed_state_is_shared_by_both_inputs)
{
    rill_env *env = state_env(1);
    rill_stream *a = rill_key_by_bytes(rill_harness_input(env, "a"), 0, 4);
    rill_stream *b = rill_key_by_bytes(rill_harness_input(env, "b"), 0, 4);
    rill_stream *cp = rill_co_process(a, b, "join", store_last, read_last, NULL, NULL);
    cr_assert_not_null(rill_stream_add_state(cp, "last", RILL_STATE_VALUE));
    rill_harness *h = hnew(env, cp);
    push_kv(h, 0, 1, 10, 1);
    push_kv(h, 0, 2, 20, 2);
    push_kv(h, 1, 1, 0, 3);
    push_kv(h, 1, 3, 0, 4);
    push_kv(h, 0, 1, 11, 5);
    push_kv(h, 1, 1, 0, 6);
    EXPECT_OUT(h, NULL, W_REC(1, 10, 3), W_REC(3, -1, 4), W_REC(1, 11, 6));
    int32_t k = 2;
    rill_state *st = rill_harness_state(h, "last", &k, sizeof k);
    cr_assert_not_null(st);
    const void *v;
    size_t vl;
    cr_assert_eq(rill_state_get(st, &v, &vl), RILL_OK);
    cr_assert_eq(vl, 4);
    int32_t got_v;
    memcpy(&got_v, v, 4);
    cr_assert_eq(got_v, 20);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(co_process, keyed_state_needs_both_inputs_keyed)
{
    rill_env *env = state_env(1);
    rill_stream *a = rill_key_by_bytes(rill_from_array(env, "a", "abcdefgh", 4, 2), 0, 4);
    rill_stream *b = rill_from_array(env, "b", "abcdefgh", 4, 2);
    rill_stream *cp = rill_co_process(a, b, "join", store_last, read_last, NULL, NULL);
    rill_stream_add_state(cp, "last", RILL_STATE_VALUE);
    rill_sink(cp, "out", count_sink, NULL);
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "join");
    assert_has(rill_env_errmsg(env), "last");
    rill_env_free(env);
}

/* Both inputs count records per key in "count"; input 1 emits the count. */
static int count_a(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return count_up(ctx, "count") < 0 ? -1 : 0;
}

static int count_b(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    int rc = count_a(ctx, rec, len, ud);
    if (rc)
        return rc;
    const void *v;
    size_t vl;
    int64_t n;
    rill_state *st = rill_ctx_state(ctx, "count");
    if (rill_state_get(st, &v, &vl) != RILL_OK || vl != sizeof n)
        return -2;
    memcpy(&n, v, sizeof n);
    u64pair p;
    memcpy(&p, rec, sizeof p);
    kv out = {(int32_t)p.key, (int32_t)n};
    return rill_emit(ctx, &out, sizeof out);
}

Test(co_process, job_counts_both_inputs_per_key)
{
    rill_env *env = state_env(2);
    gotlist g;
    gl_init(&g);
    rill_stream *a = rill_key_by_bytes(rill_generator(env, "a", 6400, gen_pair, NULL), 0, 8);
    rill_stream *b = rill_key_by_bytes(rill_generator(env, "b", 6400, gen_pair, NULL), 0, 8);
    rill_stream *cp = rill_co_process(a, b, "count", count_a, count_b, NULL, NULL);
    rill_stream_add_state(cp, "count", RILL_STATE_VALUE);
    rill_sink(cp, "out", gl_sink, &g);
    run_ok(env);
    /* Every key gets 100 records on each input: the counts input 1 reports
     * for a key grow at each of its records, and the last is at least 100
     * and at most 200. */
    cr_assert_eq(g.n, 6400);
    int max[64] = {0}, n[64] = {0};
    for (size_t i = 0; i < g.n; i++) {
        int k = g.v[i].key;
        cr_assert(k >= 0 && k < 64);
        n[k]++;
        cr_assert_gt(g.v[i].val, max[k], "key %d: count %d after %d", k, g.v[i].val, max[k]);
        max[k] = g.v[i].val;
    }
    for (int k = 0; k < 64; k++) {
        cr_assert_eq(n[k], 100);
        cr_assert(max[k] >= 100 && max[k] <= 200, "key %d: count %d", k, max[k]);
    }
    gl_free(&g);
    rill_env_free(env);
}

/* ---- connect_broadcast ----------------------------------------------------------- */

typedef struct bc_log {
    int rc[16];
    int n;
} bc_log;

static void bc_note(bc_log *l, int rc)
{
    if (l->n < 16)
        l->rc[l->n++] = rc;
}

/* Broadcast side: rules[key] = val. */
static int bc_store(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
    rill_state *st = rill_ctx_state(ctx, "rules");
    if (!st)
        return -2;
    return rill_state_map_put(st, &r.key, sizeof r.key, &r.val, sizeof r.val);
}

/* Keyed side: emits {key, rules[key]} ({key, -1} when there is none). */
static int bc_lookup(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
    rill_state *st = rill_ctx_state(ctx, "rules");
    if (!st)
        return -2;
    const void *v;
    size_t vl;
    int rc = rill_state_map_get(st, &r.key, sizeof r.key, &v, &vl);
    if (rc == RILL_ENOTFOUND)
        return emit_kv(ctx, r.key, -1);
    if (rc || vl != sizeof(int32_t))
        return -3;
    int32_t val;
    memcpy(&val, v, sizeof val);
    return emit_kv(ctx, r.key, val);
}

static rill_stream *bc_op(rill_env *env, rill_process_fn fn, rill_process_fn bc_fn, void *ud)
{
    rill_stream *s = rill_key_by_bytes(rill_harness_input(env, "events"), 0, 4);
    rill_stream *bc = rill_harness_input(env, "rules");
    rill_stream *c = rill_connect_broadcast(s, bc, "apply", fn, bc_fn, NULL, ud);
    cr_assert_not_null(rill_stream_add_state(c, "rules", RILL_STATE_BROADCAST),
                       "%s", rill_env_errmsg(env));
    return c;
}

Test(broadcast, state_written_by_the_broadcast_side_is_read_by_the_other)
{
    rill_env *env = state_env(1);
    rill_harness *h = hnew(env, bc_op(env, bc_lookup, bc_store, NULL));
    push_kv(h, 0, 1, 0, 1);
    push_kv(h, 1, 1, 100, 2);
    push_kv(h, 0, 1, 0, 3);
    push_kv(h, 1, 2, 200, 4);
    push_kv(h, 1, 1, 101, 5);
    push_kv(h, 0, 2, 0, 6);
    push_kv(h, 0, 1, 0, 7);
    push_kv(h, 0, 3, 0, 8);
    EXPECT_OUT(h, NULL, W_REC(1, -1, 1), W_REC(1, 100, 3), W_REC(2, 200, 6), W_REC(1, 101, 7),
               W_REC(3, -1, 8));
    rill_harness_free(h);
    rill_env_free(env);
}

/* Keyed side: tries to change the broadcast state; notes the results. */
static int bc_write_from_keyed(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)len;
    kv r = kv_read(rec);
    rill_state *st = rill_ctx_state(ctx, "rules");
    if (!st)
        return -2;
    bc_note(ud, rill_state_map_put(st, &r.key, sizeof r.key, &r.val, sizeof r.val));
    bc_note(ud, rill_state_map_remove(st, &r.key, sizeof r.key));
    bc_note(ud, rill_state_clear(st));
    return 0;
}

Test(broadcast, state_is_read_only_on_the_keyed_side)
{
    rill_env *env = state_env(1);
    bc_log l;
    memset(&l, 0, sizeof l);
    rill_harness *h = hnew(env, bc_op(env, bc_write_from_keyed, bc_store, &l));
    push_kv(h, 1, 1, 100, 1);
    push_kv(h, 0, 1, 5, 2);
    cr_assert_eq(l.n, 3);
    cr_assert_eq(l.rc[0], RILL_ESTATE, "rill_state_map_put: %s", rill_err_name(l.rc[0]));
    cr_assert_eq(l.rc[1], RILL_ESTATE, "rill_state_map_remove: %s", rill_err_name(l.rc[1]));
    cr_assert_eq(l.rc[2], RILL_ESTATE, "rill_state_clear: %s", rill_err_name(l.rc[2]));
    rill_harness_free(h);
    rill_env_free(env);
}

/* Broadcast side: tries keyed things; notes the results. */
static int bc_try_keyed(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    bc_log *l = ud;
    const void *key, *v;
    size_t klen, vl;
    bc_note(l, rill_ctx_key(ctx, &key, &klen));
    bc_note(l, rill_state_get(rill_ctx_state(ctx, "seen"), &v, &vl));
    bc_note(l, rill_timer_register(ctx, RILL_EVENT_TIME, 10));
    bc_note(l, rill_ctx_input(ctx));
    return 0;
}

Test(broadcast, broadcast_side_has_no_current_key)
{
    rill_env *env = state_env(1);
    bc_log l;
    memset(&l, 0, sizeof l);
    rill_stream *c = bc_op(env, bc_lookup, bc_try_keyed, &l);
    cr_assert_not_null(rill_stream_add_state(c, "seen", RILL_STATE_VALUE));
    rill_harness *h = hnew(env, c);
    push_kv(h, 1, 1, 100, 1);
    cr_assert_eq(l.n, 4);
    cr_assert_eq(l.rc[0], RILL_EINVAL, "rill_ctx_key: %s", rill_err_name(l.rc[0]));
    cr_assert_eq(l.rc[1], RILL_EINVAL, "rill_state_get: %s", rill_err_name(l.rc[1]));
    cr_assert_eq(l.rc[2], RILL_EINVAL, "rill_timer_register: %s", rill_err_name(l.rc[2]));
    cr_assert_eq(l.rc[3], 1, "rill_ctx_input %d", l.rc[3]);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

/* Keyed side: counts records per key in "seen" and emits {key, count}. */
static int bc_count_keyed(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)len;
    (void)ud;
    kv r = kv_read(rec);
    rill_state *st = rill_ctx_state(ctx, "seen");
    const void *v;
    size_t vl;
    int32_t n = 0;
    int rc = rill_state_get(st, &v, &vl);
    if (rc == RILL_OK)
        memcpy(&n, v, sizeof n);
    else if (rc != RILL_ENOTFOUND)
        return -1;
    n++;
    if ((rc = rill_state_put(st, &n, sizeof n)))
        return rc;
    return emit_kv(ctx, r.key, n);
}

Test(broadcast, keyed_side_uses_keyed_state)
{
    rill_env *env = state_env(1);
    rill_stream *c = bc_op(env, bc_count_keyed, bc_store, NULL);
    cr_assert_not_null(rill_stream_add_state(c, "seen", RILL_STATE_VALUE));
    rill_harness *h = hnew(env, c);
    push_kv(h, 0, 1, 0, 1);
    push_kv(h, 0, 2, 0, 2);
    push_kv(h, 1, 9, 9, 3);
    push_kv(h, 0, 1, 0, 4);
    EXPECT_OUT(h, NULL, W_REC(1, 1, 1), W_REC(2, 1, 2), W_REC(1, 2, 4));
    rill_harness_free(h);
    rill_env_free(env);
}

/* Main side of a non-keyed connect_broadcast: notes what keyed calls
 * return, then emits {key, rules[key]} as bc_lookup does. */
static int bc_lookup_unkeyed(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    bc_log *l = ud;
    const void *key;
    size_t klen;
    bc_note(l, rill_ctx_key(ctx, &key, &klen));
    bc_note(l, rill_timer_register(ctx, RILL_EVENT_TIME, 10));
    return bc_lookup(ctx, rec, len, NULL);
}

Test(broadcast, main_input_may_be_unkeyed)
{
    rill_env *env = state_env(1);
    bc_log l;
    memset(&l, 0, sizeof l);
    rill_stream *s = rill_harness_input(env, "events");
    rill_stream *bc = rill_harness_input(env, "rules");
    rill_stream *c = rill_connect_broadcast(s, bc, "apply", bc_lookup_unkeyed, bc_store, NULL, &l);
    cr_assert_not_null(rill_stream_add_state(c, "rules", RILL_STATE_BROADCAST));
    rill_harness *h = hnew(env, c);
    push_kv(h, 1, 4, 40, 1);
    push_kv(h, 0, 4, 0, 2);
    push_kv(h, 0, 5, 0, 3);
    EXPECT_OUT(h, NULL, W_REC(4, 40, 2), W_REC(5, -1, 3));
    cr_assert_eq(l.n, 4);
    cr_assert_eq(l.rc[0], RILL_EINVAL);
    cr_assert_eq(l.rc[1], RILL_EINVAL);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(broadcast, keyed_state_needs_a_keyed_main_input)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "events", "abcdefgh", 8, 1);
    rill_stream *bc = rill_from_array(env, "rules", "abcdefgh", 8, 1);
    rill_stream *c = rill_connect_broadcast(s, bc, "apply", nothing, nothing, NULL, NULL);
    rill_stream_add_state(c, "seen", RILL_STATE_VALUE);
    rill_sink(c, "out", count_sink, NULL);
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "apply");
    assert_has(rill_env_errmsg(env), "seen");
    rill_env_free(env);
}

typedef struct bc_job {
    atomic_int bc_seen[MAXSUB];
    atomic_int main_seen;
    int entries_at_close[MAXSUB];
    atomic_int errors;
} bc_job;

static int bc_job_store(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    bc_job *j = ud;
    atomic_fetch_add(&j->bc_seen[rill_ctx_subtask(ctx)], 1);
    uint64_t v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    rill_state *st = rill_ctx_state(ctx, "rules");
    return rill_state_map_put(st, &v, sizeof v, &v, sizeof v);
}

static int bc_job_main(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    bc_job *j = ud;
    atomic_fetch_add(&j->main_seen, 1);
    return rill_emit(ctx, rec, len);
}

static int bc_job_close(rill_ctx *ctx, void *ud)
{
    bc_job *j = ud;
    rill_state *st = rill_ctx_state(ctx, "rules");
    size_t pos = 0;
    const void *k, *v;
    size_t kl, vl;
    int n = 0, rc;
    while ((rc = rill_state_map_next(st, &pos, &k, &kl, &v, &vl)) == 1)
        n++;
    if (rc < 0)
        atomic_fetch_add(&j->errors, 1);
    j->entries_at_close[rill_ctx_subtask(ctx)] = n;
    return 0;
}

Test(broadcast, every_subtask_sees_every_broadcast_record_in_a_job)
{
    rill_env *env = state_env(2);
    bc_job *j = calloc(1, sizeof *j);
    cr_assert_not_null(j);
    sum_total t;
    memset(&t, 0, sizeof t);
    rill_stream *s = rill_key_by_bytes(rill_generator(env, "main", 1000, gen_index, NULL), 0, 8);
    rill_stream *bc = rill_generator(env, "rules", 50, gen_index, NULL);
    rill_stream *c = rill_connect_broadcast(s, bc, "apply", bc_job_main, bc_job_store, NULL, j);
    rill_stream_add_state(c, "rules", RILL_STATE_BROADCAST);
    rill_stream_set_lifecycle(c, NULL, bc_job_close);
    rill_sink(c, "out", total_sink, &t);
    run_ok(env);
    cr_assert_eq(atomic_load(&j->bc_seen[0]), 50);
    cr_assert_eq(atomic_load(&j->bc_seen[1]), 50);
    cr_assert_eq(atomic_load(&j->main_seen), 1000);
    cr_assert_eq(j->entries_at_close[0], 50);
    cr_assert_eq(j->entries_at_close[1], 50);
    cr_assert_eq(atomic_load(&j->errors), 0);
    cr_assert_eq(atomic_load(&t.count), 1000);
    cr_assert_eq(atomic_load(&t.sum), 499500);
    free(j);
    rill_env_free(env);
}

Test(broadcast, broadcast_state_needs_a_broadcast_input)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_key_by_bytes(rill_from_array(env, "src", "abcdefgh", 4, 2), 0, 4);
    rill_stream *p = rill_process(s, "plain", nothing, NULL, NULL);
    cr_assert_not_null(rill_stream_add_state(p, "rules", RILL_STATE_BROADCAST));
    rill_sink(p, "out", count_sink, NULL);
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "plain");
    assert_has(rill_env_errmsg(env), "rules");
    rill_env_free(env);
}

/* ---- keyed state of every kind ----------------------------------------------- */

static int sum_i32(const void *a, size_t a_len, const void *b, size_t b_len, void *out,
                   size_t *out_len, void *ud)
{
    (void)ud;
    if (a_len != 4 || b_len != 4)
        return -1;
    if (*out_len < 4) {
        *out_len = 4;
        return 0;
    }
    int32_t x, y;
    memcpy(&x, a, 4);
    memcpy(&y, b, 4);
    x += y;
    memcpy(out, &x, 4);
    *out_len = 4;
    return 0;
}

/* Average: the accumulator is {sum, count} (int64), the result a double. */
typedef struct avg_acc {
    int64_t sum, n;
} avg_acc;

static int avg_create(void *out, size_t *out_len, void *ud)
{
    (void)ud;
    if (*out_len < sizeof(avg_acc)) {
        *out_len = sizeof(avg_acc);
        return 0;
    }
    avg_acc a = {0, 0};
    memcpy(out, &a, sizeof a);
    *out_len = sizeof a;
    return 0;
}

static int avg_add(const void *acc, size_t acc_len, const void *val, size_t val_len, void *out,
                   size_t *out_len, void *ud)
{
    (void)ud;
    if (acc_len != sizeof(avg_acc) || val_len != 4)
        return -1;
    if (*out_len < sizeof(avg_acc)) {
        *out_len = sizeof(avg_acc);
        return 0;
    }
    avg_acc a;
    int32_t v;
    memcpy(&a, acc, sizeof a);
    memcpy(&v, val, 4);
    a.sum += v;
    a.n++;
    memcpy(out, &a, sizeof a);
    *out_len = sizeof a;
    return 0;
}

static int avg_merge(const void *x, size_t x_len, const void *y, size_t y_len, void *out,
                     size_t *out_len, void *ud)
{
    (void)ud;
    if (x_len != sizeof(avg_acc) || y_len != sizeof(avg_acc))
        return -1;
    if (*out_len < sizeof(avg_acc)) {
        *out_len = sizeof(avg_acc);
        return 0;
    }
    avg_acc a, b;
    memcpy(&a, x, sizeof a);
    memcpy(&b, y, sizeof b);
    a.sum += b.sum;
    a.n += b.n;
    memcpy(out, &a, sizeof a);
    *out_len = sizeof a;
    return 0;
}

static int avg_result(const void *acc, size_t acc_len, void *out, size_t *out_len, void *ud)
{
    (void)ud;
    if (acc_len != sizeof(avg_acc))
        return -1;
    if (*out_len < sizeof(double)) {
        *out_len = sizeof(double);
        return 0;
    }
    avg_acc a;
    memcpy(&a, acc, sizeof a);
    double d = a.n ? (double)a.sum / (double)a.n : 0.0;
    memcpy(out, &d, sizeof d);
    *out_len = sizeof d;
    return 0;
}

static const rill_aggregate_fns avg_fns = {avg_create, avg_add, avg_merge, avg_result};

/* Each record {key, val} goes into every state of its key: "value" = val,
 * "list" += val, "map"['a' + val % 26] = val, "sum" += val, "avg" += val.
 * A negative val clears "value" instead. */
static int store_all(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
    rill_state *value = rill_ctx_state(ctx, "value");
    rill_state *list = rill_ctx_state(ctx, "list");
    rill_state *map = rill_ctx_state(ctx, "map");
    rill_state *sum = rill_ctx_state(ctx, "sum");
    rill_state *avg = rill_ctx_state(ctx, "avg");
    if (!value || !list || !map || !sum || !avg || rill_ctx_state(ctx, "nope"))
        return -2;
    if (r.val < 0)
        return rill_state_clear(value);
    int rc;
    char mk = (char)('a' + r.val % 26);
    if ((rc = rill_state_put(value, &r.val, sizeof r.val)) ||
        (rc = rill_state_add(list, &r.val, sizeof r.val)) ||
        (rc = rill_state_map_put(map, &mk, 1, &r.val, sizeof r.val)) ||
        (rc = rill_state_add(sum, &r.val, sizeof r.val)) ||
        (rc = rill_state_add(avg, &r.val, sizeof r.val)))
        return rc;
    return 0;
}

/* A harness on a process function with all five keyed states, fed key 1:
 * 3, 1, 29 and key 2: 7. */
static rill_harness *all_states_harness(rill_env *env)
{
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *p = rill_process(in, "store", store_all, NULL, NULL);
    rill_stream_add_state(p, "value", RILL_STATE_VALUE);
    rill_stream_add_state(p, "list", RILL_STATE_LIST);
    rill_stream_add_state(p, "map", RILL_STATE_MAP);
    rill_stream_add_reducing_state(p, "sum", sum_i32, NULL);
    cr_assert_not_null(rill_stream_add_aggregating_state(p, "avg", &avg_fns, NULL),
                       "%s", rill_env_errmsg(env));
    rill_harness *h = hnew(env, p);
    push_kv(h, 0, 1, 3, 1);
    push_kv(h, 0, 2, 7, 2);
    push_kv(h, 0, 1, 1, 3);
    push_kv(h, 0, 1, 29, 4);
    return h;
}

static int32_t get_i32(rill_harness *h, const char *state, int32_t key)
{
    rill_state *st = rill_harness_state(h, state, &key, sizeof key);
    cr_assert_not_null(st, "no state %s", state);
    const void *v;
    size_t vl;
    int rc = rill_state_get(st, &v, &vl);
    cr_assert_eq(rc, RILL_OK, "state %s of key %d: %s", state, key, rill_err_name(rc));
    cr_assert_eq(vl, 4);
    int32_t x;
    memcpy(&x, v, 4);
    return x;
}

Test(keyed_state, value_state)
{
    rill_env *env = state_env(1);
    rill_harness *h = all_states_harness(env);
    cr_assert_eq(get_i32(h, "value", 1), 29);
    cr_assert_eq(get_i32(h, "value", 2), 7);
    int32_t k = 3;
    const void *v;
    size_t vl;
    cr_assert_eq(rill_state_get(rill_harness_state(h, "value", &k, 4), &v, &vl), RILL_ENOTFOUND);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(keyed_state, value_state_cleared)
{
    rill_env *env = state_env(1);
    rill_harness *h = all_states_harness(env);
    push_kv(h, 0, 1, -1, 5);
    int32_t k = 1;
    const void *v;
    size_t vl;
    cr_assert_eq(rill_state_get(rill_harness_state(h, "value", &k, 4), &v, &vl), RILL_ENOTFOUND);
    cr_assert_eq(get_i32(h, "value", 2), 7);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(keyed_state, list_state)
{
    rill_env *env = state_env(1);
    rill_harness *h = all_states_harness(env);
    int32_t k = 1;
    rill_state *st = rill_harness_state(h, "list", &k, sizeof k);
    cr_assert_not_null(st);
    int32_t items[8];
    int n = 0, rc;
    size_t pos = 0;
    const void *it;
    size_t il;
    while ((rc = rill_state_list_next(st, &pos, &it, &il)) == 1 && n < 8) {
        cr_assert_eq(il, 4);
        memcpy(&items[n++], it, 4);
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(n, 3);
    cr_assert_eq(items[0], 3);
    cr_assert_eq(items[1], 1);
    cr_assert_eq(items[2], 29);
    k = 2;
    st = rill_harness_state(h, "list", &k, sizeof k);
    pos = 0;
    cr_assert_eq(rill_state_list_next(st, &pos, &it, &il), 1);
    cr_assert_eq(il, 4);
    int32_t x;
    memcpy(&x, it, 4);
    cr_assert_eq(x, 7);
    cr_assert_eq(rill_state_list_next(st, &pos, &it, &il), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(keyed_state, map_state)
{
    rill_env *env = state_env(1);
    rill_harness *h = all_states_harness(env);
    int32_t k = 1;
    rill_state *st = rill_harness_state(h, "map", &k, sizeof k);
    cr_assert_not_null(st);
    /* 3 -> 'd', 1 -> 'b', 29 -> 'd' (replaces 3): b=1, d=29 in key order. */
    char keys[8];
    int32_t vals[8];
    int n = 0, rc;
    size_t pos = 0;
    const void *mk, *mv;
    size_t mkl, mvl;
    while ((rc = rill_state_map_next(st, &pos, &mk, &mkl, &mv, &mvl)) == 1 && n < 8) {
        cr_assert_eq(mkl, 1);
        cr_assert_eq(mvl, 4);
        keys[n] = *(const char *)mk;
        memcpy(&vals[n++], mv, 4);
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(keys[0], 'b');
    cr_assert_eq(vals[0], 1);
    cr_assert_eq(keys[1], 'd');
    cr_assert_eq(vals[1], 29);
    st = rill_harness_state(h, "map", &k, sizeof k);
    cr_assert_eq(rill_state_map_get(st, "b", 1, &mv, &mvl), RILL_OK);
    cr_assert_eq(mvl, 4);
    cr_assert_eq(rill_state_map_get(st, "z", 1, &mv, &mvl), RILL_ENOTFOUND);
    k = 2; /* 7 -> 'h' */
    st = rill_harness_state(h, "map", &k, sizeof k);
    cr_assert_eq(rill_state_map_get(st, "h", 1, &mv, &mvl), RILL_OK);
    int32_t x;
    memcpy(&x, mv, 4);
    cr_assert_eq(x, 7);
    cr_assert_eq(rill_state_map_get(st, "b", 1, &mv, &mvl), RILL_ENOTFOUND);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(keyed_state, reducing_state)
{
    rill_env *env = state_env(1);
    rill_harness *h = all_states_harness(env);
    cr_assert_eq(get_i32(h, "sum", 1), 33);
    cr_assert_eq(get_i32(h, "sum", 2), 7);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(keyed_state, aggregating_state)
{
    rill_env *env = state_env(1);
    rill_harness *h = all_states_harness(env);
    push_kv(h, 0, 2, 8, 5);
    int32_t k = 1;
    rill_state *st = rill_harness_state(h, "avg", &k, sizeof k);
    cr_assert_not_null(st);
    const void *v;
    size_t vl;
    cr_assert_eq(rill_state_get(st, &v, &vl), RILL_OK);
    cr_assert_eq(vl, sizeof(double));
    double d;
    memcpy(&d, v, sizeof d);
    cr_assert_eq(d, 11.0, "average %g", d); /* (3 + 1 + 29) / 3 */
    k = 2;
    st = rill_harness_state(h, "avg", &k, sizeof k);
    cr_assert_eq(rill_state_get(st, &v, &vl), RILL_OK);
    memcpy(&d, v, sizeof d);
    cr_assert_eq(d, 7.5, "average %g", d);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(keyed_state, unknown_state_name_gives_null)
{
    rill_env *env = state_env(1);
    rill_harness *h = all_states_harness(env);
    int32_t k = 1;
    cr_assert_null(rill_harness_state(h, "nope", &k, sizeof k));
    rill_harness_free(h);
    rill_env_free(env);
}

/* Stores val in "value" and sets a timer at 100 + key; on_timer emits
 * {key, value of its key}. */
static int store_and_time(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)len;
    (void)ud;
    kv r = kv_read(rec);
    int rc = rill_state_put(rill_ctx_state(ctx, "value"), &r.val, sizeof r.val);
    return rc ? rc : rill_timer_register(ctx, RILL_EVENT_TIME, 100 + r.key);
}

static int emit_value_of_key(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)ts;
    (void)domain;
    (void)ud;
    const void *key, *v;
    size_t klen, vl;
    if (rill_ctx_key(ctx, &key, &klen) || klen != 4)
        return -1;
    if (rill_state_get(rill_ctx_state(ctx, "value"), &v, &vl) || vl != 4)
        return -2;
    int32_t k, x;
    memcpy(&k, key, 4);
    memcpy(&x, v, 4);
    return emit_kv(ctx, k, x);
}

Test(keyed_state, on_timer_sees_the_state_of_the_timer_key)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *p = rill_process(in, "p", store_and_time, emit_value_of_key, NULL);
    rill_stream_add_state(p, "value", RILL_STATE_VALUE);
    rill_harness *h = hnew(env, p);
    push_kv(h, 0, 1, 11, 1);
    push_kv(h, 0, 2, 22, 2);
    push_kv(h, 0, 3, 33, 3);
    HOK(h, rill_harness_watermark(h, 0, 200));
    EXPECT_OUT(h, NULL, W_REC(1, 11, 101), W_REC(2, 22, 102), W_REC(3, 33, 103), W_WM(200));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(keyed_state, declared_on_a_non_keyed_operator)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcdefgh", 4, 2);
    rill_stream *p = rill_process(s, "counter", nothing, NULL, NULL);
    cr_assert_not_null(rill_stream_add_state(p, "seen", RILL_STATE_VALUE));
    rill_sink(p, "out", count_sink, NULL);
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "counter");
    assert_has(rill_env_errmsg(env), "seen");
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EINVAL);
    rill_env_free(env);
}

Test(keyed_state, declared_on_a_non_keyed_operator_in_a_harness)
{
    rill_env *env = state_env(1);
    rill_stream *p = rill_process(rill_harness_input(env, "in"), "counter", nothing, NULL, NULL);
    rill_stream_add_reducing_state(p, "total", sum_i32, NULL);
    rill_harness *h = NULL;
    cr_assert_eq(rill_harness_new(&h, env, p), RILL_EINVAL);
    cr_assert_null(h);
    assert_has(rill_env_errmsg(env), "counter");
    assert_has(rill_env_errmsg(env), "total");
    rill_env_free(env);
}

/* Counts records per key in "count" and emits {key, count}. */
static int count_per_key(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(u64pair))
        return -1;
    u64pair p;
    memcpy(&p, rec, sizeof p);
    rill_state *st = rill_ctx_state(ctx, "count");
    const void *v;
    size_t vl;
    int32_t n = 0;
    int rc = rill_state_get(st, &v, &vl);
    if (rc == RILL_OK && vl == 4)
        memcpy(&n, v, 4);
    else if (rc != RILL_ENOTFOUND)
        return -2;
    n++;
    if ((rc = rill_state_put(st, &n, sizeof n)))
        return rc;
    return emit_kv(ctx, (int32_t)p.key, n);
}

Test(keyed_state, counts_per_key_in_a_job)
{
    rill_env *env = state_env(2);
    gotlist g;
    gl_init(&g);
    rill_stream *s = rill_key_by_bytes(rill_generator(env, "gen", 6400, gen_pair, NULL), 0, 8);
    rill_stream *p = rill_process(s, "count", count_per_key, NULL, NULL);
    rill_stream_add_state(p, "count", RILL_STATE_VALUE);
    rill_sink(p, "out", gl_sink, &g);
    run_ok(env);
    cr_assert_eq(g.n, 6400);
    /* Each key's counts come out as 1, 2, ..., 100 on one subtask. */
    int next[64], sub[64];
    for (int k = 0; k < 64; k++)
        next[k] = 1, sub[k] = -1;
    for (size_t i = 0; i < g.n; i++) {
        got x = g.v[i];
        cr_assert(x.key >= 0 && x.key < 64);
        cr_assert_eq(x.val, next[x.key], "key %d: count %d, expected %d", x.key, x.val,
                     next[x.key]);
        next[x.key]++;
        if (sub[x.key] < 0)
            sub[x.key] = x.sub;
        cr_assert_eq(x.sub, sub[x.key], "key %d on two subtasks", x.key);
    }
    for (int k = 0; k < 64; k++)
        cr_assert_eq(next[k], 101);
    gl_free(&g);
    rill_env_free(env);
}

/* Reads the state named by ud for each record and returns what the read
 * returned (0 when the key has no value yet). */
static int read_named_state(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    const void *v;
    size_t vl;
    int rc = rill_state_get(rill_ctx_state(ctx, ud), &v, &vl);
    return rc == RILL_ENOTFOUND ? 0 : rc;
}

Test(keyed_state, undeclared_state_name_is_named_in_the_job_message)
{
    static const struct {
        const char *declared[2]; /* NULL: none */
        const char *message;
    } cases[] = {
        {{"count", "total"},
         "operator 'counter' (subtask 1/1): process function returned -2: rill_ctx_state: no "
         "state 'cnt' is declared on this operator (declared: 'count', 'total')"},
        {{NULL, NULL},
         "operator 'counter' (subtask 1/1): process function returned -2: rill_ctx_state: no "
         "state 'cnt' is declared on this operator (it declares none; see "
         "rill_stream_add_state)"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rill_env *env = state_env(1);
        rill_stream *s = rill_key_by_bytes(rill_from_array(env, "src", "ab", 1, 2), 0, 1);
        rill_stream *p = rill_process(s, "counter", read_named_state, NULL, "cnt");
        for (int i = 0; i < 2 && cases[c].declared[i]; i++)
            rill_stream_add_state(p, cases[c].declared[i], RILL_STATE_VALUE);
        rill_sink(p, "out", count_sink, NULL);
        cr_assert_eq(rill_env_execute(env, "state names"), RILL_EUSER, "case %zu: %s", c,
                     rill_env_errmsg(env));
        cr_assert_str_eq(rill_env_errmsg(env), cases[c].message, "case %zu", c);
        rill_env_free(env);
    }
}
