/* sources_test.c - the built-in sources and user sources: what each emits,
 * in which order, on which subtask, with which timestamp.
 *
 * Sinks and callbacks only record what they see, under a mutex; every
 * assertion runs on the test's thread after the job ended.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rill.h"

#define TEST_NAME "sources"
#include "common.h"

#define MAXREC 4096

/* ---- a collecting sink: records per subtask, in arrival order --------- */

typedef struct item {
    char *data;
    size_t len;
    int64_t ts;
} item;

typedef struct items {
    pthread_mutex_t mu;
    item *v[MAXSUB];
    size_t n[MAXSUB];
    int par;     /* parallelism seen by the sink */
    int bad_sub; /* subtask outside 0..MAXSUB-1 */
} items;

static items *items_new(void)
{
    items *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    pthread_mutex_init(&c->mu, NULL);
    for (int i = 0; i < MAXSUB; i++) {
        c->v[i] = calloc(MAXREC, sizeof(item));
        cr_assert_not_null(c->v[i]);
    }
    return c;
}

static void items_free(items *c)
{
    for (int i = 0; i < MAXSUB; i++) {
        for (size_t k = 0; k < c->n[i] && k < MAXREC; k++)
            free(c->v[i][k].data);
        free(c->v[i]);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static size_t items_total(const items *c)
{
    size_t t = 0;
    for (int i = 0; i < MAXSUB; i++)
        t += c->n[i];
    return t;
}

static int collect(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    items *c = ud;
    int s = rill_ctx_subtask(ctx);
    pthread_mutex_lock(&c->mu);
    c->par = rill_ctx_parallelism(ctx);
    if (s < 0 || s >= MAXSUB) {
        c->bad_sub++;
    } else {
        if (c->n[s] < MAXREC) {
            item *it = &c->v[s][c->n[s]];
            it->data = malloc(len ? len : 1);
            if (len)
                memcpy(it->data, rec, len);
            it->len = len;
            it->ts = rill_ctx_timestamp(ctx);
        }
        c->n[s]++;
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static int item_int(const item *it)
{
    int v;
    cr_assert_eq(it->len, sizeof v);
    memcpy(&v, it->data, sizeof v);
    return v;
}

static void expect_item_str(const item *it, const char *want)
{
    size_t n = strlen(want);
    cr_assert_eq(it->len, n, "length %zu, want %zu (\"%s\")", it->len, n, want);
    cr_assert(n == 0 || memcmp(it->data, want, n) == 0, "got \"%.*s\", want \"%s\"",
              (int)it->len, it->data, want);
}

/* ---- files (in the temp dir of common.h) --------------------------------- */

static void write_file(const char *path, const char *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(bytes, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* ---- rill_from_array ---------------------------------------------------- */

Test(from_array, emits_every_record_in_order)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    int arr[6] = {5, -1, 7, 0, 42, 9};
    rill_stream *s = rill_from_array(env, NULL, arr, sizeof(int), 6);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(s, NULL, collect, c), 1));
    run_ok(env);
    cr_assert_eq(c->n[0], 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(item_int(&c->v[0][i]), arr[i]);
        cr_assert_eq(c->v[0][i].ts, RILL_TS_MIN);
    }
    items_free(c);
    rill_env_free(env);
}

Test(from_array, copies_the_array)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    int arr[3] = {1, 2, 3};
    rill_stream *s = rill_from_array(env, NULL, arr, sizeof(int), 3);
    arr[0] = 100;
    arr[1] = 200;
    arr[2] = 300;
    cr_assert_not_null(rill_sink(s, NULL, collect, c));
    run_ok(env);
    cr_assert_eq(c->n[0], 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(item_int(&c->v[0][i]), i + 1);
    items_free(c);
    rill_env_free(env);
}

Test(from_array, fixed_size_records_of_any_size)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    const char arr[] = "abcdefghijkl"; /* 4 records of 3 bytes */
    rill_stream *s = rill_from_array(env, NULL, arr, 3, 4);
    cr_assert_not_null(rill_sink(s, NULL, collect, c));
    run_ok(env);
    cr_assert_eq(c->n[0], 4);
    expect_item_str(&c->v[0][0], "abc");
    expect_item_str(&c->v[0][1], "def");
    expect_item_str(&c->v[0][2], "ghi");
    expect_item_str(&c->v[0][3], "jkl");
    items_free(c);
    rill_env_free(env);
}

Test(from_array, empty_array_gives_no_record)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    rill_stream *s = rill_from_array(env, NULL, NULL, sizeof(int), 0);
    cr_assert_not_null(s);
    cr_assert_not_null(rill_sink(s, NULL, collect, c));
    run_ok(env);
    cr_assert_eq(items_total(c), 0);
    items_free(c);
    rill_env_free(env);
}

/* Default parallelism 1 whatever the env's: forward to an operator of
 * parallelism 1 is valid. */
Test(from_array, default_parallelism_is_one)
{
    rill_env *env = new_env(3);
    items *c = items_new();
    int arr[4] = {1, 2, 3, 4};
    rill_stream *s = rill_forward(rill_from_array(env, NULL, arr, sizeof(int), 4));
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(s, NULL, collect, c), 1));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    run_ok(env);
    cr_assert_eq(c->n[0], 4);
    items_free(c);
    rill_env_free(env);
}

