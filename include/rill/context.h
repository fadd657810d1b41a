/*
 * rill/context.h - what callbacks call on their context: emit records
 * (with the inline emit of chained operators) and read the operator's
 * subtask, parallelism, name and local pointer.
 *
 * Part of the rill API: programs include <rill.h>, which includes this
 * header; it also compiles on its own.
 */
#ifndef RILL_CONTEXT_H
#define RILL_CONTEXT_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif

#endif /* RILL_CONTEXT_H */
