/* partition_test.c - which downstream subtask receives which record, for
 * every partitioner, and the order of records on each channel.
 *
 * Sources are rill_from_array at parallelism p_u: upstream subtask i emits
 * records i, i+p_u, i+2*p_u, ..., so record v comes from upstream v % p_u
 * and is its (v / p_u)-th record. Sinks collect (subtask, record) under a
 * mutex; every check runs on the test's thread after the job ends.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "rill.h"

#define TEST_NAME "partition"
#include "common.h"

/* ---- sources --------------------------------------------------------- */

/* Records 0..n-1 (uint64) from rill_from_array at parallelism p. */
static rill_stream *iota_source(rill_env *env, const char *name, uint64_t first, size_t n, int p)
{
    uint64_t *a = malloc((n ? n : 1) * sizeof *a);
    cr_assert_not_null(a);
    for (size_t i = 0; i < n; i++)
        a[i] = first + i;
    rill_stream *s = rill_from_array(env, name, a, sizeof *a, n);
    free(a); /* copied */
    cr_assert_not_null(s);
    cr_assert_not_null(rill_stream_set_parallelism(s, p));
    return s;
}

/* Records {seq, key} of 16 bytes, seq = 0..n-1, from parallelism p. */
typedef struct krec {
    uint64_t seq;
    uint64_t key;
} krec;

static uint64_t key_of_seq(uint64_t seq) { return (seq * 2654435761u) % 1009u; }

static rill_stream *keyed_source(rill_env *env, size_t n, int p)
{
    krec *a = malloc(n * sizeof *a);
    cr_assert_not_null(a);
    for (size_t i = 0; i < n; i++) {
        a[i].seq = i;
        a[i].key = key_of_seq(i);
    }
    rill_stream *s = rill_from_array(env, "keyed", a, sizeof *a, n);
    free(a);
    cr_assert_not_null(s);
    cr_assert_not_null(rill_stream_set_parallelism(s, p));
    return s;
}

static rill_stream *add_sink(rill_stream *s, coll *c, int p)
{
    rill_stream *k = rill_sink(s, "collect", coll_sink, c);
    cr_assert_not_null(k);
    cr_assert_not_null(rill_stream_set_parallelism(k, p));
    return k;
}

/* ---- checking a distribution ----------------------------------------- */

typedef int (*target_fn)(uint64_t v, const void *arg);

/*
 * Records 0..n-1 came from p_u upstream subtasks (record v from upstream
 * v % p_u). Each must have arrived exactly once, at downstream target(v);
 * on each channel (upstream u -> downstream s) records arrive in increasing
 * order.
 */
static void check_dist(const coll *c, int p_d, uint64_t n, int p_u, target_fn target,
                       const void *arg)
{
    cr_assert_eq(c->bad, 0, "%d malformed records", c->bad);
    cr_assert_eq(coll_total(c), n, "records delivered: %zu, expected %llu", coll_total(c),
                 (unsigned long long)n);
    unsigned char *seen = calloc(n ? n : 1, 1);
    cr_assert_not_null(seen);
    for (int s = 0; s < MAXSUB; s++) {
        if (s >= p_d) {
            cr_assert_eq(c->n[s], 0, "subtask %d of %d received records", s, p_d);
            continue;
        }
        int64_t last[MAXSUB];
        for (int u = 0; u < MAXSUB; u++)
            last[u] = -1;
        for (size_t k = 0; k < c->n[s]; k++) {
            uint64_t v = c->v[s][k];
            cr_assert_lt(v, n, "unexpected record %llu", (unsigned long long)v);
            cr_assert_eq(seen[v], 0, "record %llu delivered twice", (unsigned long long)v);
            seen[v] = 1;
            int want = target(v, arg);
            cr_assert_eq(s, want, "record %llu went to subtask %d, expected %d",
                         (unsigned long long)v, s, want);
            int u = (int)(v % (uint64_t)p_u);
            cr_assert_gt((int64_t)v, last[u],
                         "channel %d->%d: record %llu after %lld (order not kept)", u, s,
                         (unsigned long long)v, (long long)last[u]);
            last[u] = (int64_t)v;
        }
    }
    free(seen);
}

