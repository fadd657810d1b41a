/* timers_test.c - the timer service of one operator subtask
 * (src/runtime/timers.h): order, limits, de-duplication, deletion,
 * iteration, key sizes, a large run and allocation failures. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"
#include "runtime/timers.h"

/* ---- helpers ------------------------------------------------------------ */

#define KEYCAP 64

typedef struct tmr {
    int64_t ts;
    uint16_t kg;
    size_t len;
    unsigned char key[KEYCAP];
} tmr;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static int cmp_tmr(const void *a, const void *b)
{
    const tmr *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->key, y->key, x->len);
}

static rill__timers *new_timers(void)
{
    rill__timers *t = rill__timers_new();
    cr_assert_not_null(t);
    return t;
}

static void add_u64(rill__timers *t, int64_t ts, uint64_t k, int want)
{
    int rc = rill__timers_add(t, ts, (uint16_t)(k % 128), &k, sizeof k);
    cr_assert_eq(rc, want, "add(ts %lld, key %llu) = %d, want %d", (long long)ts,
                 (unsigned long long)k, rc, want);
}

static int del_u64(rill__timers *t, int64_t ts, uint64_t k)
{
    return rill__timers_del(t, ts, &k, sizeof k);
}

/* Pops one timer at or before limit with an 8-byte key; 0 when none. */
static int pop_u64(rill__timers *t, int64_t limit, int64_t *ts, uint64_t *k)
{
    uint16_t kg = 0;
    const void *key = NULL;
    size_t len = 99;
    int rc = rill__timers_pop(t, limit, ts, &kg, &key, &len);
    if (rc == 1) {
        cr_assert_eq(len, sizeof *k);
        memcpy(k, key, sizeof *k);
        cr_assert_eq(kg, *k % 128);
    } else {
        cr_assert_eq(rc, 0);
    }
    return rc;
}

/* Pops every timer at or before limit into out (cap entries); the count. */
static size_t pop_all(rill__timers *t, int64_t limit, tmr *out, size_t cap)
{
    size_t n = 0;
    int64_t ts;
    uint16_t kg;
    const void *key;
    size_t len;
    while (rill__timers_pop(t, limit, &ts, &kg, &key, &len) == 1) {
        cr_assert_lt(n, cap, "more timers popped than added");
        cr_assert_leq(len, (size_t)KEYCAP);
        out[n].ts = ts;
        out[n].kg = kg;
        out[n].len = len;
        if (len)
            memcpy(out[n].key, key, len);
        n++;
    }
    return n;
}

static void assert_time_order(const tmr *v, size_t n)
{
    for (size_t i = 1; i < n; i++)
        cr_assert_leq(v[i - 1].ts, v[i].ts, "timer %zu at %lld comes before one at %lld", i,
                      (long long)v[i].ts, (long long)v[i - 1].ts);
}

/* got (in pop order) holds exactly the timers of want (any order). */
static void assert_same_timers(tmr *want, size_t n_want, const tmr *got, size_t n_got)
{
    cr_assert_eq(n_got, n_want, "%zu timers, want %zu", n_got, n_want);
    tmr *g = malloc((n_got ? n_got : 1) * sizeof *g);
    cr_assert_not_null(g);
    memcpy(g, got, n_got * sizeof *g);
    qsort(g, n_got, sizeof *g, cmp_tmr);
    qsort(want, n_want, sizeof *want, cmp_tmr);
    for (size_t i = 0; i < n_want; i++) {
        cr_assert_eq(cmp_tmr(&g[i], &want[i]), 0, "timer %zu differs (ts %lld vs %lld)", i,
                     (long long)g[i].ts, (long long)want[i].ts);
        cr_assert_eq(g[i].kg, want[i].kg);
    }
    free(g);
}

/* ---- order and limits --------------------------------------------------- */

Test(timers, random_timers_come_out_in_time_order)
{
    enum { N = 20000 };
    tmr *want = calloc(N, sizeof *want), *got = calloc(N, sizeof *got);
    cr_assert(want && got);
    rill__timers *t = new_timers();
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        tmr x = {0};
        x.ts = (int64_t)(rnd() % 5000) - 2500; /* many ties, negative times too */
        x.len = 1 + rnd() % 40;                /* short and long keys */
        for (size_t k = 0; k < x.len; k++)
            x.key[k] = (unsigned char)(rnd() % 4); /* some repeated (key, ts) */
        x.kg = (uint16_t)(x.key[0] * 31u + x.len);
        int rc = rill__timers_add(t, x.ts, x.kg, x.key, x.len);
        int dup = 0;
        for (size_t j = 0; j < n && !dup; j++)
            dup = cmp_tmr(&want[j], &x) == 0;
        cr_assert_eq(rc, dup ? 0 : 1);
        if (!dup)
            want[n++] = x;
    }
    cr_assert_eq(rill__timers_count(t), n);
    size_t got_n = pop_all(t, INT64_MAX, got, N);
    assert_time_order(got, got_n);
    assert_same_timers(want, n, got, got_n);
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
    free(want);
    free(got);
}

