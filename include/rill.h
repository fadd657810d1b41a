/*
 * rill.h - public API of rill, an embeddable stream processing library.
 *
 * A host program builds a dataflow graph on an environment (rill_env) with
 * fluent builder calls, then runs it on rill's in-process multithreaded
 * runtime. Records are opaque bytes; rill copies them and never looks inside.
 *
 * Conventions used throughout this header:
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
 * Every function has a manual page: man 3 rill_<name>; man 7 rill gives the
 * overview.
 */
#ifndef RILL_H
#define RILL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define RILL_API __declspec(dllexport)
#elif defined(__GNUC__) && __GNUC__ >= 4
#define RILL_API __attribute__((visibility("default")))
#else
#define RILL_API
#endif

#if defined(__GNUC__)
#define RILL_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define RILL_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------------
 * Opaque handles
 * ------------------------------------------------------------------------ */

/** A job definition: settings and the dataflow graph. */
typedef struct rill_env rill_env;
/** A stream of records in the graph (borrowed from its environment). */
typedef struct rill_stream rill_stream;
/** A running (or finished) execution of an environment's graph. */
typedef struct rill_job rill_job;
/** Per-call context handed to user callbacks (borrowed, valid during the call). */
typedef struct rill_ctx rill_ctx;
/** A state of an operator subtask, used from its callbacks. */
typedef struct rill_state rill_state;
/** A test harness: runs operators on the calling thread. */
typedef struct rill_harness rill_harness;

/* ------------------------------------------------------------------------
 * Versions
 * ------------------------------------------------------------------------ */

#define RILL_VERSION_MAJOR 0
#define RILL_VERSION_MINOR 1
#define RILL_VERSION_PATCH 0
#define RILL_VERSION_HEX \
    ((RILL_VERSION_MAJOR << 16) | (RILL_VERSION_MINOR << 8) | RILL_VERSION_PATCH)

/** "MAJOR.MINOR.PATCH" of the linked library (static storage). */
RILL_API const char *rill_version_string(void);
/** RILL_VERSION_HEX of the linked library. */
RILL_API unsigned rill_version(void);

/* ------------------------------------------------------------------------
 * Errors. Codes only ever grow; values are never reused.
 * ------------------------------------------------------------------------ */

#define RILL_ERRNO_MAP(XX)                                                   \
    XX(OK, 0, "success")                                                     \
    XX(ENOMEM, -1, "out of memory")                                          \
    XX(EINVAL, -2, "invalid argument")                                       \
    XX(ESTATE, -3, "operation not allowed in the current state")            \
    XX(EIO, -4, "input/output error")                                        \
    XX(ECORRUPT, -5, "corrupt or foreign data")                              \
    XX(ENOTFOUND, -6, "not found")                                           \
    XX(ECLOSED, -7, "closed")                                                \
    XX(ETIMEDOUT, -8, "timed out")                                           \
    XX(ECANCELED, -9, "canceled")                                            \
    XX(EUSER, -10, "a user callback failed")

typedef enum rill_errno {
#define RILL_ERRNO_ENUM_(name, value, msg) RILL_##name = (value),
    RILL_ERRNO_MAP(RILL_ERRNO_ENUM_)
#undef RILL_ERRNO_ENUM_
    RILL_ERRNO_MIN_ = -10
} rill_errno;

/** Message for an error code; never NULL ("unknown error" for other values). */
RILL_API const char *rill_strerror(int code);
/** Symbolic name of an error code ("RILL_EINVAL"); never NULL. */
RILL_API const char *rill_err_name(int code);

/* ------------------------------------------------------------------------
 * Allocator and logger hooks (process-wide)
 * ------------------------------------------------------------------------ */

typedef void *(*rill_malloc_fn)(size_t size);
typedef void *(*rill_realloc_fn)(void *ptr, size_t size);
typedef void *(*rill_calloc_fn)(size_t count, size_t size);
typedef void (*rill_free_fn)(void *ptr);