/* Partitioning rules written out from the documented semantics. */
typedef struct pu_pd {
    int p_u, p_d;
} pu_pd;

static int t_forward(uint64_t v, const void *arg)
{
    const pu_pd *x = arg;
    return (int)(v % (uint64_t)x->p_u);
}

static int t_rebalance(uint64_t v, const void *arg)
{
    const pu_pd *x = arg;
    uint64_t i = v % (uint64_t)x->p_u, k = v / (uint64_t)x->p_u;
    return (int)((i + k) % (uint64_t)x->p_d);
}

static int t_rescale(uint64_t v, const void *arg)
{
    const pu_pd *x = arg;
    int i = (int)(v % (uint64_t)x->p_u);
    uint64_t k = v / (uint64_t)x->p_u;
    if (x->p_d < x->p_u)
        return i * x->p_d / x->p_u;
    int set[MAXSUB], n = 0;
    for (int j = 0; j < x->p_d; j++)
        if (j * x->p_u / x->p_d == i)
            set[n++] = j;
    cr_assert_gt(n, 0);
    return set[k % (uint64_t)n];
}

static int t_global(uint64_t v, const void *arg)
{
    (void)v;
    (void)arg;
    return 0;
}

/* ---- forward, rebalance, rescale, global ----------------------------- */

Test(partition, forward_sends_subtask_i_to_subtask_i)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(3);
    rill_stream *s = iota_source(env, "src", 0, 300, 3);
    rill_stream *k = add_sink(rill_forward(s), &c, 3);
    cr_assert_not_null(rill_stream_disable_chaining(k)); /* a real channel */
    run_ok(env);
    pu_pd x = {3, 3};
    check_dist(&c, 3, 300, 3, t_forward, &x);
    /* Forward from one upstream: each subtask sees exactly its records. */
    for (int j = 0; j < 3; j++) {
        cr_assert_eq(c.n[j], 100);
        for (size_t k2 = 0; k2 < 100; k2++)
            cr_assert_eq(c.v[j][k2], (uint64_t)j + 3 * k2);
    }
    cr_assert_eq(c.par, 3);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, rebalance_from_one_upstream_is_round_robin)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(1);
    rill_stream *s = iota_source(env, "src", 0, 301, 1);
    add_sink(rill_rebalance(s), &c, 3);
    run_ok(env);
    pu_pd x = {1, 3};
    check_dist(&c, 3, 301, 1, t_rebalance, &x);
    cr_assert_eq(c.n[0], 101);
    cr_assert_eq(c.n[1], 100);
    cr_assert_eq(c.n[2], 100);
    for (size_t k = 0; k < c.n[1]; k++)
        cr_assert_eq(c.v[1][k], 3 * k + 1);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, rebalance_starts_at_the_upstream_subtask_index)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *s = iota_source(env, "src", 0, 1000, 2);
    add_sink(rill_rebalance(s), &c, 3);
    run_ok(env);
    pu_pd x = {2, 3};
    check_dist(&c, 3, 1000, 2, t_rebalance, &x);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, rebalance_between_equal_parallelism)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(3);
    rill_stream *s = iota_source(env, "src", 0, 900, 3);
    add_sink(rill_rebalance(s), &c, 3);
    run_ok(env);
    pu_pd x = {3, 3};
    check_dist(&c, 3, 900, 3, t_rebalance, &x);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, rescale_to_more_subtasks_round_robins_over_local_set)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *s = iota_source(env, "src", 0, 1000, 2);
    add_sink(rill_rescale(s), &c, 5);
    run_ok(env);
    pu_pd x = {2, 5};
    check_dist(&c, 5, 1000, 2, t_rescale, &x);
    /* Upstream 0 feeds {0,1,2}, upstream 1 feeds {3,4}. */
    for (int j = 0; j < 3; j++)
        for (size_t k = 0; k < c.n[j]; k++)
            cr_assert_eq(c.v[j][k] % 2, 0);
    for (int j = 3; j < 5; j++)
        for (size_t k = 0; k < c.n[j]; k++)
            cr_assert_eq(c.v[j][k] % 2, 1);
    cr_assert_eq(c.n[0], 167);
    cr_assert_eq(c.n[1], 167);
    cr_assert_eq(c.n[2], 166);
    cr_assert_eq(c.n[3], 250);
    cr_assert_eq(c.n[4], 250);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, rescale_to_fewer_subtasks_sends_each_upstream_to_one)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(5);
    rill_stream *s = iota_source(env, "src", 0, 1000, 5);
    add_sink(rill_rescale(s), &c, 2);
    run_ok(env);
    pu_pd x = {5, 2};
    check_dist(&c, 2, 1000, 5, t_rescale, &x);
    /* floor(i*2/5): upstreams 0,1,2 -> 0 and 3,4 -> 1. */
    cr_assert_eq(c.n[0], 600);
    cr_assert_eq(c.n[1], 400);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, rescale_between_equal_parallelism_is_one_to_one)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(3);
    rill_stream *s = iota_source(env, "src", 0, 300, 3);
    add_sink(rill_rescale(s), &c, 3);
    run_ok(env);
    pu_pd x = {3, 3};
    check_dist(&c, 3, 300, 3, t_forward, &x);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, global_sends_everything_to_subtask_zero)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *s = iota_source(env, "src", 0, 500, 2);
    add_sink(rill_global(s), &c, 3);
    run_ok(env);
    pu_pd x = {2, 3};
    check_dist(&c, 3, 500, 2, t_global, &x);
    cr_assert_eq(c.n[0], 500);
    rill_env_free(env);
    coll_free(&c);
}