Test(timers, pop_takes_only_timers_up_to_the_limit)
{
    rill__timers *t = new_timers();
    add_u64(t, 30, 3, 1);
    add_u64(t, 10, 1, 1);
    add_u64(t, 20, 2, 1);
    int64_t ts = -1;
    uint64_t k = 0;
    cr_assert_eq(pop_u64(t, 9, &ts, &k), 0);
    cr_assert_eq(ts, -1, "a failed pop must not write its outputs");
    cr_assert_eq(rill__timers_count(t), 3);
    cr_assert_eq(pop_u64(t, 20, &ts, &k), 1);
    cr_assert_eq(ts, 10);
    cr_assert_eq(k, 1);
    cr_assert_eq(pop_u64(t, 20, &ts, &k), 1);
    cr_assert_eq(ts, 20);
    cr_assert_eq(k, 2);
    cr_assert_eq(pop_u64(t, 20, &ts, &k), 0);
    cr_assert_eq(pop_u64(t, 29, &ts, &k), 0);
    cr_assert_eq(rill__timers_count(t), 1);
    cr_assert_eq(pop_u64(t, 30, &ts, &k), 1);
    cr_assert_eq(ts, 30);
    cr_assert_eq(k, 3);
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 0);
    rill__timers_free(t);
}

Test(timers, extreme_times)
{
    rill__timers *t = new_timers();
    add_u64(t, INT64_MAX, 1, 1);
    add_u64(t, INT64_MIN, 2, 1);
    add_u64(t, 0, 3, 1);
    cr_assert_eq(rill__timers_next(t), INT64_MIN);
    int64_t ts;
    uint64_t k;
    cr_assert_eq(pop_u64(t, INT64_MIN, &ts, &k), 1);
    cr_assert_eq(ts, INT64_MIN);
    cr_assert_eq(k, 2);
    cr_assert_eq(pop_u64(t, INT64_MIN, &ts, &k), 0);
    cr_assert_eq(pop_u64(t, INT64_MAX - 1, &ts, &k), 1);
    cr_assert_eq(ts, 0);
    cr_assert_eq(pop_u64(t, INT64_MAX - 1, &ts, &k), 0);
    cr_assert_eq(rill__timers_next(t), INT64_MAX);
    cr_assert_eq(rill__timers_count(t), 1);
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
    cr_assert_eq(ts, INT64_MAX);
    cr_assert_eq(k, 1);
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
}

Test(timers, pop_accepts_null_outputs)
{
    rill__timers *t = new_timers();
    add_u64(t, 5, 1, 1);
    add_u64(t, 6, 2, 1);
    cr_assert_eq(rill__timers_pop(t, 10, NULL, NULL, NULL, NULL), 1);
    cr_assert_eq(rill__timers_count(t), 1);
    cr_assert_eq(rill__timers_next(t), 6);
    rill__timers_free(t);
}

/* ---- de-duplication ----------------------------------------------------- */

Test(timers, same_key_and_time_is_added_once)
{
    rill__timers *t = new_timers();
    uint64_t k = 42;
    cr_assert_eq(rill__timers_add(t, 100, 7, &k, sizeof k), 1);
    cr_assert_eq(rill__timers_add(t, 100, 7, &k, sizeof k), 0);
    uint64_t same = 42; /* equal bytes elsewhere */
    cr_assert_eq(rill__timers_add(t, 100, 7, &same, sizeof same), 0);
    cr_assert_eq(rill__timers_count(t), 1);
    int64_t ts;
    uint16_t kg;
    const void *key;
    size_t len;
    cr_assert_eq(rill__timers_pop(t, INT64_MAX, &ts, &kg, &key, &len), 1);
    cr_assert_eq(ts, 100);
    cr_assert_eq(kg, 7);
    cr_assert_eq(len, sizeof k);
    cr_assert_eq(memcmp(key, &k, sizeof k), 0);
    cr_assert_eq(rill__timers_pop(t, INT64_MAX, &ts, &kg, &key, &len), 0);
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
}

Test(timers, long_keys_are_deduplicated)
{
    rill__timers *t = new_timers();
    char a[200], b[200];
    memset(a, 'x', sizeof a);
    memcpy(b, a, sizeof b);
    cr_assert_eq(rill__timers_add(t, 1, 3, a, sizeof a), 1);
    cr_assert_eq(rill__timers_add(t, 1, 3, b, sizeof b), 0);
    b[199] = 'y';
    cr_assert_eq(rill__timers_add(t, 1, 3, b, sizeof b), 1);
    cr_assert_eq(rill__timers_add(t, 1, 3, a, sizeof a - 1), 1, "a prefix is another key");
    cr_assert_eq(rill__timers_count(t), 3);
    rill__timers_free(t);
}