/**
 * Replace the allocator used for every allocation rill makes. Call it before
 * any other rill call, or when no rill object is alive. All four functions
 * are required and must be thread-safe. RILL_EINVAL if one is NULL.
 */
RILL_API int rill_replace_allocator(rill_malloc_fn malloc_fn,
                                    rill_realloc_fn realloc_fn,
                                    rill_calloc_fn calloc_fn,
                                    rill_free_fn free_fn);

typedef enum rill_log_level {
    RILL_LOG_ERROR = 0,
    RILL_LOG_WARN = 1,
    RILL_LOG_INFO = 2,
    RILL_LOG_DEBUG = 3
} rill_log_level;

/**
 * Called for each log message at or below the level set. May run on any
 * rill thread, several at once; msg is borrowed, valid during the call. It
 * must not call back into rill.
 */
typedef void (*rill_log_fn)(int level, const char *msg, void *user_data);

/**
 * Install the process-wide logger (NULL removes it). rill never prints on
 * its own; without a logger, messages are dropped. RILL_EINVAL for an
 * unknown level.
 */
RILL_API int rill_set_logger(rill_log_fn fn, rill_log_level max_level, void *user_data);

/* ------------------------------------------------------------------------
 * Records and time
 * ------------------------------------------------------------------------ */

/** Event time in milliseconds. RILL_TS_MIN also means "no timestamp". */
#define RILL_TS_MIN INT64_MIN
#define RILL_TS_MAX INT64_MAX

/** A record: bytes plus an event timestamp. Record bytes handed to a
 *  callback carry no alignment promise: memcpy them into a local struct
 *  before reading typed fields. */
typedef struct rill_record {
    const void *data;
    size_t len;
    int64_t ts;
} rill_record;

/** Largest record rill carries, in bytes. */
#define RILL_RECORD_MAX ((size_t)1 << 30)
/** Largest key, in bytes. */
#define RILL_KEY_MAX ((size_t)65535)

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
 * Callbacks. Unless said otherwise each runs on its subtask's thread,
 * receives a ctx valid during the call and a record borrowed for the call
 * only, and returns 0 on success; any other value fails the job with
 * RILL_EUSER and a message naming the operator.
 * ------------------------------------------------------------------------ */

/** Source results. Any other return value fails the job. */
#define RILL_SOURCE_MORE 0 /* call again */
#define RILL_SOURCE_END 1  /* input of this subtask is exhausted */
#define RILL_SOURCE_IDLE 2 /* nothing now; call again after a short pause */

/** Produce the next records (0..n rill_emit calls) for this subtask. */
typedef int (*rill_source_fn)(rill_ctx *ctx, void *user_data);
/** Emit the record(s) for index i of a generator (usually one rill_emit). */
typedef int (*rill_generator_fn)(rill_ctx *ctx, uint64_t index, void *user_data);
/** Process one record: map (exactly one rill_emit), flat_map (any number)
 *  and sinks (no emit). */
typedef int (*rill_process_fn)(rill_ctx *ctx, const void *rec, size_t len,
                               void *user_data);
/** Filter: 1 keeps the record, 0 drops it, anything else fails the job. */
typedef int (*rill_filter_fn)(rill_ctx *ctx, const void *rec, size_t len,
                              void *user_data);
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
/**
 * Format a record as one line (no newline) into buf of cap bytes, like
 * snprintf: return the length the line needs; if it is >= cap, rill calls
 * again with a larger buffer. A negative return fails the job.
 */
typedef int (*rill_format_fn)(const void *rec, size_t len, char *buf,
                              size_t cap, void *user_data);
/** Lifecycle hooks of one operator subtask: open runs on the subtask's
 *  thread before its first record, close after its last (also when the job
 *  fails or is canceled, if open succeeded). close's return value is
 *  reported only when the job otherwise succeeded. */
