/* rolling_test.c - rolling aggregations on keyed streams: rill_aggregate
 * (sum, min, max, min_by, max_by for every field type) and rill_reduce,
 * their building mistakes, short records, and exact per-key results of
 * parallel jobs.
 *
 * Exact outputs come from a test harness; the parallel jobs' sinks record
 * under a mutex and are checked after the job ended.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

#define TEST_NAME "rolling"
#include "harness_common.h"

TestSuite(aggregate, .fini = rm_tmp);
TestSuite(reduce, .fini = rm_tmp);
TestSuite(rolling_building, .fini = rm_tmp);
TestSuite(rolling_job, .fini = rm_tmp);

/* ---- records with a numeric field ----------------------------------------- */

/* A record: key, sequence number, then the field at offset 8 (4 or 8
 * bytes used, the rest zero). */
typedef struct arec {
    uint32_t key;
    uint32_t seq;
    unsigned char f[8];
} arec;

#define FIELD_OFF 8

typedef union fv {
    int32_t i32;
    int64_t i64;
    uint32_t u32;
    uint64_t u64;
    float f32;
    double f64;
} fv;

static size_t fsize(int type)
{
    return type == RILL_FIELD_I32 || type == RILL_FIELD_U32 || type == RILL_FIELD_F32 ? 4 : 8;
}

static arec mk(int type, uint32_t key, uint32_t seq, fv v)
{
    arec r;
    memset(&r, 0, sizeof r);
    r.key = key;
    r.seq = seq;
    memcpy(r.f, &v, fsize(type));
    return r;
}

static void fv_text(int type, const unsigned char *f, char *buf, size_t cap)
{
    fv v;
    memset(&v, 0, sizeof v);
    memcpy(&v, f, fsize(type));
    switch (type) {
    case RILL_FIELD_I32:
        snprintf(buf, cap, "%d", v.i32);
        break;
    case RILL_FIELD_I64:
        snprintf(buf, cap, "%lld", (long long)v.i64);
        break;
    case RILL_FIELD_U32:
        snprintf(buf, cap, "%u", v.u32);
        break;
    case RILL_FIELD_U64:
        snprintf(buf, cap, "%llu", (unsigned long long)v.u64);
        break;
    case RILL_FIELD_F32:
        snprintf(buf, cap, "%g", (double)v.f32);
        break;
    default:
        snprintf(buf, cap, "%g", v.f64);
    }
}

/* Data of one field type: cmp holds mid, low, high, low, high (ties for
 * the minimum and the maximum); sum holds values whose running sums are
 * sums. */
typedef struct tdata {
    int type;
    fv cmp[5];
    fv sum[5];
    fv sums[5];
} tdata;

#define I32(x) {.i32 = (x)}
#define I64(x) {.i64 = (x)}
#define U32(x) {.u32 = (x)}
#define U64(x) {.u64 = (x)}
#define F32(x) {.f32 = (x)}
#define F64(x) {.f64 = (x)}

static const tdata data_i32 = {RILL_FIELD_I32,
                               {I32(5), I32(-3), I32(9), I32(-3), I32(9)},
                               {I32(5), I32(-3), I32(9), I32(-3), I32(9)},
                               {I32(5), I32(2), I32(11), I32(8), I32(17)}};
static const tdata data_i64 = {
    RILL_FIELD_I64,
    {I64(5000000000), I64(-3000000000), I64(9000000000), I64(-3000000000), I64(9000000000)},
    {I64(5000000000), I64(-3000000000), I64(9000000000), I64(-3000000000), I64(9000000000)},
    {I64(5000000000), I64(2000000000), I64(11000000000), I64(8000000000), I64(17000000000)}};
/* 3000000009 is above INT32_MAX: compared as unsigned it is the largest. */
static const tdata data_u32 = {
    RILL_FIELD_U32,
    {U32(5), U32(3), U32(3000000009u), U32(3), U32(3000000009u)},
    {U32(500000000), U32(300000000), U32(900000000), U32(300000000), U32(900000000)},
    {U32(500000000), U32(800000000), U32(1700000000), U32(2000000000), U32(2900000000u)}};
