/* netout.c - partitioning records into channel buffers (see task.h). */
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "runtime/task.h"
#include "util/alloc.h"
#include "util/clock.h"

/* Send c's current buffer downstream and take a fresh one. */
static int send_cur(rill__chan *c)
{
    rill__buf *b = c->cur, *spare = NULL;
    c->cur = NULL;
    c->deadline = INT64_MAX;
    rill__event ev = {RILL__EV_DATA, b, 0};
    int rc = rill__chan_send(c, ev, &spare);
    if (rc)
        return rc;
    c->cur = spare;
    return RILL_OK;
}

static int append(rill__netout *o, rill__chan *c, const void *rec, size_t len, int64_t ts,
                  unsigned kind)
{
    rill__subtask *st = o->st;
    size_t need = RILL__REC_SPACE(len);
    int rc;
    if (len > RILL_RECORD_MAX) {
        rill__job_fail(st->job, RILL_EINVAL, o->op_name,
                       "operator '%s' emitted a record of %zu bytes (limit %zu)", o->op_name,
                       len, (size_t)RILL_RECORD_MAX);
        return RILL_EINVAL;
    }
    if (c->cur && c->cur->used + need > c->cur->cap && c->cur->nrec > 0) {
        if ((rc = send_cur(c)))
            return rc;
    }
    if (!c->cur || c->cur->cap < need) {
        size_t std = st->job->buffer_size;
        if (c->cur && c->cur->nrec == 0 && c->cur->cap < need) {
            rill__free(c->cur);
            c->cur = NULL;
        }
        if (!c->cur) {
            c->cur = rill__buf_new(need > std ? need : std);
            if (!c->cur) {
                rill__job_fail(st->job, RILL_ENOMEM, o->op_name,
                               "operator '%s': out of memory for a %zu-byte buffer", o->op_name,
                               need > std ? need : std);
                return RILL_ENOMEM;
            }
        }
    }
    rill__buf *b = c->cur;
    char *p = RILL__BUF_DATA(b) + b->used;
    rill__rechdr h = {(uint32_t)len, kind, ts};
    memcpy(p, &h, sizeof h);
    if (len)
        memcpy(p + sizeof h, rec, len);
    b->used += need;
    b->nrec++;
    int64_t timeout = st->job->buffer_timeout;
    if (timeout == 0 || b->used + sizeof(rill__rechdr) > b->cap)
        return send_cur(c);
    if (b->nrec == 1 && timeout > 0) {
        c->deadline = rill__now_ms() + timeout;
        if (c->deadline < st->flush_at)
            st->flush_at = c->deadline;
    }
    return RILL_OK;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

int rill__netout_push(rill__netout *o, const void *rec, size_t len, int64_t ts)
{
    int t;
    switch (o->part.kind) {
    case RILL__PART_FORWARD:
    case RILL__PART_GLOBAL:
        t = 0;
        break;
    case RILL__PART_REBALANCE:
    case RILL__PART_RESCALE:
        t = (int)(o->rr++ % (uint64_t)o->n_ch);
        break;
    case RILL__PART_SHUFFLE:
        t = (int)(xorshift(&o->rng) % (uint64_t)o->n_ch);
        break;
    case RILL__PART_BROADCAST:
        for (int i = 0; i < o->n_ch; i++) {
            int rc = append(o, o->ch[i], rec, len, ts, RILL__MARK_DATA);
            if (rc)
                return rc;
        }
        return RILL_OK;
    case RILL__PART_HASH: {
        const void *key;
        size_t kl;
        int rc = rill__record_key(o->st->job, o->op_name, 1, &o->part, rec, len, &o->keybuf,
                                  &o->keycap, &key, &kl);
        if (rc)
            return rc;
        uint64_t kg = XXH3_64bits(key, kl) % (uint64_t)o->max_parallelism;
        t = (int)(kg * (uint64_t)o->p_d / (uint64_t)o->max_parallelism);
        break;
    }
    case RILL__PART_CUSTOM:
        t = o->part.custom_fn(rec, len, o->p_d, o->part.custom_ud);
        if (t < 0 || t >= o->p_d) {
            rill__job_fail(o->st->job, RILL_EUSER, o->op_name,
                           "custom partitioner after '%s' returned %d, not in 0..%d", o->op_name,
                           t, o->p_d - 1);
            return RILL_EUSER;
        }
        break;
    default:
        RILL__ASSERT(0);
        return RILL_EINVAL;
    }
    return append(o, o->ch[t], rec, len, ts, RILL__MARK_DATA);
}

int rill__netout_marker(rill__netout *o, unsigned kind, int64_t ts)
{
    for (int i = 0; i < o->n_ch; i++) {
        int rc = append(o, o->ch[i], NULL, 0, ts, kind);
        if (rc)
            return rc;
    }
    return RILL_OK;
}

int rill__subtask_flush(rill__subtask *st, int64_t now)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < st->n_outs; i++) {
        rill__netout *o = st->outs[i];
        for (int k = 0; k < o->n_ch; k++) {
            rill__chan *c = o->ch[k];
            if (!c->cur || c->cur->nrec == 0)
                continue;
            if (now == INT64_MAX || c->deadline <= now) {
                int rc = send_cur(c);
                if (rc)
                    return rc;
            } else if (c->deadline < next) {
                next = c->deadline;
            }
        }
    }
    st->flush_at = next;
    return RILL_OK;
}

/* Flush every output buffer, then send ev on every output channel. */
static int send_all(rill__subtask *st, rill__event ev)
{
    int rc = rill__subtask_flush(st, INT64_MAX);
    for (size_t i = 0; i < st->n_outs && !rc; i++)
        for (int k = 0; k < st->outs[i]->n_ch && !rc; k++)
            rc = rill__chan_send(st->outs[i]->ch[k], ev, NULL);
    return rc;
}

int rill__subtask_end_outputs(rill__subtask *st)
{
    return send_all(st, (rill__event){RILL__EV_END, NULL, 0});
}

int rill__subtask_barrier_out(rill__subtask *st, int64_t id)
{
    /* Records before the barrier go first. */
    return send_all(st, (rill__event){RILL__EV_BARRIER, NULL, id});
}
