/* job_test.c - running jobs: success, user callback failures, cancel, waiting
 * from several threads, running an environment again, and freeing.
 *
 * Callbacks only record what they see, in atomics; every assertion runs on
 * the test's threads.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rill.h"
#include "common.h"

static int map_plus_one(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return emit_u64_affine(ctx, rec, len, 1, 1);
}

/* generator(n, p=2) -> map +1 (p=2) -> rebalance -> sink (p=1):
 * count n, sum n(n+1)/2. */
static void build_sum(rill_env *env, uint64_t n, sum_total *t)
{
    rill_stream *g = rill_generator(env, "gen", n, gen_index, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(g, 2));
    rill_stream *m = rill_map(g, "plus1", map_plus_one, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(m, 2));
    rill_stream *k = rill_sink(rill_rebalance(m), "total", total_sink, t);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
}

static void check_sum(sum_total *t, uint64_t n)
{
    cr_assert_eq(atomic_load(&t->count), n, "count %llu, expected %llu",
                 (unsigned long long)atomic_load(&t->count), (unsigned long long)n);
    cr_assert_eq(atomic_load(&t->sum), n * (n + 1) / 2);
}

/* ---- success ---------------------------------------------------------------- */

Test(job, execute_returns_ok_after_all_records)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(2);
    build_sum(env, 100000, &t);
    cr_assert_eq(rill_env_execute(env, "sum"), RILL_OK, "%s", rill_env_errmsg(env));
    check_sum(&t, 100000);
    rill_env_free(env);
}

Test(job, execute_with_null_job_name)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(2);
    build_sum(env, 1000, &t);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    check_sum(&t, 1000);
    rill_env_free(env);
}

Test(job, start_wait_reports_finished)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(2);
    build_sum(env, 50000, &t);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "sum"), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_not_null(job);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    cr_assert_str_empty(rill_job_errmsg(job));
    cr_assert_null(rill_job_failed_operator(job));
    check_sum(&t, 50000);
    /* Waiting again gives the same result. */
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    rill_job_free(job);
    rill_env_free(env);
}

Test(job, start_with_a_building_error_gives_no_job)
{
    rill_env *env = new_env(1);
    rill_generator(env, "gen", 10, gen_index, NULL); /* no sink */
    static char sentinel;
    rill_job *job = (rill_job *)(void *)&sentinel; /* must be reset to NULL */
    cr_assert_eq(rill_job_start(&job, env, "no sink"), RILL_EINVAL);
    cr_assert_null(job);
    cr_assert_not_null(strstr(rill_env_errmsg(env), "no sink"), "errmsg: %s",
                      rill_env_errmsg(env));
    rill_env_free(env);
}

/* ---- failures of user callbacks ------------------------------------------- */

/* Which callback fails, on which record, with which value. */
typedef enum where {
    AT_NONE,
    AT_GENERATOR,
    AT_MAP,
    AT_FILTER,
    AT_FLAT_MAP,
    AT_KEY,
    AT_SINK,
    AT_OPEN,
    AT_CLOSE
} where;

typedef struct failcfg {
    where at;
    int value;        /* returned by the failing callback */
    uint64_t on;      /* index of the record at which it fails */
    const char *note; /* rill_ctx_set_error message, or NULL */
} failcfg;

static failcfg cfg; /* set before the job starts, read-only while it runs */

static uint64_t rec_index(const void *rec, size_t len)
{
    uint64_t v = UINT64_MAX;
    if (len == sizeof v)
        memcpy(&v, rec, sizeof v);
    return v;
}

static int fail_here(rill_ctx *ctx, where at, uint64_t index)
{
    if (cfg.at != at || index != cfg.on)
        return 0;
    if (cfg.note && ctx)
        rill_ctx_set_error(ctx, "%s %llu", cfg.note, (unsigned long long)index);
    return cfg.value;
}