/* At parallelism p, subtask i emits records i, i+p, ... in order; a
 * forward (chained) sink at the same parallelism sees subtask i's records. */
Test(from_array, parallel_subtasks_take_every_pth_record)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    int arr[11];
    for (int i = 0; i < 11; i++)
        arr[i] = 100 + i;
    rill_stream *s = rill_stream_set_parallelism(rill_from_array(env, NULL, arr, sizeof(int), 11), 3);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(rill_forward(s), NULL, collect, c), 3));
    run_ok(env);
    cr_assert_eq(c->bad_sub, 0);
    for (int sub = 0; sub < 3; sub++) {
        size_t want_n = 0;
        for (int i = sub; i < 11; i += 3)
            cr_assert_eq(item_int(&c->v[sub][want_n++]), 100 + i, "subtask %d", sub);
        cr_assert_eq(c->n[sub], want_n, "subtask %d got %zu records", sub, c->n[sub]);
    }
    items_free(c);
    rill_env_free(env);
}

/* ---- rill_from_records -------------------------------------------------- */

Test(from_records, keeps_bytes_lengths_and_timestamps)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    const rill_record recs[5] = {
        {"first", 5, 1000},
        {"", 0, -7},
        {"x", 1, RILL_TS_MIN},
        {"with\0nul", 8, 0},
        {"last one", 8, RILL_TS_MAX},
    };
    rill_stream *s = rill_from_records(env, NULL, recs, 5);
    cr_assert_not_null(rill_sink(s, NULL, collect, c));
    run_ok(env);
    cr_assert_eq(c->n[0], 5);
    for (int i = 0; i < 5; i++) {
        const item *it = &c->v[0][i];
        cr_assert_eq(it->len, recs[i].len, "record %d", i);
        cr_assert(it->len == 0 || memcmp(it->data, recs[i].data, it->len) == 0, "record %d", i);
        cr_assert_eq(it->ts, recs[i].ts, "record %d: ts %lld", i, (long long)it->ts);
    }
    items_free(c);
    rill_env_free(env);
}

Test(from_records, copies_the_records)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    char a[4] = "abc", b[4] = "xyz";
    rill_record recs[2] = {{a, 3, 1}, {b, 3, 2}};
    rill_stream *s = rill_from_records(env, NULL, recs, 2);
    memcpy(a, "AAA", 3);
    memcpy(b, "ZZZ", 3);
    recs[0].ts = 99;
    recs[1].len = 1;
    cr_assert_not_null(rill_sink(s, NULL, collect, c));
    run_ok(env);
    cr_assert_eq(c->n[0], 2);
    expect_item_str(&c->v[0][0], "abc");
    expect_item_str(&c->v[0][1], "xyz");
    cr_assert_eq(c->v[0][0].ts, 1);
    cr_assert_eq(c->v[0][1].ts, 2);
    items_free(c);
    rill_env_free(env);
}

