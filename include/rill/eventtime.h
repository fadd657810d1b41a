/*
 * rill/eventtime.h - event time: timestamp assigners, watermarks and
 * source idleness.
 *
 * Part of the rill API: programs include <rill.h>, which includes this
 * header; it also compiles on its own.
 */
#ifndef RILL_EVENTTIME_H
#define RILL_EVENTTIME_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
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

#ifdef __cplusplus
}
#endif

#endif /* RILL_EVENTTIME_H */