static int f_gen(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    int rc = fail_here(ctx, AT_GENERATOR, index);
    return rc ? rc : rill_emit(ctx, &index, sizeof index);
}

static int f_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int rc = fail_here(ctx, AT_MAP, rec_index(rec, len));
    return rc ? rc : rill_emit(ctx, rec, len);
}

static int f_filter(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int rc = fail_here(ctx, AT_FILTER, rec_index(rec, len));
    return rc ? rc : 1;
}

static int f_flat(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int rc = fail_here(ctx, AT_FLAT_MAP, rec_index(rec, len));
    return rc ? rc : rill_emit(ctx, rec, len);
}

static int f_key(const void *rec, size_t len, void *key, size_t *key_len, void *ud)
{
    (void)ud;
    int rc = fail_here(NULL, AT_KEY, rec_index(rec, len));
    if (rc)
        return rc;
    if (*key_len < len) {
        *key_len = len;
        return 0;
    }
    memcpy(key, rec, len);
    *key_len = len;
    return 0;
}

static int f_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return fail_here(ctx, AT_SINK, rec_index(rec, len));
}

static int f_open(rill_ctx *ctx, void *ud)
{
    (void)ud;
    return fail_here(ctx, AT_OPEN, (uint64_t)rill_ctx_subtask(ctx));
}

static int f_close(rill_ctx *ctx, void *ud)
{
    (void)ud;
    return fail_here(ctx, AT_CLOSE, (uint64_t)rill_ctx_subtask(ctx));
}

/* gen -> mapper (open/close hooks) -> sifter -> spreader -> key_by -> sink_op,
 * all at parallelism 1 except the sink (2). */
static void build_fail_graph(rill_env *env)
{
    rill_stream *s = rill_generator(env, "gen", 1000, f_gen, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(s, 1));
    s = rill_map(s, "mapper", f_map, NULL);
    cr_assert_not_null(rill_stream_set_lifecycle(s, f_open, f_close));
    s = rill_filter(s, "sifter", f_filter, NULL);
    s = rill_flat_map(s, "spreader", f_flat, NULL);
    s = rill_key_by(s, f_key, NULL);
    rill_stream *k = rill_sink(s, "sink_op", f_sink, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 2));
}

/* Does msg hold the decimal number value, not as part of a longer number? */
static int has_number(const char *msg, int value)
{
    char text[24];
    int n = snprintf(text, sizeof text, "%d", value);
    for (const char *p = strstr(msg, text); p; p = strstr(p + 1, text)) {
        int digit_before = p > msg && p[-1] >= '0' && p[-1] <= '9';
        int minus_before = value >= 0 && p > msg && p[-1] == '-';
        int digit_after = p[n] >= '0' && p[n] <= '9';
        if (!digit_before && !minus_before && !digit_after)
            return 1;
    }
    return 0;
}

