/* state_test.c - the state layer driven directly: an operator instance built
 * by hand with its declared states, keys set as the runtime would, and
 * the processing-time clock of a (fake) harness job. */
#define TEST_NAME "state"
#include "common.h"

#include <errno.h>
#include <lmdb.h>
#include <unistd.h>

#include "state_fixture.h"

/* ---- fixture ------------------------------------------------------------- */

/* The operator "counter", subtask 0 of 1. */
static fix *counter(void) { return fx_new("counter", 0, 1); }

static void key_str(fix *f, const char *key, uint16_t kg)
{
    size_t n = strlen(key);
    memcpy(f->keybuf, key, n);
    f->op.key = f->keybuf;
    f->op.key_len = n;
    f->op.kg = kg;
}

static void key_u64(fix *f, uint64_t k)
{
    memcpy(f->keybuf, &k, 8);
    f->op.key = f->keybuf;
    f->op.key_len = 8;
    f->op.kg = (uint16_t)(k % 128);
}

static void put_i64(rill_state *st, int64_t v)
{
    cr_assert_eq(rill_state_put(st, &v, sizeof v), RILL_OK);
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

static void expect_str(rill_state *st, const char *want)
{
    const void *p;
    size_t n;
    int rc = rill_state_get(st, &p, &n);
    cr_assert_eq(rc, RILL_OK, "get: %s", rill_err_name(rc));
    cr_assert_eq(n, strlen(want), "length %zu, want %zu", n, strlen(want));
    cr_assert_eq(memcmp(p, want, n), 0);
}

static int absent(rill_state *st)
{
    const void *p;
    size_t n;
    return rill_state_get(st, &p, &n) == RILL_ENOTFOUND;
}

static void add_str(rill_state *st, const char *s)
{
    cr_assert_eq(rill_state_add(st, s, strlen(s)), RILL_OK);
}

/* The list as "a,b,c". */
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

static void map_put_str(rill_state *st, const char *k, const char *v)
{
    cr_assert_eq(rill_state_map_put(st, k, strlen(k), v, strlen(v)), RILL_OK);
}

/* The map as "k=v;k=v". */
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

static void expect_map_get(rill_state *st, const char *k, const char *want)
{
    const void *v;
    size_t n;
    int rc = rill_state_map_get(st, k, strlen(k), &v, &n);
    if (!want) {
        cr_assert_eq(rc, RILL_ENOTFOUND, "map_get %s: %s", k, rill_err_name(rc));
        return;
    }
    cr_assert_eq(rc, RILL_OK, "map_get %s: %s", k, rill_err_name(rc));
    cr_assert_eq(n, strlen(want));
    cr_assert_eq(memcmp(v, want, n), 0);
}

static size_t db_count(fix *f, rill_state *st_unused, unsigned sid)
{
    (void)st_unused;
    size_t n = 0;
    cr_assert_eq(rill__kv_db_count(f->op.kv, sid, &n), RILL_OK);
    return n;
}

/* ---- user functions ------------------------------------------------------- */

static int concat_calls_short; /* times a buffer was too small */

/* a + "," + b */
static int concat(const void *a, size_t al, const void *b, size_t bl, void *out, size_t *out_len,
                  void *ud)
{
    (void)ud;
    size_t need = al + 1 + bl;
    if (*out_len < need) {
        concat_calls_short++;
        *out_len = need;
        return 0;
    }
    memcpy(out, a, al);
    ((char *)out)[al] = ',';
    memcpy((char *)out + al + 1, b, bl);
    *out_len = need;
    return 0;
}

static int failing_reduce(const void *a, size_t al, const void *b, size_t bl, void *out,
                          size_t *out_len, void *ud)
{
    (void)a, (void)al, (void)b, (void)bl, (void)out, (void)out_len, (void)ud;
    return 7;
}

/* Aggregating: the accumulator is the text so far, "[" first; the result
 * is the accumulator followed by "]". */
static int agg_creates;

static int agg_create(void *out, size_t *out_len, void *ud)
{
    (void)ud;
    agg_creates++;
    if (*out_len < 1) {
        *out_len = 1;
        return 0;
    }
    ((char *)out)[0] = '[';
    *out_len = 1;
    return 0;
}

static int agg_add(const void *acc, size_t al, const void *val, size_t vl, void *out,
                   size_t *out_len, void *ud)
{
    (void)ud;
    size_t need = al + vl;
    if (*out_len < need) {
        *out_len = need;
        return 0;
    }
    memcpy(out, acc, al);
    memcpy((char *)out + al, val, vl);
    *out_len = need;
    return 0;
}

static int agg_merge(const void *a, size_t al, const void *b, size_t bl, void *out,
                     size_t *out_len, void *ud)
{
    return agg_add(a, al, (const char *)b + 1, bl - 1, out, out_len, ud);
}

static int agg_result(const void *acc, size_t al, void *out, size_t *out_len, void *ud)
{
    (void)ud;
    if (*out_len < al + 1) {
        *out_len = al + 1;
        return 0;
    }
    memcpy(out, acc, al);
    ((char *)out)[al] = ']';
    *out_len = al + 1;
    return 0;
}

static int agg_add_fails(const void *acc, size_t al, const void *val, size_t vl, void *out,
                         size_t *out_len, void *ud)
{
    (void)acc, (void)al, (void)val, (void)vl, (void)out, (void)out_len, (void)ud;
    return -3;
}

static const rill_aggregate_fns agg_fns = {agg_create, agg_add, agg_merge, agg_result};

static rill__statedesc *fx_add_reducing(fix *f, const char *name, rill_reduce_fn fn)
{
    rill__statedesc *d = fx_add(f, name, RILL_STATE_REDUCING);
    d->reduce = fn;
    return d;
}

static rill__statedesc *fx_add_aggregating(fix *f, const char *name,
                                           const rill_aggregate_fns *fns)
{
    rill__statedesc *d = fx_add(f, name, RILL_STATE_AGGREGATING);
    d->agg = *fns;
    return d;
}

TestSuite(state, .init = mk_tmp, .fini = rm_tmp);

/* ---- value ---------------------------------------------------------------- */

Test(state, value_absent_until_put_then_exact_bytes)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "v");
    key_str(f, "alice", 3);
    cr_assert(absent(st));
    cr_assert_eq(rill_state_put(st, "hello", 5), RILL_OK);
    expect_str(st, "hello");
    cr_assert_eq(rill_state_put(st, "a much longer value than before", 31), RILL_OK);
    expect_str(st, "a much longer value than before");
    cr_assert_eq(rill_state_put(st, "x", 1), RILL_OK);
    expect_str(st, "x");
    fx_free(f);
}

