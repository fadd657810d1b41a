/* kv.h - the keyed-state store of one stateful operator subtask.
 *
 * One LMDB environment in a directory of its own, one named database (DBI)
 * per keyed state, behind a bounded write-back cache. The cache maps
 * (state id, key group, key, namespace) to a value blob; it also remembers
 * absent keys, so a miss on a new key reaches LMDB once. When the cache
 * grows past its byte budget, every dirty entry goes to LMDB in one write
 * transaction (sorted by LMDB key) and clean entries are evicted (CLOCK)
 * down to 3/4 of the budget. A full LMDB map grows (doubles) and the
 * transaction is retried. Everything runs on the subtask's thread, but
 * views (below), which other threads read.
 *
 * LMDB key of a record (the order of key groups is the order of records,
 * which snapshots and rescaling read as contiguous ranges):
 *   kg (2 bytes, big-endian) | key length (2, BE) | key |
 *   namespace length (2, BE) | namespace | [map key]
 * Value state (also reducing, aggregating) and list state: one record per
 * (key, namespace), the blob as it is. Map state: one record per map entry
 * (key = prefix + map key, value = the entry's value); in the cache the
 * whole map of a (key, namespace) is one blob in the map encoding of
 * blob.h, loaded by a range scan and written back as "delete the range,
 * put every entry". A record whose key would be longer than LMDB's key
 * size (rill__kv_max_key) is a long record instead: kg | FF FF | a hash
 * of the (key, namespace) | a number, with the key kept in the value and
 * compared on every read; the entries of a map that do not fit are one
 * long record of that (key, namespace) (kv_int.h has the layout). Keys
 * and namespaces may be up to 65535 bytes, map keys longer still.
 *
 * Pointers to entries (rill__kvent) stay valid until the next call that
 * may evict (rill__kv_tend / spill / drop) or move the entry (set/reserve
 * of that entry, which update the caller's pointer). rill__kv_gen changes
 * whenever entries may have been freed, so callers can memoize an entry.
 */
#ifndef RILL_STATE_KV_H
#define RILL_STATE_KV_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct rill__kv rill__kv;

/* Initial LMDB map size of a new store (bytes; default 64 MiB). Tests set
 * it small to exercise map growth. Read at open. */
extern size_t rill__kv_initial_map_size;
/* Extra mdb_env_open flags (default 0; e.g. MDB_WRITEMAP for measuring). */
extern unsigned rill__kv_extra_env_flags;
/* The 128-bit hash (16 bytes into out) that names a long record (default:
 * XXH3_128bits, big-endian). Tests replace it to make hashes collide. */
extern void (*rill__kv_long_hash)(const void *p, size_t len, unsigned char *out);

/* Entry flags. */
enum {
    RILL__KV_DIRTY = 1,  /* differs from LMDB: written by the next flush */
    RILL__KV_ABSENT = 2, /* no value (deleted if DIRTY) */
    RILL__KV_REF = 4,    /* used since the CLOCK hand last passed */
    RILL__KV_INDB = 8    /* LMDB holds a record (or map range) for it */
};

/* A cache entry: this header, the key, the namespace, padding to 8, then
 * vcap bytes of value of which vlen are used. */
typedef struct rill__kvent {
    uint32_t vlen;
    uint32_t vcap;
    uint16_t kg;
    uint16_t klen;
    uint16_t nslen;
    uint8_t sid;
    uint8_t flags;
} rill__kvent;

#define RILL__KV_VOFF(klen, nslen) \
    ((sizeof(rill__kvent) + (size_t)(klen) + (size_t)(nslen) + 7) & ~(size_t)7)
/* Largest value blob of one entry. */
#define RILL__KV_VALUE_MAX ((size_t)UINT32_MAX - 64)

