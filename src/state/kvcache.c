/* kvcache.c - the cache table of the keyed-state store: an open-addressing
 * hash table (linear probing, backward-shift deletion) of entries that
 * live in per-size slabs, and CLOCK eviction of clean entries. */
#include <stdint.h>
#include <string.h>

#include "rill.h"
#include "state/kv_int.h"
#include "util/alloc.h"

#define MIN_CAP 1024
#define FIRST_CHUNK 4096
#define MAX_CHUNK (256 * 1024)

static size_t slots_bytes(size_t cap) { return cap * sizeof(rill__kvslot); }

int rill__kvc_init(rill__kv *kv)
{
    kv->slots = rill__calloc(MIN_CAP, sizeof(rill__kvslot));
    if (!kv->slots)
        return RILL_ENOMEM;
    kv->cap = MIN_CAP;
    kv->hot.bytes += slots_bytes(MIN_CAP);
    for (size_t i = 0; i < RILL__KV_NCLASS; i++)
        kv->cls[i].next_chunk = FIRST_CHUNK;
    return RILL_OK;
}

/* ---- slab ------------------------------------------------------------- */

static void *slab_alloc(rill__kv *kv, size_t size)
{
    rill__kvclass *c = &kv->cls[size / 8 - 1];
    if (c->free) {
        void *p = c->free;
        memcpy(&c->free, p, sizeof(void *));
        return p;
    }
    if ((size_t)(c->end - c->cur) < size) {
        size_t n = c->next_chunk;
        unsigned char *chunk = rill__malloc(n);
        if (!chunk)
            return NULL;
        memcpy(chunk, &kv->chunks, sizeof(void *));
        kv->chunks = chunk;
        c->cur = chunk + 16;
        c->end = chunk + n;
        if (n < MAX_CHUNK)
            c->next_chunk = n * 2;
    }
    void *p = c->cur;
    c->cur += size;
    return p;
}

static void slab_free(rill__kv *kv, void *p, size_t size)
{
    rill__kvclass *c = &kv->cls[size / 8 - 1];
    memcpy(p, &c->free, sizeof(void *));
    c->free = p;
}

rill__kvent *rill__kvc_new(rill__kv *kv, unsigned sid, uint16_t kg, const void *key,
                           size_t klen, const void *ns, size_t nslen, size_t vcap)
{
    size_t voff = RILL__KV_VOFF(klen, nslen);
    if (vcap > RILL__KV_VALUE_MAX)
        return NULL;
    size_t size = (voff + vcap + 7) & ~(size_t)7;
    rill__kvent *e;
    if (size <= RILL__KV_SLAB_MAX) {
        e = slab_alloc(kv, size);
    } else {
        /* Round large blobs up so appends do not move them every time. */
        size_t round = size < 4096 ? 64 : 4096;
        size = (size + round - 1) & ~(round - 1);
        if (size - voff > RILL__KV_VALUE_MAX)
            size = voff + (RILL__KV_VALUE_MAX & ~(size_t)7);
        e = rill__malloc(size);
    }
    if (!e)
        return NULL;
    e->vlen = 0;
    e->vcap = (uint32_t)(size - voff);
    e->kg = kg;
    e->klen = (uint16_t)klen;
    e->nslen = (uint16_t)nslen;
    e->sid = (uint8_t)sid;
    e->flags = 0;
    if (klen)
        memcpy(rill__kvent_key(e), key, klen);
    if (nslen)
        memcpy(rill__kvent_ns(e), ns, nslen);
    kv->hot.bytes += rill__kvc_size(e);
    return e;
}

void rill__kvc_free(rill__kv *kv, rill__kvent *e)
{
    size_t size = RILL__KV_VOFF(e->klen, e->nslen) + e->vcap;
    kv->hot.bytes -= rill__kvc_size(e);
    if (size <= RILL__KV_SLAB_MAX)
        slab_free(kv, e, size);
    else
        rill__free(e);
}

void rill__kvc_fini(rill__kv *kv)
{
    if (kv->slots) {
        for (size_t i = 0; i < kv->cap; i++)
            if (kv->slots[i].e && RILL__KV_VOFF(kv->slots[i].e->klen, kv->slots[i].e->nslen) +
                                          kv->slots[i].e->vcap >
                                      RILL__KV_SLAB_MAX)
                rill__free(kv->slots[i].e);
        rill__free(kv->slots);
        kv->slots = NULL;
    }
    while (kv->chunks) {
        void *next;
        memcpy(&next, kv->chunks, sizeof(void *));
        rill__free(kv->chunks);
        kv->chunks = next;
    }
    kv->count = 0;
}

