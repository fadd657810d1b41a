/* harness_common.h - helpers shared by the event time, process function,
 * harness and rolling aggregation tests: two-int records, creating a
 * harness, checking what a harness output holds, a mutex-guarded sink that
 * collects two-int records with their timestamps, and an environment whose
 * state directory is a temporary one.
 *
 * Include after common.h's settings (TEST_NAME); it includes common.h.
 * Suites whose environments come from state_env() remove the temporary
 * directory with TestSuite(name, .fini = rm_tmp).
 */
#ifndef RILL_TESTS_HARNESS_COMMON_H
#define RILL_TESTS_HARNESS_COMMON_H

#include "common.h"

/* ---- records of two ints ------------------------------------------------ */

typedef struct kv {
    int32_t key;
    int32_t val;
} kv;

static inline kv kv_read(const void *rec)
{
    kv r;
    memcpy(&r, rec, sizeof r);
    return r;
}

static inline int emit_kv(rill_ctx *ctx, int32_t key, int32_t val)
{
    kv r = {key, val};
    return rill_emit(ctx, &r, sizeof r);
}

/* ---- environments ------------------------------------------------------- */

/* An environment of the given parallelism whose state lives under the
 * test's temporary directory. */
static inline rill_env *state_env(int parallelism)
{
    rill_env *env = new_env(parallelism);
    if (!tmpdir[0])
        mk_tmp();
    cr_assert_eq(rill_env_set_state_dir(env, tmpdir), RILL_OK);
    return env;
}

/* ---- harness ------------------------------------------------------------ */

static inline rill_harness *hnew(rill_env *env, rill_stream *op)
{
    rill_harness *h = NULL;
    int rc = rill_harness_new(&h, env, op);
    cr_assert_eq(rc, RILL_OK, "rill_harness_new: %s (%s)", rill_err_name(rc),
                 rill_env_errmsg(env));
    cr_assert_not_null(h);
    return h;
}

/* A harness call that must succeed. */
#define HOK(h, call)                                                                  \
    do {                                                                              \
        int hok_rc_ = (call);                                                         \
        cr_assert_eq(hok_rc_, RILL_OK, "%s: %s (%s)", #call, rill_err_name(hok_rc_), \
                     rill_harness_errmsg(h));                                         \
    } while (0)

static inline void push_kv(rill_harness *h, int input, int32_t key, int32_t val, int64_t ts)
{
    kv r = {key, val};
    int rc = rill_harness_push(h, input, &r, sizeof r, ts);
    cr_assert_eq(rc, RILL_OK, "push(input %d, {%d, %d}, ts %lld): %s (%s)", input, key, val,
                 (long long)ts, rill_err_name(rc), rill_harness_errmsg(h));
}

static inline void ts_text(int64_t ts, char *buf, size_t cap)
{
    if (ts == RILL_TS_MIN)
        snprintf(buf, cap, "MIN");
    else if (ts == RILL_TS_MAX)
        snprintf(buf, cap, "MAX");
    else
        snprintf(buf, cap, "%lld", (long long)ts);
}

/* The items of output as text, for assertion messages: "{k,v}@ts" for a
 * two-int record, "<n bytes>@ts" for another record, "wm@ts". */
static inline void describe_out(const rill_harness *h, const char *out, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    size_t n = rill_harness_count(h, out);
    for (size_t i = 0; i < n && used + 64 < cap; i++) {
        rill_record r;
        char t[32];
        int k = rill_harness_output(h, out, i, &r);
        ts_text(r.ts, t, sizeof t);
        if (k == RILL_HARNESS_RECORD && r.len == sizeof(kv)) {
            kv x = kv_read(r.data);
            used += (size_t)snprintf(buf + used, cap - used, "{%d,%d}@%s ", x.key, x.val, t);
        } else if (k == RILL_HARNESS_RECORD) {
            used += (size_t)snprintf(buf + used, cap - used, "<%zu bytes>@%s ", r.len, t);
        } else if (k == RILL_HARNESS_WATERMARK) {
            used += (size_t)snprintf(buf + used, cap - used, "wm@%s ", t);
        } else {
            used += (size_t)snprintf(buf + used, cap - used, "?%d ", k);
        }
    }
}

/* An expected item: a two-int record with its timestamp, or a watermark. */
typedef struct hwant {
    int kind;
    int64_t ts;
    int32_t key, val;
} hwant;

#define W_REC(k, v, t) {RILL_HARNESS_RECORD, (t), (k), (v)}
#define W_WM(t) {RILL_HARNESS_WATERMARK, (t), 0, 0}

/* output holds exactly the items w[0..n-1], in order. */
static inline void expect_items(const rill_harness *h, const char *out, const hwant *w,
                                size_t n)
{
    char desc[4096];
    describe_out(h, out, desc, sizeof desc);
    const char *name = out ? out : "(main)";
    size_t cnt = rill_harness_count(h, out);
    cr_assert_eq(cnt, n, "output %s: %zu items, expected %zu: %s", name, cnt, n, desc);
    for (size_t i = 0; i < n; i++) {
        rill_record r;
        int k = rill_harness_output(h, out, i, &r);
        cr_assert_eq(k, w[i].kind, "output %s item %zu: kind %d, expected %d: %s", name, i, k,
                     w[i].kind, desc);
        cr_assert_eq(r.ts, w[i].ts, "output %s item %zu: ts %lld, expected %lld: %s", name, i,
                     (long long)r.ts, (long long)w[i].ts, desc);
        if (k != RILL_HARNESS_RECORD)
            continue;
        cr_assert_eq(r.len, sizeof(kv), "output %s item %zu: %zu bytes: %s", name, i, r.len,
                     desc);
        kv x = kv_read(r.data);
        cr_assert(x.key == w[i].key && x.val == w[i].val,
                  "output %s item %zu: {%d,%d}, expected {%d,%d}: %s", name, i, x.key, x.val,
                  w[i].key, w[i].val, desc);
    }
}

#define EXPECT_OUT(h, out, ...)                                          \
    do {                                                                 \
        const hwant eo_w_[] = {__VA_ARGS__};                             \
        expect_items((h), (out), eo_w_, sizeof eo_w_ / sizeof eo_w_[0]); \
    } while (0)

#define EXPECT_EMPTY(h, out) expect_items((h), (out), NULL, 0)

/* ---- a sink collecting two-int records ---------------------------------- */

typedef struct got {
    int32_t key, val;
    int64_t ts;
    int sub; /* subtask of the sink */
} got;

typedef struct gotlist {
    pthread_mutex_t mu;
    got *v;
    size_t n, cap;
    int bad; /* records that were not two ints */
} gotlist;

static inline void gl_init(gotlist *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
}

static inline void gl_free(gotlist *g)
{
    free(g->v);
    pthread_mutex_destroy(&g->mu);
}

static inline int gl_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    gotlist *g = ud;
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    if (len != sizeof(kv)) {
        g->bad++;
    } else {
        if (g->n == g->cap) {
            size_t nc = g->cap ? 2 * g->cap : 256;
            got *nv = realloc(g->v, nc * sizeof *nv);
            if (!nv) {
                rc = -1;
                goto out;
            }
            g->v = nv;
            g->cap = nc;
        }
        kv x = kv_read(rec);
        g->v[g->n++] = (got){x.key, x.val, rill_ctx_timestamp(ctx), rill_ctx_subtask(ctx)};
    }
out:
    pthread_mutex_unlock(&g->mu);
    return rc;
}

#endif
