/* ctx_test.c - what callbacks get from their rill_ctx: subtask index,
 * parallelism, operator name, the per-subtask local pointer with the
 * lifecycle hooks, timestamps, rill_ctx_set_error and rill_emit's result
 * when the job stops.
 *
 * Callbacks only record what they see, under a mutex or in atomics; every
 * assertion runs on the test's thread.
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

#define TEST_NAME "ctx"
#include "common.h"

/* ---- what one operator saw ---------------------------------------------- */

typedef struct seen {
    pthread_mutex_t mu;
    unsigned subtasks; /* bit i: subtask i called */
    int par;           /* parallelism seen; -1 if it varied */
    int calls;
    int bad_sub;
    char name[64]; /* operator name seen; "?" if it varied */
} seen;

static void seen_init(seen *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

static void seen_note(seen *s, rill_ctx *ctx)
{
    int k = rill_ctx_subtask(ctx);
    int p = rill_ctx_parallelism(ctx);
    const char *name = rill_ctx_operator_name(ctx);
    pthread_mutex_lock(&s->mu);
    if (k < 0 || k >= MAXSUB || k >= p)
        s->bad_sub++;
    else
        s->subtasks |= 1u << k;
    if (s->calls == 0) {
        s->par = p;
        snprintf(s->name, sizeof s->name, "%s", name ? name : "(null)");
    } else {
        if (s->par != p)
            s->par = -1;
        if (!name || strcmp(s->name, name) != 0)
            strcpy(s->name, "?");
    }
    s->calls++;
    pthread_mutex_unlock(&s->mu);
}

static void expect_seen(const seen *s, int p, const char *name)
{
    cr_assert_gt(s->calls, 0, "%s never called", name);
    cr_assert_eq(s->bad_sub, 0, "%s: bad subtask index", name);
    cr_assert_eq(s->par, p, "%s: parallelism %d, want %d", name, s->par, p);
    cr_assert_eq(s->subtasks, (1u << p) - 1, "%s: subtasks seen 0x%x", name, s->subtasks);
    cr_assert_str_eq(s->name, name);
}

/* ---- callbacks that note their ctx -------------------------------------- */

static int note_gen(rill_ctx *ctx, uint64_t index, void *ud)
{
    seen_note(ud, ctx);
    return rill_emit(ctx, &index, sizeof index);
}

static int note_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    seen_note(ud, ctx);
    return rill_emit(ctx, rec, len);
}

static int note_filter(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    seen_note(ud, ctx);
    return 1;
}

static int note_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    seen_note(ud, ctx);
    return 0;
}

typedef struct src_ud {
    seen s;
    int left[MAXSUB]; /* records still to emit, per subtask */
} src_ud;

static int note_source(rill_ctx *ctx, void *ud)
{
    src_ud *u = ud;
    seen_note(&u->s, ctx);
    int k = rill_ctx_subtask(ctx);
    if (k < 0 || k >= MAXSUB || u->left[k] == 0)
        return RILL_SOURCE_END;
    u->left[k]--;
    int v = k;
    int rc = rill_emit(ctx, &v, sizeof v);
    return rc ? rc : RILL_SOURCE_MORE;
}

Test(ctx, subtask_parallelism_and_name_in_a_chain)
{
    rill_env *env = new_env(3);
    seen g, m, f, fm, k;
    seen_init(&g);
    seen_init(&m);
    seen_init(&f);
    seen_init(&fm);
    seen_init(&k);
    rill_stream *s = rill_generator(env, "numbers", 300, note_gen, &g);
    s = rill_map(s, "ident", note_map, &m);
    s = rill_filter(s, "keep", note_filter, &f);
    s = rill_flat_map(s, "spread", note_map, &fm);
    cr_assert_not_null(rill_sink(s, "end", note_sink, &k));
    run_ok(env);
    expect_seen(&g, 3, "numbers");
    expect_seen(&m, 3, "ident");
    expect_seen(&f, 3, "keep");
    expect_seen(&fm, 3, "spread");
    expect_seen(&k, 3, "end");
    cr_assert_eq(g.calls, 300);
    cr_assert_eq(k.calls, 300);
    rill_env_free(env);
}

Test(ctx, subtask_and_parallelism_differ_per_operator)
{
    rill_env *env = new_env(1);
    src_ud u;
    memset(&u, 0, sizeof u);
    seen_init(&u.s);
    for (int i = 0; i < MAXSUB; i++)
        u.left[i] = 20;
    seen m, k;
    seen_init(&m);
    seen_init(&k);
    rill_stream *s = rill_stream_set_parallelism(rill_source(env, "src", note_source, &u), 2);
    s = rill_stream_set_parallelism(rill_map(rill_rebalance(s), "wide", note_map, &m), 4);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(rill_rebalance(s), "narrow", note_sink, &k), 1));
    run_ok(env);
    expect_seen(&u.s, 2, "src");
    expect_seen(&m, 4, "wide");
    expect_seen(&k, 1, "narrow");
    cr_assert_eq(m.calls, 40);
    cr_assert_eq(k.calls, 40);
    rill_env_free(env);
}