/* a[0..n) == b[0..n), without a call for short keys. */
static inline int rill__kv_same_bytes(const void *a, const void *b, size_t n)
{
    const unsigned char *x = (const unsigned char *)a, *y = (const unsigned char *)b;
    if (n >= 8 && n <= 16) {
        uint64_t p, q, r, s;
        memcpy(&p, x, 8);
        memcpy(&q, y, 8);
        memcpy(&r, x + n - 8, 8);
        memcpy(&s, y + n - 8, 8);
        return ((p ^ q) | (r ^ s)) == 0;
    }
    if (n >= 4 && n < 8) {
        uint32_t p, q, r, s;
        memcpy(&p, x, 4);
        memcpy(&q, y, 4);
        memcpy(&r, x + n - 4, 4);
        memcpy(&s, y + n - 4, 4);
        return ((p ^ q) | (r ^ s)) == 0;
    }
    if (n < 4) {
        for (size_t i = 0; i < n; i++)
            if (x[i] != y[i])
                return 0;
        return 1;
    }
    return memcmp(x, y, n) == 0;
}

static inline unsigned char *rill__kvent_key(rill__kvent *e)
{
    return (unsigned char *)(e + 1);
}
static inline unsigned char *rill__kvent_ns(rill__kvent *e)
{
    return (unsigned char *)(e + 1) + e->klen;
}
static inline unsigned char *rill__kvent_val(rill__kvent *e)
{
    return (unsigned char *)e + RILL__KV_VOFF(e->klen, e->nslen);
}
static inline int rill__kvent_absent(const rill__kvent *e)
{
    return (e->flags & RILL__KV_ABSENT) != 0;
}

/* The fields of the store read on every state call (the head of struct
 * rill__kv). */
typedef struct rill__kvhot {
    size_t bytes;  /* accounted cache memory: entries and the table */
    size_t budget; /* cache_bytes */
    uint64_t gen;  /* changes when entries may have been freed */
} rill__kvhot;

/* Open a store in dir (created with its parents; LMDB files left there by
 * an earlier run are removed) with one DBI per name (is_map[i] != 0 for
 * map states) and a cache of cache_bytes. At most 255 states. On error
 * returns RILL_EIO/RILL_ENOMEM/RILL_EINVAL with a message in err
 * (RILL__ERRMSG_MAX bytes) naming the directory. */
int rill__kv_open(rill__kv **out, const char *dir, const char *const *names,
                  const unsigned char *is_map, size_t n, size_t cache_bytes, char *err);
/* Close and remove the directory with its files. Accepts NULL. */
void rill__kv_close(rill__kv *kv);
/* Message of the last failed call, naming the state and the directory. */
const char *rill__kv_errmsg(const rill__kv *kv);
/* Largest LMDB key: a record whose key (6 + key + namespace [+ map key]
 * bytes) is longer is a long record. */
size_t rill__kv_max_key(const rill__kv *kv);

static inline uint64_t rill__kv_gen(const rill__kv *kv)
{
    return ((const rill__kvhot *)(const void *)kv)->gen;
}

/* Write every dirty entry, then evict clean entries down to 3/4 of the
 * budget. */
int rill__kv_spill(rill__kv *kv);
/* Keep the cache within budget: call at the start of every state call,
 * before looking entries up (it may free entries). */
static inline int rill__kv_tend(rill__kv *kv)
{
    const rill__kvhot *h = (const rill__kvhot *)(const void *)kv;
    return h->bytes > h->budget ? rill__kv_spill(kv) : 0;
}
static inline int rill__kv_over_budget(const rill__kv *kv)
{
    const rill__kvhot *h = (const rill__kvhot *)(const void *)kv;
    return h->bytes > h->budget;
}
/* Write every dirty entry to LMDB (checkpoints); nothing is evicted. */
int rill__kv_flush(rill__kv *kv);
/* Flush, then evict every entry (tests; memory pressure). */
int rill__kv_drop_cache(rill__kv *kv);

/* The entry of (sid, kg, key, ns), read from LMDB on a cache miss (an
 * absent value gives an ABSENT entry). RILL_EINVAL when klen or nslen is
 * above 65535. */