Test(timers, same_time_different_keys_both_fire)
{
    rill__timers *t = new_timers();
    cr_assert_eq(rill__timers_add(t, 50, 1, "a", 1), 1);
    cr_assert_eq(rill__timers_add(t, 50, 2, "b", 1), 1);
    cr_assert_eq(rill__timers_add(t, 50, 1, "ab", 2), 1);
    cr_assert_eq(rill__timers_add(t, 50, 1, "a\0", 2), 1);
    cr_assert_eq(rill__timers_count(t), 4);
    tmr got[8];
    size_t n = pop_all(t, 50, got, 8);
    tmr want[4] = {
        {.ts = 50, .kg = 1, .len = 1, .key = "a"},
        {.ts = 50, .kg = 2, .len = 1, .key = "b"},
        {.ts = 50, .kg = 1, .len = 2, .key = "ab"},
        {.ts = 50, .kg = 1, .len = 2, .key = "a\0"},
    };
    assert_same_timers(want, 4, got, n);
    rill__timers_free(t);
}

Test(timers, same_key_different_times_both_fire)
{
    rill__timers *t = new_timers();
    add_u64(t, 2, 9, 1);
    add_u64(t, 1, 9, 1);
    add_u64(t, 2, 9, 0);
    int64_t ts;
    uint64_t k;
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
    cr_assert_eq(ts, 1);
    cr_assert_eq(k, 9);
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
    cr_assert_eq(ts, 2);
    cr_assert_eq(k, 9);
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 0);
    rill__timers_free(t);
}

/* Half a million times of one key: some share 32 bits of their hash, and
 * still each is its own timer. */
Test(timers, one_key_at_many_times)
{
    enum { N = 500000 };
    rill__timers *t = new_timers();
    for (int64_t i = 0; i < N; i++)
        add_u64(t, i * 7, 77, 1);
    cr_assert_eq(rill__timers_count(t), (size_t)N);
    for (int64_t i = 0; i < N; i++)
        add_u64(t, i * 7, 77, 0);
    int64_t ts;
    uint64_t k;
    for (int64_t i = 0; i < N; i++) {
        cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
        cr_assert_eq(ts, i * 7);
        cr_assert_eq(k, 77);
    }
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 0);
    rill__timers_free(t);
}

Test(timers, fired_timer_can_be_added_again)
{
    rill__timers *t = new_timers();
    add_u64(t, 5, 1, 1);
    int64_t ts;
    uint64_t k;
    cr_assert_eq(pop_u64(t, 5, &ts, &k), 1);
    add_u64(t, 5, 1, 1);
    cr_assert_eq(rill__timers_count(t), 1);
    cr_assert_eq(pop_u64(t, 5, &ts, &k), 1);
    cr_assert_eq(ts, 5);
    cr_assert_eq(k, 1);
    cr_assert_eq(pop_u64(t, 5, &ts, &k), 0);
    rill__timers_free(t);
}

/* ---- deletion ----------------------------------------------------------- */

Test(timers, deleted_timer_does_not_fire)
{
    rill__timers *t = new_timers();
    add_u64(t, 10, 1, 1);
    add_u64(t, 20, 2, 1);
    add_u64(t, 30, 3, 1);
    cr_assert_eq(del_u64(t, 20, 2), 1);
    int64_t ts;
    uint64_t k;
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
    cr_assert_eq(ts, 10);
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
    cr_assert_eq(ts, 30);
    cr_assert_eq(k, 3);
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 0);
    rill__timers_free(t);
}

Test(timers, deleted_top_is_skipped_by_pop)
{
    rill__timers *t = new_timers();
    add_u64(t, 10, 1, 1);
    add_u64(t, 20, 2, 1);
    cr_assert_eq(del_u64(t, 10, 1), 1);
    int64_t ts;
    uint64_t k;
    cr_assert_eq(pop_u64(t, 15, &ts, &k), 0, "the deleted timer fired");
    cr_assert_eq(pop_u64(t, 20, &ts, &k), 1);
    cr_assert_eq(ts, 20);
    cr_assert_eq(k, 2);
    rill__timers_free(t);
}

Test(timers, deleted_then_added_again_fires_once)
{
    rill__timers *t = new_timers();
    add_u64(t, 10, 1, 1);
    add_u64(t, 10, 2, 1);
    cr_assert_eq(del_u64(t, 10, 1), 1);
    add_u64(t, 10, 1, 1);
    add_u64(t, 10, 1, 0);
    cr_assert_eq(rill__timers_count(t), 2);
    /* twice more, so several stale heap items point the same way */
    cr_assert_eq(del_u64(t, 10, 1), 1);
    add_u64(t, 10, 1, 1);
    cr_assert_eq(del_u64(t, 10, 1), 1);
    add_u64(t, 10, 1, 1);
    int64_t ts;
    uint64_t k;
    int fired1 = 0, fired2 = 0;
    while (pop_u64(t, INT64_MAX, &ts, &k) == 1) {
        cr_assert_eq(ts, 10);
        fired1 += k == 1;
        fired2 += k == 2;
    }
    cr_assert_eq(fired1, 1);
    cr_assert_eq(fired2, 1);
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
}