Test(ctx, user_source_subtasks)
{
    rill_env *env = new_env(1);
    src_ud u;
    memset(&u, 0, sizeof u);
    seen_init(&u.s);
    for (int i = 0; i < MAXSUB; i++)
        u.left[i] = 3;
    seen k;
    seen_init(&k);
    rill_stream *s = rill_stream_set_parallelism(rill_source(env, "src5", note_source, &u), 5);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(s, "out5", note_sink, &k), 5));
    run_ok(env);
    expect_seen(&u.s, 5, "src5");
    expect_seen(&k, 5, "out5");
    cr_assert_eq(k.calls, 15);
    rill_env_free(env);
}

/* ---- local pointer and lifecycle ---------------------------------------- */

typedef struct local_rec {
    int subtask;
    int records;
    uint32_t magic;
} local_rec;

#define LOCAL_MAGIC 0x10ca1u

typedef struct life {
    pthread_mutex_t mu;
    int opens[MAXSUB];
    int closes[MAXSUB];
    int records[MAXSUB];         /* counted through the local pointer, reported at close */
    int processed[MAXSUB];       /* counted by process directly */
    int out_of_order;            /* process before open or after close */
    int bad_local;               /* local missing or of another subtask */
    int local_before_open;       /* local not NULL when open ran */
    int wrong_ud;                /* a hook got other user_data */
    int fail_open_on;            /* subtask whose open fails (-1: none) */
    int fail_record;             /* process fails on this value (-1: never) */
    int close_result;            /* what close returns */
    int open_ok[MAXSUB];
} life;

static life *life_new(void)
{
    life *l = calloc(1, sizeof *l);
    cr_assert_not_null(l);
    pthread_mutex_init(&l->mu, NULL);
    l->fail_open_on = -1;
    l->fail_record = -1;
    return l;
}

static int life_open(rill_ctx *ctx, void *ud)
{
    life *l = ud;
    int k = rill_ctx_subtask(ctx);
    pthread_mutex_lock(&l->mu);
    if (rill_ctx_local(ctx) != NULL)
        l->local_before_open++;
    if (k >= 0 && k < MAXSUB)
        l->opens[k]++;
    pthread_mutex_unlock(&l->mu);
    if (k == l->fail_open_on) {
        rill_ctx_set_error(ctx, "open refused on subtask %d", k);
        return -4;
    }
    local_rec *r = malloc(sizeof *r);
    if (!r)
        return -1;
    r->subtask = k;
    r->records = 0;
    r->magic = LOCAL_MAGIC;
    rill_ctx_set_local(ctx, r);
    pthread_mutex_lock(&l->mu);
    if (k >= 0 && k < MAXSUB)
        l->open_ok[k] = 1;
    pthread_mutex_unlock(&l->mu);
    return 0;
}

static int life_close(rill_ctx *ctx, void *ud)
{
    life *l = ud;
    int k = rill_ctx_subtask(ctx);
    local_rec *r = rill_ctx_local(ctx);
    pthread_mutex_lock(&l->mu);
    if (k >= 0 && k < MAXSUB) {
        l->closes[k]++;
        if (!r || r->magic != LOCAL_MAGIC || r->subtask != k)
            l->bad_local++;
        else
            l->records[k] = r->records;
    }
    pthread_mutex_unlock(&l->mu);
    if (r)
        r->magic = 0;
    free(r);
    rill_ctx_set_local(ctx, NULL);
    return l->close_result;
}

static int life_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    life *l = ud;
    int k = rill_ctx_subtask(ctx);
    local_rec *r = rill_ctx_local(ctx);
    pthread_mutex_lock(&l->mu);
    if (k < 0 || k >= MAXSUB || l->opens[k] != 1 || l->closes[k] != 0)
        l->out_of_order++;
    else
        l->processed[k]++;
    if (!r || r->magic != LOCAL_MAGIC || r->subtask != k)
        l->bad_local++;
    pthread_mutex_unlock(&l->mu);
    if (r)
        r->records++;
    uint64_t v = 0;
    if (len == sizeof v)
        memcpy(&v, rec, sizeof v);
    if (l->fail_record >= 0 && v == (uint64_t)l->fail_record) {
        rill_ctx_set_error(ctx, "record %llu refused", (unsigned long long)v);
        return -9;
    }
    return rill_emit(ctx, rec, len);
}

