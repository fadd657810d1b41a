/* runtime_test.c - chaining, parallelism, record order, end of input through
 * multi-stage graphs, buffer settings, record sizes and fan-out.
 *
 * Callbacks only record what they see, under a mutex or in atomics; every
 * assertion runs on the test's thread after the job ended.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

#define TEST_NAME "runtime"
#include "common.h"

/* ---- where callbacks run ------------------------------------------------ */

/* What one operator saw: the thread of each subtask, the subtasks and the
 * parallelism reported by its ctx. */
typedef struct seen {
    pthread_mutex_t mu;
    pthread_t thr[MAXSUB];
    int have[MAXSUB];
    uint64_t calls[MAXSUB];
    int moved;   /* a subtask's callbacks ran on two threads */
    int bad_sub; /* subtask index outside 0..MAXSUB-1 */
    int par;     /* parallelism from rill_ctx_parallelism (-1: inconsistent) */
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
    pthread_t me = pthread_self();
    pthread_mutex_lock(&s->mu);
    if (k < 0 || k >= MAXSUB) {
        s->bad_sub++;
    } else {
        if (!s->have[k]) {
            s->have[k] = 1;
            s->thr[k] = me;
        } else if (!pthread_equal(s->thr[k], me)) {
            s->moved++;
        }
        s->calls[k]++;
    }
    if (s->par == 0)
        s->par = p;
    else if (s->par != p)
        s->par = -1;
    pthread_mutex_unlock(&s->mu);
}

/* The subtasks seen are exactly 0..p-1, each on one thread. */
static void seen_check(const seen *s, int p)
{
    cr_assert_eq(s->bad_sub, 0);
    cr_assert_eq(s->moved, 0, "a subtask ran on two threads");
    cr_assert_eq(s->par, p, "rill_ctx_parallelism %d, expected %d", s->par, p);
    for (int k = 0; k < MAXSUB; k++)
        cr_assert_eq(s->have[k], k < p, "subtask %d seen: %d (parallelism %d)", k, s->have[k],
                     p);
}

static int gen_seen(rill_ctx *ctx, uint64_t index, void *ud)
{
    seen_note(ud, ctx);
    return rill_emit(ctx, &index, sizeof index);
}

static int map_seen(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    seen_note(ud, ctx);
    return rill_emit(ctx, rec, len);
}

static int sink_seen(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    seen_note(ud, ctx);
    return 0;
}

typedef struct chain3 {
    seen g, m, k;
} chain3;

static void chain3_init(chain3 *c)
{
    seen_init(&c->g);
    seen_init(&c->m);
    seen_init(&c->k);
}

/* generator(p_g) -> [part] -> map(p_m) -> sink(p_k) */
typedef rill_stream *(*part_fn)(rill_stream *s);

static void build3(rill_env *env, chain3 *c, int p_g, part_fn part, int p_m, int no_chain_map,
                   int p_k)
{
    rill_stream *g = rill_generator(env, "gen", 1000, gen_seen, &c->g);
    cr_assert_not_null(rill_stream_set_parallelism(g, p_g));
    if (part)
        g = part(g);
    rill_stream *m = rill_map(g, "map", map_seen, &c->m);
    cr_assert_not_null(rill_stream_set_parallelism(m, p_m));
    if (no_chain_map)
        cr_assert_not_null(rill_stream_disable_chaining(m));
    rill_stream *k = rill_sink(m, "sink", sink_seen, &c->k);
    cr_assert_not_null(rill_stream_set_parallelism(k, p_k));
}

Test(chaining, forward_equal_parallelism_runs_in_one_thread)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(1);
    build3(env, &c, 1, NULL, 1, 0, 1);
    run_ok(env);
    seen_check(&c.g, 1);
    seen_check(&c.m, 1);
    seen_check(&c.k, 1);
    cr_assert(pthread_equal(c.g.thr[0], c.m.thr[0]), "map not chained to the generator");
    cr_assert(pthread_equal(c.m.thr[0], c.k.thr[0]), "sink not chained to the map");
    cr_assert_eq(c.k.calls[0], 1000);
    rill_env_free(env);
}

