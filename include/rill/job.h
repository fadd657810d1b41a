/*
 * rill/job.h - running a job: execute, start, wait, cancel, status and
 * the job's error.
 *
 * Part of the rill API: programs include <rill.h>, which includes this
 * header; it also compiles on its own.
 */
#ifndef RILL_JOB_H
#define RILL_JOB_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Execution
 * ------------------------------------------------------------------------ */

typedef enum rill_job_state {
    RILL_JOB_RUNNING = 0,
    RILL_JOB_FINISHED = 1,
    RILL_JOB_FAILED = 2,
    RILL_JOB_CANCELED = 3,
    RILL_JOB_INVALID = RILL_EINVAL /* not a state: rill_job_status of NULL */
} rill_job_state;

/** Validate, start and wait: RILL_OK when every source ended and every
 *  record reached the sinks; the job's error otherwise (message in
 *  rill_env_errmsg). job_name is copied; NULL gives "rill job". */
RILL_API int rill_env_execute(rill_env *env, const char *job_name);
/** Validate and start the job on its own threads; *out gets the handle.
 *  On error *out is NULL and the message is in rill_env_errmsg. */
RILL_API int rill_job_start(rill_job **out, rill_env *env, const char *job_name);
/** Block until the job ends; its result: RILL_OK, RILL_ECANCELED, or the
 *  error that failed it. Safe to call from several threads. */
RILL_API int rill_job_wait(rill_job *job);
/** Ask the job to stop; returns at once (use rill_job_wait). Safe from any
 *  thread, but not from the job's own callbacks (return an error instead). */
RILL_API int rill_job_cancel(rill_job *job);

/** Current status (a rill_job_state value); RILL_JOB_INVALID, which is
 *  RILL_EINVAL, for a NULL job. */
RILL_API rill_job_state rill_job_status(const rill_job *job);
/** Why the job failed, or that it was canceled ("" otherwise); borrowed,
 *  valid until rill_job_free. */
RILL_API const char *rill_job_errmsg(const rill_job *job);
/** Name of the operator that failed the job, or NULL. Borrowed, valid until
 *  rill_job_free. */
RILL_API const char *rill_job_failed_operator(const rill_job *job);
/** Cancel if running, wait, and free. Accepts NULL. */
RILL_API void rill_job_free(rill_job *job);

#ifdef __cplusplus
}
#endif

#endif /* RILL_JOB_H */