static int count_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    atomic_fetch_add((atomic_int *)ud, 1);
    return 0;
}

/* generator(n, p) -> map with lifecycle (p) -> sink (1) */
static rill_env *life_graph(life *l, int p, uint64_t n, atomic_int *sunk, int chained)
{
    rill_env *env = new_env(p);
    rill_stream *s = rill_generator(env, "gen", n, gen_index, NULL);
    if (!chained)
        s = rill_rebalance(s);
    s = rill_stream_set_lifecycle(rill_map(s, "tracked", life_map, l), life_open, life_close);
    cr_assert_not_null(s);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(rill_rebalance(s), "count", count_sink, sunk), 1));
    return env;
}

Test(ctx, local_is_null_until_set)
{
    rill_env *env = new_env(2);
    life *l = life_new();
    atomic_int sunk = 0;
    /* Open hook only checks local (it must be NULL) and sets it. */
    rill_stream *s = rill_generator(env, "gen", 50, gen_index, NULL);
    s = rill_stream_set_lifecycle(rill_map(s, "tracked", life_map, l), life_open, life_close);
    cr_assert_not_null(rill_sink(s, "count", count_sink, &sunk));
    run_ok(env);
    cr_assert_eq(l->local_before_open, 0);
    cr_assert_eq(l->bad_local, 0);
    cr_assert_eq(atomic_load(&sunk), 50);
    free(l);
    rill_env_free(env);
}

static int local_probe_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    /* Without hooks: NULL on the first record of each subtask, then what
     * the first record set. */
    atomic_int *bad = ud;
    intptr_t mark = (intptr_t)rill_ctx_subtask(ctx) + 1;
    void *cur = rill_ctx_local(ctx);
    if (cur == NULL)
        rill_ctx_set_local(ctx, (void *)mark);
    else if (cur != (void *)mark)
        atomic_fetch_add(bad, 1);
    if (rill_ctx_local(ctx) != (void *)mark)
        atomic_fetch_add(bad, 1);
    return rill_emit(ctx, rec, len);
}

Test(ctx, local_set_in_a_callback_persists_per_subtask)
{
    rill_env *env = new_env(3);
    atomic_int bad = 0, sunk = 0;
    rill_stream *s = rill_generator(env, "gen", 90, gen_index, NULL);
    s = rill_map(s, "probe", local_probe_map, &bad);
    cr_assert_not_null(rill_sink(s, "count", count_sink, &sunk));
    run_ok(env);
    cr_assert_eq(atomic_load(&bad), 0);
    cr_assert_eq(atomic_load(&sunk), 90);
    rill_env_free(env);
}

static void check_lifecycle_run(int p, int chained)
{
    life *l = life_new();
    atomic_int sunk = 0;
    rill_env *env = life_graph(l, p, 600, &sunk, chained);
    run_ok(env);
    int total = 0;
    for (int i = 0; i < p; i++) {
        cr_assert_eq(l->opens[i], 1, "subtask %d opened %d times", i, l->opens[i]);
        cr_assert_eq(l->closes[i], 1, "subtask %d closed %d times", i, l->closes[i]);
        cr_assert_eq(l->records[i], l->processed[i], "subtask %d: local counted %d of %d", i,
                     l->records[i], l->processed[i]);
        total += l->processed[i];
    }
    for (int i = p; i < MAXSUB; i++)
        cr_assert_eq(l->opens[i] + l->closes[i], 0);
    cr_assert_eq(total, 600);
    cr_assert_eq(l->out_of_order, 0, "a record outside open..close");
    cr_assert_eq(l->bad_local, 0);
    cr_assert_eq(l->local_before_open, 0);
    cr_assert_eq(atomic_load(&sunk), 600);
    free(l);
    rill_env_free(env);
}

Test(lifecycle, open_and_close_once_per_chained_subtask)
{
    check_lifecycle_run(3, 1);
}

Test(lifecycle, open_and_close_once_per_unchained_subtask)
{
    check_lifecycle_run(3, 0);
}

Test(lifecycle, open_and_close_at_parallelism_one)
{
    check_lifecycle_run(1, 1);
}

typedef struct hook_count {
    atomic_int opens, closes, wrong_ud;
    void *expect_ud;
} hook_count;

static int hc_open(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    hook_count *h = ud;
    atomic_fetch_add(&h->opens, 1);
    if (ud != h->expect_ud)
        atomic_fetch_add(&h->wrong_ud, 1);
    return 0;
}

