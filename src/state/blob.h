/* blob.h - byte encodings of list and map state values.
 *
 * A list is its elements one after the other, each [u32 length][bytes].
 * A map is its entries sorted by key bytes (memcmp order, a prefix before
 * the longer key: LMDB's order), each [u32 key length][u32 value
 * length][key][value]. Lengths are in native byte order (the blobs live
 * in the cache and in this subtask's working LMDB only).
 * Readers check every length against the blob's end, so a stale cursor
 * or a damaged blob ends an iteration instead of reading out of bounds.
 */
#ifndef RILL_STATE_BLOB_H
#define RILL_STATE_BLOB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define RILL__LIST_HDR 4
#define RILL__MAP_HDR 8

static inline uint32_t rill__rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline void rill__wr32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline int64_t rill__rd64(const unsigned char *p)
{
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline void rill__wr64(unsigned char *p, int64_t v) { memcpy(p, &v, 8); }

/* List element at *off: 1 with item/len set and *off moved past it, 0 at
 * the end (or on a length that does not fit). */
static inline int rill__list_at(const unsigned char *b, size_t blen, size_t *off,
                                const unsigned char **item, size_t *len)
{
    size_t o = *off;
    if (o > blen || blen - o < RILL__LIST_HDR)
        return 0;
    size_t n = rill__rd32(b + o);
    if (n > blen - o - RILL__LIST_HDR)
        return 0;
    *item = b + o + RILL__LIST_HDR;
    *len = n;
    *off = o + RILL__LIST_HDR + n;
    return 1;
}

/* Append an element (capacity checked by the caller); returns the new
 * blob length. */
static inline size_t rill__list_put(unsigned char *b, size_t blen, const void *pre,
                                    size_t pre_len, const void *item, size_t len)
{
    rill__wr32(b + blen, (uint32_t)(pre_len + len));
    if (pre_len)
        memcpy(b + blen + RILL__LIST_HDR, pre, pre_len);
    if (len)
        memcpy(b + blen + RILL__LIST_HDR + pre_len, item, len);
    return blen + RILL__LIST_HDR + pre_len + len;
}

/* Map entry at *off, as rill__list_at. */
static inline int rill__map_at(const unsigned char *b, size_t blen, size_t *off,
                               const unsigned char **k, size_t *kl, const unsigned char **v,
                               size_t *vl)
{
    size_t o = *off;
    if (o > blen || blen - o < RILL__MAP_HDR)
        return 0;
    size_t a = rill__rd32(b + o), c = rill__rd32(b + o + 4);
    size_t room = blen - o - RILL__MAP_HDR;
    if (a > room || c > room - a)
        return 0;
    *k = b + o + RILL__MAP_HDR;
    *kl = a;
    *v = *k + a;
    *vl = c;
    *off = o + RILL__MAP_HDR + a + c;
    return 1;
}

/* memcmp order, a prefix first (LMDB's default key order). */
static inline int rill__keycmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

/* Where key is in the map (*found = 1) or would be inserted (*found = 0):
 * an offset of the blob. */
static inline size_t rill__map_find(const unsigned char *b, size_t blen, const void *key,
                                    size_t klen, int *found)
{
    size_t off = 0;
    for (;;) {
        size_t at = off, kl, vl;
        const unsigned char *k, *v;
        if (!rill__map_at(b, blen, &off, &k, &kl, &v, &vl)) {
            *found = 0;
            return at;
        }
        int c = rill__keycmp(k, kl, key, klen);
        if (c >= 0) {
            *found = c == 0;
            return at;
        }
    }
}

/* Length of the entry at off. */
static inline size_t rill__map_entry_len(const unsigned char *b, size_t off)
{
    return RILL__MAP_HDR + (size_t)rill__rd32(b + off) + rill__rd32(b + off + 4);
}

/* Put key -> pre + val at off (from rill__map_find, found telling whether
 * an entry is replaced). The caller made room: capacity >= the returned
 * length. key and val must not point into b. Returns the new length. */
static inline size_t rill__map_splice(unsigned char *b, size_t blen, size_t off, int found,
                                      const void *key, size_t klen, const void *pre,
                                      size_t pre_len, const void *val, size_t vlen)
{
    size_t old = found ? rill__map_entry_len(b, off) : 0;
    size_t len = RILL__MAP_HDR + klen + pre_len + vlen;
    if (len != old)
        memmove(b + off + len, b + off + old, blen - off - old);
    rill__wr32(b + off, (uint32_t)klen);
    rill__wr32(b + off + 4, (uint32_t)(pre_len + vlen));
    if (klen)
        memcpy(b + off + RILL__MAP_HDR, key, klen);
    if (pre_len)
        memcpy(b + off + RILL__MAP_HDR + klen, pre, pre_len);
    if (vlen)
        memcpy(b + off + RILL__MAP_HDR + klen + pre_len, val, vlen);
    return blen - old + len;
}

/* Merge the maps a and b into dst (room for alen + blen bytes, apart from
 * both); an entry of b replaces the entry of a with the same key. Returns
 * the length of the result. */
static inline size_t rill__map_merge(unsigned char *dst, const unsigned char *a, size_t alen,
                                     const unsigned char *b, size_t blen)
{
    size_t ao = 0, bo = 0, n = 0, akl = 0, avl = 0, bkl = 0, bvl = 0;
    const unsigned char *ak = NULL, *av = NULL, *bk = NULL, *bv = NULL;
    size_t an = ao, bn = bo;
    int ha = rill__map_at(a, alen, &an, &ak, &akl, &av, &avl);
    int hb = rill__map_at(b, blen, &bn, &bk, &bkl, &bv, &bvl);
    while (ha || hb) {
        int c = !ha ? 1 : !hb ? -1 : rill__keycmp(ak, akl, bk, bkl);
        const unsigned char *from = c < 0 ? a + ao : b + bo;
        size_t len = c < 0 ? an - ao : bn - bo;
        memcpy(dst + n, from, len);
        n += len;
        if (c <= 0) {
            ao = an;
            ha = rill__map_at(a, alen, &an, &ak, &akl, &av, &avl);
        }
        if (c >= 0) {
            bo = bn;
            hb = rill__map_at(b, blen, &bn, &bk, &bkl, &bv, &bvl);
        }
    }
    return n;
}

/* Remove the entry at off; returns the new length. */
static inline size_t rill__map_cut(unsigned char *b, size_t blen, size_t off)
{
    size_t old = rill__map_entry_len(b, off);
    memmove(b + off, b + off + old, blen - off - old);
    return blen - old;
}

#endif
