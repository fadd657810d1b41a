/*
 * rill/checkpoint.h - fault tolerance: checkpoints, restoring, savepoints,
 * restart strategies, checkpoint hooks, two-phase-commit sinks,
 * checkpoint statistics and stop requests.
 *
 * Part of the rill API: programs include <rill.h>, which includes this
 * header; it also compiles on its own.
 */
#ifndef RILL_CHECKPOINT_H
#define RILL_CHECKPOINT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Checkpoints: consistent snapshots (Chandy-Lamport, barriers in the
 * channels) of every operator's state, written under a directory.
 * ------------------------------------------------------------------------ */

typedef enum rill_checkpoint_mode {
    RILL_EXACTLY_ONCE = 0, /* barriers are aligned */
    RILL_AT_LEAST_ONCE = 1 /* no alignment */
} rill_checkpoint_mode;

/** Take a checkpoint every interval_ms (1..86400000) into dir/chk-<n>
 *  (dir copied; created when missing), in mode RILL_EXACTLY_ONCE or
 *  RILL_AT_LEAST_ONCE. A checkpoint is complete once its dir/chk-<n>/
 *  _metadata file exists and every file it lists is there. What a job
 *  killed earlier left in dir is removed when the next one starts. */
RILL_API int rill_env_enable_checkpointing(rill_env *env, int64_t interval_ms,
                                           const char *dir, rill_checkpoint_mode mode);
/** A checkpoint not complete after ms (default 600000) is discarded. */
RILL_API int rill_env_set_checkpoint_timeout(rill_env *env, int64_t ms);
/** Least time from the end of one checkpoint to the start of the next
 *  (default 0). */
RILL_API int rill_env_set_checkpoint_min_pause(rill_env *env, int64_t ms);
/** Completed checkpoints kept (1..1000, default 1); older ones are
 *  deleted. */
RILL_API int rill_env_set_checkpoints_retained(rill_env *env, int n);
/** Keep the job's completed checkpoints when it is canceled (non-zero,
 *  the default) or delete them (0). Checkpoints of a job that finished or
 *  failed are always kept. */
RILL_API int rill_env_set_checkpoint_retain_on_cancel(rill_env *env, int retain);
/* Flags of rill_env_set_restore. */
#define RILL_RESTORE_ALLOW_NON_RESTORED 1 /* skip state of uids the job lacks */
#define RILL_RESTORE_IF_EXISTS 2          /* no checkpoint there: start empty */
/** Start the jobs of env from a snapshot (path copied; NULL: start
 *  empty): a checkpoint directory (one with a _metadata file) or a
 *  directory of checkpoints, meaning its latest complete one. State maps
 *  to operators by uid and state name; keyed state is redistributed by
 *  key group when parallelisms differ. flags: 0 or an OR of
 *  RILL_RESTORE_*. State of an operator uid the job does not have fails
 *  the start (RILL_EINVAL) unless RILL_RESTORE_ALLOW_NON_RESTORED is set.
 *  A path that does not exist or holds no checkpoint fails the start with
 *  RILL_ENOTFOUND, unless RILL_RESTORE_IF_EXISTS is set: then the job
 *  starts empty. A corrupt snapshot fails the start with RILL_ECORRUPT
 *  naming the file, one that cannot be read with RILL_EIO. */
RILL_API int rill_env_set_restore(rill_env *env, const char *path, int flags);
/** Take a savepoint of the running job into dir (created when missing;
 *  never deleted by rill): a checkpoint taken now, on demand, with its
 *  files and _metadata directly in dir, usable with rill_env_set_restore.
 *  Blocks until it is complete. With stop non-zero the job is then
 *  canceled (rill_job_wait returns RILL_ECANCELED). RILL_EINVAL for a
 *  NULL or empty dir, RILL_ESTATE when another savepoint is being taken
 *  or the job is ending, RILL_EIO when dir cannot be created or a file
 *  cannot be written, RILL_ETIMEDOUT after the checkpoint timeout,
 *  RILL_ECANCELED when the job ends first. */