static void expect_failure(where at, int value, uint64_t on, const char *op, const char *note)
{
    cfg = (failcfg){at, value, on, note};
    rill_env *env = new_env(1);
    build_fail_graph(env);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "failing"), RILL_OK, "%s", rill_env_errmsg(env));
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_EUSER, "wait: %s", rill_err_name(rc));
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    const char *failed = rill_job_failed_operator(job);
    cr_assert_not_null(failed);
    cr_assert_str_eq(failed, op);
    const char *msg = rill_job_errmsg(job);
    cr_assert_not_null(strstr(msg, op), "errmsg lacks '%s': %s", op, msg);
    cr_assert(has_number(msg, value), "errmsg lacks %d: %s", value, msg);
    if (note)
        cr_assert_not_null(strstr(msg, note), "errmsg lacks '%s': %s", note, msg);
    rill_job_free(job);

    /* rill_env_execute gives the same error and copies the message. */
    rc = rill_env_execute(env, "failing");
    cr_assert_eq(rc, RILL_EUSER, "execute: %s", rill_err_name(rc));
    cr_assert_not_null(strstr(rill_env_errmsg(env), op), "env errmsg: %s", rill_env_errmsg(env));
    cr_assert(has_number(rill_env_errmsg(env), value), "env errmsg: %s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(user_error, none_means_success)
{
    cfg = (failcfg){AT_NONE, 0, 0, NULL};
    rill_env *env = new_env(1);
    build_fail_graph(env);
    cr_assert_eq(rill_env_execute(env, "ok"), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(user_error, generator)
{
    expect_failure(AT_GENERATOR, -1, 10, "gen", NULL);
}

Test(user_error, map)
{
    expect_failure(AT_MAP, 3, 20, "mapper", NULL);
}

Test(user_error, map_with_message)
{
    expect_failure(AT_MAP, -1, 20, "mapper", "cannot parse record");
}

Test(user_error, filter_returning_two)
{
    expect_failure(AT_FILTER, 2, 30, "sifter", NULL);
}

Test(user_error, filter_returning_minus_one)
{
    expect_failure(AT_FILTER, -1, 0, "sifter", NULL);
}

Test(user_error, flat_map)
{
    expect_failure(AT_FLAT_MAP, -5, 40, "spreader", "bad input");
}

Test(user_error, key_function_names_the_operator_it_follows)
{
    expect_failure(AT_KEY, -6, 50, "spreader", NULL);
}

Test(user_error, sink)
{
    expect_failure(AT_SINK, 42, 999, "sink_op", "sink full");
}

Test(user_error, open_hook)
{
    expect_failure(AT_OPEN, -3, 0, "mapper", "no resource");
}

Test(user_error, close_hook)
{
    expect_failure(AT_CLOSE, -4, 0, "mapper", NULL);
}

/* rill_source callbacks. */
typedef struct src_state {
    uint64_t next;
} src_state;

static int src_fail_value;

static int f_source(rill_ctx *ctx, void *ud)
{
    (void)ud;
    src_state *st = rill_ctx_local(ctx);
    if (!st) {
        st = calloc(1, sizeof *st);
        if (!st)
            return -100;
        rill_ctx_set_local(ctx, st);
    }
    if (st->next == 100) {
        free(st); /* not called again */
        rill_ctx_set_local(ctx, NULL);
        return src_fail_value;
    }
    uint64_t v = st->next++;
    return rill_emit(ctx, &v, sizeof v);
}

static void expect_source_failure(int value)
{
    src_fail_value = value;
    sum_total t = {0, 0};
    rill_env *env = new_env(1);
    rill_sink(rill_source(env, "custom_src", f_source, NULL), "sink", total_sink, &t);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "source fails"), RILL_OK);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_EUSER, "wait: %s", rill_err_name(rc));
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_not_null(rill_job_failed_operator(job));
    cr_assert_str_eq(rill_job_failed_operator(job), "custom_src");
    cr_assert_not_null(strstr(rill_job_errmsg(job), "custom_src"), "%s", rill_job_errmsg(job));
    cr_assert(has_number(rill_job_errmsg(job), value), "%s", rill_job_errmsg(job));
    rill_job_free(job);
    rill_env_free(env);
}

Test(user_error, source_returning_negative)
{
    expect_source_failure(-7);
}

Test(user_error, source_returning_unknown_positive)
{
    expect_source_failure(5);
}

/* Map must emit exactly once. */
static int map_emits(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    int times = *(const int *)ud;
    uint64_t v = rec_index(rec, len);
    if (v != 7)
        times = 1;
    for (int i = 0; i < times; i++) {
        int rc = rill_emit(ctx, rec, len);
        if (rc)
            return rc;
    }
    return 0;
}

