/* process.c - process functions (one and two inputs, keyed or not), their
 * timers and side outputs, timestamp assigners and harness inputs. */
#include <string.h>

#include "ops/op.h"
#include "runtime/timers.h"
#include "state/state.h"
#include "util/alloc.h"

/* ---- timers ----------------------------------------------------------- */

static int fire(rill_ctx *op, int domain, int64_t limit)
{
    rill__timers *t = op->timers[domain];
    int64_t ts;
    uint16_t kg;
    const void *key;
    size_t kl;
    while (t && rill__timers_pop(t, limit, &ts, &kg, &key, &kl)) {
        if (!op->node->on_timer)
            continue;
        /* The timer's key outlives on_timer's own timer calls as a copy. */
        if (rill__op_set_key(op, key, kl, kg)) {
            rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name,
                           "operator '%s': out of memory for a timer's key", op->node->name);
            return RILL_ENOMEM;
        }
        op->h.ts = domain == RILL_EVENT_TIME ? ts : RILL_TS_MIN;
        int rc = op->node->on_timer(op, ts, domain, op->ud);
        if (rc)
            return rill__user_fail(op, "timer function", rc);
        if (rill__stopping(op))
            return RILL_ECANCELED;
    }
    return RILL_OK;
}

static int process_open(rill_ctx *op)
{
    if (op->keyed) {
        for (int d = 0; d < 2; d++)
            if (!(op->timers[d] = rill__timers_new())) {
                rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name,
                               "operator '%s': out of memory for timers", op->node->name);
                return RILL_ENOMEM;
            }
    }
    return RILL_OK;
}

static int process_close(rill_ctx *op, int ok)
{
    (void)ok;
    for (int d = 0; d < 2; d++) {
        rill__timers_free(op->timers[d]);
        op->timers[d] = NULL;
    }
    return RILL_OK;
}

static int process_watermark(rill_ctx *op, int64_t wm)
{
    op->wm = wm;
    int rc = fire(op, RILL_EVENT_TIME, wm);
    return rc ? rc : rill__out_watermark(op, wm);
}

static int process_tick(rill_ctx *op, int64_t now)
{
    int rc = fire(op, RILL_PROCESSING_TIME, now);
    if (rc)
        return rc;
    if (op->timers[RILL_PROCESSING_TIME])
        rill__op_wake(op, rill__timers_next(op->timers[RILL_PROCESSING_TIME]));
    return RILL_OK;
}

/* Run fn on one record; the broadcast side has no current key. */
static int call(rill_ctx *op, rill_process_fn fn, const void *rec, size_t len, const char *what)
{
    int bc = op->node->bc_input && op->input == 1;
    int keyed = op->keyed;
    if (bc) {
        op->bc_side = 1;
        op->keyed = 0;
    }
    int rc = fn(op, rec, len, op->ud);
    op->bc_side = 0;
    op->keyed = keyed;
    return rc ? rill__user_fail(op, what, rc) : RILL_OK;
}

static int process_process(rill_ctx *op, const void *rec, size_t len)
{
    return call(op, op->fn.process, rec, len, "process function");
}

static int co_process_process(rill_ctx *op, const void *rec, size_t len)
{
    if (op->input == 1)
        return call(op, op->node->fn2, rec, len, "process function of input 2");
    return call(op, op->fn.process, rec, len, "process function of input 1");
}

static int co_map_process(rill_ctx *op, const void *rec, size_t len)
{
    uint64_t before = op->h.emits;
    int rc = co_process_process(op, rec, len);
    if (rc)
        return rc;
    return op->h.emits - before == 1 ? RILL_OK
                                   : rill__one_emit_fail(op, before, "co_map", "co_flat_map");
}

const rill__opdef rill__op_process = {
    .default_name = "process",
    .open = process_open,
    .process = process_process,
    .close = process_close,
    .on_watermark = process_watermark,
    .on_tick = process_tick,
};
const rill__opdef rill__op_co_process = {
    .default_name = "co_process",
    .open = process_open,
    .process = co_process_process,
    .close = process_close,
    .on_watermark = process_watermark,
    .on_tick = process_tick,
};
const rill__opdef rill__op_co_map = {
    .default_name = "co_map",
    .open = process_open,
    .process = co_map_process,
    .close = process_close,
    .on_watermark = process_watermark,
    .on_tick = process_tick,
};

/* ---- timestamp assigners ---------------------------------------------- */

typedef struct assigner {
    int64_t max_ts;
} assigner;

static int assign_open(rill_ctx *op)
{
    assigner *a = rill__calloc(1, sizeof *a);
    if (!a)
        return RILL_ENOMEM;
    a->max_ts = RILL_TS_MIN;
    op->priv = a;
    int64_t now = rill__proc_now(op);
    rill__op_wake(op, rill__time_add(now, op->st->job->wm_interval));
    rill__idle_start(op, now);
    return RILL_OK;
}

static int assign_close(rill_ctx *op, int ok)
{
    (void)ok;
    rill__free(op->priv);
    op->priv = NULL;
    return RILL_OK;
}

static int assign_process(rill_ctx *op, const void *rec, size_t len)
{
    assigner *a = op->priv;
    const rill__node *n = op->node;
    int64_t ts = n->ts_fn ? n->ts_fn(rec, len, op->h.ts, op->ud) : op->h.ts;
    int rc;
    if (op->idle_out && (rc = rill__out_status(op, 0)))
        return rc;
    if ((rc = rill__emit(op, rec, len, ts)))
        return rc;
    if (ts > a->max_ts)
        a->max_ts = ts;
    if (n->wm_fn) {
        int64_t w = n->wm_fn(rec, len, ts, op->ud);
        if (w > op->wm) {
            op->wm = w;
            return rill__out_watermark(op, w);
        }
    }
    return RILL_OK;
}

