/*
 * keyed_common.h - shared pieces of the keyed benchmarks (header only;
 * include it first, before any system header).
 *
 * Every keyed benchmark moves 16-byte records (an 8-byte key, an 8-byte
 * value) and checks rill against a plain C baseline on one thread by what
 * a consumer has seen: how many (key, value) pairs and an
 * order-independent checksum of them (a tally). The user functions are the
 * same on both sides, never inlined, called through volatile function
 * pointers: consume (here) and make_record, which each benchmark defines:
 *
 *   __attribute__((noinline)) static void make_record(uint64_t i, keyed_rec *out)
 *
 * A benchmark fills a keyed_bench (its baseline and how to build its job)
 * and hands it to keyed_main, which parses [RECORDS], runs both sides
 * (rill's state and the baseline's files in a fresh directory under /tmp,
 * removed at the end), checks that they saw the same and prints
 *
 *   bench NAME rate=<records/s> baseline=<records/s> ratio=<rate/baseline>
 */
#ifndef RILL_BENCH_KEYED_COMMON_H
#define RILL_BENCH_KEYED_COMMON_H

#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#define BENCH_DRIVER_ONLY /* the stateless pipeline of common.h is not used */

#include "common.h"

#include <errno.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/stat.h>

/* Pieces only some of the keyed benchmarks use. */
#define KEYED_MAYBE_UNUSED __attribute__((unused))

typedef struct keyed_rec {
    uint64_t key;
    union {
        int64_t value; /* keyed_count*: what the key's count grows by */
        int64_t ts;    /* keyed_timers: the event time */
    };
} keyed_rec;

/* What a consumer has seen: order-independent. */
typedef struct tally {
    uint64_t n;
    uint64_t sum;
} tally;

/* ------------------------------------------------------------------------
 * The user functions, the same on both sides
 * ------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* Defined by each benchmark: the record of index i. */
static void make_record(uint64_t i, keyed_rec *out);

__attribute__((noinline)) static void consume(uint64_t key, int64_t value, tally *t)
{
    t->n++;
    t->sum += mix64(key ^ ((uint64_t)value * 0xff51afd7ed558ccdu));
}

static void (*volatile make_record_fp)(uint64_t, keyed_rec *) = make_record;
static void (*volatile consume_fp)(uint64_t, int64_t, tally *) = consume;

/* ------------------------------------------------------------------------
 * rill callbacks calling the same functions
 * ------------------------------------------------------------------------ */

/* The tallies of the subtasks of the last run, summed as they close. */
static _Atomic uint64_t job_n, job_sum;

static KEYED_MAYBE_UNUSED int keyed_gen(rill_ctx *ctx, uint64_t index, void *user_data)
{
    keyed_rec r;

    (void)user_data;
    make_record_fp(index, &r);
    return rill_emit(ctx, &r, sizeof r);
}

/* Lifecycle of the consuming operator: a tally per subtask. */
static int tally_open(rill_ctx *ctx, void *user_data)
{
    tally *t = calloc(1, sizeof *t);

    (void)user_data;
    if (t == NULL)
        return -1;
    rill_ctx_set_local(ctx, t);
    return 0;
}

static int tally_close(rill_ctx *ctx, void *user_data)
{
    tally *t = rill_ctx_local(ctx);

    (void)user_data;
    if (t != NULL) {
        atomic_fetch_add(&job_n, t->n);
        atomic_fetch_add(&job_sum, t->sum);
        free(t);
        rill_ctx_set_local(ctx, NULL);
    }
    return 0;
}

/* A sink consuming every record, with tally_open/tally_close. */
static KEYED_MAYBE_UNUSED int keyed_sink(rill_ctx *ctx, const void *rec, size_t len,
                                         void *user_data)
{
    keyed_rec r;

    (void)len;
    (void)user_data;
    memcpy(&r, rec, sizeof r);
    consume_fp(r.key, r.value, rill_ctx_local(ctx));
    return 0;
}

/*
 * The keyed rolling count: generator -> key_by(key) -> aggregate(SUM of
 * the value) -> sink at the env's default parallelism; the sink sees, per
 * record, the key and its running count.
 */
static KEYED_MAYBE_UNUSED void keyed_count_job(rill_env *env, uint64_t n)
{
    rill_stream *s;

    s = rill_generator(env, "generator", n, keyed_gen, NULL);
    s = rill_key_by_bytes(s, offsetof(keyed_rec, key), sizeof(uint64_t));
    s = rill_aggregate(s, "count", RILL_AGG_SUM, offsetof(keyed_rec, value), RILL_FIELD_I64);
    s = rill_sink(s, "sink", keyed_sink, NULL);
    rill_stream_set_lifecycle(s, tally_open, tally_close);
}

