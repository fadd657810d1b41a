/* env.c - the environment: settings, errors, lifetime. */
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "graph/graph.h"
#include "util/alloc.h"

#define PARALLELISM_LIMIT 32768

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > PARALLELISM_LIMIT ? PARALLELISM_LIMIT : (int)n;
}

RILL_API rill_env *rill_env_new(void)
{
    rill_env *env = rill__calloc(1, sizeof *env);
    if (!env)
        return NULL;
    atomic_init(&env->refs, 1);
    atomic_init(&env->running, 0);
    atomic_init(&env->stop_pending, 0);
    atomic_init(&env->stop_live, NULL);
    atomic_init(&env->stop_users, 0);
    env->max_parallelism = 128;
    /* The number of online CPUs, within the default max parallelism. */
    int cpus = online_cpus();
    env->parallelism = cpus < env->max_parallelism ? cpus : env->max_parallelism;
    env->buffer_timeout = 100;
    env->buffer_size = 32 * 1024;
    env->channel_capacity = 4;
    env->state_cache_bytes = (size_t)64 << 20;
    env->wm_interval = 200;
    env->ckpt_timeout = 600000;
    env->ckpt_retained = 1;
    env->ckpt_retain_on_cancel = 1;
    return env; /* state_dir NULL: a private one in the temporary directory */
}

static void env_destroy(rill_env *env)
{
    for (size_t i = 0; i < env->n_nodes; i++) {
        rill__node *n = env->nodes[i];
        rill__free(n->name);
        rill__free(n->uid);
        rill__free(n->resolved_uid);
        rill__free(n->in);
        rill__free(n->recs);
        rill__free(n->rec_store);
        rill__free(n->path);
        for (size_t k = 0; k < n->n_states; k++)
            rill__free(n->states[k].name);
        rill__free(n->states);
        for (size_t k = 0; k < n->n_tags; k++)
            rill__free(n->tags[k]);
        rill__free(n->tags);
        rill__free(n);
    }
    rill__free(env->nodes);
    for (size_t i = 0; i < env->n_streams; i++) {
        rill__free(env->streams[i]->edges);
        rill__free(env->streams[i]);
    }
    rill__free(env->streams);
    rill__free(env->state_dir);
    rill__free(env->ckpt_dir);
    rill__free(env->restore_path);
    rill__free(env->savepoint_dir);
    rill__free(env);
}

void rill__env_unref(rill_env *env)
{
    if (atomic_fetch_sub(&env->refs, 1) == 1)
        env_destroy(env);
}

RILL_API void rill_env_free(rill_env *env)
{
    if (env)
        rill__env_unref(env);
}

RILL_API const char *rill_env_errmsg(const rill_env *env)
{
    return env ? env->msg : "no environment";
}

int rill__env_error(rill_env *env, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rill__vfmt(env->msg, fmt, ap);
    va_end(ap);
    return code;
}

rill_stream *rill__env_fail(rill_env *env, int code, const char *fmt, ...)
{
    if (env->err)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    rill__vfmt(env->err_kept, fmt, ap);
    va_end(ap);
    env->err = code;
    memcpy(env->msg, env->err_kept, sizeof env->msg);
    return NULL;
}

static int busy(rill_env *env, const char *what)
{
    if (atomic_load(&env->running))
        return rill__env_error(env, RILL_ESTATE, "%s: a job of this environment is running",
                               what);
    return RILL_OK;
}

RILL_API int rill_env_set_parallelism(rill_env *env, int parallelism)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_parallelism");
    if (rc)
        return rc;
    if (parallelism < 1 || parallelism > PARALLELISM_LIMIT)
        return rill__env_error(env, RILL_EINVAL, "parallelism %d is out of range 1..%d",
                               parallelism, PARALLELISM_LIMIT);
    env->parallelism = parallelism;
    return RILL_OK;
}

RILL_API int rill_env_get_parallelism(const rill_env *env) { return env ? env->parallelism : 0; }

RILL_API int rill_env_set_max_parallelism(rill_env *env, int max_parallelism)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_max_parallelism");
    if (rc)
        return rc;
    if (max_parallelism < 1 || max_parallelism > PARALLELISM_LIMIT)
        return rill__env_error(env, RILL_EINVAL, "max parallelism %d is out of range 1..%d",
                               max_parallelism, PARALLELISM_LIMIT);
    env->max_parallelism = max_parallelism;
    return RILL_OK;
}

RILL_API int rill_env_get_max_parallelism(const rill_env *env)
{
    return env ? env->max_parallelism : 0;
}

RILL_API int rill_env_set_buffer_timeout(rill_env *env, int64_t ms)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_buffer_timeout");
    if (rc)
        return rc;
    if (ms < -1)
        return rill__env_error(env, RILL_EINVAL,
                               "buffer timeout %lld ms is invalid (-1, 0 or more)",
                               (long long)ms);
    env->buffer_timeout = ms;
    return RILL_OK;
}

RILL_API int rill_env_set_buffer_size(rill_env *env, size_t bytes)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_buffer_size");
    if (rc)
        return rc;
    if (bytes < 4096 || bytes > ((size_t)64 << 20))
        return rill__env_error(env, RILL_EINVAL,
                               "buffer size %zu is out of range 4096..67108864", bytes);
    env->buffer_size = bytes;
    return RILL_OK;
}

RILL_API int rill_env_set_channel_capacity(rill_env *env, int buffers)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_channel_capacity");
    if (rc)
        return rc;
    if (buffers < 1 || buffers > 1024)
        return rill__env_error(env, RILL_EINVAL, "channel capacity %d is out of range 1..1024",
                               buffers);
    env->channel_capacity = buffers;
    return RILL_OK;
}

RILL_API int rill_env_set_state_dir(rill_env *env, const char *dir)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_state_dir");
    if (rc)
        return rc;
    if (!dir || !*dir)
        return rill__env_error(env, RILL_EINVAL, "state directory is NULL or empty");
    char *d = rill__strdup(dir);
    if (!d)
        return rill__env_error(env, RILL_ENOMEM, "out of memory");
    rill__free(env->state_dir);
    env->state_dir = d;
    return RILL_OK;
}

RILL_API int rill_env_set_state_cache_size(rill_env *env, size_t bytes)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_state_cache_size");
    if (rc)
        return rc;
    if (bytes < ((size_t)1 << 20) || (uint64_t)bytes > ((uint64_t)1 << 40))
        return rill__env_error(env, RILL_EINVAL,
                               "state cache size %zu is out of range 1 MiB..1 TiB", bytes);
    env->state_cache_bytes = bytes;
    return RILL_OK;
}

RILL_API int rill_env_set_watermark_interval(rill_env *env, int64_t ms)
{
    if (!env)
        return RILL_EINVAL;
    int rc = busy(env, "rill_env_set_watermark_interval");
    if (rc)
        return rc;
    if (ms < 1 || ms > 3600000)
        return rill__env_error(env, RILL_EINVAL,
                               "watermark interval %lld ms is out of range 1..3600000",
                               (long long)ms);
    env->wm_interval = ms;
    return RILL_OK;
}
