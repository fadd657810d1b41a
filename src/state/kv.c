/* kv.c - the LMDB side of the keyed-state store: opening the environment
 * in its directory, reading entries on cache misses, writing the dirty
 * entries in large sorted transactions (growing a full map and retrying),
 * and removing the directory on close. The cache table is kvcache.c,
 * background walks are kvscan.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rill.h"
#include "state/blob.h"
#include "state/kv_int.h"
#include "util/alloc.h"

size_t rill__kv_initial_map_size = (size_t)64 << 20;
unsigned rill__kv_extra_env_flags = 0;

#define ENV_FLAGS (MDB_NOSYNC | MDB_NOMETASYNC | MDB_NOTLS)

/* ---- errors ------------------------------------------------------------ */

int rill__kvi_fail(rill__kv *kv, int sid, const char *what, int rc)
{
    if (sid >= 0)
        rill__fmt(kv->err, "state '%s' (state store '%s'): %s: %s", kv->names[sid], kv->dir,
                  what, mdb_strerror(rc));
    else
        rill__fmt(kv->err, "state store '%s': %s: %s", kv->dir, what, mdb_strerror(rc));
    return rc == ENOMEM ? RILL_ENOMEM : RILL_EIO;
}

int rill__kvi_nomem(rill__kv *kv, const char *what)
{
    rill__fmt(kv->err, "state store '%s': out of memory %s", kv->dir, what);
    return RILL_ENOMEM;
}

const char *rill__kv_errmsg(const rill__kv *kv) { return kv ? kv->err : ""; }
size_t rill__kv_max_key(const rill__kv *kv) { return kv->maxkey; }
MDB_env *rill__kv_env(rill__kv *kv) { return kv->env; }
MDB_dbi rill__kv_dbi(const rill__kv *kv, unsigned sid) { return kv->dbi[sid]; }
void rill__kv_mark_used(rill__kv *kv, unsigned sid) { kv->used[sid] = 1; }

size_t rill__kv_encode_key(unsigned char *buf, uint16_t kg, const void *key, size_t klen,
                           const void *ns, size_t nslen)
{
    buf[0] = (unsigned char)(kg >> 8);
    buf[1] = (unsigned char)kg;
    buf[2] = (unsigned char)(klen >> 8);
    buf[3] = (unsigned char)klen;
    if (klen)
        memcpy(buf + 4, key, klen);
    buf[4 + klen] = (unsigned char)(nslen >> 8);
    buf[5 + klen] = (unsigned char)nslen;
    if (nslen)
        memcpy(buf + 6 + klen, ns, nslen);
    return 6 + klen + nslen;
}

static size_t encode_ent(rill__kv *kv, rill__kvent *e)
{
    return rill__kv_encode_key(kv->kbuf, e->kg, rill__kvent_key(e), e->klen, rill__kvent_ns(e),
                               e->nslen);
}

/* ---- the read transaction ------------------------------------------------ */

void rill__kvi_pause(rill__kv *kv)
{
    if (kv->rtxn_live) {
        mdb_txn_reset(kv->rtxn);
        kv->rtxn_live = 0;
    }
}

int rill__kvi_resume(rill__kv *kv)
{
    if (kv->rtxn_live)
        return RILL_OK;
    int rc = mdb_txn_renew(kv->rtxn);
    if (rc)
        return rill__kvi_fail(kv, -1, "mdb_txn_renew", rc);
    kv->rtxn_live = 1;
    return RILL_OK;
}

void rill__kvi_wait_views(rill__kv *kv)
{
    if (!kv->vinit)
        return;
    pthread_mutex_lock(&kv->vmu);
    while (kv->readers)
        pthread_cond_wait(&kv->vcv, &kv->vmu);
    pthread_mutex_unlock(&kv->vmu);
}

/* Double the map (no transaction may be active: a view's read transaction
 * on another thread is waited for). */
int rill__kvi_grow(rill__kv *kv)
{
    if (kv->map_size > SIZE_MAX / 2)
        return rill__kvi_fail(kv, -1, "growing the map", MDB_MAP_FULL);
    rill__kvi_wait_views(kv);
    size_t size = kv->map_size * 2;
    int rc = mdb_env_set_mapsize(kv->env, size);
    if (rc)
        return rill__kvi_fail(kv, -1, "mdb_env_set_mapsize", rc);
    kv->map_size = size;
    kv->n_grows++;
    return RILL_OK;
}