static const tdata data_u64 = {
    RILL_FIELD_U64,
    {U64(5), U64(3), U64(9223372036854775817ull), U64(3), U64(9223372036854775817ull)},
    {U64(5000000000000000000ull), U64(3000000000000000000ull), U64(2000000000000000000ull),
     U64(1000000000000000000ull), U64(7000000000000000000ull)},
    {U64(5000000000000000000ull), U64(8000000000000000000ull), U64(10000000000000000000ull),
     U64(11000000000000000000ull), U64(18000000000000000000ull)}};
static const tdata data_f32 = {RILL_FIELD_F32,
                               {F32(5.5f), F32(-3.25f), F32(9.5f), F32(-3.25f), F32(9.5f)},
                               {F32(5.5f), F32(-3.25f), F32(9.5f), F32(-3.25f), F32(9.5f)},
                               {F32(5.5f), F32(2.25f), F32(11.75f), F32(8.5f), F32(18.0f)}};
static const tdata data_f64 = {RILL_FIELD_F64,
                               {F64(5.5), F64(-3.25), F64(9.5), F64(-3.25), F64(9.5)},
                               {F64(5.5), F64(-3.25), F64(9.5), F64(-3.25), F64(9.5)},
                               {F64(5.5), F64(2.25), F64(11.75), F64(8.5), F64(18.0)}};

static const tdata *data_of(int type)
{
    switch (type) {
    case RILL_FIELD_I32:
        return &data_i32;
    case RILL_FIELD_I64:
        return &data_i64;
    case RILL_FIELD_U32:
        return &data_u32;
    case RILL_FIELD_U64:
        return &data_u64;
    case RILL_FIELD_F32:
        return &data_f32;
    default:
        return &data_f64;
    }
}

/* A harness on rill_aggregate(agg, offset 8, type) keyed by the key. */
static rill_harness *agg_harness(rill_env *env, int agg, int type)
{
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_stream *a = rill_aggregate(in, "agg", agg, FIELD_OFF, type);
    cr_assert_not_null(a, "%s", rill_env_errmsg(env));
    return hnew(env, a);
}

/* Output i of h is exactly want with timestamp ts. */
static void expect_arec(rill_harness *h, size_t i, int type, const arec *want, int64_t ts)
{
    rill_record r;
    int k = rill_harness_output(h, NULL, i, &r);
    cr_assert_eq(k, RILL_HARNESS_RECORD, "output %zu: %d", i, k);
    cr_assert_eq(r.len, sizeof(arec), "output %zu: %zu bytes", i, r.len);
    cr_assert_eq(r.ts, ts, "output %zu: ts %lld, expected %lld", i, (long long)r.ts,
                 (long long)ts);
    arec g;
    memcpy(&g, r.data, sizeof g);
    char gf[64], wf[64];
    fv_text(type, g.f, gf, sizeof gf);
    fv_text(type, want->f, wf, sizeof wf);
    cr_assert(memcmp(&g, want, sizeof g) == 0,
              "output %zu: {key %u, seq %u, field %s}, expected {key %u, seq %u, field %s}", i,
              g.key, g.seq, gf, want->key, want->seq, wf);
}

/* Pushes key 1: v[0], v[1], then key 2: v[0] (seq 10), then key 1: v[2],
 * v[3], v[4]; timestamps 100.. in push order. */
static void push_five(rill_harness *h, int type, const fv *v)
{
    int order[6] = {0, 1, -1, 2, 3, 4};
    for (int i = 0; i < 6; i++) {
        int o = order[i];
        arec r = o < 0 ? mk(type, 2, 10, v[0]) : mk(type, 1, (uint32_t)o, v[o]);
        int rc = rill_harness_push(h, 0, &r, sizeof r, 100 + i);
        cr_assert_eq(rc, RILL_OK, "push %d: %s (%s)", i, rill_err_name(rc),
                     rill_harness_errmsg(h));
    }
}