int rill__kv_find(rill__kv *kv, unsigned sid, uint16_t kg, const void *key, size_t klen,
                  const void *ns, size_t nslen, rill__kvent **out);

/* Cache-line prefetch for a coming rill__kv_find of (sid, kg, key, ns):
 * stage 0 fetches the table slot, stage 1 (issued later, once the slot is
 * in cache) the entry it points to. Never changes anything. */
void rill__kv_prefetch(rill__kv *kv, unsigned sid, uint16_t kg, const void *key, size_t klen,
                       const void *ns, size_t nslen, int stage);

/* Out-of-line parts of set/reserve. */
int rill__kv_set_slow(rill__kv *kv, rill__kvent **e, const void *val, size_t len);
int rill__kv_reserve_slow(rill__kv *kv, rill__kvent **e, size_t cap);

/* memmove, without a call for short lengths. */
static inline void rill__kv_move(void *dst, const void *src, size_t n)
{
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n) {
        memmove(d, s, n);
    }
}

/* Set the value of *e to val[0..len) (val may point anywhere, even into
 * the entry); the entry becomes present and dirty. *e may move. */
static inline int rill__kv_set(rill__kv *kv, rill__kvent **e, const void *val, size_t len)
{
    rill__kvent *x = *e;
    if (len <= x->vcap) {
        rill__kv_move(rill__kvent_val(x), val, len);
        x->vlen = (uint32_t)len;
        x->flags = (uint8_t)((x->flags & ~RILL__KV_ABSENT) | RILL__KV_DIRTY);
        return 0;
    }
    return rill__kv_set_slow(kv, e, val, len);
}
/* Make room for cap bytes of value, keeping the first vlen bytes (grows
 * geometrically). *e may move. */
static inline int rill__kv_reserve(rill__kv *kv, rill__kvent **e, size_t cap)
{
    return cap <= (*e)->vcap ? 0 : rill__kv_reserve_slow(kv, e, cap);
}
/* After editing the value in place: set its length (0 with absent = 1
 * deletes it) and mark it dirty. */
static inline void rill__kv_changed(rill__kvent *e, size_t len, int absent)
{
    e->vlen = (uint32_t)len;
    e->flags = (uint8_t)((e->flags & ~RILL__KV_ABSENT) | RILL__KV_DIRTY |
                         (absent ? RILL__KV_ABSENT : 0));
}

/* Make *e absent and dirty (deleted from LMDB by the next flush), giving
 * back a large value's memory. *e may move. */
void rill__kv_clear(rill__kv *kv, rill__kvent **e);

/* Background work (TTL): visit up to max cache slots from where the last
 * call stopped; fn may edit an entry in place (rill__kv_changed) but not
 * resize it. Stops at and returns fn's first non-zero result. */
typedef int (*rill__kv_entry_fn)(rill__kvent *e, void *arg);
int rill__kv_cache_scan(rill__kv *kv, size_t max, rill__kv_entry_fn fn, void *arg);

/* Decision on an LMDB record (rill__kv_db_scan). */
enum { RILL__KV_KEEP = 0, RILL__KV_DELETE = 1, RILL__KV_REPLACE = 2 };
/* fn looks at a record's value: the whole value of a (key, namespace) as
 * the cache holds it, or for map state, when whole is 0, one map entry's
 * value (whole is 1 for a long record: a map blob of several entries).
 * RILL__KV_REPLACE sets nval and nlen (borrowed until the next call of
 * fn). Negative: error, stops the scan. */
typedef int (*rill__kv_rec_fn)(const void *val, size_t len, int whole, const void **nval,
                               size_t *nlen, void *arg);
/* Visit up to max LMDB records of sid, resuming after the last one seen
 * (wrapping around at the end), skipping those whose (key, namespace) is
 * cached (the cache is authoritative for them), and apply fn's decisions
 * in one write transaction. *changed (may be NULL) gets the number of
 * records deleted or replaced. */
