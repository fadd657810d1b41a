/* checkpoint_corrupt_test.c - restoring from a damaged checkpoint. A real
 * checkpoint is taken of a job with several kinds of state (a source
 * position, operator list state, keyed value state and event-time timers
 * of a process function, the state of a rolling aggregation); then each
 * data file in turn is cut at every section boundary and at other offsets,
 * or has bytes flipped in its header, each section's header, payload and
 * checksum, the section table and the trailer. Every restore must fail
 * with RILL_ECORRUPT and a message naming the damaged file, and never
 * crash; the original file is put back after each case. Also: a missing
 * data file, a corrupt _metadata file, a directory without a complete
 * checkpoint, and state of an operator the job does not have. */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <unistd.h>

#define TEST_NAME "ckcorrupt"
#include "common.h"
#include "snapshot/format.h"
#include "util/error.h"

#define N_RECORDS 60000ull
#define KEYS 16

typedef struct rec {
    uint64_t key;
    int64_t one;
    int64_t ts;
} rec;

/* ---- the job ------------------------------------------------------------ */

static atomic_int warm;         /* the map stops slowing down */
static atomic_llong mapped;     /* records through the map */
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t first_sum[KEYS]; /* first running sum the sink saw per key */

static int gen_rec(rill_ctx *ctx, uint64_t i, void *ud)
{
    (void)ud;
    rec r = {i % KEYS, 1, (int64_t)i};
    return rill_emit(ctx, &r, sizeof r);
}

static int64_t rec_ts(const void *r, size_t len, int64_t ts, void *ud)
{
    (void)len;
    (void)ts;
    (void)ud;
    rec v;
    memcpy(&v, r, sizeof v);
    return v.ts;
}

/* Slow until the test says otherwise; adds an element to its operator
 * list state every 5000 records. */
static int slow_map(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ud;
    long long n = atomic_fetch_add(&mapped, 1) + 1;
    if (!atomic_load(&warm) && n % 64 == 0)
        sleep_ms(1);
    if (n % 5000 == 0) {
        rill_state *st = rill_ctx_state(ctx, "marks");
        if (!st || rill_state_add(st, &n, sizeof n) != RILL_OK)
            return -1;
    }
    return rill_emit(ctx, r, len);
}

/* Counts the key's records in value state, registers a timer far ahead
 * (pending at every checkpoint), passes the record on. */
static int count_and_pass(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ud;
    int rc;
    if (count_up(ctx, "count") < 0)
        return -1;
    if ((rc = rill_timer_register(ctx, RILL_EVENT_TIME, rill_ctx_timestamp(ctx) + 1000000)))
        return rc;
    return rill_emit(ctx, r, len);
}

static int on_timer(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)ctx;
    (void)ts;
    (void)domain;
    (void)ud;
    return 0;
}

static void reset_sink(void)
{
    pthread_mutex_lock(&sink_mu);
    memset(first_sum, 0, sizeof first_sum);
    pthread_mutex_unlock(&sink_mu);
    atomic_store(&mapped, 0);
}

static int note_first(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx;
    (void)ud;
    rec v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, r, sizeof v);
    if (v.key >= KEYS)
        return -2;
    pthread_mutex_lock(&sink_mu);
    if (first_sum[v.key] == 0)
        first_sum[v.key] = v.one;
    pthread_mutex_unlock(&sink_mu);
    return 0;
}

/* generator -> timestamps -> map (operator list "marks") -> key_by ->
 * process "keyed" (value "count", event timers) -> key_by -> rolling sum
 * (uid sum_uid) -> sink. Checkpoints into ck when ck is not NULL. */
static rill_env *build(const char *ck, const char *sum_uid)
{
    rill_env *env = new_env(2);
    char sd[256];
    tmp_path(sd, sizeof sd, "state");
    cr_assert_eq(rill_env_set_state_dir(env, sd), RILL_OK);
    if (ck) {
        cr_assert_eq(rill_env_enable_checkpointing(env, 30, ck, RILL_EXACTLY_ONCE), RILL_OK);
        cr_assert_eq(rill_env_set_checkpoints_retained(env, 1000), RILL_OK);
    }
    rill_stream *s = rill_generator(env, "gen", N_RECORDS, gen_rec, NULL);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_assign_timestamps(s, "ts", rec_ts, 0, NULL);
    s = rill_map(s, "slow", slow_map, NULL);
    s = rill_stream_add_state(s, "marks", RILL_STATE_OPERATOR_LIST);
    s = rill_key_by_bytes(s, 0, 8);
    s = rill_process(s, "keyed", count_and_pass, on_timer, NULL);
    s = rill_stream_add_state(s, "count", RILL_STATE_VALUE);
    s = rill_key_by_bytes(s, 0, 8);
    s = rill_aggregate(s, "sum", RILL_AGG_SUM, offsetof(rec, one), RILL_FIELD_I64);
    s = rill_stream_set_uid(s, sum_uid);
    rill_stream_set_parallelism(rill_sink(s, "out", note_first, NULL), 1);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    return env;
}

