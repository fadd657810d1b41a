/* ckpt_stats.h - a job's checkpoint statistics, kept across its restarts,
 * and the count of consecutive failures that fails the job when it goes
 * past the tolerated number (Flink's tolerable checkpoint failures). */
#ifndef RILL_RUNTIME_CKPT_STATS_H
#define RILL_RUNTIME_CKPT_STATS_H

#include <pthread.h>
#include <stdint.h>

#include "util/error.h"

typedef struct rill__ckpt_stats {
    pthread_mutex_t mu;
    int tolerable;   /* consecutive failures tolerated */
    int consecutive; /* failures since the last completed checkpoint */
    int64_t completed, failed;
    int64_t last_id, last_duration_ms;
    uint64_t last_size;
    int64_t last_failed_id;
    int last_code;
    char last_cause[RILL__ERRMSG_MAX];
} rill__ckpt_stats;

/* New statistics tolerating `tolerable` consecutive failures; NULL when
 * out of memory. */
rill__ckpt_stats *rill__ckpt_stats_new(int tolerable);
void rill__ckpt_stats_free(rill__ckpt_stats *s);
/* Checkpoint id completed in duration_ms with files of size bytes. */
void rill__ckpt_stats_completed(rill__ckpt_stats *s, int64_t id, int64_t duration_ms,
                                uint64_t size);
/* Checkpoint id failed with code (cause: why); *consecutive gets the
 * count of consecutive failures. 1 when it goes past the tolerated number
 * (the job must fail; the count starts again), else 0. */
int rill__ckpt_stats_failed(rill__ckpt_stats *s, int64_t id, int code, const char *why,
                            int *consecutive);

#endif
