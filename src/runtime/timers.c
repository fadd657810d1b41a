/* timers.c - the timers of one operator subtask in one time domain (see
 * timers.h).
 *
 * Three arrays, no per-timer allocation for keys of up to KEY_INLINE bytes:
 *  - entries: one per timer (time, key group, key inline or on the heap),
 *    recycled through a free list;
 *  - a hash set (open addressing, linear probing, backward-shift removal)
 *    of 8-byte slots {32 bits of the hash, entry index + 1}, so a probe
 *    only reads the entry when the 32 bits match;
 *  - a 4-ary min-heap of 16-byte items {time, entry index, 32 bits of the
 *    hash}, ordered by time; the hash bits let pop find the timer's slot
 *    without hashing the key again.
 *
 * Deleting drops the timer from the set and marks its entry dead; the entry
 * stays until its heap item reaches the top (pop, next) or until dead items
 * outnumber live ones (then the heap is rebuilt without them), so a heap
 * item always names the entry it was pushed for and a timer deleted and
 * added again fires once.
 *
 * When the live timers fall to a sixteenth of the room (after a burst),
 * they move into arrays sized for them, so memory goes back.
 *
 * The key pop hands out is copied to the handle (short keys) or kept on it
 * (long keys) until the next pop, so it stays valid across add and del: an
 * on_timer callback may register timers with the key it was given.
 *
 * Ties in time come out in an order fixed by the sequence of calls.
 * foreach sorts the heap array in place by (time, entry index); a sorted
 * array is still a valid heap, so it needs no memory.
 */
#include "runtime/timers.h"

#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "rill.h"
#include "util/alloc.h"

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

#define KEY_INLINE 16
#define KEY_MAX 65535u

/* entry.state: a live or deleted timer, or (free entry) the next free one. */
#define E_LIVE UINT32_MAX
#define E_DEAD (UINT32_MAX - 1)
#define E_NIL (UINT32_MAX - 2) /* end of the free list */
#define ENTRIES_MAX ((size_t)UINT32_MAX - 3)

typedef struct entry {
    int64_t ts;
    union {
        unsigned char in[KEY_INLINE];
        unsigned char *out; /* key_len > KEY_INLINE; NULL once deleted */
    } key;
    uint16_t len;
    uint16_t kg;
    uint32_t state;
} entry;

typedef struct item {
    int64_t ts;
    uint32_t idx;
    uint32_t h;
} item;

typedef struct slot {
    uint32_t h;
    uint32_t idx1; /* entry index + 1; 0 = empty */
} slot;

struct rill__timers {
    item *heap;
    size_t heap_len, heap_cap;
    entry *ents;
    size_t ents_used, ents_cap; /* entries ever handed out, room */
    uint32_t free_head;
    slot *tab;
    size_t tab_mask; /* capacity - 1 (a power of two), when tab */
    size_t live;     /* timers in the set */
    size_t dead;     /* deleted timers still in the heap */
    unsigned char popkey[KEY_INLINE];
    unsigned char *held; /* long key of the last pop */
};

static inline const unsigned char *ekey(const entry *e)
{
    return e->len > KEY_INLINE ? e->key.out : e->key.in;
}

static inline uint32_t hash_of(int64_t ts, const void *key, size_t len)
{
    return (uint32_t)XXH3_64bits_withSeed(key, len, (XXH64_hash_t)(uint64_t)ts);
}

/* ---- entries ------------------------------------------------------------ */

static int entries_reserve(rill__timers *t)
{
    if (t->free_head != E_NIL || t->ents_used < t->ents_cap)
        return RILL_OK;
    if (t->ents_cap >= ENTRIES_MAX)
        return RILL_ENOMEM;
    size_t ncap = t->ents_cap ? t->ents_cap * 2 : 64;
    if (ncap > ENTRIES_MAX)
        ncap = ENTRIES_MAX;
    if (ncap > SIZE_MAX / sizeof(entry))
        return RILL_ENOMEM;
    entry *p = rill__realloc(t->ents, ncap * sizeof(entry));
    if (!p)
        return RILL_ENOMEM;
    t->ents = p;
    t->ents_cap = ncap;
    return RILL_OK;
}

static inline uint32_t entry_take(rill__timers *t)
{
    uint32_t idx = t->free_head;
    if (idx != E_NIL)
        t->free_head = t->ents[idx].state;
    else
        idx = (uint32_t)t->ents_used++;
    return idx;
}