Test(from_records, parallel_subtasks_take_every_pth_record)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    rill_record recs[7];
    char text[7][16];
    for (int i = 0; i < 7; i++) {
        snprintf(text[i], sizeof text[i], "r%d", i);
        recs[i].data = text[i];
        recs[i].len = strlen(text[i]);
        recs[i].ts = 10 * i;
    }
    rill_stream *s = rill_stream_set_parallelism(rill_from_records(env, NULL, recs, 7), 2);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(rill_forward(s), NULL, collect, c), 2));
    run_ok(env);
    for (int sub = 0; sub < 2; sub++) {
        size_t k = 0;
        for (int i = sub; i < 7; i += 2, k++) {
            expect_item_str(&c->v[sub][k], text[i]);
            cr_assert_eq(c->v[sub][k].ts, 10 * i);
        }
        cr_assert_eq(c->n[sub], k);
    }
    items_free(c);
    rill_env_free(env);
}

Test(from_records, default_parallelism_is_one)
{
    rill_env *env = new_env(2);
    items *c = items_new();
    const rill_record recs[1] = {{"a", 1, 3}};
    rill_stream *s = rill_forward(rill_from_records(env, NULL, recs, 1));
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(s, NULL, collect, c), 1));
    run_ok(env);
    cr_assert_eq(c->n[0], 1);
    items_free(c);
    rill_env_free(env);
}

/* ---- rill_generator ----------------------------------------------------- */

typedef struct gen_log {
    pthread_mutex_t mu;
    uint64_t idx[MAXSUB][256];
    size_t n[MAXSUB];
    int par[MAXSUB];
    int bad;
} gen_log;

static int gen_note(rill_ctx *ctx, uint64_t index, void *ud)
{
    gen_log *g = ud;
    int s = rill_ctx_subtask(ctx);
    pthread_mutex_lock(&g->mu);
    if (s < 0 || s >= MAXSUB) {
        g->bad++;
    } else {
        if (g->n[s] < 256)
            g->idx[s][g->n[s]] = index;
        g->n[s]++;
        g->par[s] = rill_ctx_parallelism(ctx);
    }
    pthread_mutex_unlock(&g->mu);
    return rill_emit(ctx, &index, sizeof index);
}

static gen_log *gen_log_new(void)
{
    gen_log *g = calloc(1, sizeof *g);
    cr_assert_not_null(g);
    pthread_mutex_init(&g->mu, NULL);
    return g;
}

/* Run generator(count) at parallelism p (p == 0: leave the default) and
 * check that subtask i saw exactly [count*i/p, count*(i+1)/p) in order. */
static void check_generator(int env_p, int p, uint64_t count)
{
    rill_env *env = new_env(env_p);
    gen_log *g = gen_log_new();
    items *c = items_new();
    rill_stream *s = rill_generator(env, NULL, count, gen_note, g);
    if (p)
        s = rill_stream_set_parallelism(s, p);
    else
        p = env_p;
    s = rill_stream_set_parallelism(rill_sink(rill_rebalance(s), NULL, collect, c), 1);
    cr_assert_not_null(s);
    run_ok(env);
    cr_assert_eq(g->bad, 0);
    for (int i = 0; i < p; i++) {
        uint64_t lo = count * (uint64_t)i / (uint64_t)p;
        uint64_t hi = count * (uint64_t)(i + 1) / (uint64_t)p;
        cr_assert_eq(g->n[i], hi - lo, "subtask %d: %zu indexes, want %llu", i, g->n[i],
                     (unsigned long long)(hi - lo));
        for (uint64_t k = lo; k < hi; k++)
            cr_assert_eq(g->idx[i][k - lo], k, "subtask %d position %llu", i,
                         (unsigned long long)(k - lo));
        if (hi > lo)
            cr_assert_eq(g->par[i], p);
    }
    for (int i = p; i < MAXSUB; i++)
        cr_assert_eq(g->n[i], 0);
    /* Every index reached the sink once. */
    cr_assert_eq(c->n[0], count);
    char *hit = calloc(count ? count : 1, 1);
    for (size_t k = 0; k < c->n[0]; k++) {
        uint64_t v;
        cr_assert_eq(c->v[0][k].len, sizeof v);
        memcpy(&v, c->v[0][k].data, sizeof v);
        cr_assert_lt(v, count);
        cr_assert_eq(hit[v], 0, "index %llu twice", (unsigned long long)v);
        hit[v] = 1;
        cr_assert_eq(c->v[0][k].ts, RILL_TS_MIN);
    }
    free(hit);
    items_free(c);
    free(g);
    rill_env_free(env);
}

