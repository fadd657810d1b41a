/*
 * rill/process.h - process functions, timers and side outputs, and
 * operators with two inputs (connect and broadcast).
 *
 * Part of the rill API: programs include <rill.h>, which includes this
 * header; it also compiles on its own.
 */
#ifndef RILL_PROCESS_H
#define RILL_PROCESS_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif

#endif /* RILL_PROCESS_H */