/* ---- default choice ---------------------------------------------------- */

Test(partition, default_is_forward_at_equal_parallelism)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(3);
    rill_stream *s = iota_source(env, "src", 0, 600, 3);
    add_sink(s, &c, 3);
    run_ok(env);
    pu_pd x = {3, 3};
    check_dist(&c, 3, 600, 3, t_forward, &x);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, default_is_forward_at_equal_parallelism_without_chaining)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *s = iota_source(env, "src", 0, 600, 2);
    cr_assert_not_null(rill_stream_disable_chaining(add_sink(s, &c, 2)));
    run_ok(env);
    pu_pd x = {2, 2};
    check_dist(&c, 2, 600, 2, t_forward, &x);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, default_is_rebalance_at_different_parallelism)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *s = iota_source(env, "src", 0, 700, 2);
    add_sink(s, &c, 3);
    run_ok(env);
    pu_pd x = {2, 3};
    check_dist(&c, 3, 700, 2, t_rebalance, &x);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, default_is_rebalance_to_lower_parallelism)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(3);
    rill_stream *s = iota_source(env, "src", 0, 700, 3);
    add_sink(s, &c, 2);
    run_ok(env);
    pu_pd x = {3, 2};
    check_dist(&c, 2, 700, 3, t_rebalance, &x);
    rill_env_free(env);
    coll_free(&c);
}

/* ---- shuffle ----------------------------------------------------------- */