static void expect_map_emit_failure(int times)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(1);
    rill_stream *m = rill_map(rill_generator(env, "gen", 100, gen_index, NULL), "doubler",
                              map_emits, &times);
    rill_sink(m, "sink", total_sink, &t);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "bad map"), RILL_OK);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_EUSER, "wait: %s", rill_err_name(rc));
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "doubler");
    cr_assert_not_null(strstr(rill_job_errmsg(job), "doubler"), "%s", rill_job_errmsg(job));
    cr_assert_not_null(strstr(rill_job_errmsg(job), "map"), "%s", rill_job_errmsg(job));
    rill_job_free(job);
    rill_env_free(env);
}

Test(user_error, map_emitting_nothing)
{
    expect_map_emit_failure(0);
}

Test(user_error, map_emitting_twice)
{
    expect_map_emit_failure(2);
}

/* ---- a failure while other subtasks are blocked ---------------------------- */

static atomic_ullong emitted;
static atomic_int stall_seen;

static int gen_counting(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    atomic_fetch_add(&emitted, 1);
    return rill_emit(ctx, &index, sizeof index);
}

/* Wait until `emitted` stops growing over `rounds` sleeps of 10 ms, for at
 * most about 10 s. 1 when it stalled. */
static int wait_stall(int rounds)
{
    unsigned long long last = atomic_load(&emitted);
    int same = 0;
    for (int i = 0; i < 1000 && same < rounds; i++) {
        sleep_ms(10);
        unsigned long long now = atomic_load(&emitted);
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return same >= rounds;
}

/* Subtask 0 waits, on its first record, until the sources are blocked on
 * its full channel, then fails; subtask 1 consumes normally. */
static int sink_stall_then_fail(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    if (rill_ctx_subtask(ctx) != 0)
        return 0;
    atomic_store(&stall_seen, wait_stall(5));
    return -9;
}

Test(failure, one_subtask_fails_while_others_are_blocked)
{
    atomic_store(&emitted, 0);
    atomic_store(&stall_seen, 0);
    rill_env *env = new_env(2);
    cr_assert_eq(rill_env_set_buffer_size(env, 4096), RILL_OK);
    cr_assert_eq(rill_env_set_channel_capacity(env, 1), RILL_OK);
    rill_stream *g = rill_generator(env, "gen", RILL_UNBOUNDED, gen_counting, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(g, 2));
    rill_stream *k = rill_sink(rill_rebalance(g), "stuck", sink_stall_then_fail, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 2));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "blocked"), RILL_OK);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_EUSER, "wait: %s", rill_err_name(rc));
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "stuck");
    cr_assert_eq(atomic_load(&stall_seen), 1, "the sources never blocked");
    rill_job_free(job);
    rill_env_free(env);
}

/* ---- cancel ------------------------------------------------------------------ */

/* Per operator: lifecycle calls and records per subtask. */
typedef struct life {
    atomic_int opens[MAXSUB], closes[MAXSUB];
    atomic_ullong recs[MAXSUB];
    atomic_int after_close; /* records seen by a closed subtask */
    atomic_int bad_emit;    /* rill_emit results other than OK / ECANCELED */
} life;

static life lg, lm, lk;

static void life_reset(void)
{
    memset(&lg, 0, sizeof lg);
    memset(&lm, 0, sizeof lm);
    memset(&lk, 0, sizeof lk);
}

static int life_open(rill_ctx *ctx, void *ud)
{
    life *l = ud;
    int s = rill_ctx_subtask(ctx);
    if (s >= 0 && s < MAXSUB)
        atomic_fetch_add(&l->opens[s], 1);
    return 0;
}

static int life_close(rill_ctx *ctx, void *ud)
{
    life *l = ud;
    int s = rill_ctx_subtask(ctx);
    if (s >= 0 && s < MAXSUB)
        atomic_fetch_add(&l->closes[s], 1);
    return 0;
}

static void life_record(life *l, rill_ctx *ctx)
{
    int s = rill_ctx_subtask(ctx);
    if (s < 0 || s >= MAXSUB)
        return;
    if (atomic_load(&l->closes[s]))
        atomic_fetch_add(&l->after_close, 1);
    atomic_fetch_add(&l->recs[s], 1);
}

