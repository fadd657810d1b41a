/* state_longkey_test.c - keyed state of keys longer than LMDB's key size
 * (up to 65535 bytes) and of long map keys, which the store keeps in long
 * records under a hash of the key, comparing the whole key on every read.
 * Jobs with every keyed kind in a process function (exact outputs, with
 * the cache spilling to LMDB), TTL, keys whose hashes are made to collide,
 * the entries of one map split between direct and long records, and
 * snapshots restored at other parallelisms. */
#define TEST_NAME "longkey"
#include "common.h"

#include <lmdb.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "state/state_int.h"
#include "state_fixture.h"

TestSuite(longkey_job, .init = mk_tmp, .fini = rm_tmp);
TestSuite(longkey_store, .init = mk_tmp, .fini = rm_tmp);

/* ---- keys and map keys ------------------------------------------------------- */

/* Key lengths, by key id: around LMDB's key size (511: 505 bytes of key),
 * and up to RILL_KEY_MAX. Keys of one length differ in their last 4 bytes
 * only. */
static const size_t key_lens[] = {8, 505, 506, 600, 4000, 65535, 65534, 1000};
#define NLENS (sizeof key_lens / sizeof key_lens[0])

static size_t key_len_of(uint32_t id) { return key_lens[id % NLENS]; }

static void make_key(uint32_t id, size_t len, unsigned char *out)
{
    for (size_t i = 0; i + 4 < len; i++)
        out[i] = (unsigned char)(i * 131 + 17);
    memcpy(out + len - 4, &id, 4);
}

/* Map key j of key id: 1, 600 or 70000 bytes (longer than any key). */
static const size_t mkey_lens[] = {1, 600, 70000};
#define NMKEYS 3

static void make_mkey(uint32_t id, int j, unsigned char *out)
{
    for (size_t i = 0; i < mkey_lens[j]; i++)
        out[i] = (unsigned char)(i * 7 + (size_t)j * 50 + id);
}

static int same_mkey(uint32_t id, int j, const unsigned char *k, size_t kl)
{
    if (kl != mkey_lens[j])
        return 0;
    for (size_t i = 0; i < kl; i++)
        if (k[i] != (unsigned char)(i * 7 + (size_t)j * 50 + id))
            return 0;
    return 1;
}

/* ---- the job: every keyed kind in a process function ------------------------- */

#define NKEYS 25
#define PER_KEY 12 /* records per key */

typedef struct rec {
    uint32_t id;
    uint32_t j;   /* the TTL test's map key */
    uint64_t seq; /* the jobs' record i has id i % NKEYS, seq i */
} rec;

/* What the process function reads back from every state of the record's
 * key after updating them. */
typedef struct summary {
    uint32_t id;
    uint32_t key_len;
    uint64_t count;      /* value state: records of the key */
    uint64_t items;      /* list state: its length, */
    uint64_t items_sum;  /* and the sum of its items */
    uint64_t map_n;      /* map state: entries, */
    uint64_t map_sum;    /* and the sum of map key length * 1000 + value */
    int64_t sum;         /* reducing state: sum of seq */
    uint64_t agg_n;      /* aggregating state: count and maximum of seq */
    uint64_t agg_max;
} summary;

static int key_fn(const void *r, size_t len, void *key, size_t *key_len, void *ud)
{
    (void)ud;
    rec x;
    if (len != sizeof x)
        return -1;
    memcpy(&x, r, sizeof x);
    size_t n = key_len_of(x.id);
    if (*key_len >= n)
        make_key(x.id, n, key);
    *key_len = n;
    return 0;
}

/* Aggregating: the accumulator is {count, max}, so is the result. */
static int acc_create(void *out, size_t *out_len, void *ud)
{
    (void)ud;
    if (*out_len >= 16)
        memset(out, 0, 16);
    *out_len = 16;
    return 0;
}

static int acc_add(const void *acc, size_t al, const void *val, size_t vl, void *out,
                   size_t *out_len, void *ud)
{
    (void)ud;
    if (al != 16 || vl != 8)
        return 98;
    if (*out_len >= 16) {
        uint64_t a[2], v;
        memcpy(a, acc, 16);
        memcpy(&v, val, 8);
        a[0]++;
        if (v > a[1])
            a[1] = v;
        memcpy(out, a, 16);
    }
    *out_len = 16;
    return 0;
}

static int acc_merge(const void *a, size_t al, const void *b, size_t bl, void *out,
                     size_t *out_len, void *ud)
{
    (void)ud;
    if (al != 16 || bl != 16)
        return 97;
    if (*out_len >= 16) {
        uint64_t x[2], y[2];
        memcpy(x, a, 16);
        memcpy(y, b, 16);
        x[0] += y[0];
        if (y[1] > x[1])
            x[1] = y[1];
        memcpy(out, x, 16);
    }
    *out_len = 16;
    return 0;
}

static int acc_result(const void *acc, size_t al, void *out, size_t *out_len, void *ud)
{
    (void)ud;
    if (*out_len >= al)
        memcpy(out, acc, al);
    *out_len = al;
    return 0;
}

static const rill_aggregate_fns acc_fns = {acc_create, acc_add, acc_merge, acc_result};

#define FAIL(ctx, ...) (rill_ctx_set_error((ctx), __VA_ARGS__), -1)

static int get_u64(rill_state *st, uint64_t *out)
{
    const void *p;
    size_t n;
    int rc = rill_state_get(st, &p, &n);
    if (rc == RILL_OK && n == 8)
        memcpy(out, p, 8);
    return rc == RILL_OK && n != 8 ? RILL_EINVAL : rc;
}