Test(generator, parallelism_one_covers_every_index_in_order)
{
    check_generator(2, 1, 100);
}

Test(generator, parallelism_three_splits_into_contiguous_ranges)
{
    check_generator(1, 3, 10);
}

Test(generator, parallelism_three_uneven_split)
{
    check_generator(1, 3, 100);
}

Test(generator, more_subtasks_than_indexes)
{
    check_generator(1, 5, 3);
}

Test(generator, default_parallelism_is_the_env_parallelism)
{
    check_generator(3, 0, 31);
}

Test(generator, count_zero_calls_nothing)
{
    check_generator(2, 2, 0);
}

static int gen_none(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ctx;
    (void)index;
    atomic_int *n = ud;
    atomic_fetch_add(n, 1);
    return 0;
}

static int gen_two(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    int rc = rill_emit(ctx, &index, sizeof index);
    return rc ? rc : rill_emit(ctx, &index, sizeof index);
}

/* A generator function may emit zero or several records per index. */
Test(generator, function_may_emit_any_number_of_records)
{
    rill_env *env = new_env(1);
    atomic_int calls = 0;
    items *c = items_new();
    rill_stream *a = rill_generator(env, "none", 5, gen_none, &calls);
    rill_stream *b = rill_generator(env, "two", 5, gen_two, NULL);
    rill_stream *in[2] = {a, b};
    cr_assert_not_null(rill_sink(rill_union(in, 2), NULL, collect, c));
    run_ok(env);
    cr_assert_eq(atomic_load(&calls), 5);
    cr_assert_eq(c->n[0], 10);
    items_free(c);
    rill_env_free(env);
}

static int gen_fail_at_3(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    if (index == 3)
        return -42;
    return rill_emit(ctx, &index, sizeof index);
}

Test(generator, non_zero_result_fails_the_job)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    rill_stream *s = rill_generator(env, "gen-fails", 10, gen_fail_at_3, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(s, 1));
    cr_assert_not_null(rill_sink(s, NULL, collect, c));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "gen-fails");
    cr_assert(strstr(rill_job_errmsg(job), "gen-fails"), "%s", rill_job_errmsg(job));
    cr_assert(strstr(rill_job_errmsg(job), "-42"), "%s", rill_job_errmsg(job));
    rill_job_free(job);
    /* The records before index 3 went through (chained, in order). */
    cr_assert_eq(c->n[0], 3);
    items_free(c);
    rill_env_free(env);
}

/* ---- rill_source (user source) ------------------------------------------ */

typedef struct src_state {
    int calls[MAXSUB];  /* calls so far, per subtask (each touched by its own subtask) */
    int par[MAXSUB];    /* parallelism seen */
    int sub_ok[MAXSUB]; /* the subtask index seen is the slot's */
    atomic_int after_end;
} src_state;

typedef struct src_rec {
    int sub;
    int seq;
} src_rec;

/* Per subtask: call 0 idle, call 1 emits two records and asks for more,
 * call 2 idle, call 3 emits one record and ends. */