static int hc_close(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    hook_count *h = ud;
    atomic_fetch_add(&h->closes, 1);
    return 0;
}

static int hc_gen(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    return rill_emit(ctx, &index, sizeof index);
}

static int hc_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return 0;
}

Test(lifecycle, hooks_on_sources_and_sinks_get_their_user_data)
{
    rill_env *env = new_env(2);
    hook_count hs = {0, 0, 0, NULL}, hk = {0, 0, 0, NULL};
    hs.expect_ud = &hs;
    hk.expect_ud = &hk;
    rill_stream *s = rill_stream_set_lifecycle(rill_generator(env, "gen", 10, hc_gen, &hs), hc_open, hc_close);
    s = rill_stream_set_parallelism(s, 2);
    rill_stream *k = rill_stream_set_lifecycle(rill_sink(rill_rebalance(s), "sink", hc_sink, &hk), hc_open, hc_close);
    cr_assert_not_null(rill_stream_set_parallelism(k, 3));
    run_ok(env);
    cr_assert_eq(atomic_load(&hs.opens), 2);
    cr_assert_eq(atomic_load(&hs.closes), 2);
    cr_assert_eq(atomic_load(&hk.opens), 3);
    cr_assert_eq(atomic_load(&hk.closes), 3);
    cr_assert_eq(atomic_load(&hs.wrong_ud) + atomic_load(&hk.wrong_ud), 0);
    rill_env_free(env);
}

Test(lifecycle, either_hook_may_be_null)
{
    rill_env *env = new_env(2);
    hook_count a = {0, 0, 0, NULL}, b = {0, 0, 0, NULL};
    a.expect_ud = &a;
    b.expect_ud = &b;
    rill_stream *s = rill_stream_set_lifecycle(rill_generator(env, "gen", 10, hc_gen, &a), hc_open, NULL);
    rill_stream *k = rill_stream_set_lifecycle(rill_sink(s, "sink", hc_sink, &b), NULL, hc_close);
    cr_assert_not_null(k);
    run_ok(env);
    cr_assert_eq(atomic_load(&a.opens), 2);
    cr_assert_eq(atomic_load(&a.closes), 0);
    cr_assert_eq(atomic_load(&b.opens), 0);
    cr_assert_eq(atomic_load(&b.closes), 2);
    rill_env_free(env);
}

Test(lifecycle, close_runs_when_the_job_fails)
{
    life *l = life_new();
    l->fail_record = 77;
    atomic_int sunk = 0;
    rill_env *env = life_graph(l, 3, 600, &sunk, 1);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_str_eq(rill_job_failed_operator(job), "tracked");
    rill_job_free(job);
    for (int i = 0; i < 3; i++) {
        cr_assert_leq(l->opens[i], 1);
        cr_assert_eq(l->closes[i], l->open_ok[i], "subtask %d: opened %d, closed %d", i,
                     l->open_ok[i], l->closes[i]);
    }
    /* The subtask that got record 77 had opened. */
    cr_assert_eq(l->open_ok[77 * 3 / 600], 1);
    cr_assert_eq(l->closes[77 * 3 / 600], 1);
    cr_assert_eq(l->bad_local, 0);
    cr_assert_eq(l->out_of_order, 0);
    free(l);
    rill_env_free(env);
}

Test(lifecycle, failed_open_fails_the_job_without_close)
{
    life *l = life_new();
    l->fail_open_on = 1;
    atomic_int sunk = 0;
    rill_env *env = life_graph(l, 3, 600, &sunk, 1);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "tracked");
    assert_has(rill_job_errmsg(job), "tracked");
    assert_has(rill_job_errmsg(job), "open refused on subtask 1");
    rill_job_free(job);
    cr_assert_eq(l->opens[1], 1);
    cr_assert_eq(l->open_ok[1], 0);
    cr_assert_eq(l->closes[1], 0, "close ran although open failed");
    cr_assert_eq(l->processed[1], 0, "a record reached a subtask whose open failed");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(l->closes[i], l->open_ok[i], "subtask %d", i);
    free(l);
    rill_env_free(env);
}

Test(lifecycle, close_result_fails_an_otherwise_successful_job)
{
    life *l = life_new();
    l->close_result = -6;
    atomic_int sunk = 0;
    rill_env *env = life_graph(l, 2, 100, &sunk, 1);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "tracked");
    assert_has(rill_job_errmsg(job), "tracked");
    assert_has(rill_job_errmsg(job), "-6");
    rill_job_free(job);
    for (int i = 0; i < 2; i++)
        cr_assert_eq(l->closes[i], 1);
    free(l);
    rill_env_free(env);
}