/* The list: its length and sum; its items must come in increasing order. */
static int read_list(rill_ctx *ctx, summary *s)
{
    size_t pos = 0, n;
    const void *item;
    uint64_t prev = 0, v;
    int rc;
    while ((rc = rill_state_list_next(rill_ctx_state(ctx, "items"), &pos, &item, &n)) == 1) {
        if (n != 8)
            return FAIL(ctx, "key %u: a list item of %zu bytes", s->id, n);
        memcpy(&v, item, 8);
        if (s->items && v <= prev)
            return FAIL(ctx, "key %u: list item %llu after %llu", s->id,
                        (unsigned long long)v, (unsigned long long)prev);
        s->items++;
        s->items_sum += v;
        prev = v;
    }
    return rc;
}

/* The map: each entry a map key of its key, in key order (map key j of a
 * key starts with a byte below that of map key j + 1). */
static int read_map(rill_ctx *ctx, summary *s)
{
    size_t pos = 0, kl, vl;
    const void *k, *v;
    int rc, prev = -1;
    while ((rc = rill_state_map_next(rill_ctx_state(ctx, "map"), &pos, &k, &kl, &v, &vl)) == 1) {
        int j = 0;
        while (j < NMKEYS && !same_mkey(s->id, j, k, kl))
            j++;
        if (j == NMKEYS || vl != 8)
            return FAIL(ctx, "key %u: a map key of %zu bytes that is not its own", s->id, kl);
        if (j <= prev)
            return FAIL(ctx, "key %u: map key %d after map key %d", s->id, j, prev);
        uint64_t x;
        memcpy(&x, v, 8);
        s->map_n++;
        s->map_sum += kl * 1000 + x;
        prev = j;
    }
    return rc;
}

static int update_all(rill_ctx *ctx, const rec *x)
{
    uint64_t count = 0;
    int rc = get_u64(rill_ctx_state(ctx, "count"), &count);
    if (rc && rc != RILL_ENOTFOUND)
        return FAIL(ctx, "key %u: count: %s", x->id, rill_err_name(rc));
    count++;
    unsigned char *mk = malloc(mkey_lens[NMKEYS - 1]);
    if (!mk)
        return -1;
    int j = (int)((x->seq / NKEYS) % NMKEYS);
    make_mkey(x->id, j, mk);
    if ((rc = rill_state_put(rill_ctx_state(ctx, "count"), &count, 8)) != RILL_OK ||
        (rc = rill_state_add(rill_ctx_state(ctx, "items"), &x->seq, 8)) != RILL_OK ||
        (rc = rill_state_map_put(rill_ctx_state(ctx, "map"), mk, mkey_lens[j], &x->seq, 8)) !=
            RILL_OK ||
        (rc = rill_state_add(rill_ctx_state(ctx, "sum"), &x->seq, 8)) != RILL_OK ||
        (rc = rill_state_add(rill_ctx_state(ctx, "agg"), &x->seq, 8)) != RILL_OK)
        rc = FAIL(ctx, "key %u: a state update failed: %s", x->id, rill_err_name(rc));
    free(mk);
    return rc;
}

static int every_kind(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ud;
    rec x;
    if (len != sizeof x)
        return -1;
    memcpy(&x, r, sizeof x);
    const void *key;
    size_t kl;
    unsigned char *want = malloc(RILL_KEY_MAX);
    int same = want && rill_ctx_key(ctx, &key, &kl) == RILL_OK && kl == key_len_of(x.id);
    if (same) {
        make_key(x.id, kl, want);
        same = !memcmp(key, want, kl);
    }
    free(want);
    if (!same)
        return FAIL(ctx, "key %u: the current key is not its key", x.id);
    int rc = update_all(ctx, &x);
    if (rc)
        return rc;
    summary s = {x.id, (uint32_t)kl, 0, 0, 0, 0, 0, 0, 0, 0};
    uint64_t sum, acc[2];
    const void *p;
    size_t n;
    if (get_u64(rill_ctx_state(ctx, "count"), &s.count) || read_list(ctx, &s) ||
        read_map(ctx, &s) || get_u64(rill_ctx_state(ctx, "sum"), &sum) ||
        rill_state_get(rill_ctx_state(ctx, "agg"), &p, &n) || n != 16)
        return FAIL(ctx, "key %u: reading the state back failed", x.id);
    memcpy(acc, p, 16);
    s.sum = (int64_t)sum;
    s.agg_n = acc[0];
    s.agg_max = acc[1];
    return rill_emit(ctx, &s, sizeof s);
}

/* The sink keeps, per key, the summary of the most records. */
typedef struct outs {
    pthread_mutex_t mu;
    summary last[NKEYS];
    atomic_long seen;
} outs;

static int keep_summary(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx;
    outs *o = ud;
    summary s;
    if (len != sizeof s)
        return -1;
    memcpy(&s, r, sizeof s);
    if (s.id >= NKEYS)
        return -1;
    pthread_mutex_lock(&o->mu);
    if (s.count > o->last[s.id].count)
        o->last[s.id] = s;
    pthread_mutex_unlock(&o->mu);
    atomic_fetch_add(&o->seen, 1);
    return 0;
}

/* A source of records seq in [from, to), then (hold set) idle until
 * canceled. */
typedef struct feed {
    uint64_t next, to;
    int hold;
} feed;

static int feed_step(rill_ctx *ctx, void *ud)
{
    feed *f = ud;
    if (f->next == f->to)
        return f->hold ? RILL_SOURCE_IDLE : RILL_SOURCE_END;
    rec x = {(uint32_t)(f->next % NKEYS), 0, f->next};
    f->next++;
    int rc = rill_emit(ctx, &x, sizeof x);
    return rc ? rc : RILL_SOURCE_MORE;
}