int rill__kvi_write(rill__kv *kv, rill__kvi_body body, void *arg, int sid, int split)
{
    for (;;) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
        if (rc)
            return rill__kvi_fail(kv, sid, "mdb_txn_begin", rc);
        const char *what = "mdb_put";
        int at = sid;
        rc = body(kv, txn, arg, &what, &at);
        if (rc) {
            mdb_txn_abort(txn);
        } else {
            what = "mdb_txn_commit";
            at = sid;
            rc = mdb_txn_commit(txn);
        }
        if (rc == MDB_MAP_FULL) {
            if ((rc = rill__kvi_grow(kv)) != RILL_OK)
                return rc;
            continue;
        }
        if (rc == MDB_TXN_FULL && split)
            return rc;
        return rc ? rill__kvi_fail(kv, at, what, rc) : RILL_OK;
    }
}

/* ---- open and close ------------------------------------------------------ */

static int make_dirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0777);
        int e = errno;
        *p = '/';
        if (rc && e != EEXIST)
            return e;
    }
    if (mkdir(path, 0777) && errno != EEXIST)
        return errno;
    struct stat sb;
    if (stat(path, &sb))
        return errno;
    return S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;
}

static void remove_files(const char *dir)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    size_t n = strlen(dir);
    char *p = rill__malloc(n + 16);
    if (!p)
        return;
    for (size_t i = 0; i < 2; i++) {
        snprintf(p, n + 16, "%s/%s", dir, files[i]);
        (void)unlink(p);
    }
    rill__free(p);
}

