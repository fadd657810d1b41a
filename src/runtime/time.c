/* time.c - event time in the runtime: watermarks and idleness through
 * operators and outputs, input watermark tracking, ticks, current keys. */
#include <stdarg.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "runtime/task.h"
#include "state/state.h"
#include "util/alloc.h"

static int each_out(rill_ctx *op, int (*chained)(rill_ctx *, int64_t),
                    unsigned kind, int64_t v)
{
    for (size_t i = 0; i < op->n_out; i++) {
        const rill__out *o = &op->out[i];
        int rc = o->next ? chained(o->next, v) : rill__netout_marker(o->net, kind, v);
        if (rc)
            return rc;
    }
    for (size_t s = 0; s < op->n_side; s++)
        for (size_t i = 0; i < op->side[s].n_out; i++) {
            const rill__out *o = &op->side[s].out[i];
            int rc = o->next ? chained(o->next, v) : rill__netout_marker(o->net, kind, v);
            if (rc)
                return rc;
        }
    return RILL_OK;
}

int rill__out_watermark(rill_ctx *op, int64_t wm)
{
    return each_out(op, rill__op_watermark, RILL__MARK_WATERMARK, wm);
}

static int status_chained(rill_ctx *next, int64_t idle)
{
    return rill__out_status(next, (int)idle);
}

int rill__out_status(rill_ctx *op, int idle)
{
    if (op->idle_out == idle)
        return RILL_OK;
    op->idle_out = idle;
    return each_out(op, status_chained, idle ? RILL__MARK_IDLE : RILL__MARK_ACTIVE, idle);
}

int rill__op_watermark_default(rill_ctx *op, int64_t wm)
{
    op->wm = wm;
    if (op->capture && rill__capture_watermark(op, wm))
        return RILL_ENOMEM;
    return rill__out_watermark(op, wm);
}

int rill__op_watermark(rill_ctx *op, int64_t wm)
{
    if (wm <= op->wm)
        return RILL_OK;
    const rill__opdef *d = op->node->def;
    return d->on_watermark ? d->on_watermark(op, wm) : rill__op_watermark_default(op, wm);
}

void rill__op_wake(rill_ctx *op, int64_t at)
{
    if (at < op->wake_at)
        op->wake_at = at;
    if (op->st && at < op->st->tick_at)
        op->st->tick_at = at;
}

/* The first processing time at which op, last seen emitting at idle_since,
 * is idle: more than its idle timeout later (Flink's rule: strictly more). */
static int64_t idle_due(const rill_ctx *op)
{
    return rill__time_add(rill__time_add(op->idle_since, op->node->idle_timeout), 1);
}

void rill__idle_start(rill_ctx *op, int64_t now)
{
    op->idle_seen = op->h.emits;
    op->idle_since = now;
    if (op->node->idle_timeout)
        rill__op_wake(op, idle_due(op));
}

int rill__idle_check(rill_ctx *op, int64_t now)
{
    int64_t timeout = op->node->idle_timeout;
    if (!timeout)
        return RILL_OK;
    if (op->h.emits != op->idle_seen) {
        op->idle_seen = op->h.emits;
        op->idle_since = now;
    } else if (now - op->idle_since > timeout && !op->idle_out) {
        int rc = rill__out_status(op, 1);
        if (rc)
            return rc;
    }
    int64_t at = idle_due(op);
    rill__op_wake(op, at > now ? at : rill__time_add(now, timeout));
    return RILL_OK;
}

int rill__idle_resume(rill_ctx *op)
{
    if (!op->idle_out || op->h.emits == op->idle_seen)
        return RILL_OK;
    rill__idle_start(op, rill__proc_now(op));
    return rill__out_status(op, 0);
}

int rill__subtask_tick(rill__subtask *st, int64_t now)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < st->n_ops; i++) {
        rill_ctx *op = st->ops[i];
        const rill__opdef *d = op->node->def;
        if (op->wake_at > now)
            continue;
        op->wake_at = INT64_MAX;
        int rc = d->on_tick ? d->on_tick(op, now)
                 : d->is_source ? rill__idle_check(op, now) : RILL_OK;
        if (!rc && op->kv && op->maintain_at <= now) {
            /* Background state cleanup (TTL), about once a second. */
            rc = rill__state_maintain(op, now);
            op->maintain_at = now + 1000;
        }
        if (rc)
            return rc;
        if (op->kv)
            rill__op_wake(op, op->maintain_at);
    }
    for (size_t i = 0; i < st->n_ops; i++)
        if (st->ops[i]->wake_at < next)
            next = st->ops[i]->wake_at;
    st->tick_at = next;
    return RILL_OK;
}

/* ---- input watermark tracking ------------------------------------------ */

rill__wmtrack *rill__wmtrack_new(int n)
{
    rill__wmtrack *t = rill__calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->n = n;
    t->out = RILL_TS_MIN;
    t->wm = rill__malloc(sizeof *t->wm * (size_t)(n ? n : 1));
    t->idle = rill__calloc((size_t)(n ? n : 1), 1);
    t->aligned = rill__malloc((size_t)(n ? n : 1));
    if (!t->wm || !t->idle || !t->aligned) {
        rill__wmtrack_free(t);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        t->wm[i] = RILL_TS_MIN;
        t->aligned[i] = 1;
    }
    return t;
}

void rill__wmtrack_free(rill__wmtrack *t)
{
    if (!t)
        return;
    rill__free(t->wm);
    rill__free(t->idle);
    rill__free(t->aligned);
    rill__free(t);
}

