/* state.c - the states of an operator subtask: opening them (handles, and
 * the LMDB store when a keyed kind is declared), closing, flushing, TTL
 * maintenance in the background, rill_ctx_state, and the helpers the
 * state calls share (messages, scratch buffers, user function calls). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"
#include "state/prefetch.h"
#include "state/state_int.h"
#include "util/alloc.h"

#define DEFAULT_CACHE ((size_t)64 << 20)
/* Work per rill__state_maintain call. */
#define MAINTAIN_SLOTS 8192
#define MAINTAIN_RECORDS 2048

/* ---- messages ---------------------------------------------------------------- */

static void set_user_err(rill_ctx *op, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void set_user_err(rill_ctx *op, const char *fmt, ...)
{
    if (!op->user_err && !(op->user_err = rill__malloc(RILL__ERRMSG_MAX)))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->user_err, RILL__ERRMSG_MAX, fmt, ap);
    va_end(ap);
}

int rill__state_fail(rill_state *st, int code, const char *fmt, ...)
{
    char msg[RILL__ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    set_user_err(st->op, "state '%s': %s", st->d->name, msg);
    return code;
}

int rill__state_kvfail(rill_state *st, int code)
{
    set_user_err(st->op, "%s", rill__kv_errmsg(st->op->kv));
    return code;
}

/* ---- scratch ----------------------------------------------------------------- */

int rill__state_scratch(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap && *buf)
        return RILL_OK;
    size_t n = *cap ? *cap : 64;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return RILL_ENOMEM;
        n *= 2;
    }
    unsigned char *p = rill__realloc(*buf, n);
    if (!p)
        return RILL_ENOMEM;
    *buf = p;
    *cap = n;
    return RILL_OK;
}

int rill__state_stash(rill_state *st, int i, const void **p, size_t len, const void *lo,
                      const void *hi, int force)
{
    uintptr_t a = (uintptr_t)*p;
    if (!len || !*p)
        return RILL_OK;
    if (!force && !(a >= (uintptr_t)lo && a < (uintptr_t)hi))
        return RILL_OK;
    if (rill__state_scratch(&st->stash[i], &st->stash_cap[i], len))
        return rill__state_fail(st, RILL_ENOMEM, "out of memory");
    memcpy(st->stash[i], *p, len);
    *p = st->stash[i];
    return RILL_OK;
}

/* ---- user functions ------------------------------------------------------------ */

static int invoke(rill_state *st, int call, const void *a, size_t al, const void *b, size_t bl,
                  void *out, size_t *olen)
{
    const rill__statedesc *d = st->d;
    switch (call) {
    case RILL__CALL_REDUCE:
        return d->reduce(a, al, b, bl, out, olen, d->ud);
    case RILL__CALL_CREATE:
        return d->agg.create(out, olen, d->ud);
    case RILL__CALL_ADD:
        return d->agg.add(a, al, b, bl, out, olen, d->ud);
    default:
        return d->agg.result(a, al, out, olen, d->ud);
    }
}

int rill__state_call(rill_state *st, int call, const void *a, size_t al, const void *b,
                     size_t bl, unsigned char **buf, size_t *cap, size_t *rlen)
{
    static const char *const names[] = {"reduce", "aggregate create", "aggregate add",
                                        "aggregate result"};
    if (rill__state_scratch(buf, cap, 64))
        return rill__state_fail(st, RILL_ENOMEM, "out of memory");
    for (int tries = 0; tries < 8; tries++) {
        size_t n = *cap;
        int r = invoke(st, call, a, al, b, bl, *buf, &n);
        if (r)
            return rill__state_fail(st, RILL_EUSER, "%s function returned %d", names[call], r);
        if (n <= *cap) {
            *rlen = n;
            return RILL_OK;
        }
        if (n > RILL__KV_VALUE_MAX)
            return rill__state_fail(st, RILL_EUSER, "%s function asked for %zu bytes",
                                    names[call], n);
        if (rill__state_scratch(buf, cap, n))
            return rill__state_fail(st, RILL_ENOMEM, "out of memory");
    }
    return rill__state_fail(st, RILL_EUSER, "%s function keeps asking for a larger buffer",
                            names[call]);
}

/* ---- TTL ------------------------------------------------------------------------ */

size_t rill__state_purge_list(unsigned char *b, size_t len, int64_t now)
{
    size_t in = 0, out = 0, n;
    const unsigned char *item;
    for (size_t at = 0; rill__list_at(b, len, &in, &item, &n); at = in) {
        if (rill__state_expired(item, n, now))
            continue;
        if (out != at)
            memmove(b + out, b + at, in - at);
        out += in - at;
    }
    return out;
}

