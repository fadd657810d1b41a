/* state_snapshot_test.c - snapshot and restore of an operator subtask's
 * state (src/state/snapshot.c): operator instances built by hand with
 * keyed, operator list and broadcast states and timers, snapshotted into
 * files and restored into fresh instances at the same and at other
 * parallelisms, byte for byte; corrupt files, unknown and changed states. */
#define TEST_NAME "state-snapshot"
#include "common.h"

#include <fcntl.h>
#include <lmdb.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "state/state_int.h"
#include "state_fixture.h"

/* The states of most tests: v value, l list, m map, r reducing (sum), ol
 * operator list, bc broadcast. */
static void fx_std(fix *f)
{
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_add(f, "l", RILL_STATE_LIST);
    fx_add(f, "m", RILL_STATE_MAP);
    fx_add(f, "r", RILL_STATE_REDUCING)->reduce = sum_i64;
    fx_add(f, "ol", RILL_STATE_OPERATOR_LIST);
    fx_add(f, "bc", RILL_STATE_BROADCAST);
}

/* ---- keys -------------------------------------------------------------- */

static uint16_t kg_of(uint64_t k) { return (uint16_t)(XXH3_64bits(&k, sizeof k) % MAXP); }
static int owner(uint16_t kg, int p) { return (int)((long)kg * p / MAXP); }

static void set_key(fix *f, uint64_t k)
{
    memcpy(f->keybuf, &k, 8);
    f->op.key = f->keybuf;
    f->op.key_len = 8;
    f->op.kg = kg_of(k);
}

/* ---- filling and checking one key ---------------------------------------- */

static void list_join(rill_state *st, char *out, size_t cap)
{
    size_t pos = 0, n, used = 0;
    const void *item;
    int rc;
    out[0] = '\0';
    while ((rc = rill_state_list_next(st, &pos, &item, &n)) == 1) {
        cr_assert_lt(used + n + 2, cap);
        if (used)
            out[used++] = ',';
        memcpy(out + used, item, n);
        used += n;
        out[used] = '\0';
    }
    cr_assert_eq(rc, 0);
}

static void map_join(rill_state *st, char *out, size_t cap)
{
    size_t pos = 0, kl, vl, used = 0;
    const void *k, *v;
    int rc;
    out[0] = '\0';
    while ((rc = rill_state_map_next(st, &pos, &k, &kl, &v, &vl)) == 1) {
        cr_assert_lt(used + kl + vl + 3, cap);
        if (used)
            out[used++] = ';';
        memcpy(out + used, k, kl);
        used += kl;
        out[used++] = '=';
        memcpy(out + used, v, vl);
        used += vl;
        out[used] = '\0';
    }
    cr_assert_eq(rc, 0);
}

static void map_put_str(rill_state *st, const char *k, const char *v)
{
    cr_assert_eq(rill_state_map_put(st, k, strlen(k), v, strlen(v)), RILL_OK);
}

static void add_str(rill_state *st, const char *s)
{
    cr_assert_eq(rill_state_add(st, s, strlen(s)), RILL_OK);
}

static void put_i64(rill_state *st, int64_t v)
{
    cr_assert_eq(rill_state_put(st, &v, sizeof v), RILL_OK);
}

/* Event-time timer of key k, if it has one. */
static int ev_timer(uint64_t k, int64_t *ts)
{
    *ts = 1000 + (int64_t)(k % 50);
    return k % 3 == 0;
}
/* Processing-time timer of key k, if it has one. */
static int pt_timer(uint64_t k, int64_t *ts)
{
    *ts = -5000 + (int64_t)(k % 20); /* negative times too */
    return k % 4 == 0;
}

static void expected_list(uint64_t k, char *out, size_t cap)
{
    if (k % 2)
        snprintf(out, cap, "a%llu,b%llu", (unsigned long long)k, (unsigned long long)k);
    else
        snprintf(out, cap, "a%llu", (unsigned long long)k);
}

static void expected_map(uint64_t k, char *out, size_t cap)
{
    if (k % 3 == 0)
        snprintf(out, cap, "x=%llu;y=%llu", (unsigned long long)k, (unsigned long long)(k * 7));
    else
        snprintf(out, cap, "x=%llu", (unsigned long long)k);
}

static void fill_key(fix *f, uint64_t k)
{
    char s[64];
    set_key(f, k);
    put_i64(S(f, "v"), (int64_t)k * 3);
    snprintf(s, sizeof s, "a%llu", (unsigned long long)k);
    add_str(S(f, "l"), s);
    if (k % 2) {
        snprintf(s, sizeof s, "b%llu", (unsigned long long)k);
        add_str(S(f, "l"), s);
    }
    snprintf(s, sizeof s, "%llu", (unsigned long long)k);
    map_put_str(S(f, "m"), "x", s);
    if (k % 3 == 0) {
        snprintf(s, sizeof s, "%llu", (unsigned long long)(k * 7));
        map_put_str(S(f, "m"), "y", s);
    }
    int64_t one = 1, kk = (int64_t)k;
    cr_assert_eq(rill_state_add(S(f, "r"), &kk, 8), RILL_OK);
    cr_assert_eq(rill_state_add(S(f, "r"), &one, 8), RILL_OK);
    int64_t ts;
    if (ev_timer(k, &ts))
        cr_assert_eq(rill__timers_add(f->op.timers[RILL_EVENT_TIME], ts, f->op.kg, &k, 8), 1);
    if (pt_timer(k, &ts))
        cr_assert_eq(rill__timers_add(f->op.timers[RILL_PROCESSING_TIME], ts, f->op.kg, &k, 8),
                     1);
}

static int64_t get_i64(rill_state *st)
{
    const void *p;
    size_t n;
    int rc = rill_state_get(st, &p, &n);
    cr_assert_eq(rc, RILL_OK, "get: %s", rill_err_name(rc));
    cr_assert_eq(n, 8);
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}

static int absent(rill_state *st)
{
    const void *p;
    size_t n;
    return rill_state_get(st, &p, &n) == RILL_ENOTFOUND;
}

