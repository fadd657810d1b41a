/* eventtime_test.c - timestamp assigners (periodic and punctuated
 * watermarks), watermarks through operators (minimum over inputs, never
 * backwards, idleness), the final watermark at end of input, and the
 * building mistakes of event time settings.
 *
 * Deterministic cases run in a test harness, whose processing-time clock the
 * test moves; end-to-end cases run real jobs whose callbacks only record what
 * they see (under a mutex or in atomics), asserted after the job ended.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

#define TEST_NAME "eventtime"
#include "harness_common.h"

TestSuite(assigner, .fini = rm_tmp);
TestSuite(punctuated, .fini = rm_tmp);
TestSuite(watermark, .fini = rm_tmp);
TestSuite(idleness, .fini = rm_tmp);
TestSuite(end_of_input, .fini = rm_tmp);
TestSuite(eventtime_building, .fini = rm_tmp);

/* Timestamp = the uint64 record (an index). */
static int64_t ts_of_index(const void *rec, size_t len, int64_t ts, void *ud)
{
    (void)ts;
    (void)ud;
    uint64_t v = 0;
    if (len == sizeof v)
        memcpy(&v, rec, sizeof v);
    return (int64_t)v;
}

/* ---- timestamp assigners in a harness ----------------------------------- */

/* A harness on a periodic assigner reading a harness input. */
static rill_harness *assigner_harness(rill_env *env, rill_timestamp_fn fn, int64_t ooo,
                                      void *ud)
{
    rill_stream *in = rill_harness_input(env, "in");
    rill_stream *a = rill_assign_timestamps(in, "assign", fn, ooo, ud);
    cr_assert_not_null(a, "%s", rill_env_errmsg(env));
    return hnew(env, a);
}

typedef struct ts_seen {
    int64_t ts[16]; /* the ts argument of each call */
    int n;
} ts_seen;

/* Timestamp = the record's val in seconds (val * 1000); notes the ts the
 * record carried. */
static int64_t ts_from_val(const void *rec, size_t len, int64_t ts, void *ud)
{
    ts_seen *s = ud;
    if (s && s->n < 16)
        s->ts[s->n++] = ts;
    return len == sizeof(kv) ? (int64_t)kv_read(rec).val * 1000 : 0;
}