/* Checks the six outputs: key 1's five (seq and field per record) and
 * key 2's record unchanged in third place. */
static void expect_six(rill_harness *h, int type, const uint32_t *seq, const fv *field,
                       const fv *v0)
{
    cr_assert_eq(rill_harness_count(h, NULL), 6);
    int k1 = 0;
    for (size_t i = 0; i < 6; i++) {
        arec w = i == 2 ? mk(type, 2, 10, *v0) : mk(type, 1, seq[k1], field[k1]);
        expect_arec(h, i, type, &w, 100 + (int64_t)i);
        if (i != 2)
            k1++;
    }
}

static void run_agg(int agg, int type)
{
    rill_env *env = state_env(1);
    const tdata *d = data_of(type);
    rill_harness *h = agg_harness(env, agg, type);
    const fv *in = agg == RILL_AGG_SUM ? d->sum : d->cmp;
    push_five(h, type, in);
    uint32_t first[5] = {0, 0, 0, 0, 0};
    switch (agg) {
    case RILL_AGG_SUM:
        /* The first record, its field the running sum. */
        expect_six(h, type, first, d->sums, &in[0]);
        break;
    case RILL_AGG_MIN: {
        fv f[5] = {in[0], in[1], in[1], in[1], in[1]};
        expect_six(h, type, first, f, &in[0]);
        break;
    }
    case RILL_AGG_MAX: {
        fv f[5] = {in[0], in[0], in[2], in[2], in[2]};
        expect_six(h, type, first, f, &in[0]);
        break;
    }
    case RILL_AGG_MIN_BY: {
        /* The record holding the minimum; on a tie the first one stays. */
        uint32_t seq[5] = {0, 1, 1, 1, 1};
        fv f[5] = {in[0], in[1], in[1], in[1], in[1]};
        expect_six(h, type, seq, f, &in[0]);
        break;
    }
    default: {
        uint32_t seq[5] = {0, 0, 2, 2, 2};
        fv f[5] = {in[0], in[0], in[2], in[2], in[2]};
        expect_six(h, type, seq, f, &in[0]);
    }
    }
    rill_harness_free(h);
    rill_env_free(env);
}

