/* common.h - helpers shared by the test files: building an environment,
 * running it, sleeping, a generator of indexes, maps of one number, a
 * counting sink, sinks that keep int records or collect 8-byte records
 * per subtask, and a temporary directory.
 *
 * Header only: every helper is `static inline`, so a file that does not
 * use one gets no warning. A file may define before including this:
 *   TEST_NAME  "name": run_ok's job is "name test" and the temporary
 *              directory "/tmp/rill-name-XXXXXX" (default "rill");
 *   MAXSUB     the highest subtask count its sinks record (default 8).
 *
 * Only Test() and cr_assert* are used here, so the files built against
 * tests/shim (the ThreadSanitizer build) may include it too.
 */
#ifndef RILL_TESTS_COMMON_H
#define RILL_TESTS_COMMON_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rill.h"

#ifndef TEST_NAME
#define TEST_NAME "rill"
#endif

#ifndef MAXSUB
#define MAXSUB 8
#endif

/* ---- environment and running ---------------------------------------- */

static inline rill_env *new_env(int parallelism)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_set_parallelism(env, parallelism), RILL_OK);
    return env;
}

static inline void run_ok(rill_env *env)
{
    int rc = rill_env_execute(env, TEST_NAME " test");
    cr_assert_eq(rc, RILL_OK, "execute: %s (%s)", rill_err_name(rc), rill_env_errmsg(env));
}

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

#define assert_has(msg, needle)                                                      \
    cr_assert(strstr((msg), (needle)) != NULL, "message \"%s\" lacks \"%s\"", (msg), \
              (needle))

/* ---- a generator of its index (uint64) ------------------------------- */

static inline int gen_index(rill_ctx *ctx, uint64_t index, void *ud)
{
    (void)ud;
    return rill_emit(ctx, &index, sizeof index);
}

/* ---- maps of one number ------------------------------------------------ */

/* Emits v * mul + add for a uint64 record v; a record of another length
 * fails the callback (-1). */
static inline int emit_u64_affine(rill_ctx *ctx, const void *rec, size_t len, uint64_t mul,
                                  uint64_t add)
{
    uint64_t v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    v = v * mul + add;
    return rill_emit(ctx, &v, sizeof v);
}

/* The same for an int record. */
static inline int emit_int_affine(rill_ctx *ctx, const void *rec, size_t len, int mul, int add)
{
    int v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    v = v * mul + add;
    return rill_emit(ctx, &v, sizeof v);
}

/* ---- a counting sink of uint64 records ------------------------------- */

typedef struct sum_total {
    atomic_ullong count, sum;
} sum_total;

/* Adds each record to t (ud); a record that is not 8 bytes fails. */
static inline int total_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    sum_total *t = ud;
    uint64_t v = 0;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    atomic_fetch_add(&t->count, 1);
    atomic_fetch_add(&t->sum, v);
    return 0;
}

/* ---- a sink keeping int records in arrival order ---------------------- */

#define INTS_CAP 256

typedef struct ints {
    pthread_mutex_t mu;
    int v[INTS_CAP]; /* the first INTS_CAP records */
    int n;           /* records received, kept or not */
} ints;

/* Appends each record to the ints (ud); a record that is not an int fails. */
static inline int keep_int(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    ints *c = ud;
    int v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    pthread_mutex_lock(&c->mu);
    if (c->n < INTS_CAP)
        c->v[c->n] = v;
    c->n++;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* ---- a sink collecting uint64 records per subtask --------------------- */

typedef struct coll {
    pthread_mutex_t mu;
    uint64_t *v[MAXSUB]; /* first 8 bytes of each record, per subtask, in arrival order */
    size_t n[MAXSUB], cap[MAXSUB];
    int bad;   /* malformed records (see coll_init) or subtask out of range */
    int par;   /* rill_ctx_parallelism seen by the sink */
    int exact; /* records must be exactly 8 bytes, not at least 8 */
} coll;

/* Records of at least 8 bytes; shorter ones count in bad. */
static inline void coll_init(coll *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
}

/* Records of exactly 8 bytes; any other length counts in bad. */
static inline void coll_init_exact(coll *c)
{
    coll_init(c);
    c->exact = 1;
}

static inline void coll_free(coll *c)
{
    for (int i = 0; i < MAXSUB; i++)
        free(c->v[i]);
    pthread_mutex_destroy(&c->mu);
}

static inline int coll_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    coll *c = ud;
    int s = rill_ctx_subtask(ctx);
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    c->par = rill_ctx_parallelism(ctx);
    if ((c->exact ? len != 8 : len < 8) || s < 0 || s >= MAXSUB) {
        c->bad++;
    } else {
        if (c->n[s] == c->cap[s]) {
            size_t nc = c->cap[s] ? 2 * c->cap[s] : 256;
            uint64_t *nv = realloc(c->v[s], nc * sizeof *nv);
            if (!nv) {
                c->bad++;
                rc = -1;
                goto out;
            }
            c->v[s] = nv;
            c->cap[s] = nc;
        }
        memcpy(&c->v[s][c->n[s]++], rec, 8);
    }
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static inline size_t coll_total(const coll *c)
{
    size_t t = 0;
    for (int i = 0; i < MAXSUB; i++)
        t += c->n[i];
    return t;
}

/* ---- temporary directory fixture (.init = mk_tmp, .fini = rm_tmp) ------ */

__attribute__((unused)) static char tmpdir[64];

static inline void mk_tmp(void)
{
    strcpy(tmpdir, "/tmp/rill-" TEST_NAME "-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static inline int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void rm_tmp(void)
{
    if (tmpdir[0])
        nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

/* snprintf that fails the test instead of truncating. */
static inline void pathf(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && (size_t)n < cap, "text too long for %zu bytes", cap);
}

/* A pipe into p (as pipe(2) makes it), then a child process (stdio is
 * flushed first so that nothing buffered is written twice): fork's
 * result. */
static inline pid_t fork_piped(int p[2])
{
    cr_assert_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    return pid;
}

/* out = tmpdir/name */
static inline void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

/* An environment of the given parallelism with its state under tmpdir/state
 * and exactly-once checkpoints every 20 ms into tmpdir/ck; restore != 0
 * starts its jobs from the latest checkpoint there. */
/* How often each number 0..n-1 is in the visible files of tmpdir/sub (one
 * number per line, as the exactly-once file sink writes them); *pending
 * gets the count of hidden ".pending" files. */
static inline void count_output_lines(const char *sub, uint64_t n, unsigned char *seen,
                                      int *pending)
{
    char dir[256];
    tmp_path(dir, sizeof dir, sub);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    struct dirent *e;
    *pending = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            *pending += strstr(e->d_name, ".pending") != NULL;
            continue;
        }
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        unsigned long long v;
        while (fscanf(f, "%llu", &v) == 1) {
            cr_assert_lt(v, n);
            cr_assert_lt(seen[v], 255);
            seen[v]++;
        }
        fclose(f);
    }
    closedir(d);
}

/* The largest id of a complete checkpoint (one with _metadata) in dir; 0
 * when there is none. */
static inline long latest_checkpoint_in(const char *dir)
{
    DIR *d = opendir(dir);
    long best = 0, id;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char m[600];
        struct stat sb;
        snprintf(m, sizeof m, "%s/%s/_metadata", dir, e->d_name);
        if (sscanf(e->d_name, "chk-%ld", &id) == 1 && id > best && stat(m, &sb) == 0)
            best = id;
    }
    if (d)
        closedir(d);
    return best;
}
/* The same in tmpdir/ck, and whether there is one. */
static inline long latest_checkpoint(void)
{
    char dir[256];
    tmp_path(dir, sizeof dir, "ck");
    return latest_checkpoint_in(dir);
}
static inline int has_checkpoint(void)
{
    return latest_checkpoint() > 0;
}
/* The int64 in value state st of the current key (0 when there is none);
 * -1 when it cannot be read. */