/* Give op the minimum over active, aligned inputs when it advanced. */
static int advance(rill__wmtrack *t, rill_ctx *op)
{
    int64_t min = INT64_MAX;
    int any = 0;
    for (int i = 0; i < t->n; i++)
        if (!t->idle[i] && t->aligned[i]) {
            any = 1;
            if (t->wm[i] < min)
                min = t->wm[i];
        }
    if (!any || min <= t->out)
        return RILL_OK;
    t->out = min;
    return rill__op_watermark(op, min);
}

/* Idle input i is active again. It counts in the minimum once its
 * watermark (kept while it was idle) reached the last one given to op. */
static int activate(rill__wmtrack *t, rill_ctx *op, int i)
{
    if (!t->idle[i])
        return RILL_OK;
    t->idle[i] = 0;
    t->aligned[i] = t->wm[i] >= t->out;
    if (t->n_idle-- == t->n) {
        int rc = rill__out_status(op, 0);
        if (rc)
            return rc;
    }
    return advance(t, op);
}

int rill__wmtrack_watermark(rill__wmtrack *t, rill_ctx *op, int i, int64_t wm)
{
    if (wm <= t->wm[i])
        return RILL_OK;
    t->wm[i] = wm;
    /* An idle input stays idle (only a record makes it active): its
     * watermark is kept and counts once it is active again. */
    if (t->idle[i])
        return RILL_OK;
    if (!t->aligned[i] && wm >= t->out)
        t->aligned[i] = 1;
    return advance(t, op);
}

int rill__wmtrack_status(rill__wmtrack *t, rill_ctx *op, int i, int idle)
{
    if (!idle)
        return activate(t, op, i);
    if (t->idle[i])
        return RILL_OK;
    t->idle[i] = 1;
    if (++t->n_idle < t->n)
        return advance(t, op);
    /* Every input is idle, so none will move the minimum on: op first gets
     * the highest watermark among them, then the idle status. */
    int64_t max = t->wm[0];
    for (int k = 1; k < t->n; k++)
        if (t->wm[k] > max)
            max = t->wm[k];
    if (max > t->out) {
        t->out = max;
        int rc = rill__op_watermark(op, max);
        if (rc)
            return rc;
    }
    return rill__out_status(op, 1);
}

int rill__wmtrack_end(rill__wmtrack *t, rill_ctx *op, int i)
{
    /* An ended input holds nothing back, idle or not. */
    t->wm[i] = RILL_TS_MAX;
    if (t->idle[i])
        return activate(t, op, i);
    t->aligned[i] = 1;
    return advance(t, op);
}

/* ---- current keys --------------------------------------------------- */

int rill__op_set_key(rill_ctx *op, const void *key, size_t len, uint16_t kg)
{
    if (len > op->keycap) {
        char *nb = rill__realloc(op->keybuf, len);
        if (!nb)
            return RILL_ENOMEM;
        op->keybuf = nb;
        op->keycap = len;
    }
    if (len)
        memcpy(op->keybuf, key, len);
    op->key = op->keybuf;
    op->key_len = len;
    op->kg = kg;
    return RILL_OK;
}

/* Fail job for a key of operator op_name: the keyed operator's own (after
 * 0) or the key_by's after it (after 1); fmt says what went wrong. */
static void key_fail(rill__job *job, int code, const char *op_name, int after, const char *fmt,
                     ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static void key_fail(rill__job *job, int code, const char *op_name, int after, const char *fmt,
                     ...)
{
    char what[RILL__ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    rill__vfmt(what, fmt, ap);
    va_end(ap);
    rill__job_fail(job, code, op_name, "%s '%s': %s", after ? "key_by after" : "operator",
                   op_name, what);
}

int rill__record_key_slow(rill__job *job, const char *op_name, int after, const rill__part *pt,
                          const void *rec, size_t len, char **buf, size_t *cap,
                          const void **key, size_t *key_len)
{
    if (!pt->key_fn) {
        key_fail(job, RILL_EINVAL, op_name, after,
                 "record of %zu bytes has no key bytes [%zu, %zu)", len, pt->key_off,
                 pt->key_off + pt->key_len);
        return RILL_EINVAL;
    }
    for (;;) {
        size_t kl = *cap;
        int rc = pt->key_fn(rec, len, *buf, &kl, pt->key_ud);
        if (rc) {
            key_fail(job, RILL_EUSER, op_name, after, "key function returned %d", rc);
            return RILL_EUSER;
        }
        if (kl <= *cap) {
            *key = *buf;
            *key_len = kl;
            return RILL_OK;
        }
        if (kl > RILL_KEY_MAX) {
            key_fail(job, RILL_EINVAL, op_name, after,
                     "key function returned length %zu, above RILL_KEY_MAX (%zu)", kl,
                     (size_t)RILL_KEY_MAX);
            return RILL_EINVAL;
        }
        char *nb = rill__realloc(*buf, kl);
        if (!nb) {
            key_fail(job, RILL_ENOMEM, op_name, after, "out of memory for a key of %zu bytes",
                     kl);
            return RILL_ENOMEM;
        }
        *buf = nb;
        *cap = kl;
    }
}

int rill__op_key_from(rill_ctx *op, const rill__part *pt, const void *rec, size_t len)
{
    rill__job *job = op->st->job;
    const void *key;
    size_t kl;
    int rc = rill__record_key(job, op->node->name, 0, pt, rec, len, &op->keybuf, &op->keycap,
                              &key, &kl);
    if (rc)
        return rc;
    op->key = key;
    op->key_len = kl;
    op->kg = (uint16_t)(XXH3_64bits(key, kl) % (uint64_t)job->max_parallelism);
    return RILL_OK;
}