Test(chaining, each_parallel_subtask_is_one_chained_thread)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(2);
    build3(env, &c, 2, NULL, 2, 0, 2);
    run_ok(env);
    seen_check(&c.g, 2);
    seen_check(&c.m, 2);
    seen_check(&c.k, 2);
    for (int s = 0; s < 2; s++) {
        cr_assert(pthread_equal(c.g.thr[s], c.m.thr[s]));
        cr_assert(pthread_equal(c.m.thr[s], c.k.thr[s]));
        cr_assert_eq(c.k.calls[s], 500);
    }
    cr_assert(!pthread_equal(c.g.thr[0], c.g.thr[1]), "two subtasks on one thread");
    rill_env_free(env);
}

Test(chaining, explicit_forward_is_chained)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(2);
    build3(env, &c, 2, rill_forward, 2, 0, 2);
    run_ok(env);
    for (int s = 0; s < 2; s++)
        cr_assert(pthread_equal(c.g.thr[s], c.m.thr[s]));
    rill_env_free(env);
}

Test(chaining, disable_chaining_separates_input_and_output)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(1);
    build3(env, &c, 1, NULL, 1, 1, 1);
    run_ok(env);
    seen_check(&c.g, 1);
    seen_check(&c.m, 1);
    seen_check(&c.k, 1);
    cr_assert(!pthread_equal(c.g.thr[0], c.m.thr[0]), "map chained despite disable_chaining");
    cr_assert(!pthread_equal(c.m.thr[0], c.k.thr[0]), "sink chained to a map with chaining off");
    cr_assert(!pthread_equal(c.g.thr[0], c.k.thr[0]));
    cr_assert_eq(c.k.calls[0], 1000);
    rill_env_free(env);
}

Test(chaining, disable_chaining_on_the_sink_only)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(1);
    rill_stream *g = rill_generator(env, "gen", 1000, gen_seen, &c.g);
    rill_stream *m = rill_map(g, "map", map_seen, &c.m);
    rill_stream *k = rill_sink(m, "sink", sink_seen, &c.k);
    cr_assert_not_null(rill_stream_disable_chaining(k));
    run_ok(env);
    cr_assert(pthread_equal(c.g.thr[0], c.m.thr[0]));
    cr_assert(!pthread_equal(c.m.thr[0], c.k.thr[0]));
    cr_assert_eq(c.k.calls[0], 1000);
    rill_env_free(env);
}

Test(chaining, rebalance_is_not_chained)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(1);
    build3(env, &c, 1, rill_rebalance, 1, 0, 1);
    run_ok(env);
    cr_assert(!pthread_equal(c.g.thr[0], c.m.thr[0]), "rebalance edge chained");
    cr_assert(pthread_equal(c.m.thr[0], c.k.thr[0]));
    cr_assert_eq(c.k.calls[0], 1000);
    rill_env_free(env);
}

static rill_stream *key_first8(rill_stream *s) { return rill_key_by_bytes(s, 0, 8); }

Test(chaining, key_by_is_not_chained)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(1);
    build3(env, &c, 1, key_first8, 1, 0, 1);
    run_ok(env);
    cr_assert(!pthread_equal(c.g.thr[0], c.m.thr[0]), "hash edge chained");
    cr_assert(pthread_equal(c.m.thr[0], c.k.thr[0]));
    rill_env_free(env);
}

Test(chaining, different_parallelism_is_not_chained)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(2);
    build3(env, &c, 2, NULL, 1, 0, 1);
    run_ok(env);
    seen_check(&c.g, 2);
    seen_check(&c.m, 1);
    cr_assert(!pthread_equal(c.g.thr[0], c.m.thr[0]));
    cr_assert(!pthread_equal(c.g.thr[1], c.m.thr[0]));
    cr_assert(pthread_equal(c.m.thr[0], c.k.thr[0]));
    cr_assert_eq(c.k.calls[0], 1000);
    rill_env_free(env);
}

Test(chaining, union_input_is_not_chained)
{
    seen a, b, m;
    seen_init(&a);
    seen_init(&b);
    seen_init(&m);
    rill_env *env = new_env(1);
    rill_stream *in[2] = {rill_generator(env, "a", 100, gen_seen, &a),
                          rill_generator(env, "b", 100, gen_seen, &b)};
    rill_stream *u = rill_union(in, 2);
    rill_sink(rill_map(u, "map", map_seen, &m), "sink", sink_seen, &m);
    run_ok(env);
    cr_assert(!pthread_equal(a.thr[0], m.thr[0]));
    cr_assert(!pthread_equal(b.thr[0], m.thr[0]));
    cr_assert_eq(m.calls[0], 400); /* map and sink calls */
    rill_env_free(env);
}

