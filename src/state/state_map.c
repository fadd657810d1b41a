/* state_map.c - the state calls on map state (keyed: the map of the
 * current key and namespace is one cached blob) and broadcast state (one
 * map per subtask in memory, written only from the broadcast side):
 * rill_state_map_get/put/remove/next. */
#include <stdint.h>
#include <string.h>

#include "rill.h"
#include "state/state_int.h"

static int wrong_kind(rill_state *st, const char *call)
{
    return rill__state_fail(st, RILL_EINVAL, "%s on a state that is not a map", call);
}

static int read_only(rill_state *st)
{
    return rill__state_fail(st, RILL_ESTATE,
                            "broadcast state is read-only outside the broadcast side");
}

/* The map blob of the current key (*e set; NULL blob when absent). */
static int keyed_map(rill_state *st, rill__kvent **e, unsigned char **b, size_t *len)
{
    int rc = rill__state_entry(st, e);
    if (rc)
        return rc;
    *b = rill__kvent_val(*e);
    *len = rill__kvent_absent(*e) ? 0 : (*e)->vlen;
    return RILL_OK;
}

/* Remove the entry at off of the current key's map. */
static void cut(rill_state *st, rill__kvent *e, size_t off)
{
    size_t n = rill__map_cut(rill__kvent_val(e), e->vlen, off);
    rill__kv_changed(e, n, n == 0);
    st->mod++;
}

RILL_API int rill_state_map_get(rill_state *st, const void *key, size_t key_len, const void **val,
                                size_t *len)
{
    if (!st || (!key && key_len) || !val || !len)
        return RILL_EINVAL;
    unsigned char *b;
    size_t blen, off, kl, vl;
    rill__kvent *e = NULL;
    int found, rc;
    if (st->kind == RILL_STATE_BROADCAST) {
        b = st->mem;
        blen = st->mem_len;
    } else if (st->kind == RILL_STATE_MAP) {
        if ((rc = rill__state_enter(st, NULL, 0, NULL, 0)) != RILL_OK ||
            (rc = keyed_map(st, &e, &b, &blen)) != RILL_OK)
            return rc;
    } else {
        return wrong_kind(st, "rill_state_map_get");
    }
    if (!blen)
        return RILL_ENOTFOUND;
    off = rill__map_find(b, blen, key, key_len, &found);
    if (!found)
        return RILL_ENOTFOUND;
    const unsigned char *k = NULL, *v = NULL;
    size_t at = off;
    kl = vl = 0;
    if (!rill__map_at(b, blen, &off, &k, &kl, &v, &vl))
        return RILL_ENOTFOUND;
    if (st->tp) {
        if (rill__state_expired(v, vl, rill__proc_now(st->op))) {
            cut(st, e, at);
            return RILL_ENOTFOUND;
        }
        v += RILL__TTL_HDR;
        vl -= RILL__TTL_HDR;
    }
    *val = v;
    *len = vl;
    return RILL_OK;
}

static int broadcast_put(rill_state *st, const void *key, size_t klen, const void *val,
                         size_t vlen)
{
    if (!st->op->bc_side)
        return read_only(st);
    const unsigned char *end = st->mem ? st->mem + st->mem_cap : NULL;
    if (klen > UINT32_MAX || vlen > UINT32_MAX ||
        klen + vlen > SIZE_MAX / 2 - RILL__MAP_HDR - st->mem_len)
        return rill__state_fail(st, RILL_EINVAL, "entry too large");
    int rc;
    if ((rc = rill__state_stash(st, 0, &key, klen, st->mem, end, 0)) != RILL_OK ||
        (rc = rill__state_stash(st, 1, &val, vlen, st->mem, end, 0)) != RILL_OK)
        return rc;
    int found;
    size_t off = rill__map_find(st->mem, st->mem_len, key, klen, &found);
    size_t need = st->mem_len + RILL__MAP_HDR + klen + vlen;
    if (rill__state_scratch(&st->mem, &st->mem_cap, need))
        return rill__state_fail(st, RILL_ENOMEM, "out of memory");
    st->mem_len =
        rill__map_splice(st->mem, st->mem_len, off, found, key, klen, NULL, 0, val, vlen);
    st->mod++;
    return RILL_OK;
}

