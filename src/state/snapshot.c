/* snapshot.c - snapshot and restore of one operator subtask's state (see
 * snapshot.h for the entries of each section). */
#include "state/snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"
#include "runtime/timers.h"
#include "state/state_int.h"
#include "util/alloc.h"

/* Keyed records written to LMDB per transaction while restoring. */
#define LOAD_BATCH ((size_t)16 << 20)

static const char *const kind_names[] = {"?",           "value",         "list",
                                         "map",         "reducing",      "aggregating",
                                         "operator list", "broadcast"};

static const char *kind_name(int kind)
{
    return kind >= RILL_STATE_VALUE && kind <= RILL_STATE_BROADCAST ? kind_names[kind]
                                                                     : kind_names[0];
}

/* "a" or "an" before a kind's name. */
static const char *article(const char *word)
{
    return strchr("aeiou", word[0]) && word[0] ? "an" : "a";
}

static const char *const domain_names[2] = {"event", "processing"};

static void be16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}
static unsigned rd_be16(const unsigned char *p) { return ((unsigned)p[0] << 8) | p[1]; }

static void be32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}
static uint32_t rd_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}
static uint64_t rd_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* A time as 8 bytes that sort like the times. */
static void put_time(unsigned char *p, int64_t ts) { be64(p, (uint64_t)ts ^ (UINT64_C(1) << 63)); }
static int64_t get_time(const unsigned char *p)
{
    return (int64_t)(rd_be64(p) ^ (UINT64_C(1) << 63));
}

/* A growable byte buffer. */
typedef struct bytes {
    unsigned char *p;
    size_t len, cap;
} bytes;

static int bytes_room(bytes *b, size_t more)
{
    if (more > SIZE_MAX / 2 - b->len)
        return RILL_ENOMEM;
    return rill__grow((void **)&b->p, &b->cap, b->len + more, 1);
}

static int bytes_add(bytes *b, const void *p, size_t n)
{
    if (bytes_room(b, n))
        return RILL_ENOMEM;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return RILL_OK;
}