Test(lifecycle, close_result_does_not_replace_an_earlier_failure)
{
    life *l = life_new();
    l->close_result = -6;
    l->fail_record = 5;
    atomic_int sunk = 0;
    rill_env *env = life_graph(l, 1, 100, &sunk, 1);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EUSER);
    assert_has(rill_env_errmsg(env), "record 5 refused");
    assert_has(rill_env_errmsg(env), "-9");
    cr_assert_eq(l->closes[0], 1);
    free(l);
    rill_env_free(env);
}

/* An unbounded generator, canceled: close still runs once per subtask. */
Test(lifecycle, close_runs_when_the_job_is_canceled)
{
    life *l = life_new();
    atomic_int sunk = 0;
    rill_env *env = life_graph(l, 2, RILL_UNBOUNDED, &sunk, 1);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    while (atomic_load(&sunk) < 1000)
        sleep_ms(1);
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    rill_job_free(job);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(l->opens[i], 1);
        cr_assert_eq(l->closes[i], 1);
    }
    cr_assert_eq(l->bad_local, 0);
    cr_assert_eq(l->out_of_order, 0);
    free(l);
    rill_env_free(env);
}

/* ---- timestamps ---------------------------------------------------------- */

typedef struct ts_log {
    pthread_mutex_t mu;
    int64_t ts[MAXSUB][64];
    int vals[MAXSUB][64];
    int n[MAXSUB];
    int mismatch; /* ctx timestamp inside a map differed from the record's */
} ts_log;

static ts_log *ts_log_new(void)
{
    ts_log *t = calloc(1, sizeof *t);
    cr_assert_not_null(t);
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

static int ts_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    ts_log *t = ud;
    int k = rill_ctx_subtask(ctx), v = -1;
    if (len == sizeof v)
        memcpy(&v, rec, sizeof v);
    pthread_mutex_lock(&t->mu);
    if (k >= 0 && k < MAXSUB && t->n[k] < 64) {
        t->ts[k][t->n[k]] = rill_ctx_timestamp(ctx);
        t->vals[k][t->n[k]] = v;
        t->n[k]++;
    }
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static const int64_t rec_ts[6] = {5, 10, -3, 0, RILL_TS_MAX, 1700000000000};

/* Records {i} with timestamps rec_ts[i]. */
static rill_stream *ts_records(rill_env *env)
{
    static int vals[6] = {0, 1, 2, 3, 4, 5};
    rill_record recs[6];
    for (int i = 0; i < 6; i++) {
        recs[i].data = &vals[i];
        recs[i].len = sizeof vals[i];
        recs[i].ts = rec_ts[i];
    }
    return rill_stream_set_parallelism(rill_from_records(env, "timed", recs, 6), 1);
}

/* Map that emits with rill_emit (inherits) and checks rill_ctx_timestamp
 * against the record's expected ts (via its value). */
static int ts_map_inherit(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    ts_log *t = ud;
    int v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    if (v < 0 || v >= 6 || rill_ctx_timestamp(ctx) != rec_ts[v]) {
        pthread_mutex_lock(&t->mu);
        t->mismatch++;
        pthread_mutex_unlock(&t->mu);
    }
    return rill_emit(ctx, rec, len);
}

static int ts_flat_twice(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int rc = rill_emit(ctx, rec, len);
    return rc ? rc : rill_emit(ctx, rec, len);
}

static void expect_ts_in_order(const ts_log *t, int sub, int copies)
{
    cr_assert_eq(t->n[sub], 6 * copies);
    for (int i = 0; i < 6 * copies; i++) {
        int v = i / copies;
        cr_assert_eq(t->vals[sub][i], v);
        cr_assert_eq(t->ts[sub][i], rec_ts[v], "record %d: ts %lld, want %lld", v,
                     (long long)t->ts[sub][i], (long long)rec_ts[v]);
    }
}

Test(timestamp, from_records_timestamps_are_inherited_by_emit)
{
    rill_env *env = new_env(1);
    ts_log *t = ts_log_new();
    rill_stream *s = rill_map(ts_records(env), "inherit", ts_map_inherit, t);
    s = rill_flat_map(s, "twice", ts_flat_twice, NULL);
    cr_assert_not_null(rill_sink(s, "out", ts_sink, t));
    run_ok(env);
    cr_assert_eq(t->mismatch, 0);
    expect_ts_in_order(t, 0, 2);
    free(t);
    rill_env_free(env);
}

Test(timestamp, timestamps_cross_a_network_edge)
{
    rill_env *env = new_env(1);
    ts_log *t = ts_log_new();
    rill_stream *s = rill_map(rill_rebalance(ts_records(env)), "inherit", ts_map_inherit, t);
    s = rill_stream_set_parallelism(s, 2);
    s = rill_stream_set_parallelism(rill_sink(rill_global(s), "out", ts_sink, t), 1);
    cr_assert_not_null(s);
    run_ok(env);
    cr_assert_eq(t->mismatch, 0);
    cr_assert_eq(t->n[0], 6);
    int got[6] = {0};
    for (int i = 0; i < 6; i++) {
        int v = t->vals[0][i];
        cr_assert(v >= 0 && v < 6);
        got[v]++;
        cr_assert_eq(t->ts[0][i], rec_ts[v]);
    }
    for (int v = 0; v < 6; v++)
        cr_assert_eq(got[v], 1);
    free(t);
    rill_env_free(env);
}

/* rill_emit_ts sets a new timestamp; later rill_emit calls inherit it. */
static int ts_map_shift(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int v;
    memcpy(&v, rec, sizeof v);
    return rill_emit_ts(ctx, rec, len, 1000 * (int64_t)v + 7);
}

Test(timestamp, emit_ts_sets_the_timestamp)
{
    rill_env *env = new_env(1);
    ts_log *t = ts_log_new();
    rill_stream *s = rill_map(ts_records(env), "shift", ts_map_shift, NULL);
    s = rill_flat_map(s, "twice", ts_flat_twice, NULL);
    cr_assert_not_null(rill_sink(s, "out", ts_sink, t));
    run_ok(env);
    cr_assert_eq(t->n[0], 12);
    for (int i = 0; i < 12; i++) {
        int v = i / 2;
        cr_assert_eq(t->vals[0][i], v);
        cr_assert_eq(t->ts[0][i], 1000 * (int64_t)v + 7);
    }
    free(t);
    rill_env_free(env);
}

static int ts_map_extremes(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int v;
    memcpy(&v, rec, sizeof v);
    return rill_emit_ts(ctx, rec, len, v % 2 ? RILL_TS_MAX : RILL_TS_MIN);
}

Test(timestamp, emit_ts_extremes_pass_through)
{
    rill_env *env = new_env(1);
    ts_log *t = ts_log_new();
    rill_stream *s = rill_map(ts_records(env), "extremes", ts_map_extremes, NULL);
    s = rill_rebalance(rill_stream_disable_chaining(s));
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(s, "out", ts_sink, t), 1));
    run_ok(env);
    cr_assert_eq(t->n[0], 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(t->ts[0][i], i % 2 ? RILL_TS_MAX : RILL_TS_MIN);
    free(t);
    rill_env_free(env);
}

