/* rolling.c - rolling aggregations on a keyed stream: reduce and
 * sum/min/max/min_by/max_by of a numeric field, one output per input. */
#include <string.h>

#include "ops/op.h"
#include "util/alloc.h"

typedef struct rolling {
    char *buf;
    size_t cap;
} rolling;

static int rolling_open(rill_ctx *op)
{
    rolling *r = rill__calloc(1, sizeof *r);
    if (!r || !(r->buf = rill__malloc(64))) {
        rill__free(r);
        return RILL_ENOMEM;
    }
    r->cap = 64;
    op->priv = r;
    return RILL_OK;
}

static int rolling_close(rill_ctx *op, int ok)
{
    (void)ok;
    rolling *r = op->priv;
    if (r) {
        rill__free(r->buf);
        rill__free(r);
    }
    op->priv = NULL;
    return RILL_OK;
}

static int grow(rill_ctx *op, rolling *r, size_t need)
{
    if (need <= r->cap)
        return RILL_OK;
    char *nb = rill__realloc(r->buf, need);
    if (!nb) {
        rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name,
                       "operator '%s': out of memory for a %zu-byte aggregate", op->node->name,
                       need);
        return RILL_ENOMEM;
    }
    r->buf = nb;
    r->cap = need;
    return RILL_OK;
}

static int state_fail(rill_ctx *op, int rc)
{
    if (rc == RILL_ECANCELED || rill__stopping(op))
        return RILL_ECANCELED;
    rill__job_fail(op->st->job, rc, op->node->name, "operator '%s': rolling state: %s%s%s",
                   op->node->name, rill_strerror(rc), op->user_err ? ": " : "",
                   op->user_err ? op->user_err : "");
    return rc;
}

#define FIRST 1

/* The key's aggregate so far in *acc (borrowed until the next state call),
 * or, for the key's first record, store and emit that record and return
 * FIRST. */
static int first_or_get(rill_ctx *op, rill_state *st, const void *rec, size_t len,
                        const void **acc, size_t *acc_len)
{
    int rc = rill_state_get(st, acc, acc_len);
    if (rc == RILL_ENOTFOUND) {
        if ((rc = rill_state_put(st, rec, len)))
            return state_fail(op, rc);
        rc = rill__emit(op, rec, len, op->h.ts);
        return rc ? rc : FIRST;
    }
    return rc ? state_fail(op, rc) : RILL_OK;
}

static int reduce_process(rill_ctx *op, const void *rec, size_t len)
{
    rolling *r = op->priv;
    rill_state *st = op->states[0];
    const void *acc;
    size_t acc_len;
    int rc = first_or_get(op, st, rec, len, &acc, &acc_len);
    if (rc)
        return rc == FIRST ? RILL_OK : rc;
    /* acc is borrowed until the next state call: reduce before it. */
    size_t out_len;
    for (;;) {
        out_len = r->cap;
        rc = op->node->states[0].reduce(acc, acc_len, rec, len, r->buf, &out_len, op->ud);
        if (rc)
            return rill__user_fail(op, "reduce function", rc);
        if (out_len <= r->cap)
            break;
        if ((rc = grow(op, r, out_len)))
            return rc;
    }
    if ((rc = rill_state_put(st, r->buf, out_len)))
        return state_fail(op, rc);
    return rill__emit(op, r->buf, out_len, op->h.ts);
}

/* The field as a double for comparisons and as a raw sum. */
typedef union field {
    int32_t i32;
    int64_t i64;
    uint32_t u32;
    uint64_t u64;
    float f32;
    double f64;
} field;

static size_t field_size(int type)
{
    return type == RILL_FIELD_I32 || type == RILL_FIELD_U32 || type == RILL_FIELD_F32 ? 4 : 8;
}

/* -1, 0, 1 as a < b, a == b, a > b. */
static int cmp(int type, const field *a, const field *b)
{
    switch (type) {
    case RILL_FIELD_I32:
        return (a->i32 > b->i32) - (a->i32 < b->i32);
    case RILL_FIELD_I64:
        return (a->i64 > b->i64) - (a->i64 < b->i64);
    case RILL_FIELD_U32:
        return (a->u32 > b->u32) - (a->u32 < b->u32);
    case RILL_FIELD_U64:
        return (a->u64 > b->u64) - (a->u64 < b->u64);
    case RILL_FIELD_F32:
        return (a->f32 > b->f32) - (a->f32 < b->f32);
    default:
        return (a->f64 > b->f64) - (a->f64 < b->f64);
    }
}

static void add(int type, field *a, const field *b)
{
    switch (type) {
    case RILL_FIELD_I32:
        a->u32 += b->u32; /* wraps like unsigned, no undefined overflow */
        break;
    case RILL_FIELD_I64:
    case RILL_FIELD_U64:
        a->u64 += b->u64;
        break;
    case RILL_FIELD_U32:
        a->u32 += b->u32;
        break;
    case RILL_FIELD_F32:
        a->f32 += b->f32;
        break;
    default:
        a->f64 += b->f64;
    }
}

static int aggregate_process(rill_ctx *op, const void *rec, size_t len)
{
    rolling *r = op->priv;
    const rill__node *n = op->node;
    size_t off = n->agg_off, fs = field_size(n->agg_type);
    if (len < off + fs || off + fs < off) {
        rill__job_fail(op->st->job, RILL_EINVAL, n->name,
                       "aggregate '%s': record of %zu bytes has no field [%zu, %zu)", n->name,
                       len, off, off + fs);
        return RILL_EINVAL;
    }
    rill_state *st = op->states[0];
    const void *acc;
    size_t acc_len;
    int rc = first_or_get(op, st, rec, len, &acc, &acc_len);
    if (rc)
        return rc == FIRST ? RILL_OK : rc;
    field a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memcpy(&b, (const char *)rec + off, fs);
    int by = n->agg == RILL_AGG_MIN_BY || n->agg == RILL_AGG_MAX_BY;
    if (by) {
        memcpy(&a, (const char *)acc + off, fs);
        int c = cmp(n->agg_type, &b, &a);
        int take = n->agg == RILL_AGG_MIN_BY ? c < 0 : c > 0;
        const void *res = take ? rec : acc;
        size_t res_len = take ? len : acc_len;
        if ((rc = grow(op, r, res_len)))
            return rc;
        memcpy(r->buf, res, res_len);
        if (take && (rc = rill_state_put(st, r->buf, res_len)))
            return state_fail(op, rc);
        return rill__emit(op, r->buf, res_len, op->h.ts);
    }
    if ((rc = grow(op, r, acc_len)))
        return rc;
    memcpy(r->buf, acc, acc_len);
    memcpy(&a, r->buf + off, fs);
    if (n->agg == RILL_AGG_SUM)
        add(n->agg_type, &a, &b);
    else if ((n->agg == RILL_AGG_MIN) == (cmp(n->agg_type, &b, &a) < 0))
        a = b;
    memcpy(r->buf + off, &a, fs);
    if ((rc = rill_state_put(st, r->buf, acc_len)))
        return state_fail(op, rc);
    return rill__emit(op, r->buf, acc_len, op->h.ts);
}

const rill__opdef rill__op_reduce = {
    .default_name = "reduce",
    .open = rolling_open,
    .process = reduce_process,
    .close = rolling_close,
};
const rill__opdef rill__op_aggregate = {
    .default_name = "aggregate",
    .open = rolling_open,
    .process = aggregate_process,
    .close = rolling_close,
};