Test(timers, deleting_a_missing_timer_returns_zero)
{
    rill__timers *t = new_timers();
    cr_assert_eq(del_u64(t, 10, 1), 0, "empty set");
    add_u64(t, 10, 1, 1);
    cr_assert_eq(del_u64(t, 11, 1), 0, "other time");
    cr_assert_eq(del_u64(t, 10, 2), 0, "other key");
    cr_assert_eq(rill__timers_del(t, 10, "\1\0\0\0", 4), 0, "key prefix");
    cr_assert_eq(rill__timers_count(t), 1);
    cr_assert_eq(del_u64(t, 10, 1), 1);
    cr_assert_eq(del_u64(t, 10, 1), 0, "already deleted");
    add_u64(t, 20, 2, 1);
    int64_t ts;
    uint64_t k;
    cr_assert_eq(pop_u64(t, 20, &ts, &k), 1);
    cr_assert_eq(del_u64(t, 20, 2), 0, "already fired");
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
}

Test(timers, count_follows_add_delete_and_pop)
{
    rill__timers *t = new_timers();
    cr_assert_eq(rill__timers_count(t), 0);
    for (uint64_t i = 0; i < 100; i++)
        add_u64(t, (int64_t)i, i, 1);
    cr_assert_eq(rill__timers_count(t), 100);
    for (uint64_t i = 0; i < 100; i++)
        add_u64(t, (int64_t)i, i, 0);
    cr_assert_eq(rill__timers_count(t), 100);
    for (uint64_t i = 0; i < 100; i += 2)
        cr_assert_eq(del_u64(t, (int64_t)i, i), 1);
    cr_assert_eq(rill__timers_count(t), 50);
    int64_t ts;
    uint64_t k;
    for (int i = 0; i < 10; i++)
        cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
    cr_assert_eq(ts, 19);
    cr_assert_eq(rill__timers_count(t), 40);
    cr_assert_eq(rill__timers_next(t), 21);
    cr_assert_eq(rill__timers_count(t), 40);
    while (pop_u64(t, INT64_MAX, &ts, &k) == 1)
        ;
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
}

/* Deleting most timers (the heap is rebuilt without them) keeps the rest. */
Test(timers, mass_deletion_keeps_the_others)
{
    enum { N = 100000 };
    rill__timers *t = new_timers();
    for (uint64_t i = 0; i < N; i++)
        add_u64(t, (int64_t)(rnd() % 1000), i, 1);
    /* find each timer's time again through foreach */
    int64_t *tsof = malloc(N * sizeof *tsof);
    cr_assert_not_null(tsof);
    for (uint64_t i = 0; i < N; i++)
        tsof[i] = -1;
    tmr *all = malloc(N * sizeof *all);
    cr_assert_not_null(all);
    size_t n = pop_all(t, INT64_MAX, all, N);
    cr_assert_eq(n, (size_t)N);
    for (size_t i = 0; i < n; i++) {
        uint64_t k;
        memcpy(&k, all[i].key, sizeof k);
        tsof[k] = all[i].ts;
        add_u64(t, all[i].ts, k, 1);
    }
    for (uint64_t i = 0; i < N; i++)
        if (i % 10)
            cr_assert_eq(del_u64(t, tsof[i], i), 1);
    cr_assert_eq(rill__timers_count(t), N / 10);
    n = pop_all(t, INT64_MAX, all, N);
    cr_assert_eq(n, (size_t)N / 10);
    assert_time_order(all, n);
    for (size_t i = 0; i < n; i++) {
        uint64_t k;
        memcpy(&k, all[i].key, sizeof k);
        cr_assert_eq(k % 10, 0);
        cr_assert_eq(all[i].ts, tsof[k]);
    }
    free(all);
    free(tsof);
    rill__timers_free(t);
}

/* After a burst fires the arrays shrink; the timers left are still found
 * by delete, de-duplicated and fired in order. */
Test(timers, timers_left_after_a_burst_stay_usable)
{
    enum { N = 100000, LEFT = 500 };
    rill__timers *t = new_timers();
    for (uint64_t i = 0; i < N; i++)
        add_u64(t, (int64_t)i, i, 1);
    int64_t ts;
    uint64_t k;
    for (int i = 0; i < N - LEFT; i++)
        cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
    cr_assert_eq(ts, N - LEFT - 1);
    cr_assert_eq(rill__timers_count(t), LEFT);
    for (uint64_t i = N - LEFT; i < N; i++)
        add_u64(t, (int64_t)i, i, 0);
    for (uint64_t i = N - LEFT; i < N; i += 2)
        cr_assert_eq(del_u64(t, (int64_t)i, i), 1);
    for (uint64_t i = 0; i < 10; i++)
        add_u64(t, (int64_t)i, i, 1);
    cr_assert_eq(rill__timers_count(t), LEFT / 2 + 10);
    for (int64_t i = 0; i < 10; i++) {
        cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
        cr_assert_eq(ts, i);
    }
    for (int64_t i = N - LEFT + 1; i < N; i += 2) {
        cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 1);
        cr_assert_eq(ts, i);
        cr_assert_eq(k, (uint64_t)i);
    }
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &k), 0);
    rill__timers_free(t);
}

/* ---- next --------------------------------------------------------------- */

