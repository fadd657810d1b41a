/* state_ops.c - the state calls on value, reducing, aggregating, list and
 * operator list state (rill_state_get/put/add/clear, rill_state_list_next,
 * rill_state_list_update). Keyed kinds act on the operator's current key and
 * namespace through the store's cache; operator lists live in memory. */
#include <stdint.h>
#include <string.h>

#include "rill.h"
#include "state/state_int.h"
#include "util/alloc.h"

static const char *kind_name(int kind)
{
    static const char *const names[] = {"?",           "value",         "list",
                                        "map",         "reducing",      "aggregating",
                                        "operator list", "broadcast"};
    return kind >= 1 && kind <= 7 ? names[kind] : names[0];
}

static int wrong_kind(rill_state *st, const char *call)
{
    return rill__state_fail(st, RILL_EINVAL, "%s on %s state", call, kind_name(st->kind));
}

static inline int64_t now_of(rill_state *st) { return st->ttl ? rill__proc_now(st->op) : 0; }

static inline int64_t expiry(const rill_state *st, int64_t now)
{
    return st->ttl > INT64_MAX - now ? INT64_MAX : now + st->ttl;
}

static inline const void *ent_end(rill__kvent *e)
{
    return rill__kvent_val(e) + e->vcap;
}

/* Make val the value of *e (behind a fresh TTL header when the state has
 * a TTL). */
static int store(rill_state *st, rill__kvent **e, const void *val, size_t len, int64_t now)
{
    rill__kv *kv = st->op->kv;
    int rc;
    if (!st->tp) {
        rc = rill__kv_set(kv, e, val, len);
    } else {
        if (len > RILL__KV_VALUE_MAX - RILL__TTL_HDR)
            return rill__state_fail(st, RILL_EINVAL, "a value of %zu bytes is too large", len);
        if ((rc = rill__state_stash(st, 0, &val, len, *e, ent_end(*e), 0)) != RILL_OK)
            return rc;
        rc = rill__kv_reserve(kv, e, RILL__TTL_HDR + len);
        if (!rc) {
            unsigned char *p = rill__kvent_val(*e);
            if (len)
                memmove(p + RILL__TTL_HDR, val, len);
            rill__wr64(p, expiry(st, now));
            rill__kv_changed(*e, RILL__TTL_HDR + len, 0);
        }
    }
    st->memo = *e;
    st->mod++;
    return rc ? rill__state_kvfail(st, rc) : RILL_OK;
}

/* Remove the current key's value. */
static void drop(rill_state *st, rill__kvent **e)
{
    if (!rill__kvent_absent(*e)) {
        rill__kv_clear(st->op->kv, e);
        st->memo = *e;
        st->mod++;
    }
}

/* The current key's value (its entry, and the bytes after the TTL
 * header): RILL_OK, RILL_ENOTFOUND (also once expired, then removed). */
static int current(rill_state *st, rill__kvent **e, const unsigned char **v, size_t *n,
                   int64_t now)
{
    int rc = rill__state_entry(st, e);
    if (rc)
        return rc;
    if (rill__kvent_absent(*e))
        return RILL_ENOTFOUND;
    const unsigned char *p = rill__kvent_val(*e);
    size_t len = (*e)->vlen;
    if (st->tp) {
        if (rill__state_expired(p, len, now)) {
            drop(st, e);
            return RILL_ENOTFOUND;
        }
        p += RILL__TTL_HDR;
        len -= RILL__TTL_HDR;
    }
    *v = p;
    *n = len;
    return RILL_OK;
}

RILL_API int rill_state_get(rill_state *st, const void **val, size_t *len)
{
    if (!st || !val || !len)
        return RILL_EINVAL;
    if (st->kind != RILL_STATE_VALUE && st->kind != RILL_STATE_REDUCING &&
        st->kind != RILL_STATE_AGGREGATING)
        return wrong_kind(st, "rill_state_get");
    int rc = rill__state_enter(st, NULL, 0, NULL, 0);
    if (rc)
        return rc;
    rill__kvent *e = NULL;
    const unsigned char *v;
    size_t n;
    if ((rc = current(st, &e, &v, &n, now_of(st))) != RILL_OK)
        return rc;
    if (st->kind == RILL_STATE_AGGREGATING) {
        size_t r;
        rc = rill__state_call(st, RILL__CALL_RESULT, v, n, NULL, 0, &st->out, &st->out_cap, &r);
        if (rc)
            return rc;
        v = st->out;
        n = r;
    }
    *val = v;
    *len = n;
    return RILL_OK;
}

