/* stop.c - stop requests, which a signal handler may make: stop a job,
 * with a savepoint first or without (Flink's "stop with savepoint" and
 * "cancel").
 *
 * rill_job_request_stop and rill_env_request_stop only do lock-free
 * atomic operations and sem_post, which are async-signal-safe. A watcher
 * thread per job waits on the semaphore, takes the requests and acts on
 * them with ordinary locking calls: it cancels the job, or starts a saver
 * thread that takes the savepoint into a new savepoint-<n> under the
 * environment's savepoint directory and then cancels the job. The watcher
 * stays free meanwhile, so a later request without a savepoint still
 * cancels at once.
 *
 * A request to the environment waits in env->stop_pending until the job
 * that runs (env->stop_live) takes it, or the next one started. A handler
 * that posts to env->stop_live counts itself in env->stop_users, so the
 * stopper it reads is not freed under it. */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "graph/graph.h"
#include "runtime/ckpt_int.h"
#include "runtime/task.h"
#include "util/alloc.h"
#include "util/dirnum.h"
#include "util/log.h"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_POINTER_LOCK_FREE == 2,
               "stop requests from signal handlers need lock-free atomics");

/* Requests. */
#define REQ_CANCEL 1    /* stop without a savepoint */
#define REQ_SAVEPOINT 2 /* stop with a savepoint */

struct rill__stopper {
    rill__job *job;
    sem_t sem;        /* posted by each request, and when the job ends */
    atomic_int req;   /* requests made to this job not yet taken */
    atomic_int ended; /* the job has ended: requests are refused */
    int restarts;     /* the restart supervisor tells when the job ends */
    char *dir;        /* the savepoint directory, or NULL */
    pthread_t watcher, saver;
    int watcher_started, saver_started; /* saver_started: the watcher's own */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* With mu. */
    int stopping; /* a request was acted on */
    int canceled; /* ... by canceling the job at once */
    int saving;   /* the saver thread runs */
    int outcome;  /* the job ends as the stop says: */
    int rc;       /* RILL_ECANCELED (with a savepoint) or why there is none */
    int has_path;    /* path is the savepoint taken */
    int discard;     /* path is a failed savepoint's directory, to remove */
    char path[4200];
    char msg[RILL__ERRMSG_MAX];
};

static int request_bits(int flags)
{
    return flags & RILL_STOP_SAVEPOINT ? REQ_SAVEPOINT : REQ_CANCEL;
}

/* Wake the watcher of the job of env that runs, if any. Async-signal-safe. */
static void wake_live(rill_env *env)
{
    atomic_fetch_add(&env->stop_users, 1);
    rill__stopper *s = atomic_load(&env->stop_live);
    if (s)
        sem_post(&s->sem);
    atomic_fetch_sub(&env->stop_users, 1);
}

/* Create dir/savepoint-<n> (and dir), n one more than the largest there,
 * into out. RILL_OK, or an error with a message in err. */
static int new_target(const char *dir, char *out, size_t cap, char *err)
{
    int rc = rill__ckpt_make_dir(dir, err);
    if (rc)
        return rc;
    long long n = rill__dir_largest(dir, "savepoint-");
    for (int tries = 0;; tries++) {
        int len = snprintf(out, cap, "%s/savepoint-%lld", dir, ++n);
        if (len < 0 || (size_t)len >= cap) {
            rill__fmt(err, "savepoint directory name '%.64s...' is too long", dir);
            return RILL_EINVAL;
        }
        if (mkdir(out, 0777) == 0)
            return RILL_OK;
        if (errno != EEXIST || tries == 1000) {
            rill__fmt(err, "cannot create directory '%s': %s", out, strerror(errno));
            return RILL_EIO;
        }
    }
}

/* With s->mu held: the stop goes on without a savepoint, because of why;
 * the job ends with rc. */
static void no_savepoint(rill__stopper *s, int rc, const char *why)
{
    s->outcome = 1;
    s->rc = rc;
    rill__fmt(s->msg, "job '%s' was stopped without a savepoint: %s", s->job->name, why);
    rill__log(RILL_LOG_WARN, "%s", s->msg);
}