Test(partition, shuffle_delivers_each_record_once_uniformly)
{
    enum { N = 100000, PD = 4 };
    coll c;
    coll_init(&c);
    rill_env *env = new_env(1);
    rill_stream *g = rill_generator(env, "gen", N, gen_index, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(g, 1));
    add_sink(rill_shuffle(g), &c, PD);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    cr_assert_eq(coll_total(&c), N);
    int *where = malloc(N * sizeof *where);
    cr_assert_not_null(where);
    for (size_t i = 0; i < N; i++)
        where[i] = -1;
    for (int s = 0; s < PD; s++) {
        /* Binomial(100000, 1/4): mean 25000, sd 137; the bound is ~18 sd. */
        cr_assert(c.n[s] >= 22500 && c.n[s] <= 27500, "subtask %d got %zu of %d", s, c.n[s],
                  N);
        for (size_t k = 0; k < c.n[s]; k++) {
            uint64_t v = c.v[s][k];
            cr_assert_lt(v, N);
            cr_assert_eq(where[v], -1, "record %llu delivered twice", (unsigned long long)v);
            where[v] = s;
            if (k)
                cr_assert_gt(v, c.v[s][k - 1], "order not kept on channel 0->%d", s);
        }
    }
    /* Independent of the index: not a round robin in disguise. */
    size_t rr = 0, same_as_next = 0;
    for (size_t i = 0; i < N; i++) {
        cr_assert_neq(where[i], -1, "record %zu missing", i);
        if (where[i] == (int)(i % PD))
            rr++;
        if (i + 1 < N && where[i] == where[i + 1])
            same_as_next++;
    }
    cr_assert(rr >= 22500 && rr <= 27500, "records at subtask index %% 4: %zu", rr);
    cr_assert(same_as_next >= 22500 && same_as_next <= 27500,
              "consecutive records at the same subtask: %zu", same_as_next);
    free(where);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, shuffle_from_several_upstreams_delivers_each_record_once)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(3);
    rill_stream *s = iota_source(env, "src", 0, 30000, 3);
    add_sink(rill_shuffle(s), &c, 2);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    cr_assert_eq(coll_total(&c), 30000);
    unsigned char *seen = calloc(30000, 1);
    cr_assert_not_null(seen);
    for (int s2 = 0; s2 < 2; s2++) {
        /* Binomial(30000, 1/2): sd 87. */
        cr_assert(c.n[s2] >= 13500 && c.n[s2] <= 16500, "subtask %d got %zu", s2, c.n[s2]);
        int64_t last[3] = {-1, -1, -1};
        for (size_t k = 0; k < c.n[s2]; k++) {
            uint64_t v = c.v[s2][k];
            cr_assert_lt(v, 30000);
            cr_assert_eq(seen[v], 0);
            seen[v] = 1;
            cr_assert_gt((int64_t)v, last[v % 3]);
            last[v % 3] = (int64_t)v;
        }
    }
    free(seen);
    rill_env_free(env);
    coll_free(&c);
}

/* ---- broadcast --------------------------------------------------------- */

Test(partition, broadcast_sends_every_record_to_every_subtask)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *s = iota_source(env, "src", 0, 200, 2);
    add_sink(rill_broadcast(s), &c, 3);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    cr_assert_eq(coll_total(&c), 600);
    for (int j = 0; j < 3; j++) {
        cr_assert_eq(c.n[j], 200, "subtask %d got %zu", j, c.n[j]);
        unsigned char seen[200] = {0};
        int64_t last[2] = {-1, -1};
        for (size_t k = 0; k < c.n[j]; k++) {
            uint64_t v = c.v[j][k];
            cr_assert_lt(v, 200);
            cr_assert_eq(seen[v], 0);
            seen[v] = 1;
            cr_assert_gt((int64_t)v, last[v % 2]);
            last[v % 2] = (int64_t)v;
        }
    }
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, broadcast_at_equal_parallelism_is_not_forward)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *s = iota_source(env, "src", 0, 100, 2);
    add_sink(rill_broadcast(s), &c, 2);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    for (int j = 0; j < 2; j++) {
        cr_assert_eq(c.n[j], 100, "subtask %d got %zu", j, c.n[j]);
        unsigned char seen[100] = {0};
        for (size_t k = 0; k < c.n[j]; k++) {
            cr_assert_lt(c.v[j][k], 100);
            cr_assert_eq(seen[c.v[j][k]]++, 0);
        }
    }
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, global_at_equal_parallelism_is_not_forward)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(3);
    rill_stream *s = iota_source(env, "src", 0, 300, 3);
    add_sink(rill_global(s), &c, 3);
    run_ok(env);
    pu_pd x = {3, 3};
    check_dist(&c, 3, 300, 3, t_global, &x);
    rill_env_free(env);
    coll_free(&c);
}

