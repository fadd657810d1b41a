/* statedir.c - the working state directory of a job or test harness.
 *
 * With a state directory set on the environment, it is
 * <state dir>/job-<pid>-<n> (harness-<pid>-<n> for a harness); without,
 * a private rill-job-<pid>-XXXXXX (rill-harness-...) in the temporary
 * directory. It is made (mode 0700) when the first operator with keyed
 * state opens, held by the job while it lives (util/workdir.h) and
 * removed with the job. At each start, those that processes which ended
 * left in the same place are removed.
 */
#include "runtime/statedir.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "graph/graph.h"
#include "util/alloc.h"
#include "util/log.h"
#include "util/workdir.h"

/* s starts with the digits of a number followed by '-': what follows. */
static const char *number_dash(const char *s)
{
    if (*s < '0' || *s > '9')
        return NULL;
    while (*s >= '0' && *s <= '9')
        s++;
    return *s == '-' ? s + 1 : NULL;
}

/* After the kind: "job-" or "harness-", else NULL. */
static const char *kind_prefix(const char *name)
{
    if (!strncmp(name, "job-", 4))
        return name + 4;
    if (!strncmp(name, "harness-", 8))
        return name + 8;
    return NULL;
}

/* job-<pid>-<n>, harness-<pid>-<n>. */
static int named_dir(const char *name)
{
    const char *s = kind_prefix(name);
    if (!s || !(s = number_dash(s)) || !*s)
        return 0;
    while (*s >= '0' && *s <= '9')
        s++;
    return *s == '\0';
}

/* rill-job-<pid>-XXXXXX, rill-harness-<pid>-XXXXXX (as mkdtemp makes them). */
static int private_dir(const char *name)
{
    const char *s = strncmp(name, "rill-", 5) ? NULL : kind_prefix(name + 5);
    if (!s || !(s = number_dash(s)) || strlen(s) != 6)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return 0;
    return 1;
}

void rill__state_dir_sweep(const rill_env *env)
{
    const char *parent = env->state_dir ? env->state_dir : rill__tmpdir();
    int n = rill__workdir_sweep(parent, env->state_dir ? named_dir : private_dir);
    if (n)
        rill__log(RILL_LOG_INFO,
                  "removed %d working state %s that ended processes left in '%s'", n,
                  n == 1 ? "directory" : "directories", parent);
}

/* Make and hold a new working state directory for job into *out. */
static int make_dir(rill__job *job, char **out, int *fd, char *err)
{
    static atomic_uint seq;
    const rill_env *env = job->env;
    const char *kind = job->harness ? "harness" : "job";
    const char *parent = env->state_dir ? env->state_dir : rill__tmpdir();
    size_t len = strlen(parent) + 64;
    char *path = rill__malloc(len);
    if (!path) {
        rill__fmt(err, "out of memory");
        return RILL_ENOMEM;
    }
    int e = env->state_dir ? rill__mkdirs(parent) : 0;
    if (e) {
        rill__fmt(err, "cannot make the state directory '%s': %s", parent, strerror(e));
        rill__free(path);
        return RILL_EIO;
    }
    /* A name that exists, or a directory a sweep took: another name. */
    for (int tries = 0; tries < 100; tries++) {
        if (env->state_dir)
            snprintf(path, len, "%s/%s-%ld-%u", parent, kind, (long)getpid(),
                     atomic_fetch_add(&seq, 1) + 1);
        else
            snprintf(path, len, "%s/rill-%s-%ld-XXXXXX", parent, kind, (long)getpid());
        if ((e = rill__workdir_make(path, !env->state_dir, fd)) != EEXIST && e != EAGAIN)
            break;
    }
    if (e) {
        rill__fmt(err, "cannot make the working state directory '%s': %s", path, strerror(e));
        rill__free(path);
        return RILL_EIO;
    }
    *out = path;
    return RILL_OK;
}

const char *rill__state_dir_open(rill__job *job, int *rc, char *err)
{
    *rc = RILL_OK;
    pthread_mutex_lock(&job->mu);
    if (!job->state_dir)
        *rc = make_dir(job, &job->state_dir, &job->state_fd, err);
    const char *d = job->state_dir;
    pthread_mutex_unlock(&job->mu);
    return d;
}

void rill__state_dir_remove(rill__job *job)
{
    if (!job->state_dir)
        return;
    rill__workdir_remove(job->state_dir, job->state_fd);
    rill__free(job->state_dir);
    job->state_dir = NULL;
}
