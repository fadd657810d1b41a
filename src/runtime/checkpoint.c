/* checkpoint.c - checkpoints: the coordinator thread that triggers them,
 * barrier alignment in consumers, the snapshot of a subtask's operators
 * into one file, acknowledgements and the checkpoint's _metadata.
 *
 * Checkpoint n lives in <dir>/chk-<n>: one file per subtask
 * (<subtask number>.snap) and _metadata, written last and atomically. A
 * checkpoint without _metadata does not exist. Checkpoints are taken while
 * every subtask runs; one that is pending when a subtask finishes, fails
 * or times out is discarded and the job goes on. Which directories are
 * complete checkpoints, removing them, and the clean-up at the start:
 * ckpt_dir.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "graph/graph.h"
#include "runtime/ckpt_dir.h"
#include "runtime/ckpt_int.h"
#include "runtime/ckpt_stats.h"
#include "runtime/task.h"
#include "snapshot/format.h"
#include "state/snapshot.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/workdir.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void chk_dir(char *buf, size_t cap, const rill__ckpt *c, int64_t id)
{
    snprintf(buf, cap, "%s/chk-%lld", c->dir, (long long)id);
}

static void remove_chk(const rill__ckpt *c, int64_t id)
{
    char d[4096];
    chk_dir(d, sizeof d, c, id);
    rill__ckpt_dir_remove(d);
}

/* ---- the subtask side ------------------------------------------------- */

void rill__ckpt_ack_locked(rill__subtask *st, int64_t id, int rc,
                           const rill__snap_fileinfo *info, const char *name, const char *why)
{
    rill__ckpt *c = st->job->ckpt;
    if (c->pending != id)
        return;
    if (!rc) {
        rill__snap_meta_file *f = &c->files[st->number];
        rill__free(f->name);
        f->name = rill__strdup(name);
        f->size = info->size;
        f->digest = info->digest;
        if (!f->name) {
            rc = RILL_ENOMEM;
            why = "out of memory";
        }
    }
    if (rc && !c->failed) {
        /* The first failure is the checkpoint's cause. */
        c->failed = 1;
        c->fail_code = rc;
        rill__fmt(c->fail_msg, "operator '%s' (subtask %d of %d): %s",
                  st->ops[0]->node->name, st->index + 1, st->ops[0]->parallelism,
                  why && why[0] ? why : rill_strerror(rc));
    }
    c->acks++;
    pthread_cond_broadcast(&c->cv);
}

void rill__ckpt_ack(rill__subtask *st, int64_t id, int rc, const rill__snap_fileinfo *info,
                    const char *name, const char *why)
{
    pthread_mutex_lock(&st->job->mu);
    rill__ckpt_ack_locked(st, id, rc, info, name, why);
    pthread_mutex_unlock(&st->job->mu);
}

/* A replayable source's position: subtask u32 | parallelism u32 | pos u64. */
static int snapshot_position(rill_ctx *op, rill__snap_writer *w)
{
    uint64_t pos;
    int rc = op->node->def->position(op, &pos);
    if (rc)
        return rc;
    unsigned char b[16];
    uint32_t sub = (uint32_t)op->subtask, par = (uint32_t)op->parallelism;
    memcpy(b, &sub, 4);
    memcpy(b + 4, &par, 4);
    memcpy(b + 8, &pos, 8);
    if ((rc = rill__snap_writer_section_begin(w, RILL__SNAP_SOURCE, op->node->resolved_uid,
                                              "position", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG)) ||
        (rc = rill__snap_writer_append(w, b, sizeof b)))
        return rc;
    return rill__snap_writer_section_end(w);
}

int rill__ckpt_begin_snapshot(rill__subtask *st, int64_t id, const char *path,
                              rill__bgtask *t, char *err, int *fatal)
{
    *fatal = 0;
    err[0] = '\0';
    t->st = st;
    t->id = id;
    int rc = rill__snap_writer_open(&t->w, path, err);
    for (size_t i = 0; i < st->n_ops && !rc; i++) {
        rill_ctx *op = st->ops[i];
        if (op->node->on_snapshot) {
            int urc = op->node->on_snapshot(op, id, op->ud);
            if (urc) {
                rc = rill__user_fail(op, "checkpoint snapshot hook", urc);
                *fatal = 1;
                break;
            }
        }
        if (op->node->def->on_checkpoint && (rc = op->node->def->on_checkpoint(op, id))) {
            rill__fmt(err, "operator '%s': its pre-commit failed", op->node->name);
            *fatal = 1;
            break;
        }
        if (op->node->def->position)
            rc = snapshot_position(op, t->w);
        if (!rc && (op->n_states || op->timers[0] || op->timers[1]))
            if ((rc = rill__state_snapshot_begin(op, t->w, &t->parts[t->n], err)) == RILL_OK &&
                t->parts[t->n])
                t->n++;
    }
    if (rc) {
        if (t->w && !err[0])
            rill__fmt(err, "%s", rill__snap_writer_errmsg(t->w));
        rill__snap_writer_abort(t->w);
        t->w = NULL;
        for (size_t i = 0; i < t->n; i++)
            rill__state_snapshot_free(t->parts[i]);
        t->n = 0;
    }
    return rc;
}