/* ------------------------------------------------------------------------
 * Driver
 * ------------------------------------------------------------------------ */

typedef struct keyed_bench {
    const char *name;
    uint64_t default_n; /* records without the argument */
    int rounds;         /* each side runs this many times; the best counts */
    const char *verb;   /* in messages: what the consumer did ("consumed") */
    const char *unit;   /* ... to how many of what ("records") */
    /*
     * The same work as the job on n records, into *t. dir is an empty
     * directory for its files (removed after each run). Returns 0, or
     * says why on stderr and returns -1.
     */
    int (*baseline)(const char *dir, uint64_t n, tally *t);
    /* Builds the job on env, whose state dir is already set. */
    void (*build)(rill_env *env, uint64_t n);
} keyed_bench;

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* The rounds on n records; base_dir is where the baseline keeps its files. */
static int keyed_run(const keyed_bench *b, rill_env *env, const char *base_dir, uint64_t n)
{
    double best_base = 0, best_rill = 0;
    int check = bench_runs("baseline") && bench_runs("rill");

    for (int round = 0; round < bench_rounds(b->rounds); round++) {
        tally want = {n, 0};
        double t0, t1;
        int rc;

        if (bench_runs("baseline")) {
            want.n = 0;
            if (mkdir(base_dir, 0755) != 0) {
                fprintf(stderr, "bench %s: mkdir: %s\n", b->name, strerror(errno));
                return 1;
            }
            t0 = bench_now();
            rc = b->baseline(base_dir, n, &want);
            t1 = bench_now();
            remove_tree(base_dir);
            if (rc != 0)
                return 1;
            if (want.n != n) {
                fprintf(stderr, "bench %s: baseline %s %" PRIu64 " of %" PRIu64 " %s\n",
                        b->name, b->verb, want.n, n, b->unit);
                return 1;
            }
            if (round == 0 || t1 - t0 < best_base)
                best_base = t1 - t0;
        }
        if (!bench_runs("rill"))
            continue;
        atomic_store(&job_n, 0);
        atomic_store(&job_sum, 0);
        t0 = bench_now();
        rc = rill_env_execute(env, b->name);
        t1 = bench_now();
        if (rc != RILL_OK) {
            fprintf(stderr, "bench %s: job failed: %s\n", b->name, rill_env_errmsg(env));
            return 1;
        }
        if (check && (atomic_load(&job_n) != want.n || atomic_load(&job_sum) != want.sum)) {
            fprintf(stderr,
                    "bench %s: mismatch: rill %s %" PRIu64 " %s (checksum %016" PRIx64
                    "), baseline %" PRIu64 " (checksum %016" PRIx64 ")\n",
                    b->name, b->verb, (uint64_t)atomic_load(&job_n), b->unit,
                    (uint64_t)atomic_load(&job_sum), want.n, want.sum);
            return 1;
        }
        if (round == 0 || t1 - t0 < best_rill)
            best_rill = t1 - t0;
    }
    bench_report(b->name, n, best_rill, best_base);
    return 0;
}

/* The whole of a keyed benchmark's main. */
static int keyed_main(const keyed_bench *b, int argc, char **argv)
{
    char dir[256], state_dir[300], base_dir[300];
    uint64_t n;
    rill_env *env;
    int status;

    if (argc > 2)
        bench_usage(argv[0]);
    n = bench_parse_count(argc, argv, b->default_n);
    snprintf(dir, sizeof dir, "/tmp/rill-bench-%s.XXXXXX", b->name);
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "bench %s: mkdtemp: %s\n", b->name, strerror(errno));
        return 1;
    }
    snprintf(state_dir, sizeof state_dir, "%s/state", dir);
    snprintf(base_dir, sizeof base_dir, "%s/baseline", dir);
    env = rill_env_new();
    if (env == NULL) {
        fprintf(stderr, "bench %s: out of memory\n", b->name);
        remove_tree(dir);
        return 1;
    }
    rill_env_set_state_dir(env, state_dir);
    b->build(env, n);
    if (rill_env_validate(env) != RILL_OK) {
        fprintf(stderr, "bench %s: %s\n", b->name, rill_env_errmsg(env));
        status = 1;
    } else {
        status = keyed_run(b, env, base_dir, n);
    }
    rill_env_free(env);
    remove_tree(dir);
    return status;
}

#endif /* RILL_BENCH_KEYED_COMMON_H */