static int gen_int_checks_ts(rill_ctx *ctx, uint64_t index, void *ud)
{
    atomic_int *bad = ud;
    if (rill_ctx_timestamp(ctx) != RILL_TS_MIN)
        atomic_fetch_add(bad, 1);
    int v = (int)index;
    return rill_emit(ctx, &v, sizeof v);
}

Test(timestamp, source_records_have_no_timestamp)
{
    rill_env *env = new_env(1);
    ts_log *t = ts_log_new();
    atomic_int bad = 0;
    const int arr[3] = {0, 1, 2};
    rill_stream *a = rill_from_array(env, "arr", arr, sizeof(int), 3);
    rill_stream *g = rill_stream_set_parallelism(rill_generator(env, "gen", 3, gen_int_checks_ts, &bad), 1);
    rill_stream *in[2] = {a, g};
    cr_assert_not_null(rill_sink(rill_union(in, 2), "out", ts_sink, t));
    run_ok(env);
    cr_assert_eq(atomic_load(&bad), 0);
    cr_assert_eq(t->n[0], 6);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(t->ts[0][i], RILL_TS_MIN);
    free(t);
    rill_env_free(env);
}

typedef struct ts_src {
    int next;
    atomic_int bad;
} ts_src;

static int ts_source(rill_ctx *ctx, void *ud)
{
    ts_src *s = ud;
    if (rill_ctx_timestamp(ctx) != RILL_TS_MIN)
        atomic_fetch_add(&s->bad, 1);
    if (s->next == 4)
        return RILL_SOURCE_END;
    int v = s->next++;
    int rc = v % 2 ? rill_emit_ts(ctx, &v, sizeof v, 100 * (int64_t)(v + 1))
                   : rill_emit(ctx, &v, sizeof v);
    return rc ? rc : RILL_SOURCE_MORE;
}