/* Key k holds exactly what fill_key put (present) or nothing at all. */
static void check_key(fix *f, uint64_t k, int present)
{
    char got[128], want[128];
    set_key(f, k);
    if (!present) {
        cr_assert(absent(S(f, "v")), "key %llu: v present", (unsigned long long)k);
        cr_assert(absent(S(f, "r")), "key %llu: r present", (unsigned long long)k);
        list_join(S(f, "l"), got, sizeof got);
        cr_assert_str_eq(got, "", "key %llu", (unsigned long long)k);
        map_join(S(f, "m"), got, sizeof got);
        cr_assert_str_eq(got, "", "key %llu", (unsigned long long)k);
        return;
    }
    cr_assert_eq(get_i64(S(f, "v")), (int64_t)k * 3, "key %llu", (unsigned long long)k);
    cr_assert_eq(get_i64(S(f, "r")), (int64_t)k + 1, "key %llu", (unsigned long long)k);
    list_join(S(f, "l"), got, sizeof got);
    expected_list(k, want, sizeof want);
    cr_assert_str_eq(got, want);
    map_join(S(f, "m"), got, sizeof got);
    expected_map(k, want, sizeof want);
    cr_assert_str_eq(got, want);
}

/* Operator list of old subtask s: "s<s>e<i>" for i < 3 + 2s. */
static size_t oplist_len(int s) { return 3 + 2 * (size_t)s; }

static void fill_memory_states(fix *f)
{
    char s[48];
    for (size_t i = 0; i < oplist_len(f->op.subtask); i++) {
        snprintf(s, sizeof s, "s%de%zu", f->op.subtask, i);
        add_str(S(f, "ol"), s);
    }
    f->op.bc_side = 1;
    map_put_str(S(f, "bc"), "rule2", "two");
    map_put_str(S(f, "bc"), "rule1", "one");
    map_put_str(S(f, "bc"), "rule3", "");
    f->op.bc_side = 0;
}

/* ---- files ----------------------------------------------------------------- */


static char *tpath(const char *name)
{
    static char bufs[8][256];
    static int k;
    char *p = bufs[k++ & 7];
    tmp_path(p, sizeof bufs[0], name);
    return p;
}

static unsigned char *slurp(const char *path, size_t *len)
{
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    *len = (size_t)sb.st_size;
    unsigned char *b = malloc(*len + 1);
    cr_assert_not_null(b);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(read(fd, b, *len), (ssize_t)*len);
    close(fd);
    return b;
}

static void spit(const char *path, const void *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, b, len), (ssize_t)len);
    close(fd);
}

/* ---- looking at the store and the timers ------------------------------- */

static size_t db_count(fix *f, const char *state)
{
    size_t n = 0;
    cr_assert_eq(rill__kv_db_count(f->op.kv, S(f, state)->sid, &n), RILL_OK);
    return n;
}