Test(state, value_clear_removes_it)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "v");
    key_str(f, "k", 0);
    put_i64(st, 42);
    cr_assert_eq(rill_state_clear(st), RILL_OK);
    cr_assert(absent(st));
    cr_assert_eq(rill_state_clear(st), RILL_OK);
    fx_free(f);
}

Test(state, value_empty_value_is_present)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "v");
    key_str(f, "k", 0);
    cr_assert_eq(rill_state_put(st, NULL, 0), RILL_OK);
    const void *p;
    size_t n = 99;
    cr_assert_eq(rill_state_get(st, &p, &n), RILL_OK);
    cr_assert_eq(n, 0);
    fx_free(f);
}

Test(state, keys_key_groups_and_namespaces_are_independent)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "v");
    key_str(f, "a", 1);
    put_i64(st, 1);
    key_str(f, "b", 1);
    put_i64(st, 2);
    key_str(f, "a", 2); /* same key bytes, other key group */
    put_i64(st, 3);
    key_str(f, "a", 1);
    f->op.ns = "w1";
    f->op.ns_len = 2;
    put_i64(st, 4);
    f->op.ns = "w2";
    put_i64(st, 5);

    f->op.ns = NULL;
    f->op.ns_len = 0;
    key_str(f, "a", 1);
    cr_assert_eq(get_i64(st), 1);
    key_str(f, "b", 1);
    cr_assert_eq(get_i64(st), 2);
    key_str(f, "a", 2);
    cr_assert_eq(get_i64(st), 3);
    key_str(f, "a", 1);
    f->op.ns = "w1";
    f->op.ns_len = 2;
    cr_assert_eq(get_i64(st), 4);
    f->op.ns = "w2";
    cr_assert_eq(get_i64(st), 5);
    f->op.ns = "w3";
    cr_assert(absent(st));
    fx_free(f);
}

Test(state, states_of_one_operator_are_independent)
{
    fix *f = counter();
    fx_add(f, "x", RILL_STATE_VALUE);
    fx_add(f, "y", RILL_STATE_VALUE);
    fx_open(f, 1 << 20);
    key_str(f, "k", 5);
    put_i64(S(f, "x"), 10);
    cr_assert(absent(S(f, "y")));
    put_i64(S(f, "y"), 20);
    cr_assert_eq(get_i64(S(f, "x")), 10);
    cr_assert_eq(get_i64(S(f, "y")), 20);
    fx_free(f);
}

Test(state, ctx_state_finds_by_name)
{
    fix *f = counter();
    fx_add(f, "one", RILL_STATE_VALUE);
    fx_add(f, "two", RILL_STATE_LIST);
    fx_open(f, 1 << 20);
    cr_assert_eq(f->op.n_states, 2);
    cr_assert_eq(rill_ctx_state(&f->op, "one"), f->op.states[0]);
    cr_assert_eq(rill_ctx_state(&f->op, "two"), f->op.states[1]);
    cr_assert_null(rill_ctx_state(&f->op, "three"));
    cr_assert_null(rill_ctx_state(&f->op, NULL));
    cr_assert_null(rill_ctx_state(NULL, "one"));
    fx_free(f);
}

Test(state, put_of_a_value_borrowed_from_another_state)
{
    fix *f = counter();
    fx_add(f, "a", RILL_STATE_VALUE);
    fx_add(f, "b", RILL_STATE_VALUE);
    fx_open(f, 1 << 20);
    key_str(f, "k", 0);
    char big[300];
    memset(big, 'q', sizeof big);
    cr_assert_eq(rill_state_put(S(f, "a"), big, sizeof big), RILL_OK);
    const void *p;
    size_t n;
    cr_assert_eq(rill_state_get(S(f, "a"), &p, &n), RILL_OK);
    cr_assert_eq(rill_state_put(S(f, "b"), p, n), RILL_OK);
    /* A value of the same state, put again (it grows: the entry moves). */
    cr_assert_eq(rill_state_put(S(f, "a"), "0123456789", 10), RILL_OK);
    cr_assert_eq(rill_state_get(S(f, "a"), &p, &n), RILL_OK);
    cr_assert_eq(rill_state_put(S(f, "a"), p, 5), RILL_OK);
    expect_str(S(f, "a"), "01234");
    cr_assert_eq(rill_state_get(S(f, "b"), &p, &n), RILL_OK);
    cr_assert_eq(n, sizeof big);
    cr_assert_eq(memcmp(p, big, n), 0);
    fx_free(f);
}

/* ---- list ----------------------------------------------------------------- */

Test(state, list_add_and_iterate_in_order)
{
    fix *f = counter();
    fx_add(f, "l", RILL_STATE_LIST);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "l");
    key_str(f, "k", 9);
    char s[256];
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "");
    add_str(st, "a");
    add_str(st, "bb");
    add_str(st, "");
    add_str(st, "ccc");
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "a,bb,,ccc");
    fx_free(f);
}

Test(state, list_update_replaces_and_clear_empties)
{
    fix *f = counter();
    fx_add(f, "l", RILL_STATE_LIST);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "l");
    key_str(f, "k", 9);
    add_str(st, "old1");
    add_str(st, "old2");
    rill_record items[2] = {{"x", 1, 0}, {"yz", 2, 0}};
    cr_assert_eq(rill_state_list_update(st, items, 2), RILL_OK);
    char s[256];
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "x,yz");
    cr_assert_eq(rill_state_clear(st), RILL_OK);
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "");
    add_str(st, "new");
    cr_assert_eq(rill_state_list_update(st, NULL, 0), RILL_OK);
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "");
    fx_free(f);
}

Test(state, list_update_with_items_borrowed_from_the_list)
{
    fix *f = counter();
    fx_add(f, "l", RILL_STATE_LIST);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "l");
    key_str(f, "k", 9);
    const char *words[] = {"keep1", "drop", "keep2", "drop", "keep3"};
    for (int i = 0; i < 5; i++)
        add_str(st, words[i]);
    rill_record kept[5];
    size_t nk = 0, pos = 0, n;
    const void *item;
    while (rill_state_list_next(st, &pos, &item, &n) == 1)
        if (n != 4)
            kept[nk++] = (rill_record){item, n, 0};
    cr_assert_eq(nk, 3);
    cr_assert_eq(rill_state_list_update(st, kept, nk), RILL_OK);
    char s[256];
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "keep1,keep2,keep3");
    fx_free(f);
}