typedef int (*rill_open_fn)(rill_ctx *ctx, void *user_data);
typedef int (*rill_close_fn)(rill_ctx *ctx, void *user_data);

/* ------------------------------------------------------------------------
 * Sources. name may be NULL (a default name is used); it is copied.
 * ------------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------------
 * Inside callbacks
 * ------------------------------------------------------------------------ */

/** Send a record (copied) downstream with the current record's timestamp.
 *  May block while downstream is full (backpressure). Returns RILL_OK;
 *  RILL_EINVAL for a NULL ctx, a NULL rec with len > 0, or a call from a
 *  sink (sinks have no output); RILL_ECANCELED when the job is stopping,
 *  which includes a failure downstream: return it from the callback. */
RILL_API int rill_emit(rill_ctx *ctx, const void *rec, size_t len);
/** rill_emit with an explicit timestamp. */
RILL_API int rill_emit_ts(rill_ctx *ctx, const void *rec, size_t len, int64_t ts);
/** Timestamp of the record being processed (RILL_TS_MIN if none). */
RILL_API int64_t rill_ctx_timestamp(const rill_ctx *ctx);
/** Index of this subtask, 0..parallelism-1. */
RILL_API int rill_ctx_subtask(const rill_ctx *ctx);
/** Parallelism of this operator. */
RILL_API int rill_ctx_parallelism(const rill_ctx *ctx);
/** Name of this operator (borrowed, valid while the job exists). */
RILL_API const char *rill_ctx_operator_name(const rill_ctx *ctx);
/** Per-subtask pointer for user state, NULL until set. */
RILL_API void rill_ctx_set_local(rill_ctx *ctx, void *local);
RILL_API void *rill_ctx_local(const rill_ctx *ctx);
/** Message to report if the callback then returns non-zero (copied). */
RILL_API void rill_ctx_set_error(rill_ctx *ctx, const char *fmt, ...) RILL_PRINTF(2, 3);

/*
 * rill_emit and rill_emit_ts are also defined below as inline functions: a
 * record for a chained successor goes straight to it, without a call into
 * the library. They read and write the head of the context, struct
 * rill__ctx_head, which belongs to the ABI of librill.so.0 like a function
 * signature does. It and the other rill__ names here are not API: programs
 * must not use them, nor call rill_emit_done, which the inline functions
 * call when the successor failed. Define RILL_NO_INLINE before including
 * rill.h to call the library functions instead (same behaviour, a little
 * slower); taking the address of rill_emit gives the library function
 * either way.
 */
typedef int (*rill__entry_fn)(rill_ctx *ctx, const void *rec, size_t len, void *user_data);
struct rill__ctx_head {
    rill_ctx *next;         /* the one chained successor, or NULL */
    rill__entry_fn entry;   /* takes a record at next */
    void *entry_data;       /* its last argument */
    uint64_t one_mask;      /* all ones when next emits once per record */
    int64_t ts;             /* timestamp of the record being processed */
    uint64_t emits;         /* records emitted so far */
};
/* Every RILL__EMIT_SPAN-th emit takes the library call (it looks whether the
 * job is stopping). */
#define RILL__EMIT_SPAN 1024u
/** For the inline rill_emit only: ctx's chained successor returned rc, or
 *  (rc 0) emitted other than once as a map, having emitted `before` records
 *  until the call. Reports the failure; returns what rill_emit returns. */
RILL_API int rill_emit_done(rill_ctx *ctx, int rc, uint64_t before);

#if !defined(RILL_NO_INLINE)
#if defined(__GNUC__)
#define RILL__LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define RILL__LIKELY(x) (x)
#endif