/* Every record of a state's DBI as [u32 klen][key][u32 vlen][value]. */
static unsigned char *dump_db(fix *f, const char *state, size_t *len)
{
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
    MDB_txn *txn;
    MDB_cursor *cur;
    cr_assert_eq(mdb_txn_begin(rill__kv_env(f->op.kv), NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_cursor_open(txn, rill__kv_dbi(f->op.kv, S(f, state)->sid), &cur), 0);
    size_t cap = 4096, n = 0;
    unsigned char *b = malloc(cap);
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        size_t need = n + 8 + k.mv_size + v.mv_size;
        while (need > cap)
            b = realloc(b, cap *= 2);
        uint32_t kl = (uint32_t)k.mv_size, vl = (uint32_t)v.mv_size;
        memcpy(b + n, &kl, 4);
        memcpy(b + n + 4, k.mv_data, kl);
        memcpy(b + n + 4 + kl, &vl, 4);
        memcpy(b + n + 8 + kl, v.mv_data, vl);
        n = need;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    cr_assert_eq(rc, MDB_NOTFOUND);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    *len = n;
    return b;
}

static void expect_same_db(fix *a, fix *b, const char *state)
{
    size_t la, lb;
    unsigned char *x = dump_db(a, state, &la), *y = dump_db(b, state, &lb);
    cr_assert_eq(la, lb, "state %s: %zu bytes of records, want %zu", state, lb, la);
    cr_assert_eq(memcmp(x, y, la), 0, "state %s: records differ", state);
    free(x);
    free(y);
}

typedef struct tmr {
    int64_t ts;
    uint16_t kg;
    uint64_t key;
} tmr;

static int tmr_cmp(const void *pa, const void *pb)
{
    const tmr *a = pa, *b = pb;
    if (a->ts != b->ts)
        return a->ts < b->ts ? -1 : 1;
    return a->key < b->key ? -1 : a->key > b->key;
}

/* Pop every timer of domain d: they come in time order; returns them
 * sorted by (time, key). */
static tmr *pop_all(fix *f, int d, size_t *n)
{
    rill__timers *t = f->op.timers[d];
    size_t cap = rill__timers_count(t) + 1, i = 0;
    tmr *a = calloc(cap, sizeof *a);
    int64_t ts, prev = INT64_MIN;
    uint16_t kg;
    const void *key;
    size_t kl;
    while (rill__timers_pop(t, INT64_MAX, &ts, &kg, &key, &kl)) {
        cr_assert_lt(i, cap);
        cr_assert_eq(kl, 8);
        cr_assert_geq(ts, prev, "timers out of order");
        prev = ts;
        a[i].ts = ts;
        a[i].kg = kg;
        memcpy(&a[i].key, key, 8);
        i++;
    }
    qsort(a, i, sizeof *a, tmr_cmp);
    *n = i;
    return a;
}

/* The timers fill_key registers for the keys [0, nkeys) that subtask s of
 * p owns, sorted by (time, key). */
static tmr *want_timers(int d, uint64_t nkeys, int s, int p, size_t *n)
{
    tmr *a = calloc(nkeys + 1, sizeof *a);
    size_t i = 0;
    for (uint64_t k = 0; k < nkeys; k++) {
        int64_t ts;
        int has = d == RILL_EVENT_TIME ? ev_timer(k, &ts) : pt_timer(k, &ts);
        if (owner(kg_of(k), p) != s || !has)
            continue;
        a[i].ts = ts;
        a[i].kg = kg_of(k);
        a[i].key = k;
        i++;
    }
    qsort(a, i, sizeof *a, tmr_cmp);
    *n = i;
    return a;
}

static void check_timers(fix *f, uint64_t nkeys)
{
    for (int d = 0; d < 2; d++) {
        size_t ng, nw;
        tmr *got = pop_all(f, d, &ng);
        tmr *want = want_timers(d, nkeys, f->op.subtask, f->op.parallelism, &nw);
        cr_assert_eq(ng, nw, "domain %d: %zu timers, want %zu", d, ng, nw);
        for (size_t i = 0; i < ng; i++) {
            cr_assert_eq(got[i].ts, want[i].ts);
            cr_assert_eq(got[i].key, want[i].key);
            cr_assert_eq(got[i].kg, want[i].kg);
        }
        free(got);
        free(want);
    }
}

/* State present before a restore: key 999 (v = 5), an event-time timer,
 * an operator list element and a broadcast entry, all in LMDB or memory. */
static void preexisting(fix *f)
{
    set_key(f, 999);
    put_i64(S(f, "v"), 5);
    if (f->op.timers[RILL_EVENT_TIME])
        cr_assert_eq(rill__timers_add(f->op.timers[RILL_EVENT_TIME], 1, f->op.kg, f->keybuf, 8),
                     1);
    if (rill_ctx_state(&f->op, "ol"))
        add_str(S(f, "ol"), "pre");
    if (rill_ctx_state(&f->op, "bc")) {
        f->op.bc_side = 1;
        map_put_str(S(f, "bc"), "pre", "x");
        f->op.bc_side = 0;
    }
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
}

static uint64_t kv_flushes(fix *f)
{
    rill__kvstats st;
    rill__kv_stats(f->op.kv, &st);
    return st.flushes;
}

/* A failed restore changed nothing: what preexisting put is all there is,
 * and no write transaction ran since flushes was read. */
static void expect_untouched(fix *f, uint64_t flushes)
{
    cr_assert_eq(kv_flushes(f), flushes, "a write transaction ran");
    for (size_t i = 0; i < f->op.n_states; i++) {
        rill_state *st = f->op.states[i];
        if (rill__state_keyed_kind(st->kind)) {
            size_t n = 99;
            cr_assert_eq(rill__kv_db_count(f->op.kv, st->sid, &n), RILL_OK);
            cr_assert_eq(n, !strcmp(st->d->name, "v"), "state %s has %zu records", st->d->name,
                         n);
        }
    }
    set_key(f, 999);
    cr_assert_eq(get_i64(S(f, "v")), 5);
    if (f->op.timers[RILL_EVENT_TIME])
        cr_assert_eq(rill__timers_count(f->op.timers[RILL_EVENT_TIME]), 1);
    if (f->op.timers[RILL_PROCESSING_TIME])
        cr_assert_eq(rill__timers_count(f->op.timers[RILL_PROCESSING_TIME]), 0);
    char s[256];
    if (rill_ctx_state(&f->op, "ol")) {
        list_join(S(f, "ol"), s, sizeof s);
        cr_assert_str_eq(s, "pre");
    }
    if (rill_ctx_state(&f->op, "bc")) {
        map_join(S(f, "bc"), s, sizeof s);
        cr_assert_str_eq(s, "pre=x");
    }
}

/* Nothing restored: no record, timer, list element or map entry. */
static void expect_empty(fix *f)
{
    for (size_t i = 0; i < f->op.n_states; i++) {
        rill_state *st = f->op.states[i];
        if (rill__state_keyed_kind(st->kind)) {
            size_t n = 99;
            cr_assert_eq(rill__kv_db_count(f->op.kv, st->sid, &n), RILL_OK);
            cr_assert_eq(n, 0, "state %s has %zu records", st->d->name, n);
        }
    }
    for (int d = 0; d < 2; d++)
        if (f->op.timers[d])
            cr_assert_eq(rill__timers_count(f->op.timers[d]), 0);
    char s[256];
    if (rill_ctx_state(&f->op, "ol")) {
        list_join(S(f, "ol"), s, sizeof s);
        cr_assert_str_eq(s, "");
    }
    if (rill_ctx_state(&f->op, "bc")) {
        map_join(S(f, "bc"), s, sizeof s);
        cr_assert_str_eq(s, "");
    }
}

/* A subtask of parallelism p filled with the keys [0, nkeys) it owns. */
static fix *filled(const char *uid, int s, int p, uint64_t nkeys, size_t cache)
{
    fix *f = fx_new(uid, s, p);
    fx_std(f);
    fx_open(f, cache);
    for (uint64_t k = 0; k < nkeys; k++)
        if (owner(kg_of(k), p) == s)
            fill_key(f, k);
    fill_memory_states(f);
    return f;
}

static fix *fresh(const char *uid, int s, int p, size_t cache)
{
    fix *f = fx_new(uid, s, p);
    fx_std(f);
    fx_open(f, cache);
    return f;
}

TestSuite(state_snapshot, .init = mk_tmp, .fini = rm_tmp);
TestSuite(state_rescale, .init = mk_tmp, .fini = rm_tmp);
TestSuite(state_snapshot_corrupt, .init = mk_tmp, .fini = rm_tmp);
TestSuite(state_snapshot_compat, .init = mk_tmp, .fini = rm_tmp);

/* ---- same parallelism --------------------------------------------------- */

Test(state_snapshot, same_parallelism_restores_every_key_timer_and_list)
{
    const uint64_t nkeys = 3000;
    fix *a = filled("counter", 0, 1, nkeys, 64 << 20);
    snap_file(a, tpath("0.snap"));
    const char *paths[] = {tpath("0.snap")};
    fix *b = fresh("counter", 0, 1, 64 << 20);
    restore_ok(b, paths, 1);
    /* Byte for byte, before anything reads it. */
    expect_same_db(a, b, "v");
    expect_same_db(a, b, "l");
    expect_same_db(a, b, "m");
    expect_same_db(a, b, "r");
    for (uint64_t k = 0; k < nkeys; k++)
        check_key(b, k, 1);
    check_key(b, nkeys, 0);
    cr_assert_eq(rill__timers_count(b->op.timers[0]), rill__timers_count(a->op.timers[0]));
    cr_assert_eq(rill__timers_count(b->op.timers[1]), rill__timers_count(a->op.timers[1]));
    check_timers(b, nkeys);
    char s[256];
    list_join(S(b, "ol"), s, sizeof s);
    cr_assert_str_eq(s, "s0e0,s0e1,s0e2");
    map_join(S(b, "bc"), s, sizeof s);
    cr_assert_str_eq(s, "rule1=one;rule2=two;rule3=");
    fx_free(a);
    fx_free(b);
}

Test(state_snapshot, dirty_cached_entries_are_in_the_snapshot)
{
    fix *a = fresh("counter", 0, 1, 64 << 20);
    for (uint64_t k = 0; k < 100; k++)
        fill_key(a, k);
    cr_assert_eq(db_count(a, "v"), 0); /* all still in the cache */
    snap_file(a, tpath("0.snap"));
    const char *paths[] = {tpath("0.snap")};
    fix *b = fresh("counter", 0, 1, 64 << 20);
    restore_ok(b, paths, 1);
    cr_assert_eq(db_count(b, "v"), 100);
    cr_assert_eq(db_count(b, "m"), 100 + 34); /* one record per map entry */
    for (uint64_t k = 0; k < 100; k++)
        check_key(b, k, 1);
    fx_free(a);
    fx_free(b);
}

Test(state_snapshot, processing_time_timers_wake_the_operator)
{
    fix *a = fresh("counter", 0, 1, 1 << 20);
    for (uint64_t k = 0; k < 40; k++)
        fill_key(a, k);
    snap_file(a, tpath("0.snap"));
    const char *paths[] = {tpath("0.snap")};
    fix *b = fresh("counter", 0, 1, 1 << 20);
    cr_assert_eq(b->op.wake_at, INT64_MAX);
    restore_ok(b, paths, 1);
    cr_assert_eq(b->op.wake_at, -5000); /* key 0 */
    cr_assert_eq(b->sub.tick_at, -5000);
    fx_free(a);
    fx_free(b);
}

Test(state_snapshot, state_larger_than_the_cache)
{
    rill__kv_initial_map_size = (size_t)1 << 20; /* the restore grows the map too */
    const uint64_t nkeys = 40000;
    const size_t cache = (size_t)1 << 20;
    fix *a = fresh("counter", 0, 1, cache);
    unsigned char big[200];
    for (uint64_t k = 0; k < nkeys; k++) {
        fill_key(a, k);
        memset(big, (int)(k & 0xff), sizeof big);
        memcpy(big, &k, 8);
        cr_assert_eq(rill_state_put(S(a, "v"), big, sizeof big), RILL_OK);
    }
    rill__kvstats sa;
    rill__kv_stats(a->op.kv, &sa);
    cr_assert_gt(sa.spills, 0);
    snap_file(a, tpath("0.snap"));
    const char *paths[] = {tpath("0.snap")};
    fix *b = fresh("counter", 0, 1, cache);
    restore_ok(b, paths, 1);
    for (uint64_t k = 0; k < nkeys; k++) {
        set_key(b, k);
        const void *p;
        size_t n;
        cr_assert_eq(rill_state_get(S(b, "v"), &p, &n), RILL_OK);
        memset(big, (int)(k & 0xff), sizeof big);
        memcpy(big, &k, 8);
        cr_assert_eq(n, sizeof big);
        cr_assert_eq(memcmp(p, big, n), 0, "key %llu", (unsigned long long)k);
        cr_assert_eq(get_i64(S(b, "r")), (int64_t)k + 1);
    }
    rill__kvstats sb;
    rill__kv_stats(b->op.kv, &sb);
    cr_assert_gt(sb.map_grows, 0);
    cr_assert_gt(sb.evictions, 0); /* the cache could not hold it all */
    cr_assert_leq(sb.bytes, cache + cache / 4);
    check_timers(b, nkeys);
    fx_free(a);
    fx_free(b);
}

Test(state_snapshot, ttl_headers_survive_and_expired_values_stay_expired)
{
    fix *a = fx_new("counter", 0, 1);
    fx_add(a, "v", RILL_STATE_VALUE)->ttl = 100;
    fx_add(a, "l", RILL_STATE_LIST)->ttl = 100;
    fx_add(a, "m", RILL_STATE_MAP)->ttl = 100;
    fx_open(a, 1 << 20);
    a->job.clock = 0;
    set_key(a, 1);
    put_i64(S(a, "v"), 11);
    add_str(S(a, "l"), "early");
    map_put_str(S(a, "m"), "x", "early");
    a->job.clock = 80;
    add_str(S(a, "l"), "late");
    map_put_str(S(a, "m"), "y", "late");
    set_key(a, 2);
    put_i64(S(a, "v"), 22);
    snap_file(a, tpath("0.snap"));
    const char *paths[] = {tpath("0.snap")};

    fix *b = fx_new("counter", 0, 1);
    fx_add(b, "v", RILL_STATE_VALUE)->ttl = 100;
    fx_add(b, "l", RILL_STATE_LIST)->ttl = 100;
    fx_add(b, "m", RILL_STATE_MAP)->ttl = 100;
    fx_open(b, 1 << 20);
    restore_ok(b, paths, 1);
    expect_same_db(a, b, "v");
    expect_same_db(a, b, "l");
    expect_same_db(a, b, "m");
    char s[64];
    b->job.clock = 120;
    set_key(b, 1);
    cr_assert(absent(S(b, "v")));
    list_join(S(b, "l"), s, sizeof s);
    cr_assert_str_eq(s, "late");
    map_join(S(b, "m"), s, sizeof s);
    cr_assert_str_eq(s, "y=late");
    set_key(b, 2);
    cr_assert_eq(get_i64(S(b, "v")), 22);
    b->job.clock = 180;
    cr_assert(absent(S(b, "v")));
    set_key(b, 1);
    list_join(S(b, "l"), s, sizeof s);
    cr_assert_str_eq(s, "");
    fx_free(a);
    fx_free(b);
}

Test(state_snapshot, sections_per_state_and_key_group)
{
    const uint64_t nkeys = 500;
    fix *a = filled("counter", 0, 2, nkeys, 1 << 20);
    snap_file(a, tpath("0.snap"));
    rill__snap_reader *r;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_reader_open(&r, tpath("0.snap"), err), RILL_OK, "%s", err);
    rill__snap_section sec;
    int rc, infos = 0, timer_secs = 0, ol = 0, bc = 0;
    long last_kg = -1;
    char last_state[64] = "";
    size_t v_entries = 0, n_keys = 0;
    for (uint64_t k = 0; k < nkeys; k++)
        n_keys += owner(kg_of(k), 2) == 0;
    while ((rc = rill__snap_reader_next(r, &sec)) == 1) {
        cr_assert_str_eq(sec.uid, "counter");
        const void *k, *v;
        size_t kl, vl;
        int e;
        switch (sec.kind) {
        case RILL__SNAP_INFO:
            infos++;
            cr_assert_eq(sec.kg_first, RILL__SNAP_NO_KG);
            break;
        case RILL__SNAP_KEYED:
            cr_assert_eq(sec.kg_first, sec.kg_last);
            cr_assert_eq(owner(sec.kg_first, 2), 0, "key group %u", sec.kg_first);
            if (strcmp(last_state, sec.state)) {
                snprintf(last_state, sizeof last_state, "%s", sec.state);
                last_kg = -1;
            }
            cr_assert_gt(sec.kg_first, last_kg, "key groups in increasing order");
            last_kg = sec.kg_first;
            while ((e = rill__snap_reader_kv_next(r, &k, &kl, &v, &vl)) == 1) {
                const unsigned char *p = k;
                uint64_t key;
                cr_assert_geq(kl, 12);
                cr_assert_eq((p[0] << 8) | p[1], 8); /* key length, big-endian */
                memcpy(&key, p + 2, 8);
                cr_assert_eq(kg_of(key), sec.kg_first);
                cr_assert_eq((p[10] << 8) | p[11], 0); /* no namespace */
                if (!strcmp(sec.state, "v")) {
                    cr_assert_eq(kl, 12);
                    int64_t val;
                    cr_assert_eq(vl, 8);
                    memcpy(&val, v, 8);
                    cr_assert_eq(val, (int64_t)key * 3);
                    v_entries++;
                }
            }
            cr_assert_eq(e, 0);
            break;
        case RILL__SNAP_TIMERS:
            timer_secs++;
            cr_assert_eq(sec.kg_first, 0);
            cr_assert_eq(sec.kg_last, 63);
            cr_assert(!strcmp(sec.state, "event") || !strcmp(sec.state, "processing"));
            {
                int64_t prev = INT64_MIN; /* entries in time order */
                while ((e = rill__snap_reader_kv_next(r, &k, &kl, &v, &vl)) == 1) {
                    cr_assert_eq(kl, 18);
                    cr_assert_eq(vl, 0);
                    const unsigned char *p = k;
                    uint64_t key, u = 0;
                    memcpy(&key, p + 10, 8);
                    for (int i = 0; i < 8; i++)
                        u = (u << 8) | p[2 + i];
                    int64_t ts = (int64_t)(u ^ (UINT64_C(1) << 63)), want;
                    cr_assert(!strcmp(sec.state, "event") ? ev_timer(key, &want)
                                                          : pt_timer(key, &want));
                    cr_assert_eq(ts, want);
                    cr_assert_eq((p[0] << 8) | p[1], kg_of(key));
                    cr_assert_geq(ts, prev);
                    prev = ts;
                }
                cr_assert_eq(e, 0);
            }
            break;
        case RILL__SNAP_OPLIST:
            ol++;
            for (uint64_t i = 0; (e = rill__snap_reader_kv_next(r, &k, &kl, &v, &vl)) == 1; i++) {
                const unsigned char *p = k;
                cr_assert_eq(kl, 12);
                for (int j = 0; j < 4; j++)
                    cr_assert_eq(p[j], 0); /* subtask 0 */
                uint64_t idx = 0;
                for (int j = 0; j < 8; j++)
                    idx = (idx << 8) | p[4 + j];
                cr_assert_eq(idx, i);
                char want[48];
                snprintf(want, sizeof want, "s0e%llu", (unsigned long long)i);
                cr_assert_eq(vl, strlen(want));
                cr_assert_eq(memcmp(v, want, vl), 0);
            }
            cr_assert_eq(e, 0);
            break;
        case RILL__SNAP_BROADCAST:
            bc++;
            cr_assert_eq(rill__snap_reader_kv_next(r, &k, &kl, &v, &vl), 1);
            cr_assert_eq(kl, 5);
            cr_assert_eq(memcmp(k, "rule1", 5), 0);
            break;
        default:
            cr_assert_fail("section kind %u", sec.kind);
        }
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(infos, 6);
    cr_assert_eq(timer_secs, 2);
    cr_assert_eq(ol, 1);
    cr_assert_eq(bc, 1);
    cr_assert_eq(v_entries, n_keys);
    rill__snap_reader_close(r);
    fx_free(a);
}

Test(state_snapshot, other_operators_in_the_file_are_left_alone)
{
    fix *a = filled("counter", 0, 1, 50, 1 << 20);
    fix *o = filled("other", 0, 1, 80, 1 << 20);
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, tpath("0.snap"), err), RILL_OK);
    cr_assert_eq(rill__state_snapshot(&o->op, w, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__state_snapshot(&a->op, w, err), RILL_OK, "%s", err);
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK);
    const char *paths[] = {tpath("0.snap")};
    fix *b = fresh("counter", 0, 1, 1 << 20);
    restore_ok(b, paths, 1);
    cr_assert_eq(db_count(b, "v"), 50);
    for (uint64_t k = 0; k < 80; k++)
        check_key(b, k, k < 50);
    check_timers(b, 50);
    fx_free(a);
    fx_free(o);
    fx_free(b);
}