Test(state, list_cursor_ends_after_the_list_changes)
{
    fix *f = counter();
    fx_add(f, "l", RILL_STATE_LIST);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "l");
    key_str(f, "k", 9);
    add_str(st, "a");
    add_str(st, "b");
    size_t pos = 0, n;
    const void *item;
    cr_assert_eq(rill_state_list_next(st, &pos, &item, &n), 1);
    rill_record one = {"z", 1, 0};
    cr_assert_eq(rill_state_list_update(st, &one, 1), RILL_OK);
    cr_assert_eq(rill_state_list_next(st, &pos, &item, &n), 0);
    fx_free(f);
}

Test(state, lists_of_different_keys_are_independent)
{
    fix *f = counter();
    fx_add(f, "l", RILL_STATE_LIST);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "l");
    key_str(f, "k1", 1);
    add_str(st, "one");
    key_str(f, "k2", 1);
    add_str(st, "two");
    add_str(st, "three");
    char s[256];
    key_str(f, "k1", 1);
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "one");
    key_str(f, "k2", 1);
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "two,three");
    fx_free(f);
}

/* ---- map ------------------------------------------------------------------ */

Test(state, map_put_get_remove)
{
    fix *f = counter();
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "m");
    key_str(f, "k", 4);
    expect_map_get(st, "a", NULL);
    map_put_str(st, "a", "1");
    map_put_str(st, "b", "22");
    expect_map_get(st, "a", "1");
    expect_map_get(st, "b", "22");
    map_put_str(st, "a", "one");
    expect_map_get(st, "a", "one");
    cr_assert_eq(rill_state_map_remove(st, "a", 1), RILL_OK);
    expect_map_get(st, "a", NULL);
    cr_assert_eq(rill_state_map_remove(st, "missing", 7), RILL_OK);
    expect_map_get(st, "b", "22");
    fx_free(f);
}

Test(state, map_iterates_in_key_byte_order)
{
    fix *f = counter();
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "m");
    key_str(f, "k", 4);
    map_put_str(st, "b", "2");
    map_put_str(st, "ab", "3");
    map_put_str(st, "a", "1");
    map_put_str(st, "", "0");
    map_put_str(st, "\xff", "9");
    char s[256];
    map_join(st, s, sizeof s);
    cr_assert_str_eq(s, "=0;a=1;ab=3;b=2;\xff=9");
    fx_free(f);
}

Test(state, map_clear_removes_the_whole_map_of_the_key)
{
    fix *f = counter();
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "m");
    key_str(f, "k1", 4);
    map_put_str(st, "a", "1");
    map_put_str(st, "b", "2");
    key_str(f, "k2", 4);
    map_put_str(st, "a", "x");
    key_str(f, "k1", 4);
    cr_assert_eq(rill_state_clear(st), RILL_OK);
    char s[256];
    map_join(st, s, sizeof s);
    cr_assert_str_eq(s, "");
    expect_map_get(st, "a", NULL);
    key_str(f, "k2", 4);
    map_join(st, s, sizeof s);
    cr_assert_str_eq(s, "a=x");
    fx_free(f);
}

Test(state, map_put_ends_an_iteration)
{
    fix *f = counter();
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "m");
    key_str(f, "k", 4);
    map_put_str(st, "a", "1");
    map_put_str(st, "b", "2");
    size_t pos = 0, kl, vl;
    const void *k, *v;
    cr_assert_eq(rill_state_map_next(st, &pos, &k, &kl, &v, &vl), 1);
    map_put_str(st, "c", "3");
    cr_assert_eq(rill_state_map_next(st, &pos, &k, &kl, &v, &vl), 0);
    fx_free(f);
}

Test(state, map_put_of_an_entry_borrowed_from_the_map)
{
    fix *f = counter();
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "m");
    key_str(f, "k", 4);
    map_put_str(st, "b", "bee");
    size_t pos = 0, kl, vl;
    const void *k, *v;
    cr_assert_eq(rill_state_map_next(st, &pos, &k, &kl, &v, &vl), 1);
    /* Key "a" before "b" with b's value: the blob moves under both. */
    char longkey[200];
    memset(longkey, 'a', sizeof longkey);
    cr_assert_eq(rill_state_map_put(st, longkey, sizeof longkey, v, vl), RILL_OK);
    cr_assert_eq(rill_state_map_get(st, "b", 1, &v, &vl), RILL_OK);
    cr_assert_eq(rill_state_map_put(st, "c", 1, v, vl), RILL_OK);
    expect_map_get(st, "c", "bee");
    const void *got;
    size_t gl;
    cr_assert_eq(rill_state_map_get(st, longkey, sizeof longkey, &got, &gl), RILL_OK);
    cr_assert_eq(gl, 3);
    cr_assert_eq(memcmp(got, "bee", 3), 0);
    fx_free(f);
}

/* ---- reducing and aggregating ---------------------------------------------- */

Test(state, reducing_first_value_as_is_then_folded)
{
    fix *f = counter();
    fx_add_reducing(f, "sum", sum_i64);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "sum");
    key_str(f, "k", 0);
    cr_assert(absent(st));
    int64_t v = 5;
    cr_assert_eq(rill_state_add(st, &v, 8), RILL_OK);
    cr_assert_eq(get_i64(st), 5);
    v = 7;
    cr_assert_eq(rill_state_add(st, &v, 8), RILL_OK);
    v = -2;
    cr_assert_eq(rill_state_add(st, &v, 8), RILL_OK);
    cr_assert_eq(get_i64(st), 10);
    key_str(f, "other", 0);
    cr_assert(absent(st));
    fx_free(f);
}

Test(state, reducing_result_larger_than_the_first_buffer)
{
    fix *f = counter();
    fx_add_reducing(f, "cat", concat);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "cat");
    key_str(f, "k", 0);
    char want[4096] = "";
    char part[101];
    concat_calls_short = 0;
    for (int i = 0; i < 20; i++) {
        memset(part, 'a' + i, 100);
        part[100] = '\0';
        add_str(st, part);
        if (i)
            strcat(want, ",");
        strcat(want, part);
    }
    expect_str(st, want);
    cr_assert_gt(concat_calls_short, 0);
    fx_free(f);
}