static int life_emit(life *l, rill_ctx *ctx, const void *rec, size_t len)
{
    int rc = rill_emit(ctx, rec, len);
    if (rc != RILL_OK && rc != RILL_ECANCELED)
        atomic_fetch_add(&l->bad_emit, 1);
    return rc;
}

static int life_gen(rill_ctx *ctx, uint64_t index, void *ud)
{
    life_record(ud, ctx);
    return life_emit(ud, ctx, &index, sizeof index);
}

static uint64_t life_fail_at = UINT64_MAX; /* map record that fails, if any */

static int life_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    life_record(ud, ctx);
    if (rec_index(rec, len) == life_fail_at)
        return -1;
    return life_emit(ud, ctx, rec, len);
}

static int life_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    life_record(ud, ctx);
    return 0;
}

/* Generator (p=2) -> map (p=2, chained) -> sink (p=1), each with lifecycle
 * hooks. */
static void build_life(rill_env *env, uint64_t count)
{
    rill_stream *g = rill_generator(env, "gen", count, life_gen, &lg);
    cr_assert_not_null(rill_stream_set_parallelism(g, 2));
    cr_assert_not_null(rill_stream_set_lifecycle(g, life_open, life_close));
    rill_stream *m = rill_map(g, "map", life_map, &lm);
    cr_assert_not_null(rill_stream_set_parallelism(m, 2));
    cr_assert_not_null(rill_stream_set_lifecycle(m, life_open, life_close));
    rill_stream *k = rill_sink(m, "sink", life_sink, &lk);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    cr_assert_not_null(rill_stream_set_lifecycle(k, life_open, life_close));
}

/* Until each map subtask and the sink have seen some records (<= ~10 s). */
static void wait_flowing(void)
{
    for (int i = 0; i < 2000; i++) {
        if (atomic_load(&lm.recs[0]) > 100 && atomic_load(&lm.recs[1]) > 100 &&
            atomic_load(&lk.recs[0]) > 100)
            return;
        sleep_ms(5);
    }
    cr_assert_fail("records did not flow");
}

static void check_lives_closed(void)
{
    const life *ls[3] = {&lg, &lm, &lk};
    const int ps[3] = {2, 2, 1};
    for (int o = 0; o < 3; o++) {
        for (int s = 0; s < MAXSUB; s++) {
            int want = s < ps[o];
            cr_assert_eq(atomic_load(&ls[o]->opens[s]), want, "op %d subtask %d opened %d times",
                         o, s, atomic_load(&ls[o]->opens[s]));
            cr_assert_eq(atomic_load(&ls[o]->closes[s]), want, "op %d subtask %d closed %d times",
                         o, s, atomic_load(&ls[o]->closes[s]));
        }
        cr_assert_eq(atomic_load(&ls[o]->after_close), 0);
        cr_assert_eq(atomic_load(&ls[o]->bad_emit), 0);
    }
}

Test(cancel, unbounded_job_ends_canceled_and_closes_every_subtask)
{
    life_reset();
    rill_env *env = new_env(2);
    build_life(env, RILL_UNBOUNDED);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "forever"), RILL_OK);
    wait_flowing();
    cr_assert_eq(rill_job_status(job), RILL_JOB_RUNNING);
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_ECANCELED, "wait: %s", rill_err_name(rc));
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    cr_assert_null(rill_job_failed_operator(job));
    check_lives_closed();
    /* Cancel again: still canceled. */
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    rill_job_free(job);
    rill_env_free(env);
}