static int open_dbis_body(rill__kv *kv, MDB_txn *txn, void *arg, const char **what, int *sid)
{
    (void)arg;
    *what = "mdb_dbi_open";
    for (size_t i = 0; i < kv->n; i++) {
        *sid = (int)i;
        int rc = mdb_dbi_open(txn, kv->names[i], MDB_CREATE, &kv->dbi[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static int open_dbis(rill__kv *kv)
{
    return rill__kvi_write(kv, open_dbis_body, NULL, -1, 0);
}

static int open_store(rill__kv *kv, const char *dir, const char *const *names,
                      const unsigned char *is_map)
{
    size_t n = kv->n;
    kv->dir = rill__strdup(dir);
    kv->names = rill__calloc(n, sizeof(char *));
    kv->dbi = rill__calloc(n, sizeof(MDB_dbi));
    kv->is_map = rill__calloc(n, 1);
    kv->used = rill__calloc(n, 1);
    kv->resume = rill__calloc(n, sizeof(unsigned char *));
    kv->resume_len = rill__calloc(n, sizeof(size_t));
    if (!kv->dir || !kv->names || !kv->dbi || !kv->is_map || !kv->used || !kv->resume ||
        !kv->resume_len)
        return RILL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(kv->names[i] = rill__strdup(names[i])))
            return RILL_ENOMEM;
        kv->is_map[i] = is_map && is_map[i];
    }
    if (rill__kvc_init(kv) != RILL_OK)
        return RILL_ENOMEM;

    int e = make_dirs(kv->dir);
    if (e) {
        rill__fmt(kv->err, "cannot create state directory '%s': %s", dir, strerror(e));
        return RILL_EIO;
    }
    remove_files(kv->dir); /* a working store never outlives its run */
    int rc = mdb_env_create(&kv->env);
    if (rc)
        return rill__kvi_fail(kv, -1, "mdb_env_create", rc);
    kv->map_size = rill__kv_initial_map_size ? rill__kv_initial_map_size : ((size_t)64 << 20);
    if ((rc = mdb_env_set_maxdbs(kv->env, (MDB_dbi)n)) ||
        (rc = mdb_env_set_mapsize(kv->env, kv->map_size)))
        return rill__kvi_fail(kv, -1, "mdb_env_set_mapsize", rc);
    rc = mdb_env_open(kv->env, kv->dir, ENV_FLAGS | rill__kv_extra_env_flags, 0600);
    if (rc)
        return rill__kvi_fail(kv, -1, "mdb_env_open", rc);
    kv->maxkey = (size_t)mdb_env_get_maxkeysize(kv->env);
    if (!(kv->kbuf = rill__malloc(kv->maxkey)))
        return RILL_ENOMEM;
    if ((rc = open_dbis(kv)) != RILL_OK)
        return rc;
    rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &kv->rtxn);
    if (rc)
        return rill__kvi_fail(kv, -1, "mdb_txn_begin", rc);
    kv->rtxn_live = 1;
    return RILL_OK;
}

int rill__kv_open(rill__kv **out, const char *dir, const char *const *names,
                  const unsigned char *is_map, size_t n, size_t cache_bytes, char *err)
{
    *out = NULL;
    if (!dir || !*dir || !names || n == 0 || n > 255) {
        rill__fmt(err, "state store '%s': bad arguments (%zu states)", dir ? dir : "(null)",
                  n);
        return RILL_EINVAL;
    }
    rill__kv *kv = rill__calloc(1, sizeof *kv);
    if (!kv) {
        rill__fmt(err, "state store '%s': out of memory", dir);
        return RILL_ENOMEM;
    }
    kv->n = n;
    kv->hot.budget = cache_bytes;
    int rc = RILL_ENOMEM;
    if (!pthread_mutex_init(&kv->vmu, NULL)) {
        if (!pthread_cond_init(&kv->vcv, NULL))
            kv->vinit = 1;
        else
            pthread_mutex_destroy(&kv->vmu);
    }
    if (kv->vinit)
        rc = open_store(kv, dir, names, is_map);
    if (rc != RILL_OK) {
        if (rc == RILL_ENOMEM && !kv->err[0])
            rill__fmt(err, "state store '%s': out of memory", dir);
        else
            rill__fmt(err, "%s", kv->err);
        rill__kv_close(kv);
        return rc;
    }
    *out = kv;
    return RILL_OK;
}

void rill__kv_close(rill__kv *kv)
{
    if (!kv)
        return;
    rill__kvi_wait_views(kv);
    if (kv->rtxn)
        mdb_txn_abort(kv->rtxn);
    if (kv->env)
        mdb_env_close(kv->env);
    if (kv->dir) {
        remove_files(kv->dir);
        (void)rmdir(kv->dir);
    }
    rill__kvc_fini(kv);
    for (size_t i = 0; i < kv->n; i++) {
        if (kv->names)
            rill__free(kv->names[i]);
        if (kv->resume)
            rill__free(kv->resume[i]);
    }
    rill__free(kv->names);
    rill__free(kv->dbi);
    rill__free(kv->is_map);
    rill__free(kv->used);
    rill__free(kv->resume);
    rill__free(kv->resume_len);
    rill__free(kv->kbuf);
    rill__free(kv->tmp);
    rill__free(kv->dir);
    if (kv->vinit) {
        pthread_cond_destroy(&kv->vcv);
        pthread_mutex_destroy(&kv->vmu);
    }
    rill__free(kv);
}

/* ---- reading on a cache miss ---------------------------------------------- */

static int tmp_reserve(rill__kv *kv, size_t need)
{
    if (need <= kv->tmpcap)
        return RILL_OK;
    size_t cap = kv->tmpcap ? kv->tmpcap : 256;
    while (cap < need)
        cap *= 2;
    unsigned char *p = rill__realloc(kv->tmp, cap);
    if (!p)
        return RILL_ENOMEM;
    kv->tmp = p;
    kv->tmpcap = cap;
    return RILL_OK;
}

/* The map of the key prefix kbuf[0..kl) as a blob in kv->tmp. */
static int load_map(rill__kv *kv, unsigned sid, size_t kl, size_t *blen)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(kv->rtxn, kv->dbi[sid], &cur);
    if (rc)
        return rill__kvi_fail(kv, (int)sid, "mdb_cursor_open", rc);
    MDB_val k = {kl, kv->kbuf}, v;
    size_t len = 0;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= kl && !memcmp(k.mv_data, kv->kbuf, kl)) {
        size_t mk = k.mv_size - kl;
        if (v.mv_size > RILL__KV_VALUE_MAX || len + RILL__MAP_HDR + mk + v.mv_size >
                                                    RILL__KV_VALUE_MAX) {
            mdb_cursor_close(cur);
            rill__fmt(kv->err, "state '%s' (state store '%s'): map too large", kv->names[sid],
                      kv->dir);
            return RILL_ENOMEM;
        }
        if (tmp_reserve(kv, len + RILL__MAP_HDR + mk + v.mv_size) != RILL_OK) {
            mdb_cursor_close(cur);
            return rill__kvi_nomem(kv, "loading a map");
        }
        unsigned char *p = kv->tmp + len;
        rill__wr32(p, (uint32_t)mk);
        rill__wr32(p + 4, (uint32_t)v.mv_size);
        memcpy(p + RILL__MAP_HDR, (const unsigned char *)k.mv_data + kl, mk);
        if (v.mv_size)
            memcpy(p + RILL__MAP_HDR + mk, v.mv_data, v.mv_size);
        len += RILL__MAP_HDR + mk + v.mv_size;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return rill__kvi_fail(kv, (int)sid, "mdb_cursor_get", rc);
    *blen = len;
    return RILL_OK;
}