/* ---- hash partitioning -------------------------------------------------- */

typedef struct hash_arg {
    int p_d;
    int maxp;
} hash_arg;

/* Not inlined: gcc's bounds analysis of inlined XXH3 warns on short keys. */
__attribute__((noinline)) static int subtask_of_key(const void *key, size_t len,
                                                    const hash_arg *h)
{
    uint64_t kg = XXH3_64bits(key, len) % (uint64_t)h->maxp;
    return (int)(kg * (uint64_t)h->p_d / (uint64_t)h->maxp);
}

/* Key function: the decimal text "key-<key>" of the record's key field. */
static int text_key(const void *rec, size_t len, void *key, size_t *key_len, void *ud)
{
    (void)ud;
    if (len != sizeof(krec))
        return -1;
    krec r;
    memcpy(&r, rec, sizeof r);
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "key-%llu", (unsigned long long)r.key);
    if ((size_t)n > *key_len) {
        *key_len = (size_t)n;
        return 0;
    }
    memcpy(key, tmp, (size_t)n);
    *key_len = (size_t)n;
    return 0;
}

static int t_text_key(uint64_t v, const void *arg)
{
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "key-%llu", (unsigned long long)key_of_seq(v));
    return subtask_of_key(tmp, (size_t)n, arg);
}

static void run_text_key(int maxp, int p_u, int p_d)
{
    enum { N = 3000 };
    coll c;
    coll_init(&c);
    rill_env *env = new_env(p_u);
    if (maxp)
        cr_assert_eq(rill_env_set_max_parallelism(env, maxp), RILL_OK);
    rill_stream *s = keyed_source(env, N, p_u);
    rill_stream *kb = rill_key_by(s, text_key, NULL);
    cr_assert_not_null(kb);
    add_sink(kb, &c, p_d);
    run_ok(env);
    hash_arg h = {p_d, maxp ? maxp : 128};
    check_dist(&c, p_d, N, p_u, t_text_key, &h);
    /* Every subtask gets some keys (1009 distinct keys). */
    for (int j = 0; j < p_d; j++)
        cr_assert_gt(c.n[j], 0, "subtask %d got no records", j);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, key_by_function_default_max_parallelism)
{
    run_text_key(0, 2, 3);
}

Test(partition, key_by_function_custom_max_parallelism)
{
    run_text_key(7, 2, 3);
}

Test(partition, key_by_function_max_parallelism_equal_to_parallelism)
{
    run_text_key(4, 1, 4);
}

/* A key longer than any first buffer: the key fn reports the length it
 * needs and is called again with a buffer that large. */
enum { BIGKEY = 40000 };

static size_t big_key_len(uint64_t seq) { return BIGKEY + (size_t)(seq % 3) * 1000; }

static void fill_big_key(unsigned char *k, uint64_t seq)
{
    size_t n = big_key_len(seq);
    for (size_t j = 0; j < n; j++)
        k[j] = (unsigned char)(seq * 131 + j * 7);
}

static int big_key(const void *rec, size_t len, void *key, size_t *key_len, void *ud)
{
    (void)ud;
    if (len != sizeof(krec))
        return -1;
    krec r;
    memcpy(&r, rec, sizeof r);
    size_t n = big_key_len(r.seq);
    if (n > *key_len) {
        *key_len = n;
        return 0;
    }
    fill_big_key(key, r.seq);
    *key_len = n;
    return 0;
}

static int t_big_key(uint64_t v, const void *arg)
{
    static unsigned char k[BIGKEY + 3000];
    fill_big_key(k, v);
    return subtask_of_key(k, big_key_len(v), arg);
}

Test(partition, key_by_function_with_a_long_key)
{
    enum { N = 200 };
    coll c;
    coll_init(&c);
    rill_env *env = new_env(1);
    rill_stream *s = keyed_source(env, N, 1);
    add_sink(rill_key_by(s, big_key, NULL), &c, 3);
    run_ok(env);
    hash_arg h = {3, 128};
    check_dist(&c, 3, N, 1, t_big_key, &h);
    rill_env_free(env);
    coll_free(&c);
}

