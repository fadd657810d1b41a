/* job.c - subtask threads and the life of a job: run, fail, cancel, wait. */
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "graph/graph.h"
#include "runtime/statedir.h"
#include "runtime/task.h"
#include "state/prefetch.h"
#include "state/state.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

static void wake_all(rill__job *job)
{
    for (size_t i = 0; i < job->n_gates; i++)
        rill__gate_wake(job->gates[i]);
    rill__ckpt_wake(job);
    if (job->wake_pipe) {
        /* Sources waiting for input (source_wait): never read, the job
         * does not run again. */
        char one = 1;
        ssize_t w = write(job->wake_fd[1], &one, 1);
        (void)w;
    }
}

void rill__job_fail(rill__job *job, int code, const char *op_name, const char *fmt, ...)
{
    pthread_mutex_lock(&job->mu);
    int first = job->result == RILL_OK;
    if (first) {
        job->result = code;
        va_list ap;
        va_start(ap, fmt);
        rill__vfmt(job->errmsg, fmt, ap);
        va_end(ap);
        if (op_name)
            job->failed_op = rill__strdup(op_name);
        atomic_store(&job->stopping, 1);
    }
    pthread_mutex_unlock(&job->mu);
    if (first) {
        rill__log(RILL_LOG_ERROR, "job '%s' failed: %s", job->name, job->errmsg);
        wake_all(job);
    }
}

/* ---- subtask loops ---------------------------------------------------- */

static int stopping_now(rill__subtask *st)
{
    return atomic_load_explicit(&st->job->stopping, memory_order_relaxed);
}

/* Flush buffers and run operator ticks that are due. */
static int due_work(rill__subtask *st)
{
    int rc;
    if (st->flush_at != INT64_MAX) {
        int64_t now = rill__now_ms();
        if (now >= st->flush_at && (rc = rill__subtask_flush(st, now)))
            return rc;
    }
    if (st->tick_at != INT64_MAX) {
        int64_t now = rill__proc_now(st->ops[0]);
        if (now >= st->tick_at && (rc = rill__subtask_tick(st, now)))
            return rc;
    }
    return RILL_OK;
}

/* Run the flush of every operator of st that has one. */
static int flush_ops(rill__subtask *st)
{
    for (size_t i = 0; i < st->n_ops; i++) {
        rill_ctx *op = st->ops[i];
        int rc = op->node->def->flush ? op->node->def->flush(op) : RILL_OK;
        if (rc)
            return rc;
    }
    return RILL_OK;
}

/* The monotonic deadline of the next due work. */
static int64_t next_deadline(rill__subtask *st)
{
    int64_t d = st->flush_at;
    if (st->tick_at != INT64_MAX) {
        int64_t wait = st->tick_at - rill__proc_now(st->ops[0]);
        if (wait < 0)
            wait = 0;
        if (wait < INT64_MAX / 4) {
            int64_t t = rill__now_ms() + wait;
            if (t < d)
                d = t;
        }
    }
    return d;
}

/* When a running subtask looks for due work. After each unit of its loop
 * (a source's step, a consumer's input event) it reads the coarse clock,
 * which is cheap, and looks at the real clocks only when the coarse one
 * moved on since the last look or says a deadline is near. So due work
 * is done on time whatever the rate of steps, at a small cost per step. */
typedef struct pace {
    int64_t coarse; /* coarse clock at the last look */
    int64_t res;    /* its resolution, ms */
    int64_t at;     /* monotonic ms of the last look */
    int64_t offset; /* processing time minus monotonic time then */
    int64_t units;  /* units since the last look */
} pace;

static void pace_init(pace *p, rill__subtask *st)
{
    p->res = rill__coarse_res_ms();
    p->coarse = rill__coarse_ms();
    p->at = rill__now_ms();
    p->offset = rill__proc_now(st->ops[0]) - p->at;
    p->units = 0;
}