static void *save(void *arg)
{
    rill__stopper *s = arg;
    rill__job *job = s->job;
    char path[sizeof s->path], err[RILL__ERRMSG_MAX];
    int rc = new_target(s->dir, path, sizeof path, err);
    int made = rc == RILL_OK;
    if (!rc)
        rc = rill__ckpt_savepoint(job, path, err);
    pthread_mutex_lock(&s->mu);
    if (rc && made) {
        s->discard = 1;
        memcpy(s->path, path, sizeof path);
    }
    if (!rc) {
        s->outcome = 1;
        s->rc = RILL_ECANCELED;
        s->has_path = 1;
        memcpy(s->path, path, sizeof path);
        rill__fmt(s->msg, "job '%s' was stopped with a savepoint in '%s'", job->name, path);
        rill__log(RILL_LOG_INFO, "job '%s': savepoint '%s' complete; stopping", job->name, path);
    } else if (!s->canceled) {
        char why[RILL__ERRMSG_MAX];
        if (made)
            rill__fmt(why, "savepoint into '%s': %s", path, err);
        else
            rill__fmt(why, "savepoint under '%s': %s", s->dir, err);
        no_savepoint(s, rc, why);
    }
    pthread_mutex_unlock(&s->mu);
    rill_job_cancel(job);
    pthread_mutex_lock(&s->mu);
    s->saving = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    sem_post(&s->sem);
    return NULL;
}

/* Act on requests r: a cancel at once; a savepoint on the saver thread,
 * unless the job is stopping already. */
