/* emit_test.c - rill_emit along a chain of operators: a chained successor's
 * user function is called straight from the (inline) rill_emit, so these
 * check that every failure is still reported against the operator that
 * failed, that a map still emits exactly once, that a callback emitting
 * without end still stops on cancel, and that the library functions behind
 * the inline ones behave the same.
 *
 * All pipelines run at parallelism 1 with forward edges, so every operator
 * is chained into one thread.
 */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "rill.h"
#include "common.h"

/* What a test's callbacks look at: the index a callback fails at, the code
 * it returns there, and what an emit returned. */
static uint64_t fail_at;
static int fail_code;
static atomic_int gen_emit_rc;
static atomic_ullong forever_emits;
static atomic_int forever_rc;

static void reset(uint64_t at, int code)
{
    fail_at = at;
    fail_code = code;
    atomic_store(&gen_emit_rc, 0);
    atomic_store(&forever_emits, 0);
    atomic_store(&forever_rc, 0);
}

static uint64_t u64_of(const void *rec)
{
    uint64_t v;
    memcpy(&v, rec, sizeof v);
    return v;
}

/* Emits its index and keeps the first failing result of rill_emit. */
static int gen_keep_rc(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    int rc = rill_emit(ctx, &index, sizeof index);
    int none = 0;
    if (rc)
        atomic_compare_exchange_strong(&gen_emit_rc, &none, rc);
    return rc;
}

static int keep_all(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return 1;
}

static int keep_even(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)len;
    (void)ud;
    return u64_of(rec) % 2 == 0;
}

/* Fails with fail_code at record fail_at, else adds it up (ud: sum_total). */
static int sink_failing(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    if (u64_of(rec) == fail_at)
        return fail_code;
    return total_sink(ctx, rec, len, ud);
}

/* Emits the record once, but nothing for fail_at and twice for fail_at + 1
 * when fail_code is 2. */
static int map_miscounting(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    uint64_t v = u64_of(rec);
    if (v == fail_at && fail_code == 0)
        return 0;
    int rc = rill_emit(ctx, rec, len);
    if (!rc && v == fail_at && fail_code == 2)
        rc = rill_emit(ctx, rec, len);
    return rc;
}

static int map_identity(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return rill_emit(ctx, rec, len);
}

/* Emits the record twice; fails with fail_code at fail_at. */
static int flat_twice_failing(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    if (u64_of(rec) == fail_at)
        return fail_code;
    int rc = rill_emit(ctx, rec, len);
    return rc ? rc : rill_emit(ctx, rec, len);
}

/* Runs env to its end and checks it failed with RILL_EUSER at operator op,
 * with a message naming op and holding note. */
static void expect_failed(rill_env *env, const char *op, const char *note)
{
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "emit"), RILL_OK, "%s", rill_env_errmsg(env));
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_EUSER, "wait: %s (%s)", rill_err_name(rc), rill_job_errmsg(job));
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_not_null(rill_job_failed_operator(job));
    cr_assert_str_eq(rill_job_failed_operator(job), op, "failed: %s (%s)",
                     rill_job_failed_operator(job), rill_job_errmsg(job));
    assert_has(rill_job_errmsg(job), op);
    assert_has(rill_job_errmsg(job), note);
    rill_job_free(job);
}

/* expect_failed, then: the generator's emit said the job is stopping, the
 * sink got `count` records; frees env. */
static void expect_failed_after(rill_env *env, const char *op, const char *note,
                                const sum_total *t, uint64_t count)
{
    expect_failed(env, op, note);
    cr_assert_eq(atomic_load(&gen_emit_rc), RILL_ECANCELED);
    cr_assert_eq(atomic_load(&t->count), count);
    rill_env_free(env);
}

/* ---- failures are reported against the operator that failed ------------- */

Test(emit_failure, chained_sink_is_named)
{
    sum_total t = {0, 0};
    reset(40, -41);
    rill_env *env = new_env(1);
    rill_sink(rill_generator(env, "gen", 100, gen_keep_rc, NULL), "counter", sink_failing, &t);
    expect_failed_after(env, "counter", "-41", &t, 40);
}