static inline int rill__emit_at(rill_ctx *ctx, const void *rec, size_t len, int64_t ts)
{
    struct rill__ctx_head *h = (struct rill__ctx_head *)(void *)ctx;
    rill_ctx *nx = h->next;
    uint64_t e = h->emits + 1;
    if (RILL__LIKELY(nx != NULL && (rec != NULL || len == 0) &&
                     (e & (RILL__EMIT_SPAN - 1)) != 0)) {
        struct rill__ctx_head *nh = (struct rill__ctx_head *)(void *)nx;
        uint64_t before = nh->emits;
        int rc;
        h->emits = e;
        nh->ts = ts;
        rc = h->entry(nx, rec, len, h->entry_data);
        /* h->next again rather than nh: one register less to keep across
         * the call (the successor does not change). */
        nh = (struct rill__ctx_head *)(void *)h->next;
        if (RILL__LIKELY(rc == 0 && ((nh->emits - before - 1) & h->one_mask) == 0))
            return 0;
        return rill_emit_done(ctx, rc, before);
    }
    return (rill_emit_ts)(ctx, rec, len, ts);
}

static inline int rill__emit_inline(rill_ctx *ctx, const void *rec, size_t len)
{
    if (ctx == NULL)
        return (rill_emit)(ctx, rec, len);
    return rill__emit_at(ctx, rec, len, ((struct rill__ctx_head *)(void *)ctx)->ts);
}

static inline int rill__emit_ts_inline(rill_ctx *ctx, const void *rec, size_t len, int64_t ts)
{
    if (ctx == NULL)
        return (rill_emit_ts)(ctx, rec, len, ts);
    return rill__emit_at(ctx, rec, len, ts);
}

#define rill_emit(ctx, rec, len) rill__emit_inline(ctx, rec, len)
#define rill_emit_ts(ctx, rec, len, ts) rill__emit_ts_inline(ctx, rec, len, ts)
#endif

/* ------------------------------------------------------------------------
 * Event time and watermarks
 *
 * A watermark w on a stream says that no record with timestamp <= w is
 * expected any more. An operator's watermark is the minimum over its input
 * channels (idle channels left out) and never goes backwards; when a
 * source ends, RILL_TS_MAX follows its last record.
 * ------------------------------------------------------------------------ */

/** Timestamp of a record, in ms. Must be a pure function of the record; ts
 *  is the timestamp the record carries (RILL_TS_MIN if none). */
typedef int64_t (*rill_timestamp_fn)(const void *rec, size_t len, int64_t ts,
                                     void *user_data);
/** Punctuated watermarks: the watermark to emit after this record (whose
 *  timestamp is ts), or RILL_TS_MIN for none. */
typedef int64_t (*rill_punctuated_fn)(const void *rec, size_t len, int64_t ts,
                                      void *user_data);

/** Assign timestamps with fn (NULL keeps the records' own timestamps) and
 *  generate periodic watermarks that allow max_out_of_orderness ms of
 *  disorder: every watermark interval the watermark is the largest
 *  timestamp seen minus max_out_of_orderness minus 1. 0 gives Flink's
 *  monotonous timestamps. Watermarks from upstream are dropped (except the
 *  final RILL_TS_MAX). RILL_EINVAL (kept) if max_out_of_orderness < 0. */
RILL_API rill_stream *rill_assign_timestamps(rill_stream *s, const char *name,
                                             rill_timestamp_fn fn,
                                             int64_t max_out_of_orderness,
                                             void *user_data);
/** Assign timestamps with ts_fn (NULL keeps them) and emit the watermark
 *  wm_fn returns after each record, when it is larger than the last. */
RILL_API rill_stream *rill_assign_punctuated(rill_stream *s, const char *name,
                                             rill_timestamp_fn ts_fn,
                                             rill_punctuated_fn wm_fn,
                                             void *user_data);
/** Source idleness: when the operator (a source or a timestamp assigner)
 *  emits no record for more than ms of processing time (watermarks do not
 *  count), its output is marked idle and left out of downstream watermark
 *  minimums until it emits a record again. ms > 0; RILL_EINVAL (kept) for
 *  other operators. */