/* Look at the clocks: run the ticks that are due, then flush. A buffer
 * also leaves when its deadline would pass before the next look, judging
 * by how long the units took since the last one: a source whose steps
 * block (or a consumer whose input events take long) would otherwise keep
 * a buffer past its timeout for a whole step. */
static int look(rill__subtask *st, pace *p)
{
    int64_t now = rill__now_ms(), ahead = (now - p->at) / p->units;
    int rc;
    p->at = now;
    p->units = 0;
    if (st->tick_at != INT64_MAX) {
        int64_t proc = rill__proc_now(st->ops[0]);
        p->offset = proc - now;
        if (proc >= st->tick_at && (rc = rill__subtask_tick(st, proc)))
            return rc;
    }
    int64_t until = rill__time_add(now, ahead);
    if (st->flush_at <= until && (rc = rill__subtask_flush(st, until)))
        return rc;
    return RILL_OK;
}

/* After a unit of the subtask's loop: due work, if any. */
static inline int due_check(rill__subtask *st, pace *p)
{
    p->units++;
    if (st->flush_at == INT64_MAX && st->tick_at == INT64_MAX)
        return RILL_OK;
    int64_t c = rill__coarse_ms();
    if (c == p->coarse && c + p->res < st->flush_at && c + p->res + p->offset < st->tick_at)
        return RILL_OK;
    p->coarse = c;
    return look(st, p);
}

/* A source has nothing now: wait a little, or (when it reads a
 * descriptor) until the descriptor has input, the job stops (the wake-up
 * pipe) or there is due work; with checkpoints never long, so that
 * barriers get in. */
static void source_wait(rill__subtask *st, rill_ctx *h)
{
    int fd = h->node->def->wait_fd ? h->node->def->wait_fd(h) : -1;
    if (fd < 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        return;
    }
    int64_t deadline = next_deadline(st), wait = -1;
    if (deadline != INT64_MAX) {
        wait = deadline - rill__now_ms();
        wait = wait < 0 ? 0 : wait > INT_MAX ? INT_MAX : wait;
    }
    int woken = st->job->wake_pipe;
    if ((st->job->ckpt || !woken) && (wait < 0 || wait > RILL__SOURCE_BARRIER_WAIT))
        wait = RILL__SOURCE_BARRIER_WAIT;
    struct pollfd pf[2] = {{fd, POLLIN, 0}, {st->job->wake_fd[0], POLLIN, 0}};
    if (!stopping_now(st))
        poll(pf, woken ? 2 : 1, (int)wait);
}

static int run_source(rill__subtask *st)
{
    rill_ctx *h = st->ops[0];
    int (*step)(rill_ctx *) = h->node->def->step;
    int ckpt = st->job->ckpt != NULL, rc;
    pace p;
    pace_init(&p, st);
    for (;;) {
        if (stopping_now(st))
            return RILL_ECANCELED;
        if (__builtin_expect(ckpt, 0) &&
            ((rc = rill__source_barrier(st)) || (rc = rill__ckpt_notify(st))))
            return rc;
        rc = step(h);
        if (__builtin_expect(h->idle_out, 0) && rc >= 0) {
            int rc2 = rill__idle_resume(h);
            if (rc2)
                return rc2;
        }
        if (rc == RILL_SOURCE_MORE) {
            if ((rc = due_check(st, &p)))
                return rc;
            continue;
        }
        if (rc == RILL_SOURCE_END) {
            /* End of input: event time ends too. */
            return rill__op_watermark(h, RILL_TS_MAX);
        }
        if (rc == RILL_SOURCE_IDLE) {
            if ((rc = due_work(st)) || (rc = rill__subtask_flush(st, INT64_MAX)) ||
                (st->flushes && (rc = flush_ops(st))))
                return rc;
            source_wait(st, h);
            p.units++;
            continue;
        }
        return rc;
    }
}

/* Keyed state of a large key space is bound by memory latency: hint the
 * state of the record AHEAD positions on (and half that) so the misses
 * overlap. Only for keys that are record bytes (no user call). */