Test(assigner, periodic_watermark_is_max_minus_out_of_orderness_minus_one)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 500, NULL);
    push_kv(h, 0, 1, 1, 1000);
    push_kv(h, 0, 1, 2, 3000);
    push_kv(h, 0, 1, 3, 2000);
    HOK(h, rill_harness_set_time(h, 199));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 1000), W_REC(1, 2, 3000), W_REC(1, 3, 2000));
    HOK(h, rill_harness_set_time(h, 200));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 1000), W_REC(1, 2, 3000), W_REC(1, 3, 2000), W_WM(2499));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, watermark_comes_once_per_interval)
{
    rill_env *env = state_env(1);
    cr_assert_eq(rill_env_set_watermark_interval(env, 100), RILL_OK);
    rill_harness *h = assigner_harness(env, NULL, 0, NULL);
    push_kv(h, 0, 1, 1, 1000);
    HOK(h, rill_harness_set_time(h, 99));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 1000));
    HOK(h, rill_harness_set_time(h, 100));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 1000), W_WM(999));
    push_kv(h, 0, 1, 2, 1500);
    HOK(h, rill_harness_set_time(h, 150));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 1000), W_WM(999), W_REC(1, 2, 1500));
    HOK(h, rill_harness_set_time(h, 200));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 1000), W_WM(999), W_REC(1, 2, 1500), W_WM(1499));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, no_watermark_before_the_first_record)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 0, NULL);
    HOK(h, rill_harness_set_time(h, 1000));
    EXPECT_EMPTY(h, NULL);
    push_kv(h, 0, 1, 1, 10);
    HOK(h, rill_harness_set_time(h, 1200));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 10), W_WM(9));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, watermark_is_emitted_only_when_it_increases)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 0, NULL);
    push_kv(h, 0, 1, 1, 1000);
    HOK(h, rill_harness_set_time(h, 200));
    HOK(h, rill_harness_set_time(h, 400));
    HOK(h, rill_harness_set_time(h, 600));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 1000), W_WM(999));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, watermark_never_goes_backwards)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 100, NULL);
    push_kv(h, 0, 1, 1, 5000);
    HOK(h, rill_harness_set_time(h, 200));
    push_kv(h, 0, 1, 2, 3000);
    HOK(h, rill_harness_set_time(h, 400));
    push_kv(h, 0, 1, 3, 6000);
    HOK(h, rill_harness_set_time(h, 600));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 5000), W_WM(4899), W_REC(1, 2, 3000), W_REC(1, 3, 6000),
               W_WM(5899));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, monotonous_timestamps_give_max_minus_one)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 0, NULL);
    push_kv(h, 0, 1, 1, 100);
    push_kv(h, 0, 1, 2, 250);
    HOK(h, rill_harness_set_time(h, 200));
    push_kv(h, 0, 1, 3, 251);
    HOK(h, rill_harness_set_time(h, 400));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 100), W_REC(1, 2, 250), W_WM(249), W_REC(1, 3, 251),
               W_WM(250));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, late_records_are_kept_with_their_timestamps)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 0, NULL);
    push_kv(h, 0, 1, 1, 5000);
    HOK(h, rill_harness_set_time(h, 200));
    push_kv(h, 0, 1, 2, 1000);
    push_kv(h, 0, 1, 3, 4999);
    EXPECT_OUT(h, NULL, W_REC(1, 1, 5000), W_WM(4999), W_REC(1, 2, 1000), W_REC(1, 3, 4999));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, timestamp_function_sets_the_timestamp)
{
    rill_env *env = state_env(1);
    ts_seen seen = {{0}, 0};
    rill_harness *h = assigner_harness(env, ts_from_val, 0, &seen);
    push_kv(h, 0, 1, 7, 55);
    push_kv(h, 0, 1, 3, RILL_TS_MIN);
    HOK(h, rill_harness_set_time(h, 200));
    EXPECT_OUT(h, NULL, W_REC(1, 7, 7000), W_REC(1, 3, 3000), W_WM(6999));
    cr_assert_eq(seen.n, 2);
    cr_assert_eq(seen.ts[0], 55, "timestamp fn got ts %lld", (long long)seen.ts[0]);
    cr_assert_eq(seen.ts[1], RILL_TS_MIN);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, null_timestamp_function_keeps_record_timestamps)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 50, NULL);
    push_kv(h, 0, 1, 1, 700);
    push_kv(h, 0, 1, 2, 650);
    HOK(h, rill_harness_set_time(h, 200));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 700), W_REC(1, 2, 650), W_WM(649));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, timestamps_near_the_minimum_give_no_watermark)
{
    /* max - out-of-orderness - 1 is below RILL_TS_MIN: there is no
     * watermark to emit yet (and nothing may wrap around). */
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 10, NULL);
    push_kv(h, 0, 1, 1, RILL_TS_MIN + 1);
    HOK(h, rill_harness_set_time(h, 200));
    EXPECT_OUT(h, NULL, W_REC(1, 1, RILL_TS_MIN + 1));
    push_kv(h, 0, 1, 2, RILL_TS_MIN + 20);
    HOK(h, rill_harness_set_time(h, 400));
    EXPECT_OUT(h, NULL, W_REC(1, 1, RILL_TS_MIN + 1), W_REC(1, 2, RILL_TS_MIN + 20),
               W_WM(RILL_TS_MIN + 9));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, upstream_watermarks_are_dropped)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 0, NULL);
    HOK(h, rill_harness_watermark(h, 0, 500));
    EXPECT_EMPTY(h, NULL);
    push_kv(h, 0, 1, 1, 100);
    HOK(h, rill_harness_watermark(h, 0, 10000));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 100));
    HOK(h, rill_harness_set_time(h, 200));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 100), W_WM(99));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, final_upstream_watermark_is_forwarded)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 0, NULL);
    push_kv(h, 0, 1, 1, 100);
    HOK(h, rill_harness_watermark(h, 0, RILL_TS_MAX));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 100), W_WM(RILL_TS_MAX));
    /* Nothing periodic after the final watermark. */
    HOK(h, rill_harness_set_time(h, 1000));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 100), W_WM(RILL_TS_MAX));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(assigner, end_of_input_forwards_the_final_watermark)
{
    rill_env *env = state_env(1);
    rill_harness *h = assigner_harness(env, NULL, 0, NULL);
    push_kv(h, 0, 1, 1, 100);
    HOK(h, rill_harness_end(h));
    EXPECT_OUT(h, NULL, W_REC(1, 1, 100), W_WM(RILL_TS_MAX));
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- punctuated watermarks ---------------------------------------------- */

/* A record with key 1 is a punctuation: the watermark after it is its val. */
static int64_t punct_key1(const void *rec, size_t len, int64_t ts, void *ud)
{
    (void)ts;
    (void)ud;
    if (len != sizeof(kv))
        return RILL_TS_MIN;
    kv r = kv_read(rec);
    return r.key == 1 ? r.val : RILL_TS_MIN;
}

/* The watermark after each record is its timestamp. */
static int64_t punct_ts(const void *rec, size_t len, int64_t ts, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return ts;
}

Test(punctuated, watermark_follows_its_record_at_once)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_harness_input(env, "in");
    rill_stream *a = rill_assign_punctuated(in, "punct", NULL, punct_key1, NULL);
    cr_assert_not_null(a);
    rill_harness *h = hnew(env, a);
    push_kv(h, 0, 0, 0, 100);
    EXPECT_OUT(h, NULL, W_REC(0, 0, 100));
    push_kv(h, 0, 1, 150, 150);
    EXPECT_OUT(h, NULL, W_REC(0, 0, 100), W_REC(1, 150, 150), W_WM(150));
    push_kv(h, 0, 0, 0, 300);
    push_kv(h, 0, 1, 120, 310); /* lower than the last: not emitted */
    push_kv(h, 0, 1, 400, 400);
    EXPECT_OUT(h, NULL, W_REC(0, 0, 100), W_REC(1, 150, 150), W_WM(150), W_REC(0, 0, 300),
               W_REC(1, 120, 310), W_REC(1, 400, 400), W_WM(400));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(punctuated, no_periodic_watermarks)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_harness_input(env, "in");
    rill_stream *a = rill_assign_punctuated(in, "punct", NULL, punct_key1, NULL);
    rill_harness *h = hnew(env, a);
    push_kv(h, 0, 0, 0, 900);
    push_kv(h, 0, 1, 100, 1000);
    HOK(h, rill_harness_set_time(h, 5000));
    EXPECT_OUT(h, NULL, W_REC(0, 0, 900), W_REC(1, 100, 1000), W_WM(100));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(punctuated, timestamp_function_applies_before_the_watermark_function)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_harness_input(env, "in");
    rill_stream *a = rill_assign_punctuated(in, "punct", ts_from_val, punct_ts, NULL);
    rill_harness *h = hnew(env, a);
    push_kv(h, 0, 0, 2, 1);
    push_kv(h, 0, 0, 1, 2);
    push_kv(h, 0, 0, 5, 3);
    EXPECT_OUT(h, NULL, W_REC(0, 2, 2000), W_WM(2000), W_REC(0, 1, 1000), W_REC(0, 5, 5000),
               W_WM(5000));
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- watermarks through operators ---------------------------------------- */

/* A sink that ignores its records (the harness keeps them). */
static int drop_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return 0;
}