static inline int64_t state_i64(rill_state *st)
{
    const void *v;
    size_t vl;
    int64_t n = 0;
    int rc = rill_state_get(st, &v, &vl);
    if (rc == RILL_OK && vl == sizeof n)
        memcpy(&n, v, sizeof n);
    else if (rc != RILL_ENOTFOUND)
        return -1;
    return n;
}
/* Keyed operators: add one to the int64 count in value state name of the
 * current key; the new count, or -1 when the state cannot be read or
 * written. */
static inline int64_t count_up(rill_ctx *ctx, const char *name)
{
    rill_state *st = rill_ctx_state(ctx, name);
    int64_t n = state_i64(st);
    if (n < 0)
        return -1;
    n++;
    return rill_state_put(st, &n, sizeof n) == RILL_OK ? n : -1;
}
/* ---- numbered records, counted per key, into exactly-once files ------- */
/* Record i of a generator: {i, i % keys}, keys the generator's user data
 * ((void *)(uintptr_t)keys). */
typedef struct numbered_item {
    uint64_t i;
    uint64_t key;
} numbered_item;
static inline int gen_numbered_item(rill_ctx *ctx, uint64_t i, void *ud)
{
    numbered_item r = {i, i % (uint64_t)(uintptr_t)ud};
    return rill_emit(ctx, &r, sizeof r);
}
/* Counts the key's records in value state "count"; passes the record on. */
static inline int count_and_pass_on(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return count_up(ctx, "count") < 0 ? -1 : rill_emit(ctx, rec, len);
}
static inline int fmt_item_index(const void *r, size_t len, char *buf, size_t cap, void *ud)
{
    (void)len, (void)ud;
    numbered_item x;
    memcpy(&x, r, sizeof x);
    return snprintf(buf, cap, "%llu", (unsigned long long)x.i);
}
/* In env: a generator of n numbered items over keys keys ("gen"), then map
 * (unless NULL), key_by key, a count per key in value state (uid "count")
 * and the exactly-once file sink into tmpdir/out, one number per line. */
static inline void counted_files_job(rill_env *env, uint64_t n, uint64_t keys, rill_process_fn map)
{
    char out[256];
    tmp_path(out, sizeof out, "out");
    rill_stream *s = rill_generator(env, "gen", n, gen_numbered_item, (void *)(uintptr_t)keys);
    if (map)
        s = rill_map(s, "map", map, NULL);
    s = rill_key_by_bytes(s, offsetof(numbered_item, key), sizeof(uint64_t));
    s = rill_process(s, "count", count_and_pass_on, NULL, NULL);
    s = rill_stream_add_state(s, "count", RILL_STATE_VALUE);
    s = rill_stream_set_uid(s, "count");
    rill_sink_file_exactly_once(s, "files", out, fmt_item_index, NULL);
}
static inline rill_env *checkpointed_env(int parallelism, int restore)
{
    rill_env *env = new_env(parallelism);
    char dir[256], sd[256];
    tmp_path(dir, sizeof dir, "ck");
    tmp_path(sd, sizeof sd, "state");
    cr_assert_eq(rill_env_set_state_dir(env, sd), RILL_OK);
    cr_assert_eq(rill_env_enable_checkpointing(env, 20, dir, RILL_EXACTLY_ONCE), RILL_OK);
    if (restore)
        cr_assert_eq(rill_env_set_restore(env, dir, 0), RILL_OK);
    return env;
}

#endif