Test(timers, next_skips_deleted_tops)
{
    rill__timers *t = new_timers();
    cr_assert_eq(rill__timers_next(t), INT64_MAX);
    add_u64(t, 1, 1, 1);
    add_u64(t, 2, 2, 1);
    add_u64(t, 3, 3, 1);
    cr_assert_eq(rill__timers_next(t), 1);
    cr_assert_eq(del_u64(t, 1, 1), 1);
    cr_assert_eq(del_u64(t, 2, 2), 1);
    cr_assert_eq(rill__timers_next(t), 3);
    cr_assert_eq(rill__timers_count(t), 1);
    add_u64(t, 2, 2, 1);
    cr_assert_eq(rill__timers_next(t), 2);
    cr_assert_eq(del_u64(t, 2, 2), 1);
    cr_assert_eq(del_u64(t, 3, 3), 1);
    cr_assert_eq(rill__timers_next(t), INT64_MAX);
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
}

Test(timers, next_does_not_consume)
{
    rill__timers *t = new_timers();
    add_u64(t, 7, 1, 1);
    cr_assert_eq(rill__timers_next(t), 7);
    cr_assert_eq(rill__timers_next(t), 7);
    cr_assert_eq(rill__timers_count(t), 1);
    int64_t ts;
    uint64_t k;
    cr_assert_eq(pop_u64(t, 7, &ts, &k), 1);
    cr_assert_eq(rill__timers_next(t), INT64_MAX);
    rill__timers_free(t);
}

/* ---- foreach ------------------------------------------------------------ */

typedef struct visit {
    tmr *v;
    size_t n, cap;
    size_t stop_at; /* return stop_rc on this visit (1-based); 0 never */
    int stop_rc;
} visit;

static int collect(int64_t ts, uint16_t kg, const void *key, size_t key_len, void *arg)
{
    visit *c = arg;
    cr_assert_lt(c->n, c->cap);
    cr_assert_leq(key_len, (size_t)KEYCAP);
    tmr *x = &c->v[c->n++];
    x->ts = ts;
    x->kg = kg;
    x->len = key_len;
    if (key_len)
        memcpy(x->key, key, key_len);
    return c->n == c->stop_at ? c->stop_rc : 0;
}

Test(timers, foreach_visits_live_timers_in_time_order)
{
    enum { N = 5000 };
    tmr *want = calloc(N, sizeof *want), *seen = calloc(N, sizeof *seen),
        *popped = calloc(N, sizeof *popped);
    cr_assert(want && seen && popped);
    rill__timers *t = new_timers();
    size_t n = 0;
    for (uint64_t i = 0; i < N; i++) {
        int64_t ts = (int64_t)(rnd() % 300);
        add_u64(t, ts, i, 1);
        if (i % 3 == 0) { /* delete a third */
            cr_assert_eq(del_u64(t, ts, i), 1);
            continue;
        }
        tmr x = {.ts = ts, .kg = (uint16_t)(i % 128), .len = sizeof i};
        memcpy(x.key, &i, sizeof i);
        want[n++] = x;
    }
    visit c = {.v = seen, .cap = N};
    cr_assert_eq(rill__timers_foreach(t, collect, &c), 0);
    assert_time_order(seen, c.n);
    assert_same_timers(want, n, seen, c.n);

    /* not consumed; a second pass gives the same sequence */
    cr_assert_eq(rill__timers_count(t), n);
    visit c2 = {.v = popped, .cap = N};
    cr_assert_eq(rill__timers_foreach(t, collect, &c2), 0);
    cr_assert_eq(c2.n, c.n);
    for (size_t i = 0; i < c.n; i++)
        cr_assert_eq(cmp_tmr(&seen[i], &popped[i]), 0);

    /* and still pop in order afterwards */
    size_t pn = pop_all(t, INT64_MAX, popped, N);
    assert_time_order(popped, pn);
    assert_same_timers(want, n, popped, pn);
    rill__timers_free(t);
    free(want);
    free(seen);
    free(popped);
}

Test(timers, foreach_stops_at_first_nonzero_result)
{
    rill__timers *t = new_timers();
    for (uint64_t i = 0; i < 10; i++)
        add_u64(t, (int64_t)(10 - i), i, 1);
    tmr seen[10];
    visit c = {.v = seen, .cap = 10, .stop_at = 3, .stop_rc = -7};
    cr_assert_eq(rill__timers_foreach(t, collect, &c), -7);
    cr_assert_eq(c.n, 3);
    cr_assert_eq(seen[0].ts, 1);
    cr_assert_eq(seen[1].ts, 2);
    cr_assert_eq(seen[2].ts, 3);
    cr_assert_eq(rill__timers_count(t), 10);
    visit c2 = {.v = seen, .cap = 10, .stop_at = 1, .stop_rc = 5};
    cr_assert_eq(rill__timers_foreach(t, collect, &c2), 5);
    cr_assert_eq(c2.n, 1);
    cr_assert_eq(seen[0].ts, 1);
    rill__timers_free(t);
}