static int t_key_bytes(uint64_t v, const void *arg)
{
    uint64_t key = key_of_seq(v);
    return subtask_of_key(&key, sizeof key, arg);
}

Test(partition, key_by_bytes_default_max_parallelism)
{
    enum { N = 3000 };
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *s = keyed_source(env, N, 2);
    add_sink(rill_key_by_bytes(s, offsetof(krec, key), sizeof(uint64_t)), &c, 3);
    run_ok(env);
    hash_arg h = {3, 128};
    check_dist(&c, 3, N, 2, t_key_bytes, &h);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, key_by_bytes_custom_max_parallelism)
{
    enum { N = 3000 };
    coll c;
    coll_init(&c);
    rill_env *env = new_env(3);
    cr_assert_eq(rill_env_set_max_parallelism(env, 10), RILL_OK);
    rill_stream *s = keyed_source(env, N, 3);
    add_sink(rill_key_by_bytes(s, offsetof(krec, key), sizeof(uint64_t)), &c, 4);
    run_ok(env);
    hash_arg h = {4, 10};
    check_dist(&c, 4, N, 3, t_key_bytes, &h);
    rill_env_free(env);
    coll_free(&c);
}

static int t_key_bytes_part(uint64_t v, const void *arg)
{
    /* Key = bytes [2, 6) of the 8-byte key field. */
    uint64_t key = key_of_seq(v);
    unsigned char b[8];
    memcpy(b, &key, 8);
    return subtask_of_key(b + 2, 4, arg);
}

Test(partition, key_by_bytes_inside_a_field)
{
    enum { N = 2000 };
    coll c;
    coll_init(&c);
    rill_env *env = new_env(1);
    rill_stream *s = keyed_source(env, N, 1);
    add_sink(rill_key_by_bytes(s, offsetof(krec, key) + 2, 4), &c, 2);
    run_ok(env);
    hash_arg h = {2, 128};
    check_dist(&c, 2, N, 1, t_key_bytes_part, &h);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, key_by_at_equal_parallelism_still_hashes)
{
    enum { N = 3000 };
    coll c;
    coll_init(&c);
    rill_env *env = new_env(3);
    rill_stream *s = keyed_source(env, N, 3);
    add_sink(rill_key_by_bytes(s, offsetof(krec, key), sizeof(uint64_t)), &c, 3);
    run_ok(env);
    hash_arg h = {3, 128};
    check_dist(&c, 3, N, 3, t_key_bytes, &h);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, key_by_bytes_on_a_short_record_fails_einval)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(1);
    rill_stream *s = iota_source(env, "src", 0, 10, 1); /* 8-byte records */
    add_sink(rill_key_by_bytes(s, 4, 8), &c, 2);
    cr_assert_eq(rill_env_validate(env), RILL_OK);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "short key"), RILL_OK);
    cr_assert_not_null(job);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_EINVAL, "wait: %s", rill_err_name(rc));
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_neq(rill_job_errmsg(job)[0], '\0');
    rill_job_free(job);
    cr_assert_eq(rill_env_execute(env, "short key"), RILL_EINVAL);
    rill_env_free(env);
    coll_free(&c);
}

/* ---- custom ------------------------------------------------------------ */

static atomic_int custom_bad_np;

static int part_mod(const void *rec, size_t len, int num_partitions, void *ud)
{
    const int *want_np = ud;
    if (num_partitions != *want_np)
        atomic_fetch_add(&custom_bad_np, 1);
    uint64_t v;
    if (len != sizeof v)
        return 0;
    memcpy(&v, rec, sizeof v);
    return (int)((v * 7 + 3) % (uint64_t)num_partitions);
}

static int t_custom(uint64_t v, const void *arg)
{
    const pu_pd *x = arg;
    return (int)((v * 7 + 3) % (uint64_t)x->p_d);
}