/* ---- table ------------------------------------------------------------ */

static void place(rill__kvslot *slots, size_t mask, uint64_t h, rill__kvent *e)
{
    size_t i = (size_t)h & mask;
    while (slots[i].e)
        i = (i + 1) & mask;
    slots[i].h = h;
    slots[i].e = e;
}

static int resize(rill__kv *kv, size_t ncap)
{
    rill__kvslot *ns = rill__calloc(ncap, sizeof(rill__kvslot));
    if (!ns)
        return RILL_ENOMEM;
    for (size_t i = 0; i < kv->cap; i++)
        if (kv->slots[i].e)
            place(ns, ncap - 1, kv->slots[i].h, kv->slots[i].e);
    rill__free(kv->slots);
    kv->hot.bytes = kv->hot.bytes - slots_bytes(kv->cap) + slots_bytes(ncap);
    kv->slots = ns;
    kv->cap = ncap;
    kv->hand = 0;
    kv->scan = 0;
    return RILL_OK;
}

int rill__kvc_insert(rill__kv *kv, uint64_t h, rill__kvent *e)
{
    size_t n = kv->count + 1;
    /* Grow at 3/4 full while the table takes at most half the budget (else
     * eviction keeps it small), and always before it is 15/16 full. */
    int want = n * 4 > kv->cap * 3 && slots_bytes(kv->cap * 2) <= kv->hot.budget / 2;
    int must = n * 16 > kv->cap * 15;
    if ((want || must) && kv->cap <= SIZE_MAX / 4 / sizeof(rill__kvslot)) {
        /* Without memory to grow, a fuller table still works. */
        if (resize(kv, kv->cap * 2) != RILL_OK && n >= kv->cap)
            return RILL_ENOMEM;
    }
    place(kv->slots, kv->cap - 1, h, e);
    kv->count++;
    return RILL_OK;
}

static size_t slot_of(rill__kv *kv, const rill__kvent *e)
{
    size_t mask = kv->cap - 1;
    size_t i = (size_t)rill__kvc_hash_ent((rill__kvent *)e) & mask;
    while (kv->slots[i].e != e)
        i = (i + 1) & mask;
    return i;
}

int rill__kvc_regrow(rill__kv *kv, rill__kvent **ep, size_t cap)
{
    rill__kvent *e = *ep;
    if (cap > RILL__KV_VALUE_MAX)
        return RILL_ENOMEM;
    rill__kvent *n = rill__kvc_new(kv, e->sid, e->kg, rill__kvent_key(e), e->klen,
                                   rill__kvent_ns(e), e->nslen, cap);
    if (!n)
        return RILL_ENOMEM;
    n->vlen = e->vlen;
    n->flags = e->flags;
    if (e->vlen)
        memcpy(rill__kvent_val(n), rill__kvent_val(e), e->vlen);
    kv->slots[slot_of(kv, e)].e = n;
    rill__kvc_free(kv, e);
    *ep = n;
    return RILL_OK;
}

/* Remove slot i, shifting back the entries of its probe run. */
static void del_slot(rill__kv *kv, size_t i)
{
    size_t mask = kv->cap - 1;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!kv->slots[j].e)
            break;
        size_t home = (size_t)kv->slots[j].h & mask;
        /* The entry at j may move to i when its home is not in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            kv->slots[i] = kv->slots[j];
            i = j;
        }
    }
    kv->slots[i].e = NULL;
    kv->count--;
}

void rill__kvc_evict(rill__kv *kv, size_t target, int all)
{
    size_t mask = kv->cap - 1;
    /* Two turns of the hand: the first may only clear reference bits. */
    size_t steps = 2 * kv->cap + 1;
    size_t i = kv->hand & mask;
    while (steps && kv->count && (all || kv->hot.bytes > target)) {
        rill__kvent *e = kv->slots[i].e;
        if (e && !(e->flags & RILL__KV_DIRTY)) {
            if ((e->flags & RILL__KV_REF) && !all) {
                e->flags &= (uint8_t)~RILL__KV_REF;
            } else {
                del_slot(kv, i);
                rill__kvc_free(kv, e);
                kv->n_evictions++;
                continue; /* slot i now holds a shifted entry, or nothing */
            }
        }
        i = (i + 1) & mask;
        steps--;
    }
    kv->hand = i;
    kv->hot.gen++;
    /* A table much larger than its entries wastes budget: shrink it. */
    size_t ncap = kv->cap;
    while (ncap > MIN_CAP && kv->count * 8 < ncap)
        ncap /= 2;
    if (ncap < kv->cap)
        (void)resize(kv, ncap); /* keeps the old table when out of memory */
}