#define AGG_TEST(kname, KIND, tname, TYPE) \
    Test(aggregate, kname##_##tname) { run_agg(KIND, TYPE); }

AGG_TEST(sum, RILL_AGG_SUM, i32, RILL_FIELD_I32)
AGG_TEST(sum, RILL_AGG_SUM, i64, RILL_FIELD_I64)
AGG_TEST(sum, RILL_AGG_SUM, u32, RILL_FIELD_U32)
AGG_TEST(sum, RILL_AGG_SUM, u64, RILL_FIELD_U64)
AGG_TEST(sum, RILL_AGG_SUM, f32, RILL_FIELD_F32)
AGG_TEST(sum, RILL_AGG_SUM, f64, RILL_FIELD_F64)
AGG_TEST(min, RILL_AGG_MIN, i32, RILL_FIELD_I32)
AGG_TEST(min, RILL_AGG_MIN, i64, RILL_FIELD_I64)
AGG_TEST(min, RILL_AGG_MIN, u32, RILL_FIELD_U32)
AGG_TEST(min, RILL_AGG_MIN, u64, RILL_FIELD_U64)
AGG_TEST(min, RILL_AGG_MIN, f32, RILL_FIELD_F32)
AGG_TEST(min, RILL_AGG_MIN, f64, RILL_FIELD_F64)
AGG_TEST(max, RILL_AGG_MAX, i32, RILL_FIELD_I32)
AGG_TEST(max, RILL_AGG_MAX, i64, RILL_FIELD_I64)
AGG_TEST(max, RILL_AGG_MAX, u32, RILL_FIELD_U32)
AGG_TEST(max, RILL_AGG_MAX, u64, RILL_FIELD_U64)
AGG_TEST(max, RILL_AGG_MAX, f32, RILL_FIELD_F32)
AGG_TEST(max, RILL_AGG_MAX, f64, RILL_FIELD_F64)
AGG_TEST(min_by, RILL_AGG_MIN_BY, i32, RILL_FIELD_I32)
AGG_TEST(min_by, RILL_AGG_MIN_BY, i64, RILL_FIELD_I64)
AGG_TEST(min_by, RILL_AGG_MIN_BY, u32, RILL_FIELD_U32)
AGG_TEST(min_by, RILL_AGG_MIN_BY, u64, RILL_FIELD_U64)
AGG_TEST(min_by, RILL_AGG_MIN_BY, f32, RILL_FIELD_F32)
AGG_TEST(min_by, RILL_AGG_MIN_BY, f64, RILL_FIELD_F64)
AGG_TEST(max_by, RILL_AGG_MAX_BY, i32, RILL_FIELD_I32)
AGG_TEST(max_by, RILL_AGG_MAX_BY, i64, RILL_FIELD_I64)
AGG_TEST(max_by, RILL_AGG_MAX_BY, u32, RILL_FIELD_U32)
AGG_TEST(max_by, RILL_AGG_MAX_BY, u64, RILL_FIELD_U64)
AGG_TEST(max_by, RILL_AGG_MAX_BY, f32, RILL_FIELD_F32)
AGG_TEST(max_by, RILL_AGG_MAX_BY, f64, RILL_FIELD_F64)

Test(aggregate, field_at_offset_zero_of_a_longer_record)
{
    /* The field is the first 4 bytes, the key the next 4: the output is the
     * key's first record, its first 4 bytes the running sum. */
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 4, 4);
    rill_harness *h = hnew(env, rill_aggregate(in, NULL, RILL_AGG_SUM, 0, RILL_FIELD_I32));
    kv a = {7, 1}, b = {8, 1}, c = {9, 2};
    HOK(h, rill_harness_push(h, 0, &a, sizeof a, 1));
    HOK(h, rill_harness_push(h, 0, &b, sizeof b, 2));
    HOK(h, rill_harness_push(h, 0, &c, sizeof c, 3));
    EXPECT_OUT(h, NULL, W_REC(7, 1, 1), W_REC(15, 1, 2), W_REC(9, 2, 3));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(aggregate, watermarks_pass_through)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_harness *h = hnew(env, rill_aggregate(in, "agg", RILL_AGG_SUM, 4, RILL_FIELD_I32));
    push_kv(h, 0, 1, 5, 10);
    HOK(h, rill_harness_watermark(h, 0, 10));
    push_kv(h, 0, 1, 6, 20);
    EXPECT_OUT(h, NULL, W_REC(1, 5, 10), W_WM(10), W_REC(1, 11, 20));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(aggregate, record_too_short_in_a_harness_is_einval)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_harness *h = hnew(env, rill_aggregate(in, "agg", RILL_AGG_SUM, 4, RILL_FIELD_I64));
    kv r = {1, 1}; /* 8 bytes: no room for 8 bytes at offset 4 */
    cr_assert_eq(rill_harness_push(h, 0, &r, sizeof r, 1), RILL_EINVAL);
    assert_has(rill_harness_errmsg(h), "agg");
    EXPECT_EMPTY(h, NULL);
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- reduce ----------------------------------------------------------------- */

typedef struct reduce_calls {
    int n;
} reduce_calls;

/* {k, a} + {k, b} -> {k, a * 10 + b}: the order of the arguments shows. */
static int digits(const void *a, size_t a_len, const void *b, size_t b_len, void *out,
                  size_t *out_len, void *ud)
{
    reduce_calls *c = ud;
    if (c)
        c->n++;
    if (a_len != sizeof(kv) || b_len != sizeof(kv))
        return -1;
    if (*out_len < sizeof(kv)) {
        *out_len = sizeof(kv);
        return 0;
    }
    kv x = kv_read(a), y = kv_read(b);
    kv o = {x.key, x.val * 10 + y.val};
    memcpy(out, &o, sizeof o);
    *out_len = sizeof o;
    return 0;
}

/* Concatenation of byte strings. */
static int concat(const void *a, size_t a_len, const void *b, size_t b_len, void *out,
                  size_t *out_len, void *ud)
{
    (void)ud;
    if (*out_len < a_len + b_len) {
        *out_len = a_len + b_len;
        return 0;
    }
    memcpy(out, a, a_len);
    memcpy((char *)out + a_len, b, b_len);
    *out_len = a_len + b_len;
    return 0;
}

static int fail_reduce(const void *a, size_t a_len, const void *b, size_t b_len, void *out,
                       size_t *out_len, void *ud)
{
    (void)a;
    (void)a_len;
    (void)b;
    (void)b_len;
    (void)out;
    (void)out_len;
    (void)ud;
    return 5;
}

Test(reduce, folds_each_key_with_the_previous_result_first)
{
    rill_env *env = state_env(1);
    reduce_calls c = {0};
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_harness *h = hnew(env, rill_reduce(in, "digits", digits, &c));
    push_kv(h, 0, 1, 1, 10);
    push_kv(h, 0, 1, 2, 20);
    push_kv(h, 0, 2, 7, 30);
    push_kv(h, 0, 1, 3, 40);
    push_kv(h, 0, 2, 8, 50);
    EXPECT_OUT(h, NULL, W_REC(1, 1, 10), W_REC(1, 12, 20), W_REC(2, 7, 30), W_REC(1, 123, 40),
               W_REC(2, 78, 50));
    rill_harness_free(h);
    rill_env_free(env);
}

Test(reduce, first_record_of_a_key_is_emitted_as_it_is)
{
    rill_env *env = state_env(1);
    reduce_calls c = {0};
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_harness *h = hnew(env, rill_reduce(in, "digits", digits, &c));
    push_kv(h, 0, 1, 4, 1);
    push_kv(h, 0, 2, 5, 2);
    push_kv(h, 0, 3, 6, 3);
    EXPECT_OUT(h, NULL, W_REC(1, 4, 1), W_REC(2, 5, 2), W_REC(3, 6, 3));
    cr_assert_eq(c.n, 0, "reduce called %d times for first records", c.n);
    rill_harness_free(h);
    rill_env_free(env);
}

Test(reduce, result_may_grow)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 1);
    rill_harness *h = hnew(env, rill_reduce(in, NULL, concat, NULL));
    const char *recs[] = {"a1", "a22", "b1", "a333333333333333333333333333333333333"};
    for (int i = 0; i < 4; i++)
        HOK(h, rill_harness_push(h, 0, recs[i], strlen(recs[i]), i));
    const char *want[] = {"a1", "a1a22", "b1", "a1a22a333333333333333333333333333333333333"};
    cr_assert_eq(rill_harness_count(h, NULL), 4);
    for (size_t i = 0; i < 4; i++) {
        rill_record r;
        cr_assert_eq(rill_harness_output(h, NULL, i, &r), RILL_HARNESS_RECORD);
        cr_assert_eq(r.len, strlen(want[i]), "output %zu: %zu bytes", i, r.len);
        cr_assert(memcmp(r.data, want[i], r.len) == 0, "output %zu: %.*s", i, (int)r.len,
                  (const char *)r.data);
        cr_assert_eq(r.ts, (int64_t)i);
    }
    rill_harness_free(h);
    rill_env_free(env);
}