Test(partition, custom_uses_the_partition_function)
{
    coll c;
    coll_init(&c);
    atomic_store(&custom_bad_np, 0);
    int np = 4;
    rill_env *env = new_env(2);
    rill_stream *s = iota_source(env, "src", 0, 1000, 2);
    add_sink(rill_partition_custom(s, part_mod, &np), &c, 4);
    run_ok(env);
    cr_assert_eq(atomic_load(&custom_bad_np), 0, "num_partitions was not 4");
    pu_pd x = {2, 4};
    check_dist(&c, 4, 1000, 2, t_custom, &x);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, custom_at_equal_parallelism_is_not_forward)
{
    coll c;
    coll_init(&c);
    atomic_store(&custom_bad_np, 0);
    int np = 2;
    rill_env *env = new_env(2);
    rill_stream *s = iota_source(env, "src", 0, 400, 2);
    add_sink(rill_partition_custom(s, part_mod, &np), &c, 2);
    run_ok(env);
    cr_assert_eq(atomic_load(&custom_bad_np), 0);
    pu_pd x = {2, 2};
    check_dist(&c, 2, 400, 2, t_custom, &x);
    rill_env_free(env);
    coll_free(&c);
}

static int part_too_big(const void *rec, size_t len, int num_partitions, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return num_partitions;
}

static int part_negative(const void *rec, size_t len, int num_partitions, void *ud)
{
    (void)len;
    (void)num_partitions;
    (void)ud;
    uint64_t v;
    memcpy(&v, rec, sizeof v);
    return v == 5 ? -1 : 0;
}

static void run_custom_fail(rill_partition_fn fn)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(1);
    rill_stream *s = iota_source(env, "src", 0, 10, 1);
    add_sink(rill_partition_custom(s, fn, NULL), &c, 3);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "bad partition"), RILL_OK);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_EUSER, "wait: %s", rill_err_name(rc));
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_neq(rill_job_errmsg(job)[0], '\0');
    rill_job_free(job);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, custom_result_equal_to_parallelism_fails_euser)
{
    run_custom_fail(part_too_big);
}

Test(partition, custom_negative_result_fails_euser)
{
    run_custom_fail(part_negative);
}

/* ---- union ------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* All records of all subtasks, sorted. */
static uint64_t *coll_sorted(const coll *c, size_t *n)
{
    size_t t = coll_total(c), k = 0;
    uint64_t *all = malloc((t ? t : 1) * sizeof *all);
    cr_assert_not_null(all);
    for (int s = 0; s < MAXSUB; s++)
        for (size_t i = 0; i < c->n[s]; i++)
            all[k++] = c->v[s][i];
    qsort(all, t, sizeof *all, cmp_u64);
    *n = t;
    return all;
}

