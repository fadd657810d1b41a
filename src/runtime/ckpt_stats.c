/* ckpt_stats.c - a job's checkpoint statistics and tolerated failures. */
#include <string.h>

#include "runtime/ckpt_int.h"
#include "runtime/ckpt_stats.h"
#include "util/alloc.h"

rill__ckpt_stats *rill__ckpt_stats_new(int tolerable)
{
    rill__ckpt_stats *s = rill__calloc(1, sizeof *s);
    if (s && pthread_mutex_init(&s->mu, NULL)) {
        rill__free(s);
        return NULL;
    }
    if (s)
        s->tolerable = tolerable;
    return s;
}

void rill__ckpt_stats_free(rill__ckpt_stats *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->mu);
    rill__free(s);
}

void rill__ckpt_stats_completed(rill__ckpt_stats *s, int64_t id, int64_t duration_ms,
                                uint64_t size)
{
    pthread_mutex_lock(&s->mu);
    s->completed++;
    s->last_id = id;
    s->last_duration_ms = duration_ms;
    s->last_size = size;
    s->consecutive = 0;
    pthread_mutex_unlock(&s->mu);
}

int rill__ckpt_stats_failed(rill__ckpt_stats *s, int64_t id, int code, const char *why,
                            int *consecutive)
{
    pthread_mutex_lock(&s->mu);
    s->failed++;
    s->last_failed_id = id;
    s->last_code = code;
    rill__fmt(s->last_cause, "%s", why);
    int n = ++s->consecutive;
    int over = n > s->tolerable;
    if (over)
        s->consecutive = 0;
    pthread_mutex_unlock(&s->mu);
    *consecutive = n;
    return over;
}

RILL_API int rill_job_checkpoint_stats(const rill_job *job, rill_checkpoint_stats *out,
                                       size_t size)
{
    if (!job || !out || size == 0)
        return RILL_EINVAL;
    rill_checkpoint_stats r;
    memset(&r, 0, sizeof r);
    rill__job *a = rill__current(job);
    rill__ckpt_stats *s = a->ckpt ? a->ckpt->stats : NULL;
    if (s) {
        pthread_mutex_lock(&a->mu);
        r.in_progress = a->ckpt->pending;
        pthread_mutex_unlock(&a->mu);
        pthread_mutex_lock(&s->mu);
        r.completed = s->completed;
        r.failed = s->failed;
        r.last_completed_id = s->last_id;
        r.last_duration_ms = s->last_duration_ms;
        r.last_size_bytes = s->last_size;
        r.last_failed_id = s->last_failed_id;
        r.last_failure_code = s->last_code;
        r.consecutive_failures = s->consecutive;
        size_t n = strnlen(s->last_cause, sizeof r.last_failure - 1);
        memcpy(r.last_failure, s->last_cause, n); /* cut to fit; r is zeroed */
        pthread_mutex_unlock(&s->mu);
    }
    memcpy(out, &r, size < sizeof r ? size : sizeof r);
    return RILL_OK;
}