Test(state, reducing_function_failure_is_euser)
{
    fix *f = counter();
    fx_add_reducing(f, "bad", failing_reduce);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "bad");
    key_str(f, "k", 0);
    add_str(st, "first"); /* stored as is: no call */
    cr_assert_eq(rill_state_add(st, "second", 6), RILL_EUSER);
    cr_assert_not_null(f->op.user_err);
    cr_assert_not_null(strstr(f->op.user_err, "returned 7"), "%s", f->op.user_err);
    cr_assert_not_null(strstr(f->op.user_err, "'bad'"), "%s", f->op.user_err);
    expect_str(st, "first");
    fx_free(f);
}

Test(state, aggregating_creates_adds_and_gives_the_result)
{
    fix *f = counter();
    fx_add_aggregating(f, "agg", &agg_fns);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "agg");
    key_str(f, "k", 0);
    cr_assert(absent(st));
    agg_creates = 0;
    add_str(st, "x");
    add_str(st, "yz");
    expect_str(st, "[xyz]");
    cr_assert_eq(agg_creates, 1);
    fx_free(f);
}

Test(state, aggregating_results_larger_than_the_first_buffer)
{
    fix *f = counter();
    fx_add_aggregating(f, "agg", &agg_fns);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "agg");
    key_str(f, "k", 0);
    char want[8192] = "[";
    char part[301];
    for (int i = 0; i < 20; i++) {
        memset(part, 'A' + i, 300);
        part[300] = '\0';
        add_str(st, part);
        strcat(want, part);
    }
    strcat(want, "]");
    expect_str(st, want);
    fx_free(f);
}

Test(state, aggregating_add_failure_is_euser)
{
    fix *f = counter();
    rill_aggregate_fns fns = agg_fns;
    fns.add = agg_add_fails;
    fx_add_aggregating(f, "agg", &fns);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "agg");
    key_str(f, "k", 0);
    cr_assert_eq(rill_state_add(st, "x", 1), RILL_EUSER);
    cr_assert(absent(st));
    cr_assert_not_null(strstr(f->op.user_err, "returned -3"), "%s", f->op.user_err);
    fx_free(f);
}

/* ---- operator list and broadcast --------------------------------------------- */

Test(state, operator_list_works_without_a_key)
{
    fix *f = counter();
    f->op.keyed = 0;
    fx_add(f, "ol", RILL_STATE_OPERATOR_LIST);
    fx_open(f, 1 << 20);
    cr_assert_null(f->op.kv); /* no keyed state: no store */
    rill_state *st = S(f, "ol");
    add_str(st, "p");
    add_str(st, "q");
    char s[64];
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "p,q");
    rill_record items[3] = {{"1", 1, 0}, {"22", 2, 0}, {"333", 3, 0}};
    cr_assert_eq(rill_state_list_update(st, items, 3), RILL_OK);
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "1,22,333");
    cr_assert_eq(rill_state_clear(st), RILL_OK);
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "");
    fx_free(f);
}

Test(state, operator_list_ignores_the_current_key)
{
    fix *f = counter();
    fx_add(f, "ol", RILL_STATE_OPERATOR_LIST);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "ol");
    key_str(f, "a", 1);
    add_str(st, "x");
    key_str(f, "b", 2);
    add_str(st, "y");
    char s[64];
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "x,y");
    fx_free(f);
}

Test(state, broadcast_written_on_the_broadcast_side_read_anywhere)
{
    fix *f = counter();
    f->op.keyed = 0;
    fx_add(f, "rules", RILL_STATE_BROADCAST);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "rules");
    f->op.bc_side = 1;
    map_put_str(st, "r2", "two");
    map_put_str(st, "r1", "one");
    map_put_str(st, "r3", "three");
    cr_assert_eq(rill_state_map_remove(st, "r3", 2), RILL_OK);
    f->op.bc_side = 0;
    expect_map_get(st, "r1", "one");
    expect_map_get(st, "r3", NULL);
    char s[64];
    map_join(st, s, sizeof s);
    cr_assert_str_eq(s, "r1=one;r2=two");
    fx_free(f);
}

Test(state, broadcast_writes_outside_the_broadcast_side_are_estate)
{
    fix *f = counter();
    fx_add(f, "rules", RILL_STATE_BROADCAST);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "rules");
    f->op.bc_side = 1;
    map_put_str(st, "r", "v");
    f->op.bc_side = 0;
    cr_assert_eq(rill_state_map_put(st, "x", 1, "y", 1), RILL_ESTATE);
    cr_assert_eq(rill_state_map_remove(st, "r", 1), RILL_ESTATE);
    cr_assert_eq(rill_state_clear(st), RILL_ESTATE);
    expect_map_get(st, "r", "v");
    expect_map_get(st, "x", NULL);
    f->op.bc_side = 1;
    cr_assert_eq(rill_state_clear(st), RILL_OK);
    expect_map_get(st, "r", NULL);
    fx_free(f);
}

/* ---- misuse ------------------------------------------------------------------ */

