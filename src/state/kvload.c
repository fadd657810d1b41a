/* kvload.c - restoring the keyed-state store: records of a snapshot put
 * into LMDB behind the cache's back, in large transactions, those too long
 * for a direct record gathered into long records (kv_int.h); and emptying
 * the store after a failed restore. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rill.h"
#include "state/blob.h"
#include "state/kv_int.h"
#include "util/alloc.h"

/* The map entries of one long record being gathered (map state: its
 * entries come one record each, usually one after the other). */
typedef struct gather {
    unsigned char *buf; /* key part, then map blob */
    size_t cap;
    size_t part, len; /* key part's length, buf's */
    size_t last;      /* offset in the map blob of its last entry */
    int live;         /* one is being gathered, of key group kg */
    uint16_t kg;
} gather;

/* Records of a snapshot section for one write transaction: m records of
 * buf from off on; end is where they stop. */
typedef struct recrun {
    unsigned sid;
    const unsigned char *buf;
    size_t off, m, end;
    gather g;
} recrun;

/* Put the gathered map, merged into the record it may already have (an
 * entry gathered replaces an equal one). */
static int gather_end(rill__kv *kv, MDB_txn *txn, unsigned sid, gather *g)
{
    if (!g->live)
        return 0;
    g->live = 0;
    unsigned char lkey[RILL__KVL_KEY];
    size_t plen = g->part, mlen = g->len - plen;
    MDB_val old;
    int found;
    int rc = rill__kvl_find(kv, txn, sid, g->kg, g->buf, plen, lkey, &old, &found);
    if (rc)
        return rc;
    if (found) {
        /* Merge behind the gathered map, then move the result down. */
        if (old.mv_size > SIZE_MAX / 2 - g->len - mlen ||
            rill__grow((void **)&g->buf, &g->cap, g->len + old.mv_size + mlen, 1))
            return ENOMEM;
        unsigned char *dst = g->buf + g->len;
        mlen = rill__map_merge(dst, old.mv_data, old.mv_size, g->buf + plen, mlen);
        memmove(g->buf + plen, dst, mlen);
    }
    return rill__kvl_put_at(kv, txn, sid, lkey, g->buf, plen, g->buf + plen, mlen);
}

/* Add the entry mk -> mv to the gathered map (appended when it comes in
 * key order). */
static int gather_add(gather *g, const unsigned char *mk, size_t mkl, const void *mv,
                      size_t mvl)
{
    if (mkl > UINT32_MAX || mvl > UINT32_MAX ||
        g->len + RILL__MAP_HDR + mkl + mvl > (size_t)UINT32_MAX)
        return MDB_BAD_VALSIZE;
    if (rill__grow((void **)&g->buf, &g->cap, g->len + RILL__MAP_HDR + mkl + mvl, 1))
        return ENOMEM;
    unsigned char *map = g->buf + g->part;
    size_t len = g->len - g->part, off = len;
    int found = 0;
    if (len) {
        size_t o = g->last, lkl, lvl;
        const unsigned char *lk, *lv;
        if (!rill__map_at(map, len, &o, &lk, &lkl, &lv, &lvl) ||
            rill__keycmp(lk, lkl, mk, mkl) >= 0)
            off = rill__map_find(map, len, mk, mkl, &found);
    }
    size_t n = rill__map_splice(map, len, off, found, mk, mkl, NULL, 0, mv, mvl);
    if (off == len)
        g->last = off;
    else if (off < g->last || !found) /* the last entry moved */
        g->last = n >= len ? g->last + (n - len) : g->last - (len - n);
    g->len = g->part + n;
    return 0;
}

/* A record k[0..kl) (kg | key part [| map key]) longer than maxkey, value
 * v: value state, a long record at once; map state, an entry of the long
 * record of its key part, gathered. */
static int load_long(rill__kv *kv, MDB_txn *txn, recrun *r, const unsigned char *k, size_t kl,
                     const void *v, size_t vl)
{
    gather *g = &r->g;
    uint16_t kg = (uint16_t)(((unsigned)k[0] << 8) | k[1]);
    const unsigned char *part = k + 2;
    size_t plen = rill__kvl_part_len(part, kl - 2);
    if (!kv->is_map[r->sid])
        return rill__kvl_put(kv, txn, r->sid, kg, part, plen, v, vl, 0);
    if (g->live && (g->kg != kg || g->part != plen || memcmp(g->buf, part, plen))) {
        int rc = gather_end(kv, txn, r->sid, g);
        if (rc)
            return rc;
    }
    if (!g->live) {
        if (rill__grow((void **)&g->buf, &g->cap, plen, 1) != RILL_OK)
            return ENOMEM;
        memcpy(g->buf, part, plen);
        g->part = g->len = plen;
        g->last = 0;
        g->kg = kg;
        g->live = 1;
    }
    return gather_add(g, part + plen, kl - 2 - plen, v, vl);
}

