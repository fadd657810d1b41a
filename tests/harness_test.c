/* harness_test.c - the test harness itself: one operator or a whole graph,
 * outputs with records and watermarks, clearing, failures and the error
 * kept afterwards, argument and state errors, timers counts, state reading,
 * lifecycle hooks, and what a harness input does outside a harness.
 *
 * Everything runs on the test's thread, so callbacks write plain variables.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rill.h"

#define TEST_NAME "harness"
#include "harness_common.h"

TestSuite(whole_graph, .fini = rm_tmp);
TestSuite(single_operator, .fini = rm_tmp);
TestSuite(harness_errors, .fini = rm_tmp);
TestSuite(harness_timers, .fini = rm_tmp);
TestSuite(harness_state, .fini = rm_tmp);

/* ---- callbacks ------------------------------------------------------------ */

static int drop_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return 0;
}

/* {k, v} -> {k, 2v}; fails (returns 13) for v == 13. */
static int double_val(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
    if (r.val == 13) {
        rill_ctx_set_error(ctx, "unlucky value %d", r.val);
        return 13;
    }
    return emit_kv(ctx, r.key, 2 * r.val);
}

/* Counts per key in "count", emits {key, count}. */
static int count_key(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
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
    return emit_kv(ctx, r.key, n);
}

/* {key, val}: val > 0 registers an event-time timer at val, val < 0 a
 * processing-time timer at -val. */
static int reg_both(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (len != sizeof(kv))
        return -1;
    kv r = kv_read(rec);
    return r.val > 0 ? rill_timer_register(ctx, RILL_EVENT_TIME, r.val)
                     : rill_timer_register(ctx, RILL_PROCESSING_TIME, -(int64_t)r.val);
}

static int timer_emit(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)ud;
    return emit_kv(ctx, domain, (int32_t)ts);
}

/* ---- whole graph ---------------------------------------------------------- */

/* a -> map "double" -+
 *                    +-> union -> sink "out"
 * b ----------------+                                                    */
static rill_harness *two_input_graph(rill_env *env)
{
    rill_stream *a = rill_harness_input(env, "a");
    rill_stream *b = rill_harness_input(env, "b");
    rill_stream *m = rill_map(a, "double", double_val, NULL);
    rill_stream *both[2] = {m, b};
    cr_assert_not_null(rill_sink(rill_union(both, 2), "out", drop_sink, NULL));
    return hnew(env, NULL);
}

Test(whole_graph, two_inputs_reach_the_sink_read_by_name)
{
    rill_env *env = state_env(2);
    rill_harness *h = two_input_graph(env);
    push_kv(h, 0, 1, 1, 10);
    push_kv(h, 1, 2, 5, 20);
    push_kv(h, 0, 3, 2, 30);
    EXPECT_OUT(h, "out", W_REC(1, 2, 10), W_REC(2, 5, 20), W_REC(3, 4, 30));
    EXPECT_EMPTY(h, NULL);
    EXPECT_EMPTY(h, "double");
    rill_harness_free(h);
    rill_env_free(env);
}