RILL_API int rill_job_savepoint(rill_job *job, const char *dir, int stop);
/** Directory under which a stop request with RILL_STOP_SAVEPOINT
 *  (rill_job_request_stop) writes its savepoint, as dir/savepoint-<n>,
 *  n = 1, 2, ... in the order they are taken (Flink's
 *  state.savepoints.dir; dir copied, created when missing; NULL: none,
 *  the default). RILL_EINVAL for an empty dir. */
RILL_API int rill_env_set_savepoint_dir(rill_env *env, const char *dir);
typedef enum rill_restart_kind {
    RILL_RESTART_NONE = 0,        /* a failure ends the job (default) */
    RILL_RESTART_FIXED_DELAY = 1, /* restart after delay_ms each time */
    RILL_RESTART_BACKOFF = 2      /* delay_ms, doubling up to max_delay_ms */
} rill_restart_kind;

/** What happens when a job fails: with a restart strategy, rill starts the
 *  job again, up to `attempts` times (1..1000000), from its latest
 *  completed checkpoint (from the start, or the rill_env_set_restore
 *  snapshot, when there is none). Restarted sources replay from their
 *  checkpointed positions, so state is exactly once; records a sink got
 *  after that checkpoint reach it again. delay_ms >= 0; max_delay_ms >=
 *  delay_ms (BACKOFF only). A job that is canceled is not restarted. */
RILL_API int rill_env_set_restart_strategy(rill_env *env, rill_restart_kind kind,
                                           int attempts, int64_t delay_ms,
                                           int64_t max_delay_ms);
/** Number of restarts of the job so far. */
RILL_API int rill_job_restarts(const rill_job *job);
/** A checkpoint callback: on_snapshot runs on the subtask's thread when the
 *  subtask takes checkpoint checkpoint_id, before its state is written
 *  (store what must survive a failure, e.g. a user source's position, in
 *  operator list or keyed state); on_complete runs on the subtask's
 *  thread after checkpoint checkpoint_id completed (its _metadata exists),
 *  at the latest when the subtask next handles an event. A non-zero
 *  return fails the job with RILL_EUSER. */
typedef int (*rill_checkpoint_fn)(rill_ctx *ctx, int64_t checkpoint_id,
                                  void *user_data);
/** Checkpoint callbacks of the operator producing s (either may be NULL;
 *  they get the operator's user_data). */
RILL_API rill_stream *rill_stream_set_checkpoint_hooks(rill_stream *s,
                                                       rill_checkpoint_fn on_snapshot,
                                                       rill_checkpoint_fn on_complete);
/**
 * A two-phase-commit sink: records go into a transaction; at each
 * checkpoint the open transaction is pre-committed (made durable) and a
 * new one begins; once the checkpoint completes, its transactions are
 * committed (made visible). After a failure the job restarts from the
 * checkpoint, and the transactions that checkpoint pre-committed are
 * committed again: commit must be idempotent. A transaction open at a
 * failure is aborted (when the subtask can still do it). At the end of
 * the input everything is committed. Each function runs on the sink
 * subtask's thread and returns 0 on success (anything else fails the job
 * with RILL_EUSER). A transaction is named by bytes that outlive the
 * process (such as a file name): begin writes them into id (capacity
 * *id_len) and sets *id_len, or, when the capacity is too small, sets
 * *id_len to the size needed and returns 0 to be called again. id
 * arguments are borrowed, valid during the call.
 */
typedef struct rill_twophase_fns {
    int (*begin)(rill_ctx *ctx, void *id, size_t *id_len, void *user_data);
    int (*write)(rill_ctx *ctx, const void *id, size_t id_len, const void *rec,
                 size_t len, void *user_data);
    int (*precommit)(rill_ctx *ctx, const void *id, size_t id_len,
                     void *user_data);
    int (*commit)(rill_ctx *ctx, const void *id, size_t id_len,
                  void *user_data);
    int (*abort)(rill_ctx *ctx, const void *id, size_t id_len, void *user_data);
} rill_twophase_fns;

/** A two-phase-commit sink (fns copied; all five required). */
RILL_API rill_stream *rill_sink_twophase(rill_stream *s, const char *name,
                                         const rill_twophase_fns *fns,
                                         void *user_data);