/* (Sorted input needs no MDB_APPEND: LMDB fills pages as well for keys
 * arriving in order.) */
static int load_run(rill__kv *kv, MDB_txn *txn, void *arg, const char **what, int *sid)
{
    recrun *r = arg;
    MDB_cursor *cur;
    (void)sid;
    *what = "mdb_cursor_open";
    int rc = mdb_cursor_open(txn, kv->dbi[r->sid], &cur);
    if (rc)
        return rc;
    r->g.live = 0;
    size_t o = r->off;
    for (size_t i = 0; i < r->m && !rc; i++) {
        size_t kl = rill__rd32(r->buf + o), vl = rill__rd32(r->buf + o + 4);
        MDB_val k = {kl, (void *)(r->buf + o + 8)}, v = {vl, (void *)(r->buf + o + 8 + kl)};
        if (kl <= kv->maxkey) {
            *what = "mdb_put";
            rc = mdb_cursor_put(cur, &k, &v, 0);
        } else {
            *what = "writing a long record";
            rc = load_long(kv, txn, r, k.mv_data, kl, v.mv_data, vl);
        }
        o += 8 + kl + vl;
    }
    if (!rc) {
        *what = "writing a long record";
        rc = gather_end(kv, txn, r->sid, &r->g);
    }
    mdb_cursor_close(cur);
    r->end = o;
    return rc;
}

/* Is k[0..kl) a record key of sid as kv.h describes it? */
static int key_ok(const rill__kv *kv, unsigned sid, const unsigned char *k, size_t kl)
{
    if (kl < 6)
        return 0;
    size_t plen = rill__kvl_part_len(k + 2, kl - 2);
    return plen && (kv->is_map[sid] || plen == kl - 2);
}

static int load_all(rill__kv *kv, recrun *r, size_t n)
{
    size_t done = 0, chunk = n;
    rill__kvi_pause(kv);
    while (done < n) {
        r->m = chunk < n - done ? chunk : n - done;
        int rc = rill__kvi_write(kv, load_run, r, (int)r->sid, r->m > 1);
        if (rc == MDB_TXN_FULL) {
            chunk = r->m / 2;
            continue;
        }
        if (rc)
            return rc;
        kv->n_flushes++;
        kv->used[r->sid] = 1;
        r->off = r->end;
        done += r->m;
    }
    return rill__kvi_resume(kv);
}

int rill__kv_load(rill__kv *kv, unsigned sid, const unsigned char *buf, size_t len)
{
    size_t n = 0;
    for (size_t o = 0; o < len; n++) {
        size_t kl = rill__rd32(buf + o);
        if (!key_ok(kv, sid, buf + o + 8, kl)) {
            rill__fmt(kv->err, "state '%s' (state store '%s'): a malformed record to load",
                      kv->names[sid], kv->dir);
            return RILL_EINVAL;
        }
        o += 8 + kl + rill__rd32(buf + o + 4);
    }
    recrun r;
    memset(&r, 0, sizeof r);
    r.sid = sid;
    r.buf = buf;
    int rc = load_all(kv, &r, n);
    rill__free(r.g.buf);
    return rc;
}

static int drop_all(rill__kv *kv, MDB_txn *txn, void *arg, const char **what, int *sid)
{
    (void)arg;
    *what = "mdb_drop";
    for (size_t i = 0; i < kv->n; i++) {
        *sid = (int)i;
        int rc = mdb_drop(txn, kv->dbi[i], 0);
        if (rc)
            return rc;
    }
    return 0;
}

int rill__kv_empty(rill__kv *kv)
{
    for (size_t i = 0; i < kv->cap; i++)
        if (kv->slots[i].e)
            kv->slots[i].e->flags &= (uint8_t)~RILL__KV_DIRTY;
    rill__kvc_evict(kv, 0, 1);
    for (size_t i = 0; i < kv->n; i++)
        kv->resume_len[i] = 0;
    memset(kv->longs, 0, kv->n);
    rill__kvi_pause(kv);
    int rc = rill__kvi_write(kv, drop_all, NULL, -1, 0);
    if (rc)
        return rc;
    kv->n_flushes++;
    return rill__kvi_resume(kv);
}