Test(reduce, failing_function_is_euser)
{
    rill_env *env = state_env(1);
    rill_stream *in = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 4);
    rill_harness *h = hnew(env, rill_reduce(in, "folding", fail_reduce, NULL));
    push_kv(h, 0, 1, 1, 1);
    kv r = {1, 2};
    cr_assert_eq(rill_harness_push(h, 0, &r, sizeof r, 2), RILL_EUSER);
    assert_has(rill_harness_errmsg(h), "folding");
    rill_harness_free(h);
    rill_env_free(env);
}

/* ---- building mistakes --------------------------------------------------------- */

static int drop_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return 0;
}

static void expect_kept(rill_env *env, const char *needle)
{
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), needle);
}

Test(rolling_building, aggregate_needs_a_keyed_input)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcdefgh", 8, 1);
    cr_assert_null(rill_aggregate(s, "total", RILL_AGG_SUM, 0, RILL_FIELD_I64));
    expect_kept(env, "total");
    rill_env_free(env);
}

Test(rolling_building, aggregate_default_name_in_the_message)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_rebalance(rill_from_array(env, "src", "abcdefgh", 8, 1));
    cr_assert_null(rill_aggregate(s, NULL, RILL_AGG_MAX, 0, RILL_FIELD_I64));
    expect_kept(env, "aggregate");
    rill_env_free(env);
}

