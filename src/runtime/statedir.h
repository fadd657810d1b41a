/* statedir.h - the working state directory of a job or test harness,
 * where its operators keep keyed state (see statedir.c). */
#ifndef RILL_RUNTIME_STATEDIR_H
#define RILL_RUNTIME_STATEDIR_H

#include "runtime/task.h"

/* Remove the working state directories that jobs and harnesses of
 * processes that ended left where env's would go. */
void rill__state_dir_sweep(const rill_env *env);
/* job->state_dir, made and held on the first call (any thread); NULL
 * with a message in err (RILL__ERRMSG_MAX bytes) and *rc set when it
 * cannot be made. */
const char *rill__state_dir_open(rill__job *job, int *rc, char *err);
/* Remove job's working state directory, if it was made. */
void rill__state_dir_remove(rill__job *job);

#endif