Test(timers, foreach_on_empty_set_calls_nothing)
{
    rill__timers *t = new_timers();
    tmr seen[1];
    visit c = {.v = seen, .cap = 1, .stop_at = 1, .stop_rc = 9};
    cr_assert_eq(rill__timers_foreach(t, collect, &c), 0);
    cr_assert_eq(c.n, 0);
    add_u64(t, 1, 1, 1);
    cr_assert_eq(del_u64(t, 1, 1), 1);
    cr_assert_eq(rill__timers_foreach(t, collect, &c), 0);
    cr_assert_eq(c.n, 0);
    rill__timers_free(t);
}

/* ---- key sizes ---------------------------------------------------------- */

Test(timers, empty_key)
{
    rill__timers *t = new_timers();
    cr_assert_eq(rill__timers_add(t, 4, 11, NULL, 0), 1);
    cr_assert_eq(rill__timers_add(t, 4, 11, "", 0), 0, "the empty key twice");
    cr_assert_eq(rill__timers_add(t, 4, 11, "z", 1), 1);
    cr_assert_eq(rill__timers_count(t), 2);
    cr_assert_eq(rill__timers_del(t, 4, "", 0), 1);
    cr_assert_eq(rill__timers_add(t, 3, 11, NULL, 0), 1);
    int64_t ts;
    uint16_t kg;
    const void *key;
    size_t len = 99;
    cr_assert_eq(rill__timers_pop(t, 4, &ts, &kg, &key, &len), 1);
    cr_assert_eq(ts, 3);
    cr_assert_eq(kg, 11);
    cr_assert_eq(len, 0);
    cr_assert_eq(rill__timers_pop(t, 4, &ts, &kg, &key, &len), 1);
    cr_assert_eq(len, 1);
    cr_assert_eq(memcmp(key, "z", 1), 0);
    cr_assert_eq(rill__timers_pop(t, 4, &ts, &kg, &key, &len), 0);
    rill__timers_free(t);
}

Test(timers, largest_key)
{
    enum { L = 65535 };
    unsigned char *a = malloc(L), *b = malloc(L);
    cr_assert(a && b);
    for (size_t i = 0; i < L; i++)
        a[i] = (unsigned char)(i * 7);
    memcpy(b, a, L);
    b[L - 1] ^= 1;
    rill__timers *t = new_timers();
    cr_assert_eq(rill__timers_add(t, 9, 1, a, L), 1);
    cr_assert_eq(rill__timers_add(t, 9, 2, b, L), 1);
    cr_assert_eq(rill__timers_add(t, 9, 1, a, L), 0);
    cr_assert_eq(rill__timers_add(t, 8, 1, a, L), 1);
    cr_assert_eq(rill__timers_del(t, 8, a, L), 1);
    cr_assert_eq(rill__timers_count(t), 2);
    int64_t ts;
    uint16_t kg;
    const void *key;
    size_t len;
    int seen_a = 0, seen_b = 0;
    while (rill__timers_pop(t, INT64_MAX, &ts, &kg, &key, &len) == 1) {
        cr_assert_eq(ts, 9);
        cr_assert_eq(len, (size_t)L);
        if (!memcmp(key, a, L)) {
            seen_a++;
            cr_assert_eq(kg, 1);
        } else {
            cr_assert_eq(memcmp(key, b, L), 0);
            seen_b++;
            cr_assert_eq(kg, 2);
        }
    }
    cr_assert_eq(seen_a, 1);
    cr_assert_eq(seen_b, 1);
    rill__timers_free(t);
    free(a);
    free(b);
}

Test(timers, key_longer_than_the_limit_is_refused)
{
    size_t len = 65536;
    unsigned char *k = calloc(1, len);
    cr_assert_not_null(k);
    rill__timers *t = new_timers();
    cr_assert_eq(rill__timers_add(t, 1, 0, k, len), RILL_EINVAL);
    cr_assert_eq(rill__timers_del(t, 1, k, len), 0);
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
    free(k);
}

/* The popped key is copied into t: adding and deleting (as an on_timer
 * callback registering with its own key would) leaves it readable. */
Test(timers, popped_key_survives_add_and_delete)
{
    rill__timers *t = new_timers();
    char lk[100];
    memset(lk, 'q', sizeof lk);
    cr_assert_eq(rill__timers_add(t, 1, 0, "short", 5), 1);
    cr_assert_eq(rill__timers_add(t, 2, 0, lk, sizeof lk), 1);
    int64_t ts;
    uint16_t kg;
    const void *key;
    size_t len;
    cr_assert_eq(rill__timers_pop(t, 1, &ts, &kg, &key, &len), 1);
    for (uint64_t i = 0; i < 1000; i++) /* grows every array */
        add_u64(t, 100 + (int64_t)i, i, 1);
    cr_assert_eq(rill__timers_add(t, 50, 0, key, len), 1);
    cr_assert_eq(len, 5);
    cr_assert_eq(memcmp(key, "short", 5), 0);
    cr_assert_eq(rill__timers_pop(t, 2, &ts, &kg, &key, &len), 1);
    cr_assert_eq(ts, 2);
    cr_assert_eq(rill__timers_add(t, 60, 0, key, len), 1);
    cr_assert_eq(rill__timers_del(t, 60, lk, sizeof lk), 1);
    cr_assert_eq(len, sizeof lk);
    cr_assert_eq(memcmp(key, lk, sizeof lk), 0);
    rill__timers_free(t);
}

