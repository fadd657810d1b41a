/*
 * rill/graph.h - building the dataflow graph: the environment and its
 * settings, sources, operator settings, transformations, partitioning,
 * declared streams and sinks.
 *
 * Part of the rill API: programs include <rill.h>, which includes this
 * header; it also compiles on its own.
 */
#ifndef RILL_GRAPH_H
#define RILL_GRAPH_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Environment: settings and graph
 * ------------------------------------------------------------------------ */

/** A new, empty environment, or NULL when out of memory. */
RILL_API rill_env *rill_env_new(void);
/** Free an environment and every stream built on it. Accepts NULL. A job
 *  started from it may outlive it: the job keeps what it needs until
 *  rill_job_free. */
RILL_API void rill_env_free(rill_env *env);
/** One line describing the last error on env ("" when none);
 *  borrowed, valid until the next call on env. */
RILL_API const char *rill_env_errmsg(const rill_env *env);

/* Typed settings. Each returns RILL_EINVAL for an out-of-range value and
 * RILL_ESTATE while a job of this environment runs. */

/** Default parallelism of operators (default: the number of online CPUs,
 *  at most 128, the default max parallelism). */
RILL_API int rill_env_set_parallelism(rill_env *env, int parallelism);
RILL_API int rill_env_get_parallelism(const rill_env *env);
/** Number of key groups, 1..32768 (default 128). */
RILL_API int rill_env_set_max_parallelism(rill_env *env, int max_parallelism);
RILL_API int rill_env_get_max_parallelism(const rill_env *env);
/** Longest time (ms) a partly filled buffer waits before it is sent
 *  downstream: 0 sends every record at once, -1 only full buffers
 *  (default 100). */
RILL_API int rill_env_set_buffer_timeout(rill_env *env, int64_t ms);
/** Size in bytes of one network buffer, 4 KiB..64 MiB (default 32 KiB). */
RILL_API int rill_env_set_buffer_size(rill_env *env, size_t bytes);
/** Buffers queued per channel before the producer blocks (backpressure),
 *  1..1024 (default 4). */
RILL_API int rill_env_set_channel_capacity(rill_env *env, int buffers);
/** Directory for the working files of keyed state (copied; each job
 *  uses <dir>/job-<pid>-<n>, removed with the job). Default: none, a
 *  private directory under $TMPDIR (or /tmp) per job. What killed
 *  processes left is removed at the next start in the same place. */
RILL_API int rill_env_set_state_dir(rill_env *env, const char *dir);

/** Check the graph: reports the first building mistake, or a graph-level
 *  one (no sink, a cycle, an undefined declared stream, a uid used twice,
 *  forward between different parallelisms). RILL_OK, RILL_EINVAL (a
 *  mistake), RILL_ENOMEM, or RILL_ESTATE while a job of env runs. A builder
 *  call refused while a job runs (RILL_ESTATE) is not a kept mistake. */
RILL_API int rill_env_validate(rill_env *env);

/* ------------------------------------------------------------------------
 * Sources. name may be NULL (a default name is used); it is copied.
 * ------------------------------------------------------------------------ */

/** Source results. Any other return value fails the job. */
#define RILL_SOURCE_MORE 0 /* call again */
#define RILL_SOURCE_END 1  /* input of this subtask is exhausted */
#define RILL_SOURCE_IDLE 2 /* nothing now; call again after a short pause */

/** Produce the next records (0..n rill_emit calls) for this subtask. */
typedef int (*rill_source_fn)(rill_ctx *ctx, void *user_data);
/** Emit the record(s) for index i of a generator (usually one rill_emit). */
typedef int (*rill_generator_fn)(rill_ctx *ctx, uint64_t index, void *user_data);

/** A user source, bounded or not; parallel (default: env parallelism).
 *  fn is called in a loop on each subtask's thread. */
RILL_API rill_stream *rill_source(rill_env *env, const char *name,
                                  rill_source_fn fn, void *user_data);
