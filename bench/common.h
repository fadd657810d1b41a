/*
 * common.h - shared pieces of the benchmarks (header only).
 *
 * First the driver pieces every benchmark uses: the clock, the RECORDS
 * argument and the result line. Then the stateless pipeline, left out
 * when BENCH_DRIVER_ONLY is defined before the include (the keyed
 * benchmarks, see keyed_common.h).
 *
 * The user work of a stateless pipeline is four plain functions:
 * make_record, transform, keep and consume. They are never inlined and are
 * called through volatile function pointers, both by the baseline (a plain
 * C loop on one thread) and by the rill callbacks, so the two sides do the
 * same work and the ratio measures what rill adds on top of it.
 */
#ifndef RILL_BENCH_COMMON_H
#define RILL_BENCH_COMMON_H

#include <rill.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_ROUNDS 3

/* ------------------------------------------------------------------------
 * Driver pieces
 * ------------------------------------------------------------------------ */

static double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static _Noreturn void bench_usage(const char *prog)
{
    fprintf(stderr, "usage: %s [RECORDS]\n", prog);
    exit(2);
}

/* The record count in argv[1] (a positive decimal), or dflt without it. */
static uint64_t bench_parse_count(int argc, char **argv, uint64_t dflt)
{
    char *end;
    unsigned long long n;

    if (argc < 2)
        return dflt;
    n = strtoull(argv[1], &end, 10);
    if (argv[1][0] == '\0' || *end != '\0' || n == 0)
        bench_usage(argv[0]);
    return (uint64_t)n;
}

/* RILL_BENCH_ONLY=rill (or =baseline) runs that side alone, once, for
 * instruction counts (valgrind --tool=callgrind): its results are not
 * checked against the other side, whose rate prints as 0. Is side to run? */
__attribute__((unused)) static int bench_runs(const char *side)
{
    const char *only = getenv("RILL_BENCH_ONLY");
    return !only || !only[0] || strcmp(only, side) == 0;
}

/* How many rounds each side runs. */
__attribute__((unused)) static int bench_rounds(int rounds)
{
    const char *only = getenv("RILL_BENCH_ONLY");
    return only && only[0] ? 1 : rounds;
}

/* The result line from the two rates (records/s), with more fields in
 * extra ("" or " name=value ..."). */
static void bench_print(const char *name, double rate, double base, const char *extra)
{
    printf("bench %s rate=%.0f baseline=%.0f ratio=%.3f%s\n", name, rate, base,
           base > 0 ? rate / base : 0.0, extra);
    fflush(stdout);
}

/* The result line, from the best times (seconds) of n records each (0:
 * that side did not run). */
__attribute__((unused)) static void bench_report(const char *name, uint64_t n, double t_rill,
                                                 double t_base)
{
    bench_print(name, t_rill > 0 ? (double)n / t_rill : 0, t_base > 0 ? (double)n / t_base : 0,
                "");
}

#ifndef BENCH_DRIVER_ONLY

/* ------------------------------------------------------------------------
 * The stateless pipeline
 * ------------------------------------------------------------------------ */

#define BENCH_DEFAULT_N 50000000ull

/* A 16-byte record. */
typedef struct bench_rec {
    uint64_t id;
    int64_t value;
} bench_rec;

/* Written by consume only; read after each run. */
static uint64_t bench_checksum;
static uint64_t bench_consumed;

__attribute__((noinline)) static void make_record(uint64_t i, bench_rec *out)
{
    out->id = i;
    out->value = (int64_t)((i * 0x9e3779b97f4a7c15u) >> 17);
}

__attribute__((noinline)) static void transform(const bench_rec *in, bench_rec *out)
{
    out->id = in->id;
    out->value = in->value * 3 + 7;
}

__attribute__((noinline)) static int keep(const bench_rec *in)
{
    return (in->value & 3) != 0; /* keeps about 3 records in 4 */
}

__attribute__((noinline)) static void consume(const bench_rec *in)
{
    bench_checksum += (uint64_t)in->value ^ (in->id * 0xff51afd7ed558ccdu);
    bench_consumed++;
}

/* volatile: the compiler must load them on every call, so it cannot see
 * through them and inline or merge the work on either side. */
static void (*volatile make_record_fp)(uint64_t, bench_rec *) = make_record;
static void (*volatile transform_fp)(const bench_rec *, bench_rec *) = transform;
static int (*volatile keep_fp)(const bench_rec *) = keep;
static void (*volatile consume_fp)(const bench_rec *) = consume;

static void bench_reset(void)
{
    bench_checksum = 0;
    bench_consumed = 0;
}

/* The baseline: the same work in a plain loop on one thread (not inlined,
 * so that callgrind --toggle-collect=bench_baseline can count it). */
__attribute__((noinline)) static void bench_baseline(uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        bench_rec r, t;

        make_record_fp(i, &r);
        transform_fp(&r, &t);
        if (keep_fp(&t))
            consume_fp(&t);
    }
}