/* The checkpoint under test: its directory and its data files. */
static char chk[300];
static rill__snap_meta *meta;

static void file_path(char *out, size_t cap, size_t i)
{
    snprintf(out, cap, "%s/%s", chk, meta->files[i].name);
}

/* Runs the job until a first checkpoint completed, lets it end, and
 * reads that checkpoint's _metadata (later ones may hold subtasks that
 * finished: they restore as finished). */
static void take_checkpoint(void)
{
    char ck[256];
    tmp_path(ck, sizeof ck, "ck");
    rill_env *env = build(ck, "sum");
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "checkpointed"), RILL_OK, "%s", rill_env_errmsg(env));
    while (rill_job_last_checkpoint(job) < 1 && rill_job_status(job) == RILL_JOB_RUNNING)
        sleep_ms(1);
    int64_t id = rill_job_last_checkpoint(job);
    atomic_store(&warm, 1);
    cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
    cr_assert_geq(id, 1);
    rill_job_free(job);
    rill_env_free(env);
    snprintf(chk, sizeof chk, "%s/chk-%lld", ck, (long long)id);
    char m[400], err[RILL__ERRMSG_MAX];
    snprintf(m, sizeof m, "%s/_metadata", chk);
    cr_assert_eq(rill__snap_meta_read(m, &meta, err), RILL_OK, "%s", err);
    /* One file per subtask: gen+ts, 2 map, 2 keyed, 2 sum, 1 sink. */
    cr_assert_eq(meta->n_files, 8);
}

static void setup(void)
{
    mk_tmp();
    take_checkpoint();
}

static void teardown(void)
{
    rill__snap_meta_free(meta);
    meta = NULL;
    rm_tmp();
}

/* A job restoring from chk (reused: an env may run again). */
static rill_env *restorer(const char *sum_uid, int allow)
{
    rill_env *env = build(NULL, sum_uid);
    cr_assert_eq(rill_env_set_restore(env, chk, allow), RILL_OK);
    return env;
}

static void expect_restore(rill_env *env, int want, const char *name, const char *why)
{
    int rc = rill_env_execute(env, "restore");
    cr_assert_eq(rc, want, "%s: restore gives %s (%s), want %s", why, rill_err_name(rc),
                 rill_env_errmsg(env), rill_err_name(want));
    if (name)
        cr_assert(strstr(rill_env_errmsg(env), name) != NULL,
                  "%s: message \"%s\" does not name %s", why, rill_env_errmsg(env), name);
}

/* Many cases in a row: every one runs, the misses are counted, and the
 * first few are told at the end. */
typedef struct misses {
    size_t cases, wrong_code, unnamed;
    char first[1500];
} misses;

static void note_miss(misses *m, const char *fmt, ...) RILL_PRINTF(2, 3);
static void note_miss(misses *m, const char *fmt, ...)
{
    size_t used = strlen(m->first);
    if (m->wrong_code + m->unnamed > 4 || used + 2 >= sizeof m->first)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->first + used, sizeof m->first - used, fmt, ap);
    va_end(ap);
    used = strlen(m->first);
    snprintf(m->first + used, sizeof m->first - used, "\n");
}

/* A restore that must fail with RILL_ECORRUPT naming path. */
static void corrupt_case(misses *m, rill_env *env, const char *path, const char *why)
{
    int rc = rill_env_execute(env, "restore");
    m->cases++;
    if (rc != RILL_ECORRUPT) {
        note_miss(m, "%s: %s (%s)", why, rill_err_name(rc), rill_env_errmsg(env));
        m->wrong_code++;
    } else if (!strstr(rill_env_errmsg(env), path)) {
        note_miss(m, "%s: message \"%s\" does not name the file", why, rill_env_errmsg(env));
        m->unnamed++;
    }
}

static void no_misses(const misses *m)
{
    cr_assert(m->wrong_code == 0 && m->unnamed == 0,
              "of %zu cases, %zu did not give RILL_ECORRUPT and %zu gave a message not "
              "naming the file; the first:\n%s",
              m->cases, m->wrong_code, m->unnamed, m->first);
}

/* ---- files -------------------------------------------------------------- */