Test(lifecycle, bounded_job_opens_and_closes_each_subtask_once)
{
    life_reset();
    life_fail_at = UINT64_MAX;
    rill_env *env = new_env(2);
    build_life(env, 20000);
    cr_assert_eq(rill_env_execute(env, "bounded"), RILL_OK, "%s", rill_env_errmsg(env));
    check_lives_closed();
    cr_assert_eq(atomic_load(&lg.recs[0]), 10000);
    cr_assert_eq(atomic_load(&lg.recs[1]), 10000);
    cr_assert_eq(atomic_load(&lk.recs[0]), 20000);
    rill_env_free(env);
}

Test(lifecycle, failed_job_closes_every_opened_subtask_once)
{
    life_reset();
    life_fail_at = 777; /* in map subtask 0 (generator range 0..9999) */
    rill_env *env = new_env(2);
    build_life(env, 20000);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "fails"), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_str_eq(rill_job_failed_operator(job), "map");
    const life *ls[3] = {&lg, &lm, &lk};
    for (int o = 0; o < 3; o++) {
        for (int s = 0; s < MAXSUB; s++) {
            int opens = atomic_load(&ls[o]->opens[s]);
            cr_assert_leq(opens, 1, "op %d subtask %d opened %d times", o, s, opens);
            cr_assert_eq(atomic_load(&ls[o]->closes[s]), opens,
                         "op %d subtask %d: %d opens, %d closes", o, s, opens,
                         atomic_load(&ls[o]->closes[s]));
        }
        cr_assert_eq(atomic_load(&ls[o]->after_close), 0);
    }
    cr_assert_eq(atomic_load(&lm.opens[0]), 1);
    cr_assert_eq(atomic_load(&lg.opens[0]), 1);
    rill_job_free(job);
    rill_env_free(env);
    life_fail_at = UINT64_MAX;
}

static int slow_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ctx;
    atomic_fetch_add((atomic_ullong *)ud, 1);
    sleep_ms(1);
    return 0;
}

Test(cancel, while_a_slow_sink_backpressures_the_pipeline)
{
    atomic_store(&emitted, 0);
    atomic_ullong got = 0;
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_set_buffer_size(env, 4096), RILL_OK);
    cr_assert_eq(rill_env_set_channel_capacity(env, 1), RILL_OK);
    rill_stream *g = rill_generator(env, "gen", RILL_UNBOUNDED, gen_counting, NULL);
    rill_stream *k = rill_sink(g, "slow", slow_sink, &got);
    cr_assert_not_null(rill_stream_disable_chaining(k));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "slow"), RILL_OK);
    for (int i = 0; i < 2000 && atomic_load(&got) < 20; i++)
        sleep_ms(5);
    cr_assert_geq(atomic_load(&got), 20);
    /* The sink takes ~1 ms per record: the generator is far ahead, blocked. */
    cr_assert_gt(atomic_load(&emitted), atomic_load(&got));
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_ECANCELED, "wait: %s", rill_err_name(rc));
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    rill_job_free(job);
    rill_env_free(env);
}

Test(cancel, after_finish_is_a_no_op)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(2);
    build_sum(env, 10000, &t);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "short"), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    cr_assert_str_empty(rill_job_errmsg(job));
    check_sum(&t, 10000);
    rill_job_free(job);
    rill_env_free(env);
}

/* Poll the status until it leaves RUNNING (at most ~3 s; these jobs take
 * milliseconds). */
static int status_when_ended(rill_job *job)
{
    int st = rill_job_status(job);
    for (int i = 0; i < 600 && st == RILL_JOB_RUNNING; i++) {
        sleep_ms(5);
        st = rill_job_status(job);
    }
    return st;
}

Test(job, status_reports_finished_without_wait)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(2);
    build_sum(env, 1000, &t);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "short"), RILL_OK);
    int st = status_when_ended(job);
    cr_assert_eq(st, RILL_JOB_FINISHED, "status %d after the job ended", st);
    check_sum(&t, 1000);
    /* Cancel of the finished (not yet waited) job changes nothing. */
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    rill_job_free(job);
    rill_env_free(env);
}