static inline void entry_put(rill__timers *t, uint32_t idx)
{
    t->ents[idx].state = t->free_head;
    t->free_head = idx;
}

/* ---- hash set ----------------------------------------------------------- */

/* Index of the live timer (key, ts), or E_NIL; *pos is its slot, or the
 * empty slot where it would go. */
static uint32_t set_find(const rill__timers *t, uint32_t h, int64_t ts, const void *key,
                         size_t len, size_t *pos)
{
    if (!t->tab)
        return E_NIL;
    size_t mask = t->tab_mask;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot s = t->tab[i];
        if (!s.idx1) {
            *pos = i;
            return E_NIL;
        }
        if (s.h == h) {
            const entry *e = &t->ents[s.idx1 - 1];
            if (e->ts == ts && e->len == len && (len == 0 || !memcmp(ekey(e), key, len))) {
                *pos = i;
                return s.idx1 - 1;
            }
        }
    }
}

static size_t set_empty_slot(const rill__timers *t, uint32_t h)
{
    size_t mask = t->tab_mask;
    size_t i = h & mask;
    while (t->tab[i].idx1)
        i = (i + 1) & mask;
    return i;
}

/* Room for one more timer at a load of at most one half. */
static int set_reserve(rill__timers *t)
{
    size_t cap = t->tab ? t->tab_mask + 1 : 0;
    if (t->live + 1 <= cap / 2)
        return RILL_OK;
    size_t ncap = cap ? cap * 2 : 64;
    if (ncap > SIZE_MAX / sizeof(slot))
        return RILL_ENOMEM;
    slot *nt = rill__calloc(ncap, sizeof(slot));
    if (!nt)
        return RILL_ENOMEM;
    size_t nmask = ncap - 1;
    for (size_t i = 0; i < cap; i++) {
        slot s = t->tab[i];
        if (!s.idx1)
            continue;
        size_t j = s.h & nmask;
        while (nt[j].idx1)
            j = (j + 1) & nmask;
        nt[j] = s;
    }
    rill__free(t->tab);
    t->tab = nt;
    t->tab_mask = nmask;
    return RILL_OK;
}

/* Empty slot i, moving later slots of the run back so probes still work. */
static void set_remove_at(rill__timers *t, size_t i)
{
    size_t mask = t->tab_mask;
    for (size_t j = (i + 1) & mask; t->tab[j].idx1; j = (j + 1) & mask) {
        size_t home = t->tab[j].h & mask;
        /* Slot j may fill the hole when the hole lies between its home
         * slot and j. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->tab[i] = t->tab[j];
            i = j;
        }
    }
    t->tab[i].idx1 = 0;
}

static void set_remove_idx(rill__timers *t, uint32_t h, uint32_t idx)
{
    size_t mask = t->tab_mask;
    size_t i = h & mask;
    while (t->tab[i].idx1 != idx + 1)
        i = (i + 1) & mask;
    set_remove_at(t, i);
}

/* ---- heap (4-ary, root at 0, children of i at 4i+1 .. 4i+4) ----------- */

static int heap_reserve(rill__timers *t)
{
    if (t->heap_len < t->heap_cap)
        return RILL_OK;
    size_t ncap = t->heap_cap ? t->heap_cap * 2 : 64;
    if (ncap > SIZE_MAX / sizeof(item))
        return RILL_ENOMEM;
    item *p = rill__realloc(t->heap, ncap * sizeof(item));
    if (!p)
        return RILL_ENOMEM;
    t->heap = p;
    t->heap_cap = ncap;
    return RILL_OK;
}

static inline void heap_push(rill__timers *t, item x)
{
    item *hp = t->heap;
    size_t i = t->heap_len++;
    while (i > 0) {
        size_t p = (i - 1) >> 2;
        if (hp[p].ts <= x.ts)
            break;
        hp[i] = hp[p];
        i = p;
    }
    hp[i] = x;
}

/* Place x at hole i of a heap of n items, moving it down. */
static inline void sift_down(item *hp, size_t n, size_t i, item x)
{
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= n)
            break;
        size_t m = c;
        if (c + 4 <= n) {
            size_t a = hp[c + 1].ts < hp[c].ts ? c + 1 : c;
            size_t b = hp[c + 3].ts < hp[c + 2].ts ? c + 3 : c + 2;
            m = hp[b].ts < hp[a].ts ? b : a;
        } else {
            for (size_t k = c + 1; k < n; k++)
                if (hp[k].ts < hp[m].ts)
                    m = k;
        }
        if (hp[m].ts >= x.ts)
            break;
        hp[i] = hp[m];
        i = m;
    }
    hp[i] = x;
}