static unsigned char *slurp(const char *path, size_t *len)
{
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "stat %s", path);
    *len = (size_t)sb.st_size;
    unsigned char *b = malloc(*len + 1);
    cr_assert_not_null(b);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(read(fd, b, *len), (ssize_t)*len);
    close(fd);
    return b;
}

static void spit(const char *path, const void *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "create %s", path);
    cr_assert_eq(write(fd, b, len), (ssize_t)len);
    close(fd);
}

/* Where the parts of a snapshot file lie (rill-snapshot(5)): section i
 * starts at sec[i], its payload at pay[i], its checksum at sum[i]; then
 * the table and the trailer. Found with the reader, checked against the
 * file's size. */
#define MAX_SECTIONS 256

typedef struct layout {
    size_t n;
    size_t sec[MAX_SECTIONS], pay[MAX_SECTIONS], sum[MAX_SECTIONS];
    size_t table, trailer, size;
} layout;

static void read_layout(const char *path, layout *l)
{
    char err[RILL__ERRMSG_MAX];
    rill__snap_reader *r;
    cr_assert_eq(rill__snap_reader_open(&r, path, err), RILL_OK, "%s", err);
    memset(l, 0, sizeof *l);
    size_t off = 24;
    rill__snap_section s;
    int rc;
    while ((rc = rill__snap_reader_next(r, &s)) == 1) {
        cr_assert_lt(l->n, MAX_SECTIONS);
        l->sec[l->n] = off;
        l->pay[l->n] = off + 24 + s.uid_len + s.state_len;
        l->sum[l->n] = l->pay[l->n] + (size_t)s.payload_len;
        off = l->sum[l->n] + 8;
        l->n++;
    }
    cr_assert_eq(rc, 0, "%s", rill__snap_reader_errmsg(r));
    cr_assert_eq(rill__snap_reader_count(r), l->n);
    l->size = (size_t)rill__snap_reader_fileinfo(r).size;
    rill__snap_reader_close(r);
    l->table = off;
    l->trailer = off + 32 * l->n;
    cr_assert_eq(l->trailer + 32, l->size, "%s: the layout does not add up", path);
}

/* ---- an intact checkpoint restores ----------------------------------- */

TestSuite(corrupt, .init = setup, .fini = teardown, .timeout = 240);

Test(corrupt, the_intact_checkpoint_restores)
{
    rill_env *env = restorer("sum", 0);
    reset_sink();
    expect_restore(env, RILL_OK, NULL, "intact");
    /* The source resumed from its position, and the sums went on from the
     * restored ones (the first sum seen per key is above 1). */
    cr_assert_lt(atomic_load(&mapped), (long long)N_RECORDS);
    for (int k = 0; k < KEYS; k++)
        cr_assert_gt(first_sum[k], 1, "key %d: the sum started again from %lld", k,
                     (long long)first_sum[k]);
    rill_env_free(env);
}

/* ---- truncation --------------------------------------------------------- */

/* Every cut of one file: each section's start, header end, payload start
 * and checksum start, the table and each of its entries, each field of
 * the trailer, and a few other offsets. */
static size_t cut_points(const layout *l, size_t *at)
{
    size_t n = 0;
    at[n++] = 0;
    at[n++] = 1;
    at[n++] = 8;
    at[n++] = 23;
    for (size_t i = 0; i < l->n; i++) {
        at[n++] = l->sec[i];
        at[n++] = l->sec[i] + 24;
        at[n++] = l->pay[i];
        at[n++] = l->sum[i];
        at[n++] = l->sum[i] + 4;
    }
    for (size_t i = 0; i <= l->n; i++)
        at[n++] = l->table + 32 * i; /* the last one is the trailer */
    at[n++] = l->trailer + 8;
    at[n++] = l->trailer + 16;
    at[n++] = l->trailer + 24;
    at[n++] = l->size - 1;
    return n;
}

Test(corrupt, every_data_file_cut_at_every_section_boundary)
{
    rill_env *env = restorer("sum", 0);
    misses m;
    memset(&m, 0, sizeof m);
    for (size_t f = 0; f < meta->n_files; f++) {
        char path[600];
        file_path(path, sizeof path, f);
        layout l;
        read_layout(path, &l);
        size_t len;
        unsigned char *orig = slurp(path, &len);
        static size_t at[6 * MAX_SECTIONS + 16];
        size_t n = cut_points(&l, at);
        for (size_t i = 0; i < n; i++) {
            if (at[i] >= len)
                continue;
            spit(path, orig, at[i]);
            char why[700];
            snprintf(why, sizeof why, "%s cut at %zu of %zu", path, at[i], len);
            corrupt_case(&m, env, path, why);
        }
        spit(path, orig, len);
        free(orig);
    }
    cr_assert_geq(m.cases, 8 * 10);
    /* Every file back as it was: the checkpoint restores again. */
    expect_restore(env, RILL_OK, NULL, "after the cuts");
    rill_env_free(env);
    no_misses(&m);
}