Test(state, wrong_kind_calls_are_einval)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_add(f, "l", RILL_STATE_LIST);
    fx_add(f, "m", RILL_STATE_MAP);
    fx_add_reducing(f, "r", sum_i64);
    fx_add(f, "ol", RILL_STATE_OPERATOR_LIST);
    fx_add(f, "bc", RILL_STATE_BROADCAST);
    fx_open(f, 1 << 20);
    key_str(f, "k", 0);
    const void *p, *k;
    size_t n, kl, pos = 0;
    rill_record rec = {"a", 1, 0};
    cr_assert_eq(rill_state_put(S(f, "l"), "a", 1), RILL_EINVAL);
    cr_assert_not_null(strstr(f->op.user_err, "rill_state_put on list state"), "%s",
                       f->op.user_err);
    cr_assert_eq(rill_state_get(S(f, "l"), &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_get(S(f, "m"), &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_get(S(f, "ol"), &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_put(S(f, "r"), "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_put(S(f, "m"), "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_add(S(f, "v"), "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_add(S(f, "m"), "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_add(S(f, "bc"), "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_list_next(S(f, "v"), &pos, &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_list_next(S(f, "m"), &pos, &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_list_update(S(f, "v"), &rec, 1), RILL_EINVAL);
    cr_assert_eq(rill_state_list_update(S(f, "bc"), &rec, 1), RILL_EINVAL);
    cr_assert_eq(rill_state_map_get(S(f, "v"), "a", 1, &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_map_put(S(f, "l"), "a", 1, "b", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_map_remove(S(f, "ol"), "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_map_next(S(f, "r"), &pos, &k, &kl, &p, &n), RILL_EINVAL);
    fx_free(f);
}

Test(state, keyed_state_outside_a_keyed_operator_is_einval)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_add(f, "l", RILL_STATE_LIST);
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 1 << 20);
    f->op.keyed = 0;
    const void *p;
    size_t n, pos = 0;
    cr_assert_eq(rill_state_put(S(f, "v"), "a", 1), RILL_EINVAL);
    cr_assert_not_null(strstr(f->op.user_err, "keyed operator"), "%s", f->op.user_err);
    cr_assert_eq(rill_state_get(S(f, "v"), &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_clear(S(f, "v")), RILL_EINVAL);
    cr_assert_eq(rill_state_add(S(f, "l"), "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_list_next(S(f, "l"), &pos, &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_map_put(S(f, "m"), "a", 1, "b", 1), RILL_EINVAL);
    fx_free(f);
}

Test(state, null_arguments_are_einval)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_add(f, "l", RILL_STATE_LIST);
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 1 << 20);
    key_str(f, "k", 0);
    const void *p, *k;
    size_t n, kl, pos = 0;
    cr_assert_eq(rill_state_get(NULL, &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_get(S(f, "v"), NULL, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_get(S(f, "v"), &p, NULL), RILL_EINVAL);
    cr_assert_eq(rill_state_put(NULL, "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_put(S(f, "v"), NULL, 1), RILL_EINVAL);
    cr_assert_eq(rill_state_add(NULL, "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_add(S(f, "l"), NULL, 3), RILL_EINVAL);
    cr_assert_eq(rill_state_clear(NULL), RILL_EINVAL);
    cr_assert_eq(rill_state_list_next(NULL, &pos, &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_list_next(S(f, "l"), NULL, &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_list_update(S(f, "l"), NULL, 2), RILL_EINVAL);
    rill_record bad = {NULL, 4, 0};
    cr_assert_eq(rill_state_list_update(S(f, "l"), &bad, 1), RILL_EINVAL);
    cr_assert_eq(rill_state_map_get(S(f, "m"), NULL, 1, &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_map_put(S(f, "m"), "a", 1, NULL, 1), RILL_EINVAL);
    cr_assert_eq(rill_state_map_remove(NULL, "a", 1), RILL_EINVAL);
    cr_assert_eq(rill_state_map_next(S(f, "m"), &pos, NULL, &kl, &p, &n), RILL_EINVAL);
    cr_assert_eq(rill_state_map_next(S(f, "m"), &pos, &k, &kl, &p, NULL), RILL_EINVAL);
    fx_free(f);
}

/* Keys up to 65535 bytes: those past LMDB's key size go to long records. */
Test(state, keys_past_the_lmdb_key_size_keep_their_values)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 1 << 20);
    size_t max = rill__kv_max_key(f->op.kv);
    const size_t lens[] = {max - 6, max - 5, max, 4000, 65534, 65535};
    const size_t n = sizeof lens / sizeof lens[0];
    static unsigned char key[65535];
    memset(key, 'k', sizeof key);
    f->op.key = key;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            f->op.key_len = lens[i];
            f->op.kg = (uint16_t)i;
            if (pass == 0) {
                put_i64(S(f, "v"), (int64_t)lens[i]);
                map_put_str(S(f, "m"), "x", "y");
                continue;
            }
            cr_assert_eq(get_i64(S(f, "v")), (int64_t)lens[i], "key of %zu bytes", lens[i]);
            expect_map_get(S(f, "m"), "x", "y");
        }
        cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK); /* then read from LMDB */
    }
    fx_free(f);
}

Test(state, key_over_65535_bytes_is_einval)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_open(f, 1 << 20);
    static unsigned char key[65536];
    f->op.key = key;
    f->op.key_len = sizeof key;
    cr_assert_eq(rill_state_put(S(f, "v"), "a", 1), RILL_EINVAL);
    cr_assert_not_null(strstr(f->op.user_err, "too long"), "%s", f->op.user_err);
    fx_free(f);
}

/* ---- store: directory, spilling, growth ---------------------------------------- */

Test(state, store_directory_created_and_removed_on_close)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    snprintf(f->dir, sizeof f->dir, "%s/a/b/c", tmpdir);
    fx_open(f, 1 << 20);
    struct stat sb;
    cr_assert_eq(stat(f->dir, &sb), 0);
    cr_assert(S_ISDIR(sb.st_mode));
    key_str(f, "k", 0);
    put_i64(S(f, "v"), 3);
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
    rill__state_close(&f->op);
    cr_assert_eq(stat(f->dir, &sb), -1);
    cr_assert_eq(errno, ENOENT);
    cr_assert_null(f->op.kv);
    cr_assert_null(f->op.states);
    fx_free(f);
}

Test(state, no_store_without_keyed_state)
{
    fix *f = counter();
    fx_add(f, "bc", RILL_STATE_BROADCAST);
    fx_open(f, 1 << 20);
    struct stat sb;
    cr_assert_null(f->op.kv);
    cr_assert_eq(stat(f->dir, &sb), -1);
    fx_free(f);
}

Test(state, uncreatable_directory_is_eio_naming_the_path)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    char file[128];
    tmp_path(file, sizeof file, "plainfile");
    FILE *fp = fopen(file, "w");
    cr_assert_not_null(fp);
    fclose(fp);
    snprintf(f->dir, sizeof f->dir, "%s/sub/0", file);
    int rc = rill__state_open(&f->op, f->dir, 1 << 20, f->err);
    cr_assert_eq(rc, RILL_EIO);
    cr_assert_not_null(strstr(f->err, f->dir), "%s", f->err);
    cr_assert_not_null(strstr(f->err, "'counter'"), "%s", f->err);
    cr_assert_null(f->op.states);
    cr_assert_null(f->op.kv);
    fx_free(f);
}

Test(state, flush_writes_every_dirty_value)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_open(f, 64 << 20);
    for (uint64_t i = 0; i < 1000; i++) {
        key_u64(f, i);
        put_i64(S(f, "v"), (int64_t)i);
    }
    cr_assert_eq(db_count(f, NULL, 0), 0);
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
    cr_assert_eq(db_count(f, NULL, 0), 1000);
    /* Clearing a flushed value deletes its record at the next flush. */
    key_u64(f, 5);
    cr_assert_eq(rill_state_clear(S(f, "v")), RILL_OK);
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
    cr_assert_eq(db_count(f, NULL, 0), 999);
    fx_free(f);
}

Test(state, values_read_back_from_lmdb_after_eviction)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_add(f, "l", RILL_STATE_LIST);
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 64 << 20);
    key_str(f, "k", 77);
    put_i64(S(f, "v"), 123);
    add_str(S(f, "l"), "l1");
    add_str(S(f, "l"), "l2");
    map_put_str(S(f, "m"), "b", "2");
    map_put_str(S(f, "m"), "a", "1");
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
    rill__kvstats s;
    rill__kv_stats(f->op.kv, &s);
    cr_assert_eq(s.entries, 0);
    cr_assert_eq(db_count(f, NULL, 2), 2); /* one record per map entry */
    cr_assert_eq(get_i64(S(f, "v")), 123);
    char buf[64];
    list_join(S(f, "l"), buf, sizeof buf);
    cr_assert_str_eq(buf, "l1,l2");
    map_join(S(f, "m"), buf, sizeof buf);
    cr_assert_str_eq(buf, "a=1;b=2");
    /* Change the map, write it back, read it again. */
    cr_assert_eq(rill_state_map_remove(S(f, "m"), "a", 1), RILL_OK);
    map_put_str(S(f, "m"), "c", "3");
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
    cr_assert_eq(db_count(f, NULL, 2), 2);
    map_join(S(f, "m"), buf, sizeof buf);
    cr_assert_str_eq(buf, "b=2;c=3");
    /* An emptied map and list leave no records. */
    cr_assert_eq(rill_state_map_remove(S(f, "m"), "b", 1), RILL_OK);
    cr_assert_eq(rill_state_map_remove(S(f, "m"), "c", 1), RILL_OK);
    cr_assert_eq(rill_state_clear(S(f, "l")), RILL_OK);
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
    cr_assert_eq(db_count(f, NULL, 1), 0);
    cr_assert_eq(db_count(f, NULL, 2), 0);
    map_join(S(f, "m"), buf, sizeof buf);
    cr_assert_str_eq(buf, "");
    fx_free(f);
}

Test(state, cache_smaller_than_the_data_gives_exact_values)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "v");
    const uint64_t n = 200000;
    for (int round = 0; round < 2; round++) {
        for (uint64_t i = 0; i < n; i++) {
            key_u64(f, i * 2654435761u);
            if (round == 0) {
                cr_assert(absent(st));
                put_i64(st, (int64_t)i * 3);
            } else {
                put_i64(st, get_i64(st) + 1);
            }
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        key_u64(f, i * 2654435761u);
        cr_assert_eq(get_i64(st), (int64_t)i * 3 + 1, "key %llu", (unsigned long long)i);
    }
    rill__kvstats s;
    rill__kv_stats(f->op.kv, &s);
    cr_assert_gt(s.spills, 10);
    cr_assert_gt(s.evictions, n);
    /* Over budget by at most the last call's entry until the next call. */
    cr_assert_leq(s.bytes, ((size_t)1 << 20) + 256);
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
    cr_assert_eq(db_count(f, NULL, 0), n);
    fx_free(f);
}

Test(state, map_full_grows_the_map_several_times)
{
    size_t saved = rill__kv_initial_map_size;
    rill__kv_initial_map_size = 64 << 10;
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_add(f, "m", RILL_STATE_MAP);
    fx_open(f, 1 << 20);
    rill__kv_initial_map_size = saved;
    const uint64_t n = 100000;
    for (uint64_t i = 0; i < n; i++) {
        key_u64(f, i);
        put_i64(S(f, "v"), (int64_t)(i ^ 0x5555));
        if (i % 10 == 0) {
            char k[16];
            snprintf(k, sizeof k, "e%llu", (unsigned long long)(i % 7));
            cr_assert_eq(rill_state_map_put(S(f, "m"), k, strlen(k), &i, 8), RILL_OK);
        }
    }
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
    rill__kvstats s;
    rill__kv_stats(f->op.kv, &s);
    cr_assert_geq(s.map_grows, 3, "grows %llu", (unsigned long long)s.map_grows);
    cr_assert_eq(s.map_size, (size_t)(64 << 10) << s.map_grows);
    for (uint64_t i = 0; i < n; i++) {
        key_u64(f, i);
        cr_assert_eq(get_i64(S(f, "v")), (int64_t)(i ^ 0x5555));
        if (i % 10 == 0) {
            char k[16];
            snprintf(k, sizeof k, "e%llu", (unsigned long long)(i % 7));
            const void *p;
            size_t len;
            cr_assert_eq(rill_state_map_get(S(f, "m"), k, strlen(k), &p, &len), RILL_OK);
            cr_assert_eq(len, 8);
            cr_assert_eq(memcmp(p, &i, 8), 0);
        }
    }
    fx_free(f);
}

Test(state, state_larger_than_the_initial_map)
{
    size_t saved = rill__kv_initial_map_size;
    rill__kv_initial_map_size = 1 << 20;
    fix *f = counter();
    fx_add(f, "l", RILL_STATE_LIST);
    fx_open(f, 1 << 20);
    rill__kv_initial_map_size = saved;
    rill_state *st = S(f, "l");
    static unsigned char item[1000];
    const uint64_t keys = 2000; /* 2000 lists of 10 items of 1000 bytes: 20 MB */
    for (int j = 0; j < 10; j++)
        for (uint64_t i = 0; i < keys; i++) {
            key_u64(f, i);
            memset(item, (int)((i + (uint64_t)j) & 0xff), sizeof item);
            cr_assert_eq(rill_state_add(st, item, sizeof item), RILL_OK);
        }
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
    rill__kvstats s;
    rill__kv_stats(f->op.kv, &s);
    cr_assert_geq(s.map_size, (size_t)32 << 20);
    for (uint64_t i = 0; i < keys; i++) {
        key_u64(f, i);
        size_t pos = 0, n;
        const void *p;
        int j = 0;
        while (rill_state_list_next(st, &pos, &p, &n) == 1) {
            cr_assert_eq(n, sizeof item);
            const unsigned char *b = p;
            cr_assert_eq(b[0], (unsigned char)((i + (uint64_t)j) & 0xff));
            cr_assert_eq(b[999], (unsigned char)((i + (uint64_t)j) & 0xff));
            j++;
        }
        cr_assert_eq(j, 10);
    }
    fx_free(f);
}

Test(state, values_borrowed_across_a_spill_stay_valid_for_the_next_call)
{
    fix *f = counter();
    fx_add(f, "a", RILL_STATE_VALUE);
    fx_add(f, "b", RILL_STATE_VALUE);
    fx_open(f, 64 << 10);
    char val[100];
    for (uint64_t i = 0; i < 20000; i++) {
        key_u64(f, i);
        memset(val, (int)(i & 0xff), sizeof val);
        cr_assert_eq(rill_state_put(S(f, "a"), val, sizeof val), RILL_OK);
        const void *p;
        size_t n;
        cr_assert_eq(rill_state_get(S(f, "a"), &p, &n), RILL_OK);
        /* The cache is often over budget here: put spills first. */
        cr_assert_eq(rill_state_put(S(f, "b"), p, n), RILL_OK);
    }
    for (uint64_t i = 0; i < 20000; i += 97) {
        key_u64(f, i);
        const void *p;
        size_t n;
        memset(val, (int)(i & 0xff), sizeof val);
        cr_assert_eq(rill_state_get(S(f, "b"), &p, &n), RILL_OK);
        cr_assert_eq(n, sizeof val);
        cr_assert_eq(memcmp(p, val, n), 0);
    }
    fx_free(f);
}

Test(state, a_value_larger_than_the_cache_copied_to_another_state)
{
    fix *f = counter();
    fx_add(f, "a", RILL_STATE_VALUE);
    fx_add(f, "b", RILL_STATE_VALUE);
    fx_open(f, 64 << 10);
    key_str(f, "k", 0);
    static unsigned char big[100 << 10];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 7);
    cr_assert_eq(rill_state_put(S(f, "a"), big, sizeof big), RILL_OK);
    const void *p;
    size_t n;
    /* Each call finds the cache over budget: the entry of "a" is evicted
     * while put runs, before it reads p. */
    cr_assert_eq(rill_state_get(S(f, "a"), &p, &n), RILL_OK);
    cr_assert_eq(rill_state_put(S(f, "b"), p, n), RILL_OK);
    cr_assert_eq(rill_state_get(S(f, "b"), &p, &n), RILL_OK);
    cr_assert_eq(n, sizeof big);
    cr_assert_eq(memcmp(p, big, n), 0);
    cr_assert_eq(rill_state_get(S(f, "a"), &p, &n), RILL_OK);
    cr_assert_eq(n, sizeof big);
    cr_assert_eq(memcmp(p, big, n), 0);
    fx_free(f);
}

/* ---- TTL -------------------------------------------------------------------- */

Test(state, ttl_value_expires_exactly_at_write_plus_ttl)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE)->ttl = 100;
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "v");
    key_str(f, "k", 0);
    f->job.clock = 1000;
    put_i64(st, 9);
    f->job.clock = 1099;
    cr_assert_eq(get_i64(st), 9);
    f->job.clock = 1100;
    cr_assert(absent(st));
    f->job.clock = 1000; /* removed on access: never comes back */
    cr_assert(absent(st));
    fx_free(f);
}

Test(state, ttl_rewrite_extends_the_life)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE)->ttl = 100;
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "v");
    key_str(f, "k", 0);
    f->job.clock = 0;
    put_i64(st, 1);
    f->job.clock = 50;
    put_i64(st, 2);
    f->job.clock = 100;
    cr_assert_eq(get_i64(st), 2);
    f->job.clock = 149;
    cr_assert_eq(get_i64(st), 2); /* reading does not extend */
    f->job.clock = 150;
    cr_assert(absent(st));
    fx_free(f);
}