size_t rill__state_purge_map(unsigned char *b, size_t len, int64_t now)
{
    size_t in = 0, out = 0, kl, vl;
    const unsigned char *k, *v;
    for (size_t at = 0; rill__map_at(b, len, &in, &k, &kl, &v, &vl); at = in) {
        if (rill__state_expired(v, vl, now))
            continue;
        if (out != at)
            memmove(b + out, b + at, in - at);
        out += in - at;
    }
    return out;
}

typedef struct maint {
    rill_ctx *op;
    rill_state *st;
    int64_t now;
} maint;

static rill_state *state_of_sid(rill_ctx *op, unsigned sid)
{
    for (size_t i = 0; i < op->n_states; i++) {
        rill_state *st = op->states[i];
        if (rill__state_keyed_kind(st->kind) && st->sid == sid)
            return st;
    }
    return NULL;
}

/* A cached entry: drop what expired (the next flush writes it). */
static int expire_entry(rill__kvent *e, void *arg)
{
    maint *m = arg;
    rill_state *st = state_of_sid(m->op, e->sid);
    if (!st || !st->ttl || rill__kvent_absent(e))
        return 0;
    unsigned char *b = rill__kvent_val(e);
    size_t len = e->vlen, n;
    if (st->kind == RILL_STATE_LIST)
        n = rill__state_purge_list(b, len, m->now);
    else if (st->kind == RILL_STATE_MAP)
        n = rill__state_purge_map(b, len, m->now);
    else
        n = rill__state_expired(b, len, m->now) ? 0 : len;
    if (n != len) {
        rill__kv_changed(e, n, n == 0);
        st->mod++;
    }
    return 0;
}

/* An LMDB record (not cached): a map record is one entry, but a long
 * record (whole) a map of several. */
static int expire_rec(const void *val, size_t len, int whole, const void **nval, size_t *nlen,
                      void *arg)
{
    maint *m = arg;
    rill_state *st = m->st;
    int map = st->kind == RILL_STATE_MAP;
    if (st->kind != RILL_STATE_LIST && !(map && whole))
        return rill__state_expired(val, len, m->now) ? RILL__KV_DELETE : RILL__KV_KEEP;
    if (rill__state_scratch(&st->buf[0], &st->buf_cap[0], len))
        return RILL_ENOMEM;
    if (len)
        memcpy(st->buf[0], val, len);
    size_t n = map ? rill__state_purge_map(st->buf[0], len, m->now)
                   : rill__state_purge_list(st->buf[0], len, m->now);
    if (n == len)
        return RILL__KV_KEEP;
    if (n == 0)
        return RILL__KV_DELETE;
    *nval = st->buf[0];
    *nlen = n;
    return RILL__KV_REPLACE;
}

int rill__state_maintain(rill_ctx *op, int64_t now)
{
    if (!op || !op->kv)
        return RILL_OK;
    int any = 0;
    for (size_t i = 0; i < op->n_states; i++)
        any |= op->states[i]->ttl > 0;
    if (!any)
        return RILL_OK;
    maint m = {op, NULL, now};
    int rc = rill__kv_cache_scan(op->kv, MAINTAIN_SLOTS, expire_entry, &m);
    for (size_t i = 0; i < op->n_states && !rc; i++) {
        rill_state *st = op->states[i];
        if (!st->ttl)
            continue;
        m.st = st;
        rc = rill__kv_db_scan(op->kv, st->sid, MAINTAIN_RECORDS, expire_rec, &m, NULL);
        if (rc)
            rc = rill__state_kvfail(st, rc);
    }
    return rc;
}

int rill__state_flush(rill_ctx *op)
{
    if (!op || !op->kv)
        return RILL_OK;
    int rc = rill__kv_flush(op->kv);
    if (rc)
        set_user_err(op, "%s", rill__kv_errmsg(op->kv));
    return rc;
}

/* ---- open and close ----------------------------------------------------------- */

static void free_state(rill_state *st)
{
    if (!st)
        return;
    rill__free(st->mem);
    for (int i = 0; i < 2; i++) {
        rill__free(st->buf[i]);
        rill__free(st->stash[i]);
    }
    rill__free(st->out);
    rill__free(st);
}

void rill__state_close(rill_ctx *op)
{
    if (!op)
        return;
    if (op->states)
        for (size_t i = 0; i < op->n_states; i++)
            free_state(op->states[i]);
    rill__free(op->states);
    op->states = NULL;
    op->n_states = 0;
    rill__kv_close(op->kv);
    op->kv = NULL;
}

static int check_desc(const rill_ctx *op, const rill__statedesc *d, char *err)
{
    const char *opname = op->node->name ? op->node->name : "";
    if (!d->name || d->kind < RILL_STATE_VALUE || d->kind > RILL_STATE_BROADCAST) {
        rill__fmt(err, "operator '%s': state '%s' has an unknown kind %d", opname,
                  d->name ? d->name : "", d->kind);
        return RILL_EINVAL;
    }
    if ((d->kind == RILL_STATE_REDUCING && !d->reduce) ||
        (d->kind == RILL_STATE_AGGREGATING &&
         (!d->agg.create || !d->agg.add || !d->agg.merge || !d->agg.result))) {
        rill__fmt(err, "operator '%s': state '%s' lacks its functions", opname, d->name);
        return RILL_EINVAL;
    }
    return RILL_OK;
}

