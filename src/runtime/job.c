/* job.c - subtask threads and the life of a job: run, fail, cancel, wait. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "graph/graph.h"
#include "runtime/task.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

static void wake_all(rill__job *job)
{
    for (size_t i = 0; i < job->n_gates; i++)
        rill__gate_wake(job->gates[i]);
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

static int run_source(rill__subtask *st)
{
    rill_ctx *h = st->ops[0];
    int (*step)(rill_ctx *) = h->node->def->step;
    unsigned n = 0;
    for (;;) {
        if (stopping_now(st))
            return RILL_ECANCELED;
        int rc = step(h);
        if (rc == RILL_SOURCE_MORE) {
            if ((++n & 31) == 0 && st->flush_at != INT64_MAX) {
                int64_t now = rill__now_ms();
                if (now >= st->flush_at && (rc = rill__subtask_flush(st, now)))
                    return rc;
            }
            continue;
        }
        if (rc == RILL_SOURCE_END)
            return RILL_OK;
        if (rc == RILL_SOURCE_IDLE) {
            if ((rc = rill__subtask_flush(st, INT64_MAX)))
                return rc;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            continue;
        }
        return rc;
    }
}

static int run_consumer(rill__subtask *st)
{
    rill__gate *g = st->gate;
    rill_ctx *h = st->ops[0];
    int (*process)(rill_ctx *, const void *, size_t) = h->node->def->process;
    rill__buf *done = NULL;
    rill__chan *done_ch = NULL;
    int rc = RILL_OK;
    while (g->n_ended < g->n_ch) {
        rill__event ev;
        rill__chan *from;
        int got = rill__gate_next(g, &ev, &from, st->flush_at, done, done_ch);
        done = NULL;
        if (got < 0)
            return got;
        if (got == 0) {
            if ((rc = rill__subtask_flush(st, rill__now_ms())))
                return rc;
            continue;
        }
        if (ev.kind == RILL__EV_END) {
            g->n_ended++;
            continue;
        }
        rill__buf *b = ev.buf;
        done = b;
        done_ch = from;
        const char *p = RILL__BUF_DATA(b);
        for (size_t i = 0; i < b->nrec; i++) {
            rill__rechdr hd;
            memcpy(&hd, p, sizeof hd);
            h->ts = hd.ts;
            if ((rc = process(h, p + sizeof hd, hd.len)))
                break;
            p += RILL__REC_SPACE(hd.len);
        }
        if (!rc && stopping_now(st))
            rc = RILL_ECANCELED;
        if (rc)
            break;
        if (st->flush_at != INT64_MAX) {
            int64_t now = rill__now_ms();
            if (now >= st->flush_at && (rc = rill__subtask_flush(st, now)))
                break;
        }
    }
    if (done) {
        /* Give the last buffer back to its channel. */
        pthread_mutex_lock(&g->mu);
        done->next = done_ch->free_bufs;
        done_ch->free_bufs = done;
        pthread_mutex_unlock(&g->mu);
    }
    return rc;
}

static int open_ops(rill__subtask *st)
{
    /* Downstream first, so that an open hook may already emit. */
    for (size_t k = st->n_ops; k-- > 0;) {
        rill_ctx *op = st->ops[k];
        const rill__node *n = op->node;
        int rc = n->def->open ? n->def->open(op) : RILL_OK;
        if (rc) {
            if (n->def->close)
                n->def->close(op, 0); /* releases what open got so far */
            return rc;
        }
        op->opened = 1;
        if (n->open_hook && (rc = n->open_hook(op, n->ud)))
            return rill__user_fail(op, "open hook", rc);
        op->user_opened = 1;
    }
    return RILL_OK;
}

/* Close head first: a close hook may emit to operators that are still open. */
static int close_ops(rill__subtask *st, int ok)
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
    atomic_fetch_sub(&job->env->running, 1);
}

static void *subtask_main(void *arg)
{
    rill__subtask *st = arg;
    rill__job *job = st->job;
    int rc = open_ops(st);
    if (!rc)
        rc = st->gate ? run_consumer(st) : run_source(st);
    if (!rc)
        rc = close_ops(st, 1);
    else
        close_ops(st, 0);
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
    if (++job->n_exited == (int)job->n_subs)
        settle(job);
    pthread_mutex_unlock(&job->mu);
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

/* ---- public job API --------------------------------------------------- */

static void join_all(rill__job *job)
{
    for (size_t i = 0; i < job->n_subs; i++)
        if (job->subs[i]->started) {
            pthread_join(job->subs[i]->thread, NULL);
            job->subs[i]->started = 0;
        }
}

RILL_API int rill_job_wait(rill_job *job)
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

RILL_API int rill_job_cancel(rill_job *job)
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

RILL_API int rill_job_status(const rill_job *job)
{
    if (!job)
        return RILL_EINVAL;
    rill__job *j = (rill__job *)job;
    pthread_mutex_lock(&j->mu);
    int s = j->status;
    pthread_mutex_unlock(&j->mu);
    return s;
}

RILL_API const char *rill_job_errmsg(const rill_job *job)
{
    if (!job)
        return "";
    rill__job *j = (rill__job *)job;
    pthread_mutex_lock(&j->mu);
    const char *m = j->result == RILL_OK ? "" : j->errmsg;
    pthread_mutex_unlock(&j->mu);
    return m;
}

RILL_API const char *rill_job_failed_operator(const rill_job *job)
{
    if (!job)
        return NULL;
    rill__job *j = (rill__job *)job;
    pthread_mutex_lock(&j->mu);
    const char *m = j->failed_op;
    pthread_mutex_unlock(&j->mu);
    return m;
}

void rill__job_destroy(rill__job *job);

RILL_API void rill_job_free(rill_job *job)
{
    if (!job)
        return;
    rill_job_cancel(job);
    rill_job_wait(job);
    rill__job_destroy(job);
}