/* A new entry for a cache miss: from LMDB, or absent. */
static int load(rill__kv *kv, unsigned sid, uint16_t kg, const void *key, size_t klen,
                const void *ns, size_t nslen, rill__kvent **out)
{
    const void *src = NULL;
    size_t len = 0;
    int found = 0;
    if (kv->used[sid]) {
        int rc = rill__kvi_resume(kv);
        if (rc)
            return rc;
        kv->n_db_reads++;
        size_t kl = rill__kv_encode_key(kv->kbuf, kg, key, klen, ns, nslen);
        if (kv->is_map[sid]) {
            if ((rc = load_map(kv, sid, kl, &len)) != RILL_OK)
                return rc;
            found = len > 0;
            src = kv->tmp;
        } else {
            MDB_val k = {kl, kv->kbuf}, v;
            rc = mdb_get(kv->rtxn, kv->dbi[sid], &k, &v);
            if (rc == 0) {
                found = 1;
                src = v.mv_data;
                len = v.mv_size;
            } else if (rc != MDB_NOTFOUND) {
                return rill__kvi_fail(kv, (int)sid, "mdb_get", rc);
            }
        }
    }
    rill__kvent *e = rill__kvc_new(kv, sid, kg, key, klen, ns, nslen, len);
    if (!e)
        return rill__kvi_nomem(kv, "caching a state value");
    if (found) {
        if (len)
            memcpy(rill__kvent_val(e), src, len);
        e->vlen = (uint32_t)len;
        e->flags = RILL__KV_INDB | RILL__KV_REF;
    } else {
        e->flags = RILL__KV_ABSENT | RILL__KV_REF;
    }
    *out = e;
    return RILL_OK;
}

int rill__kv_find(rill__kv *kv, unsigned sid, uint16_t kg, const void *key, size_t klen,
                  const void *ns, size_t nslen, rill__kvent **out)
{
    uint64_t h = rill__kvc_hash(sid, kg, key, klen, ns, nslen);
    rill__kvent *e = rill__kvc_get(kv, h, sid, kg, key, klen, ns, nslen);
    if (e) {
        e->flags |= RILL__KV_REF;
        *out = e;
        return RILL_OK;
    }
    if (klen > UINT16_MAX || nslen > UINT16_MAX || 6 + klen + nslen > kv->maxkey) {
        rill__fmt(kv->err,
                  "state '%s': a key of %zu bytes with a namespace of %zu bytes is too long "
                  "for the state store (at most %zu bytes together)",
                  kv->names[sid], klen, nslen, kv->maxkey - 6);
        return RILL_EINVAL;
    }
    int rc = load(kv, sid, kg, key, klen, ns, nslen, &e);
    if (rc)
        return rc;
    if (rill__kvc_insert(kv, h, e) != RILL_OK) {
        rill__kvc_free(kv, e);
        return rill__kvi_nomem(kv, "growing the cache table");
    }
    *out = e;
    return RILL_OK;
}