Test(state_snapshot, operator_without_resolved_uid_is_einval)
{
    fix *a = fresh("counter", 0, 1, 1 << 20);
    a->node.resolved_uid = NULL;
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, tpath("0.snap"), err), RILL_OK);
    cr_assert_eq(rill__state_snapshot(&a->op, w, err), RILL_EINVAL);
    assert_has(err, "counter");
    assert_has(err, "uid");
    rill__snap_writer_abort(w);
    const char *paths[] = {tpath("none.snap")};
    cr_assert_eq(restore(a, paths, 1, 0), RILL_EINVAL);
    assert_has(a->err, "uid");
    fx_free(a);
}

/* ---- other parallelisms --------------------------------------------------- */

/* Snapshot 2 subtasks at parallelism 2, restore into p subtasks. */
static void rescale(int p)
{
    const uint64_t nkeys = 4000;
    fix *old[2];
    const char *paths[2] = {tpath("0.snap"), tpath("1.snap")};
    size_t total = 0;
    for (int s = 0; s < 2; s++) {
        old[s] = filled("counter", s, 2, nkeys, 1 << 20);
        snap_file(old[s], paths[s]);
        cr_assert_eq(rill__state_flush(&old[s]->op), RILL_OK);
        total += db_count(old[s], "m");
    }
    /* Old operator list elements, in (subtask, index) order. */
    char all[16][48];
    size_t n_all = 0;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < oplist_len(s); i++)
            snprintf(all[n_all++], sizeof all[0], "s%de%zu", s, i);
    size_t restored = 0, elements = 0;
    for (int s = 0; s < p; s++) {
        fix *b = fresh("counter", s, p, 1 << 20);
        /* The files in the other order: the result does not depend on it. */
        const char *rev[2] = {paths[1], paths[0]};
        restore_ok(b, s % 2 ? rev : paths, 2);
        restored += db_count(b, "m");
        for (uint64_t k = 0; k < nkeys + 10; k++)
            check_key(b, k, k < nkeys && owner(kg_of(k), p) == s);
        check_timers(b, nkeys);
        char want[256] = "", got[256];
        for (size_t i = (size_t)s; i < n_all; i += (size_t)p) {
            if (want[0])
                strcat(want, ",");
            strcat(want, all[i]);
            elements++;
        }
        list_join(S(b, "ol"), got, sizeof got);
        cr_assert_str_eq(got, want, "subtask %d of %d", s, p);
        map_join(S(b, "bc"), got, sizeof got);
        cr_assert_str_eq(got, "rule1=one;rule2=two;rule3=");
        fx_free(b);
    }
    cr_assert_eq(restored, total, "every record once");
    cr_assert_eq(elements, n_all);
    fx_free(old[0]);
    fx_free(old[1]);
}