/** An exactly-once file sink on the two-phase-commit sink: each subtask
 *  writes lines (fmt as for rill_sink_print) to a hidden pending file in
 *  dir (created), which a commit renames to part-<k>-<stamp>-<n> (k the
 *  subtask from 1, stamp the start time of the run in ns); a file
 *  appears only once the checkpoint that covers its lines completed, so
 *  after failures and restores every record is in exactly one visible
 *  file. */
RILL_API rill_stream *rill_sink_file_exactly_once(rill_stream *s,
                                                  const char *name,
                                                  const char *dir,
                                                  rill_format_fn fmt,
                                                  void *user_data);
/** Id of the job's last completed checkpoint (0 when none). */
RILL_API int64_t rill_job_last_checkpoint(const rill_job *job);
/** Consecutive checkpoint failures tolerated (0..INT_MAX, default 0, as
 *  Flink's execution.checkpointing.tolerable-failed-checkpoints): one more
 *  fails the job (which then restarts by its strategy) with a message
 *  naming the last cause. Failures counted: a checkpoint that timed out,
 *  that a subtask could not write, or whose _metadata could not be
 *  written. A checkpoint given up because the job is ending is not a
 *  failure; savepoints are not counted. */
RILL_API int rill_env_set_tolerable_checkpoint_failures(rill_env *env, int n);
/** Checkpoint statistics of a job, over all its restarts (savepoints are
 *  not counted). Fields may be appended in later versions: pass
 *  sizeof(rill_checkpoint_stats) as size. */
typedef struct rill_checkpoint_stats {
    int64_t completed;         /* checkpoints completed */
    int64_t failed;            /* failed, declined or timed out */
    int64_t in_progress;       /* id being taken now, 0 when none */
    int64_t last_completed_id; /* 0 when none */
    int64_t last_duration_ms;  /* of the last completed: trigger to _metadata */
    uint64_t last_size_bytes;  /* of the last completed: its files */
    int64_t last_failed_id;    /* 0 when none */
    int last_failure_code;     /* RILL_E* of the last failure, RILL_OK when none */
    int consecutive_failures;  /* failures since the last completed one */
    char last_failure[256];    /* cause of the last failure, "" when none */
} rill_checkpoint_stats;
/** Fill *out (size bytes of it) with the job's checkpoint statistics; a
 *  job without checkpointing reports zeros. RILL_EINVAL for a NULL job or
 *  out, or size 0. Safe from any thread. */
RILL_API int rill_job_checkpoint_stats(const rill_job *job, rill_checkpoint_stats *out,
                                       size_t size);

/* ------------------------------------------------------------------------
 * Stop requests: stop a job, after a savepoint when asked
 * ------------------------------------------------------------------------ */

/** Flag of rill_job_request_stop: take a savepoint before stopping. */
#define RILL_STOP_SAVEPOINT 1

/**
 * Ask the job to stop; returns at once, and a thread of the job does the
 * work. With RILL_STOP_SAVEPOINT in flags, it first takes a savepoint
 * into the directory of rill_env_set_savepoint_dir; the job then ends
 * RILL_JOB_CANCELED, rill_job_wait returns RILL_ECANCELED and
 * rill_job_errmsg and rill_job_stop_savepoint name the savepoint. When
 * the savepoint cannot be taken (no directory set, a write failed...) the
 * job stops all the same and rill_job_wait returns why. Without the flag:
 * as rill_job_cancel, also while a savepoint of an earlier request is
 * being taken. Async-signal-safe: a signal handler may call it, and so
 * may a callback of the job. RILL_OK when the request is recorded (a
 * second one does nothing more, but for a cancel), RILL_ESTATE when the
 * job has ended, RILL_EINVAL for a NULL job or an unknown flag.
 */
RILL_API int rill_job_request_stop(rill_job *job, int flags);
/** rill_job_request_stop for the job of env that runs, or, when none
 *  does, the next one started from env (which then stops at once).
 *  Async-signal-safe. RILL_OK, or RILL_EINVAL for a NULL env or an
 *  unknown flag. */
RILL_API int rill_env_request_stop(rill_env *env, int flags);
/** Directory of the savepoint a stop request took, or NULL; borrowed,
 *  valid until rill_job_free. */
RILL_API const char *rill_job_stop_savepoint(const rill_job *job);

#ifdef __cplusplus
}
#endif

#endif /* RILL_CHECKPOINT_H */