/* ---- parallelism ---------------------------------------------------------- */

Test(parallelism, operators_run_their_set_parallelism)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(3);
    rill_stream *g = rill_generator(env, "gen", 3000, gen_seen, &c.g); /* env default: 3 */
    rill_stream *m = rill_map(g, "map", map_seen, &c.m);
    cr_assert_not_null(rill_stream_set_parallelism(m, 2));
    rill_stream *k = rill_sink(m, "sink", sink_seen, &c.k);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    run_ok(env);
    seen_check(&c.g, 3);
    seen_check(&c.m, 2);
    seen_check(&c.k, 1);
    for (int s = 0; s < 3; s++)
        cr_assert_eq(c.g.calls[s], 1000);
    cr_assert_eq(c.m.calls[0] + c.m.calls[1], 3000);
    cr_assert_eq(c.k.calls[0], 3000);
    cr_assert(!pthread_equal(c.m.thr[0], c.m.thr[1]), "two map subtasks on one thread");
    rill_env_free(env);
}

Test(parallelism, env_parallelism_is_the_default)
{
    chain3 c;
    chain3_init(&c);
    rill_env *env = new_env(4);
    rill_stream *g = rill_generator(env, "gen", 4000, gen_seen, &c.g);
    rill_sink(rill_map(g, "map", map_seen, &c.m), "sink", sink_seen, &c.k);
    run_ok(env);
    seen_check(&c.g, 4);
    seen_check(&c.m, 4);
    seen_check(&c.k, 4);
    for (int s = 0; s < 4; s++)
        cr_assert_eq(c.k.calls[s], 1000);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            cr_assert(!pthread_equal(c.g.thr[i], c.g.thr[j]), "subtasks %d and %d share a thread",
                      i, j);
    rill_env_free(env);
}

/* ---- collecting records (coll_sink of common.h, exactly 8 bytes each) ------ */

static int map_double(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return emit_u64_affine(ctx, rec, len, 2, 0);
}

/* ---- order ------------------------------------------------------------------ */

Test(order, chained_pipeline_keeps_order)
{
    enum { N = 50000 };
    coll c;
    coll_init_exact(&c);
    rill_env *env = new_env(1);
    rill_stream *g = rill_generator(env, "gen", N, gen_index, NULL);
    rill_sink(rill_map(g, "double", map_double, NULL), "sink", coll_sink, &c);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    cr_assert_eq(c.n[0], N);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(c.v[0][i], 2 * i, "position %zu holds %llu", i,
                     (unsigned long long)c.v[0][i]);
    coll_free(&c);
    rill_env_free(env);
}

Test(order, forward_channels_keep_order)
{
    enum { N = 50000 };
    coll c;
    coll_init_exact(&c);
    rill_env *env = new_env(2);
    rill_stream *g = rill_generator(env, "gen", N, gen_index, NULL);
    rill_stream *m = rill_map(g, "double", map_double, NULL);
    cr_assert_not_null(rill_stream_disable_chaining(m));
    rill_sink(m, "sink", coll_sink, &c);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    for (size_t s = 0; s < 2; s++) {
        size_t lo = N * s / 2, hi = N * (s + 1) / 2;
        cr_assert_eq(c.n[s], hi - lo);
        for (size_t i = 0; i < hi - lo; i++)
            cr_assert_eq(c.v[s][i], 2 * (lo + i));
    }
    coll_free(&c);
    rill_env_free(env);
}

Test(order, rebalance_from_one_upstream_keeps_order)
{
    enum { N = 30000 };
    coll c;
    coll_init_exact(&c);
    rill_env *env = new_env(1);
    rill_stream *g = rill_generator(env, "gen", N, gen_index, NULL);
    rill_stream *k = rill_sink(rill_rebalance(g), "sink", coll_sink, &c);
    cr_assert_not_null(rill_stream_set_parallelism(k, 3));
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    for (size_t s = 0; s < 3; s++) {
        cr_assert_eq(c.n[s], N / 3);
        for (size_t i = 0; i < N / 3; i++)
            cr_assert_eq(c.v[s][i], 3 * i + s);
    }
    coll_free(&c);
    rill_env_free(env);
}

