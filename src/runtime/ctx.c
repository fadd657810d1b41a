/* ctx.c - what user callbacks can call: emit and the context getters. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "runtime/task.h"
#include "util/alloc.h"

int rill__emit_slow(rill_ctx *ctx, const void *rec, size_t len, int64_t ts)
{
    if ((!rec && len) || ctx->node->is_sink)
        return RILL_EINVAL;
    if (rill__stopping(ctx))
        return RILL_ECANCELED;
    ctx->emits++;
    for (size_t i = 0; i < ctx->n_out; i++) {
        const rill__out *o = &ctx->out[i];
        int rc = o->next ? rill__deliver(o->next, rec, len, ts)
                         : rill__netout_push(o->net, rec, len, ts);
        if (rc)
            return rc;
    }
    return RILL_OK;
}

/* A failure downstream has already been reported and stops the job: to the
 * emitting callback it means "the job is stopping". */
static inline int emit_result(const rill_ctx *ctx, int rc)
{
    return __builtin_expect(rc != 0, 0) && rill__stopping(ctx) ? RILL_ECANCELED : rc;
}

RILL_API int rill_emit_ts(rill_ctx *ctx, const void *rec, size_t len, int64_t ts)
{
    if (!ctx)
        return RILL_EINVAL;
    return emit_result(ctx, rill__emit(ctx, rec, len, ts));
}

RILL_API int rill_emit(rill_ctx *ctx, const void *rec, size_t len)
{
    if (!ctx)
        return RILL_EINVAL;
    return emit_result(ctx, rill__emit(ctx, rec, len, ctx->ts));
}

RILL_API int64_t rill_ctx_timestamp(const rill_ctx *ctx) { return ctx ? ctx->ts : RILL_TS_MIN; }
RILL_API int rill_ctx_subtask(const rill_ctx *ctx) { return ctx ? ctx->subtask : 0; }
RILL_API int rill_ctx_parallelism(const rill_ctx *ctx) { return ctx ? ctx->parallelism : 0; }
RILL_API const char *rill_ctx_operator_name(const rill_ctx *ctx)
{
    return ctx ? ctx->node->name : "";
}
RILL_API void rill_ctx_set_local(rill_ctx *ctx, void *local)
{
    if (ctx)
        ctx->local = local;
}
RILL_API void *rill_ctx_local(const rill_ctx *ctx) { return ctx ? ctx->local : NULL; }

RILL_API void rill_ctx_set_error(rill_ctx *ctx, const char *fmt, ...)
{
    if (!ctx || !fmt)
        return;
    if (!ctx->user_err) {
        ctx->user_err = rill__malloc(RILL__ERRMSG_MAX);
        if (!ctx->user_err)
            return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->user_err, RILL__ERRMSG_MAX, fmt, ap);
    va_end(ap);
}

int rill__user_fail(rill_ctx *op, const char *what, int rc)
{
    /* A callback that returns the error of an emit into a stopping job
     * (RILL_ECANCELED) is not the cause of the stop. */
    if (rill__stopping(op))
        return RILL_ECANCELED;
    if (op->user_err)
        rill__job_fail(op->st->job, RILL_EUSER, op->node->name,
                       "operator '%s' (subtask %d/%d): %s returned %d: %s", op->node->name,
                       op->subtask + 1, op->parallelism, what, rc, op->user_err);
    else
        rill__job_fail(op->st->job, RILL_EUSER, op->node->name,
                       "operator '%s' (subtask %d/%d): %s returned %d", op->node->name,
                       op->subtask + 1, op->parallelism, what, rc);
    return RILL_EUSER;
}

int64_t rill__proc_now(const rill_ctx *op)
{
    if (op->st && op->st->job && op->st->job->harness)
        return op->st->job->clock;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