/** Records from an array of count fixed-size records of rec_size bytes
 *  (copied). Parallelism 1 by default; at parallelism p subtask i emits
 *  records i, i+p, i+2p, ... Timestamps are RILL_TS_MIN. */
RILL_API rill_stream *rill_from_array(rill_env *env, const char *name,
                                      const void *records, size_t rec_size,
                                      size_t count);
/** Records of any size with timestamps (copied). As rill_from_array for
 *  parallelism. */
RILL_API rill_stream *rill_from_records(rill_env *env, const char *name,
                                        const rill_record *records,
                                        size_t count);
/** count records made by fn(index) for index 0..count-1; count may be
 *  RILL_UNBOUNDED. At parallelism p, subtask i covers the i-th of p
 *  contiguous index ranges. Default parallelism: env parallelism. */
#define RILL_UNBOUNDED UINT64_MAX
RILL_API rill_stream *rill_generator(rill_env *env, const char *name,
                                     uint64_t count, rill_generator_fn fn,
                                     void *user_data);
/** The lines of a text file ("-" for standard input), without their line
 *  ending ("\n" or "\r\n"), one record each. At parallelism p the file is
 *  split into p byte ranges; a line belongs to the range where it starts.
 *  Standard input is read by subtask 0 only. A pipe, FIFO or terminal is
 *  read by subtask 0 too, each line passed on as it comes. Parallelism 1
 *  by default. */
RILL_API rill_stream *rill_file_source(rill_env *env, const char *name,
                                       const char *path);

/* ------------------------------------------------------------------------
 * Operator settings. Each applies to the operator that produces s and
 * returns s (NULL after a building mistake).
 * ------------------------------------------------------------------------ */

/** Lifecycle hooks of one operator subtask: open runs on the subtask's
 *  thread before its first record, close after its last (also when the job
 *  fails or is canceled, if open succeeded). close's return value is
 *  reported only when the job otherwise succeeded. */
typedef int (*rill_open_fn)(rill_ctx *ctx, void *user_data);
typedef int (*rill_close_fn)(rill_ctx *ctx, void *user_data);

/** Stable unique id of the operator (copied; default: its name, made
 *  unique by "#k" when several operators share a name). */
RILL_API rill_stream *rill_stream_set_uid(rill_stream *s, const char *uid);
/** Parallelism of the operator, 1..32768; validation also requires it to
 *  be at most the max parallelism. */
RILL_API rill_stream *rill_stream_set_parallelism(rill_stream *s, int parallelism);
/** Do not chain the operator with its input or its output. */
RILL_API rill_stream *rill_stream_disable_chaining(rill_stream *s);
/** Lifecycle hooks of the operator; either may be NULL. They get the
 *  operator's user_data. */
RILL_API rill_stream *rill_stream_set_lifecycle(rill_stream *s, rill_open_fn open,
                                                rill_close_fn close);

/* ------------------------------------------------------------------------
 * Transformations
 * ------------------------------------------------------------------------ */

/** Filter: 1 keeps the record, 0 drops it, anything else fails the job. */
typedef int (*rill_filter_fn)(rill_ctx *ctx, const void *rec, size_t len,
                              void *user_data);

/** One output per input: fn must call rill_emit exactly once. */
RILL_API rill_stream *rill_map(rill_stream *s, const char *name,
                               rill_process_fn fn, void *user_data);
/** Keep the records for which fn returns 1. */
RILL_API rill_stream *rill_filter(rill_stream *s, const char *name,
                                  rill_filter_fn fn, void *user_data);
/** Zero or more outputs per input. */
RILL_API rill_stream *rill_flat_map(rill_stream *s, const char *name,
                                    rill_process_fn fn, void *user_data);
/** The union of n streams of the same environment (n >= 1). The array is
 *  read during the call only. */
RILL_API rill_stream *rill_union(rill_stream *const *streams, size_t n);