/* ---- a large run -------------------------------------------------------- */

/* 1M timers at distinct, shuffled times, each tenth deleted and added
 * again, fired in slices as a watermark would: every timer comes out
 * exactly once, in exact time order, with its own key. */
Test(timers, million_timers_fire_in_exact_order)
{
    enum { N = 1000000 };
    int64_t *perm = malloc(N * sizeof *perm);
    cr_assert_not_null(perm);
    for (int64_t i = 0; i < N; i++)
        perm[i] = i;
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = rnd() % (i + 1);
        int64_t x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    /* timer of key k fires at time 3*perm[k] */
    rill__timers *t = new_timers();
    for (uint64_t k = 0; k < N; k++)
        add_u64(t, 3 * perm[k], k, 1);
    for (uint64_t k = 0; k < N; k += 10) {
        cr_assert_eq(del_u64(t, 3 * perm[k], k), 1);
        add_u64(t, 3 * perm[k], k, 1);
    }
    cr_assert_eq(rill__timers_count(t), (size_t)N);
    uint64_t *key_at = malloc(N * sizeof *key_at);
    cr_assert_not_null(key_at);
    for (uint64_t k = 0; k < N; k++)
        key_at[perm[k]] = k;
    int64_t expect = 0;
    for (int64_t wm = 0; wm < 3 * (int64_t)N + 3000; wm += 1000) {
        int64_t ts;
        uint64_t k;
        while (pop_u64(t, wm, &ts, &k) == 1) {
            cr_assert_eq(ts, 3 * expect, "timer %lld at %lld", (long long)expect,
                         (long long)ts);
            cr_assert_eq(k, key_at[expect]);
            expect++;
        }
        cr_assert_gt(rill__timers_next(t), wm);
    }
    cr_assert_eq(expect, (int64_t)N);
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
    free(key_at);
    free(perm);
}

/* ---- allocation failures ------------------------------------------------ */

static long calls, fail_at, injected, live_blocks;

static int should_fail(void)
{
    calls++;
    if (fail_at < 0 || calls == fail_at) {
        injected++;
        return 1;
    }
    return 0;
}

static void *f_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = malloc(n);
    live_blocks += p != NULL;
    return p;
}

static void *f_calloc(size_t c, size_t n)
{
    if (should_fail())
        return NULL;
    void *p = calloc(c, n);
    live_blocks += p != NULL;
    return p;
}

static void *f_realloc(void *old, size_t n)
{
    if (should_fail())
        return NULL;
    void *p = realloc(old, n);
    live_blocks += p && !old;
    return p;
}

static void f_free(void *p)
{
    live_blocks -= p != NULL;
    free(p);
}

/* fail == 0: never; n > 0: only the n-th call; -1: every call. */
static void install_failing(long fail)
{
    calls = 0;
    fail_at = fail;
    injected = 0;
    live_blocks = 0;
    cr_assert_eq(rill_replace_allocator(f_malloc, f_realloc, f_calloc, f_free), RILL_OK);
}

static void restore_allocator(void)
{
    rill_replace_allocator(malloc, realloc, calloc, free);
}

/* Key of timer i: 8 bytes for most, 40 bytes (held outside the entry) for
 * every fifth. */
static size_t script_key(int i, unsigned char *buf)
{
    size_t len = i % 5 == 0 ? 40 : 8;
    memset(buf, 0, len);
    memcpy(buf, &i, sizeof i);
    buf[len - 1] = (unsigned char)len;
    return len;
}

static int64_t script_ts(int i)
{
    return (int64_t)((i * 37) % 101);
}

Test(timers, allocation_failure_sweep, .fini = restore_allocator)
{
    enum { N = 400 };
    long swept = 0;
    for (long n = 1;; n++) {
        install_failing(n);
        rill__timers *t = rill__timers_new();
        if (!t) {
            cr_assert_eq(injected, 1);
            cr_assert_eq(live_blocks, 0);
            continue;
        }
        unsigned char key[KEYCAP];
        for (int i = 0; i < N; i++) {
            size_t len = script_key(i, key);
            size_t before = rill__timers_count(t);
            int rc = rill__timers_add(t, script_ts(i), (uint16_t)i, key, len);
            if (rc == RILL_ENOMEM) {
                cr_assert_eq(rill__timers_count(t), before);
                cr_assert_eq(rill__timers_del(t, script_ts(i), key, len), 0,
                             "a failed add left the timer behind");
                rc = rill__timers_add(t, script_ts(i), (uint16_t)i, key, len);
            }
            cr_assert_eq(rc, 1, "fail_at %ld, timer %d: %d", n, i, rc);
            /* every third timer also deleted and added again */
            if (i % 3 == 0) {
                cr_assert_eq(rill__timers_del(t, script_ts(i), key, len), 1);
                rc = rill__timers_add(t, script_ts(i), (uint16_t)i, key, len);
                if (rc == RILL_ENOMEM)
                    rc = rill__timers_add(t, script_ts(i), (uint16_t)i, key, len);
                cr_assert_eq(rc, 1);
            }
        }
        long failures = injected;
        cr_assert_leq(failures, 1);
        cr_assert_eq(rill__timers_count(t), (size_t)N);
        tmr *got = calloc(N, sizeof *got), *want = calloc(N, sizeof *want);
        cr_assert(got && want);
        size_t gn = pop_all(t, INT64_MAX, got, N);
        for (int i = 0; i < N; i++) {
            want[i].ts = script_ts(i);
            want[i].kg = (uint16_t)i;
            want[i].len = script_key(i, want[i].key);
        }
        assert_time_order(got, gn);
        assert_same_timers(want, N, got, gn);
        free(got);
        free(want);
        rill__timers_free(t);
        cr_assert_eq(live_blocks, 0, "fail_at %ld: %ld blocks leaked", n, live_blocks);
        if (!failures)
            break; /* the script no longer reaches the n-th allocation */
        swept++;
    }
    cr_assert_gt(swept, 10, "only %ld allocations were swept", swept);
}