static rill_env *every_kind_env(int p, size_t cache, feed *f, outs *o)
{
    rill_env *env = new_env(p);
    char sd[256];
    tmp_path(sd, sizeof sd, "state");
    cr_assert_eq(rill_env_set_state_dir(env, sd), RILL_OK);
    if (cache)
        cr_assert_eq(rill_env_set_state_cache_size(env, cache), RILL_OK);
    rill_stream *s = rill_stream_set_parallelism(rill_source(env, "feed", feed_step, f), 1);
    s = rill_process(rill_key_by(s, key_fn, NULL), "every kind", every_kind, NULL, NULL);
    s = rill_stream_set_uid(s, "every-kind");
    rill_stream_add_state(s, "count", RILL_STATE_VALUE);
    rill_stream_add_state(s, "items", RILL_STATE_LIST);
    rill_stream_add_state(s, "map", RILL_STATE_MAP);
    rill_stream_add_reducing_state(s, "sum", sum_i64, NULL);
    cr_assert_not_null(rill_stream_add_aggregating_state(s, "agg", &acc_fns, NULL));
    rill_sink(s, "out", keep_summary, o);
    return env;
}

/* The summary of key id once the records seq < n have been processed. */
static summary expected(uint32_t id, uint64_t n)
{
    summary s = {id, (uint32_t)key_len_of(id), 0, 0, 0, 0, 0, 0, 0, 0};
    uint64_t map_val[NMKEYS];
    int has[NMKEYS] = {0};
    for (uint64_t seq = id; seq < n; seq += NKEYS) {
        int j = (int)((seq / NKEYS) % NMKEYS);
        s.count++;
        s.items++;
        s.items_sum += seq;
        s.sum += (int64_t)seq;
        s.agg_n++;
        s.agg_max = seq;
        map_val[j] = seq;
        has[j] = 1;
    }
    for (int j = 0; j < NMKEYS; j++)
        if (has[j]) {
            s.map_n++;
            s.map_sum += mkey_lens[j] * 1000 + map_val[j];
        }
    return s;
}

static void expect_summaries(const outs *o, uint64_t n)
{
    for (uint32_t id = 0; id < NKEYS; id++) {
        summary w = expected(id, n), g = o->last[id];
        cr_assert_eq(g.key_len, w.key_len, "key %u: key of %u bytes, want %u", id, g.key_len,
                     w.key_len);
        cr_assert_eq(g.count, w.count, "key %u (%u bytes): count %llu, want %llu", id,
                     w.key_len, (unsigned long long)g.count, (unsigned long long)w.count);
        cr_assert_eq(g.items, w.items, "key %u (%u bytes): list", id, w.key_len);
        cr_assert_eq(g.items_sum, w.items_sum, "key %u (%u bytes): list", id, w.key_len);
        cr_assert_eq(g.map_n, w.map_n, "key %u (%u bytes): map", id, w.key_len);
        cr_assert_eq(g.map_sum, w.map_sum, "key %u (%u bytes): map", id, w.key_len);
        cr_assert_eq(g.sum, w.sum, "key %u (%u bytes): reducing", id, w.key_len);
        cr_assert_eq(g.agg_n, w.agg_n, "key %u (%u bytes): aggregating", id, w.key_len);
        cr_assert_eq(g.agg_max, w.agg_max, "key %u (%u bytes): aggregating", id, w.key_len);
    }
}

static void run_every_kind(size_t cache)
{
    const uint64_t n = (uint64_t)NKEYS * PER_KEY;
    feed f = {0, n, 0};
    outs o;
    memset(&o, 0, sizeof o);
    pthread_mutex_init(&o.mu, NULL);
    rill_env *env = every_kind_env(2, cache, &f, &o);
    run_ok(env);
    rill_env_free(env);
    cr_assert_eq(atomic_load(&o.seen), (long)n);
    expect_summaries(&o, n);
    pthread_mutex_destroy(&o.mu);
}

Test(longkey_job, every_keyed_kind_with_long_keys_and_long_map_keys)
{
    run_every_kind(0);
}

/* 1 MiB of cache per subtask for several MiB of state: entries go to LMDB
 * and are read back. */
Test(longkey_job, every_keyed_kind_with_the_cache_spilling_to_lmdb)
{
    run_every_kind((size_t)1 << 20);
}

/* Phase one at parallelism 2, stopped with a savepoint once its records
 * are processed; phase two restores it at parallelism p2 and goes on. */
static void savepoint_then_resume(int p2, size_t cache)
{
    const uint64_t n = (uint64_t)NKEYS * PER_KEY, half = n / 2;
    feed f = {0, half, 1};
    outs o;
    memset(&o, 0, sizeof o);
    pthread_mutex_init(&o.mu, NULL);
    rill_env *env = every_kind_env(2, cache, &f, &o);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "phase one"), RILL_OK, "%s", rill_env_errmsg(env));
    for (int i = 0; i < 6000 && atomic_load(&o.seen) < (long)half; i++)
        sleep_ms(5);
    cr_assert_eq(atomic_load(&o.seen), (long)half, "phase one: %ld summaries in 30 s",
                 atomic_load(&o.seen));
    char sp[256];
    tmp_path(sp, sizeof sp, "savepoint");
    cr_assert_eq(rill_job_savepoint(job, sp, 1), RILL_OK, "%s", rill_job_errmsg(job));
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    rill_job_free(job);
    rill_env_free(env);
    expect_summaries(&o, half);

    feed g = {half, n, 0};
    env = every_kind_env(p2, cache, &g, &o);
    cr_assert_eq(rill_env_set_restore(env, sp, 0), RILL_OK);
    run_ok(env);
    rill_env_free(env);
    expect_summaries(&o, n);
    pthread_mutex_destroy(&o.mu);
}