Test(order, forward_from_one_upstream_through_a_channel_keeps_order)
{
    enum { N = 30000 };
    coll c;
    coll_init_exact(&c);
    rill_env *env = new_env(1);
    rill_stream *g = rill_generator(env, "gen", N, gen_index, NULL);
    rill_stream *k = rill_sink(rill_forward(g), "sink", coll_sink, &c);
    cr_assert_not_null(rill_stream_disable_chaining(k));
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    cr_assert_eq(c.n[0], N);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(c.v[0][i], i);
    coll_free(&c);
    rill_env_free(env);
}

/* ---- end of input through several stages ------------------------------------ */

/* The sink of the multi-stage pipeline: one subtask; marks every value. */
typedef struct tally {
    pthread_mutex_t mu;
    uint64_t count, sum, dup, stray;
    unsigned char *bits; /* one bit per value 0..limit-1 */
    uint64_t limit;
} tally;

static void tally_init(tally *t, uint64_t limit)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    t->limit = limit;
    t->bits = calloc(limit / 8 + 1, 1);
    cr_assert_not_null(t->bits);
}

static void tally_free(tally *t)
{
    free(t->bits);
    pthread_mutex_destroy(&t->mu);
}

static int tally_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    tally *t = ud;
    uint64_t v;
    pthread_mutex_lock(&t->mu);
    if (len != sizeof v) {
        t->stray++;
    } else {
        memcpy(&v, rec, sizeof v);
        t->count++;
        t->sum += v;
        if (v >= t->limit)
            t->stray++;
        else if (t->bits[v / 8] & (1u << (v % 8)))
            t->dup++;
        else
            t->bits[v / 8] |= (unsigned char)(1u << (v % 8));
    }
    pthread_mutex_unlock(&t->mu);
    return 0;
}

static int map_triple(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return emit_u64_affine(ctx, rec, len, 3, 0);
}

/* v, and v + 1 as well when v is even. */
static int flat_plus(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    uint64_t v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    int rc = rill_emit(ctx, &v, sizeof v);
    if (rc || v % 2)
        return rc;
    v += 1;
    return rill_emit(ctx, &v, sizeof v);
}

typedef void (*env_setup)(rill_env *env);

/* generator(p=2) -> map(p=3) -> key_by -> flat_map(p=2) -> sink(p=1) */
static void run_multistage(uint64_t n, env_setup setup)
{
    tally t;
    tally_init(&t, 3 * n + 2);
    rill_env *env = new_env(2);
    if (setup)
        setup(env);
    rill_stream *g = rill_generator(env, "gen", n, gen_index, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(g, 2));
    rill_stream *m = rill_map(g, "triple", map_triple, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(m, 3));
    rill_stream *f = rill_flat_map(rill_key_by_bytes(m, 0, 8), "plus", flat_plus, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(f, 2));
    rill_stream *k = rill_sink(f, "tally", tally_sink, &t);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    run_ok(env);

    uint64_t want_count = 0, want_sum = 0;
    for (uint64_t v = 0; v < n; v++) {
        want_count++;
        want_sum += 3 * v;
        if (v % 2 == 0) {
            want_count++;
            want_sum += 3 * v + 1;
        }
    }
    cr_assert_eq(t.stray, 0);
    cr_assert_eq(t.dup, 0, "%llu duplicates", (unsigned long long)t.dup);
    cr_assert_eq(t.count, want_count, "count %llu, expected %llu", (unsigned long long)t.count,
                 (unsigned long long)want_count);
    cr_assert_eq(t.sum, want_sum);
    /* Every expected value is marked (count and no duplicates make it exact). */
    for (uint64_t v = 0; v < n; v++) {
        uint64_t x = 3 * v;
        cr_assert(t.bits[x / 8] & (1u << (x % 8)), "value %llu missing", (unsigned long long)x);
    }
    rill_env_free(env);
    tally_free(&t);
}

Test(end_of_input, million_records_through_four_stages)
{
    run_multistage(1000000, NULL);
}

static void setup_timeout0(rill_env *env)
{
    cr_assert_eq(rill_env_set_buffer_timeout(env, 0), RILL_OK);
}

static void setup_timeout_never(rill_env *env)
{
    cr_assert_eq(rill_env_set_buffer_timeout(env, -1), RILL_OK);
}

static void setup_small_buffers(rill_env *env)
{
    cr_assert_eq(rill_env_set_buffer_size(env, 4096), RILL_OK);
}

static void setup_small_everything(rill_env *env)
{
    cr_assert_eq(rill_env_set_buffer_size(env, 4096), RILL_OK);
    cr_assert_eq(rill_env_set_channel_capacity(env, 1), RILL_OK);
    cr_assert_eq(rill_env_set_buffer_timeout(env, -1), RILL_OK);
}