static inline void heap_pop_top(rill__timers *t)
{
    size_t n = --t->heap_len;
    if (n)
        sift_down(t->heap, n, 0, t->heap[n]);
}

/* Drop the heap items of deleted timers and free their entries; the heap
 * must then be rebuilt (heapify) when some were dropped. */
static size_t drop_dead(rill__timers *t)
{
    size_t dropped = t->dead;
    size_t n = 0;
    for (size_t i = 0; i < t->heap_len; i++) {
        item x = t->heap[i];
        if (t->ents[x.idx].state == E_DEAD)
            entry_put(t, x.idx);
        else
            t->heap[n++] = x;
    }
    t->heap_len = n;
    t->dead = 0;
    return dropped;
}

static void heapify(rill__timers *t)
{
    size_t n = t->heap_len;
    if (n < 2)
        return;
    for (size_t i = (n - 2) / 4 + 1; i-- > 0;)
        sift_down(t->heap, n, i, t->heap[i]);
}

static void compact(rill__timers *t)
{
    if (drop_dead(t))
        heapify(t);
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 64;
    while (c < n)
        c *= 2;
    return c;
}

/* After a burst, when the live timers fill a sixteenth of the entries,
 * move them into arrays sized for them: entries in heap order, a new set.
 * Memory goes back to the allocator; a failed allocation changes nothing. */
static void maybe_shrink(rill__timers *t)
{
    if (t->ents_cap <= 1024 || t->live * 16 > t->ents_cap)
        return;
    size_t n = t->live;
    size_t ecap = pow2_at_least(2 * n), tcap = pow2_at_least(4 * n);
    entry *ne = rill__malloc(ecap * sizeof(entry));
    slot *nt = ne ? rill__calloc(tcap, sizeof(slot)) : NULL;
    if (!nt) {
        rill__free(ne);
        return;
    }
    int dropped = drop_dead(t) != 0;
    size_t nmask = tcap - 1;
    for (size_t i = 0; i < t->heap_len; i++) {
        item *x = &t->heap[i];
        ne[i] = t->ents[x->idx];
        x->idx = (uint32_t)i;
        size_t j = x->h & nmask;
        while (nt[j].idx1)
            j = (j + 1) & nmask;
        nt[j].h = x->h;
        nt[j].idx1 = (uint32_t)i + 1;
    }
    if (dropped)
        heapify(t);
    rill__free(t->ents);
    rill__free(t->tab);
    t->ents = ne;
    t->ents_cap = ecap;
    t->ents_used = n;
    t->free_head = E_NIL;
    t->tab = nt;
    t->tab_mask = nmask;
    if (t->heap_cap > ecap) {
        item *hp = rill__realloc(t->heap, ecap * sizeof(item));
        if (hp) {
            t->heap = hp;
            t->heap_cap = ecap;
        }
    }
}

/* Discard deleted timers from the top of the heap. */
static inline void skip_dead(rill__timers *t)
{
    while (t->heap_len) {
        uint32_t idx = t->heap[0].idx;
        if (t->ents[idx].state != E_DEAD)
            return;
        heap_pop_top(t);
        entry_put(t, idx);
        t->dead--;
    }
}

/* ---- interface ---------------------------------------------------------- */

rill__timers *rill__timers_new(void)
{
    rill__timers *t = rill__calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->free_head = E_NIL;
    return t;
}

void rill__timers_free(rill__timers *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->heap_len; i++) {
        const entry *e = &t->ents[t->heap[i].idx];
        if (e->len > KEY_INLINE)
            rill__free(e->key.out); /* NULL when deleted */
    }
    rill__free(t->held);
    rill__free(t->heap);
    rill__free(t->ents);
    rill__free(t->tab);
    rill__free(t);
}