Test(whole_graph, outputs_include_watermarks)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    push_kv(h, 0, 1, 1, 10);
    HOK(h, rill_harness_watermark(h, 0, 15));
    HOK(h, rill_harness_watermark(h, 1, 12));
    push_kv(h, 1, 2, 2, 11);
    rill_record r;
    cr_assert_eq(rill_harness_output(h, "out", 1, &r), RILL_HARNESS_WATERMARK);
    cr_assert_eq(r.ts, 12);
    cr_assert_null(r.data);
    EXPECT_OUT(h, "out", W_REC(1, 2, 10), W_WM(12), W_REC(2, 2, 11));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(whole_graph, records_pass_through_key_by_and_keyed_state)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_harness_input(env, "in");
    rill_stream *p = rill_process(rill_key_by_bytes(in, 0, 4), "counter", count_key, NULL, NULL);
    rill_stream_add_state(p, "count", RILL_STATE_VALUE);
    rill_sink(p, "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 1, 0, 1);
    push_kv(h, 0, 2, 0, 2);
    push_kv(h, 0, 1, 0, 3);
    EXPECT_OUT(h, "out", W_REC(1, 1, 1), W_REC(2, 1, 2), W_REC(1, 2, 3));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(whole_graph, each_sink_has_its_output)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_harness_input(env, "in");
    rill_sink(in, "raw", drop_sink, NULL);
    rill_sink(rill_map(in, "double", double_val, NULL), "doubled", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 1, 4, 7);
    EXPECT_OUT(h, "raw", W_REC(1, 4, 7));
    EXPECT_OUT(h, "doubled", W_REC(1, 8, 7));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(whole_graph, end_sends_the_final_watermark)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    push_kv(h, 1, 1, 1, 5);
    HOK(h, rill_harness_end(h));
    EXPECT_OUT(h, "out", W_REC(1, 1, 5), W_WM(RILL_TS_MAX));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(whole_graph, clear_drops_what_was_read)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    push_kv(h, 0, 1, 1, 10);
    push_kv(h, 1, 1, 1, 11);
    cr_assert_eq(rill_harness_count(h, "out"), 2);
    rill_harness_clear(h);
    cr_assert_eq(rill_harness_count(h, "out"), 0);
    rill_record r;
    cr_assert_eq(rill_harness_output(h, "out", 0, &r), RILL_ENOTFOUND);
    push_kv(h, 1, 9, 9, 12);
    EXPECT_OUT(h, "out", W_REC(9, 9, 12));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(whole_graph, state_of_an_operator_by_uid)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_harness_input(env, "in");
    rill_stream *p = rill_process(rill_key_by_bytes(in, 0, 4), "counter", count_key, NULL, NULL);
    rill_stream_add_state(p, "count", RILL_STATE_VALUE);
    rill_stream_set_uid(p, "counter-v1");
    rill_sink(p, "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 5, 0, 1);
    push_kv(h, 0, 5, 0, 2);
    push_kv(h, 0, 5, 0, 3);
    int32_t k = 5;
    rill_state *st = rill_harness_state(h, "counter-v1/count", &k, sizeof k);
    cr_assert_not_null(st);
    const void *v;
    size_t vl;
    cr_assert_eq(rill_state_get(st, &v, &vl), RILL_OK);
    cr_assert_eq(vl, 4);
    int32_t n;
    memcpy(&n, v, 4);
    cr_assert_eq(n, 3);
    cr_assert_null(rill_harness_state(h, "count", &k, sizeof k));
    cr_assert_null(rill_harness_state(h, "nobody/count", &k, sizeof k));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(whole_graph, state_of_an_operator_by_default_uid)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_harness_input(env, "in");
    rill_stream *k = rill_key_by_bytes(in, 0, 4);
    rill_stream *p1 = rill_process(k, "counter", count_key, NULL, NULL);
    rill_stream_add_state(p1, "count", RILL_STATE_VALUE);
    rill_stream *p2 = rill_process(rill_key_by_bytes(p1, 0, 4), "counter", count_key, NULL, NULL);
    rill_stream_add_state(p2, "count", RILL_STATE_VALUE);
    rill_sink(p2, "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 5, 0, 1);
    push_kv(h, 0, 5, 0, 2);
    push_kv(h, 0, 6, 0, 3);
    /* The second counter sees {5,1}, {5,2}, {6,1}: keys 5 and 6 once each. */
    int32_t k5 = 5;
    const void *v;
    size_t vl;
    int32_t n;
    rill_state *st = rill_harness_state(h, "counter/count", &k5, sizeof k5);
    cr_assert_not_null(st);
    cr_assert_eq(rill_state_get(st, &v, &vl), RILL_OK);
    memcpy(&n, v, 4);
    cr_assert_eq(n, 2);
    st = rill_harness_state(h, "counter#2/count", &k5, sizeof k5);
    cr_assert_not_null(st);
    cr_assert_eq(rill_state_get(st, &v, &vl), RILL_OK);
    memcpy(&n, v, 4);
    cr_assert_eq(n, 2);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(whole_graph, other_sources_are_refused)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "numbers", "abcdefgh", 8, 1);
    rill_sink(s, "out", drop_sink, NULL);
    rill_harness *h = (rill_harness *)1;
    cr_assert_eq(rill_harness_new(&h, env, NULL), RILL_EINVAL);
    cr_assert_null(h);
    assert_has(rill_env_errmsg(env), "numbers");
    rill_env_free(env);
}

Test(whole_graph, other_sources_are_refused_next_to_harness_inputs)
{
    rill_env *env = state_env(1);
    rill_stream *both[2] = {rill_harness_input(env, "in"),
                            rill_from_array(env, "numbers", "abcdefgh", 8, 1)};
    rill_sink(rill_union(both, 2), "out", drop_sink, NULL);
    rill_harness *h = NULL;
    cr_assert_eq(rill_harness_new(&h, env, NULL), RILL_EINVAL);
    cr_assert_null(h);
    assert_has(rill_env_errmsg(env), "numbers");
    rill_env_free(env);
}

Test(whole_graph, graph_without_sink_is_refused)
{
    rill_env *env = state_env(1);
    rill_map(rill_harness_input(env, "in"), "double", double_val, NULL);
    rill_harness *h = NULL;
    cr_assert_eq(rill_harness_new(&h, env, NULL), RILL_EINVAL);
    cr_assert_null(h);
    assert_has(rill_env_errmsg(env), "no sink");
    rill_env_free(env);
}

Test(whole_graph, harness_input_fails_execute)
{
    rill_env *env = state_env(1);
    rill_sink(rill_harness_input(env, "pushed"), "out", drop_sink, NULL);
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "pushed");
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "pushed");
    rill_job *job = (rill_job *)1;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_EINVAL);
    cr_assert_null(job);
    rill_env_free(env);
}