Test(state_rescale, from_2_to_1) { rescale(1); }
Test(state_rescale, from_2_to_2) { rescale(2); }
Test(state_rescale, from_2_to_3) { rescale(3); }
Test(state_rescale, from_2_to_4) { rescale(4); }

/* ---- corrupt files ---------------------------------------------------------- */

/* A small snapshot: a few keys, timers, operator list and broadcast. */
static void small_snapshot(const char *path)
{
    fix *a = filled("counter", 0, 1, 6, 1 << 20);
    snap_file(a, path);
    fx_free(a);
}

Test(state_snapshot_corrupt, every_flipped_byte_is_ecorrupt_and_applies_nothing)
{
    const char *good = tpath("good.snap"), *bad = tpath("bad.snap");
    small_snapshot(good);
    size_t len;
    unsigned char *b = slurp(good, &len);
    fix *f = fresh("counter", 0, 1, 1 << 20);
    preexisting(f);
    uint64_t flushes = kv_flushes(f);
    const char *paths[] = {bad};
    for (size_t i = 0; i < len; i++) {
        b[i] ^= 0x20;
        spit(bad, b, len);
        b[i] ^= 0x20;
        int rc = restore(f, paths, 1, 0);
        cr_assert_eq(rc, RILL_ECORRUPT, "byte %zu of %zu: %s (%s)", i, len, rill_err_name(rc),
                     f->err);
        assert_has(f->err, bad);
        if (i % 64 == 0)
            expect_untouched(f, flushes);
    }
    expect_untouched(f, flushes);
    spit(bad, b, len);
    restore_ok(f, paths, 1);
    for (uint64_t k = 0; k < 6; k++)
        check_key(f, k, 1);
    set_key(f, 999);
    cr_assert_eq(get_i64(S(f, "v")), 5);
    free(b);
    fx_free(f);
}