RILL_API rill_stream *rill_stream_set_idle_timeout(rill_stream *s, int64_t ms);
/** Interval (ms, 1..3600000) of periodic watermarks (default 200). */
RILL_API int rill_env_set_watermark_interval(rill_env *env, int64_t ms);

/** From a source callback: emit watermark wm on every output. Ignored when
 *  not larger than the last one. RILL_EINVAL outside a source. */
RILL_API int rill_emit_watermark(rill_ctx *ctx, int64_t wm);
/** Current watermark of the operator (RILL_TS_MIN before the first). */
RILL_API int64_t rill_ctx_watermark(const rill_ctx *ctx);
/** Current processing time in ms since the epoch (the harness's clock
 *  inside a test harness). */
RILL_API int64_t rill_ctx_processing_time(const rill_ctx *ctx);

/* ------------------------------------------------------------------------
 * Process functions, timers and side outputs
 * ------------------------------------------------------------------------ */

typedef enum rill_time_domain {
    RILL_EVENT_TIME = 0,
    RILL_PROCESSING_TIME = 1
} rill_time_domain;

/** A timer fired: ts is its time, domain RILL_EVENT_TIME or
 *  RILL_PROCESSING_TIME. The current key is the timer's key, so keyed
 *  state is that key's. Emitted records carry ts for event-time timers
 *  and RILL_TS_MIN for processing-time timers. Never runs at the same
 *  time as the operator's process function. */
typedef int (*rill_timer_fn)(rill_ctx *ctx, int64_t ts, int domain,
                             void *user_data);

/** A process function: fn sees each record and may emit any number of
 *  records, use keyed state and timers (when s is keyed by rill_key_by or
 *  rill_key_by_bytes) and emit to side outputs. on_timer may be NULL. */
RILL_API rill_stream *rill_process(rill_stream *s, const char *name,
                                   rill_process_fn fn, rill_timer_fn on_timer,
                                   void *user_data);
/** Register a timer for the current key at ts in domain. One timer per
 *  key and time: registering it again does nothing. A timer at or before
 *  the current watermark fires at the next watermark (registered from a
 *  timer callback: in the same round of firing); a processing-time timer
 *  in the past fires at once (after the current callback).
 *  RILL_EINVAL on a non-keyed operator or a bad domain. */
RILL_API int rill_timer_register(rill_ctx *ctx, rill_time_domain domain, int64_t ts);
/** Delete the current key's timer at ts; RILL_OK also when there is none. */
RILL_API int rill_timer_delete(rill_ctx *ctx, rill_time_domain domain, int64_t ts);
/** The current key (borrowed, valid during the callback). RILL_EINVAL on a
 *  non-keyed operator. */
RILL_API int rill_ctx_key(const rill_ctx *ctx, const void **key, size_t *len);
/** Which input (0 or 1) of a two-input operator the record comes from. */
RILL_API int rill_ctx_input(const rill_ctx *ctx);

/** Emit a record (copied) to the side output tag, with the current
 *  timestamp. Records of a tag no stream consumes are dropped. */
RILL_API int rill_emit_side(rill_ctx *ctx, const char *tag, const void *rec,
                            size_t len);
/** The records the operator producing s emits to side output tag
 *  (copied). */
RILL_API rill_stream *rill_side_output(rill_stream *s, const char *tag);

/* ------------------------------------------------------------------------
 * Two inputs: connect and broadcast
 * ------------------------------------------------------------------------ */

/** Connect a and b: fn1 sees a's records, fn2 b's (rill_ctx_input tells
 *  too). co-map (exactly one emit per record), co-flat-map and co-process.
 *  When both a and b are keyed, the operator is keyed: keyed state and
 *  timers are shared by both inputs for each key; the two key functions
 *  must give the same key bytes for the same key. */
RILL_API rill_stream *rill_co_map(rill_stream *a, rill_stream *b,
                                  const char *name, rill_process_fn fn1,
                                  rill_process_fn fn2, void *user_data);
