/* state_int.h - the state handle and the helpers shared by state.c (open,
 * close, TTL maintenance), state_ops.c (value, reducing, aggregating and
 * list calls) and state_map.c (map and broadcast calls). */
#ifndef RILL_STATE_STATE_INT_H
#define RILL_STATE_STATE_INT_H

#include <stdint.h>
#include <string.h>

#include "state/blob.h"
#include "state/kv.h"
#include "state/state.h"

/* Bytes in front of every value (list element, map value) of a state
 * with a TTL: its expiry time (int64, ms, native order). */
#define RILL__TTL_HDR 8

struct rill_state {
    rill_ctx *op;
    const rill__statedesc *d;
    int kind;
    unsigned sid;  /* DBI of a keyed state */
    int64_t ttl;   /* ms; 0: none */
    size_t tp;     /* RILL__TTL_HDR when ttl > 0, else 0 */
    rill__kvent *memo; /* entry of the last key used, valid while memo_gen */
    uint64_t memo_gen;
    uint32_t mod;  /* bumped by every change: ends iterations */

    /* Operator list / broadcast state: the blob in memory. */
    unsigned char *mem;
    size_t mem_len, mem_cap;

    /* Scratch: results of user functions (buf), copies of arguments that
     * could move or vanish during the call (stash), get's result (out). */
    unsigned char *buf[2];
    size_t buf_cap[2];
    unsigned char *stash[2];
    size_t stash_cap[2];
    unsigned char *out;
    size_t out_cap;
};

/* Record a message for a failing call (op->user_err, as
 * rill_ctx_set_error) and return code. */
int rill__state_fail(rill_state *st, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A store failure: its message, and code. */
int rill__state_kvfail(rill_state *st, int code);
/* Grow a scratch buffer to at least need bytes. */
int rill__state_scratch(unsigned char **buf, size_t *cap, size_t need);

/* Copy *p (len bytes) into stash slot i when it lies in [lo, hi) or when
 * force is set, and point *p at the copy. */
int rill__state_stash(rill_state *st, int i, const void **p, size_t len, const void *lo,
                      const void *hi, int force);

/* The size-negotiating user calls (rill_reduce_fn convention). */
enum { RILL__CALL_REDUCE, RILL__CALL_CREATE, RILL__CALL_ADD, RILL__CALL_RESULT };
/* Run user function `call` with inputs a, b into *buf (grown as asked);
 * the result length goes to *rlen. RILL_EUSER when it fails. */
int rill__state_call(rill_state *st, int call, const void *a, size_t al, const void *b,
                     size_t bl, unsigned char **buf, size_t *cap, size_t *rlen);

/* Drop expired elements / entries of a list / map blob in place; returns
 * the new length. */
size_t rill__state_purge_list(unsigned char *b, size_t len, int64_t now);
size_t rill__state_purge_map(unsigned char *b, size_t len, int64_t now);

static inline int rill__state_keyed_kind(int kind)
{
    return kind >= RILL_STATE_VALUE && kind <= RILL_STATE_AGGREGATING;
}

/* Start a call on keyed state: checks the operator is keyed, and keeps the
 * cache in budget. When the cache must spill, the caller's arguments a and
 * b (either may be NULL) are copied first, since they may point into
 * entries about to be evicted. */
static inline int rill__state_enter(rill_state *st, const void **a, size_t al, const void **b,
                                    size_t bl)
{
    rill_ctx *op = st->op;
    if (__builtin_expect(!op->keyed || !op->kv, 0))
        return rill__state_fail(st, RILL_EINVAL, "keyed state used outside a keyed operator");
    if (__builtin_expect(rill__kv_over_budget(op->kv), 0)) {
        if ((a && rill__state_stash(st, 0, a, al, NULL, NULL, 1)) ||
            (b && rill__state_stash(st, 1, b, bl, NULL, NULL, 1)))
            return RILL_ENOMEM;
        int rc = rill__kv_spill(op->kv);
        if (rc)
            return rill__state_kvfail(st, rc);
    }
    return RILL_OK;
}

/* The cache entry of the current key and namespace. */
static inline int rill__state_entry(rill_state *st, rill__kvent **out)
{
    rill_ctx *op = st->op;
    rill__kv *kv = op->kv;
    rill__kvent *e = st->memo;
    if (e && st->memo_gen == rill__kv_gen(kv) && e->kg == op->kg && e->klen == op->key_len &&
        e->nslen == op->ns_len && rill__kv_same_bytes(rill__kvent_key(e), op->key, e->klen) &&
        (!e->nslen || rill__kv_same_bytes(rill__kvent_ns(e), op->ns, e->nslen))) {
        e->flags |= RILL__KV_REF;
        *out = e;
        return RILL_OK;
    }
    int rc = rill__kv_find(kv, st->sid, op->kg, op->key, op->key_len, op->ns, op->ns_len, &e);
    if (rc)
        return rill__state_kvfail(st, rc);
    st->memo = e;
    st->memo_gen = rill__kv_gen(kv);
    *out = e;
    return RILL_OK;
}

/* Is the value at p (a TTL header first) expired at now? */
static inline int rill__state_expired(const unsigned char *p, size_t len, int64_t now)
{
    return len < RILL__TTL_HDR || rill__rd64(p) <= now;
}

/* Iteration cursors: the offset of the next item, tagged with the state's
 * change counter so a cursor from before a change ends the iteration. */
#if SIZE_MAX > 0xFFFFFFFFu
static inline size_t rill__state_pos(const rill_state *st, size_t off)
{
    return ((size_t)((st->mod & 0xFFFFFu) | 0x100000u) << 40) | off;
}
/* The offset of a cursor, or SIZE_MAX for a stale one. */
static inline size_t rill__state_off(const rill_state *st, size_t pos)
{
    if (pos == 0)
        return 0;
    if ((pos >> 40) != ((st->mod & 0xFFFFFu) | 0x100000u))
        return SIZE_MAX;
    return pos & (((size_t)1 << 40) - 1);
}
#else
static inline size_t rill__state_pos(const rill_state *st, size_t off)
{
    (void)st;
    return off;
}
static inline size_t rill__state_off(const rill_state *st, size_t pos)
{
    (void)st;
    return pos;
}
#endif

#endif