Test(end_of_input, buffer_timeout_zero_gives_same_results)
{
    run_multistage(20000, setup_timeout0);
}

Test(end_of_input, buffer_timeout_never_gives_same_results)
{
    run_multistage(100000, setup_timeout_never);
}

Test(end_of_input, small_buffers_give_same_results)
{
    run_multistage(100000, setup_small_buffers);
}

Test(end_of_input, small_buffers_capacity_one_no_timeout_give_same_results)
{
    run_multistage(100000, setup_small_everything);
}

Test(end_of_input, buffer_timeout_never_with_few_records)
{
    /* Far less than a buffer: only end of input sends them. */
    run_multistage(5, setup_timeout_never);
}

Test(end_of_input, empty_generator_finishes)
{
    run_multistage(0, NULL);
}

/* ---- record sizes -------------------------------------------------------- */

static const size_t sizes[] = {0,    1,     2,     7,     8,     9,     15,    16,     17,
                               100,  1000,  4071,  4072,  4073,  4080,  4095,  4096,   4097,
                               8192, 32752, 32768, 32769, 65536, 99999, 100000, 102400};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static unsigned char pattern(size_t size, size_t j)
{
    return (unsigned char)(size * 131 + j * 7 + 1);
}

typedef struct sized {
    pthread_mutex_t mu;
    int order[MAXSUB][NSIZES]; /* size index of each arrival, per subtask */
    size_t n[MAXSUB];
    int bad_len, bad_bytes, bad_ts, bad_sub;
} sized;

static int sized_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    sized *z = ud;
    int s = rill_ctx_subtask(ctx);
    int64_t ts = rill_ctx_timestamp(ctx);
    int idx = -1;
    for (size_t i = 0; i < NSIZES; i++)
        if (sizes[i] == len)
            idx = (int)i;
    int bytes_ok = 1;
    for (size_t j = 0; j < len; j++)
        if (((const unsigned char *)rec)[j] != pattern(len, j)) {
            bytes_ok = 0;
            break;
        }
    pthread_mutex_lock(&z->mu);
    if (idx < 0) {
        z->bad_len++;
    } else if (s < 0 || s >= MAXSUB || z->n[s] >= NSIZES) {
        z->bad_sub++;
    } else {
        z->order[s][z->n[s]++] = idx;
        if (!bytes_ok)
            z->bad_bytes++;
        if (ts != 1000 + 10 * (int64_t)idx)
            z->bad_ts++;
    }
    pthread_mutex_unlock(&z->mu);
    return 0;
}

static int map_copy(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return rill_emit(ctx, rec, len);
}

static void run_sizes(env_setup setup)
{
    sized z;
    memset(&z, 0, sizeof z);
    pthread_mutex_init(&z.mu, NULL);
    rill_record recs[NSIZES];
    unsigned char *mem[NSIZES];
    for (size_t i = 0; i < NSIZES; i++) {
        mem[i] = malloc(sizes[i] + 1);
        cr_assert_not_null(mem[i]);
        for (size_t j = 0; j < sizes[i]; j++)
            mem[i][j] = pattern(sizes[i], j);
        recs[i].data = mem[i];
        recs[i].len = sizes[i];
        recs[i].ts = 1000 + 10 * (int64_t)i;
    }
    rill_env *env = new_env(1);
    if (setup)
        setup(env);
    rill_stream *s = rill_from_records(env, "sizes", recs, NSIZES);
    for (size_t i = 0; i < NSIZES; i++) /* copied: the originals may go */
        free(mem[i]);
    rill_stream *m = rill_map(s, "copy", map_copy, NULL);
    rill_stream *k = rill_sink(rill_rebalance(m), "sink", sized_sink, &z);
    cr_assert_not_null(rill_stream_set_parallelism(k, 2));
    run_ok(env);
    cr_assert_eq(z.bad_len, 0);
    cr_assert_eq(z.bad_sub, 0);
    cr_assert_eq(z.bad_bytes, 0, "%d records with wrong bytes", z.bad_bytes);
    cr_assert_eq(z.bad_ts, 0, "%d records with wrong timestamps", z.bad_ts);
    /* Rebalance from one upstream: record i at subtask i % 2, in order. */
    cr_assert_eq(z.n[0], (NSIZES + 1) / 2);
    cr_assert_eq(z.n[1], NSIZES / 2);
    for (int s2 = 0; s2 < 2; s2++)
        for (size_t k2 = 0; k2 < z.n[s2]; k2++)
            cr_assert_eq(z.order[s2][k2], (int)(2 * k2) + s2, "subtask %d position %zu: size %zu",
                         s2, k2, sizes[z.order[s2][k2]]);
    rill_env_free(env);
    pthread_mutex_destroy(&z.mu);
}

