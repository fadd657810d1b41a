/*
 * keyed_count_checkpointed.c - what checkpoints cost: the keyed_count job
 * with an exactly-once checkpoint every second, against the same job
 * without checkpoints; then the duration of one checkpoint of a large
 * keyed state and of its restore.
 *
 *   keyed_count_checkpointed [RECORDS]   (default 60 000 000)
 *
 * environment: RILL_BENCH_STATE_MB   keyed state of the second part, in
 *                                     MiB (default 256; 1024 for 1 GiB)
 *
 * Part one: the job of keyed_count (bench/keyed_common.h: generator ->
 * key_by(key) -> aggregate(SUM of the value) -> sink at the env's default
 * parallelism, 1 000 000 distinct keys) checkpointing every second into a
 * fresh directory under /tmp; its baseline is that job without
 * checkpointing. The default record count makes a run last several
 * seconds, so each run takes a few checkpoints of the whole state. Best
 * of 3 runs of each; both must see the same results (the sink's
 * order-independent checksum). Prints
 *
 *   bench keyed_count_checkpointed rate=<records/s> baseline=<records/s> ratio=<rate/baseline>
 *
 * Part two: a source emits one record per key in a single call (no
 * barrier can pass it meanwhile), and a keyed process function puts a
 * value of 1016 bytes for each 8-byte key (1 KiB per key) into value
 * state. The first checkpoint is asked for 100 ms after the start, so the
 * source takes it right after its last record; its duration runs from
 * then (or from the coordinator's request, if later) until the
 * checkpoint is complete (rill_job_last_checkpoint). The restore is a new
 * job of the same graph started from that checkpoint, whose source then
 * emits only 64 probe records that check their key's value: its duration
 * is that of rill_env_execute. Prints
 *
 *   bench checkpoint_1gb state_bytes=<n> checkpoint_ms=<n> restore_ms=<n> snapshot_bytes=<n>
 *
 * state_bytes counts keys and values; snapshot_bytes is the size of the
 * checkpoint's files. Everything under /tmp is removed at the end.
 */
#include "keyed_common.h"

#include <dirent.h>

#define NAME "keyed_count_checkpointed"
#define NUM_KEYS 1000000ull
#define INTERVAL_MS 1000

/* mix64 is a bijection: NUM_KEYS distinct keys, visited in turn. */
__attribute__((noinline)) static void make_record(uint64_t i, keyed_rec *out)
{
    out->key = mix64(i % NUM_KEYS);
    out->value = 1;
}

/* ------------------------------------------------------------------------
 * Part one: keyed_count with and without checkpoints
 * ------------------------------------------------------------------------ */

static char ck_dir[256]; /* checkpoints of part one */

/* The job without checkpoints, on a state dir of its own. */
static int plain_run(const char *dir, uint64_t n, tally *t)
{
    char sd[300];
    rill_env *env = rill_env_new();
    int rc;

    if (env == NULL) {
        fprintf(stderr, "bench " NAME ": out of memory\n");
        return -1;
    }
    snprintf(sd, sizeof sd, "%s/state", dir);
    rill_env_set_state_dir(env, sd);
    keyed_count_job(env, n);
    atomic_store(&job_n, 0);
    atomic_store(&job_sum, 0);
    rc = rill_env_execute(env, NAME " baseline");
    if (rc != RILL_OK)
        fprintf(stderr, "bench " NAME ": baseline job failed: %s\n", rill_env_errmsg(env));
    rill_env_free(env);
    if (rc != RILL_OK)
        return -1;
    t->n = atomic_load(&job_n);
    t->sum = atomic_load(&job_sum);
    return 0;
}

static void checkpointed_job(rill_env *env, uint64_t n)
{
    keyed_count_job(env, n);
    rill_env_enable_checkpointing(env, INTERVAL_MS, ck_dir, RILL_EXACTLY_ONCE);
}

/* The largest n of the chk-<n> directories with a _metadata in dir. */
static long last_complete(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    long best = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char m[600];
        struct stat sb;
        long id;

        if (sscanf(e->d_name, "chk-%ld", &id) != 1 || id <= best)
            continue;
        snprintf(m, sizeof m, "%s/%s/_metadata", dir, e->d_name);
        if (stat(m, &sb) == 0)
            best = id;
    }
    closedir(d);
    return best;
}

