/* ckpt_final.c - final snapshots. With periodic checkpoints, a subtask
 * whose input ended takes one last snapshot (its state cannot change any
 * more) into <dir>/.final-<n>/, before its close hooks run, which every
 * later checkpoint includes (a hard link, or a copy on another file
 * system), so checkpoints go on while other subtasks still run. The
 * subtask then waits (forwarding barriers) until a checkpoint that
 * includes its final snapshot completed, tells its checkpoint-complete
 * hooks, and closes. So what a two-phase-commit sink commits at the end
 * is covered by a checkpoint (a failure of another subtask afterwards
 * restores the finished one as finished instead of replaying its input),
 * and the last checkpoint of a job that ran to its end includes every
 * subtask's final snapshot: restored, the job has nothing more to emit.
 *
 * A final snapshot that fails fails the checkpoint it was for (which
 * counts toward the tolerated failures) and is taken again for the next
 * one.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "graph/graph.h"
#include "runtime/ckpt_int.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    int bad = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            bad = n < 0;
            break;
        }
        for (ssize_t done = 0; done < n && !bad;) {
            ssize_t w = write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR)
                continue;
            bad = w <= 0;
            if (!bad)
                done += w;
        }
        if (bad)
            break;
    }
    bad |= fsync(out) != 0;
    bad |= close(out) != 0;
    close(in);
    if (bad)
        unlink(to);
    return bad ? -1 : 0;
}

/* With job->mu held: subtask k's final snapshot into the pending
 * checkpoint, as its acknowledgement. */
static void add_final(rill__job *job, size_t k)
{
    rill__ckpt *c = job->ckpt;
    rill__subtask *st = job->subs[k];
    char from[4200], to[4200], name[32];
    snprintf(name, sizeof name, "%d.snap", st->number);
    snprintf(from, sizeof from, "%s/%s", c->final_dir, name);
    snprintf(to, sizeof to, "%s/%s", c->target, name);
    (void)unlink(to);
    int rc = link(from, to) == 0 || copy_file(from, to) == 0 ? RILL_OK : RILL_EIO;
    char why[RILL__ERRMSG_MAX];
    if (rc)
        rill__fmt(why, "cannot put '%s' into '%s': %s", from, c->target, strerror(errno));
    rill__ckpt_ack_locked(st, c->pending, rc, &c->fin[k].info, name, rc ? why : NULL);
}

void rill__ckpt_add_finals(rill__job *job)
{
    rill__ckpt *c = job->ckpt;
    for (size_t k = 0; k < job->n_subs; k++)
        if (c->fin[k].state == RILL__FIN_READY && c->fin[k].first <= c->pending)
            add_final(job, k);
}

/* The final snapshot of st for checkpoints from id on. */
static int take_final(rill__subtask *st, int64_t id, rill__snap_fileinfo *info, char *err,
                      int *fatal)
{
    rill__ckpt *c = st->job->ckpt;
    char path[4200];
    *fatal = 0;
    int rc = rill__ckpt_make_dir(c->final_dir, err);
    if (rc)
        return rc;
    rill__bgtask *t = rill__ckpt_task_new(st);
    if (!t) {
        rill__fmt(err, "out of memory");
        return RILL_ENOMEM;
    }
    snprintf(path, sizeof path, "%s/%s", c->final_dir, t->name);
    t->final = 1;
    rc = rill__ckpt_begin_snapshot(st, id, path, t, err, fatal);
    if (!rc)
        rc = rill__ckpt_write_task(t, info, err);
    rill__ckpt_task_free(t);
    return rc;
}

/* With job->mu held: is the job ending (no checkpoint can complete)? */
static int ending(const rill__job *job)
{
    const rill__ckpt *c = job->ckpt;
    return c->stop || c->n_gone || atomic_load(&job->stopping);
}

/* With job->mu held: wait on the coordinator for up to 100 ms. */
static void pause_locked(rill__job *job)
{
    struct timespec ts = rill__deadline_ts(rill__now_ms() + 100);
    pthread_cond_timedwait(&job->ckpt->cv, &job->mu, &ts);
}

/* With job->mu held: take st's final snapshot, for checkpoint id or, when
 * that fails, for a later one. RILL_OK when taken (fin.first is the first
 * checkpoint that includes it); RILL_ECANCELED when the job ends first;
 * another code when a hook failed (the job fails). */