RILL_API int rill_state_put(rill_state *st, const void *val, size_t len)
{
    if (!st || (!val && len))
        return RILL_EINVAL;
    if (st->kind != RILL_STATE_VALUE)
        return wrong_kind(st, "rill_state_put");
    int rc = rill__state_enter(st, &val, len, NULL, 0);
    if (rc)
        return rc;
    rill__kvent *e = NULL;
    if ((rc = rill__state_entry(st, &e)) != RILL_OK)
        return rc;
    return store(st, &e, val, len, now_of(st));
}

/* ---- list ----------------------------------------------------------------------- */

static int list_append(rill_state *st, const void *val, size_t len)
{
    rill__kvent *e = NULL;
    int rc = rill__state_entry(st, &e);
    if (rc)
        return rc;
    size_t cur = rill__kvent_absent(e) ? 0 : e->vlen;
    size_t add = RILL__LIST_HDR + st->tp;
    if (len > RILL__KV_VALUE_MAX - cur - add)
        return rill__state_fail(st, RILL_EINVAL, "the list would exceed %zu bytes",
                                (size_t)RILL__KV_VALUE_MAX);
    if ((rc = rill__state_stash(st, 0, &val, len, e, ent_end(e), 0)) != RILL_OK)
        return rc;
    if ((rc = rill__kv_reserve(st->op->kv, &e, cur + add + len)) != RILL_OK)
        return rill__state_kvfail(st, rc);
    unsigned char ttl[RILL__TTL_HDR];
    if (st->tp)
        rill__wr64(ttl, expiry(st, now_of(st)));
    size_t n = rill__list_put(rill__kvent_val(e), cur, ttl, st->tp, val, len);
    rill__kv_changed(e, n, 0);
    st->memo = e;
    st->mod++;
    return RILL_OK;
}

static int oplist_append(rill_state *st, const void *val, size_t len)
{
    int rc = rill__state_stash(st, 0, &val, len, st->mem, st->mem ? st->mem + st->mem_cap : NULL,
                               0);
    if (rc)
        return rc;
    if (len > SIZE_MAX / 2 - st->mem_len || len > UINT32_MAX)
        return rill__state_fail(st, RILL_EINVAL, "an item of %zu bytes is too large", len);
    if (rill__state_scratch(&st->mem, &st->mem_cap, st->mem_len + RILL__LIST_HDR + len))
        return rill__state_fail(st, RILL_ENOMEM, "out of memory");
    st->mem_len = rill__list_put(st->mem, st->mem_len, NULL, 0, val, len);
    st->mod++;
    return RILL_OK;
}

/* Fold val into the reducing or aggregating value of the current key. */
static int fold(rill_state *st, const void *val, size_t len)
{
    int64_t now = now_of(st);
    rill__kvent *e = NULL;
    const unsigned char *acc;
    size_t acc_len, r;
    int rc = current(st, &e, &acc, &acc_len, now);
    if (rc && rc != RILL_ENOTFOUND)
        return rc;
    int absent = rc == RILL_ENOTFOUND;
    if (st->kind == RILL_STATE_REDUCING) {
        if (absent)
            return store(st, &e, val, len, now);
        rc = rill__state_call(st, RILL__CALL_REDUCE, acc, acc_len, val, len, &st->buf[0],
                              &st->buf_cap[0], &r);
    } else {
        if (absent) {
            rc = rill__state_call(st, RILL__CALL_CREATE, NULL, 0, NULL, 0, &st->buf[1],
                                  &st->buf_cap[1], &acc_len);
            if (rc)
                return rc;
            acc = st->buf[1];
        }
        rc = rill__state_call(st, RILL__CALL_ADD, acc, acc_len, val, len, &st->buf[0],
                              &st->buf_cap[0], &r);
    }
    if (rc)
        return rc;
    return store(st, &e, st->buf[0], r, now);
}

RILL_API int rill_state_add(rill_state *st, const void *val, size_t len)
{
    if (!st || (!val && len))
        return RILL_EINVAL;
    if (st->kind == RILL_STATE_OPERATOR_LIST)
        return oplist_append(st, val, len);
    if (st->kind != RILL_STATE_LIST && st->kind != RILL_STATE_REDUCING &&
        st->kind != RILL_STATE_AGGREGATING)
        return wrong_kind(st, "rill_state_add");
    int rc = rill__state_enter(st, &val, len, NULL, 0);
    if (rc)
        return rc;
    return st->kind == RILL_STATE_LIST ? list_append(st, val, len) : fold(st, val, len);
}