Test(state, ttl_reducing_add_restarts_from_the_new_value_after_expiry)
{
    fix *f = counter();
    fx_add_reducing(f, "sum", sum_i64)->ttl = 10;
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "sum");
    key_str(f, "k", 0);
    int64_t v = 5;
    f->job.clock = 0;
    cr_assert_eq(rill_state_add(st, &v, 8), RILL_OK);
    f->job.clock = 9;
    cr_assert_eq(rill_state_add(st, &v, 8), RILL_OK);
    f->job.clock = 18;
    cr_assert_eq(get_i64(st), 10);
    f->job.clock = 19;
    v = 1;
    cr_assert_eq(rill_state_add(st, &v, 8), RILL_OK);
    cr_assert_eq(get_i64(st), 1);
    fx_free(f);
}

Test(state, ttl_list_expires_per_element)
{
    fix *f = counter();
    fx_add(f, "l", RILL_STATE_LIST)->ttl = 100;
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "l");
    key_str(f, "k", 0);
    f->job.clock = 0;
    add_str(st, "early");
    f->job.clock = 50;
    add_str(st, "late");
    char s[64];
    f->job.clock = 99;
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "early,late");
    f->job.clock = 100;
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "late");
    f->job.clock = 150;
    list_join(st, s, sizeof s);
    cr_assert_str_eq(s, "");
    fx_free(f);
}