#define AHEAD 16

static inline void hint(rill_ctx *h, const rill__part *pt, const char *q, int stage)
{
    rill__rechdr hd;
    memcpy(&hd, q, sizeof hd);
    if (hd.reserved != RILL__MARK_DATA || hd.len < pt->key_off + pt->key_len)
        return;
    const char *key = q + sizeof hd + pt->key_off;
    uint16_t kg = (uint16_t)(XXH3_64bits(key, pt->key_len) % (uint64_t)h->st->job->max_parallelism);
    rill__state_prefetch(h, kg, key, pt->key_len, stage);
}

static inline const char *next_rec(const char *q)
{
    rill__rechdr hd;
    memcpy(&hd, q, sizeof hd);
    return q + RILL__REC_SPACE(hd.len);
}

/* What handle() returns after a marker that leaves input idx idle: the
 * records after it go through consume_idle. (A record's processing may
 * return the same value only while the job stops, and never leaves the
 * input idle.) */
#define LEFT_IDLE 1

static int marker(rill_ctx *h, int idx, const rill__rechdr *hd)
{
    int rc = hd->reserved == RILL__MARK_WATERMARK
                 ? rill__wmtrack_watermark(h->track, h, idx, hd->ts)
                 : rill__wmtrack_status(h->track, h, idx, hd->reserved == RILL__MARK_IDLE);
    return rc ? rc : h->track->idle[idx] ? LEFT_IDLE : RILL_OK;
}

static inline int left_idle(const rill_ctx *h, int idx, int rc)
{
    return rc == LEFT_IDLE && h->track->idle[idx];
}

/* One record or marker at p of a buffer from input channel idx; keypt:
 * the key of a keyed operator. *space gets the bytes it takes. */
static inline int handle(rill_ctx *h, int idx, const rill__part *keypt, const char *p,
                         size_t *space)
{
    rill__rechdr hd;
    memcpy(&hd, p, sizeof hd);
    *space = RILL__REC_SPACE(hd.len);
    if (__builtin_expect(hd.reserved != RILL__MARK_DATA, 0))
        return marker(h, idx, &hd);
    h->h.ts = hd.ts;
    if (keypt) {
        int rc = rill__op_key_from(h, keypt, p + sizeof hd, hd.len);
        if (rc)
            return rc;
    }
    return h->node->def->process(h, p + sizeof hd, hd.len);
}

/* The n records and markers at p from input idx, which is idle: the first
 * record makes it active again (a watermark does not). */
static int consume_idle(rill_ctx *h, int idx, const rill__part *keypt, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        rill__rechdr hd;
        memcpy(&hd, p, sizeof hd);
        int rc = RILL_OK;
        if (hd.reserved == RILL__MARK_DATA && h->track->idle[idx])
            rc = rill__wmtrack_status(h->track, h, idx, 0);
        size_t space = RILL__REC_SPACE(hd.len);
        if (!rc)
            rc = handle(h, idx, keypt, p, &space);
        if (rc && !left_idle(h, idx, rc))
            return rc;
        p += space;
    }
    return RILL_OK;
}

static int consume_keyed_bytes(rill_ctx *h, rill__buf *b, const rill__part *pt, int idx)
{
    const char *p = RILL__BUF_DATA(b), *qa = p, *qb = p;
    size_t n = b->nrec, ia = 0, ib = 0;
    for (; ia < n && ia < AHEAD; ia++)
        qa = next_rec(qa);
    for (; ib < n && ib < AHEAD / 2; ib++)
        qb = next_rec(qb);
    for (size_t i = 0; i < n; i++) {
        if (ia < n) {
            hint(h, pt, qa, 0);
            qa = next_rec(qa);
            ia++;
        }
        if (ib < n) {
            hint(h, pt, qb, 1);
            qb = next_rec(qb);
            ib++;
        }
        size_t space;
        int rc = handle(h, idx, pt, p, &space);
        if (rc)
            return left_idle(h, idx, rc) ? consume_idle(h, idx, pt, p + space, n - i - 1) : rc;
        p += space;
    }
    return RILL_OK;
}

