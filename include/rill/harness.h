/*
 * rill/harness.h - the test harness: runs one operator, or a whole job,
 * on the calling thread.
 *
 * Part of the rill API: programs include <rill.h>, which includes this
 * header; it also compiles on its own.
 */
#ifndef RILL_HARNESS_H
#define RILL_HARNESS_H

#include "common.h"
#include "process.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif

#endif /* RILL_HARNESS_H */
