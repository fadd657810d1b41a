/* kvview.c - a consistent view of a keyed-state store that another thread
 * reads while the store goes on changing: what snapshots are written from.
 *
 * Taking a view (on the store's thread) copies the dirty cache entries and
 * begins an LMDB read transaction; nothing is written. Reading it merges
 * the two in LMDB key order: a dirty entry replaces the record of its key
 * (for map state, every record of its (key, namespace) range), an absent
 * one hides it. The store's thread can meanwhile write LMDB (MVCC keeps
 * the view's pages); only map growth and close wait for the view's end.
 */
#include <stdlib.h>
#include <string.h>

#include "rill.h"
#include "state/blob.h"
#include "state/kv_int.h"
#include "util/alloc.h"

/* A copied entry, 8-aligned in a chunk: this header, the LMDB key prefix
 * (kg | key length | key | namespace length | namespace), the value. */
typedef struct vrec {
    uint32_t klen;
    uint32_t vlen;
    uint8_t sid;
    uint8_t absent;
} vrec;

#define VCHUNK ((size_t)1 << 20)

typedef struct vchunk {
    struct vchunk *next;
    size_t used, cap;
} vchunk;

typedef struct vidx {
    uint64_t pre; /* sid, then the key's first 7 bytes: most comparisons */
    const vrec *r;
} vidx;

struct rill__kvview {
    rill__kv *kv;
    MDB_txn *txn;
    vchunk *chunks;
    vidx *idx;
    size_t n;
    size_t *start; /* after sorting: idx range of sid is start[sid]..start[sid+1] */
    int sorted;
    unsigned char *kbuf; /* a map entry's LMDB key (maxkey bytes) */
    char err[RILL__ERRMSG_MAX];
};

static const unsigned char *vrec_key(const vrec *r) { return (const unsigned char *)(r + 1); }
static const unsigned char *vrec_val(const vrec *r) { return vrec_key(r) + r->klen; }

static vrec *vrec_alloc(rill__kvview *v, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    vchunk *c = v->chunks;
    if (!c || c->cap - c->used < size) {
        size_t cap = size > VCHUNK ? size : VCHUNK;
        vchunk *nc = rill__malloc(sizeof *nc + cap);
        if (!nc)
            return NULL;
        nc->next = c;
        nc->used = 0;
        nc->cap = cap;
        v->chunks = c = nc;
    }
    vrec *r = (vrec *)(void *)((unsigned char *)(c + 1) + c->used);
    c->used += size;
    return r;
}

/* Copy e; idx has room for every cached entry. */
static int copy_entry(rill__kvview *v, rill__kvent *e)
{
    int absent = (e->flags & RILL__KV_ABSENT) != 0;
    size_t klen = 6 + (size_t)e->klen + e->nslen, vlen = absent ? 0 : e->vlen;
    vrec *r = vrec_alloc(v, sizeof *r + klen + vlen);
    if (!r)
        return RILL_ENOMEM;
    r->klen = (uint32_t)klen;
    r->vlen = (uint32_t)vlen;
    r->sid = e->sid;
    r->absent = (uint8_t)absent;
    unsigned char *k = (unsigned char *)(r + 1);
    rill__kv_encode_key(k, e->kg, rill__kvent_key(e), e->klen, rill__kvent_ns(e), e->nslen);
    if (vlen)
        memcpy(k + klen, rill__kvent_val(e), vlen);
    uint64_t pre = (uint64_t)e->sid << 56;
    for (size_t i = 0; i < 7 && i < klen; i++)
        pre |= (uint64_t)k[i] << (48 - 8 * i);
    v->idx[v->n].pre = pre;
    v->idx[v->n++].r = r;
    return RILL_OK;
}

void rill__kv_view_free(rill__kvview *v)
{
    if (!v)
        return;
    rill__kv *kv = v->kv;
    if (v->txn)
        mdb_txn_abort(v->txn);
    while (v->chunks) {
        vchunk *c = v->chunks;
        v->chunks = c->next;
        rill__free(c);
    }
    rill__free(v->idx);
    rill__free(v->start);
    rill__free(v->kbuf);
    int counted = v->txn != NULL;
    rill__free(v);
    if (counted) {
        /* The last touch of kv: close may free it once readers is 0. */
        pthread_mutex_lock(&kv->vmu);
        if (--kv->readers == 0)
            pthread_cond_broadcast(&kv->vcv);
        pthread_mutex_unlock(&kv->vmu);
    }
}