static int take_final_locked(rill__subtask *st, int64_t id)
{
    rill__job *job = st->job;
    rill__ckpt *c = job->ckpt;
    rill__final *f = &c->fin[st->number];
    for (;;) {
        if (ending(job))
            return RILL_ECANCELED;
        f->state = RILL__FIN_TAKING;
        f->first = id;
        pthread_mutex_unlock(&job->mu);
        char err[RILL__ERRMSG_MAX];
        rill__snap_fileinfo info = {0, 0};
        int fatal;
        int rc = take_final(st, id, &info, err, &fatal);
        pthread_mutex_lock(&job->mu);
        if (!rc) {
            f->state = RILL__FIN_READY;
            f->info = info;
            c->n_ready++;
            if (c->pending && c->pending >= id)
                add_final(job, (size_t)st->number);
            return RILL_OK;
        }
        if (fatal)
            return rc;
        /* It fails the checkpoint it was for, if that one runs; the next
         * checkpoint takes it again. */
        f->state = RILL__FIN_RETRY;
        int64_t next = id;
        char why[RILL__ERRMSG_MAX];
        rill__fmt(why, "its final snapshot: %s", err[0] ? err : rill_strerror(rc));
        if (c->pending == id) {
            rill__ckpt_ack_locked(st, id, rc, &info, "", why);
            next = id + 1;
        } else {
            rill__log(RILL_LOG_WARN,
                      "job '%s': operator '%s' (subtask %d of %d): %s; taken again for "
                      "checkpoint %lld",
                      job->name, st->ops[0]->node->name, st->index + 1,
                      st->ops[0]->parallelism, why, (long long)id);
        }
        while (!ending(job) && c->pending < next)
            pause_locked(job);
        id = c->pending;
    }
}

/* With job->mu held: wait until a checkpoint from id on completed (1) or
 * the job ends (0). Meanwhile st forwards the barrier of each checkpoint
 * that includes its final snapshot, so the subtasks after it can align. */
static int wait_complete(rill__subtask *st, int64_t id, int *rc)
{
    rill__job *job = st->job;
    rill__ckpt *c = job->ckpt;
    int64_t sent = st->align_id;
    *rc = RILL_OK;
    while (c->completed < id && !ending(job)) {
        if (c->pending >= id && c->pending > sent) {
            sent = c->pending;
            pthread_mutex_unlock(&job->mu);
            *rc = rill__subtask_barrier_out(st, sent);
            pthread_mutex_lock(&job->mu);
            if (*rc)
                break;
            continue;
        }
        pause_locked(job);
    }
    return c->completed >= id;
}

int rill__ckpt_finish(rill__subtask *st)
{
    rill__job *job = st->job;
    rill__ckpt *c = job->ckpt;
    if (!c || c->interval <= 0 || !c->final_dir)
        return RILL_OK;
    pthread_mutex_lock(&job->mu);
    /* The pending checkpoint, unless st took it already; else the next. */
    int64_t id = c->pending && st->align_id < c->pending ? c->pending : c->last_id + 1;
    int rc = take_final_locked(st, id);
    int done = 0;
    if (!rc) {
        c->n_waiting++;
        pthread_cond_broadcast(&c->cv);
        done = wait_complete(st, c->fin[st->number].first, &rc);
        c->n_waiting--;
    }
    pthread_mutex_unlock(&job->mu);
    if (rc)
        return rc;
    /* Without a checkpoint that covers its end, the subtask commits
     * nothing: it closes as a canceled one (pre-committed transactions
     * stay for a restore). */
    if (!done)
        return RILL_ECANCELED;
    if ((rc = rill__ckpt_notify(st)) != RILL_OK)
        return rc;
    for (size_t i = 0; i < st->n_ops; i++)
        st->ops[i]->final_done = 1;
    return RILL_OK;
}

void rill__ckpt_exited(rill__subtask *st)
{
    rill__ckpt *c = st->job->ckpt;
    if (!c || c->fin[st->number].state == RILL__FIN_READY)
        return;
    c->n_gone++;
    pthread_cond_broadcast(&c->cv);
}
