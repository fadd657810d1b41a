/*
 * latency.c - end-to-end latency of a steady low-rate source.
 *
 *   latency [RECORDS]   (default 3000 records for each buffer timeout)
 *
 * A source (parallelism 1) emits RECORDS records at 1,000 records/s, one
 * per call, sleeping until each record is due and returning
 * RILL_SOURCE_MORE; key_by sends them to a sink at parallelism 2, so every
 * record crosses a channel between threads. The sink takes the time from
 * the emit to its arrival. That is done for the buffer timeouts 0, 5 and
 * 100 ms; for each it prints one line:
 *
 *   bench latency_timeout_<ms> rate=<records/s> baseline=<records/s> ratio=<rate/baseline>
 *         p50_ms=<median> p99_ms=<99th percentile> max_ms=<largest>
 *
 * (on one line), where baseline is the source's rate (1,000 records/s)
 * and rate what went through. A partly filled buffer should leave within
 * the buffer timeout, so p99 should stay within the timeout plus a few
 * milliseconds of scheduling. Exits 1 if a record is lost or seen twice.
 */
#define _POSIX_C_SOURCE 200809L /* clock_nanosleep */
#define BENCH_DRIVER_ONLY

#include "common.h"

#define LAT_RATE 1000       /* records per second */
#define LAT_DEFAULT_N 3000u /* records per buffer timeout */
#define LAT_KEYS 64         /* keys, so both sink subtasks get records */

typedef struct lat_rec {
    uint64_t seq;
    int64_t sent_ns; /* CLOCK_MONOTONIC at the emit */
} lat_rec;

typedef struct lat_run {
    uint64_t n;
    uint64_t next;   /* source: the next record to emit */
    int64_t start_ns;
    double *lat_ms;  /* by seq; each written by the one sink subtask of its key */
    unsigned char *seen;
} lat_run;

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int lat_source(rill_ctx *ctx, void *user_data)
{
    lat_run *r = user_data;
    int64_t due = r->start_ns + (int64_t)(r->next * (1000000000u / LAT_RATE));
    struct timespec ts = {(time_t)(due / 1000000000), (long)(due % 1000000000)};
    lat_rec rec;

    if (r->next == r->n)
        return RILL_SOURCE_END;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
        ;
    rec.seq = r->next++;
    rec.sent_ns = now_ns();
    if (rill_emit(ctx, &rec, sizeof rec) != RILL_OK)
        return -1;
    return RILL_SOURCE_MORE;
}

static int lat_key(const void *rec, size_t len, void *key, size_t *key_len, void *user_data)
{
    lat_rec r;
    uint64_t k;

    (void)len;
    (void)user_data;
    memcpy(&r, rec, sizeof r);
    k = r.seq % LAT_KEYS;
    if (*key_len >= sizeof k)
        memcpy(key, &k, sizeof k);
    *key_len = sizeof k;
    return 0;
}

static int lat_sink(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    lat_run *r = user_data;
    lat_rec in;

    (void)ctx;
    if (len != sizeof in)
        return -1;
    memcpy(&in, rec, sizeof in);
    if (in.seq >= r->n)
        return -1;
    r->lat_ms[in.seq] = (double)(now_ns() - in.sent_ns) / 1e6;
    r->seen[in.seq]++;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* The value below which a fraction q of the sorted v[0..n) lies. */
static double quantile(const double *v, uint64_t n, double q)
{
    uint64_t i = (uint64_t)(q * (double)n);

    return v[i < n ? i : n - 1];
}

static int lat_one(int64_t timeout, uint64_t n)
{
    char name[64], extra[96];
    lat_run r = {n, 0, 0, NULL, NULL};
    rill_env *env = rill_env_new();
    rill_stream *s;
    double t0, t1;
    int rc, status = 1;

    snprintf(name, sizeof name, "latency_timeout_%lld", (long long)timeout);
    r.lat_ms = calloc(n, sizeof *r.lat_ms);
    r.seen = calloc(n, 1);
    if (env == NULL || r.lat_ms == NULL || r.seen == NULL) {
        fprintf(stderr, "bench %s: out of memory\n", name);
        goto out;
    }
    rill_env_set_buffer_timeout(env, timeout);
    s = rill_source(env, "paced", lat_source, &r);
    rill_stream_set_parallelism(s, 1);
    s = rill_key_by(s, lat_key, NULL);
    s = rill_sink(s, "latency", lat_sink, &r);
    rill_stream_set_parallelism(s, 2);
    if (rill_env_validate(env) != RILL_OK) {
        fprintf(stderr, "bench %s: %s\n", name, rill_env_errmsg(env));
        goto out;
    }
    r.start_ns = now_ns() + 20000000; /* the first record 20 ms after the start */
    t0 = bench_now();
    rc = rill_env_execute(env, name);
    t1 = bench_now();
    if (rc != RILL_OK) {
        fprintf(stderr, "bench %s: job failed: %s\n", name, rill_env_errmsg(env));
        goto out;
    }
    for (uint64_t i = 0; i < n; i++)
        if (r.seen[i] != 1) {
            fprintf(stderr, "bench %s: record %" PRIu64 " arrived %d times\n", name, i,
                    r.seen[i]);
            goto out;
        }
    qsort(r.lat_ms, n, sizeof *r.lat_ms, cmp_double);
    snprintf(extra, sizeof extra, " p50_ms=%.2f p99_ms=%.2f max_ms=%.2f",
             quantile(r.lat_ms, n, 0.5), quantile(r.lat_ms, n, 0.99), r.lat_ms[n - 1]);
    bench_print(name, (double)n / (t1 - t0), LAT_RATE, extra);
    status = 0;
out:
    rill_env_free(env);
    free(r.lat_ms);
    free(r.seen);
    return status;
}

int main(int argc, char **argv)
{
    static const int64_t timeouts[] = {0, 5, 100};
    uint64_t n = bench_parse_count(argc, argv, LAT_DEFAULT_N);

    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++)
        if (lat_one(timeouts[i], n))
            return 1;
    return 0;
}
