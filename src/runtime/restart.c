/* restart.c - the public job API and restart strategies: when an attempt
 * of a job fails, a supervisor thread starts a new attempt from the latest
 * completed checkpoint (or from the start when there is none), after a
 * fixed or exponentially growing delay, up to a number of restarts. */
#include <string.h>
#include <time.h>

#include "graph/graph.h"
#include "runtime/task.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/log.h"

int rill__job_build(rill__job **out, rill_env *env, const char *name);
void rill__job_destroy(rill__job *job);

typedef struct rill__restarter {
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rill__job *cur;   /* the attempt that runs now */
    rill__job **old;  /* earlier attempts (freed with the job) */
    size_t n_old, cap_old;
    int restarts;
    int cancel;
    int canceled; /* canceled while waiting to restart */
    int done;
    int kind, attempts;
    int64_t delay, max_delay;
} rill__restarter;

rill__job *rill__current(const rill__job *job)
{
    rill__restarter *rs = job->rs;
    if (!rs)
        return (rill__job *)job;
    pthread_mutex_lock(&rs->mu);
    rill__job *a = rs->cur;
    pthread_mutex_unlock(&rs->mu);
    return a;
}

/* A new attempt of root's graph: from the latest checkpoint when there is
 * one, else from where the first attempt started. */
static int new_attempt(rill__job *root, rill__job **out)
{
    rill_env *env = root->env;
    rill__job *a;
    int rc = rill__job_build(&a, env, root->name);
    if (rc)
        return rc;
    a->root = root;
    char err[RILL__ERRMSG_MAX];
    err[0] = '\0';
    rc = RILL_ENOTFOUND;
    if (env->ckpt_dir)
        rc = rill__restore_prepare(a, env->ckpt_dir,
                                   env->restore_flags & ~RILL_RESTORE_IF_EXISTS, err);
    if (rc == RILL_ENOTFOUND) {
        rill__restore_free(a);
        rc = env->restore_path
                 ? rill__restore_prepare(a, env->restore_path, env->restore_flags, err)
                 : RILL_OK;
    }
    if (!rc)
        rc = rill__ckpt_start(a);
    if (!rc)
        rc = rill__job_launch(a);
    if (rc) {
        rill__log(RILL_LOG_ERROR, "job '%s': cannot restart: %s", root->name,
                  err[0] ? err : rill_strerror(rc));
        rill__attempt_cancel(a);
        rill__attempt_wait(a);
        rill__job_destroy(a);
        return rc;
    }
    *out = a;
    return RILL_OK;
}

static void *supervise(void *arg)
{
    rill__job *root = arg;
    rill__restarter *rs = root->rs;
    for (;;) {
        pthread_mutex_lock(&rs->mu);
        rill__job *a = rs->cur;
        pthread_mutex_unlock(&rs->mu);
        int rc = rill__attempt_wait(a);
        pthread_mutex_lock(&rs->mu);
        if (rc == RILL_OK || rc == RILL_ECANCELED || rs->cancel || rs->restarts >= rs->attempts)
            break;
        int64_t delay = rs->delay;
        for (int i = 0; rs->kind == RILL_RESTART_BACKOFF && i < rs->restarts; i++)
            delay = delay > rs->max_delay / 2 ? rs->max_delay : delay * 2;
        rill__log(RILL_LOG_WARN, "job '%s' failed (%s); restart %d of %d in %lld ms",
                  root->name, rill__attempt_errmsg(a), rs->restarts + 1, rs->attempts,
                  (long long)delay);
        struct timespec until = rill__deadline_ts(rill__now_ms() + delay);
        while (!rs->cancel && pthread_cond_timedwait(&rs->cv, &rs->mu, &until) == 0)
            ;
        if (rs->cancel) {
            rs->canceled = 1;
            break;
        }
        pthread_mutex_unlock(&rs->mu);
        rill__job *next = NULL;
        atomic_fetch_add(&root->env->running, 1);
        rc = new_attempt(root, &next);
        if (rc)
            atomic_fetch_sub(&root->env->running, 1);
        pthread_mutex_lock(&rs->mu);
        if (rc)
            break;
        if (rill__grow((void **)&rs->old, &rs->cap_old, rs->n_old + 1, sizeof *rs->old)) {
            /* Cannot keep the old attempt for later: free it now. */
            if (a != root)
                rill__job_destroy(a);
        } else if (a != root) {
            rs->old[rs->n_old++] = a;
        }
        rs->cur = next;
        rs->restarts++;
        if (rs->cancel)
            rill__attempt_cancel(next);
        pthread_mutex_unlock(&rs->mu);
    }
    rill__stop_ended(root); /* before rill_job_wait may return */
    rs->done = 1;
    pthread_cond_broadcast(&rs->cv);
    pthread_mutex_unlock(&rs->mu);
    atomic_fetch_sub(&root->env->running, 1); /* no more attempts */
    return NULL;
}