int rill__subtask_consume(rill__subtask *st, const rill__event *ev, rill__chan *from)
{
    rill__gate *g = st->gate;
    rill_ctx *h = st->ops[0];
    int rc = RILL_OK;
    if (ev->kind == RILL__EV_END) {
        g->n_ended++;
        if (st->job->ckpt && (rc = rill__subtask_on_end(st, from)))
            return rc;
        return rill__wmtrack_end(h->track, h, from->idx);
    }
    if (ev->kind == RILL__EV_BARRIER)
        return rill__subtask_on_barrier(st, from, ev->id);
    rill__buf *b = ev->buf;
    st->held = b;
    st->held_ch = from;
    const rill__edge *edge = &h->node->in[from->input];
    h->input = edge->slot;
    int keyed = h->keyed && !(h->node->bc_input && edge->slot == 1);
    const rill__part *keypt = keyed ? &edge->part : NULL;
    const char *p = RILL__BUF_DATA(b);
    int idx = from->idx;
    if (h->track->idle[idx])
        return consume_idle(h, idx, keypt, p, b->nrec);
    if (keyed && h->kv && !edge->part.key_fn && b->nrec > AHEAD)
        return consume_keyed_bytes(h, b, &edge->part, idx);
    for (size_t i = 0; i < b->nrec; i++) {
        size_t space;
        if ((rc = handle(h, idx, keypt, p, &space)))
            return left_idle(h, idx, rc) ? consume_idle(h, idx, keypt, p + space, b->nrec - i - 1)
                                         : rc;
        p += space;
    }
    return RILL_OK;
}

void rill__subtask_release(rill__subtask *st)
{
    if (st->held) {
        /* Give the last buffer back to its channel. */
        rill__gate *g = st->gate;
        pthread_mutex_lock(&g->mu);
        st->held->next = st->held_ch->free_bufs;
        st->held_ch->free_bufs = st->held;
        pthread_mutex_unlock(&g->mu);
        st->held = NULL;
    }
}

static int run_consumer(rill__subtask *st)
{
    rill__gate *g = st->gate;
    int rc = RILL_OK;
    pace p;
    pace_init(&p, st);
    while (g->n_ended < g->n_ch) {
        rill__event ev;
        rill__chan *from;
        rill__buf *done = st->held;
        st->held = NULL;
        int got = rill__gate_next(g, &ev, &from, next_deadline(st), done, st->held_ch);
        if (got < 0)
            return got;
        if (got == 0) {
            p.units++;
            if ((rc = due_work(st)) || (st->job->ckpt && (rc = rill__ckpt_notify(st))))
                return rc;
            continue;
        }
        if ((rc = rill__subtask_consume(st, &ev, from)))
            break;
        if (st->flushes && ev.kind == RILL__EV_DATA && (rc = flush_ops(st)))
            break;
        if (st->job->ckpt && (rc = rill__ckpt_notify(st)))
            break;
        if (stopping_now(st)) {
            rc = RILL_ECANCELED;
            break;
        }
        if ((rc = due_check(st, &p)))
            break;
    }
    rill__subtask_release(st);
    return rc;
}

