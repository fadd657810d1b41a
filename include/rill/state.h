/*
 * rill/state.h - operator state: declaring it, the state calls, and the
 * rolling aggregations of keyed streams, which keep their aggregate in
 * keyed state and share its reduce function type.
 *
 * Part of the rill API: programs include <rill.h>, which includes this
 * header; it also compiles on its own.
 */
#ifndef RILL_STATE_H
#define RILL_STATE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif

#endif /* RILL_STATE_H */
