/* kvscan.c - walking the keyed-state store for background work: the
 * cache slot by slot, and LMDB records from where the last walk stopped
 * (TTL cleanup decides per record: keep, delete or replace), and record
 * counts. */
#include <string.h>

#include "rill.h"
#include "state/blob.h"
#include "state/kv_int.h"
#include "util/alloc.h"

int rill__kv_cache_scan(rill__kv *kv, size_t max, rill__kv_entry_fn fn, void *arg)
{
    size_t mask = kv->cap - 1;
    size_t i = kv->scan & mask;
    if (max > kv->cap)
        max = kv->cap;
    int rc = 0;
    for (size_t n = 0; n < max && !rc; n++, i = (i + 1) & mask)
        if (kv->slots[i].e)
            rc = fn(kv->slots[i].e, arg);
    kv->scan = i;
    return rc;
}

/* Actions decided by a scan: [u8 kind][u32 klen][u32 vlen][key][value]. */
typedef struct actbuf {
    unsigned char *p;
    size_t len, cap;
    size_t n;
} actbuf;

/* An action on the record of key k; the value to put is pre then v. */
static int act_add(actbuf *b, int kind, const void *k, size_t kl, const void *pre, size_t pl,
                   const void *v, size_t vl)
{
    size_t need = b->len + 9 + kl + pl + vl;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *p = rill__realloc(b->p, cap);
        if (!p)
            return RILL_ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    unsigned char *p = b->p + b->len;
    p[0] = (unsigned char)kind;
    rill__wr32(p + 1, (uint32_t)kl);
    rill__wr32(p + 5, (uint32_t)(pl + vl));
    memcpy(p + 9, k, kl);
    if (pl)
        memcpy(p + 9 + kl, pre, pl);
    if (vl)
        memcpy(p + 9 + kl + pl, v, vl);
    b->len = need;
    b->n++;
    return RILL_OK;
}

/* The actions of one state's buffer (arg: an actrun). */
typedef struct actrun {
    unsigned sid;
    const actbuf *b;
} actrun;

static int apply_run(rill__kv *kv, MDB_txn *txn, void *arg, const char **what, int *sid)
{
    const actrun *r = arg;
    const actbuf *b = r->b;
    (void)sid;
    for (size_t off = 0; off < b->len;) {
        const unsigned char *p = b->p + off;
        size_t kl = rill__rd32(p + 1), vl = rill__rd32(p + 5);
        MDB_val k = {kl, (void *)(p + 9)}, v = {vl, (void *)(p + 9 + kl)};
        int rc;
        if (p[0] == RILL__KV_DELETE) {
            *what = "mdb_del";
            rc = mdb_del(txn, kv->dbi[r->sid], &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            *what = "mdb_put";
            rc = mdb_put(txn, kv->dbi[r->sid], &k, &v, 0);
        }
        if (rc)
            return rc;
        off += 9 + kl + vl;
    }
    return 0;
}

static int apply_actions(rill__kv *kv, unsigned sid, const actbuf *b)
{
    actrun r = {sid, b};
    rill__kvi_pause(kv);
    int rc = rill__kvi_write(kv, apply_run, &r, (int)sid, 0);
    if (rc)
        return rc;
    kv->n_flushes++;
    return rill__kvi_resume(kv);
}

/* Is the (key, namespace) of key part p[0..plen) cached? (The cache then
 * decides.) */
static int cached(rill__kv *kv, unsigned sid, uint16_t kg, const unsigned char *p, size_t plen)
{
    size_t klen = ((size_t)p[0] << 8) | p[1];
    size_t nslen = plen - 4 - klen;
    const unsigned char *key = p + 2, *ns = p + 4 + klen;
    uint64_t h = rill__kvc_hash(sid, kg, key, klen, ns, nslen);
    return rill__kvc_get(kv, h, sid, kg, key, klen, ns, nslen) != NULL;
}

/* Apply fn to the record (k, v) unless the cache holds its (key,
 * namespace); its decision goes to b. */
static int visit(rill__kv *kv, unsigned sid, const MDB_val *k, const MDB_val *v,
                 rill__kv_rec_fn fn, void *arg, actbuf *b)
{
    const unsigned char *kk = k->mv_data, *val = v->mv_data;
    size_t vlen = v->mv_size, plen = 0;
    int whole = !kv->is_map[sid];
    if (k->mv_size < 2)
        return RILL__KV_KEEP;
    uint16_t kg = (uint16_t)(((unsigned)kk[0] << 8) | kk[1]);
    if (rill__kvl_is_long(kk, k->mv_size)) {
        if (!(plen = rill__kvl_part_len(val, vlen)) || cached(kv, sid, kg, val, plen))
            return RILL__KV_KEEP;
        whole = 1;
    } else {
        size_t pl = rill__kvl_part_len(kk + 2, k->mv_size - 2);
        if (!pl || cached(kv, sid, kg, kk + 2, pl))
            return RILL__KV_KEEP;
    }
    const void *nv = NULL;
    size_t nl = 0;
    int d = fn(val + plen, vlen - plen, whole, &nv, &nl, arg);
    if (d == RILL__KV_DELETE || d == RILL__KV_REPLACE) {
        if (d == RILL__KV_DELETE)
            plen = nl = 0;
        if (act_add(b, d, kk, k->mv_size, val, plen, nv, nl))
            return rill__kvi_nomem(kv, "scanning state");
    }
    return d < 0 ? d : 0;
}

int rill__kv_db_scan(rill__kv *kv, unsigned sid, size_t max, rill__kv_rec_fn fn, void *arg,
                     size_t *changed)
{
    if (changed)
        *changed = 0;
    if (!kv->used[sid] || !max)
        return RILL_OK;
    int rc = rill__kvi_resume(kv);
    if (rc)
        return rc;
    if (!kv->resume[sid] && !(kv->resume[sid] = rill__malloc(kv->maxkey)))
        return rill__kvi_nomem(kv, "scanning state");
    MDB_cursor *cur;
    rc = mdb_cursor_open(kv->rtxn, kv->dbi[sid], &cur);
    if (rc)
        return rill__kvi_fail(kv, (int)sid, "mdb_cursor_open", rc);
    MDB_val k, v;
    if (kv->resume_len[sid]) {
        k.mv_size = kv->resume_len[sid];
        k.mv_data = kv->resume[sid];
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == kv->resume_len[sid] &&
            !memcmp(k.mv_data, kv->resume[sid], k.mv_size))
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    actbuf b = {0};
    size_t seen = 0;
    int err = RILL_OK;
    while (rc == 0 && seen < max) {
        seen++;
        if ((err = visit(kv, sid, &k, &v, fn, arg, &b)) != 0)
            break;
        memcpy(kv->resume[sid], k.mv_data, k.mv_size);
        kv->resume_len[sid] = k.mv_size;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (!err && rc == MDB_NOTFOUND)
        kv->resume_len[sid] = 0; /* next time from the start */
    else if (!err && rc)
        err = rill__kvi_fail(kv, (int)sid, "mdb_cursor_get", rc);
    if (!err && b.n) {
        err = apply_actions(kv, sid, &b);
        if (!err && changed)
            *changed = b.n;
    }
    rill__free(b.p);
    return err;
}

int rill__kv_db_count(rill__kv *kv, unsigned sid, size_t *n)
{
    int rc = rill__kvi_resume(kv);
    if (rc)
        return rc;
    MDB_stat st;
    rc = mdb_stat(kv->rtxn, kv->dbi[sid], &st);
    if (rc)
        return rill__kvi_fail(kv, (int)sid, "mdb_stat", rc);
    *n = st.ms_entries;
    return RILL_OK;
}