Test(longkey_job, savepoint_restored_at_parallelism_3)
{
    savepoint_then_resume(3, 0);
}

Test(longkey_job, savepoint_restored_at_parallelism_1_with_the_cache_spilling)
{
    savepoint_then_resume(1, (size_t)1 << 20);
}

/* ---- TTL, through a harness ------------------------------------------------ */

#define H_OK(h, call) \
    cr_assert_eq((call), RILL_OK, "%s: %s", #call, rill_harness_errmsg(h))

/* A record {id, j, seq}: value seq, list item seq, map key j -> seq. */
static int ttl_fn(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ud;
    rec x;
    if (len != sizeof x)
        return -1;
    memcpy(&x, r, sizeof x);
    if (x.j >= NMKEYS)
        return -1;
    unsigned char *mk = malloc(mkey_lens[x.j]);
    if (!mk)
        return -1;
    make_mkey(x.id, (int)x.j, mk);
    int rc = rill_state_put(rill_ctx_state(ctx, "v"), &x.seq, 8);
    if (!rc)
        rc = rill_state_add(rill_ctx_state(ctx, "l"), &x.seq, 8);
    if (!rc)
        rc = rill_state_map_put(rill_ctx_state(ctx, "m"), mk, mkey_lens[x.j], &x.seq, 8);
    free(mk);
    return rc;
}

/* The state of a key: its value (UINT64_MAX: none), its list items and map
 * entries (count, and sum of map key length * 1000 + value). */
typedef struct ttl_view {
    uint64_t v, l_n, l_sum, m_n, m_sum;
} ttl_view;

static ttl_view ttl_read(rill_harness *h, const unsigned char *key, size_t kl)
{
    ttl_view s = {UINT64_MAX, 0, 0, 0, 0};
    if (get_u64(rill_harness_state(h, "v", key, kl), &s.v) != RILL_OK)
        s.v = UINT64_MAX;
    size_t pos = 0, n, vl;
    const void *p, *k;
    uint64_t x;
    while (rill_state_list_next(rill_harness_state(h, "l", key, kl), &pos, &p, &n) == 1) {
        memcpy(&x, p, 8);
        s.l_n++;
        s.l_sum += x;
    }
    rill_state *m = rill_harness_state(h, "m", key, kl);
    for (pos = 0; rill_state_map_next(m, &pos, &k, &n, &p, &vl) == 1;) {
        memcpy(&x, p, 8);
        s.m_n++;
        s.m_sum += n * 1000 + x;
    }
    return s;
}

/* Key id got seq id (map key 0, 1 byte) at time 0 and seq 1000 + id (map
 * key 1, 600 bytes) at time 60; first and second tell which still live. */
static void expect_ttl(rill_harness *h, unsigned char *key, int first, int second,
                       const char *when)
{
    for (uint32_t id = 0; id < NLENS; id++) {
        size_t kl = key_len_of(id);
        make_key(id, kl, key);
        ttl_view g = ttl_read(h, key, kl), w = {UINT64_MAX, 0, 0, 0, 0};
        if (second)
            w.v = 1000 + id; /* the value of time 60 replaced the first */
        if (first) {
            w.l_n++, w.l_sum += id;
            w.m_n++, w.m_sum += mkey_lens[0] * 1000 + id;
        }
        if (second) {
            w.l_n++, w.l_sum += 1000 + id;
            w.m_n++, w.m_sum += mkey_lens[1] * 1000 + 1000 + id;
        }
        cr_assert_eq(g.v, w.v, "%s, key of %zu bytes: value %llu", when, kl,
                     (unsigned long long)g.v);
        cr_assert_eq(g.l_n, w.l_n, "%s, key of %zu bytes: list", when, kl);
        cr_assert_eq(g.l_sum, w.l_sum, "%s, key of %zu bytes: list", when, kl);
        cr_assert_eq(g.m_n, w.m_n, "%s, key of %zu bytes: map", when, kl);
        cr_assert_eq(g.m_sum, w.m_sum, "%s, key of %zu bytes: map", when, kl);
    }
}

Test(longkey_job, ttl_expires_the_state_of_long_keys)
{
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_set_state_dir(env, tmpdir), RILL_OK);
    rill_stream *in = rill_key_by(rill_harness_input(env, "in"), key_fn, NULL);
    rill_stream *p = rill_process(in, "ttl", ttl_fn, NULL, NULL);
    rill_stream_add_state(p, "v", RILL_STATE_VALUE);
    rill_stream_add_state(p, "l", RILL_STATE_LIST);
    rill_stream_add_state(p, "m", RILL_STATE_MAP);
    rill_stream_set_state_ttl(p, "v", 100);
    rill_stream_set_state_ttl(p, "l", 100);
    cr_assert_not_null(rill_stream_set_state_ttl(p, "m", 100));
    rill_harness *h = NULL;
    cr_assert_eq(rill_harness_new(&h, env, p), RILL_OK, "%s", rill_env_errmsg(env));
    unsigned char *key = malloc(RILL_KEY_MAX);
    cr_assert_not_null(key);
    for (uint32_t round = 0; round < 2; round++) {
        H_OK(h, rill_harness_set_time(h, round * 60));
        for (uint32_t id = 0; id < NLENS; id++) {
            rec x = {id, round, round * 1000 + id};
            H_OK(h, rill_harness_push(h, 0, &x, sizeof x, 0));
        }
    }
    H_OK(h, rill_harness_set_time(h, 99));
    expect_ttl(h, key, 1, 1, "at 99 ms");
    H_OK(h, rill_harness_set_time(h, 100));
    expect_ttl(h, key, 0, 1, "at 100 ms");
    H_OK(h, rill_harness_set_time(h, 160));
    expect_ttl(h, key, 0, 0, "at 160 ms");
    rill_harness_free(h);
    rill_env_free(env);
    free(key);
}