static int scripted_source(rill_ctx *ctx, void *ud)
{
    src_state *st = ud;
    int s = rill_ctx_subtask(ctx);
    if (s < 0 || s >= MAXSUB)
        return -1;
    int call = st->calls[s]++;
    st->par[s] = rill_ctx_parallelism(ctx);
    st->sub_ok[s] = 1;
    src_rec r = {s, 0};
    int rc;
    switch (call) {
    case 0:
    case 2:
        return RILL_SOURCE_IDLE;
    case 1:
        r.seq = 0;
        if ((rc = rill_emit(ctx, &r, sizeof r)))
            return rc;
        r.seq = 1;
        if ((rc = rill_emit(ctx, &r, sizeof r)))
            return rc;
        return RILL_SOURCE_MORE;
    case 3:
        r.seq = 2;
        if ((rc = rill_emit(ctx, &r, sizeof r)))
            return rc;
        return RILL_SOURCE_END;
    default:
        atomic_fetch_add(&st->after_end, 1);
        return RILL_SOURCE_END;
    }
}

static void check_scripted(int p, int set_p)
{
    rill_env *env = new_env(set_p ? 1 : p);
    src_state *st = calloc(1, sizeof *st);
    items *c = items_new();
    rill_stream *s = rill_source(env, NULL, scripted_source, st);
    if (set_p)
        s = rill_stream_set_parallelism(s, p);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(rill_forward(s), NULL, collect, c), p));
    run_ok(env);
    cr_assert_eq(atomic_load(&st->after_end), 0, "called after RILL_SOURCE_END");
    for (int i = 0; i < p; i++) {
        cr_assert_eq(st->calls[i], 4, "subtask %d: %d calls", i, st->calls[i]);
        cr_assert_eq(st->par[i], p);
        cr_assert(st->sub_ok[i]);
        cr_assert_eq(c->n[i], 3, "subtask %d: %zu records", i, c->n[i]);
        for (int k = 0; k < 3; k++) {
            src_rec r;
            cr_assert_eq(c->v[i][k].len, sizeof r);
            memcpy(&r, c->v[i][k].data, sizeof r);
            cr_assert_eq(r.sub, i);
            cr_assert_eq(r.seq, k);
            cr_assert_eq(c->v[i][k].ts, RILL_TS_MIN);
        }
    }
    for (int i = p; i < MAXSUB; i++) {
        cr_assert_eq(st->calls[i], 0);
        cr_assert_eq(c->n[i], 0);
    }
    items_free(c);
    free(st);
    rill_env_free(env);
}

Test(user_source, bounded_source_with_idle_and_end)
{
    check_scripted(1, 1);
}

Test(user_source, each_subtask_runs_the_source_at_parallelism_three)
{
    check_scripted(3, 1);
}

Test(user_source, default_parallelism_is_the_env_parallelism)
{
    check_scripted(2, 0);
}

static int bad_result_source(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    (void)ud;
    return 7;
}

Test(user_source, result_other_than_more_end_idle_fails_the_job)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    rill_stream *s = rill_source(env, "odd-source", bad_result_source, NULL);
    cr_assert_not_null(rill_sink(s, NULL, collect, c));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "odd-source");
    cr_assert(strstr(rill_job_errmsg(job), "odd-source"), "%s", rill_job_errmsg(job));
    cr_assert(strstr(rill_job_errmsg(job), "7"), "%s", rill_job_errmsg(job));
    rill_job_free(job);
    cr_assert_eq(items_total(c), 0);
    items_free(c);
    rill_env_free(env);
}

static int negative_source(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    (void)ud;
    return -1;
}

Test(user_source, negative_result_fails_the_job)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    rill_stream *s = rill_source(env, "neg-source", negative_source, NULL);
    cr_assert_not_null(rill_sink(s, NULL, collect, c));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EUSER);
    cr_assert(strstr(rill_env_errmsg(env), "neg-source"), "%s", rill_env_errmsg(env));
    items_free(c);
    rill_env_free(env);
}

/* ---- rill_file_source ----------------------------------------------------- */

/* Read path with a file source at parallelism p into a forward (chained)
 * sink of the same parallelism. */
static items *read_file(const char *path, int p, int *rc_out)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    rill_stream *s = rill_stream_set_parallelism(rill_file_source(env, NULL, path), p);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(rill_forward(s), NULL, collect, c), p));
    int rc = rill_env_execute(env, NULL);
    if (rc_out)
        *rc_out = rc;
    else
        cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    return c;
}