RILL_API int rill_state_map_put(rill_state *st, const void *key, size_t key_len, const void *val,
                                size_t len)
{
    if (!st || (!key && key_len) || (!val && len))
        return RILL_EINVAL;
    if (st->kind == RILL_STATE_BROADCAST)
        return broadcast_put(st, key, key_len, val, len);
    if (st->kind != RILL_STATE_MAP)
        return wrong_kind(st, "rill_state_map_put");
    rill_ctx *op = st->op;
    int rc = rill__state_enter(st, &key, key_len, &val, len);
    if (rc)
        return rc;
    /* A snapshot entry holds key, namespace and map key in 32 bits. */
    if (key_len > (size_t)UINT32_MAX - 6 - op->key_len - op->ns_len)
        return rill__state_fail(st, RILL_EINVAL, "a map key of %zu bytes is too long", key_len);
    rill__kvent *e = NULL;
    unsigned char *b;
    size_t blen;
    if ((rc = keyed_map(st, &e, &b, &blen)) != RILL_OK)
        return rc;
    const void *end = b + e->vcap;
    if ((rc = rill__state_stash(st, 0, &key, key_len, e, end, 0)) != RILL_OK ||
        (rc = rill__state_stash(st, 1, &val, len, e, end, 0)) != RILL_OK)
        return rc;
    int found;
    size_t off = rill__map_find(b, blen, key, key_len, &found);
    size_t old = found ? rill__map_entry_len(b, off) : 0;
    size_t add = RILL__MAP_HDR + key_len + st->tp;
    if (len > RILL__KV_VALUE_MAX - add || blen - old > RILL__KV_VALUE_MAX - add - len)
        return rill__state_fail(st, RILL_EINVAL, "the map would exceed %zu bytes",
                                (size_t)RILL__KV_VALUE_MAX);
    size_t need = blen - old + add + len;
    if ((rc = rill__kv_reserve(op->kv, &e, need)) != RILL_OK)
        return rill__state_kvfail(st, rc);
    unsigned char ttl[RILL__TTL_HDR];
    if (st->tp) {
        int64_t now = rill__proc_now(op);
        rill__wr64(ttl, st->ttl > INT64_MAX - now ? INT64_MAX : now + st->ttl);
    }
    size_t n = rill__map_splice(rill__kvent_val(e), blen, off, found, key, key_len, ttl, st->tp,
                                val, len);
    rill__kv_changed(e, n, 0);
    st->memo = e;
    st->mod++;
    return RILL_OK;
}

RILL_API int rill_state_map_remove(rill_state *st, const void *key, size_t key_len)
{
    if (!st || (!key && key_len))
        return RILL_EINVAL;
    int found;
    size_t off;
    if (st->kind == RILL_STATE_BROADCAST) {
        if (!st->op->bc_side)
            return read_only(st);
        off = rill__map_find(st->mem, st->mem_len, key, key_len, &found);
        if (found) {
            st->mem_len = rill__map_cut(st->mem, st->mem_len, off);
            st->mod++;
        }
        return RILL_OK;
    }
    if (st->kind != RILL_STATE_MAP)
        return wrong_kind(st, "rill_state_map_remove");
    rill__kvent *e = NULL;
    unsigned char *b;
    size_t blen;
    int rc = rill__state_enter(st, NULL, 0, NULL, 0);
    if (rc || (rc = keyed_map(st, &e, &b, &blen)) != RILL_OK)
        return rc;
    off = rill__map_find(b, blen, key, key_len, &found);
    if (found)
        cut(st, e, off);
    return RILL_OK;
}

RILL_API int rill_state_map_next(rill_state *st, size_t *pos, const void **key, size_t *key_len,
                                 const void **val, size_t *len)
{
    if (!st || !pos || !key || !key_len || !val || !len)
        return RILL_EINVAL;
    unsigned char *b;
    size_t blen;
    int64_t now = 0;
    if (st->kind == RILL_STATE_BROADCAST) {
        b = st->mem;
        blen = st->mem_len;
    } else if (st->kind == RILL_STATE_MAP) {
        rill__kvent *e = NULL;
        int rc = rill__state_enter(st, NULL, 0, NULL, 0);
        if (rc || (rc = keyed_map(st, &e, &b, &blen)) != RILL_OK)
            return rc;
        if (st->tp) {
            now = rill__proc_now(st->op);
            if (*pos == 0 && blen) { /* clean up on access */
                size_t kept = rill__state_purge_map(b, blen, now);
                if (kept != blen) {
                    rill__kv_changed(e, kept, kept == 0);
                    st->mod++;
                    blen = kept;
                }
            }
        }
    } else {
        return wrong_kind(st, "rill_state_map_next");
    }
    size_t off = rill__state_off(st, *pos);
    if (off == SIZE_MAX || !b)
        return 0;
    const unsigned char *k, *v;
    size_t kl, vl;
    for (;;) {
        if (!rill__map_at(b, blen, &off, &k, &kl, &v, &vl))
            return 0;
        if (st->tp) {
            if (rill__state_expired(v, vl, now))
                continue;
            v += RILL__TTL_HDR;
            vl -= RILL__TTL_HDR;
        }
        break;
    }
    *pos = rill__state_pos(st, off);
    *key = k;
    *key_len = kl;
    *val = v;
    *len = vl;
    return 1;
}