Test(rolling_building, reduce_needs_a_keyed_input)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcdefgh", 8, 1);
    cr_assert_null(rill_reduce(s, "fold", concat, NULL));
    expect_kept(env, "fold");
    rill_env_free(env);
}

Test(rolling_building, reduce_default_name_in_the_message)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_from_array(env, "src", "abcdefgh", 8, 1);
    cr_assert_null(rill_reduce(s, NULL, concat, NULL));
    expect_kept(env, "reduce");
    rill_env_free(env);
}

Test(rolling_building, union_of_keyed_and_unkeyed_is_not_keyed)
{
    rill_env *env = state_env(1);
    rill_stream *a = rill_key_by_bytes(rill_from_array(env, "a", "abcdefgh", 8, 1), 0, 8);
    rill_stream *b = rill_from_array(env, "b", "abcdefgh", 8, 1);
    rill_stream *both[2] = {a, b};
    cr_assert_null(rill_reduce(rill_union(both, 2), "fold", concat, NULL));
    expect_kept(env, "fold");
    rill_env_free(env);
}

Test(rolling_building, union_of_keyed_streams_is_keyed)
{
    rill_env *env = state_env(1);
    rill_stream *a = rill_key_by_bytes(rill_from_array(env, "a", "abcdefgh", 8, 1), 0, 8);
    rill_stream *b = rill_key_by_bytes(rill_from_array(env, "b", "abcdefgh", 8, 1), 0, 8);
    rill_stream *both[2] = {a, b};
    rill_stream *r = rill_reduce(rill_union(both, 2), "fold", concat, NULL);
    cr_assert_not_null(r, "%s", rill_env_errmsg(env));
    rill_sink(r, "out", drop_sink, NULL);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(rolling_building, reduce_function_is_required)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_key_by_bytes(rill_from_array(env, "src", "abcdefgh", 8, 1), 0, 8);
    cr_assert_null(rill_reduce(s, "fold", NULL, NULL));
    expect_kept(env, "fold");
    rill_env_free(env);
}

Test(rolling_building, unknown_aggregation_kind)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_key_by_bytes(rill_from_array(env, "src", "abcdefgh", 8, 1), 0, 8);
    cr_assert_null(rill_aggregate(s, "agg", 0, 0, RILL_FIELD_I64));
    expect_kept(env, "agg");
    rill_env_free(env);
}

Test(rolling_building, unknown_aggregation_kind_above_the_range)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_key_by_bytes(rill_from_array(env, "src", "abcdefgh", 8, 1), 0, 8);
    cr_assert_null(rill_aggregate(s, "agg", RILL_AGG_MAX_BY + 1, 0, RILL_FIELD_I64));
    expect_kept(env, "agg");
    rill_env_free(env);
}

Test(rolling_building, unknown_field_type)
{
    rill_env *env = state_env(1);
    rill_stream *s = rill_key_by_bytes(rill_from_array(env, "src", "abcdefgh", 8, 1), 0, 8);
    cr_assert_null(rill_aggregate(s, "agg", RILL_AGG_SUM, 0, RILL_FIELD_F64 + 1));
    expect_kept(env, "agg");
    rill_env_free(env);
}