void rill__kv_prefetch(rill__kv *kv, unsigned sid, uint16_t kg, const void *key, size_t klen,
                       const void *ns, size_t nslen, int stage)
{
    uint64_t h = rill__kvc_hash(sid, kg, key, klen, ns, nslen);
    const rill__kvslot *s = &kv->slots[(size_t)h & (kv->cap - 1)];
    if (stage == 0) {
        __builtin_prefetch(s, 0, 3);
        return;
    }
    /* The entry is usually in the home slot or the next ones. */
    for (int i = 0; i < 2 && s->e; i++, s = &kv->slots[((size_t)(s - kv->slots) + 1) & (kv->cap - 1)])
        if (s->h == h) {
            __builtin_prefetch(s->e, 1, 3);
            return;
        }
}

int rill__kv_set_slow(rill__kv *kv, rill__kvent **ep, const void *val, size_t len)
{
    rill__kvent *e = *ep;
    if (len > RILL__KV_VALUE_MAX) {
        rill__fmt(kv->err, "state '%s': a value of %zu bytes is too large", kv->names[e->sid],
                  len);
        return RILL_EINVAL;
    }
    /* val may point into the entry, which moves: follow it. */
    uintptr_t a = (uintptr_t)e, p = (uintptr_t)val;
    uintptr_t end = a + RILL__KV_VOFF(e->klen, e->nslen) + e->vcap;
    int inside = p >= a && p < end;
    size_t off = inside ? (size_t)(p - a) : 0;
    if (rill__kvc_regrow(kv, ep, len) != RILL_OK)
        return rill__kvi_nomem(kv, "growing a state value");
    e = *ep;
    if (inside)
        val = (const unsigned char *)e + off;
    memmove(rill__kvent_val(e), val, len);
    rill__kv_changed(e, len, 0);
    return RILL_OK;
}

int rill__kv_reserve_slow(rill__kv *kv, rill__kvent **ep, size_t cap)
{
    rill__kvent *e = *ep;
    if (cap > RILL__KV_VALUE_MAX) {
        rill__fmt(kv->err, "state '%s': a value of %zu bytes is too large", kv->names[e->sid],
                  cap);
        return RILL_EINVAL;
    }
    size_t grown = (size_t)e->vcap + e->vcap / 2;
    if (grown > cap && grown <= RILL__KV_VALUE_MAX)
        cap = grown;
    if (rill__kvc_regrow(kv, ep, cap) != RILL_OK)
        return rill__kvi_nomem(kv, "growing a state value");
    return RILL_OK;
}

void rill__kv_clear(rill__kv *kv, rill__kvent **ep)
{
    rill__kv_changed(*ep, 0, 1);
    if ((*ep)->vcap > 256)
        (void)rill__kvc_regrow(kv, ep, 0); /* gives memory back; fine if it cannot */
}

/* ---- writing --------------------------------------------------------------- */

typedef struct sortent {
    uint64_t pre;
    rill__kvent *e;
} sortent;

static int sort_cmp(const void *pa, const void *pb)
{
    const sortent *a = pa, *b = pb;
    if (a->pre != b->pre)
        return a->pre < b->pre ? -1 : 1;
    rill__kvent *x = a->e, *y = b->e;
    /* Same state, key group and key length. */
    int c = x->klen ? memcmp(rill__kvent_key(x), rill__kvent_key(y), x->klen) : 0;
    if (c)
        return c;
    if (x->nslen != y->nslen)
        return x->nslen < y->nslen ? -1 : 1;
    return x->nslen ? memcmp(rill__kvent_ns(x), rill__kvent_ns(y), x->nslen) : 0;
}

static uint64_t sort_prefix(rill__kvent *e)
{
    const unsigned char *k = rill__kvent_key(e);
    uint64_t p = ((uint64_t)e->sid << 56) | ((uint64_t)e->kg << 40) | ((uint64_t)e->klen << 24);
    for (size_t i = 0; i < 3 && i < e->klen; i++)
        p |= (uint64_t)k[i] << (16 - 8 * i);
    return p;
}