/* The operator's state under <job state dir>/<uid>/<subtask>. */
static int open_state(rill_ctx *op)
{
    rill__job *job = op->st->job;
    const char *uid = op->node->resolved_uid ? op->node->resolved_uid : op->node->name;
    char dir[4096], err[RILL__ERRMSG_MAX];
    err[0] = dir[0] = 0;
    int rc = RILL_OK;
    /* Only keyed state needs the job's working directory. */
    const char *top = rill__state_keyed(op) ? rill__state_dir_open(job, &rc, err) : NULL;
    if (rc) {
        rill__job_fail(job, rc, op->node->name, "operator '%s': %s", op->node->name, err);
        return rc;
    }
    if (top) {
        int len = snprintf(dir, sizeof dir, "%s/", top);
        for (const char *c = uid; *c && len < (int)sizeof dir - 16; c++)
            dir[len++] = *c == '/' ? '_' : *c;
        snprintf(dir + len, sizeof dir - (size_t)len, "/%d", op->subtask);
    }
    rc = rill__state_open(op, dir, job->cache_bytes, err);
    if (!rc && op->kv) {
        op->maintain_at = rill__proc_now(op) + 1000;
        rill__op_wake(op, op->maintain_at);
    }
    if (rc)
        rill__job_fail(job, rc, op->node->name, "%s",
                       err[0] ? err : rill_strerror(rc));
    return rc;
}

int rill__subtask_open(rill__subtask *st)
{
    /* Downstream first, so that an open hook may already emit. */
    for (size_t k = st->n_ops; k-- > 0;) {
        rill_ctx *op = st->ops[k];
        const rill__node *n = op->node;
        int rc = n->def->open ? n->def->open(op) : RILL_OK;
        if (!rc && n->n_states)
            rc = open_state(op);
        if (rc) {
            if (n->def->close)
                n->def->close(op, 0); /* releases what open got so far */
            rill__state_close(op);
            return rc;
        }
        op->opened = 1;
        if (st->job->restore) {
            char err[RILL__ERRMSG_MAX];
            err[0] = '\0';
            if ((rc = rill__restore_op(op, err))) {
                if (rc != RILL_ECANCELED)
                    rill__job_fail(st->job, rc, n->name, "%s", err[0] ? err : rill_strerror(rc));
                return rc;
            }
        }
        if (n->idle_timeout && n->def->is_source)
            rill__idle_start(op, rill__proc_now(op));
        if (n->open_hook && (rc = n->open_hook(op, n->ud)))
            return rill__user_fail(op, "open hook", rc);
        op->user_opened = 1;
    }
    return RILL_OK;
}

/* Close head first: a close hook may emit to operators that are still open. */
int rill__subtask_close(rill__subtask *st, int ok)
{
    int result = RILL_OK;
    for (size_t k = 0; k < st->n_ops; k++) {
        rill_ctx *op = st->ops[k];
        const rill__node *n = op->node;
        if (!op->opened)
            continue;
        op->opened = 0;
        int rc = RILL_OK;
        if (n->close_hook && op->user_opened) {
            op->user_opened = 0;
            rc = n->close_hook(op, n->ud);
            if (rc && ok)
                rc = rill__user_fail(op, "close hook", rc);
        }
        if (n->def->close) {
            int rc2 = n->def->close(op, ok && rc == RILL_OK);
            if (!rc)
                rc = rc2;
        }
        rill__state_close(op);
        if (rc && ok) {
            ok = 0;
            result = rc;
        }
    }
    return result;
}

/* Called by the last subtask to exit, with job->mu held. */
static void settle(rill__job *job)
{
    if (job->result != RILL_OK) {
        job->status = RILL_JOB_FAILED;
    } else if (job->n_finished == (int)job->n_subs) {
        job->status = RILL_JOB_FINISHED;
    } else {
        job->status = RILL_JOB_CANCELED;
        job->result = RILL_ECANCELED;
        rill__fmt(job->errmsg, "job '%s' was canceled", job->name);
    }
    rill__stop_settled(job);
    atomic_fetch_sub(&job->env->running, 1);
}