static void expect_lines(const items *c, int sub, const char *const *want, size_t n)
{
    cr_assert_eq(c->n[sub], n, "subtask %d: %zu lines, want %zu", sub, c->n[sub], n);
    for (size_t i = 0; i < n; i++) {
        expect_item_str(&c->v[sub][i], want[i]);
        cr_assert_eq(c->v[sub][i].ts, RILL_TS_MIN);
    }
}

static void check_whole_file(const char *content, size_t len, const char *const *want, size_t n)
{
    char path[128];
    tmp_path(path, sizeof path, "in.txt");
    write_file(path, content, len);
    items *c = read_file(path, 1, NULL);
    expect_lines(c, 0, want, n);
    items_free(c);
}

Test(file_source, lines_without_their_newline, .init = mk_tmp, .fini = rm_tmp)
{
    const char *want[] = {"alpha", "beta", "gamma"};
    check_whole_file("alpha\nbeta\ngamma\n", 17, want, 3);
}

Test(file_source, crlf_endings_are_removed, .init = mk_tmp, .fini = rm_tmp)
{
    const char *want[] = {"one", "two", "three"};
    check_whole_file("one\r\ntwo\r\nthree\r\n", 17, want, 3);
}

Test(file_source, lone_carriage_return_is_kept, .init = mk_tmp, .fini = rm_tmp)
{
    const char *want[] = {"a\rb", "c\r\r", "\rd"};
    check_whole_file("a\rb\nc\r\r\r\n\rd\n", 12, want, 3);
}

Test(file_source, empty_lines_give_empty_records, .init = mk_tmp, .fini = rm_tmp)
{
    const char *want[] = {"", "x", "", "", "y", ""};
    check_whole_file("\nx\n\n\r\ny\n\n", 9, want, 6);
}

Test(file_source, last_line_without_newline_counts, .init = mk_tmp, .fini = rm_tmp)
{
    const char *want[] = {"first", "last"};
    check_whole_file("first\nlast", 10, want, 2);
}

Test(file_source, last_line_with_crlf_and_no_trailing_text, .init = mk_tmp, .fini = rm_tmp)
{
    const char *want[] = {"a", "b"};
    check_whole_file("a\r\nb\r\n", 6, want, 2);
}

Test(file_source, empty_file_gives_no_record, .init = mk_tmp, .fini = rm_tmp)
{
    check_whole_file("", 0, NULL, 0);
}

Test(file_source, single_newline_is_one_empty_line, .init = mk_tmp, .fini = rm_tmp)
{
    const char *want[] = {""};
    check_whole_file("\n", 1, want, 1);
}

Test(file_source, bytes_are_kept_as_they_are, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "bin.txt");
    const char content[] = {'a', '\0', 'b', '\t', (char)0xff, '\n', '\0', '\n'};
    write_file(path, content, sizeof content);
    items *c = read_file(path, 1, NULL);
    cr_assert_eq(c->n[0], 2);
    cr_assert_eq(c->v[0][0].len, 5);
    cr_assert_eq(memcmp(c->v[0][0].data, content, 5), 0);
    cr_assert_eq(c->v[0][1].len, 1);
    cr_assert_eq(c->v[0][1].data[0], '\0');
    items_free(c);
}

Test(file_source, long_lines, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "long.txt");
    /* Lines longer than any small read buffer: 200000 and 70000 bytes. */
    size_t n1 = 200000, n2 = 70000, total = n1 + 1 + n2 + 1;
    char *content = malloc(total);
    memset(content, 'a', n1);
    content[n1] = '\n';
    memset(content + n1 + 1, 'b', n2);
    content[total - 1] = '\n';
    write_file(path, content, total);
    items *c = read_file(path, 1, NULL);
    cr_assert_eq(c->n[0], 2);
    cr_assert_eq(c->v[0][0].len, n1);
    cr_assert_eq(memcmp(c->v[0][0].data, content, n1), 0);
    cr_assert_eq(c->v[0][1].len, n2);
    cr_assert_eq(memcmp(c->v[0][1].data, content + n1 + 1, n2), 0);
    items_free(c);
    free(content);
}

