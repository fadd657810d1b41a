/* env_ckpt.c - checkpoint settings of an environment. */
#include "graph/graph.h"
#include "util/alloc.h"

static int busy(rill_env *env, const char *what)
{
    if (atomic_load(&env->running))
        return rill__env_error(env, RILL_ESTATE, "%s: a job of this environment is running",
                               what);
    return RILL_OK;
}

RILL_API int rill_env_enable_checkpointing(rill_env *env, int64_t interval_ms, const char *dir,
                                           rill_checkpoint_mode mode)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_enable_checkpointing");
    if (rc)
        return rc;
    if (interval_ms < 1 || interval_ms > 86400000)
        return rill__env_error(env, RILL_EINVAL,
                               "checkpoint interval %lld ms is out of range 1..86400000",
                               (long long)interval_ms);
    if (!dir || !*dir)
        return rill__env_error(env, RILL_EINVAL, "checkpoint directory is NULL or empty");
    if (mode != RILL_EXACTLY_ONCE && mode != RILL_AT_LEAST_ONCE)
        return rill__env_error(env, RILL_EINVAL, "checkpoint mode %d is neither "
                               "RILL_EXACTLY_ONCE nor RILL_AT_LEAST_ONCE", (int)mode);
    char *d = rill__strdup(dir);
    if (!d)
        return rill__env_error(env, RILL_ENOMEM, "out of memory");
    rill__free(env->ckpt_dir);
    env->ckpt_dir = d;
    env->ckpt_interval = interval_ms;
    env->ckpt_mode = mode;
    return RILL_OK;
}

RILL_API int rill_env_set_checkpoint_timeout(rill_env *env, int64_t ms)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_checkpoint_timeout");
    if (rc)
        return rc;
    if (ms < 1)
        return rill__env_error(env, RILL_EINVAL, "checkpoint timeout %lld ms is not > 0",
                               (long long)ms);
    env->ckpt_timeout = ms;
    return RILL_OK;
}

RILL_API int rill_env_set_checkpoint_min_pause(rill_env *env, int64_t ms)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_checkpoint_min_pause");
    if (rc)
        return rc;
    if (ms < 0)
        return rill__env_error(env, RILL_EINVAL, "checkpoint min pause %lld ms is negative",
                               (long long)ms);
    env->ckpt_min_pause = ms;
    return RILL_OK;
}

RILL_API int rill_env_set_checkpoints_retained(rill_env *env, int n)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_checkpoints_retained");
    if (rc)
        return rc;
    if (n < 1 || n > 1000)
        return rill__env_error(env, RILL_EINVAL,
                               "retained checkpoints %d is out of range 1..1000", n);
    env->ckpt_retained = n;
    return RILL_OK;
}

RILL_API int rill_env_set_restore(rill_env *env, const char *path, int flags)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_restore");
    if (rc)
        return rc;
    char *p = NULL;
    const int known = RILL_RESTORE_ALLOW_NON_RESTORED | RILL_RESTORE_IF_EXISTS;
    if (flags & ~known)
        return rill__env_error(env, RILL_EINVAL,
                               "restore flags 0x%x: unknown bits 0x%x (known: "
                               "RILL_RESTORE_ALLOW_NON_RESTORED, RILL_RESTORE_IF_EXISTS)",
                               (unsigned)flags, (unsigned)(flags & ~known));
    if (path && !*path)
        return rill__env_error(env, RILL_EINVAL, "restore path is empty");
    if (path && !(p = rill__strdup(path)))
        return rill__env_error(env, RILL_ENOMEM, "out of memory");
    rill__free(env->restore_path);
    env->restore_path = p;
    env->restore_flags = flags;
    return RILL_OK;
}

RILL_API int rill_env_set_savepoint_dir(rill_env *env, const char *dir)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_savepoint_dir");
    if (rc)
        return rc;
    char *d = NULL;
    if (dir && !*dir)
        return rill__env_error(env, RILL_EINVAL, "savepoint directory is empty");
    if (dir && !(d = rill__strdup(dir)))
        return rill__env_error(env, RILL_ENOMEM, "out of memory");
    rill__free(env->savepoint_dir);
    env->savepoint_dir = d;
    return RILL_OK;
}

RILL_API int rill_env_set_restart_strategy(rill_env *env, rill_restart_kind kind, int attempts,
                                           int64_t delay_ms, int64_t max_delay_ms)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_restart_strategy");
    if (rc)
        return rc;
    if (kind != RILL_RESTART_NONE && kind != RILL_RESTART_FIXED_DELAY &&
        kind != RILL_RESTART_BACKOFF)
        return rill__env_error(env, RILL_EINVAL, "restart strategy %d is unknown", (int)kind);
    if (kind != RILL_RESTART_NONE && (attempts < 1 || attempts > 1000000))
        return rill__env_error(env, RILL_EINVAL,
                               "restart attempts %d is out of range 1..1000000", attempts);
    if (kind != RILL_RESTART_NONE && delay_ms < 0)
        return rill__env_error(env, RILL_EINVAL, "restart delay %lld ms is negative",
                               (long long)delay_ms);
    if (kind == RILL_RESTART_BACKOFF && max_delay_ms < delay_ms)
        return rill__env_error(env, RILL_EINVAL,
                               "restart max delay %lld ms is below the delay %lld ms",
                               (long long)max_delay_ms, (long long)delay_ms);
    env->restart_kind = kind;
    env->restart_attempts = attempts;
    env->restart_delay = delay_ms;
    env->restart_max_delay = max_delay_ms;
    return RILL_OK;
}

RILL_API rill_stream *rill_stream_set_checkpoint_hooks(rill_stream *s,
                                                       rill_checkpoint_fn on_snapshot,
                                                       rill_checkpoint_fn on_complete)
{
    rill__node *n = rill__setting_node(s, "rill_stream_set_checkpoint_hooks");
    if (!n)
        return NULL;
    n->on_snapshot = on_snapshot;
    n->on_complete = on_complete;
    return s;
}

RILL_API int rill_env_set_checkpoint_retain_on_cancel(rill_env *env, int retain)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_checkpoint_retain_on_cancel");
    if (rc)
        return rc;
    env->ckpt_retain_on_cancel = retain != 0;
    return RILL_OK;
}

RILL_API int rill_env_set_tolerable_checkpoint_failures(rill_env *env, int n)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_tolerable_checkpoint_failures");
    if (rc)
        return rc;
    if (n < 0)
        return rill__env_error(env, RILL_EINVAL, "tolerable checkpoint failures %d is negative",
                               n);
    env->ckpt_tolerable = n;
    return RILL_OK;
}
