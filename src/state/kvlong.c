/* kvlong.c - long records of the keyed-state store: the (key, namespace)
 * pairs and map entries whose LMDB key would exceed LMDB's key size live
 * under a hash of their key part, with the key part kept in the value and
 * compared on every lookup (kv_int.h describes the layout). */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "rill.h"
#include "state/blob.h"
#include "state/kv_int.h"
#include "util/alloc.h"

static void hash128(const void *p, size_t len, unsigned char *out)
{
    XXH128_canonical_t c;
    XXH128_canonicalFromHash(&c, XXH3_128bits(p, len));
    memcpy(out, c.digest, 16);
}

void (*rill__kv_long_hash)(const void *p, size_t len, unsigned char *out) = hash128;

size_t rill__kvl_part(rill__kv *kv, const void *key, size_t klen, const void *ns, size_t nslen)
{
    if (rill__grow((void **)&kv->lbuf, &kv->lcap, 4 + klen + nslen, 1) != RILL_OK)
        return 0;
    return rill__kvl_encode_part(kv->lbuf, key, klen, ns, nslen);
}

static uint32_t rd_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void wr_be32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

int rill__kvl_find(rill__kv *kv, MDB_txn *txn, unsigned sid, uint16_t kg,
                   const unsigned char *part, size_t plen, unsigned char *lkey, MDB_val *val,
                   int *found)
{
    *found = 0;
    lkey[0] = (unsigned char)(kg >> 8);
    lkey[1] = (unsigned char)kg;
    lkey[2] = lkey[3] = 0xFF;
    rill__kv_long_hash(part, plen, lkey + 4);
    wr_be32(lkey + 20, 0);
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, kv->dbi[sid], &cur);
    if (rc)
        return rc;
    /* The records of (kg, hash) in the order of n: the first gap is free. */
    uint32_t free_n = 0;
    MDB_val k = {RILL__KVL_KEY, lkey}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == RILL__KVL_KEY && !memcmp(k.mv_data, lkey, 20)) {
        const unsigned char *kk = k.mv_data;
        /* A key part encodes its lengths: equal leading bytes, equal key. */
        if (v.mv_size >= plen && !memcmp(v.mv_data, part, plen)) {
            memcpy(lkey + 20, kk + 20, 4);
            val->mv_size = v.mv_size - plen;
            val->mv_data = (unsigned char *)v.mv_data + plen;
            *found = 1;
            break;
        }
        if (rd_be32(kk + 20) == free_n)
            free_n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (*found)
        return 0;
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    if (free_n == UINT32_MAX)
        return MDB_KEYEXIST; /* 2^32 keys of one hash: never with a real hash */
    wr_be32(lkey + 20, free_n);
    return 0;
}

int rill__kvl_put_at(rill__kv *kv, MDB_txn *txn, unsigned sid, const unsigned char *lkey,
                     const unsigned char *part, size_t plen, const void *payload, size_t len)
{
    if (len > (size_t)UINT32_MAX - plen)
        return MDB_BAD_VALSIZE;
    MDB_val k = {RILL__KVL_KEY, (void *)lkey}, v = {plen + len, NULL};
    int rc = mdb_put(txn, kv->dbi[sid], &k, &v, MDB_RESERVE);
    if (rc)
        return rc;
    memcpy(v.mv_data, part, plen);
    if (len)
        memcpy((unsigned char *)v.mv_data + plen, payload, len);
    kv->longs[sid] = 1;
    return 0;
}

int rill__kvl_put(rill__kv *kv, MDB_txn *txn, unsigned sid, uint16_t kg,
                  const unsigned char *part, size_t plen, const void *payload, size_t len,
                  int del)
{
    unsigned char lkey[RILL__KVL_KEY];
    MDB_val old;
    int found;
    int rc = rill__kvl_find(kv, txn, sid, kg, part, plen, lkey, &old, &found);
    if (rc)
        return rc;
    if (!del)
        return rill__kvl_put_at(kv, txn, sid, lkey, part, plen, payload, len);
    if (!found)
        return 0;
    MDB_val k = {RILL__KVL_KEY, lkey};
    rc = mdb_del(txn, kv->dbi[sid], &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}