Test(whole_graph, harness_inputs_are_numbered_in_creation_order)
{
    rill_env *env = state_env(1);
    rill_stream *x = rill_harness_input(env, "x");
    rill_stream *y = rill_harness_input(env, "y");
    rill_sink(y, "from_y", drop_sink, NULL);
    rill_sink(x, "from_x", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 0, 100, 1);
    push_kv(h, 1, 1, 200, 2);
    EXPECT_OUT(h, "from_x", W_REC(0, 100, 1));
    EXPECT_OUT(h, "from_y", W_REC(1, 200, 2));
    rill_harness_free(h);
    rill_env_free(env);
}

/* Emits {subtask, parallelism}. */
static int emit_parallelism(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return emit_kv(ctx, rill_ctx_subtask(ctx), rill_ctx_parallelism(ctx));
}

Test(whole_graph, operators_run_at_parallelism_one)
{
    rill_env *env = state_env(2);
    rill_stream *m = rill_map(rill_harness_input(env, "in"), "m", emit_parallelism, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(m, 4));
    rill_sink(rill_rebalance(m), "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 9, 9, 1);
    push_kv(h, 0, 9, 9, 2);
    EXPECT_OUT(h, "out", W_REC(0, 1, 1), W_REC(0, 1, 2));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(whole_graph, a_second_harness_starts_afresh)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_harness_input(env, "in");
    rill_stream *p = rill_process(rill_key_by_bytes(in, 0, 4), "counter", count_key, NULL, NULL);
    rill_stream_add_state(p, "count", RILL_STATE_VALUE);
    rill_sink(p, "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 1, 0, 1);
    push_kv(h, 0, 1, 0, 2);
    EXPECT_OUT(h, "out", W_REC(1, 1, 1), W_REC(1, 2, 2));
    HOK(h, rill_harness_end(h));
    rill_harness_free(h);
    h = hnew(env, NULL);
    EXPECT_EMPTY(h, "out");
    push_kv(h, 0, 1, 0, 3);
    EXPECT_OUT(h, "out", W_REC(1, 1, 3));
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- one operator ----------------------------------------------------------- */

Test(single_operator, main_output_is_null_and_has_watermarks)
{
    rill_env *env = state_env(1);
    rill_stream *m = rill_map(rill_harness_input(env, "in"), "double", double_val, NULL);
    rill_harness *h = hnew(env, m);
    push_kv(h, 0, 1, 3, 100);
    HOK(h, rill_harness_watermark(h, 0, 100));
    push_kv(h, 0, 1, 4, 50);
    EXPECT_OUT(h, NULL, W_REC(1, 6, 100), W_WM(100), W_REC(1, 8, 50));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(single_operator, sources_and_unions_are_refused)
{
    rill_env *env = state_env(1);
    rill_stream *a = rill_harness_input(env, "a");
    rill_stream *b = rill_harness_input(env, "b");
    rill_harness *h = NULL;
    cr_assert_eq(rill_harness_new(&h, env, a), RILL_EINVAL);
    cr_assert_null(h);
    rill_stream *both[2] = {a, b};
    cr_assert_eq(rill_harness_new(&h, env, rill_union(both, 2)), RILL_EINVAL);
    cr_assert_null(h);
    rill_env_free(env);
}

Test(single_operator, stream_of_another_environment_is_refused)
{
    rill_env *env = state_env(1);
    rill_env *other = state_env(1);
    rill_stream *m = rill_map(rill_harness_input(other, "in"), "double", double_val, NULL);
    rill_harness *h = NULL;
    cr_assert_eq(rill_harness_new(&h, env, m), RILL_EINVAL);
    cr_assert_null(h);
    rill_env_free(other);
    rill_env_free(env);
}

Test(single_operator, building_mistake_is_reported)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_harness_input(env, "in");
    rill_stream *m = rill_map(in, "double", double_val, NULL);
    cr_assert_null(rill_map(in, "broken", NULL, NULL));
    rill_harness *h = NULL;
    cr_assert_eq(rill_harness_new(&h, env, m), RILL_EINVAL);
    cr_assert_null(h);
    assert_has(rill_env_errmsg(env), "broken");
    rill_env_free(env);
}

typedef struct hooks {
    int opened, closed, records_at_close;
    int records;
} hooks;

static int hook_open(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    ((hooks *)ud)->opened++;
    return 0;
}

static int hook_close(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    hooks *k = ud;
    k->closed++;
    k->records_at_close = k->records;
    return 0;
}

static int hook_count(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    ((hooks *)ud)->records++;
    return rill_emit(ctx, rec, len);
}

Test(single_operator, operators_open_at_new_and_close_at_end)
{
    rill_env *env = state_env(1);
    hooks k = {0, 0, 0, 0};
    rill_stream *m = rill_map(rill_harness_input(env, "in"), "m", hook_count, &k);
    rill_stream_set_lifecycle(m, hook_open, hook_close);
    rill_harness *h = hnew(env, m);
    cr_assert_eq(k.opened, 1);
    cr_assert_eq(k.closed, 0);
    push_kv(h, 0, 1, 1, 1);
    push_kv(h, 0, 1, 2, 2);
    HOK(h, rill_harness_end(h));
    cr_assert_eq(k.closed, 1);
    cr_assert_eq(k.records_at_close, 2);
    rill_harness_free(h);
    cr_assert_eq(k.opened, 1);
    cr_assert_eq(k.closed, 1);
    rill_env_free(env);
}

Test(single_operator, free_without_end_closes)
{
    rill_env *env = state_env(1);
    hooks k = {0, 0, 0, 0};
    rill_stream *m = rill_map(rill_harness_input(env, "in"), "m", hook_count, &k);
    rill_stream_set_lifecycle(m, hook_open, hook_close);
    rill_harness *h = hnew(env, m);
    push_kv(h, 0, 1, 1, 1);
    rill_harness_free(h);
    cr_assert_eq(k.opened, 1);
    cr_assert_eq(k.closed, 1);
    rill_env_free(env);
}

Test(whole_graph, operators_open_at_new_and_close_at_end)
{
    rill_env *env = state_env(1);
    hooks k = {0, 0, 0, 0};
    rill_stream *m = rill_map(rill_harness_input(env, "in"), "m", hook_count, &k);
    rill_stream_set_lifecycle(m, hook_open, hook_close);
    rill_sink(m, "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    cr_assert_eq(k.opened, 1);
    push_kv(h, 0, 1, 1, 1);
    cr_assert_eq(k.closed, 0);
    HOK(h, rill_harness_end(h));
    cr_assert_eq(k.closed, 1);
    cr_assert_eq(k.records_at_close, 1);
    rill_harness_free(h);
    cr_assert_eq(k.closed, 1);
    rill_env_free(env);
}

/* ---- errors ----------------------------------------------------------------- */

Test(harness_errors, failing_callback_gives_euser_naming_the_operator)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    push_kv(h, 0, 1, 1, 1);
    kv bad = {1, 13};
    cr_assert_eq(rill_harness_push(h, 0, &bad, sizeof bad, 2), RILL_EUSER);
    assert_has(rill_harness_errmsg(h), "double");
    assert_has(rill_harness_errmsg(h), "unlucky value 13");
    assert_has(rill_harness_errmsg(h), "13");
    /* What came out before the failure stays readable. */
    EXPECT_OUT(h, "out", W_REC(1, 2, 1));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, failing_callback_of_one_operator)
{
    rill_env *env = state_env(1);
    rill_stream *m = rill_map(rill_harness_input(env, "in"), "double", double_val, NULL);
    rill_harness *h = hnew(env, m);
    kv bad = {1, 13};
    cr_assert_eq(rill_harness_push(h, 0, &bad, sizeof bad, 2), RILL_EUSER);
    assert_has(rill_harness_errmsg(h), "double");
    rill_harness_free(h);
    rill_env_free(env);
}

/* A key function that gives the length *ud, whatever the capacity. */
static int key_of_length(const void *rec, size_t len, void *key, size_t *key_len, void *ud)
{
    (void)rec;
    (void)len;
    (void)key;
    *key_len = *(const size_t *)ud;
    return 0;
}

static int forward_rec(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return rill_emit(ctx, rec, len);
}

Test(harness_errors, key_longer_than_key_max_names_the_length)
{
    static const struct {
        int graph; /* the key_by's partitioning, or the keyed operator alone */
        size_t len;
        const char *message;
    } cases[] = {
        {1, SIZE_MAX,
         "key_by after 'in': key function returned length 18446744073709551615, above "
         "RILL_KEY_MAX (65535)"},
        {1, RILL_KEY_MAX + 1,
         "key_by after 'in': key function returned length 65536, above RILL_KEY_MAX (65535)"},
        {0, SIZE_MAX,
         "operator 'p': key function returned length 18446744073709551615, above "
         "RILL_KEY_MAX (65535)"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rill_env *env = state_env(1);
        rill_stream *k = rill_key_by(rill_harness_input(env, "in"), key_of_length,
                                     (void *)&cases[c].len);
        rill_stream *p = rill_process(k, "p", forward_rec, NULL, NULL);
        rill_sink(p, "out", drop_sink, NULL);
        rill_harness *h = hnew(env, cases[c].graph ? NULL : p);
        kv r = {1, 1};
        cr_assert_eq(rill_harness_push(h, 0, &r, sizeof r, 1), RILL_EINVAL, "case %zu", c);
        cr_assert_str_eq(rill_harness_errmsg(h), cases[c].message, "case %zu", c);
        rill_harness_free(h);
        rill_env_free(env);
    }
}

/* A harness closes or writes no descriptor it does not own: standard input
 * is still there and untouched after a failure and the free. */
Test(harness_errors, failure_and_free_leave_standard_input_alone)
{
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_neq(dup2(p[0], 0), -1);
    close(p[0]);
    rill_env *env = state_env(1);
    rill_stream *m = rill_map(rill_harness_input(env, "in"), "double", double_val, NULL);
    rill_harness *h = hnew(env, m);
    kv bad = {1, 13};
    cr_assert_eq(rill_harness_push(h, 0, &bad, sizeof bad, 2), RILL_EUSER);
    rill_harness_free(h);
    rill_env_free(env);
    char c = 0;
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(write(p[1], "x", 1), 1, "standard input was closed");
    cr_assert_eq(read(0, &c, 1), 1, "standard input was closed");
    cr_assert_eq(c, 'x');
    close(p[1]);
}

Test(harness_errors, later_calls_keep_returning_the_failure)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    kv bad = {1, 13}, good = {1, 1};
    cr_assert_eq(rill_harness_push(h, 0, &bad, sizeof bad, 2), RILL_EUSER);
    cr_assert_eq(rill_harness_push(h, 1, &good, sizeof good, 3), RILL_EUSER);
    cr_assert_eq(rill_harness_push(h, 0, &good, sizeof good, 3), RILL_EUSER);
    cr_assert_eq(rill_harness_watermark(h, 1, 10), RILL_EUSER);
    cr_assert_eq(rill_harness_set_time(h, 10), RILL_EUSER);
    cr_assert_eq(rill_harness_end(h), RILL_EUSER);
    assert_has(rill_harness_errmsg(h), "double");
    EXPECT_EMPTY(h, "out");
    rill_harness_free(h);
    rill_env_free(env);
}

static int timer_fails(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)ctx;
    (void)ts;
    (void)domain;
    (void)ud;
    return 7;
}

Test(harness_errors, failing_timer_fails_the_harness)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *p = rill_process(in, "timed", reg_both, timer_fails, NULL);
    rill_harness *h = hnew(env, p);
    push_kv(h, 0, 1, 10, 1);
    cr_assert_eq(rill_harness_watermark(h, 0, 20), RILL_EUSER);
    assert_has(rill_harness_errmsg(h), "timed");
    cr_assert_eq(rill_harness_set_time(h, 5), RILL_EUSER);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, timers_without_on_timer_fire_silently)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *p = rill_process(in, "timed", reg_both, NULL, NULL);
    rill_harness *h = hnew(env, p);
    push_kv(h, 0, 1, 10, 1);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 1);
    HOK(h, rill_harness_watermark(h, 0, 20));
    EXPECT_OUT(h, NULL, W_WM(20));
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, bad_input_index_is_einval)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    kv r = {1, 1};
    cr_assert_eq(rill_harness_push(h, 2, &r, sizeof r, 1), RILL_EINVAL);
    cr_assert_eq(rill_harness_push(h, -1, &r, sizeof r, 1), RILL_EINVAL);
    cr_assert_eq(rill_harness_watermark(h, 2, 5), RILL_EINVAL);
    assert_has(rill_harness_errmsg(h), "input");
    /* Not a failure: the harness goes on. */
    push_kv(h, 1, 1, 1, 1);
    EXPECT_OUT(h, "out", W_REC(1, 1, 1));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, bad_input_index_of_one_operator_is_einval)
{
    rill_env *env = state_env(1);
    rill_stream *m = rill_map(rill_harness_input(env, "in"), "double", double_val, NULL);
    rill_harness *h = hnew(env, m);
    kv r = {1, 1};
    cr_assert_eq(rill_harness_push(h, 1, &r, sizeof r, 1), RILL_EINVAL);
    cr_assert_eq(rill_harness_watermark(h, 1, 5), RILL_EINVAL);
    push_kv(h, 0, 1, 1, 1);
    EXPECT_OUT(h, NULL, W_REC(1, 2, 1));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, null_record_with_a_length_is_einval)
{
    rill_env *env = state_env(1);
    rill_stream *m = rill_map(rill_harness_input(env, "in"), "double", double_val, NULL);
    rill_harness *h = hnew(env, m);
    cr_assert_eq(rill_harness_push(h, 0, NULL, 8, 1), RILL_EINVAL);
    EXPECT_EMPTY(h, NULL);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, set_time_backwards_is_einval)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    HOK(h, rill_harness_set_time(h, 100));
    cr_assert_eq(rill_harness_set_time(h, 99), RILL_EINVAL);
    HOK(h, rill_harness_set_time(h, 100));
    HOK(h, rill_harness_set_time(h, 101));
    push_kv(h, 1, 1, 1, 1);
    EXPECT_OUT(h, "out", W_REC(1, 1, 1));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, calls_after_end_are_estate)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    push_kv(h, 1, 1, 1, 1);
    HOK(h, rill_harness_end(h));
    kv r = {1, 1};
    cr_assert_eq(rill_harness_push(h, 0, &r, sizeof r, 1), RILL_ESTATE);
    cr_assert_eq(rill_harness_watermark(h, 0, 5), RILL_ESTATE);
    cr_assert_eq(rill_harness_set_time(h, 5), RILL_ESTATE);
    cr_assert_eq(rill_harness_end(h), RILL_ESTATE);
    /* The outputs stay readable. */
    EXPECT_OUT(h, "out", W_REC(1, 1, 1), W_WM(RILL_TS_MAX));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, output_past_the_end_or_unknown_is_enotfound)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    push_kv(h, 1, 1, 1, 1);
    rill_record r;
    cr_assert_eq(rill_harness_output(h, "out", 0, &r), RILL_HARNESS_RECORD);
    cr_assert_eq(rill_harness_output(h, "out", 1, &r), RILL_ENOTFOUND);
    cr_assert_eq(rill_harness_output(h, "nowhere", 0, &r), RILL_ENOTFOUND);
    cr_assert_eq(rill_harness_count(h, "nowhere"), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, null_arguments)
{
    rill_env *env = state_env(1);
    rill_harness *h = NULL;
    cr_assert_eq(rill_harness_new(NULL, env, NULL), RILL_EINVAL);
    cr_assert_eq(rill_harness_new(&h, NULL, NULL), RILL_EINVAL);
    cr_assert_null(h);
    kv r = {1, 1};
    cr_assert_eq(rill_harness_push(NULL, 0, &r, sizeof r, 1), RILL_EINVAL);
    cr_assert_eq(rill_harness_count(NULL, NULL), 0);
    rill_harness_free(NULL);
    rill_env_free(env);
}