/* Delete the records whose key starts with kbuf[0..kl). */
static int del_range(rill__kv *kv, MDB_txn *txn, MDB_dbi dbi, size_t kl)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    for (;;) {
        MDB_val k = {kl, kv->kbuf}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc || k.mv_size < kl || memcmp(k.mv_data, kv->kbuf, kl))
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int write_ent(rill__kv *kv, MDB_txn *txn, rill__kvent *e, const char **what)
{
    MDB_dbi dbi = kv->dbi[e->sid];
    size_t kl = encode_ent(kv, e);
    int absent = (e->flags & RILL__KV_ABSENT) || e->vlen == 0;
    int rc = 0;
    if (!kv->is_map[e->sid]) {
        MDB_val k = {kl, kv->kbuf};
        if (e->flags & RILL__KV_ABSENT) {
            if (e->flags & RILL__KV_INDB) {
                *what = "mdb_del";
                rc = mdb_del(txn, dbi, &k, NULL);
                if (rc == MDB_NOTFOUND)
                    rc = 0;
            }
        } else {
            MDB_val v = {e->vlen, rill__kvent_val(e)};
            *what = "mdb_put";
            rc = mdb_put(txn, dbi, &k, &v, 0);
        }
        return rc;
    }
    if (e->flags & RILL__KV_INDB) {
        *what = "deleting a map";
        if ((rc = del_range(kv, txn, dbi, kl)) != 0)
            return rc;
    }
    if (absent)
        return 0;
    const unsigned char *b = rill__kvent_val(e), *mk, *mv;
    size_t off = 0, mkl, mvl;
    *what = "mdb_put";
    while (rill__map_at(b, e->vlen, &off, &mk, &mkl, &mv, &mvl)) {
        if (kl + mkl > kv->maxkey)
            return MDB_BAD_VALSIZE; /* refused by rill_state_map_put already */
        memcpy(kv->kbuf + kl, mk, mkl);
        MDB_val k = {kl + mkl, kv->kbuf}, v = {mvl, (void *)mv};
        if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
            return rc;
    }
    return 0;
}

/* A run of sorted entries for one write transaction. */
typedef struct entrun {
    sortent *a;
    size_t n;
} entrun;

static int write_run(rill__kv *kv, MDB_txn *txn, void *arg, const char **what, int *sid)
{
    const entrun *r = arg;
    for (size_t i = 0; i < r->n; i++) {
        *sid = r->a[i].e->sid;
        int rc = write_ent(kv, txn, r->a[i].e, what);
        if (rc)
            return rc;
    }
    return 0;
}

/* Write the sorted entries a[0..n) in as few transactions as LMDB allows:
 * a full map grows and the transaction is retried, a transaction with too
 * many dirty pages is split. */
static int write_sorted(rill__kv *kv, sortent *a, size_t n)
{
    size_t pos = 0, chunk = n;
    rill__kvi_pause(kv);
    while (pos < n) {
        entrun r = {a + pos, chunk < n - pos ? chunk : n - pos};
        int rc = rill__kvi_write(kv, write_run, &r, -1, r.n > 1);
        if (rc == MDB_TXN_FULL) {
            chunk = r.n / 2;
            continue;
        }
        if (rc)
            return rc;
        for (size_t i = 0; i < r.n; i++) {
            rill__kvent *e = r.a[i].e;
            e->flags &= (uint8_t)~RILL__KV_DIRTY;
            if ((e->flags & RILL__KV_ABSENT) || (kv->is_map[e->sid] && e->vlen == 0)) {
                e->flags &= (uint8_t)~RILL__KV_INDB;
            } else {
                e->flags |= RILL__KV_INDB;
                kv->used[e->sid] = 1;
            }
        }
        kv->n_flushes++;
        pos += r.n;
    }
    return rill__kvi_resume(kv);
}

int rill__kv_flush(rill__kv *kv)
{
    if (!kv->count)
        return RILL_OK;
    /* One pass over the table (each entry is a cache miss); room for all. */
    sortent *a = rill__malloc(kv->count * sizeof *a);
    if (!a)
        return rill__kvi_nomem(kv, "writing state");
    size_t nd = 0;
    for (size_t i = 0; i < kv->cap; i++) {
        rill__kvent *e = kv->slots[i].e;
        if (e && (e->flags & RILL__KV_DIRTY)) {
            a[nd].pre = sort_prefix(e);
            a[nd++].e = e;
        }
    }
    int rc = RILL_OK;
    if (nd) {
        qsort(a, nd, sizeof *a, sort_cmp);
        rc = write_sorted(kv, a, nd);
    }
    rill__free(a);
    return rc;
}