Test(partition, union_of_two_streams)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(1);
    rill_stream *in[2] = {iota_source(env, "a", 0, 300, 1), iota_source(env, "b", 1000, 200, 1)};
    rill_stream *u = rill_union(in, 2);
    cr_assert_not_null(u);
    add_sink(u, &c, 1);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    size_t n;
    uint64_t *all = coll_sorted(&c, &n);
    cr_assert_eq(n, 500);
    for (size_t i = 0; i < 300; i++)
        cr_assert_eq(all[i], i);
    for (size_t i = 0; i < 200; i++)
        cr_assert_eq(all[300 + i], 1000 + i);
    /* Each input is one channel: its records stay in order. */
    int64_t last_a = -1, last_b = -1;
    for (size_t k = 0; k < c.n[0]; k++) {
        int64_t v = (int64_t)c.v[0][k];
        if (v < 1000) {
            cr_assert_gt(v, last_a);
            last_a = v;
        } else {
            cr_assert_gt(v, last_b);
            last_b = v;
        }
    }
    free(all);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, union_of_three_streams)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *in[3] = {iota_source(env, "a", 0, 100, 1), iota_source(env, "b", 1000, 150, 2),
                          iota_source(env, "c", 2000, 50, 3)};
    rill_stream *u = rill_union(in, 3);
    cr_assert_not_null(u);
    add_sink(u, &c, 2);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    size_t n;
    uint64_t *all = coll_sorted(&c, &n);
    cr_assert_eq(n, 300);
    for (size_t i = 0; i < 100; i++)
        cr_assert_eq(all[i], i);
    for (size_t i = 0; i < 150; i++)
        cr_assert_eq(all[100 + i], 1000 + i);
    for (size_t i = 0; i < 50; i++)
        cr_assert_eq(all[250 + i], 2000 + i);
    free(all);
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, union_keeps_each_inputs_default_partitioning)
{
    /* a (p=1) into the sink (p=2) is rebalanced, b (p=2) goes forward. */
    coll c;
    coll_init(&c);
    rill_env *env = new_env(2);
    rill_stream *in[2] = {iota_source(env, "a", 0, 100, 1), iota_source(env, "b", 1000, 100, 2)};
    add_sink(rill_union(in, 2), &c, 2);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    cr_assert_eq(coll_total(&c), 200);
    size_t na[2] = {0, 0}, nb[2] = {0, 0};
    for (int s = 0; s < 2; s++) {
        int64_t last_a = -1, last_b = -1;
        for (size_t k = 0; k < c.n[s]; k++) {
            uint64_t v = c.v[s][k];
            if (v < 1000) {
                cr_assert_eq((int)(v % 2), s, "a's record %llu at subtask %d",
                             (unsigned long long)v, s);
                cr_assert_gt((int64_t)v, last_a);
                last_a = (int64_t)v;
                na[s]++;
            } else {
                cr_assert_eq((int)((v - 1000) % 2), s, "b's record %llu at subtask %d",
                             (unsigned long long)v, s);
                cr_assert_gt((int64_t)v, last_b);
                last_b = (int64_t)v;
                nb[s]++;
            }
        }
    }
    cr_assert_eq(na[0], 50);
    cr_assert_eq(na[1], 50);
    cr_assert_eq(nb[0], 50);
    cr_assert_eq(nb[1], 50);
    rill_env_free(env);
    coll_free(&c);
}

static int t_union_key(uint64_t v, const void *arg)
{
    return subtask_of_key(&v, sizeof v, arg);
}

Test(partition, key_by_after_union_hashes_every_input)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(1);
    /* Values 0..399 split over two inputs. */
    rill_stream *in[2] = {iota_source(env, "a", 0, 250, 1), iota_source(env, "b", 250, 150, 1)};
    rill_stream *u = rill_union(in, 2);
    add_sink(rill_key_by_bytes(u, 0, 8), &c, 3);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    cr_assert_eq(coll_total(&c), 400);
    hash_arg h = {3, 128};
    unsigned char seen[400] = {0};
    for (int s = 0; s < 3; s++)
        for (size_t k = 0; k < c.n[s]; k++) {
            uint64_t v = c.v[s][k];
            cr_assert_lt(v, 400);
            cr_assert_eq(seen[v], 0);
            seen[v] = 1;
            cr_assert_eq(s, t_union_key(v, &h), "record %llu at subtask %d",
                         (unsigned long long)v, s);
        }
    rill_env_free(env);
    coll_free(&c);
}

Test(partition, union_of_a_stream_with_itself_doubles_it)
{
    coll c;
    coll_init(&c);
    rill_env *env = new_env(1);
    rill_stream *a = iota_source(env, "a", 0, 250, 1);
    rill_stream *in[2] = {a, a};
    add_sink(rill_union(in, 2), &c, 1);
    run_ok(env);
    cr_assert_eq(c.bad, 0);
    size_t n;
    uint64_t *all = coll_sorted(&c, &n);
    cr_assert_eq(n, 500);
    for (size_t i = 0; i < 500; i++)
        cr_assert_eq(all[i], i / 2);
    free(all);
    rill_env_free(env);
    coll_free(&c);
}