Test(state, ttl_map_expires_per_entry)
{
    fix *f = counter();
    fx_add(f, "m", RILL_STATE_MAP)->ttl = 100;
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "m");
    key_str(f, "k", 0);
    f->job.clock = 0;
    map_put_str(st, "a", "1");
    map_put_str(st, "b", "2");
    f->job.clock = 60;
    map_put_str(st, "b", "3"); /* rewrite extends b */
    map_put_str(st, "c", "4");
    char s[64];
    f->job.clock = 100;
    expect_map_get(st, "a", NULL);
    expect_map_get(st, "b", "3");
    map_join(st, s, sizeof s);
    cr_assert_str_eq(s, "b=3;c=4");
    f->job.clock = 160;
    map_join(st, s, sizeof s);
    cr_assert_str_eq(s, "");
    fx_free(f);
}

Test(state, ttl_values_read_back_from_lmdb_keep_their_expiry)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE)->ttl = 100;
    fx_open(f, 1 << 20);
    rill_state *st = S(f, "v");
    key_str(f, "k", 0);
    f->job.clock = 500;
    put_i64(st, 77);
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
    f->job.clock = 599;
    cr_assert_eq(get_i64(st), 77);
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
    f->job.clock = 600;
    cr_assert(absent(st));
    fx_free(f);
}

/* Run maintain until a call changes nothing more in LMDB or the cache. */
static void maintain_all(fix *f, int64_t now)
{
    for (int i = 0; i < 200; i++)
        cr_assert_eq(rill__state_maintain(&f->op, now), RILL_OK);
}