rill__bgtask *rill__ckpt_task_new(const rill__subtask *st)
{
    rill__bgtask *t = rill__calloc(1, sizeof *t);
    if (t && !(t->parts = rill__calloc(st->n_ops + 1, sizeof *t->parts))) {
        rill__free(t);
        t = NULL;
    }
    if (t)
        snprintf(t->name, sizeof t->name, "%d.snap", st->number);
    return t;
}

/* Snapshot every stateful operator of st into one file: hooks, source
 * positions and the state held in memory now; keyed state from views of
 * the stores, written in the background (ckpt_bg.c), which also commits
 * the file and acknowledges. Then forward the barrier. A failed snapshot
 * discards the checkpoint, not the job (but for a failed hook). */
static int take(rill__subtask *st, int64_t id)
{
    rill__job *job = st->job;
    rill__ckpt *c = job->ckpt;
    char path[4200], err[RILL__ERRMSG_MAX];
    rill__snap_fileinfo none = {0, 0};
    rill__bgtask *t = rill__ckpt_task_new(st);
    if (!t) {
        rill__ckpt_ack(st, id, RILL_ENOMEM, &none, "", "out of memory");
        return rill__subtask_barrier_out(st, id);
    }
    snprintf(path, sizeof path, "%s/%s", c->target, t->name);
    int fatal;
    int rc = rill__ckpt_begin_snapshot(st, id, path, t, err, &fatal);
    if (!rc) {
        rill__ckpt_bg_submit(job, t);
        return rill__subtask_barrier_out(st, id);
    }
    rill__ckpt_task_free(t);
    rill__ckpt_ack(st, id, rc, &none, "", err);
    return fatal ? rc : rill__subtask_barrier_out(st, id);
}

int rill__ckpt_notify(rill__subtask *st)
{
    int64_t id = atomic_load_explicit(&st->job->ckpt->notify, memory_order_acquire);
    if (id <= st->notified)
        return RILL_OK;
    st->notified = id;
    for (size_t i = 0; i < st->n_ops; i++) {
        rill_ctx *op = st->ops[i];
        if (op->node->def->on_complete && op->opened) {
            int rc = op->node->def->on_complete(op, id);
            if (rc)
                return rc;
        }
        if (op->node->on_complete && op->user_opened) {
            int rc = op->node->on_complete(op, id, op->ud);
            if (rc)
                return rill__user_fail(op, "checkpoint complete hook", rc);
        }
    }
    return RILL_OK;
}

int rill__source_barrier(rill__subtask *st)
{
    int64_t id = atomic_load_explicit(&st->barrier_req, memory_order_acquire);
    if (id <= st->align_id)
        return RILL_OK;
    st->align_id = id;
    return take(st, id);
}

static int aligned(const rill__subtask *st)
{
    const rill__gate *g = st->gate;
    for (int i = 0; i < g->n_ch; i++)
        if (!st->ended[i] && st->seen[i] != st->align_id)
            return 0;
    return 1;
}

static int complete_alignment(rill__subtask *st)
{
    st->aligning = 0;
    int rc = take(st, st->align_id);
    rill__gate_unblock_all(st->gate);
    return rc;
}

int rill__subtask_on_barrier(rill__subtask *st, rill__chan *ch, int64_t id)
{
    if (id < st->align_id || (id == st->align_id && !st->aligning))
        return RILL_OK; /* a checkpoint that was given up */
    if (id > st->align_id) {
        if (st->aligning)
            rill__gate_unblock_all(st->gate); /* a newer checkpoint wins */
        st->align_id = id;
        st->aligning = 1;
    }
    st->seen[ch->idx] = id;
    if (aligned(st))
        return complete_alignment(st);
    if (st->job->ckpt->mode == RILL_EXACTLY_ONCE)
        rill__gate_block(st->gate, ch);
    return RILL_OK;
}