int rill__kv_view(rill__kv *kv, rill__kvview **out)
{
    *out = NULL;
    rill__kvview *v = rill__calloc(1, sizeof *v);
    if (!v)
        return rill__kvi_nomem(kv, "taking a view of the state");
    v->kv = kv;
    v->kbuf = rill__malloc(kv->maxkey);
    if (!v->kbuf) {
        rill__kv_view_free(v);
        return rill__kvi_nomem(kv, "taking a view of the state");
    }
    if (kv->count && !(v->idx = rill__malloc(kv->count * sizeof *v->idx))) {
        rill__kv_view_free(v);
        return rill__kvi_nomem(kv, "copying state for a snapshot");
    }
    for (size_t i = 0; i < kv->cap; i++) {
        rill__kvent *e = kv->slots[i].e;
        if (i + 8 < kv->cap && kv->slots[i + 8].e)
            __builtin_prefetch(kv->slots[i + 8].e);
        if (e && (e->flags & RILL__KV_DIRTY) && copy_entry(v, e) != RILL_OK) {
            rill__kv_view_free(v);
            return rill__kvi_nomem(kv, "copying state for a snapshot");
        }
    }
    /* Counted first: growth must not remap under the transaction. */
    pthread_mutex_lock(&kv->vmu);
    kv->readers++;
    pthread_mutex_unlock(&kv->vmu);
    int rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &v->txn);
    if (rc) {
        v->txn = NULL;
        pthread_mutex_lock(&kv->vmu);
        if (--kv->readers == 0)
            pthread_cond_broadcast(&kv->vcv);
        pthread_mutex_unlock(&kv->vmu);
        rill__kv_view_free(v);
        return rill__kvi_fail(kv, -1, "mdb_txn_begin", rc);
    }
    *out = v;
    return RILL_OK;
}

const char *rill__kv_view_errmsg(const rill__kvview *v) { return v->err; }

static int idx_cmp(const void *pa, const void *pb)
{
    const vidx *a = pa, *b = pb;
    if (a->pre != b->pre)
        return a->pre < b->pre ? -1 : 1;
    return rill__keycmp(vrec_key(a->r), a->r->klen, vrec_key(b->r), b->r->klen);
}

/* Sort by pre (radix, least significant byte first, skipping bytes all
 * entries share), then runs of equal pre by their whole keys. */
static void sort_by_key(vidx *a, size_t n)
{
    vidx *tmp = n > 64 ? rill__malloc(n * sizeof *tmp) : NULL;
    if (!tmp) {
        qsort(a, n, sizeof *a, idx_cmp);
        return;
    }
    size_t (*cnt)[256] = rill__calloc(8, sizeof *cnt);
    if (!cnt) {
        rill__free(tmp);
        qsort(a, n, sizeof *a, idx_cmp);
        return;
    }
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++)
            cnt[b][(a[i].pre >> (8 * b)) & 255]++;
    vidx *src = a, *dst = tmp;
    for (int b = 0; b < 8; b++) {
        size_t *c = cnt[b], sum = 0;
        if (c[(a[0].pre >> (8 * b)) & 255] == n)
            continue; /* one value: nothing to do */
        for (int d = 0; d < 256; d++) {
            size_t k = c[d];
            c[d] = sum;
            sum += k;
        }
        for (size_t i = 0; i < n; i++)
            dst[c[(src[i].pre >> (8 * b)) & 255]++] = src[i];
        vidx *t = src;
        src = dst;
        dst = t;
    }
    if (src != a)
        memcpy(a, src, n * sizeof *a);
    rill__free(cnt);
    rill__free(tmp);
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && a[j].pre == a[i].pre)
            j++;
        if (j - i > 1)
            qsort(a + i, j - i, sizeof *a, idx_cmp);
        i = j;
    }
}