static void bytes_free(bytes *b)
{
    rill__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static const char *uid_of(const rill_ctx *op)
{
    return op->node ? op->node->resolved_uid : NULL;
}

/* The first key group subtask s owns at parallelism p (max parallelism m):
 * the owner of kg is kg * p / m. */
static long first_kg(long s, long p, long m) { return (s * m + p - 1) / p; }

/* ==== snapshot ============================================================ */

typedef struct snap {
    rill_ctx *op;
    rill__snap_writer *w;
    const char *uid;
    char *err;
    bytes key; /* entry keys being built */
    int lo, hi; /* timers: key-group range seen */
    int oom;    /* a timer's entry could not be built */
} snap;

/* A writer failure: its message (names the file). */
static int wfail(snap *s, const char *state, int rc)
{
    rill__fmt(s->err, "snapshot of operator '%s', %s%s%s: %s", s->uid, state ? "state '" : "",
              state ? state : "timers", state ? "'" : "", rill__snap_writer_errmsg(s->w));
    return rc;
}

static int put_info(snap *s, const rill_state *st)
{
    const char *name = st->d->name, *kind = kind_name(st->kind);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%" PRId64, st->ttl);
    int rc = rill__snap_writer_section_begin(s->w, RILL__SNAP_INFO, s->uid, name,
                                             RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    if (!rc)
        rc = rill__snap_writer_kv(s->w, "kind", 4, kind, strlen(kind));
    if (!rc)
        rc = rill__snap_writer_kv(s->w, "ttl", 3, ttl, strlen(ttl));
    if (!rc)
        rc = rill__snap_writer_section_end(s->w);
    return rc ? wfail(s, name, rc) : RILL_OK;
}

/* The keyed part of an operator's snapshot, written later (maybe on
 * another thread) from a view of its store. Names are copied: the
 * operator may close meanwhile (its store waits for the view). */
typedef struct kstate {
    unsigned sid;
    char *name;
} kstate;

struct rill__state_snap {
    char *uid;
    rill__kvview *view;
    kstate *st;
    size_t n;
};

void rill__state_snapshot_free(rill__state_snap *ks)
{
    if (!ks)
        return;
    rill__kv_view_free(ks->view);
    for (size_t i = 0; i < ks->n; i++)
        rill__free(ks->st[i].name);
    rill__free(ks->st);
    rill__free(ks->uid);
    rill__free(ks);
}

/* Writing one state's records: a section per key group. */
typedef struct kwrite {
    rill__snap_writer *w;
    const char *uid, *name;
    long kg;
    int werr;     /* the writer's error */
    int bad;      /* a record the store should never hold */
    int canceled;
    unsigned count;
    int (*cancel)(void *);
    void *carg;
} kwrite;

static int keyed_rec(uint16_t g, const unsigned char *key, size_t klen, const void *val,
                     size_t vlen, void *arg)
{
    kwrite *k = arg;
    int rc;
    if (g > RILL__SNAP_KG_MAX) {
        k->bad = 1;
        return RILL_EIO;
    }
    if (g != k->kg) {
        if (k->kg >= 0 && (rc = rill__snap_writer_section_end(k->w)) != RILL_OK)
            return k->werr = rc;
        k->kg = g;
        rc = rill__snap_writer_section_begin(k->w, RILL__SNAP_KEYED, k->uid, k->name, g, g);
        if (rc)
            return k->werr = rc;
    }
    if ((rc = rill__snap_writer_kv(k->w, key, klen, val, vlen)) != RILL_OK)
        return k->werr = rc;
    if ((++k->count & 4095) == 0 && k->cancel && k->cancel(k->carg)) {
        k->canceled = 1;
        return RILL_ECANCELED;
    }
    return 0;
}

int rill__state_snapshot_keyed(rill__state_snap *ks, rill__snap_writer *w,
                               int (*cancel)(void *), void *carg, char *err)
{
    err[0] = '\0';
    for (size_t i = 0; i < ks->n; i++) {
        kwrite k = {w, ks->uid, ks->st[i].name, -1, 0, 0, 0, 0, cancel, carg};
        int rc = rill__kv_view_scan(ks->view, ks->st[i].sid, keyed_rec, &k);
        if (!rc && k.kg >= 0 && (rc = rill__snap_writer_section_end(w)) != RILL_OK)
            k.werr = rc;
        if (!rc)
            continue;
        if (k.canceled)
            rill__fmt(err, "snapshot of operator '%s': canceled", ks->uid);
        else if (k.bad)
            rill__fmt(err, "snapshot of operator '%s', state '%s': a record without a valid "
                           "key group", ks->uid, k.name);
        else if (k.werr)
            rill__fmt(err, "snapshot of operator '%s', state '%s': %s", ks->uid, k.name,
                      rill__snap_writer_errmsg(w));
        else
            rill__fmt(err, "snapshot of operator '%s': %s", ks->uid,
                      rill__kv_view_errmsg(ks->view));
        return rc;
    }
    return RILL_OK;
}

/* The view of op's keyed states. */
static int take_view(snap *s, rill__state_snap **out)
{
    rill_ctx *op = s->op;
    size_t n = 0;
    for (size_t i = 0; i < op->n_states; i++)
        n += rill__state_keyed_kind(op->states[i]->kind) != 0;
    if (!n)
        return RILL_OK;
    rill__state_snap *ks = rill__calloc(1, sizeof *ks);
    if (!ks || !(ks->uid = rill__strdup(s->uid)) || !(ks->st = rill__calloc(n, sizeof *ks->st)))
        goto nomem;
    for (size_t i = 0; i < op->n_states; i++) {
        const rill_state *st = op->states[i];
        if (!rill__state_keyed_kind(st->kind))
            continue;
        ks->st[ks->n].sid = st->sid;
        if (!(ks->st[ks->n++].name = rill__strdup(st->d->name)))
            goto nomem;
    }
    int rc = rill__kv_view(op->kv, &ks->view);
    if (rc) {
        rill__fmt(s->err, "snapshot of operator '%s': %s", s->uid, rill__kv_errmsg(op->kv));
        rill__state_snapshot_free(ks);
        return rc;
    }
    *out = ks;
    return RILL_OK;
nomem:
    rill__state_snapshot_free(ks);
    rill__fmt(s->err, "snapshot of operator '%s': out of memory", s->uid);
    return RILL_ENOMEM;
}

static int timer_range(int64_t ts, uint16_t kg, const void *key, size_t key_len, void *arg)
{
    (void)ts, (void)key, (void)key_len;
    snap *s = arg;
    if (kg < s->lo)
        s->lo = kg;
    if (kg > s->hi)
        s->hi = kg;
    return 0;
}

static int timer_put(int64_t ts, uint16_t kg, const void *key, size_t key_len, void *arg)
{
    snap *s = arg;
    s->key.len = 0;
    if (bytes_room(&s->key, 10 + key_len)) {
        s->oom = 1;
        return RILL_ENOMEM;
    }
    be16(s->key.p, kg);
    put_time(s->key.p + 2, ts);
    if (key_len)
        memcpy(s->key.p + 10, key, key_len);
    return rill__snap_writer_kv(s->w, s->key.p, 10 + key_len, NULL, 0);
}

static int put_timers(snap *s, int d)
{
    rill__timers *t = s->op->timers[d];
    if (!t || !rill__timers_count(t))
        return RILL_OK;
    rill_ctx *op = s->op;
    long m = op->st && op->st->job ? op->st->job->max_parallelism : 0, p = op->parallelism;
    s->lo = INT32_MAX;
    s->hi = -1;
    if (m > 0 && p > 0 && op->subtask >= 0 && op->subtask < p) {
        s->lo = (int)first_kg(op->subtask, p, m);
        s->hi = (int)first_kg(op->subtask + 1, p, m) - 1;
    }
    (void)rill__timers_foreach(t, timer_range, s);
    if (s->hi > (int)RILL__SNAP_KG_MAX)
        s->hi = (int)RILL__SNAP_KG_MAX;
    if (s->lo > s->hi)
        s->lo = s->hi;
    int rc = rill__snap_writer_section_begin(s->w, RILL__SNAP_TIMERS, s->uid, domain_names[d],
                                             (uint16_t)s->lo, (uint16_t)s->hi);
    if (!rc)
        rc = rill__timers_foreach(t, timer_put, s);
    if (s->oom) {
        rill__fmt(s->err, "snapshot of operator '%s', %s timers: out of memory", s->uid,
                  domain_names[d]);
        return rc;
    }
    if (!rc)
        rc = rill__snap_writer_section_end(s->w);
    return rc ? wfail(s, NULL, rc) : RILL_OK;
}

static int put_oplist(snap *s, const rill_state *st)
{
    const char *name = st->d->name;
    int rc = rill__snap_writer_section_begin(s->w, RILL__SNAP_OPLIST, s->uid, name,
                                             RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    size_t off = 0, len;
    uint64_t i = 0;
    const unsigned char *item;
    while (!rc && st->mem && rill__list_at(st->mem, st->mem_len, &off, &item, &len)) {
        unsigned char key[12];
        be32(key, (uint32_t)(s->op->subtask < 0 ? 0 : s->op->subtask));
        be64(key + 4, i++);
        rc = rill__snap_writer_kv(s->w, key, sizeof key, item, len);
    }
    if (!rc)
        rc = rill__snap_writer_section_end(s->w);
    return rc ? wfail(s, name, rc) : RILL_OK;
}

static int put_broadcast(snap *s, const rill_state *st)
{
    const char *name = st->d->name;
    int rc = rill__snap_writer_section_begin(s->w, RILL__SNAP_BROADCAST, s->uid, name,
                                             RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    size_t off = 0, kl, vl;
    const unsigned char *k, *v;
    while (!rc && st->mem && rill__map_at(st->mem, st->mem_len, &off, &k, &kl, &v, &vl))
        rc = rill__snap_writer_kv(s->w, k, kl, v, vl);
    if (!rc)
        rc = rill__snap_writer_section_end(s->w);
    return rc ? wfail(s, name, rc) : RILL_OK;
}

int rill__state_snapshot_begin(rill_ctx *op, rill__snap_writer *w, rill__state_snap **keyed,
                               char *err)
{
    snap s = {op, w, uid_of(op), err, {NULL, 0, 0}, 0, 0, 0};
    *keyed = NULL;
    err[0] = '\0';
    if (!s.uid) {
        rill__fmt(err, "snapshot of operator '%s': no resolved uid",
                  op->node && op->node->name ? op->node->name : "?");
        return RILL_EINVAL;
    }
    int rc = RILL_OK;
    for (size_t i = 0; i < op->n_states && !rc; i++)
        rc = put_info(&s, op->states[i]);
    for (int d = 0; d < 2 && !rc; d++)
        rc = put_timers(&s, d);
    for (size_t i = 0; i < op->n_states && !rc; i++) {
        const rill_state *st = op->states[i];
        if (st->kind == RILL_STATE_OPERATOR_LIST)
            rc = put_oplist(&s, st);
        else if (st->kind == RILL_STATE_BROADCAST)
            rc = put_broadcast(&s, st);
    }
    bytes_free(&s.key);
    if (!rc && op->kv)
        rc = take_view(&s, keyed);
    return rc;
}

int rill__state_snapshot(rill_ctx *op, rill__snap_writer *w, char *err)
{
    rill__state_snap *ks;
    int rc = rill__state_snapshot_begin(op, w, &ks, err);
    if (!rc && ks)
        rc = rill__state_snapshot_keyed(ks, w, NULL, NULL, err);
    rill__state_snapshot_free(ks);
    return rc;
}

/* ==== restore ============================================================= */

/* An operator list element staged from some old subtask. */
typedef struct olitem {
    uint32_t sub;
    uint64_t idx;
    size_t off; /* in the state's data */
    uint32_t len;
} olitem;

typedef struct stage {
    /* Operator list: every element of every old subtask; then this
     * subtask's share as a list blob. */
    bytes data;
    olitem *items;
    size_t n_items, cap_items;
    bytes blob;
    int seen; /* a section was found */
    /* Broadcast: the map blob of the first file that has one. */
    bytes map;
    int taken;
} stage;

typedef struct rest {
    rill_ctx *op;
    const char *uid;
    size_t uid_len;
    long p, s, m;      /* parallelism, subtask, max parallelism */
    long lo, hi;       /* key groups owned: lo..hi */
    int allow_unknown;
    char *err;
    stage *stg;        /* per state of op */
    bytes tm[2];       /* timers: [i64 ts][u16 kg][u16 0][u32 len][key] */
    unsigned char *need; /* per file: has keyed sections to load */
    const char *path;  /* file being read */
    rill__snap_reader *r;
    /* Keyed records waiting for LMDB: [u32 klen][u32 vlen][key][value]. */
    bytes batch;
    unsigned batch_sid;
    char emsg[RILL__ERRMSG_MAX];
} rest;

static int owned(const rest *x, long kg) { return kg >= x->lo && kg <= x->hi; }

static int rfail(rest *x, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static int rfail(rest *x, int code, const char *fmt, ...)
{
    char msg[RILL__ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    rill__vfmt(msg, fmt, ap);
    va_end(ap);
    rill__fmt(x->err, "restoring operator '%s': %s", x->uid, msg);
    return code;
}

/* The reader's failure (its message names the file). */
static int reader_fail(rest *x, int rc)
{
    return rfail(x, rc, "%s", rill__snap_reader_errmsg(x->r));
}

static int corrupt(rest *x, const rill__snap_section *sec, const char *what)
{
    return rfail(x, RILL_ECORRUPT, "%s: section %" PRIu64 " (state '%s'): %s", x->path,
                 sec->index, sec->state, what);
}

static int nomem_r(rest *x)
{
    return rfail(x, RILL_ENOMEM, "out of memory");
}

static rill_state *find_state(const rest *x, const char *name, size_t *index)
{
    for (size_t i = 0; i < x->op->n_states; i++)
        if (!strcmp(x->op->states[i]->d->name, name)) {
            *index = i;
            return x->op->states[i];
        }
    return NULL;
}

/* A section of a state op does not declare: skipped with allow_unknown. */
static int unknown(rest *x, const char *state)
{
    if (x->allow_unknown)
        return 1;
    return rfail(x, RILL_EINVAL,
                 "state '%s' of operator '%s' in the snapshot is not declared (file '%s')", state,
                 x->uid, x->path);
}

/* The snapshot holds state `state` as a `was` state (a kind's name, or
 * "keyed"), which its declaration does not allow. */
static int mismatch(rest *x, const char *state, const char *was, int kind)
{
    const char *now = kind_name(kind);
    return rfail(x, RILL_EINVAL,
                 "state '%s' of operator '%s' is %s %s state in the snapshot but is declared as "
                 "%s %s state (file '%s')",
                 state, x->uid, article(was), was, article(now), now, x->path);
}

/* ---- first pass: verify and stage -------------------------------------- */

/* Next entry of the current section: 1, 0 at its end, or an error (with
 * the message set). */
static int next_entry(rest *x, const void **k, size_t *kl, const void **v, size_t *vl)
{
    int rc = rill__snap_reader_kv_next(x->r, k, kl, v, vl);
    return rc < 0 ? reader_fail(x, rc) : rc;
}

static int stage_info(rest *x, const rill__snap_section *sec, const rill_state *st)
{
    const void *k, *v;
    size_t kl, vl;
    int rc;
    char kind[32] = "", ttl[32] = "";
    while ((rc = next_entry(x, &k, &kl, &v, &vl)) == 1) {
        char *dst = kl == 4 && !memcmp(k, "kind", 4) ? kind
                    : kl == 3 && !memcmp(k, "ttl", 3) ? ttl
                                                      : NULL;
        if (dst && vl < sizeof kind) {
            memcpy(dst, v, vl);
            dst[vl] = '\0';
        }
    }
    if (rc)
        return rc;
    if (kind[0] && strcmp(kind, kind_name(st->kind)))
        return mismatch(x, sec->state, kind, st->kind);
    if (ttl[0]) {
        int had = strcmp(ttl, "0") != 0, has = st->ttl > 0;
        if (had != has)
            return rfail(x, RILL_EINVAL,
                         "state '%s' of operator '%s' has %s TTL in the snapshot but is "
                         "declared with%s one (file '%s')",
                         sec->state, x->uid, had ? "a" : "no", has ? "" : "out", x->path);
    }
    return RILL_OK;
}

/* Is k[0..kl) (a record's key without its key group, as kv.h describes
 * it, of any length) well formed for state st? */
static int keyed_entry_ok(const rill_state *st, const unsigned char *k, size_t kl)
{
    if (kl < 4 || kl > (size_t)UINT32_MAX - 2) /* the key group goes in front */
        return 0;
    size_t n = rd_be16(k);
    if (kl - 4 < n)
        return 0;
    size_t ns = rd_be16(k + 2 + n);
    if (kl - 4 - n < ns)
        return 0;
    return st->kind == RILL_STATE_MAP || kl == 4 + n + ns;
}

static int verify_keyed(rest *x, const rill__snap_section *sec, const rill_state *st)
{
    const void *k, *v;
    size_t kl, vl;
    int rc;
    while ((rc = next_entry(x, &k, &kl, &v, &vl)) == 1)
        if (!keyed_entry_ok(st, k, kl))
            return corrupt(x, sec, "malformed keyed entry");
    return rc;
}

static int stage_timers(rest *x, const rill__snap_section *sec, int d)
{
    const void *k, *v;
    size_t kl, vl;
    int rc;
    bytes *b = &x->tm[d];
    while ((rc = next_entry(x, &k, &kl, &v, &vl)) == 1) {
        const unsigned char *p = k;
        if (kl < 10 || kl - 10 > UINT16_MAX || vl)
            return corrupt(x, sec, "malformed timer entry");
        long kg = (long)rd_be16(p);
        if (kg < sec->kg_first || kg > sec->kg_last)
            return corrupt(x, sec, "timer outside the section's key groups");
        if (kg >= x->m)
            return rfail(x, RILL_EINVAL,
                         "%s: a timer of key group %ld, at or above the max parallelism %ld",
                         x->path, kg, x->m);
        if (!owned(x, kg))
            continue;
        unsigned char h[16];
        rill__wr64(h, get_time(p + 2));
        memcpy(h + 8, p, 2); /* kg, big-endian */
        h[10] = h[11] = 0;
        rill__wr32(h + 12, (uint32_t)(kl - 10));
        if (bytes_add(b, h, sizeof h) || bytes_add(b, p + 10, kl - 10))
            return nomem_r(x);
    }
    return rc;
}

static int stage_oplist(rest *x, const rill__snap_section *sec, stage *g)
{
    const void *k, *v;
    size_t kl, vl;
    int rc;
    g->seen = 1;
    while ((rc = next_entry(x, &k, &kl, &v, &vl)) == 1) {
        if (kl != 12)
            return corrupt(x, sec, "malformed operator list entry");
        if (rill__grow((void **)&g->items, &g->cap_items, g->n_items + 1, sizeof *g->items))
            return nomem_r(x);
        olitem *it = &g->items[g->n_items++];
        it->sub = rd_be32(k);
        it->idx = rd_be64((const unsigned char *)k + 4);
        it->off = g->data.len;
        it->len = (uint32_t)vl;
        if (bytes_add(&g->data, v, vl))
            return nomem_r(x);
    }
    return rc;
}

static int stage_broadcast(rest *x, stage *g)
{
    const void *k, *v;
    size_t kl, vl;
    int rc;
    bytes *b = &g->map;
    /* Entries come in key order: append; should one not, insert it. */
    size_t last = SIZE_MAX; /* offset of the last entry while in order */
    int sorted = 1;
    while ((rc = next_entry(x, &k, &kl, &v, &vl)) == 1) {
        if (bytes_room(b, RILL__MAP_HDR + kl + vl))
            return nomem_r(x);
        size_t off = b->len;
        int found = 0;
        if (sorted && last != SIZE_MAX) {
            const unsigned char *lk, *lv;
            size_t lkl, lvl, o = last;
            if (!rill__map_at(b->p, b->len, &o, &lk, &lkl, &lv, &lvl) ||
                rill__keycmp(lk, lkl, k, kl) >= 0)
                sorted = 0;
        }
        if (!sorted)
            off = rill__map_find(b->p, b->len, k, kl, &found);
        else
            last = off;
        b->len = rill__map_splice(b->p, b->len, off, found, k, kl, NULL, 0, v, vl);
    }
    if (rc == 0)
        g->taken = 1;
    return rc;
}

/* One section of the first pass; *use_keyed is set for keyed sections the
 * second pass loads. */
static int first_section(rest *x, const rill__snap_section *sec, int *use_keyed)
{
    if (sec->uid_len != x->uid_len || memcmp(sec->uid, x->uid, x->uid_len))
        return RILL_OK;
    size_t i = 0;
    rill_state *st = NULL;
    int rc;
    switch (sec->kind) {
    case RILL__SNAP_INFO:
        if (!sec->state_len)
            return RILL_OK;
        if (!(st = find_state(x, sec->state, &i)))
            return (rc = unknown(x, sec->state)) == 1 ? RILL_OK : rc;
        return stage_info(x, sec, st);
    case RILL__SNAP_KEYED:
        if (!(st = find_state(x, sec->state, &i)))
            return (rc = unknown(x, sec->state)) == 1 ? RILL_OK : rc;
        if (!rill__state_keyed_kind(st->kind))
            return mismatch(x, sec->state, "keyed", st->kind);
        if (sec->kg_first != sec->kg_last)
            return corrupt(x, sec, "a keyed section of several key groups");
        if (sec->kg_first >= x->m)
            return rfail(x, RILL_EINVAL,
                         "%s: state '%s' has key group %u, at or above the max parallelism %ld",
                         x->path, sec->state, (unsigned)sec->kg_first, x->m);
        if (!owned(x, sec->kg_first))
            return RILL_OK;
        *use_keyed = 1;
        return verify_keyed(x, sec, st);
    case RILL__SNAP_TIMERS: {
        int d = !strcmp(sec->state, "event") ? 0 : !strcmp(sec->state, "processing") ? 1 : -1;
        if (d < 0)
            return corrupt(x, sec, "timers of an unknown time domain");
        if (sec->kg_last < x->lo || sec->kg_first > x->hi || !sec->payload_len)
            return RILL_OK;
        if (!x->op->timers[d]) {
            if (x->allow_unknown)
                return RILL_OK;
            return rfail(x, RILL_EINVAL,
                         "operator '%s' has %s-time timers in the snapshot but no timers "
                         "(file '%s')",
                         x->uid, sec->state, x->path);
        }
        return stage_timers(x, sec, d);
    }
    case RILL__SNAP_OPLIST:
        if (!(st = find_state(x, sec->state, &i)))
            return (rc = unknown(x, sec->state)) == 1 ? RILL_OK : rc;
        if (st->kind != RILL_STATE_OPERATOR_LIST)
            return mismatch(x, sec->state, "operator list", st->kind);
        return stage_oplist(x, sec, &x->stg[i]);
    case RILL__SNAP_BROADCAST:
        if (!(st = find_state(x, sec->state, &i)))
            return (rc = unknown(x, sec->state)) == 1 ? RILL_OK : rc;
        if (st->kind != RILL_STATE_BROADCAST)
            return mismatch(x, sec->state, "broadcast", st->kind);
        if (x->stg[i].taken)
            return RILL_OK;
        x->stg[i].map.len = 0;
        return stage_broadcast(x, &x->stg[i]);
    default:
        return RILL_OK;
    }
}

static int open_file(rest *x, const char *path)
{
    x->path = path;
    int rc = rill__snap_reader_open(&x->r, path, x->emsg);
    if (rc)
        return rfail(x, rc, "%s", x->emsg);
    return RILL_OK;
}

static void close_file(rest *x)
{
    rill__snap_reader_close(x->r);
    x->r = NULL;
}

static int first_pass(rest *x, const char *path, unsigned char *need)
{
    int rc = open_file(x, path);
    if (rc)
        return rc;
    rill__snap_section sec;
    int use = 0;
    while ((rc = rill__snap_reader_next(x->r, &sec)) == 1)
        if ((rc = first_section(x, &sec, &use)) != RILL_OK)
            break;
    if (rc < 0 && !x->err[0])
        rc = reader_fail(x, rc);
    close_file(x);
    *need = (unsigned char)use;
    return rc < 0 ? rc : RILL_OK;
}

static int olitem_cmp(const void *pa, const void *pb)
{
    const olitem *a = pa, *b = pb;
    if (a->sub != b->sub)
        return a->sub < b->sub ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* This subtask's share of an operator list, as a list blob. */
static int build_oplist(rest *x, stage *g)
{
    if (g->n_items)
        qsort(g->items, g->n_items, sizeof *g->items, olitem_cmp);
    for (size_t i = (size_t)x->s; i < g->n_items; i += (size_t)x->p) {
        const olitem *it = &g->items[i];
        if (bytes_room(&g->blob, RILL__LIST_HDR + it->len))
            return nomem_r(x);
        g->blob.len = rill__list_put(g->blob.p, g->blob.len, NULL, 0, g->data.p + it->off,
                                     it->len);
    }
    bytes_free(&g->data);
    return RILL_OK;
}

/* ---- second pass: keyed records into LMDB ------------------------------- */

static int load_batch(rest *x)
{
    if (!x->batch.len)
        return RILL_OK;
    rill__kv *kv = x->op->kv;
    int rc = rill__kv_load(kv, x->batch_sid, x->batch.p, x->batch.len);
    x->batch.len = 0;
    if (rc)
        return rfail(x, rc, "%s", rill__kv_errmsg(kv));
    return RILL_OK;
}

static int load_section(rest *x, const rill__snap_section *sec, const rill_state *st)
{
    const void *k, *v;
    size_t kl, vl;
    int rc;
    if (x->batch_sid != st->sid && (rc = load_batch(x)) != RILL_OK)
        return rc;
    x->batch_sid = st->sid;
    while ((rc = next_entry(x, &k, &kl, &v, &vl)) == 1) {
        if (!keyed_entry_ok(st, k, kl)) /* the file changed since the first pass */
            return corrupt(x, sec, "malformed keyed entry");
        if (vl > UINT32_MAX - 64)
            return corrupt(x, sec, "keyed value too large");
        if (bytes_room(&x->batch, 10 + kl + vl))
            return nomem_r(x);
        unsigned char *p = x->batch.p + x->batch.len;
        rill__wr32(p, (uint32_t)(kl + 2));
        rill__wr32(p + 4, (uint32_t)vl);
        be16(p + 8, sec->kg_first);
        memcpy(p + 10, k, kl);
        if (vl)
            memcpy(p + 10 + kl, v, vl);
        x->batch.len += 10 + kl + vl;
        if (x->batch.len >= LOAD_BATCH && (rc = load_batch(x)) != RILL_OK)
            return rc;
    }
    return rc;
}

static int second_pass(rest *x, const char *path)
{
    int rc = open_file(x, path);
    if (rc)
        return rc;
    rill__snap_section sec;
    while ((rc = rill__snap_reader_next(x->r, &sec)) == 1) {
        size_t i;
        rill_state *st;
        if (sec.kind != RILL__SNAP_KEYED || sec.uid_len != x->uid_len ||
            memcmp(sec.uid, x->uid, x->uid_len) || !owned(x, sec.kg_first) ||
            sec.kg_first != sec.kg_last || !(st = find_state(x, sec.state, &i)) ||
            !rill__state_keyed_kind(st->kind))
            continue;
        if ((rc = load_section(x, &sec, st)) != RILL_OK)
            break;
    }
    if (rc < 0 && !x->err[0])
        rc = reader_fail(x, rc);
    close_file(x);
    return rc < 0 ? rc : RILL_OK;
}

/* ---- applying ---------------------------------------------------------- */

static void clear_timers(rill_ctx *op)
{
    for (int d = 0; d < 2; d++) {
        int64_t ts;
        uint16_t kg;
        const void *key;
        size_t kl;
        while (op->timers[d] && rill__timers_pop(op->timers[d], INT64_MAX, &ts, &kg, &key, &kl))
            ;
    }
}

static int apply_timers(rest *x)
{
    rill_ctx *op = x->op;
    for (int d = 0; d < 2; d++) {
        const bytes *b = &x->tm[d];
        for (size_t o = 0; o < b->len;) {
            const unsigned char *h = b->p + o;
            size_t kl = rill__rd32(h + 12);
            int rc = rill__timers_add(op->timers[d], rill__rd64(h), (uint16_t)rd_be16(h + 8),
                                      h + 16, kl);
            if (rc < 0)
                return nomem_r(x);
            o += 16 + kl;
        }
        if (d == RILL_PROCESSING_TIME && op->timers[d] && b->len)
            rill__op_wake(op, rill__timers_next(op->timers[d]));
    }
    return RILL_OK;
}

/* Swap the staged operator list and broadcast states in (cannot fail). */
static void apply_memory(rest *x)
{
    rill_ctx *op = x->op;
    for (size_t i = 0; i < op->n_states; i++) {
        rill_state *st = op->states[i];
        stage *g = &x->stg[i];
        bytes *b = st->kind == RILL_STATE_OPERATOR_LIST && g->seen ? &g->blob
                   : st->kind == RILL_STATE_BROADCAST && g->taken  ? &g->map
                                                                   : NULL;
        if (!b)
            continue;
        unsigned char *p = st->mem;
        size_t cap = st->mem_cap;
        st->mem = b->p;
        st->mem_cap = b->cap;
        st->mem_len = b->len;
        b->p = p; /* freed with the staging */
        b->cap = cap;
        b->len = 0;
        st->mod++;
    }
}

static int check_args(rest *x)
{
    rill_ctx *op = x->op;
    if (!x->uid)
        return rfail(x, RILL_EINVAL, "no resolved uid");
    x->m = op->st && op->st->job ? op->st->job->max_parallelism : 0;
    x->p = op->parallelism;
    x->s = op->subtask;
    if (x->m < 1 || x->m > (long)RILL__SNAP_KG_MAX + 1 || x->p < 1 || x->p > x->m || x->s < 0 ||
        x->s >= x->p)
        return rfail(x, RILL_EINVAL, "subtask %ld of %ld with max parallelism %ld", x->s, x->p,
                     x->m);
    x->lo = first_kg(x->s, x->p, x->m);
    x->hi = first_kg(x->s + 1, x->p, x->m) - 1;
    return RILL_OK;
}

static void rest_free(rest *x)
{
    if (x->stg)
        for (size_t i = 0; i < x->op->n_states; i++) {
            stage *g = &x->stg[i];
            bytes_free(&g->data);
            bytes_free(&g->blob);
            bytes_free(&g->map);
            rill__free(g->items);
        }
    rill__free(x->stg);
    rill__free(x->need);
    bytes_free(&x->tm[0]);
    bytes_free(&x->tm[1]);
    bytes_free(&x->batch);
    rill__snap_reader_close(x->r);
}

static int restore(rest *x, const char *const *paths, size_t n)
{
    rill_ctx *op = x->op;
    int rc = check_args(x);
    if (rc)
        return rc;
    x->stg = rill__calloc(op->n_states ? op->n_states : 1, sizeof *x->stg);
    x->need = rill__calloc(n ? n : 1, 1);
    if (!x->stg || !x->need)
        return nomem_r(x);
    /* First pass: nothing changes yet. */
    for (size_t f = 0; f < n; f++) {
        if (!paths[f])
            return rfail(x, RILL_EINVAL, "file %zu is NULL", f);
        if ((rc = first_pass(x, paths[f], &x->need[f])) != RILL_OK)
            return rc;
    }
    for (size_t i = 0; i < op->n_states; i++)
        if (op->states[i]->kind == RILL_STATE_OPERATOR_LIST &&
            (rc = build_oplist(x, &x->stg[i])) != RILL_OK)
            return rc;
    /* Second pass: keyed records, then timers, then the memory states. */
    int any = 0;
    for (size_t f = 0; f < n; f++)
        any |= x->need[f];
    if (any && op->kv) {
        rc = rill__kv_drop_cache(op->kv);
        if (rc)
            return rfail(x, rc, "%s", rill__kv_errmsg(op->kv));
        for (size_t f = 0; f < n && !rc; f++)
            if (x->need[f])
                rc = second_pass(x, paths[f]);
        if (!rc)
            rc = load_batch(x);
    }
    if (!rc)
        rc = apply_timers(x);
    if (rc) {
        /* Part of the state may be in place: take it all away again. */
        clear_timers(op);
        if (op->kv && rill__kv_empty(op->kv) != RILL_OK) {
            size_t len = strlen(x->err);
            snprintf(x->err + len, RILL__ERRMSG_MAX - len, "; and emptying the state failed: %s",
                     rill__kv_errmsg(op->kv));
        }
        return rc;
    }
    apply_memory(x);
    return RILL_OK;
}

int rill__state_restore(rill_ctx *op, const char *const *paths, size_t n, int allow_unknown,
                        char *err)
{
    rest x;
    memset(&x, 0, sizeof x);
    x.op = op;
    x.uid = uid_of(op);
    x.uid_len = x.uid ? strlen(x.uid) : 0;
    x.allow_unknown = allow_unknown;
    x.err = err;
    err[0] = '\0';
    if (!paths && n) {
        rill__fmt(err, "restoring operator '%s': no files", x.uid ? x.uid : "?");
        return RILL_EINVAL;
    }
    int rc = restore(&x, paths, n);
    rest_free(&x);
    return rc;
}