/* ---- the store, driven directly ----------------------------------------------- */

static unsigned char big_key[RILL_KEY_MAX];

/* Make key id of len bytes the current key, in key group kg (or, with kg
 * < 0, the key group of its hash, as the runtime chooses it). */
static void use_key(fix *f, uint32_t id, size_t len, int kg)
{
    make_key(id, len, big_key);
    f->op.key = big_key;
    f->op.key_len = len;
    f->op.kg = (uint16_t)(kg >= 0 ? kg : (int)(XXH3_64bits(big_key, len) % MAXP));
}

static void put_u64(rill_state *st, uint64_t v)
{
    cr_assert_eq(rill_state_put(st, &v, 8), RILL_OK);
}

static void add_u64(rill_state *st, uint64_t v)
{
    cr_assert_eq(rill_state_add(st, &v, 8), RILL_OK);
}

static void map_put_j(fix *f, uint32_t id, int j, uint64_t v)
{
    static unsigned char mk[70000];
    make_mkey(id, j, mk);
    cr_assert_eq(rill_state_map_put(S(f, "m"), mk, mkey_lens[j], &v, 8), RILL_OK);
}

/* What key id holds: value v (UINT64_MAX: none), list items l[0..nl), map
 * values m[j] (UINT64_MAX: no entry j). */
typedef struct kstate {
    uint64_t v;
    uint64_t l[4];
    size_t nl;
    uint64_t m[NMKEYS];
} kstate;

static void fill(fix *f, uint32_t id, const kstate *k)
{
    if (k->v != UINT64_MAX)
        put_u64(S(f, "v"), k->v);
    for (size_t i = 0; i < k->nl; i++)
        add_u64(S(f, "l"), k->l[i]);
    for (int j = 0; j < NMKEYS; j++)
        if (k->m[j] != UINT64_MAX)
            map_put_j(f, id, j, k->m[j]);
}

/* The current key (id) holds exactly k. */
static void check(fix *f, uint32_t id, const kstate *k, const char *when)
{
    size_t kl = f->op.key_len;
    uint64_t v = UINT64_MAX;
    int rc = get_u64(S(f, "v"), &v);
    cr_assert(rc == RILL_OK || rc == RILL_ENOTFOUND, "%s", rill_err_name(rc));
    cr_assert_eq(v, k->v, "%s, key %u of %zu bytes: value %llu, want %llu", when, id, kl,
                 (unsigned long long)v, (unsigned long long)k->v);
    size_t pos = 0, n, i = 0;
    const void *p;
    while ((rc = rill_state_list_next(S(f, "l"), &pos, &p, &n)) == 1) {
        cr_assert_lt(i, k->nl, "%s, key %u of %zu bytes: list too long", when, id, kl);
        cr_assert(n == 8 && !memcmp(p, &k->l[i], 8), "%s, key %u of %zu bytes: list item %zu",
                  when, id, kl, i);
        i++;
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(i, k->nl, "%s, key %u of %zu bytes: %zu list items", when, id, kl, i);
    /* The map's entries come in map key order: 1 byte first (its byte is
     * below the others' first), then 600, then 70000 bytes. */
    const void *mk;
    size_t mkl, vl;
    int j = 0;
    for (pos = 0; (rc = rill_state_map_next(S(f, "m"), &pos, &mk, &mkl, &p, &vl)) == 1; j++) {
        while (j < NMKEYS && k->m[j] == UINT64_MAX)
            j++;
        cr_assert_lt(j, NMKEYS, "%s, key %u of %zu bytes: an extra map entry", when, id, kl);
        cr_assert(same_mkey(id, j, mk, mkl), "%s, key %u of %zu bytes: map key %d", when, id,
                  kl, j);
        cr_assert(vl == 8 && !memcmp(p, &k->m[j], 8), "%s, key %u: map value %d", when, id, j);
    }
    cr_assert_eq(rc, 0);
    while (j < NMKEYS && k->m[j] == UINT64_MAX)
        j++;
    cr_assert_eq(j, NMKEYS, "%s, key %u of %zu bytes: map entry %d missing", when, id, kl, j);
}

/* Subtask subtask of p of operator "op" with states v (value), l (list)
 * and m (map), of a TTL of ttl ms (0: none). */
static fix *open_vlm(int subtask, int p, size_t cache, int64_t ttl)
{
    fix *f = fx_new("op", subtask, p);
    fx_add(f, "v", RILL_STATE_VALUE)->ttl = ttl;
    fx_add(f, "l", RILL_STATE_LIST)->ttl = ttl;
    fx_add(f, "m", RILL_STATE_MAP)->ttl = ttl;
    fx_open(f, cache);
    return f;
}

static size_t records(fix *f, const char *state)
{
    size_t n = 0;
    cr_assert_eq(rill__kv_db_count(f->op.kv, S(f, state)->sid, &n), RILL_OK);
    return n;
}

static void to_lmdb(fix *f)
{
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK, "%s", rill__kv_errmsg(f->op.kv));
}

/* The numbers (last 4 bytes, BE) of the long records of sid, as a bit set;
 * every one must be under the same key group and hash. */
