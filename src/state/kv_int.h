/* kv_int.h - the insides of the keyed-state store, shared by kv.c (LMDB,
 * spilling), kvcache.c (the cache table, its slab and eviction), kvlong.c
 * (long records), kvscan.c, kvview.c and kvload.c. */
#ifndef RILL_STATE_KV_INT_H
#define RILL_STATE_KV_INT_H

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <pthread.h>

#include "state/kv.h"
#include "util/error.h"

/* Open addressing with linear probing; e == NULL marks an empty slot. */
typedef struct rill__kvslot {
    uint64_t h;
    rill__kvent *e;
} rill__kvslot;

/* Entries up to RILL__KV_SLAB_MAX bytes come from per-size slabs (8-byte
 * classes), larger ones from the allocator. */
#define RILL__KV_SLAB_MAX 512
#define RILL__KV_NCLASS (RILL__KV_SLAB_MAX / 8)
/* Bookkeeping of the allocator for a large entry, counted in the budget. */
#define RILL__KV_MALLOC_OVERHEAD 16

typedef struct rill__kvclass {
    void *free;          /* freed objects, linked through their first word */
    unsigned char *cur;  /* bump region of the newest chunk */
    unsigned char *end;
    size_t next_chunk;   /* size of the next chunk */
} rill__kvclass;

struct rill__kv {
    rill__kvhot hot; /* first: kv.h reads it through a cast */

    /* Cache table. */
    rill__kvslot *slots;
    size_t cap; /* power of two */
    size_t count;
    size_t hand; /* CLOCK hand */
    size_t scan; /* rill__kv_cache_scan position */
    rill__kvclass cls[RILL__KV_NCLASS];
    void *chunks; /* slab chunks, linked through their first word */

    /* LMDB. */
    MDB_env *env;
    MDB_txn *rtxn;  /* read transaction kept between writes */
    int rtxn_live;  /* rtxn is renewed (not reset) */
    size_t n;       /* states */
    MDB_dbi *dbi;
    unsigned char *is_map;
    unsigned char *used; /* the DBI may hold records */
    char **names;
    char *dir;
    size_t map_size;
    size_t maxkey;
    unsigned char *kbuf; /* an LMDB key being built (maxkey bytes) */
    unsigned char *tmp;  /* loading a map */
    size_t tmpcap;
    /* Long records (kvlong.c). */
    unsigned char *longs; /* per state: its DBI may hold long records */
    unsigned char *lbuf;  /* a key part being built */
    size_t lcap;
    unsigned char *obuf;  /* a map's entries that go to its long record */
    size_t ocap;
    unsigned char **resume; /* rill__kv_db_scan: last LMDB key seen, per state */
    size_t *resume_len;

    uint64_t n_spills, n_flushes, n_grows, n_evictions, n_db_reads;
    char err[RILL__ERRMSG_MAX];

    /* Views (kvview.c) read LMDB from other threads: map growth and close
     * wait until none is left. */
    pthread_mutex_t vmu;
    pthread_cond_t vcv;
    int vinit;   /* vmu and vcv exist */
    int readers; /* live views */
};

static inline uint64_t rill__kvc_hash(unsigned sid, uint16_t kg, const void *key, size_t klen,
                                      const void *ns, size_t nslen)
{
    uint64_t seed = (((uint64_t)sid << 16) | kg) * 0x9E3779B97F4A7C15ull;
    uint64_t h = XXH3_64bits_withSeed(key, klen, seed);
    if (nslen)
        h = XXH3_64bits_withSeed(ns, nslen, h);
    return h;
}

static inline uint64_t rill__kvc_hash_ent(rill__kvent *e)
{
    return rill__kvc_hash(e->sid, e->kg, rill__kvent_key(e), e->klen, rill__kvent_ns(e),
                          e->nslen);
}

/* Bytes an entry takes in memory (accounted). */
static inline size_t rill__kvc_size(const rill__kvent *e)
{
    size_t n = RILL__KV_VOFF(e->klen, e->nslen) + e->vcap;
    return n <= RILL__KV_SLAB_MAX ? n : n + RILL__KV_MALLOC_OVERHEAD;
}

static inline int rill__kvc_same(const rill__kvent *e, unsigned sid, uint16_t kg,
                                 const void *key, size_t klen, const void *ns, size_t nslen)
{
    return e->sid == sid && e->kg == kg && e->klen == klen && e->nslen == nslen &&
           rill__kv_same_bytes(e + 1, key, klen) &&
           (!nslen || rill__kv_same_bytes((const unsigned char *)(e + 1) + klen, ns, nslen));
}

/* The cached entry, or NULL. */
static inline rill__kvent *rill__kvc_get(rill__kv *kv, uint64_t h, unsigned sid, uint16_t kg,
                                         const void *key, size_t klen, const void *ns,
                                         size_t nslen)
{
    size_t mask = kv->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        const rill__kvslot *s = &kv->slots[i];
        if (!s->e)
            return NULL;
        if (s->h == h && rill__kvc_same(s->e, sid, kg, key, klen, ns, nslen))
            return s->e;
    }
}

/* LMDB helpers of kv.c shared with kvscan.c. */
/* Message naming the state (sid >= 0) and the directory; RILL_EIO (or
 * RILL_ENOMEM for ENOMEM). */
int rill__kvi_fail(rill__kv *kv, int sid, const char *what, int rc);
int rill__kvi_nomem(rill__kv *kv, const char *what);
/* Reset / renew the read transaction (writes and map growth need it
 * reset). */
void rill__kvi_pause(rill__kv *kv);
int rill__kvi_resume(rill__kv *kv);
/* Double the map (waits until no view is live: no transaction may be
 * active in the process). */