static void *subtask_main(void *arg)
{
    rill__subtask *st = arg;
    rill__job *job = st->job;
    rill__thread_job(job);
    int rc = rill__subtask_open(st);
    if (!rc)
        rc = st->gate ? run_consumer(st) : run_source(st);
    if (!rc && job->ckpt)
        rc = rill__ckpt_finish(st);
    if (!rc)
        rc = rill__subtask_close(st, 1);
    else
        rill__subtask_close(st, 0);
    if (!rc)
        rc = rill__subtask_end_outputs(st);
    if (rc && rc != RILL_ECANCELED) {
        /* Operators report their own failures; this catches the rest. */
        rill__job_fail(job, rc, st->ops[0]->node->name, "operator '%s' (subtask %d): %s",
                       st->ops[0]->node->name, st->index + 1, rill_strerror(rc));
    } else if (rc == RILL_ECANCELED) {
        atomic_store(&job->stopping, 1);
    }
    pthread_mutex_lock(&job->mu);
    if (!rc)
        job->n_finished++;
    rill__ckpt_exited(st);
    if (++job->n_exited == (int)job->n_subs)
        settle(job);
    pthread_mutex_unlock(&job->mu);
    rill__thread_job(NULL);
    return NULL;
}

int rill__job_launch(rill__job *job)
{
    for (size_t i = 0; i < job->n_subs; i++) {
        rill__subtask *st = job->subs[i];
        if (pthread_create(&st->thread, NULL, subtask_main, st)) {
            rill__job_fail(job, RILL_ENOMEM, NULL, "job '%s': cannot start thread %zu of %zu",
                           job->name, i + 1, job->n_subs);
            return RILL_ENOMEM;
        }
        st->started = 1;
    }
    return RILL_OK;
}

/* ---- one attempt of a job (restart.c has the public job API) ---------- */

static void join_all(rill__job *job)
{
    for (size_t i = 0; i < job->n_subs; i++)
        if (job->subs[i]->started) {
            pthread_join(job->subs[i]->thread, NULL);
            job->subs[i]->started = 0;
        }
}

int rill__attempt_wait(rill__job *job)
{
    if (!job)
        return RILL_EINVAL;
    pthread_mutex_lock(&job->mu);
    while (!job->joined) {
        if (job->joining) {
            pthread_cond_wait(&job->cv, &job->mu);
            continue;
        }
        job->joining = 1;
        pthread_mutex_unlock(&job->mu);
        join_all(job);
        rill__ckpt_stop(job);
        pthread_mutex_lock(&job->mu);
        if (job->n_exited < (int)job->n_subs) {
            /* Threads that never started (launch failed) count as exited. */
            job->n_exited = (int)job->n_subs;
            settle(job);
        }
        job->joined = 1;
        pthread_cond_broadcast(&job->cv);
    }
    int rc = job->result;
    pthread_mutex_unlock(&job->mu);
    return rc;
}

int rill__attempt_cancel(rill__job *job)
{
    if (!job)
        return RILL_EINVAL;
    pthread_mutex_lock(&job->mu);
    int finished = job->n_exited == (int)job->n_subs || job->n_finished == (int)job->n_subs;
    if (!finished) {
        atomic_store(&job->stopping, 1);
    }
    pthread_mutex_unlock(&job->mu);
    if (!finished)
        wake_all(job);
    return RILL_OK;
}

int rill__attempt_status(const rill__job *job)
{
    if (!job)
        return RILL_EINVAL;
    rill__job *j = (rill__job *)job;
    pthread_mutex_lock(&j->mu);
    int s = j->status;
    pthread_mutex_unlock(&j->mu);
    return s;
}

const char *rill__attempt_errmsg(const rill__job *job)
{
    if (!job)
        return "";
    rill__job *j = (rill__job *)job;
    pthread_mutex_lock(&j->mu);
    const char *m = j->result == RILL_OK ? "" : j->errmsg;
    pthread_mutex_unlock(&j->mu);
    return m;
}

const char *rill__attempt_failed_operator(const rill__job *job)
{
    if (!job)
        return NULL;
    rill__job *j = (rill__job *)job;
    pthread_mutex_lock(&j->mu);
    const char *m = j->failed_op;
    pthread_mutex_unlock(&j->mu);
    return m;
}