Test(emit_failure, sink_after_a_filter_is_named)
{
    sum_total t = {0, 0};
    reset(40, -41);
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 100, gen_keep_rc, NULL);
    s = rill_filter(s, "evens", keep_even, NULL);
    rill_sink(s, "counter", sink_failing, &t);
    expect_failed_after(env, "counter", "-41", &t, 20); /* 0, 2, ..., 38 */
}

Test(emit_failure, sink_after_two_filters_and_a_map_is_named)
{
    sum_total t = {0, 0};
    reset(1500, 7);
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 3000, gen_keep_rc, NULL);
    s = rill_map(s, "same", map_identity, NULL);
    s = rill_filter(s, "all", keep_all, NULL);
    s = rill_filter(s, "evens", keep_even, NULL);
    rill_sink(s, "counter", sink_failing, &t);
    expect_failed_after(env, "counter", "7", &t, 750);
}

Test(emit_failure, flat_map_after_a_map_is_named)
{
    sum_total t = {0, 0};
    reset(9, -9);
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 100, gen_keep_rc, NULL);
    s = rill_map(s, "same", map_identity, NULL);
    s = rill_flat_map(s, "doubler", flat_twice_failing, NULL);
    rill_sink(s, "counter", total_sink, &t);
    expect_failed_after(env, "doubler", "-9", &t, 18);
}

/* A filter at the head of a task (records from a channel) passes a record
 * to its chained sink the same way. */
Test(emit_failure, sink_after_a_filter_behind_a_channel_is_named)
{
    sum_total t = {0, 0};
    reset(40, -41);
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 100, gen_keep_rc, NULL);
    s = rill_filter(rill_rebalance(s), "evens", keep_even, NULL);
    rill_sink(s, "counter", sink_failing, &t);
    expect_failed(env, "counter", "-41");
    cr_assert_eq(atomic_load(&t.count), 20);
    rill_env_free(env);
}

/* A failing filter is named too (its own failure, not its successor's). */
static int filter_failing(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)len;
    (void)ud;
    return u64_of(rec) == fail_at ? fail_code : 1;
}

Test(emit_failure, filter_before_a_sink_is_named)
{
    sum_total t = {0, 0};
    reset(5, -5);
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 100, gen_keep_rc, NULL);
    s = rill_filter(s, "picky", filter_failing, NULL);
    rill_sink(s, "counter", total_sink, &t);
    expect_failed_after(env, "picky", "-5", &t, 5);
}

/* ---- a map emits exactly once per record -------------------------------- */

/* gen(n) -> [filter ->] map (miscounting at `at`) -> sink: fails naming the
 * map and the number of records it emitted. */
static void expect_miscount(uint64_t n, uint64_t at, int emits, int with_filter)
{
    sum_total t = {0, 0};
    reset(at, emits);
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", n, gen_keep_rc, NULL);
    if (with_filter)
        s = rill_filter(s, "all", keep_all, NULL);
    s = rill_map(s, "counted", map_miscounting, NULL);
    rill_sink(s, "counter", total_sink, &t);
    expect_failed(env, "counted", emits == 0 ? "emitted 0 records" : "emitted 2 records");
    cr_assert_eq(atomic_load(&gen_emit_rc), RILL_ECANCELED);
    rill_env_free(env);
}

Test(emit_map, emitting_nothing_at_the_first_record)
{
    expect_miscount(100, 0, 0, 0);
}

Test(emit_map, emitting_twice_after_a_filter)
{
    expect_miscount(100, 50, 2, 1);
}

/* Every RILL__EMIT_SPAN-th emit goes through the library function; the
 * records around it are checked the same way. */
Test(emit_map, emitting_nothing_around_the_library_call)
{
    for (uint64_t at = 1021; at <= 1025; at++)
        expect_miscount(3000, at, 0, 0);
}

Test(emit_map, emitting_twice_around_the_library_call)
{
    for (uint64_t at = 1021; at <= 1025; at++)
        expect_miscount(3000, at, 2, 1);
}

/* ---- a callback that emits without end stops on cancel ---------------- */

/* For its one record: emits until an emit fails, and keeps that result. */
static int flat_forever(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int rc;
    while ((rc = rill_emit(ctx, rec, len)) == RILL_OK)
        atomic_fetch_add(&forever_emits, 1);
    atomic_store(&forever_rc, rc);
    return rc;
}