static int sort_idx(rill__kvview *v)
{
    size_t ns = v->kv->n;
    v->start = rill__calloc(ns + 1, sizeof *v->start);
    if (!v->start) {
        rill__fmt(v->err, "state store '%s': out of memory sorting a snapshot", v->kv->dir);
        return RILL_ENOMEM;
    }
    if (v->n > 1)
        sort_by_key(v->idx, v->n);
    size_t i = 0;
    for (size_t s = 0; s <= ns; s++) {
        while (i < v->n && v->idx[i].r->sid < s)
            i++;
        v->start[s] = i;
    }
    v->sorted = 1;
    return RILL_OK;
}

static int lmdb_fail(rill__kvview *v, unsigned sid, const char *what, int rc)
{
    rill__fmt(v->err, "state '%s' (state store '%s'): %s: %s", v->kv->names[sid], v->kv->dir,
              what, mdb_strerror(rc));
    return RILL_EIO;
}

static int bad_record(rill__kvview *v, unsigned sid)
{
    rill__fmt(v->err, "state '%s' (state store '%s'): a record without a valid key group",
              v->kv->names[sid], v->kv->dir);
    return RILL_EIO;
}

static unsigned kg_of(const unsigned char *k) { return ((unsigned)k[0] << 8) | k[1]; }

/* Emit a copied entry: its value, or its map's entries. */
static int emit_copy(rill__kvview *v, unsigned sid, const vrec *r, rill__kv_view_fn fn,
                     void *arg)
{
    const unsigned char *k = vrec_key(r), *val = vrec_val(r);
    if (r->absent)
        return 0;
    if (!v->kv->is_map[sid])
        return fn((uint16_t)kg_of(k), k + 2, r->klen - 2, val, r->vlen, arg);
    size_t off = 0, mkl, mvl;
    const unsigned char *mk, *mv;
    memcpy(v->kbuf, k, r->klen);
    while (rill__map_at(val, r->vlen, &off, &mk, &mkl, &mv, &mvl)) {
        if (r->klen + mkl > v->kv->maxkey)
            continue; /* refused by rill_state_map_put: never stored */
        memcpy(v->kbuf + r->klen, mk, mkl);
        int rc = fn((uint16_t)kg_of(k), v->kbuf + 2, r->klen + mkl - 2, mv, mvl, arg);
        if (rc)
            return rc;
    }
    return 0;
}

int rill__kv_view_scan(rill__kvview *v, unsigned sid, rill__kv_view_fn fn, void *arg)
{
    int rc;
    if (sid >= v->kv->n)
        return RILL_EINVAL;
    if (!v->sorted && (rc = sort_idx(v)) != RILL_OK)
        return rc;
    size_t i = v->start[sid], end = v->start[sid + 1];
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(v->txn, v->kv->dbi[sid], &cur)) != 0)
        return lmdb_fail(v, sid, "mdb_cursor_open", rc);
    MDB_val k, d;
    int mrc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
    rc = 0;
    while (!rc && (mrc == 0 || i < end)) {
        const vrec *r = i < end ? v->idx[i].r : NULL;
        if (i + 8 < end)
            __builtin_prefetch(v->idx[i + 8].r);
        if (mrc == 0 && k.mv_size < 2) {
            rc = bad_record(v, sid);
            break;
        }
        if (mrc == 0 && r) {
            const unsigned char *rk = vrec_key(r);
            if (k.mv_size >= r->klen && !memcmp(k.mv_data, rk, r->klen)) {
                mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT); /* replaced by the copy */
                continue;
            }
            if (rill__keycmp(k.mv_data, k.mv_size, rk, r->klen) > 0) {
                rc = emit_copy(v, sid, r, fn, arg);
                i++;
                continue;
            }
        }
        if (mrc == 0) {
            const unsigned char *kk = k.mv_data;
            rc = fn((uint16_t)kg_of(kk), kk + 2, k.mv_size - 2, d.mv_data, d.mv_size, arg);
            mrc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
        } else {
            rc = emit_copy(v, sid, r, fn, arg);
            i++;
        }
    }
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    if (mrc != 0 && mrc != MDB_NOTFOUND)
        return lmdb_fail(v, sid, "mdb_cursor_get", mrc);
    return RILL_OK;
}