Test(state, maintain_removes_expired_records_from_lmdb)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE)->ttl = 1000;
    fx_add(f, "plain", RILL_STATE_VALUE);
    fx_open(f, 1 << 20);
    for (uint64_t i = 0; i < 3000; i++) {
        f->job.clock = i < 1000 ? 0 : 500;
        key_u64(f, i);
        put_i64(S(f, "v"), (int64_t)i);
        put_i64(S(f, "plain"), (int64_t)i);
    }
    /* Out of the cache: only the LMDB scan can find them. */
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
    cr_assert_eq(db_count(f, NULL, 0), 3000);
    maintain_all(f, 999);
    cr_assert_eq(db_count(f, NULL, 0), 3000);
    maintain_all(f, 1000);
    cr_assert_eq(db_count(f, NULL, 0), 2000);
    maintain_all(f, 1500);
    cr_assert_eq(db_count(f, NULL, 0), 0);
    cr_assert_eq(db_count(f, NULL, 1), 3000); /* no TTL: untouched */
    fx_free(f);
}

Test(state, maintain_expires_cached_entries_at_the_next_flush)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE)->ttl = 1000;
    fx_open(f, 64 << 20);
    f->job.clock = 0;
    for (uint64_t i = 0; i < 500; i++) {
        key_u64(f, i);
        put_i64(S(f, "v"), (int64_t)i);
    }
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
    cr_assert_eq(db_count(f, NULL, 0), 500);
    maintain_all(f, 1000);
    cr_assert_eq(rill__state_flush(&f->op), RILL_OK);
    cr_assert_eq(db_count(f, NULL, 0), 0);
    fx_free(f);
}

Test(state, maintain_rewrites_lists_with_expired_elements)
{
    fix *f = counter();
    fx_add(f, "l", RILL_STATE_LIST)->ttl = 100;
    fx_add(f, "m", RILL_STATE_MAP)->ttl = 100;
    fx_open(f, 1 << 20);
    key_str(f, "k", 3);
    f->job.clock = 0;
    add_str(S(f, "l"), "old");
    map_put_str(S(f, "m"), "old", "1");
    f->job.clock = 50;
    add_str(S(f, "l"), "new");
    map_put_str(S(f, "m"), "new", "2");
    cr_assert_eq(rill__kv_drop_cache(f->op.kv), RILL_OK);
    cr_assert_eq(db_count(f, NULL, 1), 2);
    maintain_all(f, 100);
    cr_assert_eq(db_count(f, NULL, 1), 1);
    /* The list record now holds one element: read it raw. */
    MDB_txn *txn;
    cr_assert_eq(mdb_txn_begin(rill__kv_env(f->op.kv), NULL, MDB_RDONLY, &txn), 0);
    unsigned char kb[64];
    MDB_val k = {rill__kv_encode_key(kb, 3, "k", 1, NULL, 0), kb}, v;
    cr_assert_eq(mdb_get(txn, rill__kv_dbi(f->op.kv, 0), &k, &v), 0);
    cr_assert_eq(v.mv_size, 4 + 8 + 3);
    cr_assert_eq(memcmp((char *)v.mv_data + 12, "new", 3), 0);
    mdb_txn_abort(txn);
    maintain_all(f, 150);
    cr_assert_eq(db_count(f, NULL, 0), 0);
    cr_assert_eq(db_count(f, NULL, 1), 0);
    fx_free(f);
}

/* ---- allocation failure ------------------------------------------------------- */

static long alloc_n, alloc_fail_at;

static void *fail_malloc(size_t n)
{
    return ++alloc_n == alloc_fail_at ? NULL : malloc(n);
}
static void *fail_realloc(void *p, size_t n)
{
    return ++alloc_n == alloc_fail_at ? NULL : realloc(p, n);
}
static void *fail_calloc(size_t c, size_t n)
{
    return ++alloc_n == alloc_fail_at ? NULL : calloc(c, n);
}

static int ok_or_nomem(int rc) { return rc == RILL_OK || rc == RILL_ENOMEM; }

/* Open, use every kind, spill, close; returns 1 when nothing failed. */
static int alloc_round(fix *f)
{
    int clean = 1;
    int rc = rill__state_open(&f->op, f->dir, 64 << 10, f->err);
    cr_assert(ok_or_nomem(rc), "open: %s", rill_err_name(rc));
    if (rc) {
        cr_assert_null(f->op.states);
        cr_assert_neq(f->err[0], '\0');
        return 0;
    }
    char val[200];
    for (uint64_t i = 0; i < 600; i++) {
        key_u64(f, i);
        memset(val, (int)i, sizeof val);
        int r[6];
        r[0] = rill_state_put(f->op.states[0], val, sizeof val);
        r[1] = rill_state_add(f->op.states[1], val, 10);
        r[2] = rill_state_map_put(f->op.states[2], val, 4, val, 20);
        r[3] = rill_state_add(f->op.states[3], val, 30);
        r[4] = rill_state_add(f->op.states[4], val, 8);
        r[5] = rill_state_add(f->op.states[5], val, 5);
        for (int j = 0; j < 6; j++) {
            cr_assert(ok_or_nomem(r[j]), "call %d: %s", j, rill_err_name(r[j]));
            clean &= r[j] == RILL_OK;
        }
    }
    rc = rill__state_flush(&f->op);
    cr_assert(ok_or_nomem(rc));
    clean &= rc == RILL_OK;
    rill__state_close(&f->op);
    return clean;
}

Test(state, allocation_failures_are_enomem_never_a_crash)
{
    fix *f = counter();
    fx_add(f, "v", RILL_STATE_VALUE);
    fx_add(f, "l", RILL_STATE_LIST);
    fx_add(f, "m", RILL_STATE_MAP);
    fx_add_aggregating(f, "agg", &agg_fns);
    fx_add_reducing(f, "sum", sum_i64);
    fx_add(f, "ol", RILL_STATE_OPERATOR_LIST);
    int done = 0;
    for (long at = 1; at < 100000 && !done; at = at < 200 ? at + 1 : at * 5 / 4) {
        alloc_n = 0;
        alloc_fail_at = at;
        cr_assert_eq(rill_replace_allocator(fail_malloc, fail_realloc, fail_calloc, free),
                     RILL_OK);
        int clean = alloc_round(f);
        cr_assert_eq(rill_replace_allocator(malloc, realloc, calloc, free), RILL_OK);
        done = clean && alloc_n < at;
    }
    cr_assert(done);
    fx_free(f);
}