int rill__subtask_on_end(rill__subtask *st, rill__chan *ch)
{
    st->ended[ch->idx] = 1;
    if (st->aligning && aligned(st))
        return complete_alignment(st);
    return RILL_OK;
}

/* ---- the coordinator ---------------------------------------------------- */

static int write_metadata(rill__job *job, int64_t id, char *err)
{
    rill__ckpt *c = job->ckpt;
    char path[4200];
    snprintf(path, sizeof path, "%s/_metadata", c->target);
    char jobinfo[64];
    int n = snprintf(jobinfo, sizeof jobinfo, "max_parallelism=%d", job->max_parallelism);
    rill__snap_meta m;
    memset(&m, 0, sizeof m);
    m.checkpoint_id = (uint64_t)id;
    m.timestamp_ms = wall_ms();
    m.n_files = job->n_subs;
    m.files = c->files;
    m.job = jobinfo;
    m.job_len = (size_t)n;
    return rill__snap_meta_write(path, &m, err);
}

/* Keep the last `retained` completed checkpoints. */
static void retain(rill__ckpt *c, int64_t id)
{
    if (c->n_kept == c->retained) {
        remove_chk(c, c->kept[0]);
        memmove(c->kept, c->kept + 1, sizeof *c->kept * (size_t)(c->n_kept - 1));
        c->n_kept--;
    }
    c->kept[c->n_kept++] = id;
}

static int timed_wait(rill__job *job, int64_t until_wall)
{
    rill__ckpt *c = job->ckpt;
    int64_t left = until_wall - wall_ms();
    if (left <= 0)
        return ETIMEDOUT;
    struct timespec ts = rill__deadline_ts(rill__now_ms() + left);
    return pthread_cond_timedwait(&c->cv, &job->mu, &ts);
}

/* mkdir -p d. */
int rill__ckpt_make_dir(const char *d, char *err)
{
    char p[4096];
    size_t n = strlen(d);
    if (n >= sizeof p) {
        rill__fmt(err, "directory name '%.64s...' is too long", d);
        return RILL_EINVAL;
    }
    memcpy(p, d, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char keep = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) && errno != EEXIST) {
            rill__fmt(err, "cannot create directory '%s': %s", p, strerror(errno));
            return RILL_EIO;
        }
        p[i] = keep;
    }
    return RILL_OK;
}

/* Remove what a discarded checkpoint or savepoint left. */
static void discard(rill__ckpt *c, const char *dir, int savepoint)
{
    if (!savepoint) {
        rill__ckpt_dir_remove(dir);
        return;
    }
    /* A savepoint directory belongs to the user: remove only our files,
     * _metadata first. */
    char path[4200];
    snprintf(path, sizeof path, "%s/_metadata", dir);
    unlink(path);
    for (size_t i = 0; c->files && c->files[i].name; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, c->files[i].name);
        unlink(path);
    }
}

/* With job->mu held: run checkpoint id into c->target to its end.
 * RILL_OK when it completed; else err says why and *counted whether it
 * failed (rather than being given up as the job ends). */