/* ------------------------------------------------------------------------
 * rill callbacks calling the same functions
 * ------------------------------------------------------------------------ */

/*
 * The record as a bench_rec: in place when suitably aligned (the usual
 * case), else copied into *tmp. Copying every record would cost the rill
 * side a store-forwarding stall the baseline does not pay (a 16-byte load
 * of a record its producer has just written as two 8-byte stores).
 */
static const bench_rec *as_rec(const void *rec, bench_rec *tmp)
{
    if (((uintptr_t)rec & (_Alignof(bench_rec) - 1)) == 0)
        return rec;
    memcpy(tmp, rec, sizeof *tmp);
    return tmp;
}

static int bench_gen(rill_ctx *ctx, uint64_t index, void *user_data)
{
    bench_rec r;

    (void)user_data;
    make_record_fp(index, &r);
    return rill_emit(ctx, &r, sizeof r);
}

static int bench_map(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    bench_rec tmp, out;

    (void)len;
    (void)user_data;
    transform_fp(as_rec(rec, &tmp), &out);
    return rill_emit(ctx, &out, sizeof out);
}

static int bench_filter(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    bench_rec tmp;

    (void)ctx;
    (void)len;
    (void)user_data;
    return keep_fp(as_rec(rec, &tmp));
}

static int bench_sink(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    bench_rec tmp;

    (void)ctx;
    (void)len;
    (void)user_data;
    consume_fp(as_rec(rec, &tmp));
    return 0;
}

/* ------------------------------------------------------------------------
 * Driver
 * ------------------------------------------------------------------------ */

/*
 * Run the baseline and the rill job (built on env) BENCH_ROUNDS times each
 * on n records, check that every run consumed the same records with the
 * same checksum, and print the result line. Returns the exit status.
 */
static int bench_run(const char *name, rill_env *env, uint64_t n)
{
    double best_base = 0, best_rill = 0;
    uint64_t want_sum = 0, want_count = 0;
    int check = bench_runs("baseline") && bench_runs("rill");

    for (int round = 0; round < bench_rounds(BENCH_ROUNDS); round++) {
        double t0, t1;
        int rc;

        if (bench_runs("baseline")) {
            bench_reset();
            t0 = bench_now();
            bench_baseline(n);
            t1 = bench_now();
            if (round == 0) {
                want_sum = bench_checksum;
                want_count = bench_consumed;
            } else if (bench_checksum != want_sum || bench_consumed != want_count) {
                fprintf(stderr, "bench %s: baseline checksum changed between runs\n", name);
                return 1;
            }
            if (round == 0 || t1 - t0 < best_base)
                best_base = t1 - t0;
        }
        if (!bench_runs("rill"))
            continue;
        bench_reset();
        t0 = bench_now();
        rc = rill_env_execute(env, name);
        t1 = bench_now();
        if (rc != RILL_OK) {
            fprintf(stderr, "bench %s: job failed: %s\n", name, rill_env_errmsg(env));
            return 1;
        }
        if (check && (bench_checksum != want_sum || bench_consumed != want_count)) {
            fprintf(stderr,
                    "bench %s: checksum mismatch: rill consumed %" PRIu64
                    " records (checksum %016" PRIx64 "), baseline %" PRIu64
                    " (checksum %016" PRIx64 ")\n",
                    name, bench_consumed, bench_checksum, want_count, want_sum);
            return 1;
        }
        if (round == 0 || t1 - t0 < best_rill)
            best_rill = t1 - t0;
    }
    bench_report(name, n, best_rill, best_base);
    return 0;
}

/* generator -> map -> filter [-> rebalance] -> sink at parallelism 1,
 * measured against the baseline; the whole of a benchmark's main. */
static int bench_pipeline(const char *name, int argc, char **argv, int rebalance)
{
    uint64_t n = bench_parse_count(argc, argv, BENCH_DEFAULT_N);
    rill_env *env = rill_env_new();
    rill_stream *s;
    int status;

    if (env == NULL) {
        fprintf(stderr, "bench %s: out of memory\n", name);
        return 1;
    }
    rill_env_set_parallelism(env, 1);
    s = rill_generator(env, "generator", n, bench_gen, NULL);
    s = rill_map(s, "map", bench_map, NULL);
    s = rill_filter(s, "filter", bench_filter, NULL);
    if (rebalance)
        s = rill_rebalance(s);
    rill_sink(s, "sink", bench_sink, NULL);
    if (rill_env_validate(env) != RILL_OK) {
        fprintf(stderr, "bench %s: %s\n", name, rill_env_errmsg(env));
        rill_env_free(env);
        return 1;
    }
    status = bench_run(name, env, n);
    rill_env_free(env);
    return status;
}

#endif /* BENCH_DRIVER_ONLY */

#endif /* RILL_BENCH_COMMON_H */