Test(state_snapshot_corrupt, every_truncation_is_ecorrupt_and_applies_nothing)
{
    const char *good = tpath("good.snap"), *bad = tpath("bad.snap");
    small_snapshot(good);
    size_t len;
    unsigned char *b = slurp(good, &len);
    fix *f = fresh("counter", 0, 1, 1 << 20);
    preexisting(f);
    uint64_t flushes = kv_flushes(f);
    const char *paths[] = {bad};
    for (size_t n = 0; n < len; n++) {
        spit(bad, b, n);
        int rc = restore(f, paths, 1, 0);
        cr_assert_eq(rc, RILL_ECORRUPT, "%zu of %zu bytes: %s (%s)", n, len, rill_err_name(rc),
                     f->err);
        assert_has(f->err, bad);
    }
    expect_untouched(f, flushes);
    free(b);
    fx_free(f);
}

Test(state_snapshot_corrupt, a_corrupt_second_file_applies_nothing_of_the_first)
{
    const char *paths[2] = {tpath("0.snap"), tpath("1.snap")};
    for (int s = 0; s < 2; s++) {
        fix *a = filled("counter", s, 2, 2000, 1 << 20);
        snap_file(a, paths[s]);
        fx_free(a);
    }
    size_t len;
    unsigned char *b = slurp(paths[1], &len);
    b[len / 2] ^= 1; /* inside a keyed section */
    spit(paths[1], b, len);
    free(b);
    fix *f = fresh("counter", 0, 1, 1 << 20);
    preexisting(f);
    uint64_t flushes = kv_flushes(f);
    cr_assert_eq(restore(f, paths, 2, 0), RILL_ECORRUPT);
    assert_has(f->err, paths[1]);
    expect_untouched(f, flushes);
    check_key(f, 0, 0);
    fx_free(f);
}

Test(state_snapshot_corrupt, a_missing_file_is_enotfound_naming_it)
{
    const char *paths[2] = {tpath("0.snap"), tpath("missing.snap")};
    small_snapshot(paths[0]);
    fix *f = fresh("counter", 0, 1, 1 << 20);
    preexisting(f);
    uint64_t flushes = kv_flushes(f);
    cr_assert_eq(restore(f, paths, 2, 0), RILL_ENOTFOUND);
    assert_has(f->err, paths[1]);
    expect_untouched(f, flushes);
    fx_free(f);
}

/* ---- changed operators --------------------------------------------------- */

/* An operator with states v and gone (value), snapshotted with a few keys. */
static void snapshot_with_extra_state(const char *path)
{
    fix *a = fx_new("counter", 0, 1);
    fx_add(a, "v", RILL_STATE_VALUE);
    fx_add(a, "gone", RILL_STATE_VALUE);
    fx_open(a, 1 << 20);
    for (uint64_t k = 0; k < 20; k++) {
        set_key(a, k);
        put_i64(S(a, "v"), (int64_t)k);
        put_i64(S(a, "gone"), -(int64_t)k);
    }
    snap_file(a, path);
    fx_free(a);
}