Test(watermark, operator_watermark_is_the_minimum_of_its_inputs)
{
    rill_env *env = state_env(1);
    rill_stream *ins[2] = {rill_harness_input(env, "a"), rill_harness_input(env, "b")};
    rill_sink(rill_union(ins, 2), "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    HOK(h, rill_harness_watermark(h, 0, 100));
    EXPECT_EMPTY(h, "out");
    HOK(h, rill_harness_watermark(h, 1, 50));
    EXPECT_OUT(h, "out", W_WM(50));
    HOK(h, rill_harness_watermark(h, 0, 200));
    EXPECT_OUT(h, "out", W_WM(50));
    HOK(h, rill_harness_watermark(h, 1, 300));
    EXPECT_OUT(h, "out", W_WM(50), W_WM(200));
    HOK(h, rill_harness_watermark(h, 1, 400));
    HOK(h, rill_harness_watermark(h, 0, 450));
    EXPECT_OUT(h, "out", W_WM(50), W_WM(200), W_WM(400));
    rill_harness_free(h);
    rill_env_free(env);
}

typedef struct wm_note {
    int64_t wm[16]; /* rill_ctx_watermark in each on_timer */
    int n;
} wm_note;

/* Registers an event-time timer at the record's val. */
static int reg_at_val(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    return rill_timer_register(ctx, RILL_EVENT_TIME, kv_read(rec).val);
}

/* Emits {key, timer time} and notes the operator's watermark. */
static int timer_emit_key(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)domain;
    wm_note *w = ud;
    if (w && w->n < 16)
        w->wm[w->n++] = rill_ctx_watermark(ctx);
    const void *key;
    size_t klen;
    if (rill_ctx_key(ctx, &key, &klen) != RILL_OK || klen != sizeof(int32_t))
        return -1;
    int32_t k;
    memcpy(&k, key, sizeof k);
    return emit_kv(ctx, k, (int32_t)ts);
}