int rill__kv_spill(rill__kv *kv)
{
    kv->n_spills++;
    int rc = rill__kv_flush(kv);
    rill__kvc_evict(kv, kv->hot.budget / 4 * 3, 0);
    return rc;
}

int rill__kv_drop_cache(rill__kv *kv)
{
    int rc = rill__kv_flush(kv);
    rill__kvc_evict(kv, 0, 1);
    return rc;
}

void rill__kv_stats(const rill__kv *kv, rill__kvstats *s)
{
    s->entries = kv->count;
    s->bytes = kv->hot.bytes;
    s->budget = kv->hot.budget;
    s->map_size = kv->map_size;
    s->spills = kv->n_spills;
    s->flushes = kv->n_flushes;
    s->map_grows = kv->n_grows;
    s->evictions = kv->n_evictions;
    s->db_reads = kv->n_db_reads;
}

/* ---- restore ---------------------------------------------------------------- */

/* Records of a snapshot section for one write transaction: m records of
 * buf from off on; end is where they stop. */
typedef struct recrun {
    unsigned sid;
    const unsigned char *buf;
    size_t off, m, end;
} recrun;

/* (Sorted input needs no MDB_APPEND: LMDB fills pages as well for keys
 * arriving in order.) */
static int load_run(rill__kv *kv, MDB_txn *txn, void *arg, const char **what, int *sid)
{
    recrun *r = arg;
    MDB_cursor *cur;
    (void)sid;
    *what = "mdb_cursor_open";
    int rc = mdb_cursor_open(txn, kv->dbi[r->sid], &cur);
    if (rc)
        return rc;
    *what = "mdb_put";
    size_t o = r->off;
    for (size_t i = 0; i < r->m && !rc; i++) {
        size_t kl = rill__rd32(r->buf + o), vl = rill__rd32(r->buf + o + 4);
        MDB_val k = {kl, (void *)(r->buf + o + 8)}, v = {vl, (void *)(r->buf + o + 8 + kl)};
        rc = mdb_cursor_put(cur, &k, &v, 0);
        o += 8 + kl + vl;
    }
    mdb_cursor_close(cur);
    r->end = o;
    return rc;
}

int rill__kv_load(rill__kv *kv, unsigned sid, const unsigned char *buf, size_t len)
{
    size_t n = 0;
    for (size_t o = 0; o < len; n++)
        o += 8 + (size_t)rill__rd32(buf + o) + rill__rd32(buf + o + 4);
    size_t done = 0, chunk = n;
    recrun r = {sid, buf, 0, 0, 0};
    rill__kvi_pause(kv);
    while (done < n) {
        r.m = chunk < n - done ? chunk : n - done;
        int rc = rill__kvi_write(kv, load_run, &r, (int)sid, r.m > 1);
        if (rc == MDB_TXN_FULL) {
            chunk = r.m / 2;
            continue;
        }
        if (rc)
            return rc;
        kv->n_flushes++;
        kv->used[sid] = 1;
        r.off = r.end;
        done += r.m;
    }
    return rill__kvi_resume(kv);
}

static int drop_all(rill__kv *kv, MDB_txn *txn, void *arg, const char **what, int *sid)
{
    (void)arg;
    *what = "mdb_drop";
    for (size_t i = 0; i < kv->n; i++) {
        *sid = (int)i;
        int rc = mdb_drop(txn, kv->dbi[i], 0);
        if (rc)
            return rc;
    }
    return 0;
}

int rill__kv_empty(rill__kv *kv)
{
    for (size_t i = 0; i < kv->cap; i++)
        if (kv->slots[i].e)
            kv->slots[i].e->flags &= (uint8_t)~RILL__KV_DIRTY;
    rill__kvc_evict(kv, 0, 1);
    for (size_t i = 0; i < kv->n; i++)
        kv->resume_len[i] = 0;
    rill__kvi_pause(kv);
    int rc = rill__kvi_write(kv, drop_all, NULL, -1, 0);
    if (rc)
        return rc;
    kv->n_flushes++;
    return rill__kvi_resume(kv);
}
