/* execute.c - validating and running an environment's graph. */
#include <string.h>

#include "graph/graph.h"
#include "runtime/task.h"

int rill__job_build(rill__job **out, rill_env *env, const char *name);
void rill__job_destroy(rill__job *job);

/* Refuse `call` while a job (or harness) of env runs. From a callback of
 * that job, env is left alone (its host may be reading it) and the
 * callback's failure says why. */
static int refuse_running(rill_env *env, const char *call)
{
    if (rill__refuse_from_callback(env, call))
        return RILL_ESTATE;
    return rill__env_error(env, RILL_ESTATE, "%s: a job of this environment is running", call);
}

static int validate(rill_env *env, const char *call)
{
    if (atomic_load(&env->running))
        return refuse_running(env, call);
    return rill__plan_resolve(env);
}

RILL_API int rill_env_validate(rill_env *env)
{
    if (!env)
        return RILL_EINVAL;
    return validate(env, "rill_env_validate");
}

/* rill_job_start, for call (the public function the host called). */
static int start(rill_job **out, rill_env *env, const char *job_name, const char *call)
{
    if (!out)
        return env ? rill__env_error(env, RILL_EINVAL, "%s: out is NULL", call) : RILL_EINVAL;
    *out = NULL;
    if (!env)
        return RILL_EINVAL;
    int rc = validate(env, call);
    if (rc)
        return rc;
    atomic_fetch_add(&env->running, 1);
    rill__job *job;
    if ((rc = rill__job_build(&job, env, job_name))) {
        atomic_fetch_sub(&env->running, 1);
        return rill__env_error(env, rc, "%s: out of memory while starting the job", call);
    }
    if (env->restore_path) {
        char err[RILL__ERRMSG_MAX];
        err[0] = '\0';
        if ((rc = rill__restore_prepare(job, env->restore_path, env->restore_flags,
                                        err))) {
            atomic_fetch_sub(&env->running, 1);
            rill__job_destroy(job);
            return rill__env_error(env, rc, "%s", err[0] ? err : rill_strerror(rc));
        }
    }
    if ((rc = rill__ckpt_start(job)) || (rc = rill__stop_init(job))) {
        atomic_fetch_sub(&env->running, 1);
        rill__job_destroy(job);
        return rill__env_error(env, rc, "%s: out of memory while starting the job", call);
    }
    if ((rc = rill__job_launch(job))) {
        rill__env_error(env, rc, "%s", job->errmsg);
        rill_job_free(job);
        return rc;
    }
    if ((rc = rill__restart_start(job)) || (rc = rill__stop_start(job))) {
        rill__env_error(env, rc, "%s: out of memory while starting the job", call);
        rill_job_free(job);
        return rc;
    }
    *out = job;
    env->msg[0] = '\0';
    return RILL_OK;
}

RILL_API int rill_job_start(rill_job **out, rill_env *env, const char *job_name)
{
    return start(out, env, job_name, "rill_job_start");
}

RILL_API int rill_env_execute(rill_env *env, const char *job_name)
{
    rill_job *job;
    int rc = start(&job, env, job_name, "rill_env_execute");
    if (rc)
        return rc;
    rc = rill_job_wait(job);
    if (rc)
        rill__env_error(env, rc, "%s", rill_job_errmsg(job));
    rill_job_free(job);
    return rc;
}