/* ------------------------------------------------------------------------
 * Part two: one checkpoint of a large keyed state, and its restore
 * ------------------------------------------------------------------------ */

#define VALUE_BYTES 1016 /* + an 8-byte key: 1 KiB per key */
#define PROBES 64

typedef struct big {
    uint64_t keys;
    int restoring;            /* the source emits the probes only */
    atomic_int stop;          /* the source ends */
    atomic_int filled;        /* the source emitted every key */
    double filled_at;         /* bench_now() then */
    atomic_ullong probes_ok;  /* probes that found their value */
    atomic_ullong probes_bad; /* probes that did not */
} big;

static void value_of(uint64_t key, unsigned char *out)
{
    for (size_t i = 0; i < VALUE_BYTES; i += 8) {
        uint64_t w = mix64(key * 131 + i);
        memcpy(out + i, &w, VALUE_BYTES - i < 8 ? VALUE_BYTES - i : 8);
    }
}

static int big_source(rill_ctx *ctx, void *user_data)
{
    big *b = user_data;

    if (b->restoring) {
        for (uint64_t i = 0; i < PROBES; i++) {
            uint64_t key = i * (b->keys / PROBES);
            int rc = rill_emit(ctx, &key, sizeof key);

            if (rc != RILL_OK)
                return rc;
        }
        return RILL_SOURCE_END;
    }
    if (!atomic_load(&b->filled)) {
        for (uint64_t key = 0; key < b->keys; key++) {
            int rc = rill_emit(ctx, &key, sizeof key);

            if (rc != RILL_OK)
                return rc;
        }
        b->filled_at = bench_now();
        atomic_store(&b->filled, 1);
        return RILL_SOURCE_IDLE;
    }
    return atomic_load(&b->stop) ? RILL_SOURCE_END : RILL_SOURCE_IDLE;
}

/* Filling: put the key's value. Restoring: check it. */
static int big_put(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    big *b = user_data;
    rill_state *st = rill_ctx_state(ctx, "value");
    unsigned char v[VALUE_BYTES];
    uint64_t key;

    if (st == NULL || len != sizeof key)
        return -1;
    memcpy(&key, rec, sizeof key);
    value_of(key, v);
    if (b->restoring) {
        const void *got;
        size_t got_len;
        int ok = rill_state_get(st, &got, &got_len) == RILL_OK && got_len == sizeof v &&
                 memcmp(got, v, sizeof v) == 0;

        atomic_fetch_add(ok ? &b->probes_ok : &b->probes_bad, 1);
        return 0;
    }
    return rill_state_put(st, v, sizeof v);
}

static int big_sink(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)user_data;
    return 0;
}

static rill_env *big_env(big *b, const char *dir)
{
    char sd[300];
    rill_env *env = rill_env_new();
    rill_stream *s;

    if (env == NULL)
        return NULL;
    snprintf(sd, sizeof sd, "%s/state", dir);
    rill_env_set_state_dir(env, sd);
    s = rill_source(env, "keys", big_source, b);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_key_by_bytes(s, 0, sizeof(uint64_t));
    s = rill_process(s, "values", big_put, NULL, b);
    s = rill_stream_add_state(s, "value", RILL_STATE_VALUE);
    rill_sink(s, "sink", big_sink, NULL);
    return env;
}

static uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t total = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char p[600];
        struct stat sb;

        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode))
            total += (uint64_t)sb.st_size;
    }
    closedir(d);
    return total;
}