RILL_API int rill_state_clear(rill_state *st)
{
    if (!st)
        return RILL_EINVAL;
    if (st->kind == RILL_STATE_OPERATOR_LIST || st->kind == RILL_STATE_BROADCAST) {
        if (st->kind == RILL_STATE_BROADCAST && !st->op->bc_side)
            return rill__state_fail(st, RILL_ESTATE,
                                    "broadcast state is read-only outside the broadcast side");
        st->mem_len = 0;
        st->mod++;
        return RILL_OK;
    }
    int rc = rill__state_enter(st, NULL, 0, NULL, 0);
    if (rc)
        return rc;
    rill__kvent *e = NULL;
    if ((rc = rill__state_entry(st, &e)) != RILL_OK)
        return rc;
    drop(st, &e);
    return RILL_OK;
}

RILL_API int rill_state_list_next(rill_state *st, size_t *pos, const void **item, size_t *len)
{
    if (!st || !pos || !item || !len)
        return RILL_EINVAL;
    const unsigned char *b, *it;
    size_t blen, n, off;
    int64_t now = 0;
    if (st->kind == RILL_STATE_OPERATOR_LIST) {
        b = st->mem;
        blen = st->mem_len;
    } else if (st->kind == RILL_STATE_LIST) {
        int rc = rill__state_enter(st, NULL, 0, NULL, 0);
        rill__kvent *e = NULL;
        if (rc || (rc = rill__state_entry(st, &e)) != RILL_OK)
            return rc;
        if (rill__kvent_absent(e))
            return 0;
        blen = e->vlen;
        if (st->tp) {
            now = now_of(st);
            if (*pos == 0) { /* clean up on access */
                size_t kept = rill__state_purge_list(rill__kvent_val(e), blen, now);
                if (kept != blen) {
                    rill__kv_changed(e, kept, kept == 0);
                    st->mod++;
                    blen = kept;
                }
            }
        }
        b = rill__kvent_val(e);
    } else {
        return wrong_kind(st, "rill_state_list_next");
    }
    if ((off = rill__state_off(st, *pos)) == SIZE_MAX)
        return 0;
    for (;;) {
        if (!b || !rill__list_at(b, blen, &off, &it, &n))
            return 0;
        if (st->tp) {
            if (rill__state_expired(it, n, now))
                continue;
            it += RILL__TTL_HDR;
            n -= RILL__TTL_HDR;
        }
        break;
    }
    *pos = rill__state_pos(st, off);
    *item = it;
    *len = n;
    return 1;
}

RILL_API int rill_state_list_update(rill_state *st, const rill_record *items, size_t n)
{
    if (!st || (!items && n))
        return RILL_EINVAL;
    if (st->kind != RILL_STATE_LIST && st->kind != RILL_STATE_OPERATOR_LIST)
        return wrong_kind(st, "rill_state_list_update");
    size_t per = RILL__LIST_HDR + st->tp, total = 0;
    size_t limit = st->kind == RILL_STATE_LIST ? RILL__KV_VALUE_MAX : SIZE_MAX / 2;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].data && items[i].len)
            return rill__state_fail(st, RILL_EINVAL, "item %zu has no data", i);
        if (items[i].len > UINT32_MAX - per || items[i].len + per > limit - total)
            return rill__state_fail(st, RILL_EINVAL, "the list would be too large");
        total += per + items[i].len;
    }
    /* Build the new list first: the items may point into the old one. */
    if (rill__state_scratch(&st->buf[0], &st->buf_cap[0], total))
        return rill__state_fail(st, RILL_ENOMEM, "out of memory");
    unsigned char ttl[RILL__TTL_HDR];
    if (st->tp)
        rill__wr64(ttl, expiry(st, now_of(st)));
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len = rill__list_put(st->buf[0], len, ttl, st->tp, items[i].data, items[i].len);
    if (st->kind == RILL_STATE_OPERATOR_LIST) {
        unsigned char *p = st->mem;
        size_t cap = st->mem_cap;
        st->mem = st->buf[0];
        st->mem_cap = st->buf_cap[0];
        st->mem_len = len;
        st->buf[0] = p;
        st->buf_cap[0] = cap;
        st->mod++;
        return RILL_OK;
    }
    int rc = rill__state_enter(st, NULL, 0, NULL, 0);
    rill__kvent *e = NULL;
    if (rc || (rc = rill__state_entry(st, &e)) != RILL_OK)
        return rc;
    if (!len) {
        drop(st, &e);
        return RILL_OK;
    }
    if ((rc = rill__kv_set(st->op->kv, &e, st->buf[0], len)) != RILL_OK)
        return rill__state_kvfail(st, rc);
    st->memo = e;
    st->mod++;
    return RILL_OK;
}