/* ------------------------------------------------------------------------
 * Partitioning: the returned stream sends s's records to the next operator
 * in that way. Without one, records go forward between operators of equal
 * parallelism and are rebalanced otherwise.
 * ------------------------------------------------------------------------ */

/**
 * Key extraction. Write the key of rec into key (capacity *key_len bytes)
 * and set *key_len to its length. When the key is longer than the capacity,
 * set *key_len to the length needed and return 0: rill calls again with a
 * buffer that large (up to RILL_KEY_MAX). Must be a pure function of rec.
 */
typedef int (*rill_key_fn)(const void *rec, size_t len, void *key,
                           size_t *key_len, void *user_data);
/** Custom partitioner: return the target subtask in 0..num_partitions-1. */
typedef int (*rill_partition_fn)(const void *rec, size_t len,
                                 int num_partitions, void *user_data);

/** Hash partitioning by the key fn extracts: key group = xxh3(key) mod max
 *  parallelism, subtask = key group * parallelism / max parallelism. fn
 *  runs on the threads of the operator that produces s; when it fails, the
 *  job's failed operator is that producing operator. */
RILL_API rill_stream *rill_key_by(rill_stream *s, rill_key_fn fn, void *user_data);
/** key_by on the bytes [offset, offset+len) of each record (len 1..RILL_KEY_MAX). */
RILL_API rill_stream *rill_key_by_bytes(rill_stream *s, size_t offset, size_t len);
/** Subtask i to subtask i (parallelisms must be equal). */
RILL_API rill_stream *rill_forward(rill_stream *s);
/** Round-robin over all downstream subtasks. */
RILL_API rill_stream *rill_rebalance(rill_stream *s);
/** Round-robin over a local subset of downstream subtasks. */
RILL_API rill_stream *rill_rescale(rill_stream *s);
/** Uniformly random downstream subtask. */
RILL_API rill_stream *rill_shuffle(rill_stream *s);
/** Every record to every downstream subtask. */
RILL_API rill_stream *rill_broadcast(rill_stream *s);
/** Every record to downstream subtask 0. */
RILL_API rill_stream *rill_global(rill_stream *s);
/** Downstream subtask chosen by fn. */
RILL_API rill_stream *rill_partition_custom(rill_stream *s, rill_partition_fn fn,
                                            void *user_data);

/* ------------------------------------------------------------------------
 * Declared streams: a stream used before it is defined (for graphs built
 * from a description in any order). A declared stream left undefined, or
 * defined in terms of itself (a cycle), is a validation error.
 * ------------------------------------------------------------------------ */

RILL_API rill_stream *rill_stream_declare(rill_env *env, const char *name);
/** Define decl as s. RILL_EINVAL if decl is not a declared stream, is
 *  already defined, or s belongs to another environment. */
RILL_API int rill_stream_define(rill_stream *decl, rill_stream *s);

/* ------------------------------------------------------------------------
 * Sinks. Each returns the sink's handle, for the operator settings above;
 * it cannot be used as an input.
 * ------------------------------------------------------------------------ */

RILL_API rill_stream *rill_sink(rill_stream *s, const char *name,
                                rill_process_fn fn, void *user_data);

typedef enum rill_print_target {
    RILL_STDOUT = 1,
    RILL_STDERR = 2
} rill_print_target;
/** Print each record as one line on RILL_STDOUT or RILL_STDERR, formatted
 *  by fmt (NULL prints the bytes as they are). At parallelism > 1, lines
 *  start with "k> ", k the subtask number from 1. */
RILL_API rill_stream *rill_sink_print(rill_stream *s, const char *name,
                                      rill_print_target fd, rill_format_fn fmt,
                                      void *user_data);
/** Write each record as one line to path (created or truncated; fmt as for
 *  rill_sink_print). At parallelism p > 1, path is a directory and subtask
 *  i writes the file path/N, N = i + 1. */
RILL_API rill_stream *rill_sink_file(rill_stream *s, const char *name,
                                     const char *path, rill_format_fn fmt,
                                     void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* RILL_GRAPH_H */
