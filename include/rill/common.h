/*
 * rill/common.h - what every part of the API uses: export macros,
 * versions, error codes, the allocator and logger hooks, records and
 * time, the opaque handles, and the callback types several modules use.
 *
 * Part of the rill API: programs include <rill.h>, which includes this
 * header; it also compiles on its own.
 */
#ifndef RILL_COMMON_H
#define RILL_COMMON_H

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
 * Callbacks. Unless said otherwise each runs on its subtask's thread,
 * receives a ctx valid during the call and a record borrowed for the call
 * only, and returns 0 on success; any other value fails the job with
 * RILL_EUSER and a message naming the operator. The types of callbacks
 * that one module's calls take are in that module's header.
 * ------------------------------------------------------------------------ */

/** Process one record: map (exactly one rill_emit), flat_map (any number)
 *  and sinks (no emit). */
typedef int (*rill_process_fn)(rill_ctx *ctx, const void *rec, size_t len,
                               void *user_data);
/**
 * Format a record as one line (no newline) into buf of cap bytes, like
 * snprintf: return the length the line needs; if it is >= cap, rill calls
 * again with a larger buffer. A negative return fails the job.
 */
typedef int (*rill_format_fn)(const void *rec, size_t len, char *buf,
                              size_t cap, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* RILL_COMMON_H */