Test(watermark, co_process_timers_fire_at_the_minimum_of_both_inputs)
{
    rill_env *env = state_env(1);
    wm_note w = {{0}, 0};
    rill_stream *a = rill_key_by_bytes(rill_harness_input(env, "a"), 0, 4);
    rill_stream *b = rill_key_by_bytes(rill_harness_input(env, "b"), 0, 4);
    rill_stream *cp = rill_co_process(a, b, "join", reg_at_val, reg_at_val, timer_emit_key, &w);
    rill_sink(cp, "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 1, 60, 10);
    HOK(h, rill_harness_watermark(h, 0, 100));
    EXPECT_EMPTY(h, "out");
    HOK(h, rill_harness_watermark(h, 1, 59));
    EXPECT_OUT(h, "out", W_WM(59));
    HOK(h, rill_harness_watermark(h, 1, 70));
    EXPECT_OUT(h, "out", W_WM(59), W_REC(1, 60, 60), W_WM(70));
    cr_assert_eq(w.n, 1);
    cr_assert_eq(w.wm[0], 70, "watermark in on_timer %lld", (long long)w.wm[0]);
    rill_harness_free(h);
    rill_env_free(env);
}

/* Emits {0, its watermark} for each record. */
static int emit_watermark_seen(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return emit_kv(ctx, 0, (int32_t)rill_ctx_watermark(ctx));
}

Test(watermark, late_watermark_does_not_move_it_back)
{
    rill_env *env = state_env(1);
    rill_stream *p = rill_process(rill_harness_input(env, "in"), "wm", emit_watermark_seen,
                                  NULL, NULL);
    rill_harness *h = hnew(env, p);
    HOK(h, rill_harness_watermark(h, 0, 100));
    HOK(h, rill_harness_watermark(h, 0, 50));
    push_kv(h, 0, 0, 0, 10);
    EXPECT_OUT(h, NULL, W_WM(100), W_REC(0, 100, 10));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(watermark, late_watermark_on_one_input_of_a_graph_is_ignored)
{
    rill_env *env = state_env(1);
    rill_stream *ins[2] = {rill_harness_input(env, "a"), rill_harness_input(env, "b")};
    rill_sink(rill_union(ins, 2), "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    HOK(h, rill_harness_watermark(h, 0, 300));
    HOK(h, rill_harness_watermark(h, 1, 300));
    HOK(h, rill_harness_watermark(h, 0, 100));
    HOK(h, rill_harness_watermark(h, 1, 200));
    HOK(h, rill_harness_watermark(h, 0, 400));
    EXPECT_OUT(h, "out", W_WM(300));
    HOK(h, rill_harness_watermark(h, 1, 500));
    EXPECT_OUT(h, "out", W_WM(300), W_WM(400));
    rill_harness_free(h);
    rill_env_free(env);
}

/* Emits {0, processing time}. */
static int emit_processing_time(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return emit_kv(ctx, 0, (int32_t)rill_ctx_processing_time(ctx));
}

Test(watermark, processing_time_is_the_harness_clock)
{
    rill_env *env = state_env(1);
    rill_stream *p =
        rill_process(rill_harness_input(env, "in"), "clock", emit_processing_time, NULL, NULL);
    rill_harness *h = hnew(env, p);
    push_kv(h, 0, 0, 0, 1);
    HOK(h, rill_harness_set_time(h, 1234));
    push_kv(h, 0, 0, 0, 2);
    EXPECT_OUT(h, NULL, W_REC(0, 0, 1), W_REC(0, 1234, 2));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(watermark, periodic_watermark_fires_downstream_timers)
{
    rill_env *env = state_env(1);
    wm_note w = {{0}, 0};
    rill_stream *a = rill_assign_timestamps(rill_harness_input(env, "in"), "ts", NULL, 10, NULL);
    rill_stream *p =
        rill_process(rill_key_by_bytes(a, 0, 4), "timers", reg_at_val, timer_emit_key, &w);
    rill_sink(p, "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 1, 150, 100); /* a timer at 150 */
    push_kv(h, 0, 2, 300, 200); /* a timer at 300 */
    HOK(h, rill_harness_set_time(h, 200));
    /* Watermark 200 - 10 - 1 = 189: the timer at 150 fires first. */
    EXPECT_OUT(h, "out", W_REC(1, 150, 150), W_WM(189));
    push_kv(h, 0, 3, 1000, 320); /* a timer at 1000 */
    HOK(h, rill_harness_set_time(h, 400));
    EXPECT_OUT(h, "out", W_REC(1, 150, 150), W_WM(189), W_REC(2, 300, 300), W_WM(309));
    cr_assert_eq(w.n, 2);
    cr_assert_eq(w.wm[0], 189);
    cr_assert_eq(w.wm[1], 309);
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- idleness ------------------------------------------------------------ */

/* Two harness inputs, each through an assigner with no out-of-orderness,
 * "ts_a" with an idle timeout of 1000 ms, into one sink "out". */
static rill_harness *idle_graph(rill_env *env)
{
    rill_stream *a = rill_assign_timestamps(rill_harness_input(env, "a"), "ts_a", NULL, 0, NULL);
    cr_assert_not_null(rill_stream_set_idle_timeout(a, 1000), "%s", rill_env_errmsg(env));
    rill_stream *b = rill_assign_timestamps(rill_harness_input(env, "b"), "ts_b", NULL, 0, NULL);
    rill_stream *both[2] = {a, b};
    rill_sink(rill_union(both, 2), "out", drop_sink, NULL);
    return hnew(env, NULL);
}

Test(idleness, idle_input_is_left_out_of_the_minimum)
{
    rill_env *env = state_env(1);
    rill_harness *h = idle_graph(env);
    push_kv(h, 0, 1, 1, 1000);
    push_kv(h, 1, 2, 2, 5000);
    HOK(h, rill_harness_set_time(h, 200));
    EXPECT_OUT(h, "out", W_REC(1, 1, 1000), W_REC(2, 2, 5000), W_WM(999));
    HOK(h, rill_harness_set_time(h, 400)); /* 400 ms without records: not idle yet */
    EXPECT_OUT(h, "out", W_REC(1, 1, 1000), W_REC(2, 2, 5000), W_WM(999));
    HOK(h, rill_harness_set_time(h, 3000));
    EXPECT_OUT(h, "out", W_REC(1, 1, 1000), W_REC(2, 2, 5000), W_WM(999), W_WM(4999));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(idleness, input_counts_again_once_it_emits)
{
    rill_env *env = state_env(1);
    rill_harness *h = idle_graph(env);
    push_kv(h, 0, 1, 1, 1000);
    push_kv(h, 1, 2, 2, 5000);
    HOK(h, rill_harness_set_time(h, 200));
    HOK(h, rill_harness_set_time(h, 3000));
    EXPECT_OUT(h, "out", W_REC(1, 1, 1000), W_REC(2, 2, 5000), W_WM(999), W_WM(4999));
    rill_harness_clear(h);
    /* a emits again: its watermark 5999 counts once it reached the output's. */
    push_kv(h, 0, 1, 3, 6000);
    HOK(h, rill_harness_set_time(h, 3200));
    EXPECT_OUT(h, "out", W_REC(1, 3, 6000));
    push_kv(h, 1, 2, 4, 9000);
    HOK(h, rill_harness_set_time(h, 3400));
    EXPECT_OUT(h, "out", W_REC(1, 3, 6000), W_REC(2, 4, 9000), W_WM(5999));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(idleness, assigner_goes_idle_again_after_it_emitted)
{
    rill_env *env = state_env(1);
    rill_harness *h = idle_graph(env);
    push_kv(h, 0, 1, 1, 1000);
    push_kv(h, 1, 2, 2, 5000);
    HOK(h, rill_harness_set_time(h, 200));
    HOK(h, rill_harness_set_time(h, 3000));
    push_kv(h, 0, 1, 3, 6000);
    HOK(h, rill_harness_set_time(h, 3200));
    push_kv(h, 1, 2, 4, 9000);
    HOK(h, rill_harness_set_time(h, 3400));
    EXPECT_OUT(h, "out", W_REC(1, 1, 1000), W_REC(2, 2, 5000), W_WM(999), W_WM(4999),
               W_REC(1, 3, 6000), W_REC(2, 4, 9000), W_WM(5999));
    /* No record from a for long again: b alone makes the watermark. */
    HOK(h, rill_harness_set_time(h, 10000));
    HOK(h, rill_harness_set_time(h, 20000));
    EXPECT_OUT(h, "out", W_REC(1, 1, 1000), W_REC(2, 2, 5000), W_WM(999), W_WM(4999),
               W_REC(1, 3, 6000), W_REC(2, 4, 9000), W_WM(5999), W_WM(8999));
    rill_harness_free(h);
    rill_env_free(env);
}

/* Two harness inputs "a" and "b" into one sink "out", with idle timeouts
 * of ta and tb ms (0: none). Watermarks are pushed. */
static rill_harness *two_inputs_graph(rill_env *env, int64_t ta, int64_t tb)
{
    rill_stream *both[2] = {rill_harness_input(env, "a"), rill_harness_input(env, "b")};
    for (int i = 0; i < 2; i++)
        if (i ? tb : ta)
            cr_assert_not_null(rill_stream_set_idle_timeout(both[i], i ? tb : ta), "%s",
                               rill_env_errmsg(env));
    rill_sink(rill_union(both, 2), "out", drop_sink, NULL);
    return hnew(env, NULL);
}

/* two_inputs_graph where only "a" has an idle timeout, of 1000 ms. */
static rill_harness *idle_inputs_graph(rill_env *env)
{
    return two_inputs_graph(env, 1000, 0);
}

/* Before an idle timeout case: what the inputs do; the operator with the
 * timeout last saw a record at processing time `since`. */
static void watermarks_a100_b500(rill_harness *h)
{
    HOK(h, rill_harness_watermark(h, 0, 100));
    HOK(h, rill_harness_watermark(h, 1, 500));
}

/* idle_inputs_graph after watermarks 100 on a and 500 on b, then a long
 * time: a is idle and the output's watermark is b's. */
static rill_harness *a_went_idle(rill_env *env)
{
    rill_harness *h = idle_inputs_graph(env);
    watermarks_a100_b500(h);
    HOK(h, rill_harness_set_time(h, 5000));
    EXPECT_OUT(h, "out", W_WM(100), W_WM(500));
    return h;
}

Test(idleness, idle_source_is_left_out_of_the_minimum)
{
    rill_env *env = state_env(1);
    rill_harness *h = idle_inputs_graph(env);
    HOK(h, rill_harness_watermark(h, 0, 100));
    HOK(h, rill_harness_watermark(h, 1, 500));
    EXPECT_OUT(h, "out", W_WM(100));
    HOK(h, rill_harness_set_time(h, 5000));
    EXPECT_OUT(h, "out", W_WM(100), W_WM(500));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(idleness, source_goes_idle_again_after_it_emitted)
{
    rill_env *env = state_env(1);
    rill_harness *h = a_went_idle(env);
    /* a emits: it counts again once its watermark reached the output's. */
    push_kv(h, 0, 1, 1, 700);
    HOK(h, rill_harness_watermark(h, 0, 800));
    HOK(h, rill_harness_watermark(h, 1, 2000));
    EXPECT_OUT(h, "out", W_WM(100), W_WM(500), W_REC(1, 1, 700), W_WM(800));
    /* Then nothing from a for long: b alone makes the watermark again. */
    HOK(h, rill_harness_set_time(h, 20000));
    HOK(h, rill_harness_set_time(h, 40000));
    EXPECT_OUT(h, "out", W_WM(100), W_WM(500), W_REC(1, 1, 700), W_WM(800), W_WM(2000));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(idleness, watermark_on_an_idle_input_does_not_make_it_active)
{
    rill_env *env = state_env(1);
    rill_harness *h = a_went_idle(env);
    /* a stays idle: its watermark does not hold b's back. */
    HOK(h, rill_harness_watermark(h, 0, 3000));
    HOK(h, rill_harness_watermark(h, 1, 4000));
    EXPECT_OUT(h, "out", W_WM(100), W_WM(500), W_WM(4000));
    /* Nor later, after more idle time. */
    HOK(h, rill_harness_set_time(h, 20000));
    HOK(h, rill_harness_watermark(h, 1, 6000));
    EXPECT_OUT(h, "out", W_WM(100), W_WM(500), W_WM(4000), W_WM(6000));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(idleness, watermark_of_an_idle_input_counts_once_a_record_made_it_active)
{
    rill_env *env = state_env(1);
    rill_harness *h = a_went_idle(env);
    HOK(h, rill_harness_watermark(h, 0, 7000)); /* kept while a is idle */
    HOK(h, rill_harness_watermark(h, 1, 4000));
    push_kv(h, 0, 1, 1, 7500); /* a is active again, at 7000 */
    HOK(h, rill_harness_watermark(h, 1, 9000));
    EXPECT_OUT(h, "out", W_WM(100), W_WM(500), W_WM(4000), W_REC(1, 1, 7500), W_WM(7000));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(idleness, all_inputs_idle_give_the_highest_watermark_first)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_inputs_graph(env, 1000, 2000);
    HOK(h, rill_harness_watermark(h, 0, 600));
    HOK(h, rill_harness_watermark(h, 1, 500));
    EXPECT_OUT(h, "out", W_WM(500));
    HOK(h, rill_harness_set_time(h, 1500)); /* a idle: b's 500 is the minimum */
    EXPECT_OUT(h, "out", W_WM(500));
    HOK(h, rill_harness_set_time(h, 2500)); /* b idle too: a's 600 is the highest */
    EXPECT_OUT(h, "out", W_WM(500), W_WM(600));
    rill_harness_free(h);
    rill_env_free(env);
}

static void records_a1000_b5000_at_200(rill_harness *h)
{
    push_kv(h, 0, 1, 1, 1000);
    push_kv(h, 1, 2, 2, 5000);
    HOK(h, rill_harness_set_time(h, 200)); /* the assigner's check sees the record */
}

Test(idleness, idle_only_after_more_than_the_timeout)
{
    static const struct {
        const char *name;
        rill_harness *(*graph)(rill_env *env);
        void (*before)(rill_harness *h);
        int64_t since;
        int64_t wm_when_idle; /* the other input's watermark */
    } cases[] = {
        {"source", idle_inputs_graph, watermarks_a100_b500, 0, 500},
        {"assigner", idle_graph, records_a1000_b5000_at_200, 200, 4999},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rill_env *env = state_env(1);
        rill_harness *h = cases[c].graph(env);
        cases[c].before(h);
        size_t n = rill_harness_count(h, "out");
        HOK(h, rill_harness_set_time(h, cases[c].since + 1000));
        cr_assert_eq(rill_harness_count(h, "out"), n,
                     "%s: idle after exactly its timeout (%zu items, expected %zu)",
                     cases[c].name, rill_harness_count(h, "out"), n);
        HOK(h, rill_harness_set_time(h, cases[c].since + 1001));
        cr_assert_eq(rill_harness_count(h, "out"), n + 1,
                     "%s: not idle 1 ms after its timeout (%zu items, expected %zu)",
                     cases[c].name, rill_harness_count(h, "out"), n + 1);
        rill_record r;
        cr_assert_eq(rill_harness_output(h, "out", n, &r), RILL_HARNESS_WATERMARK, "%s",
                     cases[c].name);
        cr_assert_eq(r.ts, cases[c].wm_when_idle, "%s: watermark %lld, expected %lld",
                     cases[c].name, (long long)r.ts, (long long)cases[c].wm_when_idle);
        rill_harness_free(h);
        rill_env_free(env);
    }
}

Test(idleness, huge_idle_timeout_in_a_job)
{
    rill_env *env = state_env(2);
    sum_total t;
    memset(&t, 0, sizeof t);
    rill_stream *g = rill_generator(env, "gen", 1000, gen_index, NULL);
    cr_assert_not_null(rill_stream_set_idle_timeout(g, INT64_MAX));
    rill_stream *a = rill_assign_timestamps(g, "ts", ts_of_index, 0, NULL);
    cr_assert_not_null(rill_stream_set_idle_timeout(a, INT64_MAX));
    rill_sink(a, "out", total_sink, &t);
    run_ok(env);
    cr_assert_eq(atomic_load(&t.count), 1000);
    cr_assert_eq(atomic_load(&t.sum), 499500);
    rill_env_free(env);
}

/* A source that is idle (RILL_SOURCE_IDLE) for its first 50 ms of
 * processing time, then emits one record and ends in the same call. */
typedef struct late_source {
    int64_t start;
    int ended;
    atomic_int calls_after_end;
} late_source;

static int idle_then_last_record(rill_ctx *ctx, void *ud)
{
    late_source *l = ud;
    if (l->ended) {
        atomic_fetch_add(&l->calls_after_end, 1);
        return RILL_SOURCE_END;
    }
    int64_t now = rill_ctx_processing_time(ctx);
    if (l->start == 0)
        l->start = now;
    if (now < l->start + 50)
        return RILL_SOURCE_IDLE;
    uint64_t v = 7;
    int rc = rill_emit(ctx, &v, sizeof v);
    l->ended = 1;
    return rc ? rc : RILL_SOURCE_END;
}

Test(idleness, source_that_was_idle_is_not_called_after_it_ended)
{
    /* Only processing time passing is needed (the source is idle for its
     * first 50 ms, longer than its 10 ms idle timeout); nothing about
     * durations is asserted. A harness cannot run a source's callback. */
    rill_env *env = state_env(1);
    late_source *l = calloc(1, sizeof *l);
    cr_assert_not_null(l);
    sum_total t;
    memset(&t, 0, sizeof t);
    rill_stream *s = rill_source(env, "late", idle_then_last_record, l);
    cr_assert_not_null(rill_stream_set_idle_timeout(s, 10));
    rill_sink(rill_stream_disable_chaining(s), "out", total_sink, &t);
    run_ok(env);
    cr_assert_eq(atomic_load(&t.count), 1);
    cr_assert_eq(atomic_load(&t.sum), 7);
    cr_assert_eq(atomic_load(&l->calls_after_end), 0,
                 "the source was called %d times after it returned RILL_SOURCE_END",
                 atomic_load(&l->calls_after_end));
    free(l);
    rill_env_free(env);
}

/* ---- end of input ------------------------------------------------------- */

Test(end_of_input, harness_end_sends_the_final_watermark_to_the_sink)
{
    rill_env *env = state_env(1);
    rill_sink(rill_harness_input(env, "in"), "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 1, 1, 5);
    HOK(h, rill_harness_end(h));
    EXPECT_OUT(h, "out", W_REC(1, 1, 5), W_WM(RILL_TS_MAX));
    rill_harness_free(h);
    rill_env_free(env);
}

/* What the timers of a job saw. */
typedef struct fired {
    atomic_int n;
    atomic_int wm_not_max;   /* on_timer with a watermark other than RILL_TS_MAX */
    atomic_int wm_not_ts;    /* on_timer with a watermark other than the timer's time */
    atomic_int bad;
} fired;

/* Registers an event-time timer at the record's timestamp + 5. */
static int reg_ts_plus_5(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return rill_timer_register(ctx, RILL_EVENT_TIME, rill_ctx_timestamp(ctx) + 5);
}

/* Emits {key, ts - 1005} (the record index of reg_ts_plus_5's records). */
static int timer_at_end(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    fired *f = ud;
    atomic_fetch_add(&f->n, 1);
    if (rill_ctx_watermark(ctx) != RILL_TS_MAX)
        atomic_fetch_add(&f->wm_not_max, 1);
    if (domain != RILL_EVENT_TIME || rill_ctx_timestamp(ctx) != ts)
        atomic_fetch_add(&f->bad, 1);
    const void *key;
    size_t klen;
    if (rill_ctx_key(ctx, &key, &klen) != RILL_OK || klen != 4)
        return -1;
    int32_t k;
    memcpy(&k, key, 4);
    return emit_kv(ctx, k, (int32_t)(ts - 1005));
}

Test(end_of_input, event_timers_all_fire_at_the_end_of_a_job)
{
    enum { N = 200 };
    rill_record recs[N];
    kv vals[N];
    for (int i = 0; i < N; i++) {
        vals[i] = (kv){i % 10, i};
        recs[i] = (rill_record){&vals[i], sizeof vals[i], 1000 + i};
    }
    rill_env *env = state_env(2);
    fired f;
    memset(&f, 0, sizeof f);
    gotlist g;
    gl_init(&g);
    rill_stream *s = rill_from_records(env, "recs", recs, N);
    rill_stream *p =
        rill_process(rill_key_by_bytes(s, 0, 4), "timers", reg_ts_plus_5, timer_at_end, &f);
    rill_sink(p, "out", gl_sink, &g);
    run_ok(env);
    cr_assert_eq(atomic_load(&f.n), N);
    cr_assert_eq(atomic_load(&f.wm_not_max), 0, "timers fired before the final watermark");
    cr_assert_eq(atomic_load(&f.bad), 0);
    cr_assert_eq(g.bad, 0);
    cr_assert_eq(g.n, (size_t)N);
    int seen[N] = {0};
    int64_t last_ts[2] = {RILL_TS_MIN, RILL_TS_MIN};
    for (size_t i = 0; i < g.n; i++) {
        got x = g.v[i];
        cr_assert(x.val >= 0 && x.val < N, "val %d", x.val);
        cr_assert_eq(x.key, x.val % 10);
        cr_assert_eq(x.ts, 1005 + x.val, "record ts %lld for timer of record %d",
                     (long long)x.ts, x.val);
        cr_assert(x.sub == 0 || x.sub == 1);
        /* One subtask fires its timers in time order. */
        cr_assert_gt(x.ts, last_ts[x.sub]);
        last_ts[x.sub] = x.ts;
        seen[x.val]++;
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1, "timer of record %d fired %d times", i, seen[i]);
    gl_free(&g);
    rill_env_free(env);
}

/* Registers an event-time timer at the record's timestamp. */
static int reg_at_ts(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return rill_timer_register(ctx, RILL_EVENT_TIME, rill_ctx_timestamp(ctx));
}

/* Emits {key, val = ts}; counts a watermark other than ts. */
static int timer_at_its_watermark(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    fired *f = ud;
    (void)domain;
    atomic_fetch_add(&f->n, 1);
    if (rill_ctx_watermark(ctx) != ts)
        atomic_fetch_add(&f->wm_not_ts, 1);
    const void *key;
    size_t klen;
    if (rill_ctx_key(ctx, &key, &klen) != RILL_OK || klen != 4)
        return -1;
    int32_t k;
    memcpy(&k, key, 4);
    return emit_kv(ctx, k, (int32_t)ts);
}

Test(punctuated, job_timers_fire_at_the_punctuation_after_their_record)
{
    enum { N = 300 };
    rill_record recs[N];
    kv vals[N];
    for (int i = 0; i < N; i++) {
        vals[i] = (kv){i % 7, i};
        recs[i] = (rill_record){&vals[i], sizeof vals[i], 10 * (i + 1)};
    }
    rill_env *env = state_env(2);
    fired f;
    memset(&f, 0, sizeof f);
    gotlist g;
    gl_init(&g);
    rill_stream *s = rill_from_records(env, "recs", recs, N);
    s = rill_stream_set_parallelism(rill_assign_punctuated(s, "punct", NULL, punct_ts, NULL), 1);
    rill_stream *p = rill_process(rill_key_by_bytes(s, 0, 4), "timers", reg_at_ts,
                                  timer_at_its_watermark, &f);
    rill_sink(p, "out", gl_sink, &g);
    run_ok(env);
    cr_assert_eq(atomic_load(&f.n), N);
    cr_assert_eq(atomic_load(&f.wm_not_ts), 0,
                 "%d timers fired at a watermark other than their time",
                 atomic_load(&f.wm_not_ts));
    cr_assert_eq(g.n, (size_t)N);
    int seen[N] = {0};
    for (size_t i = 0; i < g.n; i++) {
        int idx = g.v[i].val / 10 - 1;
        cr_assert(idx >= 0 && idx < N && g.v[i].val == 10 * (idx + 1));
        cr_assert_eq(g.v[i].key, idx % 7);
        cr_assert_eq(g.v[i].ts, g.v[i].val);
        seen[idx]++;
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(seen[i], 1);
    gl_free(&g);
    rill_env_free(env);
}

/* A source emitting 50 records with timestamps 10, 20, ... each followed
 * by a watermark at its timestamp. */
static int source_with_watermarks(rill_ctx *ctx, void *ud)
{
    int *i = rill_ctx_local(ctx);
    (void)ud;
    if (!i) {
        i = calloc(1, sizeof *i);
        if (!i)
            return -1;
        rill_ctx_set_local(ctx, i);
    }
    if (*i == 50) {
        free(i);
        rill_ctx_set_local(ctx, NULL);
        return RILL_SOURCE_END;
    }
    kv r = {*i % 3, *i};
    int64_t ts = 10 * (int64_t)(*i + 1);
    int rc = rill_emit_ts(ctx, &r, sizeof r, ts);
    if (!rc)
        rc = rill_emit_watermark(ctx, ts);
    (*i)++;
    return rc ? rc : RILL_SOURCE_MORE;
}

Test(watermark, source_watermarks_fire_timers_in_a_job)
{
    rill_env *env = state_env(2);
    fired f;
    memset(&f, 0, sizeof f);
    gotlist g;
    gl_init(&g);
    rill_stream *s = rill_source(env, "src", source_with_watermarks, NULL);
    rill_stream_set_parallelism(s, 1);
    rill_stream *p = rill_process(rill_key_by_bytes(s, 0, 4), "timers", reg_at_ts,
                                  timer_at_its_watermark, &f);
    rill_sink(p, "out", gl_sink, &g);
    run_ok(env);
    cr_assert_eq(atomic_load(&f.n), 50);
    cr_assert_eq(atomic_load(&f.wm_not_ts), 0);
    cr_assert_eq(g.n, 50);
    gl_free(&g);
    rill_env_free(env);
}

/* rill_emit_watermark from a process function: the rc as the record. */
static int emit_watermark_rc(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return emit_kv(ctx, 0, rill_emit_watermark(ctx, 100));
}

Test(watermark, emit_watermark_outside_a_source_is_einval)
{
    rill_env *env = state_env(1);
    rill_stream *p =
        rill_process(rill_harness_input(env, "in"), "p", emit_watermark_rc, NULL, NULL);
    rill_harness *h = hnew(env, p);
    push_kv(h, 0, 0, 0, 1);
    EXPECT_OUT(h, NULL, W_REC(0, RILL_EINVAL, 1));
    rill_harness_free(h);
    rill_env_free(env);
}

/* Per subtask: the last watermark seen by the process function, and
 * violations of "watermark below the record's timestamp, never back". */
typedef struct wm_check {
    int64_t last[MAXSUB];
    int64_t at_close[MAXSUB];
    atomic_int below_fail, back_fail, records;
} wm_check;

static int index_key(const void *rec, size_t len, void *key, size_t *key_len, void *ud)
{
    (void)ud;
    uint64_t v = 0;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    uint32_t k = (uint32_t)(v % 16);
    if (*key_len >= sizeof k)
        memcpy(key, &k, sizeof k);
    *key_len = sizeof k;
    return 0;
}

static int check_wm(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    wm_check *c = ud;
    int s = rill_ctx_subtask(ctx);
    int64_t wm = rill_ctx_watermark(ctx);
    if (wm >= rill_ctx_timestamp(ctx))
        atomic_fetch_add(&c->below_fail, 1);
    if (wm < c->last[s])
        atomic_fetch_add(&c->back_fail, 1);
    c->last[s] = wm;
    atomic_fetch_add(&c->records, 1);
    return 0;
}

static int note_close_wm(rill_ctx *ctx, void *ud)
{
    wm_check *c = ud;
    c->at_close[rill_ctx_subtask(ctx)] = rill_ctx_watermark(ctx);
    return 0;
}

Test(watermark, job_watermarks_stay_below_later_records_and_end_at_max)
{
    rill_env *env = state_env(2);
    cr_assert_eq(rill_env_set_watermark_interval(env, 1), RILL_OK);
    wm_check c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < MAXSUB; i++)
        c.last[i] = c.at_close[i] = RILL_TS_MIN;
    rill_stream *g = rill_generator(env, "gen", 50000, gen_index, NULL);
    rill_stream_set_parallelism(g, 1);
    rill_stream *a =
        rill_stream_set_parallelism(rill_assign_timestamps(g, "ts", ts_of_index, 0, NULL), 1);
    rill_stream *p = rill_process(rill_key_by(a, index_key, NULL), "check", check_wm, NULL, &c);
    rill_stream_set_lifecycle(p, NULL, note_close_wm);
    rill_sink(p, "out", drop_sink, NULL);
    run_ok(env);
    cr_assert_eq(atomic_load(&c.records), 50000);
    cr_assert_eq(atomic_load(&c.below_fail), 0, "a record came after a watermark >= its ts");
    cr_assert_eq(atomic_load(&c.back_fail), 0, "a watermark went backwards");
    cr_assert_eq(c.at_close[0], RILL_TS_MAX);
    cr_assert_eq(c.at_close[1], RILL_TS_MAX);
    rill_env_free(env);
}

/* ---- building mistakes --------------------------------------------------- */

static int pass_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return rill_emit(ctx, rec, len);
}

static void expect_kept(rill_env *env, const char *needle)
{
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), needle);
}

Test(eventtime_building, negative_out_of_orderness)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcd", 1, 4);
    cr_assert_null(rill_assign_timestamps(s, "late", NULL, -1, NULL));
    expect_kept(env, "late");
    rill_env_free(env);
}

Test(eventtime_building, default_assigner_name_in_the_message)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcd", 1, 4);
    cr_assert_null(rill_assign_timestamps(s, NULL, NULL, -5, NULL));
    expect_kept(env, "timestamps");
    rill_env_free(env);
}

Test(eventtime_building, zero_out_of_orderness_is_valid)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcd", 1, 4);
    s = rill_assign_timestamps(s, "ts", NULL, 0, NULL);
    cr_assert_not_null(s);
    rill_sink(s, "out", drop_sink, NULL);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(eventtime_building, idle_timeout_on_a_map)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcd", 1, 4);
    rill_stream *m = rill_map(s, "doubler", pass_map, NULL);
    cr_assert_null(rill_stream_set_idle_timeout(m, 100));
    expect_kept(env, "doubler");
    rill_env_free(env);
}

Test(eventtime_building, idle_timeout_zero)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "numbers", "abcd", 1, 4);
    cr_assert_null(rill_stream_set_idle_timeout(s, 0));
    expect_kept(env, "numbers");
    rill_env_free(env);
}

Test(eventtime_building, idle_timeout_negative)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "numbers", "abcd", 1, 4);
    s = rill_assign_timestamps(s, "ts", NULL, 0, NULL);
    cr_assert_null(rill_stream_set_idle_timeout(s, -5));
    expect_kept(env, "ts");
    rill_env_free(env);
}

Test(eventtime_building, idle_timeout_on_a_source_and_an_assigner)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcd", 1, 4);
    cr_assert_eq(rill_stream_set_idle_timeout(s, 1), s);
    rill_stream *a = rill_assign_timestamps(s, "ts", NULL, 0, NULL);
    cr_assert_eq(rill_stream_set_idle_timeout(a, 5000), a);
    rill_sink(a, "out", drop_sink, NULL);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(eventtime_building, watermark_interval_range)
{
    rill_env *env = state_env(1);
    cr_assert_eq(rill_env_set_watermark_interval(env, 0), RILL_EINVAL);
    cr_assert_eq(rill_env_set_watermark_interval(env, -1), RILL_EINVAL);
    cr_assert_eq(rill_env_set_watermark_interval(env, 3600001), RILL_EINVAL);
    cr_assert_eq(rill_env_set_watermark_interval(env, 1), RILL_OK);
    cr_assert_eq(rill_env_set_watermark_interval(env, 3600000), RILL_OK);
    rill_env_free(env);
}

Test(eventtime_building, punctuated_without_watermark_function)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcd", 1, 4);
    cr_assert_null(rill_assign_punctuated(s, "marks", NULL, NULL, NULL));
    expect_kept(env, "marks");
    rill_env_free(env);
}

/* An assigner takes its input's parallelism, so a parallelism-1 source
 * feeds it forward, in order; the forward edge below validates only then. */
Test(eventtime_building, assigner_keeps_its_inputs_parallelism)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_set_parallelism(env, 2), RILL_OK);
    uint64_t recs[3] = {1, 2, 3};
    rill_stream *s = rill_from_array(env, "src", recs, sizeof recs[0], 3);
    s = rill_assign_timestamps(s, "ts", ts_of_index, 0, NULL);
    rill_stream_set_parallelism(rill_sink(rill_forward(s), "out", drop_sink, NULL), 1);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}