static unsigned chain(fix *f, const char *state)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    cr_assert_eq(mdb_txn_begin(rill__kv_env(f->op.kv), NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_cursor_open(txn, rill__kv_dbi(f->op.kv, S(f, state)->sid), &cur), 0);
    MDB_val k, v;
    unsigned set = 0;
    unsigned char first[20];
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *p = k.mv_data;
        cr_assert_eq(k.mv_size, 24, "a long record's key is 24 bytes");
        if (!set)
            memcpy(first, p, 20);
        cr_assert_eq(memcmp(first, p, 20), 0, "key group and hash differ");
        cr_assert_eq(p[20] | p[21] | p[22], 0);
        set |= 1u << p[23];
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return set;
}

static void same_hash(const void *p, size_t len, unsigned char *out)
{
    (void)p;
    (void)len;
    memset(out, 0xAB, 16);
}

/* Key id's state in the collision tests. */
static kstate collided(uint32_t id, int round)
{
    kstate k = {1000 * (uint64_t)round + id, {id, id + 100, 0, 0}, 2, {UINT64_MAX, id, id * 3}};
    return k;
}

/* Keys 0..4 of 600 (0, 1, 2), 4000 and 65535 bytes, all in key group 3. */
static size_t collided_len(uint32_t id) { return id < 3 ? 600 : id == 3 ? 4000 : 65535; }

Test(longkey_store, keys_whose_hashes_collide_keep_their_own_state)
{
    rill__kv_long_hash = same_hash;
    fix *f = open_vlm(0, 1, 1 << 20, 0);
    for (uint32_t id = 0; id < 5; id++) {
        use_key(f, id, collided_len(id), 3);
        kstate k = collided(id, 0);
        fill(f, id, &k);
    }
    to_lmdb(f);
    cr_assert_eq(chain(f, "v"), 0x1f);
    cr_assert_eq(chain(f, "m"), 0x1f); /* map keys of 1 byte too: the keys are long */
    for (uint32_t id = 0; id < 5; id++) {
        use_key(f, id, collided_len(id), 3);
        kstate k = collided(id, 0);
        check(f, id, &k, "read back");
    }
    /* Delete keys 0 and 2 (gaps in the chain of equal hashes), then add
     * key 5 and key 0 again: they take the free places. */
    for (uint32_t id = 0; id < 3; id += 2) {
        use_key(f, id, collided_len(id), 3);
        cr_assert_eq(rill_state_clear(S(f, "v")), RILL_OK);
        cr_assert_eq(rill_state_clear(S(f, "l")), RILL_OK);
        cr_assert_eq(rill_state_clear(S(f, "m")), RILL_OK);
    }
    to_lmdb(f);
    cr_assert_eq(chain(f, "v"), 0x1a);
    kstate none = {UINT64_MAX, {0}, 0, {UINT64_MAX, UINT64_MAX, UINT64_MAX}};
    for (uint32_t id = 0; id < 5; id++) {
        use_key(f, id, collided_len(id), 3);
        kstate k = collided(id, 0);
        check(f, id, id == 0 || id == 2 ? &none : &k, "after deleting keys 0 and 2");
    }
    for (uint32_t id = 0; id < 6; id += 5) {
        use_key(f, id, 600, 3);
        kstate k = collided(id, 1);
        fill(f, id, &k);
    }
    to_lmdb(f);
    cr_assert_eq(chain(f, "v"), 0x1f);
    for (uint32_t id = 0; id < 6; id++) {
        use_key(f, id, id == 5 ? 600 : collided_len(id), 3);
        kstate k = collided(id, id == 0 || id == 5);
        check(f, id, id == 2 ? &none : &k, "after adding keys 5 and 0");
    }
    fx_free(f);
}

/* A map of an 8-byte key whose map keys are 'a', 'b' x 600, 'c' x (the
 * longest that fits a direct record), 'd' x (one more) and 'e' x 70000:
 * a and c are direct records, the others one long record. */
static size_t split_len(fix *f, int i)
{
    size_t fit = rill__kv_max_key(f->op.kv) - 6 - 8;
    const size_t lens[5] = {1, 600, fit, fit + 1, 70000};
    return lens[i];
}

static unsigned char *split_key(fix *f, int i, size_t *len)
{
    static unsigned char mk[70000];
    *len = split_len(f, i);
    memset(mk, 'a' + i, *len);
    return mk;
}

/* The map holds the entries of the bit set `has` (value: 1 + index), in
 * order, and LMDB `recs` records once flushed. */
static void check_split(fix *f, unsigned has, size_t recs, const char *when)
{
    for (int pass = 0; pass < 2; pass++) {
        size_t pos = 0, kl, vl, len;
        const void *k, *v;
        int i = 0, rc;
        while ((rc = rill_state_map_next(S(f, "m"), &pos, &k, &kl, &v, &vl)) == 1) {
            while (i < 5 && !(has >> i & 1))
                i++;
            cr_assert_lt(i, 5, "%s: an extra map entry of %zu bytes", when, kl);
            unsigned char *want = split_key(f, i, &len);
            uint64_t x = (uint64_t)i + 1;
            cr_assert(kl == len && !memcmp(k, want, len), "%s: map key %d", when, i);
            cr_assert(vl == 8 && !memcmp(v, &x, 8), "%s: map value %d", when, i);
            i++;
        }
        cr_assert_eq(rc, 0);
        for (int j = 0; j < 5; j++) {
            unsigned char *mk = split_key(f, j, &len);
            rc = rill_state_map_get(S(f, "m"), mk, len, &v, &vl);
            cr_assert_eq(rc, (has >> j & 1) ? RILL_OK : RILL_ENOTFOUND, "%s: get %d: %s", when,
                         j, rill_err_name(rc));
        }
        to_lmdb(f); /* the second pass reads LMDB */
        cr_assert_eq(records(f, "m"), recs, "%s: %zu records", when, records(f, "m"));
    }
}