static int open_states(rill_ctx *op, const char *dir, size_t cache_bytes, char *err)
{
    const rill__node *node = op->node;
    size_t n = node->n_states;
    if (!(op->states = rill__calloc(n, sizeof(rill_state *))))
        goto nomem;
    op->n_states = n;
    const char **names = rill__calloc(n, sizeof(char *));
    unsigned char *is_map = rill__calloc(n, 1);
    if (!names || !is_map) {
        rill__free(names);
        rill__free(is_map);
        goto nomem;
    }
    size_t nk = 0;
    int rc = RILL_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        const rill__statedesc *d = &node->states[i];
        if ((rc = check_desc(op, d, err)) != RILL_OK)
            break;
        rill_state *st = rill__calloc(1, sizeof *st);
        if (!st) {
            rc = RILL_ENOMEM;
            rill__fmt(err, "operator '%s': out of memory opening state '%s'", node->name,
                      d->name);
            break;
        }
        op->states[i] = st;
        st->op = op;
        st->d = d;
        st->kind = d->kind;
        if (rill__state_keyed_kind(d->kind)) {
            st->sid = (unsigned)nk;
            names[nk] = d->name;
            is_map[nk++] = d->kind == RILL_STATE_MAP;
            st->ttl = d->ttl > 0 ? d->ttl : 0;
            st->tp = st->ttl ? RILL__TTL_HDR : 0;
        }
    }
    if (!rc && nk) {
        if (!dir || !*dir) {
            rill__fmt(err, "operator '%s': keyed state '%s' needs a state directory",
                      node->name, names[0]);
            rc = RILL_EINVAL;
        } else {
            char kerr[RILL__ERRMSG_MAX];
            rc = rill__kv_open(&op->kv, dir, names, is_map, nk,
                               cache_bytes ? cache_bytes : DEFAULT_CACHE, kerr);
            if (rc)
                rill__fmt(err, "operator '%s': %s", node->name, kerr);
        }
    }
    rill__free(names);
    rill__free(is_map);
    return rc;
nomem:
    rill__fmt(err, "operator '%s': out of memory opening its state", node->name);
    return RILL_ENOMEM;
}

int rill__state_open(rill_ctx *op, const char *dir, size_t cache_bytes, char *err)
{
    op->states = NULL;
    op->n_states = 0;
    op->kv = NULL;
    if (!op->node || !op->node->n_states)
        return RILL_OK;
    int rc = open_states(op, dir, cache_bytes, err);
    if (rc)
        rill__state_close(op);
    return rc;
}

int rill__state_keyed(const rill_ctx *op)
{
    for (size_t i = 0; op->node && i < op->node->n_states; i++)
        if (rill__state_keyed_kind(op->node->states[i].kind))
            return 1;
    return 0;
}

void rill__state_prefetch(rill_ctx *op, uint16_t kg, const void *key, size_t key_len, int stage)
{
    if (!op->kv || key_len > UINT16_MAX)
        return;
    for (size_t i = 0; i < op->n_states; i++) {
        const rill_state *st = op->states[i];
        if (rill__state_keyed_kind(st->kind))
            rill__kv_prefetch(op->kv, st->sid, kg, key, key_len, NULL, 0, stage);
    }
}

rill_state *rill__state_find(rill_ctx *op, const char *name)
{
    for (size_t i = 0; i < op->n_states; i++)
        if (!strcmp(op->states[i]->d->name, name))
            return op->states[i];
    return NULL;
}

RILL_API rill_state *rill_ctx_state(rill_ctx *ctx, const char *name)
{
    if (!ctx || !name)
        return NULL;
    rill_state *st = rill__state_find(ctx, name);
    if (st)
        return st;
    /* The state calls refuse the NULL handle, and the callback's failure
     * then says why. */
    if (!ctx->n_states) {
        set_user_err(ctx,
                     "rill_ctx_state: no state '%s' is declared on this operator (it declares "
                     "none; see rill_stream_add_state)",
                     name);
        return NULL;
    }
    char list[RILL__ERRMSG_MAX];
    size_t used = 0;
    list[0] = '\0';
    for (size_t i = 0; i < ctx->n_states && used < sizeof list; i++) {
        int n = snprintf(list + used, sizeof list - used, "%s'%s'", i ? ", " : "",
                         ctx->states[i]->d->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    set_user_err(ctx, "rill_ctx_state: no state '%s' is declared on this operator (declared: %s)",
                 name, list);
    return NULL;
}