static int run_checkpoint(rill__job *job, int64_t id, int savepoint, char *err, int *counted)
{
    rill__ckpt *c = job->ckpt;
    int rc = RILL_OK;
    *counted = 1;
    for (size_t i = 0; i < job->n_subs; i++) {
        rill__free(c->files[i].name);
        c->files[i].name = NULL;
    }
    char why[RILL__ERRMSG_MAX];
    if ((!savepoint && (rc = rill__ckpt_make_dir(c->dir, why))) ||
        (rc = rill__ckpt_make_dir(c->target, why))) {
        rill__fmt(err, "checkpoint %lld failed: %s", (long long)id, why);
        return rc;
    }
    c->started_ms = wall_ms();
    c->pending = id;
    atomic_store(&c->live, id);
    c->acks = 0;
    c->failed = 0;
    c->fail_code = RILL_OK;
    c->fail_msg[0] = '\0';
    rill__ckpt_add_finals(job);
    pthread_cond_broadcast(&c->cv); /* finished subtasks forward its barrier */
    for (size_t i = 0; i < job->n_subs; i++)
        if (!job->subs[i]->gate && c->fin[i].state == RILL__FIN_RUNNING)
            atomic_store_explicit(&job->subs[i]->barrier_req, id, memory_order_release);
    int64_t deadline = c->started_ms + c->timeout;
    while (c->acks < (int)job->n_subs && !c->stop && !c->failed && c->n_gone == 0 &&
           !atomic_load(&job->stopping) && wall_ms() < deadline)
        timed_wait(job, deadline);
    int done = c->acks == (int)job->n_subs && !c->failed;
    int timed_out = !done && !c->failed && wall_ms() >= deadline;
    int acks = c->acks;
    c->pending = 0;
    atomic_store(&c->live, 0);
    /* Files still being written stop early; wait for them. */
    rill__ckpt_bg_drain(job);
    char dir[sizeof c->target];
    memcpy(dir, c->target, sizeof dir);
    int ending = c->stop || c->n_gone || atomic_load(&job->stopping);
    if (done) {
        pthread_mutex_unlock(&job->mu);
        rc = write_metadata(job, id, why);
        pthread_mutex_lock(&job->mu);
        if (rc)
            rill__fmt(err, "checkpoint %lld failed: %s", (long long)id, why);
    } else if (timed_out && !ending) {
        rc = RILL_ETIMEDOUT;
        rill__fmt(err, "checkpoint %lld timed out after %lld ms (%d of %zu subtasks done)",
                  (long long)id, (long long)c->timeout, acks, job->n_subs);
    } else if (c->failed && c->fail_code != RILL_ECANCELED && !ending) {
        rc = c->fail_code;
        rill__fmt(err, "checkpoint %lld failed: %s", (long long)id, c->fail_msg);
    } else {
        rc = RILL_ECANCELED;
        *counted = 0;
        rill__fmt(err, "checkpoint %lld was given up: the job is ending", (long long)id);
    }
    if (rc) {
        pthread_mutex_unlock(&job->mu);
        discard(c, dir, savepoint);
        pthread_mutex_lock(&job->mu);
        return rc;
    }
    if (!savepoint) {
        uint64_t size = 0;
        for (size_t i = 0; i < job->n_subs; i++)
            size += c->files[i].size;
        rill__ckpt_stats_completed(c->stats, id, wall_ms() - c->started_ms, size);
        c->completed = id;
        retain(c, id);
    }
    atomic_store_explicit(&c->notify, id, memory_order_release);
    for (size_t i = 0; i < job->n_gates; i++)
        rill__gate_poke(job->gates[i]);
    return RILL_OK;
}

/* With job->mu held: checkpoint id did not complete (rc, err). A failure
 * is logged and counted; past the tolerated number of consecutive ones it
 * fails the job. */
static void checkpoint_failed(rill__job *job, int64_t id, int rc, const char *err, int counted)
{
    rill__ckpt *c = job->ckpt;
    if (!counted) {
        rill__log(RILL_LOG_INFO, "job '%s': %s", job->name, err);
        return;
    }
    int n;
    int fail = rill__ckpt_stats_failed(c->stats, id, rc, err, &n);
    rill__log(RILL_LOG_WARN, "job '%s': %s; discarded (%d consecutive failure%s, %d tolerated)",
              job->name, err, n, n == 1 ? "" : "s", c->stats->tolerable);
    if (!fail)
        return;
    pthread_mutex_unlock(&job->mu);
    rill__job_fail(job, rc, NULL,
                   "job '%s': %s; %d consecutive checkpoint failures, more than the %d "
                   "tolerated",
                   job->name, err, n, c->stats->tolerable);
    pthread_mutex_lock(&job->mu);
}