Test(longkey_store, a_map_split_between_direct_and_long_records)
{
    fix *f = open_vlm(0, 1, 1 << 20, 0);
    use_key(f, 7, 8, -1);
    size_t len;
    for (int i = 0; i < 5; i++) {
        uint64_t x = (uint64_t)i + 1;
        unsigned char *mk = split_key(f, i, &len);
        cr_assert_eq(rill_state_map_put(S(f, "m"), mk, len, &x, 8), RILL_OK);
    }
    check_split(f, 0x1f, 3, "all five");
    static const struct {
        int remove;
        unsigned has;
        size_t recs;
        const char *when;
    } steps[] = {{1, 0x1d, 3, "without b"},
                 {4, 0x0d, 3, "without b and e"},
                 {3, 0x05, 2, "only the direct records"},
                 {0, 0x04, 1, "only c"},
                 {2, 0x00, 0, "empty"}};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        unsigned char *mk = split_key(f, steps[s].remove, &len);
        cr_assert_eq(rill_state_map_remove(S(f, "m"), mk, len), RILL_OK);
        check_split(f, steps[s].has, steps[s].recs, steps[s].when);
    }
    uint64_t x = 5;
    unsigned char *mk = split_key(f, 4, &len);
    cr_assert_eq(rill_state_map_put(S(f, "m"), mk, len, &x, 8), RILL_OK);
    check_split(f, 0x10, 1, "only e");
    fx_free(f);
}

/* Background TTL cleanup of records in LMDB: long records of long keys
 * and the long record of a short key's long map keys shrink to what has
 * not expired, then go. */
Test(longkey_store, ttl_cleanup_shrinks_then_removes_long_records_in_lmdb)
{
    fix *f = open_vlm(0, 1, 1 << 20, 100);
    static const size_t lens[3] = {8, 600, 65535};
    for (int round = 0; round < 2; round++) {
        f->job.clock = 50 * round;
        for (uint32_t id = 0; id < 3; id++) {
            use_key(f, id, lens[id], -1);
            if (round == 0) {
                put_u64(S(f, "v"), id);
                map_put_j(f, id, 0, id);
                map_put_j(f, id, 2, id + 200);
            } else {
                map_put_j(f, id, 1, id + 100);
            }
            add_u64(S(f, "l"), id + 100 * (uint64_t)round);
        }
    }
    to_lmdb(f);
    /* The 8-byte key's map: map key 0 direct, 1 and 2 in a long record. */
    cr_assert_eq(records(f, "v"), 3);
    cr_assert_eq(records(f, "l"), 3);
    cr_assert_eq(records(f, "m"), 4);
    cr_assert_eq(rill__state_maintain(&f->op, 120), RILL_OK);
    cr_assert_eq(records(f, "v"), 0);
    cr_assert_eq(records(f, "l"), 3);
    cr_assert_eq(records(f, "m"), 3);
    f->job.clock = 120;
    for (uint32_t id = 0; id < 3; id++) {
        use_key(f, id, lens[id], -1);
        kstate k = {UINT64_MAX, {id + 100}, 1, {UINT64_MAX, id + 100, UINT64_MAX}};
        check(f, id, &k, "at 120 ms");
    }
    to_lmdb(f);
    cr_assert_eq(rill__state_maintain(&f->op, 150), RILL_OK);
    cr_assert_eq(records(f, "l"), 0);
    cr_assert_eq(records(f, "m"), 0);
    fx_free(f);
}

/* ---- snapshots --------------------------------------------------------------- */

#define SNAP_KEYS 32 /* then 8 more only ever in the cache */

static int owner_of(fix *f, int p) { return (int)((long)f->op.kg * p / MAXP); }

/* Key id as first written. */
static kstate first_state(uint32_t id)
{
    kstate a = {id, {id}, 1, {id, id + 1, id + 2}};
    return a;
}

/* Key id in the snapshot: as first written, changed after it went to
 * LMDB (id % 4 == 0), or cleared since (id % 4 == 1). Keys from SNAP_KEYS
 * on were never in LMDB. */
static kstate snap_state(uint32_t id)
{
    kstate b = {id + 1000, {id, id + 1000}, 2, {id + 1000, UINT64_MAX, id + 2}};
    kstate none = {UINT64_MAX, {0}, 0, {UINT64_MAX, UINT64_MAX, UINT64_MAX}};
    if (id >= SNAP_KEYS || id % 4 >= 2)
        return first_state(id);
    return id % 4 == 0 ? b : none;
}

/* Change key id (the current key) from its first state to snap_state. */
static void change(fix *f, uint32_t id)
{
    if (id % 4 == 0) {
        static unsigned char mk[70000];
        put_u64(S(f, "v"), id + 1000);
        add_u64(S(f, "l"), id + 1000);
        map_put_j(f, id, 0, id + 1000);
        make_mkey(id, 1, mk);
        cr_assert_eq(rill_state_map_remove(S(f, "m"), mk, mkey_lens[1]), RILL_OK);
    } else if (id % 4 == 1) {
        cr_assert_eq(rill_state_clear(S(f, "v")), RILL_OK);
        cr_assert_eq(rill_state_clear(S(f, "l")), RILL_OK);
        cr_assert_eq(rill_state_clear(S(f, "m")), RILL_OK);
    }
}

/* Subtask s of 2 with its keys, in LMDB and then changed in the cache, or
 * only in the cache; snapshotted into path. */
