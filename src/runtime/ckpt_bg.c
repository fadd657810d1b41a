/* ckpt_bg.c - the snapshot writer: one thread per job that writes the
 * keyed state of subtasks' snapshot files from views of their stores
 * (state/snapshot.h), commits the files and acknowledges, while the
 * subtasks go on processing records.
 *
 * A task whose checkpoint is no longer the one being taken (given up,
 * timed out) or whose job is stopping stops early; the coordinator waits
 * until no task is left before it removes a discarded checkpoint's files.
 */
#include <string.h>

#include "runtime/ckpt_int.h"
#include "util/alloc.h"

void rill__ckpt_task_free(rill__bgtask *t)
{
    if (!t)
        return;
    rill__snap_writer_abort(t->w);
    for (size_t i = 0; i < t->n; i++)
        rill__state_snapshot_free(t->parts[i]);
    rill__free(t->parts);
    rill__free(t);
}

static int give_up(void *arg)
{
    const rill__bgtask *t = arg;
    rill__job *job = t->st->job;
    const rill__ckpt *c = job->ckpt;
    return (!t->final && atomic_load_explicit(&c->live, memory_order_relaxed) != t->id) ||
           atomic_load_explicit(&c->bg_stop, memory_order_relaxed) ||
           atomic_load_explicit(&job->stopping, memory_order_relaxed);
}

int rill__ckpt_write_task(rill__bgtask *t, rill__snap_fileinfo *info, char *err)
{
    int rc = RILL_OK;
    err[0] = '\0';
    for (size_t i = 0; i < t->n; i++) {
        if (!rc)
            rc = give_up(t) ? RILL_ECANCELED
                            : rill__state_snapshot_keyed(t->parts[i], t->w, give_up, t, err);
        /* Free each view as soon as it is written: its store may wait to
         * grow its map. */
        rill__state_snapshot_free(t->parts[i]);
        t->parts[i] = NULL;
    }
    if (!rc) {
        rc = rill__snap_writer_commit(t->w, info, err);
    } else {
        if (!err[0])
            rill__fmt(err, "%s", rc == RILL_ECANCELED ? "given up"
                                                      : rill__snap_writer_errmsg(t->w));
        rill__snap_writer_abort(t->w);
    }
    t->w = NULL;
    return rc;
}

/* The coordinator logs and counts a failure, with err as its cause. */
static void run_task(rill__bgtask *t)
{
    char err[RILL__ERRMSG_MAX];
    rill__snap_fileinfo info = {0, 0};
    int rc = rill__ckpt_write_task(t, &info, err);
    rill__ckpt_ack(t->st, t->id, rc, &info, t->name, err);
}

static void *writer(void *arg)
{
    rill__job *job = arg;
    rill__ckpt *c = job->ckpt;
    pthread_mutex_lock(&job->mu);
    for (;;) {
        rill__bgtask *t = c->bg_head;
        if (!t) {
            if (atomic_load(&c->bg_stop))
                break;
            pthread_cond_wait(&c->cv, &job->mu);
            continue;
        }
        c->bg_head = t->next;
        if (!c->bg_head)
            c->bg_tail = NULL;
        pthread_mutex_unlock(&job->mu);
        run_task(t);
        rill__ckpt_task_free(t);
        pthread_mutex_lock(&job->mu);
        c->bg_inflight--;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&job->mu);
    return NULL;
}

void rill__ckpt_bg_submit(rill__job *job, rill__bgtask *t)
{
    rill__ckpt *c = job->ckpt;
    pthread_mutex_lock(&job->mu);
    if (!c->bg_started && !atomic_load(&c->bg_stop) &&
        pthread_create(&c->bg_thread, NULL, writer, job) == 0)
        c->bg_started = 1;
    if (!c->bg_started || atomic_load(&c->bg_stop)) {
        /* No writer thread: write on the subtask's thread. */
        c->bg_inflight++;
        pthread_mutex_unlock(&job->mu);
        run_task(t);
        rill__ckpt_task_free(t);
        pthread_mutex_lock(&job->mu);
        c->bg_inflight--;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&job->mu);
        return;
    }
    t->next = NULL;
    if (c->bg_tail)
        c->bg_tail->next = t;
    else
        c->bg_head = t;
    c->bg_tail = t;
    c->bg_inflight++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&job->mu);
}

void rill__ckpt_bg_drain(rill__job *job)
{
    rill__ckpt *c = job->ckpt;
    while (c->bg_inflight)
        pthread_cond_wait(&c->cv, &job->mu);
}

void rill__ckpt_bg_stop(rill__job *job)
{
    rill__ckpt *c = job->ckpt;
    pthread_mutex_lock(&job->mu);
    atomic_store(&c->bg_stop, 1);
    pthread_cond_broadcast(&c->cv);
    int started = c->bg_started;
    pthread_mutex_unlock(&job->mu);
    if (started) {
        pthread_join(c->bg_thread, NULL);
        c->bg_started = 0;
    }
}