/* ---- timers --------------------------------------------------------------- */

Test(harness_timers, counts_by_domain)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *p = rill_process(in, "timed", reg_both, timer_emit, NULL);
    rill_harness *h = hnew(env, p);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 0);
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 0);
    push_kv(h, 0, 1, 100, 1);
    push_kv(h, 0, 1, 200, 1);
    push_kv(h, 0, 2, 100, 1);
    push_kv(h, 0, 1, -50, 1);
    push_kv(h, 0, 3, -60, 1);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 3);
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 2);
    cr_assert_eq(rill_harness_timers(h, 5), 0);
    HOK(h, rill_harness_watermark(h, 0, 150));
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 1);
    HOK(h, rill_harness_set_time(h, 55));
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 1);
    HOK(h, rill_harness_end(h));
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_timers, counts_in_a_whole_graph)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *p = rill_process(in, "timed", reg_both, timer_emit, NULL);
    rill_sink(p, "out", drop_sink, NULL);
    rill_harness *h = hnew(env, NULL);
    push_kv(h, 0, 1, 100, 1);
    push_kv(h, 0, 2, -30, 1);
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 1);
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 1);
    HOK(h, rill_harness_set_time(h, 30));
    EXPECT_OUT(h, "out", W_REC(RILL_PROCESSING_TIME, 30, RILL_TS_MIN));
    HOK(h, rill_harness_watermark(h, 0, 100));
    EXPECT_OUT(h, "out", W_REC(RILL_PROCESSING_TIME, 30, RILL_TS_MIN),
               W_REC(RILL_EVENT_TIME, 100, 100), W_WM(100));
    cr_assert_eq(rill_harness_timers(h, RILL_EVENT_TIME), 0);
    cr_assert_eq(rill_harness_timers(h, RILL_PROCESSING_TIME), 0);
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- state ------------------------------------------------------------------- */