RILL_API rill_stream *rill_co_flat_map(rill_stream *a, rill_stream *b,
                                       const char *name, rill_process_fn fn1,
                                       rill_process_fn fn2, void *user_data);
RILL_API rill_stream *rill_co_process(rill_stream *a, rill_stream *b,
                                      const char *name, rill_process_fn fn1,
                                      rill_process_fn fn2,
                                      rill_timer_fn on_timer, void *user_data);
/** Connect s with the broadcast stream bc: every subtask sees every record
 *  of bc (in bc_fn) and s's records (in fn). Broadcast state (declared with
 *  RILL_STATE_BROADCAST) is written by bc_fn and read-only in fn. When s
 *  is keyed, fn may use keyed state and timers. */
RILL_API rill_stream *rill_connect_broadcast(rill_stream *s, rill_stream *bc,
                                             const char *name,
                                             rill_process_fn fn,
                                             rill_process_fn bc_fn,
                                             rill_timer_fn on_timer,
                                             void *user_data);

/* ------------------------------------------------------------------------
 * State
 *
 * State is declared on an operator by name and used from its callbacks
 * through a handle. Keyed kinds hold one value per key (the current
 * record's or timer's key) and need a keyed operator; they live in LMDB
 * under the state directory behind an in-memory cache. Values are bytes;
 * a pointer returned by a state call is borrowed, valid until the next
 * state call of the same operator subtask or the end of the callback,
 * whichever comes first.
 * ------------------------------------------------------------------------ */

typedef enum rill_state_kind {
    RILL_STATE_VALUE = 1,       /* one value per key */
    RILL_STATE_LIST = 2,        /* a list of values per key */
    RILL_STATE_MAP = 3,         /* a map per key */
    RILL_STATE_REDUCING = 4,    /* values folded with a reduce function */
    RILL_STATE_AGGREGATING = 5, /* values added to an accumulator */
    RILL_STATE_OPERATOR_LIST = 6, /* list per subtask, not keyed */
    RILL_STATE_BROADCAST = 7    /* map, the same on every subtask */
} rill_state_kind;

/**
 * Combine a and b into out (capacity *out_len bytes) and set *out_len to the
 * result's length. When the result is longer than the capacity, set
 * *out_len to the length needed and return 0: rill calls again with a
 * larger buffer. a, b and out never overlap.
 */
typedef int (*rill_reduce_fn)(const void *a, size_t a_len, const void *b,
                              size_t b_len, void *out, size_t *out_len,
                              void *user_data);
/** Aggregating state: the accumulator is bytes; each function writes its
 *  result as rill_reduce_fn does. create makes an empty accumulator, add
 *  adds a value to acc, merge merges two accumulators, result gives the
 *  value rill_state_get returns. */
typedef struct rill_aggregate_fns {
    int (*create)(void *out, size_t *out_len, void *user_data);
    int (*add)(const void *acc, size_t acc_len, const void *val,
               size_t val_len, void *out, size_t *out_len, void *user_data);
    int (*merge)(const void *a, size_t a_len, const void *b, size_t b_len,
                 void *out, size_t *out_len, void *user_data);
    int (*result)(const void *acc, size_t acc_len, void *out,
                  size_t *out_len, void *user_data);
} rill_aggregate_fns;

/** Declare state name (copied; unique per operator) of kind VALUE, LIST,
 *  MAP, OPERATOR_LIST or BROADCAST on the operator producing s. */
RILL_API rill_stream *rill_stream_add_state(rill_stream *s, const char *name,
                                            rill_state_kind kind);
/** Declare reducing state folded with fn. */
RILL_API rill_stream *rill_stream_add_reducing_state(rill_stream *s,
                                                     const char *name,
                                                     rill_reduce_fn fn,
                                                     void *user_data);