static void *coordinator(void *arg)
{
    rill__job *job = arg;
    rill__ckpt *c = job->ckpt;
    pthread_mutex_lock(&job->mu);
    int64_t next = c->interval ? wall_ms() + c->interval : INT64_MAX, last_end = 0;
    /* Until the job ends, or every subtask took its final snapshot and
     * none waits for one more checkpoint. */
    while (!c->stop && c->n_gone == 0 && !atomic_load(&job->stopping) &&
           (c->n_ready < (int)job->n_subs || c->n_waiting || c->sp_dir)) {
        int counted;
        if (c->sp_dir && !c->sp_busy) {
            c->sp_busy = 1;
            snprintf(c->target, sizeof c->target, "%s", c->sp_dir);
            c->sp_err[0] = '\0';
            c->sp_rc = run_checkpoint(job, ++c->last_id, 1, c->sp_err, &counted);
            c->sp_done = 1;
            pthread_cond_broadcast(&c->cv);
            continue;
        }
        /* A finished subtask waits for a checkpoint: take it soon. */
        int64_t soon = last_end + (c->min_pause > 10 ? c->min_pause : 10);
        if (c->n_waiting && !c->pending && next > soon)
            next = soon;
        if (wall_ms() < next) {
            if (next == INT64_MAX)
                pthread_cond_wait(&c->cv, &job->mu);
            else
                timed_wait(job, next);
            continue;
        }
        int64_t start = wall_ms();
        char err[RILL__ERRMSG_MAX];
        ++c->last_id;
        chk_dir(c->target, sizeof c->target, c, c->last_id);
        int rc = run_checkpoint(job, c->last_id, 0, err, &counted);
        if (rc)
            checkpoint_failed(job, c->last_id, rc, err, counted);
        last_end = wall_ms();
        int64_t after = last_end + c->min_pause;
        next = start + c->interval > after ? start + c->interval : after;
    }
    /* A savepoint still asked for cannot be taken any more. */
    if (c->sp_dir && !c->sp_done) {
        c->sp_rc = RILL_ECANCELED;
        rill__fmt(c->sp_err, "savepoint: the job ended before it could be taken");
        c->sp_done = 1;
    }
    c->stop = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&job->mu);
    return NULL;
}

int rill__ckpt_start(rill__job *job)
{
    rill_env *env = job->env;
    rill__ckpt *c = rill__calloc(1, sizeof *c);
    if (!c)
        return RILL_ENOMEM;
    job->ckpt = c;
    c->interval = env->ckpt_interval;
    c->timeout = env->ckpt_timeout;
    c->min_pause = env->ckpt_min_pause;
    c->mode = env->ckpt_mode;
    c->retained = env->ckpt_retained;
    c->retain_on_cancel = env->ckpt_retain_on_cancel;
    c->dir = rill__strdup(env->ckpt_dir ? env->ckpt_dir : "");
    /* Numbering goes on after a restore and after what dir already holds,
     * so a new checkpoint never reuses an old one's name. */
    c->last_id = rill__restore_id(job);
    if (env->ckpt_dir && rill__ckpt_dir_largest_id(env->ckpt_dir) > c->last_id)
        c->last_id = rill__ckpt_dir_largest_id(env->ckpt_dir);
    /* What a job that was killed left there goes. */
    if (env->ckpt_dir)
        rill__ckpt_dir_clean(env->ckpt_dir);
    c->first_id = c->last_id;
    c->files = rill__calloc(job->n_subs + 1, sizeof *c->files); /* NULL-name ended */
    c->kept = rill__calloc((size_t)c->retained + 1, sizeof *c->kept);
    c->fin = rill__calloc(job->n_subs + 1, sizeof *c->fin);
    /* Statistics belong to the job, over its restarts. */
    c->stats = job->root != job && job->root->ckpt
                   ? job->root->ckpt->stats
                   : rill__ckpt_stats_new(env->ckpt_tolerable);
    if (c->interval > 0 && c->dir && c->dir[0]) {
        size_t n = strlen(c->dir) + 32;
        if ((c->final_dir = rill__malloc(n)))
            snprintf(c->final_dir, n, "%s/.final-%lld", c->dir, (long long)c->first_id);
    }
    if (!c->dir || !c->files || !c->kept || !c->fin || !c->stats ||
        (c->interval > 0 && c->dir[0] && !c->final_dir) || rill__cond_init_monotonic(&c->cv)) {
        if (job->root == job)
            rill__ckpt_stats_free(c->stats);
        rill__free(c->dir);
        rill__free(c->files);
        rill__free(c->kept);
        rill__free(c->fin);
        rill__free(c->final_dir);
        rill__free(c);
        job->ckpt = NULL;
        return RILL_ENOMEM;
    }
    for (size_t i = 0; i < job->n_subs; i++) {
        rill__subtask *st = job->subs[i];
        if (!st->gate)
            continue;
        st->seen = rill__calloc((size_t)st->gate->n_ch + 1, sizeof *st->seen);
        st->ended = rill__calloc((size_t)st->gate->n_ch + 1, 1);
        if (!st->seen || !st->ended)
            return RILL_ENOMEM;
    }
    if (pthread_create(&c->thread, NULL, coordinator, job))
        return RILL_ENOMEM;
    c->started = 1;
    return RILL_OK;
}