int rill__restart_start(rill__job *job)
{
    rill_env *env = job->env;
    if (env->restart_kind == RILL_RESTART_NONE)
        return RILL_OK;
    rill__restarter *rs = rill__calloc(1, sizeof *rs);
    if (!rs)
        return RILL_ENOMEM;
    if (pthread_mutex_init(&rs->mu, NULL)) {
        rill__free(rs);
        return RILL_ENOMEM;
    }
    if (rill__cond_init_monotonic(&rs->cv)) {
        pthread_mutex_destroy(&rs->mu);
        rill__free(rs);
        return RILL_ENOMEM;
    }
    rs->cur = job;
    rs->kind = env->restart_kind;
    rs->attempts = env->restart_attempts;
    rs->delay = env->restart_delay;
    rs->max_delay = env->restart_max_delay;
    job->rs = rs;
    /* The environment stays in use while restarts may come. */
    atomic_fetch_add(&env->running, 1);
    if (pthread_create(&rs->thread, NULL, supervise, job)) {
        atomic_fetch_sub(&env->running, 1);
        rs->done = 1;
        return RILL_ENOMEM;
    }
    rs->started = 1;
    return RILL_OK;
}

void rill__restart_free(rill__job *job)
{
    rill__restarter *rs = job->rs;
    if (!rs)
        return;
    if (rs->started)
        pthread_join(rs->thread, NULL);
    for (size_t i = 0; i < rs->n_old; i++)
        rill__job_destroy(rs->old[i]);
    if (rs->cur != job)
        rill__job_destroy(rs->cur);
    rill__free(rs->old);
    pthread_cond_destroy(&rs->cv);
    pthread_mutex_destroy(&rs->mu);
    rill__free(rs);
    job->rs = NULL;
}

/* ---- public job API --------------------------------------------------- */

RILL_API int rill_job_wait(rill_job *job)
{
    if (!job)
        return RILL_EINVAL;
    rill__restarter *rs = job->rs;
    if (!rs)
        return rill__stop_result(job, rill__attempt_wait(job));
    pthread_mutex_lock(&rs->mu);
    while (!rs->done)
        pthread_cond_wait(&rs->cv, &rs->mu);
    rill__job *a = rs->cur;
    int canceled = rs->canceled;
    pthread_mutex_unlock(&rs->mu);
    int rc = rill__attempt_wait(a);
    return rill__stop_result(job, canceled ? RILL_ECANCELED : rc);
}

RILL_API int rill_job_cancel(rill_job *job)
{
    if (!job)
        return RILL_EINVAL;
    rill__restarter *rs = job->rs;
    if (!rs)
        return rill__attempt_cancel(job);
    pthread_mutex_lock(&rs->mu);
    rs->cancel = 1;
    pthread_cond_broadcast(&rs->cv);
    rill__job *a = rs->cur;
    pthread_mutex_unlock(&rs->mu);
    return rill__attempt_cancel(a);
}

/* The status of the job's attempts. */
static int attempts_status(const rill_job *job)
{
    rill__restarter *rs = job->rs;
    if (!rs)
        return rill__attempt_status(job);
    pthread_mutex_lock(&rs->mu);
    int done = rs->done, canceled = rs->canceled;
    rill__job *a = rs->cur;
    pthread_mutex_unlock(&rs->mu);
    if (canceled)
        return RILL_JOB_CANCELED;
    int s = rill__attempt_status(a);
    /* A failed attempt that will be restarted is not the job's end. */
    return done || s != RILL_JOB_FAILED ? s : RILL_JOB_RUNNING;
}

RILL_API rill_job_state rill_job_status(const rill_job *job)
{
    return job ? (rill_job_state)rill__stop_status(job, attempts_status(job)) : RILL_JOB_INVALID;
}

RILL_API const char *rill_job_errmsg(const rill_job *job)
{
    if (!job)
        return "";
    const char *msg = rill__attempt_errmsg(rill__current(job));
    return rill__stop_errmsg(job, attempts_status(job), msg);
}

RILL_API const char *rill_job_failed_operator(const rill_job *job)
{
    return job ? rill__attempt_failed_operator(rill__current(job)) : NULL;
}

RILL_API int rill_job_restarts(const rill_job *job)
{
    if (!job || !job->rs)
        return 0;
    pthread_mutex_lock(&job->rs->mu);
    int n = job->rs->restarts;
    pthread_mutex_unlock(&job->rs->mu);
    return n;
}

RILL_API void rill_job_free(rill_job *job)
{
    if (!job)
        return;
    rill_job_cancel(job);
    rill_job_wait(job);
    rill__stop_free(job);
    rill__restart_free(job);
    rill__job_destroy(job);
}