/** Declare aggregating state (fns copied; all four required). */
RILL_API rill_stream *rill_stream_add_aggregating_state(
    rill_stream *s, const char *name, const rill_aggregate_fns *fns,
    void *user_data);
/** Time to live of a keyed state's values, ms > 0: a value (each element
 *  for list and map state) expires ttl_ms after it was created or last
 *  written, is never returned once expired, and is removed on access and
 *  in the background. */
RILL_API rill_stream *rill_stream_set_state_ttl(rill_stream *s,
                                                const char *name,
                                                int64_t ttl_ms);
/** In-memory cache of keyed state per operator subtask, bytes
 *  (1 MiB..1 TiB; default 64 MiB). */
RILL_API int rill_env_set_state_cache_size(rill_env *env, size_t bytes);

/** The handle of state name of this operator, or NULL when none is
 *  declared with that name (a failing callback's message then names it).
 *  Valid while the job runs. */
RILL_API rill_state *rill_ctx_state(rill_ctx *ctx, const char *name);

/** Value of VALUE, REDUCING or AGGREGATING (its result) state.
 *  RILL_ENOTFOUND when there is none. */
RILL_API int rill_state_get(rill_state *st, const void **val, size_t *len);
/** Set VALUE state (copied). */
RILL_API int rill_state_put(rill_state *st, const void *val, size_t len);
/** Add to LIST, OPERATOR_LIST, REDUCING or AGGREGATING state (copied). */
RILL_API int rill_state_add(rill_state *st, const void *val, size_t len);
/** Remove the current key's value (or the whole operator/broadcast
 *  state). */
RILL_API int rill_state_clear(rill_state *st);
/** Iterate over LIST or OPERATOR_LIST state: *pos starts at 0. Returns 1
 *  with the next item, 0 at the end, or a negative error. */
RILL_API int rill_state_list_next(rill_state *st, size_t *pos, const void **item,
                                  size_t *len);
/** Replace a list with items[0..n-1] (copied; timestamps ignored). */
RILL_API int rill_state_list_update(rill_state *st, const rill_record *items,
                                    size_t n);
/** MAP and BROADCAST state. rill_state_map_get returns RILL_ENOTFOUND for a
 *  missing key. Broadcast state is read-only outside the broadcast side
 *  (RILL_ESTATE). */
RILL_API int rill_state_map_get(rill_state *st, const void *key, size_t key_len,
                                const void **val, size_t *len);
RILL_API int rill_state_map_put(rill_state *st, const void *key, size_t key_len,
                                const void *val, size_t len);
RILL_API int rill_state_map_remove(rill_state *st, const void *key, size_t key_len);
/** Iterate over a map in key byte order: *pos starts at 0. Returns 1 with
 *  the next entry, 0 at the end, or a negative error. Changing the map
 *  ends the iteration. */
RILL_API int rill_state_map_next(rill_state *st, size_t *pos, const void **key,
                                 size_t *key_len, const void **val, size_t *len);

/* ------------------------------------------------------------------------
 * Rolling aggregations on a keyed stream (one output per input: the
 * updated aggregate of that record's key)
 * ------------------------------------------------------------------------ */

typedef enum rill_field_type {
    RILL_FIELD_I32 = 1,
    RILL_FIELD_I64 = 2,
    RILL_FIELD_U32 = 3,
    RILL_FIELD_U64 = 4,
    RILL_FIELD_F32 = 5,
    RILL_FIELD_F64 = 6
} rill_field_type;

typedef enum rill_agg_kind {
    RILL_AGG_SUM = 1,   /* first record, field = sum */
    RILL_AGG_MIN = 2,   /* first record, field = minimum */
    RILL_AGG_MAX = 3,   /* first record, field = maximum */
    RILL_AGG_MIN_BY = 4, /* the record with the minimum (first on ties) */
    RILL_AGG_MAX_BY = 5  /* the record with the maximum (first on ties) */
} rill_agg_kind;

/** Rolling reduce: emits fn(previous result, record) per record (the first
 *  record of a key as it is). s must be keyed. */