Test(file_source, many_lines_in_order, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "many.txt");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 3000; i++)
        fprintf(f, "line %d\n", i);
    fclose(f);
    items *c = read_file(path, 1, NULL);
    cr_assert_eq(c->n[0], 3000);
    char want[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(want, sizeof want, "line %d", i);
        expect_item_str(&c->v[0][i], want);
    }
    items_free(c);
}

/* The lines of content with their start offsets, as the documented rule
 * splits them. */
typedef struct line_ref {
    size_t start;
    char text[64];
} line_ref;

static size_t split_lines(const char *content, size_t len, line_ref *out, size_t cap)
{
    size_t n = 0, i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && content[i] != '\n')
            i++;
        size_t l = i - start;
        if (i < len && l > 0 && content[i - 1] == '\r')
            l--;
        cr_assert_lt(n, cap);
        cr_assert_lt(l, sizeof out[n].text);
        out[n].start = start;
        memcpy(out[n].text, content + start, l);
        out[n].text[l] = '\0';
        n++;
        if (i < len)
            i++; /* past '\n' */
    }
    return n;
}

/* At parallelism p, each line is read exactly once, by the subtask whose
 * byte range [size*i/p, size*(i+1)/p) holds the line's first byte, and each
 * subtask reads its lines in file order. */
static void check_split(const char *content, int p)
{
    size_t len = strlen(content);
    char path[128];
    tmp_path(path, sizeof path, "split.txt");
    write_file(path, content, len);
    line_ref lines[64];
    size_t n = split_lines(content, len, lines, 64);
    items *c = read_file(path, p, NULL);
    cr_assert_eq(c->bad_sub, 0);
    cr_assert_eq(items_total(c), n, "%zu lines read, %zu in the file (p=%d, \"%s\")",
                 items_total(c), n, p, content);
    for (int sub = 0; sub < p; sub++) {
        size_t lo = len * (size_t)sub / (size_t)p, hi = len * (size_t)(sub + 1) / (size_t)p;
        const char *want[64];
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (lines[i].start >= lo && lines[i].start < hi)
                want[k++] = lines[i].text;
        cr_assert_eq(c->n[sub], k, "p=%d subtask %d read %zu lines, want %zu (\"%s\")", p, sub,
                     c->n[sub], k, content);
        for (size_t i = 0; i < k; i++)
            expect_item_str(&c->v[sub][i], want[i]);
    }
    items_free(c);
}

Test(file_source, parallel_split_by_first_byte, .init = mk_tmp, .fini = rm_tmp)
{
    check_split("alpha\nbeta\ngamma\ndelta\nepsilon\nzeta\neta\ntheta\n", 3);
}

Test(file_source, parallel_split_boundary_at_line_start, .init = mk_tmp, .fini = rm_tmp)
{
    /* size 12, boundaries at 4 and 8: each a line start. */
    check_split("abc\ndef\nghi\n", 3);
}

Test(file_source, parallel_split_boundary_on_newline, .init = mk_tmp, .fini = rm_tmp)
{
    /* size 8, boundaries at 2 and 5: both '\n' bytes. */
    check_split("ab\ncd\nef", 3);
}

Test(file_source, parallel_split_long_line_spanning_ranges, .init = mk_tmp, .fini = rm_tmp)
{
    /* The middle line covers the whole of subtask 1's range. */
    check_split("x\nthis line is much longer than a third of the file\ny\n", 3);
}

Test(file_source, parallel_split_with_crlf_and_empty_lines, .init = mk_tmp, .fini = rm_tmp)
{
    check_split("a\r\n\r\n\nb\r\n\n\nccc\r\nlast", 3);
}

Test(file_source, parallel_split_more_subtasks_than_lines, .init = mk_tmp, .fini = rm_tmp)
{
    check_split("only\n", 3);
}

Test(file_source, parallel_split_of_an_empty_file, .init = mk_tmp, .fini = rm_tmp)
{
    check_split("", 3);
}