void rill__ckpt_wake(rill__job *job)
{
    if (job->ckpt)
        pthread_cond_broadcast(&job->ckpt->cv);
}

void rill__ckpt_stop(rill__job *job)
{
    rill__ckpt *c = job->ckpt;
    if (!c || !c->started)
        return;
    pthread_mutex_lock(&job->mu);
    c->stop = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&job->mu);
    pthread_join(c->thread, NULL);
    c->started = 0;
    rill__ckpt_bg_stop(job);
    /* A checkpoint given up while subtasks were still writing may have
     * left files behind; with every subtask gone, remove them now. */
    pthread_mutex_lock(&job->mu);
    int all_exited = job->n_exited == (int)job->n_subs;
    int drop_all = all_exited && job->status == RILL_JOB_CANCELED && !c->retain_on_cancel;
    pthread_mutex_unlock(&job->mu);
    for (int64_t id = c->first_id + 1; all_exited && c->dir[0] && id <= c->last_id; id++) {
        int kept = 0;
        for (int k = 0; k < c->n_kept; k++)
            kept |= c->kept[k] == id;
        if (!kept || drop_all)
            remove_chk(c, id);
    }
    if (drop_all)
        c->n_kept = 0;
    /* Checkpoints hold links to the final snapshots they include. */
    if (all_exited && c->final_dir)
        rill__rmtree(c->final_dir);
}

void rill__ckpt_free(rill__job *job)
{
    rill__ckpt *c = job->ckpt;
    if (!c)
        return;
    rill__ckpt_stop(job);
    for (size_t i = 0; i < job->n_subs; i++) {
        rill__free(job->subs[i]->seen);
        rill__free(job->subs[i]->ended);
        rill__free(c->files[i].name);
    }
    pthread_cond_destroy(&c->cv);
    if (job->root == job)
        rill__ckpt_stats_free(c->stats);
    rill__free(c->fin);
    rill__free(c->final_dir);
    rill__free(c->files);
    rill__free(c->kept);
    rill__free(c->dir);
    rill__free(c);
    job->ckpt = NULL;
}

int rill__ckpt_savepoint(rill__job *root, const char *dir, char *err)
{
    rill__job *job = rill__current(root);
    rill__ckpt *c = job->ckpt;
    err[0] = '\0';
    if (!c) {
        rill__fmt(err, "the job does not run");
        return RILL_ESTATE;
    }
    int rc = rill__ckpt_make_dir(dir, err);
    pthread_mutex_lock(&job->mu);
    if (!rc && (c->sp_dir || c->stop)) {
        rc = RILL_ESTATE;
        rill__fmt(err, "%s", c->sp_dir ? "another savepoint is being taken"
                                       : "the job does not run");
    }
    char *d = rc ? NULL : rill__strdup(dir);
    if (!rc && !d) {
        rc = RILL_ENOMEM;
        rill__fmt(err, "out of memory");
    }
    if (rc) {
        pthread_mutex_unlock(&job->mu);
        return rc;
    }
    c->sp_dir = d;
    c->sp_busy = c->sp_done = 0;
    pthread_cond_broadcast(&c->cv);
    while (!c->sp_done)
        pthread_cond_wait(&c->cv, &job->mu);
    rc = c->sp_rc;
    if (rc)
        rill__fmt(err, "%s", c->sp_err);
    c->sp_dir = NULL;
    pthread_mutex_unlock(&job->mu);
    rill__free(d);
    return rc;
}

RILL_API int rill_job_savepoint(rill_job *root, const char *dir, int stop)
{
    if (!root || !dir || !*dir)
        return RILL_EINVAL;
    char err[RILL__ERRMSG_MAX];
    int rc = rill__ckpt_savepoint(root, dir, err);
    if (rc && rc != RILL_ESTATE)
        rill__log(RILL_LOG_WARN, "job '%s': savepoint into '%s': %s", root->name, dir, err);
    if (!rc && stop)
        rill_job_cancel(root);
    return rc;
}

RILL_API int64_t rill_job_last_checkpoint(const rill_job *job)
{
    if (!job)
        return 0;
    rill__job *j = rill__current(job);
    if (!j->ckpt)
        return 0;
    pthread_mutex_lock(&j->mu);
    int64_t id = j->ckpt->completed;
    pthread_mutex_unlock(&j->mu);
    /* A restarted attempt that has not completed one yet: the one it
     * started from. */
    return id ? id : rill__restore_id(j);
}