/* ---- flipped bytes ------------------------------------------------------ */

static size_t flip_points(const layout *l, size_t *at)
{
    size_t n = 0;
    /* header: magic, version, flags, checksum */
    at[n++] = 0;
    at[n++] = 8;
    at[n++] = 12;
    at[n++] = 16;
    for (size_t i = 0; i < l->n; i++) {
        size_t s = l->sec[i];
        at[n++] = s;      /* kind */
        at[n++] = s + 4;  /* reserved */
        at[n++] = s + 8;  /* kg_first */
        at[n++] = s + 10; /* kg_last */
        at[n++] = s + 12; /* uid_len */
        at[n++] = s + 14; /* state_len */
        at[n++] = s + 16; /* payload_len */
        if (l->pay[i] > s + 24)
            at[n++] = s + 24; /* the uid */
        if (l->sum[i] > l->pay[i]) {
            at[n++] = l->pay[i];                                /* payload: first, */
            at[n++] = l->pay[i] + (l->sum[i] - l->pay[i]) / 2; /* middle */
            at[n++] = l->sum[i] - 1;                            /* and last byte */
        }
        at[n++] = l->sum[i];     /* checksum */
        at[n++] = l->sum[i] + 7;
    }
    for (size_t i = 0; i < l->n; i++)
        for (size_t k = 0; k < 4; k++)
            at[n++] = l->table + 32 * i + 8 * k; /* offset, size, header hash, checksum */
    for (size_t k = 0; k < 4; k++)
        at[n++] = l->trailer + 8 * k; /* table offset, count, digest, magic */
    at[n++] = l->size - 1;
    return n;
}

Test(corrupt, every_data_file_with_flipped_bytes_in_every_part)
{
    rill_env *env = restorer("sum", 0);
    misses m;
    memset(&m, 0, sizeof m);
    for (size_t f = 0; f < meta->n_files; f++) {
        char path[600];
        file_path(path, sizeof path, f);
        layout l;
        read_layout(path, &l);
        size_t len;
        unsigned char *orig = slurp(path, &len);
        unsigned char *bad = malloc(len);
        cr_assert_not_null(bad);
        static size_t at[32 * MAX_SECTIONS + 16];
        size_t n = flip_points(&l, at);
        for (size_t i = 0; i < n; i++) {
            cr_assert_lt(at[i], len);
            memcpy(bad, orig, len);
            bad[at[i]] ^= 0x5a;
            spit(path, bad, len);
            char why[700];
            snprintf(why, sizeof why, "%s with byte %zu of %zu flipped", path, at[i], len);
            corrupt_case(&m, env, path, why);
        }
        spit(path, orig, len);
        free(bad);
        free(orig);
    }
    cr_assert_geq(m.cases, 8 * 20);
    expect_restore(env, RILL_OK, NULL, "after the flips");
    rill_env_free(env);
    no_misses(&m);
}

/* The sections holding state (keyed, timers, operator list, source
 * position) are all there: the cases above reach every kind. */
Test(corrupt, the_checkpoint_holds_every_kind_of_section)
{
    int kinds[8] = {0};
    for (size_t f = 0; f < meta->n_files; f++) {
        char path[600], err[RILL__ERRMSG_MAX];
        file_path(path, sizeof path, f);
        rill__snap_reader *r;
        cr_assert_eq(rill__snap_reader_open(&r, path, err), RILL_OK, "%s", err);
        rill__snap_section s;
        while (rill__snap_reader_next(r, &s) == 1)
            if (s.kind < 8)
                kinds[s.kind]++;
        rill__snap_reader_close(r);
    }
    cr_assert_gt(kinds[RILL__SNAP_KEYED], 0);
    cr_assert_gt(kinds[RILL__SNAP_TIMERS], 0);
    cr_assert_gt(kinds[RILL__SNAP_OPLIST], 0);
    cr_assert_gt(kinds[RILL__SNAP_SOURCE], 0);
}

/* ---- a missing data file, a corrupt _metadata ---------------------------- */

