/* ctx.c - what user callbacks can call: emit and the context getters. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "ops/op.h"
#include "runtime/task.h"
#include "util/alloc.h"

int rill__emit_slow(rill_ctx *ctx, const void *rec, size_t len, int64_t ts)
{
    if ((!rec && len) || ctx->node->is_sink)
        return RILL_EINVAL;
    if (rill__stopping(ctx))
        return RILL_ECANCELED;
    ctx->h.emits++;
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

/* What the user function of a chained successor is, for messages. */
static const char *entry_what(const rill_ctx *nx)
{
    if (nx->node->def == &rill__op_map)
        return "map function";
    if (nx->node->def == &rill__op_flat_map)
        return "flat_map function";
    return "sink function";
}

/* nx's processing returned rc while the job is not stopping, so no one
 * reported it: it comes from a user function that a forwarding operator
 * (rill__forward_tail) called, down the chain from nx. Report it. */
static int blame(rill_ctx *nx, int rc)
{
    for (rill_ctx *x = nx; x && x->node->def->tails; x = x->h.next)
        if (x->entry_kind != RILL__ENTRY_OP)
            return rill__user_fail(x->h.next, entry_what(x->h.next), rc);
    return rc;
}

int rill__forward_call(rill_ctx *op, const void *rec, size_t len, int64_t ts)
{
    return rill__forward(op, rec, len, ts);
}

int rill__forward_failed(rill_ctx *op, int rc)
{
    return rill__stopping(op) ? rc : blame(op, rc);
}

/* The inline rill_emit passed a record to ctx's chained successor, which
 * returned rc, or returned 0 but, as a map, did not emit exactly once
 * (it had emitted `before` records until then). */
RILL_API int rill_emit_done(rill_ctx *ctx, int rc, uint64_t before)
{
    if (!ctx || !ctx->h.next)
        return rc ? rc : RILL_EINVAL;
    rill_ctx *nx = ctx->h.next;
    if (rc == 0)
        rc = rill__one_emit_fail(nx, before, "map", "flat_map");
    else if (rill__stopping(ctx))
        rc = RILL_ECANCELED;
    else if (ctx->entry_kind != RILL__ENTRY_OP)
        rc = rill__user_fail(nx, entry_what(nx), rc);
    else
        rc = blame(nx, rc);
    return emit_result(ctx, rc);
}

void rill__chain_link(rill_ctx *c)
{
    c->h.next = NULL;
    c->h.entry = NULL;
    c->h.entry_data = NULL;
    c->h.one_mask = 0;
    c->entry_kind = RILL__ENTRY_OP;
    if (c->n_out != 1 || !c->out[0].next)
        return;
    rill_ctx *nx = c->out[0].next;
    const rill__opdef *d = nx->node->def;
    c->h.next = nx;
    if (d == &rill__op_map || d == &rill__op_flat_map || (d == &rill__op_sink && !nx->capture)) {
        c->h.entry = nx->fn.process;
        c->h.entry_data = nx->ud;
        c->h.one_mask = d == &rill__op_map ? UINT64_MAX : 0;
        c->entry_kind = d == &rill__op_map ? RILL__ENTRY_MAP : RILL__ENTRY_USER;
    } else {
        c->h.entry = d->entry ? d->entry : rill__entry_process;
    }
}

int rill__entry_process(rill_ctx *op, const void *rec, size_t len, void *unused)
{
    (void)unused;
    return op->node->def->process(op, rec, len);
}

RILL_API int(rill_emit_ts)(rill_ctx *ctx, const void *rec, size_t len, int64_t ts)
{
    if (!ctx)
        return RILL_EINVAL;
    return emit_result(ctx, rill__emit_slow(ctx, rec, len, ts));
}

RILL_API int(rill_emit)(rill_ctx *ctx, const void *rec, size_t len)
{
    if (!ctx)
        return RILL_EINVAL;
    return emit_result(ctx, rill__emit_slow(ctx, rec, len, ctx->h.ts));
}

RILL_API int64_t rill_ctx_timestamp(const rill_ctx *ctx) { return ctx ? ctx->h.ts : RILL_TS_MIN; }
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

/* The job whose subtask runs on this thread, and a call a callback of it
 * made that its own job's environment refused (for the failure's message). */
static _Thread_local const rill__job *thread_job;
static _Thread_local const char *thread_refused;

void rill__thread_job(const rill__job *job)
{
    thread_job = job;
    thread_refused = NULL;
}

int rill__refuse_from_callback(const rill_env *env, const char *call)
{
    if (!thread_job || thread_job->env != env)
        return 0;
    thread_refused = call;
    return 1;
}

int rill__user_fail(rill_ctx *op, const char *what, int rc)
{
    /* A callback that returns the error of an emit into a stopping job
     * (RILL_ECANCELED) is not the cause of the stop. */
    if (rill__stopping(op))
        return RILL_ECANCELED;
    const char *why = op->user_err;
    char refused[RILL__ERRMSG_MAX];
    if (!why && thread_refused) {
        rill__fmt(refused,
                  "%s was called from a callback of this job; a callback cannot start or "
                  "validate a job of its own environment",
                  thread_refused);
        thread_refused = NULL;
        why = refused;
    }
    if (why)
        rill__job_fail(op->st->job, RILL_EUSER, op->node->name,
                       "operator '%s' (subtask %d/%d): %s returned %d: %s", op->node->name,
                       op->subtask + 1, op->parallelism, what, rc, why);
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