Test(state_snapshot_compat, undeclared_state_is_einval_naming_uid_and_state)
{
    const char *paths[] = {tpath("0.snap")};
    snapshot_with_extra_state(paths[0]);
    fix *b = fx_new("counter", 0, 1);
    fx_add(b, "v", RILL_STATE_VALUE);
    fx_open(b, 1 << 20);
    preexisting(b);
    uint64_t flushes = kv_flushes(b);
    cr_assert_eq(restore(b, paths, 1, 0), RILL_EINVAL);
    assert_has(b->err, "state 'gone' of operator 'counter' in the snapshot is not declared");
    assert_has(b->err, paths[0]);
    expect_untouched(b, flushes);
    fx_free(b);
}

Test(state_snapshot_compat, allow_unknown_skips_undeclared_state)
{
    const char *paths[] = {tpath("0.snap")};
    snapshot_with_extra_state(paths[0]);
    fix *b = fx_new("counter", 0, 1);
    fx_add(b, "v", RILL_STATE_VALUE);
    fx_add(b, "new", RILL_STATE_VALUE);
    fx_open(b, 1 << 20);
    cr_assert_eq(restore(b, paths, 1, 1), RILL_OK, "%s", b->err);
    cr_assert_eq(db_count(b, "v"), 20);
    cr_assert_eq(db_count(b, "new"), 0);
    for (uint64_t k = 0; k < 20; k++) {
        set_key(b, k);
        cr_assert_eq(get_i64(S(b, "v")), (int64_t)k);
        cr_assert(absent(S(b, "new")));
    }
    fx_free(b);
}

Test(state_snapshot_compat, changed_kind_is_einval)
{
    const char *paths[] = {tpath("0.snap")};
    snapshot_with_extra_state(paths[0]);
    fix *b = fx_new("counter", 0, 1);
    fx_add(b, "v", RILL_STATE_MAP);
    fx_add(b, "gone", RILL_STATE_VALUE);
    fx_open(b, 1 << 20);
    cr_assert_eq(restore(b, paths, 1, 1), RILL_EINVAL); /* even with allow_unknown */
    assert_has(b->err, "state 'v' of operator 'counter' is a value state in the snapshot but is "
                       "declared as a map state");
    expect_empty(b);
    fx_free(b);
}

Test(state_snapshot_compat, keyed_state_declared_as_operator_list_is_einval)
{
    const char *paths[] = {tpath("0.snap")};
    snapshot_with_extra_state(paths[0]);
    fix *b = fx_new("counter", 0, 1);
    fx_add(b, "v", RILL_STATE_VALUE);
    fx_add(b, "gone", RILL_STATE_OPERATOR_LIST);
    fx_open(b, 1 << 20);
    preexisting(b);
    uint64_t flushes = kv_flushes(b);
    cr_assert_eq(restore(b, paths, 1, 0), RILL_EINVAL);
    assert_has(b->err, "state 'gone' of operator 'counter' is a value state in the snapshot");
    expect_untouched(b, flushes);
    fx_free(b);
}

Test(state_snapshot_compat, adding_a_ttl_is_einval)
{
    const char *paths[] = {tpath("0.snap")};
    snapshot_with_extra_state(paths[0]);
    fix *b = fx_new("counter", 0, 1);
    fx_add(b, "v", RILL_STATE_VALUE)->ttl = 1000;
    fx_add(b, "gone", RILL_STATE_VALUE);
    fx_open(b, 1 << 20);
    cr_assert_eq(restore(b, paths, 1, 0), RILL_EINVAL);
    assert_has(b->err, "state 'v' of operator 'counter' has no TTL in the snapshot");
    expect_empty(b);
    fx_free(b);
}

Test(state_snapshot_compat, timers_for_an_operator_without_timers_are_einval_unless_allowed)
{
    const char *paths[] = {tpath("0.snap")};
    small_snapshot(paths[0]);
    fix *b = fresh("counter", 0, 1, 1 << 20);
    for (int d = 0; d < 2; d++) {
        rill__timers_free(b->op.timers[d]);
        b->op.timers[d] = NULL;
    }
    preexisting(b);
    uint64_t flushes = kv_flushes(b);
    cr_assert_eq(restore(b, paths, 1, 0), RILL_EINVAL);
    assert_has(b->err, "timers");
    assert_has(b->err, "counter");
    expect_untouched(b, flushes);
    cr_assert_eq(restore(b, paths, 1, 1), RILL_OK, "%s", b->err);
    for (uint64_t k = 0; k < 6; k++)
        check_key(b, k, 1);
    fx_free(b);
}

Test(state_snapshot_compat, key_group_beyond_the_max_parallelism_is_einval)
{
    const char *paths[] = {tpath("0.snap")};
    small_snapshot(paths[0]);
    fix *b = fresh("counter", 0, 1, 1 << 20);
    preexisting(b);
    uint64_t flushes = kv_flushes(b);
    b->job.max_parallelism = 4; /* the snapshot was taken with 128 */
    cr_assert_eq(restore(b, paths, 1, 0), RILL_EINVAL);
    assert_has(b->err, "max parallelism");
    expect_untouched(b, flushes);
    fx_free(b);
}

/* ---- snapshots written later, from a view ------------------------------ */

TestSuite(state_snapshot_view, .init = mk_tmp, .fini = rm_tmp);

/* Keys 0..299 in LMDB; then 0..99 changed, 100..149 cleared and 300..349
 * added, all in the cache: every case the view merges. */
static fix *mixed(void)
{
    fix *f = fresh("counter", 0, 1, 64 << 20);
    for (uint64_t k = 0; k < 300; k++)
        fill_key(f, k);
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
    for (uint64_t k = 0; k < 100; k++) {
        set_key(f, k);
        put_i64(S(f, "v"), -(int64_t)k);
        map_put_str(S(f, "m"), "z", "new");
    }
    for (uint64_t k = 100; k < 150; k++) {
        set_key(f, k);
        cr_assert_eq(rill_state_clear(S(f, "v")), RILL_OK);
        cr_assert_eq(rill_state_clear(S(f, "l")), RILL_OK);
        cr_assert_eq(rill_state_clear(S(f, "m")), RILL_OK);
        cr_assert_eq(rill_state_clear(S(f, "r")), RILL_OK);
    }
    for (uint64_t k = 300; k < 350; k++)
        fill_key(f, k);
    return f;
}