Test(harness_state, reads_the_operator_state_by_key)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *p = rill_process(in, "counter", count_key, NULL, NULL);
    rill_stream_add_state(p, "count", RILL_STATE_VALUE);
    rill_harness *h = hnew(env, p);
    push_kv(h, 0, 1, 0, 1);
    push_kv(h, 0, 1, 0, 2);
    push_kv(h, 0, 2, 0, 3);
    int32_t keys[3] = {1, 2, 3};
    int32_t want_n[3] = {2, 1, 0};
    for (int i = 0; i < 3; i++) {
        rill_state *st = rill_harness_state(h, "count", &keys[i], 4);
        cr_assert_not_null(st);
        const void *v;
        size_t vl;
        int rc = rill_state_get(st, &v, &vl);
        if (want_n[i] == 0) {
            cr_assert_eq(rc, RILL_ENOTFOUND);
            continue;
        }
        cr_assert_eq(rc, RILL_OK);
        int32_t n;
        memcpy(&n, v, 4);
        cr_assert_eq(n, want_n[i], "key %d: %d", keys[i], n);
    }
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_state, written_through_the_harness_is_seen_by_the_operator)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *p = rill_process(in, "counter", count_key, NULL, NULL);
    rill_stream_add_state(p, "count", RILL_STATE_VALUE);
    rill_harness *h = hnew(env, p);
    int32_t k = 4, n = 41;
    rill_state *st = rill_harness_state(h, "count", &k, sizeof k);
    cr_assert_not_null(st);
    cr_assert_eq(rill_state_put(st, &n, sizeof n), RILL_OK);
    push_kv(h, 0, 4, 0, 1);
    EXPECT_OUT(h, NULL, W_REC(4, 42, 1));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(harness_errors, second_harness_while_one_runs_is_estate)
{
    rill_env *env = state_env(1);
    rill_harness *h = two_input_graph(env);
    rill_harness *h2 = (rill_harness *)1;
    cr_assert_eq(rill_harness_new(&h2, env, NULL), RILL_ESTATE);
    cr_assert_null(h2);
    cr_assert(strstr(rill_env_errmsg(env), "running") != NULL, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_execute(env, "meanwhile"), RILL_ESTATE);
    HOK(h, rill_harness_end(h));
    rill_harness_free(h);
    rill_env_free(env);
}