Test(file_source, parallel_split_every_size, .init = mk_tmp, .fini = rm_tmp)
{
    /* Every prefix of a mixed text, so boundaries fall on every kind of
     * byte: inside lines, on '\r', on '\n', on line starts. */
    const char *text = "a\nbb\r\nccc\n\ndddd\r\n\r\ne\nff\n";
    char buf[64];
    size_t len = strlen(text);
    for (size_t n = 0; n <= len; n++) {
        memcpy(buf, text, n);
        buf[n] = '\0';
        check_split(buf, 3);
        check_split(buf, 2);
    }
}

Test(file_source, default_parallelism_is_one, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "p1.txt");
    write_file(path, "a\nb\n", 4);
    rill_env *env = new_env(3);
    items *c = items_new();
    rill_stream *s = rill_forward(rill_file_source(env, NULL, path));
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(s, NULL, collect, c), 1));
    run_ok(env);
    cr_assert_eq(c->n[0], 2);
    items_free(c);
    rill_env_free(env);
}

Test(file_source, missing_file_is_eio_naming_the_path, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "does-not-exist.txt");
    rill_env *env = new_env(1);
    items *c = items_new();
    rill_stream *s = rill_file_source(env, "reader", path);
    cr_assert_not_null(rill_sink(s, NULL, collect, c));

    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_job_wait(job), RILL_EIO);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert(strstr(rill_job_errmsg(job), path), "%s", rill_job_errmsg(job));
    cr_assert_str_eq(rill_job_failed_operator(job), "reader");
    rill_job_free(job);

    cr_assert_eq(rill_env_execute(env, NULL), RILL_EIO);
    cr_assert(strstr(rill_env_errmsg(env), path), "%s", rill_env_errmsg(env));
    cr_assert_eq(items_total(c), 0);
    items_free(c);
    rill_env_free(env);
}

/* A directory cannot be read as lines: RILL_EIO at open, naming it. */
Test(file_source, directory_is_eio_at_open, .init = mk_tmp, .fini = rm_tmp)
{
    rill_env *env = new_env(1);
    items *c = items_new();
    cr_assert_not_null(rill_sink(rill_file_source(env, "reader", tmpdir), NULL, collect, c));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EIO);
    const char *msg = rill_env_errmsg(env);
    assert_has(msg, "cannot open");
    assert_has(msg, tmpdir);
    assert_has(msg, strerror(EISDIR));
    cr_assert_eq(items_total(c), 0);
    items_free(c);
    rill_env_free(env);
}

Test(file_source, missing_file_at_parallelism_three_is_eio, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "nope.txt");
    int rc = 0;
    items *c = read_file(path, 3, &rc);
    cr_assert_eq(rc, RILL_EIO);
    cr_assert_eq(items_total(c), 0);
    items_free(c);
}

Test(file_source, path_is_copied, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "copied.txt");
    write_file(path, "kept\n", 5);
    rill_env *env = new_env(1);
    items *c = items_new();
    char buf[128];
    strcpy(buf, path);
    rill_stream *s = rill_file_source(env, NULL, buf);
    strcpy(buf, "/nonexistent/elsewhere");
    cr_assert_not_null(rill_sink(s, NULL, collect, c));
    run_ok(env);
    cr_assert_eq(c->n[0], 1);
    expect_item_str(&c->v[0][0], "kept");
    items_free(c);
    rill_env_free(env);
}

/* "-" reads standard input, on subtask 0 only. */
Test(file_source, dash_reads_standard_input_on_subtask_zero, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "stdin.txt");
    write_file(path, "in1\nin2\r\n\nin4", 13);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    cr_assert_neq(dup2(fileno(f), 0), -1);
    fclose(f);
    clearerr(stdin);

    rill_env *env = new_env(1);
    items *c = items_new();
    rill_stream *s = rill_stream_set_parallelism(rill_file_source(env, NULL, "-"), 2);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(rill_forward(s), NULL, collect, c), 2));
    run_ok(env);
    const char *want[] = {"in1", "in2", "", "in4"};
    expect_lines(c, 0, want, 4);
    cr_assert_eq(c->n[1], 0);
    items_free(c);
    rill_env_free(env);
}