/* Change everything: values, deletions, new keys, written to LMDB. */
static void churn(fix *f)
{
    for (uint64_t k = 0; k < 400; k++) {
        set_key(f, k);
        put_i64(S(f, "v"), 7);
        map_put_str(S(f, "m"), "x", "churn");
        if (k % 2)
            cr_assert_eq(rill_state_clear(S(f, "l")), RILL_OK);
    }
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
}

static rill__state_snap *begin_file(fix *f, const char *path, rill__snap_writer **w)
{
    rill__state_snap *ks = NULL;
    cr_assert_eq(rill__snap_writer_open(w, path, f->err), RILL_OK, "%s", f->err);
    int rc = rill__state_snapshot_begin(&f->op, *w, &ks, f->err);
    cr_assert_eq(rc, RILL_OK, "begin: %s", f->err);
    cr_assert_not_null(ks);
    return ks;
}

/* Write the keyed part; *done (may be NULL) is set before the view is
 * freed. */
static void end_file(rill__state_snap *ks, rill__snap_writer *w, atomic_int *done)
{
    char err[RILL__ERRMSG_MAX];
    int rc = rill__state_snapshot_keyed(ks, w, NULL, NULL, err);
    cr_assert_eq(rc, RILL_OK, "keyed: %s", err);
    if (done)
        atomic_store(done, 1);
    rill__state_snapshot_free(ks);
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK, "%s", err);
}

static void check_mixed(fix *b)
{
    char got[128];
    for (uint64_t k = 0; k < 100; k++) {
        set_key(b, k);
        cr_assert_eq(get_i64(S(b, "v")), -(int64_t)k, "key %llu", (unsigned long long)k);
        map_join(S(b, "m"), got, sizeof got);
        cr_assert(strstr(got, ";z=new") != NULL, "key %llu: %s", (unsigned long long)k, got);
    }
    for (uint64_t k = 100; k < 150; k++)
        check_key(b, k, 0);
    for (uint64_t k = 150; k < 350; k++)
        check_key(b, k, 1);
    check_key(b, 350, 0);
}

Test(state_snapshot_view, later_changes_do_not_reach_the_file)
{
    fix *a = mixed();
    snap_file(a, tpath("now.snap"));
    rill__snap_writer *w;
    rill__state_snap *ks = begin_file(a, tpath("later.snap"), &w);
    churn(a);
    end_file(ks, w, NULL);
    size_t n1, n2;
    unsigned char *b1 = slurp(tpath("now.snap"), &n1), *b2 = slurp(tpath("later.snap"), &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(b1, b2, n1), 0, "the files differ");
    free(b1);
    free(b2);
    const char *paths[] = {tpath("later.snap")};
    fix *b = fresh("counter", 0, 1, 64 << 20);
    restore_ok(b, paths, 1);
    check_mixed(b);
    fx_free(a);
    fx_free(b);
}

typedef struct later {
    rill__state_snap *ks;
    rill__snap_writer *w;
    atomic_int done;
} later;

/* Writes the keyed part after a while, then frees the view. */
static void *write_later(void *arg)
{
    later *l = arg;
    usleep(50 * 1000);
    end_file(l->ks, l->w, &l->done);
    return NULL;
}

Test(state_snapshot_view, map_growth_waits_until_the_view_is_freed)
{
    rill__kv_initial_map_size = (size_t)256 << 10;
    fix *a = fresh("counter", 0, 1, 64 << 10);
    for (uint64_t k = 0; k < 50; k++)
        fill_key(a, k);
    later l = {NULL, NULL, 0};
    l.ks = begin_file(a, tpath("0.snap"), &l.w);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, write_later, &l), 0);
    unsigned char big[400];
    memset(big, 'q', sizeof big);
    rill__kvstats s;
    uint64_t k = 1000;
    do {
        set_key(a, k++);
        cr_assert_eq(rill_state_put(S(a, "v"), big, sizeof big), RILL_OK);
        rill__kv_stats(a->op.kv, &s);
    } while (s.map_grows == 0);
    cr_assert_eq(atomic_load(&l.done), 1, "the map grew under a live view");
    cr_assert_eq(pthread_join(th, NULL), 0);
    const char *paths[] = {tpath("0.snap")};
    fix *b = fresh("counter", 0, 1, 64 << 20);
    restore_ok(b, paths, 1);
    for (uint64_t j = 0; j < 50; j++)
        check_key(b, j, 1);
    check_key(b, 1000, 0);
    fx_free(a);
    fx_free(b);
}

Test(state_snapshot_view, closing_the_store_waits_for_the_view)
{
    fix *a = mixed();
    later l = {NULL, NULL, 0};
    l.ks = begin_file(a, tpath("0.snap"), &l.w);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, write_later, &l), 0);
    fx_free(a);
    cr_assert_eq(atomic_load(&l.done), 1, "the store closed under a live view");
    cr_assert_eq(pthread_join(th, NULL), 0);
    const char *paths[] = {tpath("0.snap")};
    fix *b = fresh("counter", 0, 1, 64 << 20);
    restore_ok(b, paths, 1);
    check_mixed(b);
    fx_free(b);
}

static int stop_now(void *arg)
{
    (void)arg;
    return 1;
}

Test(state_snapshot_view, a_canceled_write_stops_with_ecanceled)
{
    fix *a = fresh("counter", 0, 1, 64 << 20);
    for (uint64_t k = 0; k < 5000; k++)
        fill_key(a, k);
    rill__snap_writer *w;
    rill__state_snap *ks = begin_file(a, tpath("0.snap"), &w);
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__state_snapshot_keyed(ks, w, stop_now, NULL, err), RILL_ECANCELED);
    cr_assert(strstr(err, "'counter'") != NULL, "%s", err);
    rill__state_snapshot_free(ks);
    rill__snap_writer_abort(w);
    struct stat sb;
    cr_assert_neq(stat(tpath("0.snap"), &sb), 0, "an aborted file is left");
    fx_free(a);
}