Test(job, status_reports_failed_without_wait)
{
    cfg = (failcfg){AT_MAP, -2, 5, NULL};
    rill_env *env = new_env(1);
    build_fail_graph(env);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "fails"), RILL_OK);
    int st = status_when_ended(job);
    cr_assert_eq(st, RILL_JOB_FAILED, "status %d after the job failed", st);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    rill_job_free(job);
    rill_env_free(env);
}

Test(job, status_of_null_is_einval)
{
    rill_job_state st = rill_job_status(NULL);
    cr_assert_eq(st, RILL_JOB_INVALID);
    /* The enumerator is the error code, negative like every other one. */
    cr_assert_eq((int)st, RILL_EINVAL, "status %d", (int)st);
    cr_assert_lt(st, 0, "status %d", (int)st);
}

Test(cancel, after_failure_keeps_the_failure)
{
    cfg = (failcfg){AT_MAP, -2, 5, NULL};
    rill_env *env = new_env(1);
    build_fail_graph(env);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "fails"), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    rill_job_free(job);
    rill_env_free(env);
}

Test(job, setters_refuse_while_running)
{
    life_reset();
    rill_env *env = new_env(2);
    build_life(env, RILL_UNBOUNDED);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "forever"), RILL_OK);
    cr_assert_eq(rill_env_set_parallelism(env, 3), RILL_ESTATE);
    cr_assert_eq(rill_env_set_max_parallelism(env, 64), RILL_ESTATE);
    cr_assert_eq(rill_env_set_buffer_timeout(env, 5), RILL_ESTATE);
    cr_assert_eq(rill_env_set_buffer_size(env, 8192), RILL_ESTATE);
    cr_assert_eq(rill_env_set_channel_capacity(env, 2), RILL_ESTATE);
    cr_assert_eq(rill_env_set_state_dir(env, "elsewhere"), RILL_ESTATE);
    cr_assert_eq(rill_env_get_parallelism(env), 2);
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    rill_job_free(job);
    cr_assert_eq(rill_env_set_parallelism(env, 3), RILL_OK);
    rill_env_free(env);
}

/* ---- waiting from several threads -------------------------------------------- */

typedef struct waiter {
    rill_job *job;
    int rc;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    w->rc = rill_job_wait(w->job);
    return NULL;
}

Test(job, wait_from_two_threads)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(2);
    build_sum(env, 200000, &t);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "waited twice"), RILL_OK);
    waiter w[2] = {{job, -100}, {job, -100}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, wait_thread, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(w[0].rc, RILL_OK);
    cr_assert_eq(w[1].rc, RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    check_sum(&t, 200000);
    rill_job_free(job);
    rill_env_free(env);
}

Test(job, wait_from_two_threads_while_canceled)
{
    life_reset();
    rill_env *env = new_env(2);
    build_life(env, RILL_UNBOUNDED);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "forever"), RILL_OK);
    waiter w[2] = {{job, -100}, {job, -100}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, wait_thread, &w[i]), 0);
    wait_flowing();
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(w[0].rc, RILL_ECANCELED);
    cr_assert_eq(w[1].rc, RILL_ECANCELED);
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    check_lives_closed();
    rill_job_free(job);
    rill_env_free(env);
}

/* ---- running again ------------------------------------------------------------ */

Test(job, same_env_runs_twice_with_same_results)
{
    rill_env *env = new_env(2);
    sum_total t = {0, 0};
    build_sum(env, 30000, &t);
    cr_assert_eq(rill_env_execute(env, "first"), RILL_OK, "%s", rill_env_errmsg(env));
    check_sum(&t, 30000);
    atomic_store(&t.count, 0);
    atomic_store(&t.sum, 0);
    cr_assert_eq(rill_env_execute(env, "second"), RILL_OK, "%s", rill_env_errmsg(env));
    check_sum(&t, 30000);
    atomic_store(&t.count, 0);
    atomic_store(&t.sum, 0);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "third"), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    rill_job_free(job);
    check_sum(&t, 30000);
    rill_env_free(env);
}