int rill__kvi_grow(rill__kv *kv);
/* Wait until no view of kv is live. */
void rill__kvi_wait_views(rill__kv *kv);
/* What a write transaction does (rill__kvi_write): its changes in txn. On
 * failure it names the LMDB call in *what and may name the state in *sid. */
typedef int (*rill__kvi_body)(rill__kv *kv, MDB_txn *txn, void *arg, const char **what,
                              int *sid);
/* Run body in a write transaction and commit it; when the map is full, grow
 * it and run it all again. sid names the state the transaction is about (-1:
 * several). Returns RILL_OK; MDB_TXN_FULL, unreported, when split is set
 * (the caller then makes its transactions smaller); any other failure is
 * reported (rill__kvi_fail). The read transaction must be paused. */
int rill__kvi_write(rill__kv *kv, rill__kvi_body body, void *arg, int sid, int split);

/* ---- long records (kvlong.c) --------------------------------------------
 * A record whose LMDB key (kv.h) would be longer than maxkey is stored in a
 * long record instead:
 *   LMDB key:  kg (2 bytes, BE) | FF FF | hash (16) | n (u32 BE)
 *   value:     key part | payload
 * The key part is the LMDB key of the (key, namespace) without the key
 * group: key length (2, BE) | key | namespace length (2, BE) | namespace.
 * hash is rill__kv_long_hash of the key part; n tells apart the records
 * of one key group whose hashes are equal: a lookup visits every record of
 * (kg, hash) and compares the key parts, so two keys never share a record.
 * FF FF cannot start a direct key (the key length of a direct key is below
 * maxkey), so long records sort after the direct ones of their key group,
 * and a key-group range still covers both.
 * Value, list, reducing and aggregating state: the payload is the value.
 * Map state: the payload is a map blob (blob.h) of the entries of the
 * (key, namespace) that do not fit a direct record: all of them when the
 * key part is long, those with a long map key otherwise (the others are
 * direct records). */
#define RILL__KVL_KEY 24

static inline int rill__kvl_is_long(const void *k, size_t kl)
{
    const unsigned char *p = (const unsigned char *)k;
    return kl >= 4 && p[2] == 0xFF && p[3] == 0xFF;
}

/* Encode the key part of (key, ns) into p; returns its length. */
static inline size_t rill__kvl_encode_part(unsigned char *p, const void *key, size_t klen,
                                           const void *ns, size_t nslen)
{
    p[0] = (unsigned char)(klen >> 8);
    p[1] = (unsigned char)klen;
    if (klen)
        memcpy(p + 2, key, klen);
    p[2 + klen] = (unsigned char)(nslen >> 8);
    p[3 + klen] = (unsigned char)nslen;
    if (nslen)
        memcpy(p + 4 + klen, ns, nslen);
    return 4 + klen + nslen;
}

/* The length of the key part at the start of v[0..len) (a long record's
 * value), or 0 when it does not fit. */
static inline size_t rill__kvl_part_len(const unsigned char *v, size_t len)
{
    if (len < 4)
        return 0;
    size_t kl = ((size_t)v[0] << 8) | v[1];
    if (len - 4 < kl)
        return 0;
    size_t nl = ((size_t)v[2 + kl] << 8) | v[3 + kl];
    return len - 4 - kl < nl ? 0 : 4 + kl + nl;
}

/* Encode the key part of (key, ns) into kv->lbuf (grown): its length, or
 * 0 when out of memory. */
size_t rill__kvl_part(rill__kv *kv, const void *key, size_t klen, const void *ns, size_t nslen);
/* Look up the long record of (kg, part[0..plen)) of sid in txn: *found = 1
 * with *val its payload and lkey (RILL__KVL_KEY bytes) its LMDB key, or
 * *found = 0 with lkey naming a free record for it. 0 or an LMDB error. */
int rill__kvl_find(rill__kv *kv, MDB_txn *txn, unsigned sid, uint16_t kg,
                   const unsigned char *part, size_t plen, unsigned char *lkey, MDB_val *val,
                   int *found);
/* Put payload[0..len) as the long record of (kg, part) (replacing it), or
 * with del set, delete that record if there is one. LMDB errors. */
int rill__kvl_put(rill__kv *kv, MDB_txn *txn, unsigned sid, uint16_t kg,
                  const unsigned char *part, size_t plen, const void *payload, size_t len,
                  int del);
/* Put part | payload as the long record lkey (from rill__kvl_find). */
int rill__kvl_put_at(rill__kv *kv, MDB_txn *txn, unsigned sid, const unsigned char *lkey,
                     const unsigned char *part, size_t plen, const void *payload, size_t len);

int rill__kvc_init(rill__kv *kv);
/* Free every entry, the slabs and the table. */
void rill__kvc_fini(rill__kv *kv);
/* A new entry (not in the table) with room for at least vcap value bytes,
 * vlen 0, flags 0; NULL when out of memory. Accounts its bytes. */
rill__kvent *rill__kvc_new(rill__kv *kv, unsigned sid, uint16_t kg, const void *key,
                           size_t klen, const void *ns, size_t nslen, size_t vcap);
/* Free an entry that is not in the table. */
void rill__kvc_free(rill__kv *kv, rill__kvent *e);
/* Add e (not cached yet) under hash h; may grow the table. */
int rill__kvc_insert(rill__kv *kv, uint64_t h, rill__kvent *e);
/* Give *e room for cap value bytes (a new entry replaces it in the
 * table; its first vlen value bytes are kept). */
int rill__kvc_regrow(rill__kv *kv, rill__kvent **e, size_t cap);
/* Evict clean entries (CLOCK) until the accounted bytes are <= target or
 * no clean entry is left; with all != 0 every clean entry goes. */
void rill__kvc_evict(rill__kv *kv, size_t target, int all);

#endif