static int count_only(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return 0;
}

Test(emit_cancel, chained_flat_map_emitting_forever_stops)
{
    reset(UINT64_MAX, 0);
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 1, gen_index, NULL);
    s = rill_flat_map(s, "forever", flat_forever, NULL);
    rill_sink(s, "drop", count_only, NULL);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "forever"), RILL_OK);
    while (atomic_load(&forever_emits) < 100000)
        sleep_ms(1);
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    cr_assert_eq(atomic_load(&forever_rc), RILL_ECANCELED);
    rill_job_free(job);
    rill_env_free(env);
}

/* ---- arguments and timestamps ------------------------------------------- */

Test(emit_args, null_ctx_is_einval)
{
    uint64_t v = 1;
    cr_assert_eq(rill_emit(NULL, &v, sizeof v), RILL_EINVAL);
    cr_assert_eq(rill_emit_ts(NULL, &v, sizeof v, 5), RILL_EINVAL);
    cr_assert_eq((rill_emit)(NULL, &v, sizeof v), RILL_EINVAL);
    cr_assert_eq((rill_emit_ts)(NULL, &v, sizeof v, 5), RILL_EINVAL);
}

static atomic_int null_rec_rc;

/* Tries a NULL record with a length first (kept), then emits the record. */
static int map_null_first(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    atomic_store(&null_rec_rc, rill_emit(ctx, NULL, len));
    return rill_emit(ctx, rec, len);
}

Test(emit_args, null_record_with_a_length_is_einval_in_a_chain)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 10, gen_index, NULL);
    s = rill_map(s, "nulls", map_null_first, NULL);
    rill_sink(s, "counter", total_sink, &t);
    run_ok(env);
    cr_assert_eq(atomic_load(&null_rec_rc), RILL_EINVAL);
    cr_assert_eq(atomic_load(&t.count), 10);
    cr_assert_eq(atomic_load(&t.sum), 45);
    rill_env_free(env);
}

/* Emits index with timestamp 1000 + index. */
static int gen_stamped(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    return rill_emit_ts(ctx, &index, sizeof index, 1000 + (int64_t)index);
}

/* Passes the record on with its timestamp doubled, through the library
 * function (not the inline one) for odd records. */
static int map_restamp(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int64_t ts = rill_ctx_timestamp(ctx) * 2;
    if (u64_of(rec) % 2)
        return (rill_emit_ts)(ctx, rec, len, ts);
    return rill_emit_ts(ctx, rec, len, ts);
}

static atomic_int bad_stamps;

static int sink_check_stamp(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    if (rill_ctx_timestamp(ctx) != 2 * (1000 + (int64_t)u64_of(rec)))
        atomic_fetch_add(&bad_stamps, 1);
    return total_sink(ctx, rec, len, ud);
}

Test(emit_args, timestamps_follow_the_chain)
{
    sum_total t = {0, 0};
    atomic_store(&bad_stamps, 0);
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 5000, gen_stamped, NULL);
    s = rill_map(s, "restamp", map_restamp, NULL);
    s = rill_filter(s, "all", keep_all, NULL);
    rill_sink(s, "check", sink_check_stamp, &t);
    run_ok(env);
    cr_assert_eq(atomic_load(&t.count), 5000);
    cr_assert_eq(atomic_load(&bad_stamps), 0);
    rill_env_free(env);
}

/* The library function, called by address, gives the same records. */
static int (*volatile library_emit)(rill_ctx *, const void *, size_t) = rill_emit;

static int map_by_address(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    uint64_t v = u64_of(rec) * 3;
    (void)len;
    return library_emit(ctx, &v, sizeof v);
}

Test(emit_args, library_function_by_address_gives_the_same_records)
{
    sum_total t = {0, 0};
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 3000, gen_index, NULL);
    s = rill_map(s, "triple", map_by_address, NULL);
    rill_sink(s, "counter", total_sink, &t);
    run_ok(env);
    cr_assert_eq(atomic_load(&t.count), 3000);
    cr_assert_eq(atomic_load(&t.sum), 3ull * 2999 * 3000 / 2);
    rill_env_free(env);
}