Test(timestamp, user_source_emit_and_emit_ts)
{
    rill_env *env = new_env(1);
    ts_log *t = ts_log_new();
    ts_src st = {0, 0};
    rill_stream *s = rill_stream_set_parallelism(rill_source(env, "src", ts_source, &st), 1);
    cr_assert_not_null(rill_sink(s, "out", ts_sink, t));
    run_ok(env);
    cr_assert_eq(atomic_load(&st.bad), 0);
    cr_assert_eq(t->n[0], 4);
    const int64_t want[4] = {RILL_TS_MIN, 200, RILL_TS_MIN, 400};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(t->vals[0][i], i);
        cr_assert_eq(t->ts[0][i], want[i], "record %d: ts %lld", i, (long long)t->ts[0][i]);
    }
    free(t);
    rill_env_free(env);
}

/* ---- rill_ctx_set_error -------------------------------------------------- */

static int map_with_error(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    int v;
    memcpy(&v, rec, sizeof v);
    if (v == 42) {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "value %d", v);
        rill_ctx_set_error(ctx, "bad record: %s", tmp);
        memset(tmp, 'X', sizeof tmp - 1); /* the message was copied */
        return -3;
    }
    return rill_emit(ctx, rec, len);
}

static rill_env *error_graph(atomic_int *sunk)
{
    rill_env *env = new_env(1);
    int arr[50];
    for (int i = 0; i < 50; i++)
        arr[i] = i;
    rill_stream *s = rill_from_array(env, NULL, arr, sizeof(int), 50);
    s = rill_map(s, "checker", map_with_error, NULL);
    cr_assert_not_null(rill_sink(s, "out", count_sink, sunk));
    return env;
}

Test(set_error, message_is_in_job_errmsg)
{
    atomic_int sunk = 0;
    rill_env *env = error_graph(&sunk);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "checker");
    const char *m = rill_job_errmsg(job);
    assert_has(m, "bad record: value 42");
    assert_has(m, "checker");
    assert_has(m, "-3");
    rill_job_free(job);
    cr_assert_eq(atomic_load(&sunk), 42);
    rill_env_free(env);
}

Test(set_error, message_is_in_env_errmsg_after_execute)
{
    atomic_int sunk = 0;
    rill_env *env = error_graph(&sunk);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EUSER);
    assert_has(rill_env_errmsg(env), "bad record: value 42");
    assert_has(rill_env_errmsg(env), "checker");
    rill_env_free(env);
}

static int map_error_but_ok(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    rill_ctx_set_error(ctx, "not reported");
    return rill_emit(ctx, rec, len);
}

Test(set_error, message_without_failure_is_not_reported)
{
    rill_env *env = new_env(1);
    atomic_int sunk = 0;
    const int arr[3] = {1, 2, 3};
    rill_stream *s = rill_map(rill_from_array(env, NULL, arr, sizeof(int), 3), "fine", map_error_but_ok, NULL);
    cr_assert_not_null(rill_sink(s, "out", count_sink, &sunk));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    cr_assert_str_eq(rill_job_errmsg(job), "");
    cr_assert_null(rill_job_failed_operator(job));
    rill_job_free(job);
    cr_assert_eq(atomic_load(&sunk), 3);
    rill_env_free(env);
}

static int sink_with_error(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    rill_ctx_set_error(ctx, "disk %s is full", "D7");
    return 1;
}

Test(set_error, sink_message)
{
    rill_env *env = new_env(1);
    const int arr[3] = {1, 2, 3};
    rill_stream *s = rill_from_array(env, NULL, arr, sizeof(int), 3);
    cr_assert_not_null(rill_sink(s, "store", sink_with_error, NULL));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EUSER);
    assert_has(rill_env_errmsg(env), "disk D7 is full");
    assert_has(rill_env_errmsg(env), "store");
    rill_env_free(env);
}

static int source_with_error(rill_ctx *ctx, void *ud)
{
    (void)ud;
    rill_ctx_set_error(ctx, "connection to %s lost", "feed-3");
    return -8;
}

Test(set_error, source_message)
{
    rill_env *env = new_env(1);
    atomic_int sunk = 0;
    rill_stream *s = rill_stream_set_parallelism(rill_source(env, "feed", source_with_error, NULL), 1);
    cr_assert_not_null(rill_sink(s, "out", count_sink, &sunk));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_str_eq(rill_job_failed_operator(job), "feed");
    assert_has(rill_job_errmsg(job), "connection to feed-3 lost");
    assert_has(rill_job_errmsg(job), "-8");
    rill_job_free(job);
    rill_env_free(env);
}

static int filter_with_error(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    rill_ctx_set_error(ctx, "first message");
    rill_ctx_set_error(ctx, "second message %d", 2);
    return 5;
}