Test(job, env_runs_again_after_a_failure)
{
    cfg = (failcfg){AT_SINK, -1, 3, NULL};
    rill_env *env = new_env(1);
    build_fail_graph(env);
    cr_assert_eq(rill_env_execute(env, "fails"), RILL_EUSER);
    cfg = (failcfg){AT_NONE, 0, 0, NULL};
    cr_assert_eq(rill_env_execute(env, "succeeds"), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(job, env_runs_again_after_a_cancel)
{
    life_reset();
    rill_env *env = new_env(2);
    build_life(env, RILL_UNBOUNDED);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "first"), RILL_OK);
    wait_flowing();
    rill_job_cancel(job);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    rill_job_free(job);
    check_lives_closed();
    life_reset();
    cr_assert_eq(rill_job_start(&job, env, "second"), RILL_OK);
    wait_flowing();
    rill_job_cancel(job);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    rill_job_free(job);
    check_lives_closed();
    rill_env_free(env);
}

/* ---- freeing ------------------------------------------------------------------ */

Test(free, env_free_before_job_free_is_safe)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(2);
    build_sum(env, 200000, &t);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "outlives its env"), RILL_OK);
    rill_env_free(env);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    check_sum(&t, 200000);
    rill_job_free(job);
}

Test(free, env_free_then_job_free_of_a_running_job)
{
    life_reset();
    rill_env *env = new_env(2);
    build_life(env, RILL_UNBOUNDED);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "forever"), RILL_OK);
    wait_flowing();
    rill_env_free(env);
    rill_job_free(job); /* cancels and waits */
    check_lives_closed();
}

Test(free, job_free_cancels_a_running_job_and_accepts_null)
{
    life_reset();
    rill_env *env = new_env(2);
    build_life(env, RILL_UNBOUNDED);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "forever"), RILL_OK);
    wait_flowing();
    rill_job_free(job);
    check_lives_closed();
    rill_job_free(NULL);
    /* The env is free to run again. */
    cr_assert_eq(rill_env_set_parallelism(env, 1), RILL_OK);
    rill_env_free(env);
}

/* ---- a callback starting a job of its own environment ------------------------ */

typedef struct nested {
    rill_env *env;
    int start; /* rill_job_start instead of rill_env_execute */
} nested;

/* Tries to run the environment of its own job and returns the result. */
static int map_runs_its_env(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    nested *n = ud;
    if (!n->start)
        return rill_env_execute(n->env, "nested");
    rill_job *job = NULL;
    int rc = rill_job_start(&job, n->env, "nested");
    if (rc == RILL_OK)
        rill_job_free(job);
    return rc;
}

Test(job, starting_its_own_environment_from_a_callback_is_named_in_the_message)
{
    static const struct {
        int start;
        const char *message;
    } cases[] = {
        {0, "operator 'spawn' (subtask 1/1): map function returned -3: rill_env_execute was "
            "called from a callback of this job; a callback cannot start or validate a job of "
            "its own environment"},
        {1, "operator 'spawn' (subtask 1/1): map function returned -3: rill_job_start was "
            "called from a callback of this job; a callback cannot start or validate a job of "
            "its own environment"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rill_env *env = new_env(1);
        nested n = {env, cases[c].start};
        rill_stream *g = rill_generator(env, "gen", 3, gen_index, NULL);
        rill_sink(rill_map(g, "spawn", map_runs_its_env, &n), "out", total_sink,
                  &(sum_total){0, 0});
        cr_assert_eq(rill_env_execute(env, "outer"), RILL_EUSER, "case %zu", c);
        cr_assert_str_eq(rill_env_errmsg(env), cases[c].message, "case %zu", c);
        rill_env_free(env);
    }
}