Test(corrupt, a_missing_data_file_is_ecorrupt_naming_it)
{
    rill_env *env = restorer("sum", 0);
    for (size_t f = 0; f < meta->n_files; f++) {
        char path[600], moved[700];
        file_path(path, sizeof path, f);
        snprintf(moved, sizeof moved, "%s.away", path);
        cr_assert_eq(rename(path, moved), 0);
        expect_restore(env, RILL_ECORRUPT, path, "a missing data file");
        cr_assert_eq(rename(moved, path), 0);
    }
    expect_restore(env, RILL_OK, NULL, "all files back");
    rill_env_free(env);
}

Test(corrupt, a_corrupt_metadata_file_is_ecorrupt)
{
    rill_env *env = restorer("sum", 0);
    char path[400];
    snprintf(path, sizeof path, "%s/_metadata", chk);
    size_t len;
    unsigned char *orig = slurp(path, &len);
    unsigned char *bad = malloc(len);
    cr_assert_not_null(bad);
    /* Bytes flipped all over, then cuts. */
    for (size_t at = 0; at < len; at += len / 40 ? len / 40 : 1) {
        memcpy(bad, orig, len);
        bad[at] ^= 0x01;
        spit(path, bad, len);
        char why[128];
        snprintf(why, sizeof why, "_metadata byte %zu of %zu flipped", at, len);
        expect_restore(env, RILL_ECORRUPT, "_metadata", why);
    }
    size_t cuts[] = {0, 1, 23, 24, len / 2, len - 32, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(path, orig, cuts[i]);
        char why[128];
        snprintf(why, sizeof why, "_metadata cut at %zu of %zu", cuts[i], len);
        expect_restore(env, RILL_ECORRUPT, "_metadata", why);
    }
    /* A data file in place of _metadata. */
    char data[600];
    file_path(data, sizeof data, 0);
    size_t dlen;
    unsigned char *d = slurp(data, &dlen);
    spit(path, d, dlen);
    expect_restore(env, RILL_ECORRUPT, "_metadata", "a data file as _metadata");
    free(d);
    spit(path, orig, len);
    free(bad);
    free(orig);
    expect_restore(env, RILL_OK, NULL, "_metadata back");
    rill_env_free(env);
}

/* ---- nothing to restore ------------------------------------------------- */

Test(corrupt, a_directory_without_a_complete_checkpoint_is_enotfound)
{
    /* dir/chk-9 holds a data file but no _metadata: an incomplete
     * checkpoint. */
    char dir[256], sub[300], from[600], to[700];
    tmp_path(dir, sizeof dir, "incomplete");
    cr_assert_eq(mkdir(dir, 0755), 0);
    snprintf(sub, sizeof sub, "%s/chk-9", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    file_path(from, sizeof from, 0);
    snprintf(to, sizeof to, "%s/%s", sub, meta->files[0].name);
    size_t len;
    unsigned char *b = slurp(from, &len);
    spit(to, b, len);
    free(b);

    rill_env *env = build(NULL, "sum");
    cr_assert_eq(rill_env_set_restore(env, dir, 0), RILL_OK);
    expect_restore(env, RILL_ENOTFOUND, dir, "a directory of incomplete checkpoints");
    cr_assert_eq(rill_env_set_restore(env, sub, 0), RILL_OK);
    expect_restore(env, RILL_ENOTFOUND, "chk-9", "an incomplete checkpoint");
    char empty[256];
    tmp_path(empty, sizeof empty, "empty");
    cr_assert_eq(mkdir(empty, 0755), 0);
    cr_assert_eq(rill_env_set_restore(env, empty, 0), RILL_OK);
    expect_restore(env, RILL_ENOTFOUND, empty, "an empty directory");
    rill_env_free(env);
}

/* ---- state of an operator the job does not have ------------------------- */

Test(corrupt, state_of_an_unknown_operator_uid_is_einval)
{
    /* The rolling sum has another uid: the snapshot's "sum" state has no
     * operator. */
    rill_env *env = restorer("sum2", 0);
    expect_restore(env, RILL_EINVAL, "'sum'", "an operator uid the job does not have");
    rill_env_free(env);
}

Test(corrupt, state_of_an_unknown_operator_uid_is_skipped_when_allowed)
{
    rill_env *env = restorer("sum2", 1);
    reset_sink();
    expect_restore(env, RILL_OK, NULL, "allow non-restored state");
    /* The other operators were restored (the source resumed), the new one
     * started empty: every key's first sum is 1. */
    cr_assert_lt(atomic_load(&mapped), (long long)N_RECORDS);
    for (int k = 0; k < KEYS; k++)
        cr_assert_eq(first_sum[k], 1, "key %d: the new operator started at %lld", k,
                     (long long)first_sum[k]);
    rill_env_free(env);
}