/* Watermarks from upstream are replaced by the assigner's, but the final
 * one still ends event time downstream. */
static int assign_watermark(rill_ctx *op, int64_t wm)
{
    if (wm != RILL_TS_MAX)
        return RILL_OK;
    op->wm = wm;
    return rill__out_watermark(op, wm);
}

static int assign_tick(rill_ctx *op, int64_t now)
{
    assigner *a = op->priv;
    const rill__node *n = op->node;
    if (!n->wm_fn && a->max_ts != RILL_TS_MIN && op->wm != RILL_TS_MAX) {
        /* max - ooo - 1, nothing when that is below the time range. */
        int64_t w = rill__time_add(rill__time_add(a->max_ts, -n->ooo), -1);
        if (w > op->wm) {
            op->wm = w;
            int rc = rill__out_watermark(op, w);
            if (rc)
                return rc;
        }
    }
    rill__op_wake(op, rill__time_add(now, op->st->job->wm_interval));
    return rill__idle_check(op, now);
}

const rill__opdef rill__op_assign = {
    .default_name = "timestamps",
    .open = assign_open,
    .process = assign_process,
    .close = assign_close,
    .on_watermark = assign_watermark,
    .on_tick = assign_tick,
};

/* ---- harness inputs ---------------------------------------------------- */

static int harness_input_step(rill_ctx *op)
{
    rill__job_fail(op->st->job, RILL_EINVAL, op->node->name,
                   "'%s' is a harness input: it runs only in a test harness", op->node->name);
    return RILL_EINVAL;
}

const rill__opdef rill__op_harness_input = {
    .default_name = "harness_input",
    .is_source = 1,
    .step = harness_input_step,
};

/* ---- public calls --------------------------------------------------------- */

RILL_API int rill_timer_register(rill_ctx *ctx, rill_time_domain domain, int64_t ts)
{
    if (!ctx || (domain != RILL_EVENT_TIME && domain != RILL_PROCESSING_TIME))
        return RILL_EINVAL;
    if (!ctx->keyed || !ctx->timers[domain]) {
        rill_ctx_set_error(ctx, "operator '%s' is not keyed: timers need a keyed stream "
                                "(rill_key_by)", ctx->node->name);
        return RILL_EINVAL;
    }
    int rc = rill__timers_add(ctx->timers[domain], ts, ctx->kg, ctx->key, ctx->key_len);
    if (rc < 0)
        return rc;
    if (domain == RILL_PROCESSING_TIME)
        rill__op_wake(ctx, ts);
    return RILL_OK;
}

RILL_API int rill_timer_delete(rill_ctx *ctx, rill_time_domain domain, int64_t ts)
{
    if (!ctx || (domain != RILL_EVENT_TIME && domain != RILL_PROCESSING_TIME))
        return RILL_EINVAL;
    if (!ctx->keyed || !ctx->timers[domain]) {
        rill_ctx_set_error(ctx, "operator '%s' is not keyed: timers need a keyed stream "
                                "(rill_key_by)", ctx->node->name);
        return RILL_EINVAL;
    }
    rill__timers_del(ctx->timers[domain], ts, ctx->key, ctx->key_len);
    return RILL_OK;
}

RILL_API int rill_ctx_key(const rill_ctx *ctx, const void **key, size_t *len)
{
    if (!ctx || !key || !len || !ctx->keyed)
        return RILL_EINVAL;
    *key = ctx->key;
    *len = ctx->key_len;
    return RILL_OK;
}

RILL_API int rill_ctx_input(const rill_ctx *ctx) { return ctx ? ctx->input : 0; }

RILL_API int64_t rill_ctx_watermark(const rill_ctx *ctx) { return ctx ? ctx->wm : RILL_TS_MIN; }

RILL_API int64_t rill_ctx_processing_time(const rill_ctx *ctx)
{
    return ctx ? rill__proc_now(ctx) : 0;
}

RILL_API int rill_emit_watermark(rill_ctx *ctx, int64_t wm)
{
    if (!ctx || !ctx->node->def->is_source)
        return RILL_EINVAL;
    if (rill__stopping(ctx))
        return RILL_ECANCELED;
    return rill__op_watermark(ctx, wm);
}

RILL_API int rill_emit_side(rill_ctx *ctx, const char *tag, const void *rec, size_t len)
{
    if (!ctx || !tag || (!rec && len) || ctx->node->is_sink)
        return RILL_EINVAL;
    if (rill__stopping(ctx))
        return RILL_ECANCELED;
    for (size_t s = 0; s < ctx->n_side; s++) {
        if (strcmp(ctx->side[s].tag, tag) != 0)
            continue;
        for (size_t i = 0; i < ctx->side[s].n_out; i++) {
            const rill__out *o = &ctx->side[s].out[i];
            int rc = o->next ? rill__deliver(o->next, rec, len, ctx->h.ts)
                             : rill__netout_push(o->net, rec, len, ctx->h.ts);
            if (rc)
                return rill__stopping(ctx) ? RILL_ECANCELED : rc;
        }
        return RILL_OK;
    }
    if (ctx->st && ctx->st->job->harness)
        return rill__capture_side(ctx, tag, rec, len);
    return RILL_OK;
}