static void act(rill__stopper *s, int r)
{
    rill__job *job = s->job;
    int cancel = 0;
    pthread_mutex_lock(&s->mu);
    if ((r & REQ_CANCEL) && !s->canceled) {
        rill__log(RILL_LOG_INFO, "job '%s': stop requested%s", job->name,
                  s->saving ? "; the savepoint being taken is given up" : "");
        s->canceled = s->stopping = 1;
        cancel = 1;
    } else if ((r & REQ_SAVEPOINT) && !s->stopping) {
        rill__log(RILL_LOG_INFO, "job '%s': stop with a savepoint requested", job->name);
        s->stopping = 1;
        if (!s->dir) {
            no_savepoint(s, RILL_EINVAL,
                         "no savepoint directory is set (rill_env_set_savepoint_dir)");
            cancel = 1;
        } else if (pthread_create(&s->saver, NULL, save, s)) {
            no_savepoint(s, RILL_ENOMEM, "cannot start the thread that takes the savepoint");
            cancel = 1;
        } else {
            s->saver_started = s->saving = 1;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (cancel)
        rill_job_cancel(job);
}

static void *watch(void *arg)
{
    rill__stopper *s = arg;
    rill_env *env = s->job->env;
    for (;;) {
        while (sem_wait(&s->sem) != 0 && errno == EINTR)
            ;
        int r = atomic_exchange(&s->req, 0);
        int e = atomic_exchange(&env->stop_pending, 0);
        if (!atomic_load(&s->ended)) {
            act(s, r | e);
            continue;
        }
        /* The job ended: a request to the environment is for the next. */
        if (e) {
            atomic_fetch_or(&env->stop_pending, e);
            wake_live(env);
        }
        pthread_mutex_lock(&s->mu);
        int saving = s->saving;
        pthread_mutex_unlock(&s->mu);
        if (!saving)
            break;
    }
    if (s->saver_started)
        pthread_join(s->saver, NULL);
    return NULL;
}

/* Remove the directory of a failed savepoint (unless it is complete):
 * the files its subtasks wrote, some maybe after it failed. */
static void remove_failed(const char *dir)
{
    char p[4500];
    snprintf(p, sizeof p, "%s/_metadata", dir);
    struct stat sb;
    DIR *d = stat(p, &sb) == 0 ? NULL : opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static void mark_ended(rill__stopper *s)
{
    rill__stopper *me = s;
    atomic_compare_exchange_strong(&s->job->env->stop_live, &me, NULL);
    if (!atomic_exchange(&s->ended, 1))
        sem_post(&s->sem);
}

int rill__stop_init(rill__job *job)
{
    rill_env *env = job->env;
    rill__stopper *s = rill__calloc(1, sizeof *s);
    if (!s)
        return RILL_ENOMEM;
    s->job = job;
    atomic_init(&s->req, 0);
    atomic_init(&s->ended, 0);
    s->restarts = env->restart_kind != RILL_RESTART_NONE;
    int ok = !env->savepoint_dir || (s->dir = rill__strdup(env->savepoint_dir)) != NULL;
    int sem = ok && sem_init(&s->sem, 0, 0) == 0;
    int mu = sem && pthread_mutex_init(&s->mu, NULL) == 0;
    int cv = mu && pthread_cond_init(&s->cv, NULL) == 0;
    if (!cv) {
        if (mu)
            pthread_mutex_destroy(&s->mu);
        if (sem)
            sem_destroy(&s->sem);
        rill__free(s->dir);
        rill__free(s);
        return RILL_ENOMEM;
    }
    job->stop = s;
    atomic_store(&env->stop_live, s);
    /* A request made before: the watcher takes it as it starts. */
    if (atomic_load(&env->stop_pending))
        sem_post(&s->sem);
    return RILL_OK;
}

int rill__stop_start(rill__job *job)
{
    rill__stopper *s = job->stop;
    if (pthread_create(&s->watcher, NULL, watch, s))
        return RILL_ENOMEM;
    s->watcher_started = 1;
    return RILL_OK;
}

void rill__stop_settled(rill__job *job)
{
    if (job->stop && !job->stop->restarts)
        mark_ended(job->stop);
}

void rill__stop_ended(rill__job *job)
{
    if (job->stop)
        mark_ended(job->stop);
}

int rill__stop_result(rill__job *job, int rc)
{
    rill__stopper *s = job->stop;
    if (!s)
        return rc;
    pthread_mutex_lock(&s->mu);
    while (s->saving)
        pthread_cond_wait(&s->cv, &s->mu);
    if (rc == RILL_ECANCELED && s->outcome)
        rc = s->rc;
    /* Every snapshot writer of the job is done now. */
    if (s->discard) {
        s->discard = 0;
        remove_failed(s->path);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int rill__stop_status(const rill__job *job, int status)
{
    rill__stopper *s = job->stop;
    if (!s || status != RILL_JOB_CANCELED)
        return status;
    pthread_mutex_lock(&s->mu);
    if (s->outcome && s->rc != RILL_ECANCELED)
        status = RILL_JOB_FAILED;
    pthread_mutex_unlock(&s->mu);
    return status;
}

const char *rill__stop_errmsg(const rill__job *job, int status, const char *msg)
{
    rill__stopper *s = job->stop;
    if (!s || status != RILL_JOB_CANCELED)
        return msg;
    pthread_mutex_lock(&s->mu);
    if (s->outcome)
        msg = s->msg;
    pthread_mutex_unlock(&s->mu);
    return msg;
}

void rill__stop_free(rill__job *job)
{
    rill__stopper *s = job->stop;
    if (!s)
        return;
    mark_ended(s);
    if (s->watcher_started)
        pthread_join(s->watcher, NULL);
    /* A handler that read env->stop_live before it was cleared is done
     * with s once it leaves. */
    while (atomic_load(&job->env->stop_users))
        sched_yield();
    sem_destroy(&s->sem);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    rill__free(s->dir);
    rill__free(s);
    job->stop = NULL;
}

/* ---- public API ------------------------------------------------------- */

RILL_API int rill_job_request_stop(rill_job *job, int flags)
{
    if (!job || (flags & ~RILL_STOP_SAVEPOINT))
        return RILL_EINVAL;
    rill__stopper *s = job->stop;
    if (!s || atomic_load(&s->ended))
        return RILL_ESTATE;
    int saved = errno; /* a signal handler must leave errno as it was */
    atomic_fetch_or(&s->req, request_bits(flags));
    sem_post(&s->sem);
    errno = saved;
    return RILL_OK;
}

RILL_API int rill_env_request_stop(rill_env *env, int flags)
{
    if (!env || (flags & ~RILL_STOP_SAVEPOINT))
        return RILL_EINVAL;
    int saved = errno;
    atomic_fetch_or(&env->stop_pending, request_bits(flags));
    wake_live(env);
    errno = saved;
    return RILL_OK;
}

RILL_API const char *rill_job_stop_savepoint(const rill_job *job)
{
    rill__stopper *s = job ? job->stop : NULL;
    if (!s)
        return NULL;
    pthread_mutex_lock(&s->mu);
    const char *p = s->has_path ? s->path : NULL;
    pthread_mutex_unlock(&s->mu);
    return p;
}