static void snap_subtask(int s, const char *path)
{
    fix *f = open_vlm(s, 2, 4 << 20, 0);
    for (uint32_t id = 0; id < SNAP_KEYS + 8; id++) {
        if (id == SNAP_KEYS)
            to_lmdb(f);
        use_key(f, id, key_len_of(id), -1);
        if (owner_of(f, 2) == s) {
            kstate a = first_state(id);
            fill(f, id, &a);
        }
    }
    for (uint32_t id = 0; id < SNAP_KEYS; id++) {
        use_key(f, id, key_len_of(id), -1);
        if (owner_of(f, 2) == s)
            change(f, id);
    }
    snap_file(f, path);
    fx_free(f);
}

/* Snapshot two subtasks (their hashes replaced by hash when not NULL),
 * restore at parallelism p2 (with the real hash): every key is exactly
 * where it belongs, and nowhere else. */
static void restore_at(int p2, void (*hash)(const void *, size_t, unsigned char *))
{
    const char *paths[2] = {NULL, NULL};
    char a[256], b[256];
    tmp_path(a, sizeof a, "s0.snap");
    tmp_path(b, sizeof b, "s1.snap");
    paths[0] = a;
    paths[1] = b;
    void (*real)(const void *, size_t, unsigned char *) = rill__kv_long_hash;
    if (hash)
        rill__kv_long_hash = hash;
    snap_subtask(0, a);
    snap_subtask(1, b);
    rill__kv_long_hash = real;
    kstate none = {UINT64_MAX, {0}, 0, {UINT64_MAX, UINT64_MAX, UINT64_MAX}};
    for (int s = 0; s < p2; s++) {
        fix *f = open_vlm(s, p2, 4 << 20, 0);
        restore_ok(f, paths, 2);
        for (int pass = 0; pass < 2; pass++) {
            char when[64];
            snprintf(when, sizeof when, "subtask %d of %d, pass %d", s, p2, pass);
            for (uint32_t id = 0; id < SNAP_KEYS + 8; id++) {
                use_key(f, id, key_len_of(id), -1);
                kstate k = snap_state(id);
                check(f, id, owner_of(f, p2) == s ? &k : &none, when);
            }
            to_lmdb(f);
        }
        fx_free(f);
    }
}

Test(longkey_store, snapshot_with_long_keys_restored_at_parallelism_3)
{
    restore_at(3, NULL);
}

Test(longkey_store, snapshot_with_long_keys_restored_at_parallelism_1)
{
    restore_at(1, NULL);
}

/* The snapshot holds whole keys, not hashes: written where every long key
 * of a key group has the same hash, read back with the real one. */
Test(longkey_store, snapshot_written_with_colliding_hashes_restored_with_the_real_hash)
{
    restore_at(2, same_hash);
}

/* ---- restore in parts ---------------------------------------------------------- */

/* Append to b a record of map key j of the current key, value v, as
 * rill__kv_load takes it. */
static size_t load_rec(fix *f, unsigned char *b, uint32_t id, int j, uint64_t v)
{
    size_t kl = f->op.key_len, ml = mkey_lens[j], n = 2 + 2 + kl + 2 + ml;
    uint32_t k32 = (uint32_t)n, v32 = 8;
    memcpy(b, &k32, 4);
    memcpy(b + 4, &v32, 4);
    unsigned char *k = b + 8;
    k[0] = (unsigned char)(f->op.kg >> 8);
    k[1] = (unsigned char)f->op.kg;
    k[2] = (unsigned char)(kl >> 8);
    k[3] = (unsigned char)kl;
    memcpy(k + 4, f->op.key, kl);
    k[4 + kl] = k[5 + kl] = 0; /* no namespace */
    make_mkey(id, j, k + 6 + kl);
    memcpy(k + n, &v, 8);
    return 8 + n + 8;
}

/* The entries of a long map that come in several loads, out of order, are
 * merged into one long record; a later entry replaces an equal one. */
Test(longkey_store, a_long_map_restored_in_parts_is_merged)
{
    fix *f = open_vlm(0, 1, 1 << 20, 0);
    unsigned char *b = malloc(4 * (16 + 6 + 65535 + 70000 + 8));
    cr_assert_not_null(b);
    unsigned sid = S(f, "m")->sid;
    use_key(f, 9, 65535, -1);
    size_t n = load_rec(f, b, 9, 2, 22);
    n += load_rec(f, b + n, 9, 0, 99);
    cr_assert_eq(rill__kv_load(f->op.kv, sid, b, n), RILL_OK, "%s", rill__kv_errmsg(f->op.kv));
    n = load_rec(f, b, 9, 1, 11);
    n += load_rec(f, b + n, 9, 0, 10);
    cr_assert_eq(rill__kv_load(f->op.kv, sid, b, n), RILL_OK, "%s", rill__kv_errmsg(f->op.kv));
    cr_assert_eq(records(f, "m"), 1);
    kstate k = {UINT64_MAX, {0}, 0, {10, 11, 22}};
    check(f, 9, &k, "after two loads");
    /* A key part whose lengths do not fit: refused, nothing written. */
    use_key(f, 9, 600, -1);
    n = load_rec(f, b, 9, 1, 12);
    b[8 + 2] = b[8 + 3] = 0xFF; /* a key of 65535 bytes in a record of 1210 */
    cr_assert_eq(rill__kv_load(f->op.kv, sid, b, n), RILL_EINVAL);
    assert_has(rill__kv_errmsg(f->op.kv), "malformed");
    cr_assert_eq(records(f, "m"), 1);
    use_key(f, 9, 65535, -1);
    check(f, 9, &k, "after a malformed load");
    free(b);
    fx_free(f);
}