/* ---- jobs ------------------------------------------------------------------------ */

typedef struct krec {
    uint64_t key;
    int64_t val;
} krec;

static int gen_krec(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    krec r = {index % 100, (int64_t)index};
    return rill_emit(ctx, &r, sizeof r);
}

/* Per key: the last value seen, the number of outputs and the subtask. */
typedef struct per_key {
    pthread_mutex_t mu;
    int64_t last[100];
    int n[100];
    int sub[100];
    int bad;
} per_key;

static void pk_init(per_key *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    for (int i = 0; i < 100; i++)
        p->sub[i] = -1;
}

static int pk_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    per_key *p = ud;
    krec r;
    pthread_mutex_lock(&p->mu);
    if (len != sizeof r) {
        p->bad++;
    } else {
        memcpy(&r, rec, sizeof r);
        if (r.key >= 100) {
            p->bad++;
        } else {
            int s = rill_ctx_subtask(ctx);
            if (p->sub[r.key] < 0)
                p->sub[r.key] = s;
            else if (p->sub[r.key] != s)
                p->bad++;
            p->last[r.key] = r.val;
            p->n[r.key]++;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

Test(rolling_job, parallel_sum_gives_exact_per_key_totals)
{
    rill_env *env = state_env(2);
    per_key *p = malloc(sizeof *p);
    cr_assert_not_null(p);
    pk_init(p);
    rill_stream *g = rill_generator(env, "gen", 10000, gen_krec, NULL);
    rill_stream *a = rill_aggregate(rill_key_by_bytes(g, 0, 8), "sum", RILL_AGG_SUM,
                                    offsetof(krec, val), RILL_FIELD_I64);
    rill_sink(a, "out", pk_sink, p);
    run_ok(env);
    cr_assert_eq(p->bad, 0);
    for (int k = 0; k < 100; k++) {
        cr_assert_eq(p->n[k], 100, "key %d: %d outputs", k, p->n[k]);
        /* k + (k + 100) + ... + (k + 9900) */
        int64_t want = 100 * (int64_t)k + 495000;
        cr_assert_eq(p->last[k], want, "key %d: sum %lld, expected %lld", k,
                     (long long)p->last[k], (long long)want);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
    rill_env_free(env);
}

Test(rolling_job, parallel_max_gives_exact_per_key_maxima)
{
    rill_env *env = state_env(2);
    per_key *p = malloc(sizeof *p);
    cr_assert_not_null(p);
    pk_init(p);
    rill_stream *g = rill_generator(env, "gen", 10000, gen_krec, NULL);
    rill_stream *a = rill_aggregate(rill_key_by_bytes(g, 0, 8), "max", RILL_AGG_MAX,
                                    offsetof(krec, val), RILL_FIELD_I64);
    rill_sink(a, "out", pk_sink, p);
    run_ok(env);
    cr_assert_eq(p->bad, 0);
    for (int k = 0; k < 100; k++) {
        cr_assert_eq(p->n[k], 100);
        cr_assert_eq(p->last[k], k + 9900, "key %d: max %lld", k, (long long)p->last[k]);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
    rill_env_free(env);
}

/* {k, a} + {k, b} -> {k, a + b} */
static int add_krec(const void *a, size_t a_len, const void *b, size_t b_len, void *out,
                    size_t *out_len, void *ud)
{
    (void)ud;
    if (a_len != sizeof(krec) || b_len != sizeof(krec))
        return -1;
    if (*out_len < sizeof(krec)) {
        *out_len = sizeof(krec);
        return 0;
    }
    krec x, y;
    memcpy(&x, a, sizeof x);
    memcpy(&y, b, sizeof y);
    x.val += y.val;
    memcpy(out, &x, sizeof x);
    *out_len = sizeof x;
    return 0;
}

Test(rolling_job, parallel_reduce_gives_exact_per_key_totals)
{
    rill_env *env = state_env(2);
    per_key *p = malloc(sizeof *p);
    cr_assert_not_null(p);
    pk_init(p);
    rill_stream *g = rill_generator(env, "gen", 10000, gen_krec, NULL);
    rill_stream *r = rill_reduce(rill_key_by_bytes(g, 0, 8), "sum", add_krec, NULL);
    rill_sink(r, "out", pk_sink, p);
    run_ok(env);
    cr_assert_eq(p->bad, 0);
    for (int k = 0; k < 100; k++) {
        cr_assert_eq(p->n[k], 100);
        cr_assert_eq(p->last[k], 100 * (int64_t)k + 495000);
    }
    pthread_mutex_destroy(&p->mu);
    free(p);
    rill_env_free(env);
}

enum { MANY_KEYS = 50000 };

static int gen_many(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    krec r = {index % MANY_KEYS, (int64_t)index};
    return rill_emit(ctx, &r, sizeof r);
}

typedef struct many {
    pthread_mutex_t mu;
    int64_t last[MANY_KEYS];
    int n[MANY_KEYS];
    int bad;
} many;

static int many_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    many *m = ud;
    krec r;
    pthread_mutex_lock(&m->mu);
    if (len != sizeof r) {
        m->bad++;
    } else {
        memcpy(&r, rec, sizeof r);
        if (r.key >= MANY_KEYS) {
            m->bad++;
        } else {
            m->last[r.key] = r.val;
            m->n[r.key]++;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return 0;
}

Test(rolling_job, many_keys_with_a_small_state_cache)
{
    rill_env *env = state_env(2);
    cr_assert_eq(rill_env_set_state_cache_size(env, (size_t)1 << 20), RILL_OK);
    many *m = calloc(1, sizeof *m);
    cr_assert_not_null(m);
    pthread_mutex_init(&m->mu, NULL);
    rill_stream *g = rill_generator(env, "gen", 3 * MANY_KEYS, gen_many, NULL);
    rill_stream *a = rill_aggregate(rill_key_by_bytes(g, 0, 8), "sum", RILL_AGG_SUM,
                                    offsetof(krec, val), RILL_FIELD_I64);
    rill_sink(a, "out", many_sink, m);
    run_ok(env);
    cr_assert_eq(m->bad, 0);
    for (int k = 0; k < MANY_KEYS; k++) {
        cr_assert_eq(m->n[k], 3);
        /* k + (k + MANY_KEYS) + (k + 2 MANY_KEYS) */
        int64_t want = 3 * (int64_t)k + 3 * (int64_t)MANY_KEYS;
        cr_assert_eq(m->last[k], want, "key %d: sum %lld, expected %lld", k,
                     (long long)m->last[k], (long long)want);
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
    rill_env_free(env);
}

Test(rolling_job, record_too_short_fails_the_job)
{
    rill_env *env = state_env(2);
    int32_t vals[4] = {1, 2, 3, 4};
    rill_stream *s = rill_from_array(env, "src", vals, sizeof vals[0], 4);
    rill_stream *a = rill_aggregate(rill_key_by_bytes(s, 0, 4), "short", RILL_AGG_SUM, 8,
                                    RILL_FIELD_I64);
    rill_sink(a, "out", drop_sink, NULL);
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "short"), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_job_wait(job), RILL_EINVAL);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "short");
    assert_has(rill_job_errmsg(job), "short");
    rill_job_free(job);
    rill_env_free(env);
}

Test(rolling_job, record_too_short_fails_execute)
{
    rill_env *env = state_env(2);
    int32_t vals[4] = {1, 2, 3, 4};
    rill_stream *s = rill_from_array(env, "src", vals, sizeof vals[0], 4);
    rill_stream *a = rill_aggregate(rill_key_by_bytes(s, 0, 4), NULL, RILL_AGG_MIN_BY, 2,
                                    RILL_FIELD_U32);
    rill_sink(a, "out", drop_sink, NULL);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "aggregate");
    rill_env_free(env);
}