Test(timers, out_of_memory_leaves_the_set_usable, .fini = restore_allocator)
{
    rill__timers *t = new_timers();
    for (uint64_t i = 0; i < 64; i++)
        add_u64(t, (int64_t)i, i, 1);
    install_failing(-1);
    /* add until the set needs memory; those that fit stay */
    uint64_t k = 1000;
    int rc;
    while ((rc = rill__timers_add(t, (int64_t)k, (uint16_t)(k % 128), &k, sizeof k)) == 1)
        k++;
    cr_assert_eq(rc, RILL_ENOMEM);
    uint64_t first_missing = k;
    size_t n = rill__timers_count(t);
    cr_assert_eq(n, 64 + (size_t)(first_missing - 1000));
    cr_assert_eq(del_u64(t, (int64_t)first_missing, first_missing), 0);
    char lk[50] = {0}; /* a long key needs memory of its own */
    cr_assert_eq(rill__timers_add(t, 0, 0, lk, sizeof lk), RILL_ENOMEM);
    add_u64(t, 5, 5, 0); /* an existing timer needs no memory */
    cr_assert_eq(rill__timers_count(t), n);
    cr_assert_eq(del_u64(t, 0, 0), 1); /* deleting needs none either */
    int64_t ts;
    uint64_t got;
    cr_assert_eq(pop_u64(t, INT64_MAX, &ts, &got), 1);
    cr_assert_eq(ts, 1);
    cr_assert_eq(got, 1);
    cr_assert_eq(rill__timers_next(t), 2);
    add_u64(t, 1, 1, 1); /* the room the pop freed is used again */
    cr_assert_eq(rill__timers_count(t), n - 1);
    cr_assert_gt(injected, 0);
    restore_allocator();
    for (uint64_t j = first_missing; j < first_missing + 1000; j++)
        add_u64(t, (int64_t)j, j, 1);
    cr_assert_eq(rill__timers_count(t), n + 999);
    int64_t expect = 1;
    while (pop_u64(t, INT64_MAX, &ts, &got) == 1) {
        cr_assert_eq(ts, expect);
        cr_assert_eq(got, (uint64_t)expect);
        expect = expect == 63 ? 1000 : expect + 1;
    }
    cr_assert_eq(expect, (int64_t)first_missing + 1000);
    rill__timers_free(t);
}

/* Firing and deleting need no memory, also when the set would like to
 * give some back. */
Test(timers, pop_and_delete_work_without_memory, .fini = restore_allocator)
{
    enum { N = 20000 };
    rill__timers *t = new_timers();
    for (uint64_t i = 0; i < N; i++)
        add_u64(t, (int64_t)i, i, 1);
    char lk[30];
    memset(lk, 'L', sizeof lk);
    cr_assert_eq(rill__timers_add(t, N / 2, 0, lk, sizeof lk), 1);
    install_failing(-1);
    for (uint64_t i = 1; i < N; i += 2)
        cr_assert_eq(del_u64(t, (int64_t)i, i), 1);
    int64_t ts;
    uint16_t kg;
    const void *key;
    size_t len;
    int64_t expect = 0;
    int long_seen = 0;
    while (rill__timers_pop(t, INT64_MAX, &ts, &kg, &key, &len) == 1) {
        if (len == sizeof lk) {
            cr_assert_eq(ts, N / 2);
            cr_assert_eq(memcmp(key, lk, sizeof lk), 0);
            long_seen++;
            continue;
        }
        cr_assert_eq(ts, expect);
        cr_assert_eq(len, 8);
        expect += 2;
    }
    cr_assert_eq(expect, N);
    cr_assert_eq(long_seen, 1);
    cr_assert_gt(injected, 0, "the set never tried to give memory back");
    cr_assert_eq(rill__timers_count(t), 0);
    rill__timers_free(t);
}

Test(timers, new_returns_null_without_memory, .fini = restore_allocator)
{
    install_failing(-1);
    cr_assert_null(rill__timers_new());
    cr_assert_eq(live_blocks, 0);
}