Test(records, sizes_from_0_to_100k_arrive_intact)
{
    run_sizes(NULL);
}

Test(records, sizes_larger_than_small_buffers_arrive_intact)
{
    run_sizes(setup_small_everything);
}

Test(records, sizes_with_buffer_timeout_zero_arrive_intact)
{
    run_sizes(setup_timeout0);
}

/* ---- fan-out ---------------------------------------------------------------- */

static int map_offset(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return emit_u64_affine(ctx, rec, len, 1, 1000000);
}

Test(fan_out, one_stream_feeds_two_sinks)
{
    enum { N = 20000 };
    coll a, b;
    coll_init_exact(&a);
    coll_init_exact(&b);
    rill_env *env = new_env(1);
    rill_stream *g = rill_generator(env, "gen", N, gen_index, NULL);
    rill_sink(g, "a", coll_sink, &a); /* chained */
    rill_stream *kb = rill_sink(rill_map(g, "offset", map_offset, NULL), "b", coll_sink, &b);
    cr_assert_not_null(rill_stream_set_parallelism(kb, 2)); /* rebalanced */
    run_ok(env);
    cr_assert_eq(a.bad, 0);
    cr_assert_eq(b.bad, 0);
    cr_assert_eq(a.n[0], N);
    for (size_t i = 0; i < N; i++)
        cr_assert_eq(a.v[0][i], i);
    for (size_t s = 0; s < 2; s++) {
        cr_assert_eq(b.n[s], N / 2);
        for (size_t i = 0; i < N / 2; i++)
            cr_assert_eq(b.v[s][i], 1000000 + 2 * i + s);
    }
    coll_free(&a);
    coll_free(&b);
    rill_env_free(env);
}

Test(fan_out, two_chained_sinks_at_parallelism_two)
{
    enum { N = 20000 };
    coll a, b;
    coll_init_exact(&a);
    coll_init_exact(&b);
    rill_env *env = new_env(2);
    rill_stream *g = rill_generator(env, "gen", N, gen_index, NULL);
    rill_sink(g, "a", coll_sink, &a);
    rill_sink(g, "b", coll_sink, &b);
    run_ok(env);
    coll *both[2] = {&a, &b};
    for (int w = 0; w < 2; w++) {
        cr_assert_eq(both[w]->bad, 0);
        for (size_t s = 0; s < 2; s++) {
            size_t lo = N * s / 2, hi = N * (s + 1) / 2;
            cr_assert_eq(both[w]->n[s], hi - lo);
            for (size_t i = 0; i < hi - lo; i++)
                cr_assert_eq(both[w]->v[s][i], lo + i);
        }
    }
    coll_free(&a);
    coll_free(&b);
    rill_env_free(env);
}

Test(fan_out, one_stream_feeds_a_key_by_and_a_broadcast)
{
    enum { N = 3000 };
    coll a, b;
    coll_init_exact(&a);
    coll_init_exact(&b);
    rill_env *env = new_env(2);
    rill_stream *g = rill_generator(env, "gen", N, gen_index, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(g, 1));
    rill_sink(rill_key_by_bytes(g, 0, 8), "a", coll_sink, &a);
    rill_sink(rill_broadcast(g), "b", coll_sink, &b);
    run_ok(env);
    cr_assert_eq(a.bad, 0);
    cr_assert_eq(b.bad, 0);
    cr_assert_eq(a.n[0] + a.n[1], N);
    unsigned char *hit = calloc(N, 1);
    cr_assert_not_null(hit);
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < a.n[s]; i++) {
            cr_assert_lt(a.v[s][i], N);
            cr_assert_eq(hit[a.v[s][i]]++, 0);
        }
    free(hit);
    for (size_t s = 0; s < 2; s++) {
        cr_assert_eq(b.n[s], N);
        for (size_t i = 0; i < N; i++)
            cr_assert_eq(b.v[s][i], i);
    }
    coll_free(&a);
    coll_free(&b);
    rill_env_free(env);
}