int rill__timers_add(rill__timers *t, int64_t ts, uint16_t kg, const void *key, size_t key_len)
{
    if (key_len > KEY_MAX || (!key && key_len))
        return RILL_EINVAL;
    uint32_t h = hash_of(ts, key, key_len);
    size_t pos = 0;
    if (set_find(t, h, ts, key, key_len, &pos) != E_NIL)
        return 0;
    /* Every allocation before any change, so a failure leaves t as it was
     * (with more room). */
    size_t old_cap = t->tab ? t->tab_mask + 1 : 0;
    int rc = set_reserve(t);
    if (rc == RILL_OK)
        rc = entries_reserve(t);
    if (rc == RILL_OK)
        rc = heap_reserve(t);
    if (rc != RILL_OK)
        return rc;
    unsigned char *out = NULL;
    if (key_len > KEY_INLINE) {
        out = rill__malloc(key_len);
        if (!out)
            return RILL_ENOMEM;
        memcpy(out, key, key_len);
    }
    if (t->tab_mask + 1 != old_cap)
        pos = set_empty_slot(t, h);

    uint32_t idx = entry_take(t);
    entry *e = &t->ents[idx];
    e->ts = ts;
    e->len = (uint16_t)key_len;
    e->kg = kg;
    e->state = E_LIVE;
    if (out)
        e->key.out = out;
    else if (key_len)
        memcpy(e->key.in, key, key_len);
    t->tab[pos].h = h;
    t->tab[pos].idx1 = idx + 1;
    heap_push(t, (item){ts, idx, h});
    t->live++;
    return 1;
}

int rill__timers_del(rill__timers *t, int64_t ts, const void *key, size_t key_len)
{
    if (key_len > KEY_MAX || (!key && key_len))
        return 0;
    size_t pos = 0;
    uint32_t idx = set_find(t, hash_of(ts, key, key_len), ts, key, key_len, &pos);
    if (idx == E_NIL)
        return 0;
    set_remove_at(t, pos);
    entry *e = &t->ents[idx];
    if (e->len > KEY_INLINE) {
        rill__free(e->key.out);
        e->key.out = NULL;
    }
    e->state = E_DEAD;
    t->live--;
    t->dead++;
    /* Keep the heap at most about twice the live timers. */
    if (t->dead > 64 && t->dead > t->live)
        compact(t);
    maybe_shrink(t);
    return 1;
}

size_t rill__timers_count(const rill__timers *t)
{
    return t->live;
}

int64_t rill__timers_next(rill__timers *t)
{
    skip_dead(t);
    return t->heap_len ? t->heap[0].ts : INT64_MAX;
}

int rill__timers_pop(rill__timers *t, int64_t limit, int64_t *ts, uint16_t *kg,
                     const void **key, size_t *key_len)
{
    skip_dead(t);
    if (!t->heap_len || t->heap[0].ts > limit)
        return 0;
    item top = t->heap[0];
    heap_pop_top(t);
    set_remove_idx(t, top.h, top.idx);
    t->live--;
    entry *e = &t->ents[top.idx];
    if (t->held) {
        rill__free(t->held);
        t->held = NULL;
    }
    const void *k;
    if (e->len > KEY_INLINE) {
        t->held = e->key.out;
        k = t->held;
    } else {
        memcpy(t->popkey, e->key.in, KEY_INLINE); /* a fixed size: no call */
        k = t->popkey;
    }
    if (ts)
        *ts = e->ts;
    if (kg)
        *kg = e->kg;
    if (key)
        *key = k;
    if (key_len)
        *key_len = e->len;
    entry_put(t, top.idx);
    maybe_shrink(t);
    /* The next pop reads the new top's entry and slot, and the one after
     * reads the slot of one of its children: start loading them (pops come
     * in runs when a watermark advances). */
    if (t->heap_len) {
        const item *hp = t->heap;
        size_t n = t->heap_len < 5 ? t->heap_len : 5;
        PREFETCH(&t->ents[hp[0].idx]);
        for (size_t i = 0; i < n; i++)
            PREFETCH(&t->tab[hp[i].h & t->tab_mask]);
    }
    return 1;
}

static int cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* fn must not call into t: the key it gets points into t's entries. */
int rill__timers_foreach(rill__timers *t,
                         int (*fn)(int64_t ts, uint16_t kg, const void *key, size_t key_len,
                                   void *arg),
                         void *arg)
{
    drop_dead(t); /* the sort below makes it a heap again */
    if (t->heap_len > 1)
        qsort(t->heap, t->heap_len, sizeof(item), cmp_item);
    for (size_t i = 0; i < t->heap_len; i++) {
        const entry *e = &t->ents[t->heap[i].idx];
        int rc = fn(e->ts, e->kg, ekey(e), e->len, arg);
        if (rc)
            return rc;
    }
    return 0;
}
