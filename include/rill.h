/*
 * rill.h - public API of rill, an embeddable stream processing library.
 *
 * A host program builds a dataflow graph on an environment (rill_env) with
 * fluent builder calls, then runs it on rill's in-process multithreaded
 * runtime. Records are opaque bytes; rill copies them and never looks inside.
 *
 * Conventions used throughout the rill headers:
 *  - Fallible calls return int: RILL_OK (0) or a negative RILL_E* code.
 *  - Builder calls take and return stream handles owned by the environment.
 *    The first mistake while building is kept on the environment; later
 *    builder calls then return NULL and do nothing, and the mistake is
 *    reported by rill_env_validate(), rill_env_execute() or rill_job_start().
 *  - Ownership words: "copied" (rill keeps its own copy), "borrowed, valid
 *    until X" (the pointer may be used until X only).
 *  - Threads: user callbacks of one operator subtask always run on the
 *    thread of that subtask, never concurrently with each other. Callbacks of
 *    different subtasks run concurrently, so user_data shared by a parallel
 *    operator must be safe to read from several threads (keep per-subtask
 *    mutable state behind rill_ctx_set_local()).
 *
 * rill.h is the one header a program includes. The declarations live in
 * module headers under rill/, which rill.h includes (each also compiles
 * on its own):
 *   rill/common.h      versions, errors, hooks, records, handles, shared
 *                      callback types
 *   rill/graph.h       environment, sources, operator settings,
 *                      transformations, partitioning, sinks
 *   rill/context.h     inside callbacks: emit and the context getters
 *   rill/eventtime.h   timestamps and watermarks
 *   rill/process.h     process functions, timers, side outputs, two inputs
 *   rill/state.h       state and rolling aggregations
 *   rill/harness.h     the test harness
 *   rill/checkpoint.h  checkpoints, savepoints, restarts, two-phase-commit
 *                      sinks, stop requests
 *   rill/job.h         execution
 * Windows, joins and metrics will each get a header of their own there
 * (rill/window.h, rill/join.h, rill/metrics.h).
 *
 * Every function has a manual page: man 3 rill_<name>; man 7 rill gives the
 * overview.
 */
#ifndef RILL_H
#define RILL_H

#include "rill/common.h"
#include "rill/graph.h"
#include "rill/context.h"
#include "rill/eventtime.h"
#include "rill/process.h"
#include "rill/state.h"
#include "rill/harness.h"
#include "rill/checkpoint.h"
#include "rill/job.h"

#endif /* RILL_H */