int rill__kv_db_scan(rill__kv *kv, unsigned sid, size_t max, rill__kv_rec_fn fn, void *arg,
                     size_t *changed);

/* Number of LMDB records of sid (map state: map entries, but a long
 * record holds the entries of a map that do not fit), as flushed. */
int rill__kv_db_count(rill__kv *kv, unsigned sid, size_t *n);

typedef struct rill__kvstats {
    size_t entries;      /* cached entries */
    size_t bytes;        /* accounted cache memory */
    size_t budget;
    size_t map_size;     /* current LMDB map size */
    uint64_t spills;     /* budget overflows handled */
    uint64_t flushes;    /* write transactions committed */
    uint64_t map_grows;  /* map size doublings */
    uint64_t evictions;  /* entries evicted */
    uint64_t db_reads;   /* cache misses that read LMDB */
} rill__kvstats;
void rill__kv_stats(const rill__kv *kv, rill__kvstats *s);

/* For tests and tools: the environment and the DBI of sid. */
MDB_env *rill__kv_env(rill__kv *kv);
MDB_dbi rill__kv_dbi(const rill__kv *kv, unsigned sid);
/* A view: the store as it is when the view is taken, readable from
 * another thread while the store goes on being used (snapshots). Taking
 * it (on the store's thread) copies the dirty cache entries (memory not
 * counted in the cache budget, freed with the view) and begins an LMDB
 * read transaction; nothing is written. A map growth of the store and its
 * close wait until every view is freed. One thread at a time reads a
 * view; it may be freed by another thread than the one that took it. */
typedef struct rill__kvview rill__kvview;
int rill__kv_view(rill__kv *kv, rill__kvview **out);
/* fn gets each record: its key group, its LMDB key without the key group
 * in the form above (a long record's too, which may thus be longer than
 * rill__kv_max_key), its value. A long record of map state comes as one
 * call per map entry. A non-zero result stops the scan and is returned. */
typedef int (*rill__kv_view_fn)(uint16_t kg, const unsigned char *key, size_t klen,
                                const void *val, size_t vlen, void *arg);
/* Visit the records of sid as of the view, in LMDB key order (map state:
 * one per map entry), but for long records: their entries come among
 * those of their key group, not in key order (key groups stay in
 * increasing order). RILL_EIO/RILL_ENOMEM with rill__kv_view_errmsg. */
int rill__kv_view_scan(rill__kvview *v, unsigned sid, rill__kv_view_fn fn, void *arg);
const char *rill__kv_view_errmsg(const rill__kvview *v);
/* Accepts NULL. */
void rill__kv_view_free(rill__kvview *v);

/* Tell the store that sid's DBI may hold records written behind its back
 * (restore): cache misses then read LMDB. */
void rill__kv_mark_used(rill__kv *kv, unsigned sid);
/* Restore: put records into sid's DBI, behind the cache's back. buf[0..len)
 * holds them one after the other, each [u32 key length][u32 value
 * length][key][value] (native order), keys being LMDB keys as kv.h
 * describes them (map state: one per map entry); one longer than
 * rill__kv_max_key goes into a long record (the entries of a map best
 * come one after the other). RILL_EINVAL for a key that is not of that
 * form, before anything is written. One write transaction for all (a full
 * map grows and the transaction is retried; one with too many dirty pages
 * is split). Marks sid used. The cache must hold no entry of these keys
 * (rill__kv_drop_cache first). */
int rill__kv_load(rill__kv *kv, unsigned sid, const unsigned char *buf, size_t len);
/* Remove every record of every state from LMDB and the cache (a failed
 * restore). Dirty entries are dropped, not written. */
int rill__kv_empty(rill__kv *kv);
/* Encode the LMDB key prefix of (kg, key, ns) into buf (6 + klen + nslen
 * bytes); returns its length. */
size_t rill__kv_encode_key(unsigned char *buf, uint16_t kg, const void *key, size_t klen,
                           const void *ns, size_t nslen);

#endif