static int big_state(const char *dir, uint64_t mib)
{
    char ck[300], chk1[320];
    big b;
    rill_env *env;
    rill_job *job;
    double asked = 0, t0, t1, r0, r1;
    uint64_t snap_bytes;
    int rc;

    memset(&b, 0, sizeof b);
    b.keys = mib * 1024;
    snprintf(ck, sizeof ck, "%s/ck", dir);
    snprintf(chk1, sizeof chk1, "%s/chk-1", ck);

    /* The checkpoint. */
    env = big_env(&b, dir);
    if (env == NULL) {
        fprintf(stderr, "bench " NAME ": out of memory\n");
        return 1;
    }
    rill_env_enable_checkpointing(env, 100, ck, RILL_EXACTLY_ONCE);
    rill_env_set_checkpoint_min_pause(env, 3600000); /* no second one */
    if ((rc = rill_job_start(&job, env, NAME " state")) != RILL_OK) {
        fprintf(stderr, "bench " NAME ": %s\n", rill_env_errmsg(env));
        rill_env_free(env);
        return 1;
    }
    while (rill_job_last_checkpoint(job) < 1 && rill_job_status(job) == RILL_JOB_RUNNING) {
        struct stat sb;
        struct timespec ms = {0, 1000000};

        if (asked == 0 && stat(chk1, &sb) == 0)
            asked = bench_now();
        nanosleep(&ms, NULL);
    }
    t1 = bench_now();
    atomic_store(&b.stop, 1);
    rc = rill_job_wait(job);
    if (rc != RILL_OK || rill_job_last_checkpoint(job) < 1 || !atomic_load(&b.filled)) {
        fprintf(stderr, "bench " NAME ": the state job failed: %s\n", rill_job_errmsg(job));
        rill_job_free(job);
        rill_env_free(env);
        return 1;
    }
    rill_job_free(job);
    rill_env_free(env);
    t0 = b.filled_at > asked ? b.filled_at : asked; /* filled_at is set before filled */
    snap_bytes = dir_bytes(chk1);

    /* The restore. */
    b.restoring = 1;
    env = big_env(&b, dir);
    if (env == NULL) {
        fprintf(stderr, "bench " NAME ": out of memory\n");
        return 1;
    }
    rill_env_set_restore(env, ck, 0);
    r0 = bench_now();
    rc = rill_env_execute(env, NAME " restore");
    r1 = bench_now();
    if (rc != RILL_OK) {
        fprintf(stderr, "bench " NAME ": the restore failed: %s\n", rill_env_errmsg(env));
        rill_env_free(env);
        return 1;
    }
    rill_env_free(env);
    if (atomic_load(&b.probes_ok) != PROBES) {
        fprintf(stderr, "bench " NAME ": %llu of %d probes found their value after the restore\n",
                (unsigned long long)atomic_load(&b.probes_ok), PROBES);
        return 1;
    }
    printf("bench checkpoint_1gb state_bytes=%" PRIu64 " checkpoint_ms=%.0f restore_ms=%.0f "
           "snapshot_bytes=%" PRIu64 "\n",
           b.keys * (VALUE_BYTES + sizeof(uint64_t)), (t1 - t0) * 1e3, (r1 - r0) * 1e3,
           snap_bytes);
    return 0;
}

/* ------------------------------------------------------------------------ */

static int make_dir(char *dir, size_t cap, const char *what)
{
    snprintf(dir, cap, "/tmp/rill-bench-" NAME "-%s.XXXXXX", what);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench " NAME ": mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const keyed_bench b = {.name = NAME, .default_n = 60000000ull, .rounds = BENCH_ROUNDS,
                                  .verb = "consumed", .unit = "records", .baseline = plain_run,
                                  .build = checkpointed_job};
    const char *mb = getenv("RILL_BENCH_STATE_MB");
    char big_dir[256];
    uint64_t mib = 256;
    long taken;
    int status;

    if (mb != NULL) {
        char *end;
        unsigned long long v = strtoull(mb, &end, 10);

        if (mb[0] == '\0' || *end != '\0' || v == 0 || v > (1ull << 20)) {
            fprintf(stderr, "bench " NAME ": RILL_BENCH_STATE_MB: a size in MiB, not '%s'\n",
                    mb);
            return 2;
        }
        mib = v;
    }
    if (make_dir(ck_dir, sizeof ck_dir, "ck") != 0)
        return 1;
    status = keyed_main(&b, argc, argv);
    taken = last_complete(ck_dir);
    remove_tree(ck_dir);
    if (status != 0)
        return status;
    if (taken < 1) {
        fprintf(stderr, "bench " NAME ": the checkpointed runs took no checkpoint\n");
        return 1;
    }
    if (make_dir(big_dir, sizeof big_dir, "state") != 0)
        return 1;
    status = big_state(big_dir, mib);
    remove_tree(big_dir);
    return status;
}