RILL_API rill_stream *rill_reduce(rill_stream *s, const char *name,
                                  rill_reduce_fn fn, void *user_data);
/** Rolling sum/min/max/min_by/max_by of the field of type at offset (in
 *  native byte order). s must be keyed; a record too short for the field
 *  fails the job with RILL_EINVAL. */
RILL_API rill_stream *rill_aggregate(rill_stream *s, const char *name,
                                     rill_agg_kind agg, size_t offset,
                                     rill_field_type type);

/* ------------------------------------------------------------------------
 * Test harness: runs one operator, or a whole job, on the calling thread,
 * deterministically. Records and watermarks are pushed in; what comes out
 * is kept for reading. Processing time is the harness's clock.
 * ------------------------------------------------------------------------ */

/** A source whose records are pushed by a harness (rill_harness_push with
 *  the input's index: harness inputs are numbered 0, 1, ... in creation
 *  order). Outside a harness, a job with one fails validation. */
RILL_API rill_stream *rill_harness_input(rill_env *env, const char *name);

/** A harness for the operator producing op (its input 0, and 1 for two
 *  inputs, are fed by rill_harness_push; its main output is read as output
 *  NULL, its side outputs by tag) or, when op is NULL, for the whole graph
 *  of env (fed through rill_harness_input streams; each sink's input is
 *  read by the sink's name). Everything runs at parallelism 1; keyed
 *  operators see max parallelism's key groups as in a job. The clock
 *  starts at 0. env must stay alive while the harness does. */
RILL_API int rill_harness_new(rill_harness **out, rill_env *env,
                              rill_stream *op);
RILL_API void rill_harness_free(rill_harness *h);
/** Message of the last error ("" when none); borrowed, valid until the
 *  next call on h. */
RILL_API const char *rill_harness_errmsg(const rill_harness *h);
/** Push a record (copied) with timestamp ts into input; everything it
 *  causes runs before the call returns. Returns the job's error when a
 *  callback fails (the harness is then failed: later calls return it). */
RILL_API int rill_harness_push(rill_harness *h, int input, const void *rec,
                               size_t len, int64_t ts);
/** Push a watermark into input. */
RILL_API int rill_harness_watermark(rill_harness *h, int input, int64_t wm);
/** Advance the processing-time clock to now (never backwards) and fire
 *  the processing-time timers that are due. */
RILL_API int rill_harness_set_time(rill_harness *h, int64_t now);
/** End of input: the final watermark, then every operator closes. */
RILL_API int rill_harness_end(rill_harness *h);

#define RILL_HARNESS_RECORD 0
#define RILL_HARNESS_WATERMARK 1
/** Number of items (records and watermarks) on output. */
RILL_API size_t rill_harness_count(const rill_harness *h, const char *output);
/** Item i of output: RILL_HARNESS_RECORD with *rec set (data borrowed,
 *  valid until rill_harness_clear or rill_harness_free), or
 *  RILL_HARNESS_WATERMARK with rec->ts the watermark. RILL_ENOTFOUND past
 *  the end or for an unknown output. */
RILL_API int rill_harness_output(const rill_harness *h, const char *output,
                                 size_t i, rill_record *rec);
/** Drop every item of every output (pointers from rill_harness_output
 *  become invalid). */
RILL_API void rill_harness_clear(rill_harness *h);
/** Keyed state name of the operator under test (or, for a whole graph,
 *  the operator with uid op_uid: pass "uid/name"), with key as the current
 *  key, for reading with the state calls. NULL when there is none. Valid
 *  until the next harness call. */
RILL_API rill_state *rill_harness_state(rill_harness *h, const char *name,
                                        const void *key, size_t key_len);
/** Timers registered and not yet fired, in domain. */
RILL_API size_t rill_harness_timers(const rill_harness *h, rill_time_domain domain);

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

#endif /* RILL_H */