Test(set_error, last_message_wins)
{
    rill_env *env = new_env(1);
    atomic_int sunk = 0;
    const int arr[1] = {1};
    rill_stream *s = rill_filter(rill_from_array(env, NULL, arr, sizeof(int), 1), "sieve", filter_with_error, NULL);
    cr_assert_not_null(rill_sink(s, "out", count_sink, &sunk));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EUSER);
    assert_has(rill_env_errmsg(env), "second message 2");
    cr_assert_null(strstr(rill_env_errmsg(env), "first message"), "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

static int map_long_error(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    char big[4001];
    memset(big, 'e', 4000);
    big[4000] = '\0';
    memcpy(big, "BEGIN", 5);
    rill_ctx_set_error(ctx, "%s", big);
    return -1;
}

Test(set_error, long_message_is_kept_safely)
{
    rill_env *env = new_env(1);
    atomic_int sunk = 0;
    const int arr[1] = {1};
    rill_stream *s = rill_map(rill_from_array(env, NULL, arr, sizeof(int), 1), "verbose", map_long_error, NULL);
    cr_assert_not_null(rill_sink(s, "out", count_sink, &sunk));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EUSER);
    assert_has(rill_env_errmsg(env), "BEGINeeeeeeeeee");
    rill_env_free(env);
}

/* ---- rill_emit when the job stops ---------------------------------------- */

typedef struct spin {
    atomic_long emitted;
    atomic_int result; /* first non-zero rill_emit result */
} spin;

/* Emits in one call until rill_emit refuses. */
static int spin_source(rill_ctx *ctx, void *ud)
{
    spin *s = ud;
    uint64_t v = 0;
    for (;;) {
        int rc = rill_emit(ctx, &v, sizeof v);
        if (rc) {
            atomic_store(&s->result, rc);
            return rc;
        }
        v++;
        atomic_fetch_add(&s->emitted, 1);
    }
}

static int drop(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return 0;
}

static void check_cancel(int chained)
{
    rill_env *env = new_env(1);
    spin s = {0, 0};
    rill_stream *src = rill_source(env, "spinner", spin_source, &s);
    if (!chained)
        src = rill_rebalance(rill_stream_disable_chaining(src));
    cr_assert_not_null(rill_sink(src, "drop", drop, NULL));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    while (atomic_load(&s.emitted) < 10000)
        sleep_ms(1);
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    rill_job_free(job);
    cr_assert_eq(atomic_load(&s.result), RILL_ECANCELED, "rill_emit gave %s",
                 rill_err_name(atomic_load(&s.result)));
    rill_env_free(env);
}

Test(emit, returns_ecanceled_after_cancel_chained)
{
    check_cancel(1);
}

Test(emit, returns_ecanceled_after_cancel_across_threads)
{
    check_cancel(0);
}

static int fail_at_100(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)ud;
    uint64_t v;
    memcpy(&v, rec, sizeof v);
    (void)len;
    return v == 100 ? -2 : 0;
}

static void check_downstream_failure(int chained)
{
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_set_buffer_timeout(env, 0), RILL_OK);
    spin s = {0, 0};
    rill_stream *src = rill_source(env, "spinner", spin_source, &s);
    if (!chained)
        src = rill_rebalance(rill_stream_disable_chaining(src));
    cr_assert_not_null(rill_sink(src, "picky", fail_at_100, NULL));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_str_eq(rill_job_failed_operator(job), "picky");
    rill_job_free(job);
    cr_assert_eq(atomic_load(&s.result), RILL_ECANCELED, "rill_emit gave %s",
                 rill_err_name(atomic_load(&s.result)));
    rill_env_free(env);
}

Test(emit, returns_ecanceled_after_a_downstream_failure_across_threads)
{
    check_downstream_failure(0);
}

Test(emit, returns_ecanceled_after_a_chained_downstream_failure)
{
    check_downstream_failure(1);
}

/* A sink has no output: rill_emit from it is RILL_EINVAL and the job goes
 * on; the sink still sees every record exactly once. */
typedef struct sink_emit {
    atomic_int calls;
    atomic_int einval;
} sink_emit;

static int emitting_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    sink_emit *se = ud;
    atomic_fetch_add(&se->calls, 1);
    if (rill_emit(ctx, rec, len) == RILL_EINVAL)
        atomic_fetch_add(&se->einval, 1);
    return 0;
}

Test(emit, from_a_sink_is_einval)
{
    rill_env *env = new_env(1);
    sink_emit se = {0, 0};
    rill_stream *g = rill_generator(env, "numbers", 10, gen_index, NULL);
    cr_assert_not_null(rill_sink(g, "emitter", emitting_sink, &se));
    cr_assert_eq(rill_env_execute(env, "sink emit"), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(atomic_load(&se.calls), 10);
    cr_assert_eq(atomic_load(&se.einval), 10);
    rill_env_free(env);
}
