/*
 * demo.c - a tour of what rill does today, on made-up sensor readings.
 *
 * Shows:
 *  - a parallel generator source (rill_generator) whose records are plain C
 *    structs, each one a pure function of its index;
 *  - rill_map (Fahrenheit to Celsius) and rill_filter (drop readings a
 *    faulty sensor could not have taken);
 *  - rill_key_by_bytes on the sensor id, so that every reading of a sensor
 *    reaches the same sink subtask;
 *  - a parallel sink keeping per-subtask state: rill_stream_set_lifecycle
 *    opens and closes it, rill_ctx_set_local / rill_ctx_local hold it;
 *  - error handling: a building mistake and a callback failure, both
 *    reported through rill_env_errmsg.
 *
 * The program then checks the job's figures against a plain loop over the
 * same readings and prints "demo: OK" when they agree. Its output is the
 * same on every run: the summary is sorted before it is printed.
 *
 * Build and run: make demo
 */
#include <rill.h>

#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUM_SENSORS 12
#define NUM_READINGS 1200000u
#define START_TS 1700000000000 /* ms */
#define PERIOD_MS 250          /* one reading per sensor every 250 ms */

/* Readings in Celsius outside this range are sensor faults. */
#define MIN_CELSIUS (-40.0)
#define MAX_CELSIUS 60.0

typedef struct reading {
    uint32_t sensor; /* 1..NUM_SENSORS */
    uint32_t pad;    /* keeps the bytes of the struct defined */
    int64_t ts;      /* event time, ms */
    double temp;     /* Fahrenheit from the source, Celsius after the map */
} reading;

/* ---------------------------------------------------------------------
 * The readings: deterministic from their index
 * --------------------------------------------------------------------- */

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

static void make_reading(uint64_t index, reading *r)
{
    uint64_t h = mix64(index);
    uint32_t sensor = (uint32_t)(index % NUM_SENSORS) + 1;

    memset(r, 0, sizeof *r);
    r->sensor = sensor;
    r->ts = START_TS + (int64_t)(index / NUM_SENSORS) * PERIOD_MS;
    /* Each sensor sits somewhere between 23 F and 89 F, plus noise of
     * +-9 F in steps of 0.01 F. */
    r->temp = 23.0 + 6.0 * (double)(sensor * 7 % NUM_SENSORS) +
              (double)((int)(h % 1801) - 900) / 100.0;
    /* About one reading in 500 is a fault: a value far out of range. */
    if ((h >> 32) % 500 == 0)
        r->temp = ((h >> 48) & 1) ? 572.0 : -148.0;
}

static int generate(rill_ctx *ctx, uint64_t index, void *user_data)
{
    reading r;

    (void)user_data;
    make_reading(index, &r);
    return rill_emit_ts(ctx, &r, sizeof r, r.ts);
}

/* ---------------------------------------------------------------------
 * Map and filter
 * --------------------------------------------------------------------- */

static double to_celsius(double fahrenheit)
{
    return (fahrenheit - 32.0) * (5.0 / 9.0);
}

static int in_range(double celsius)
{
    return celsius >= MIN_CELSIUS && celsius <= MAX_CELSIUS;
}

static int map_to_celsius(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    reading r;

    (void)user_data;
    if (len != sizeof r) {
        rill_ctx_set_error(ctx, "expected a %zu-byte reading, got %zu bytes", sizeof r, len);
        return -1;
    }
    memcpy(&r, rec, sizeof r); /* records carry no alignment promise */
    r.temp = to_celsius(r.temp);
    return rill_emit(ctx, &r, sizeof r);
}

static int plausible(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    reading r;

    (void)ctx;
    (void)len;
    (void)user_data;
    memcpy(&r, rec, sizeof r);
    return in_range(r.temp);
}

/* ---------------------------------------------------------------------
 * Statistics per sensor. Temperatures are summed in integer thousandths
 * of a degree, so the result does not depend on the order of arrival.
 * --------------------------------------------------------------------- */

typedef struct sensor_stats {
    uint64_t count;
    int64_t sum_milli;
    int64_t min_milli;
    int64_t max_milli;
    int subtask; /* sink subtask that saw this sensor, -1 if none */
    int subtasks_seen; /* how many sink subtasks saw it (key_by: 1) */
} sensor_stats;

static int64_t to_milli(double celsius)
{
    double m = celsius * 1000.0;
    return (int64_t)(m >= 0 ? m + 0.5 : m - 0.5);
}

static void stats_init(sensor_stats *s)
{
    memset(s, 0, sizeof *s);
    s->min_milli = INT64_MAX;
    s->max_milli = INT64_MIN;
    s->subtask = -1;
}

static void stats_add(sensor_stats *s, int64_t milli)
{
    s->count++;
    s->sum_milli += milli;
    if (milli < s->min_milli)
        s->min_milli = milli;
    if (milli > s->max_milli)
        s->max_milli = milli;
}

/* What the sinks hand over when they close, shared by all subtasks. */
typedef struct summary {
    pthread_mutex_t lock;
    sensor_stats sensors[NUM_SENSORS + 1]; /* indexed by sensor id */
    uint64_t per_subtask[64];              /* readings per sink subtask */
} summary;

/* Per-subtask state of the sink. */
typedef struct sink_local {
    sensor_stats sensors[NUM_SENSORS + 1];
} sink_local;

static int sink_open(rill_ctx *ctx, void *user_data)
{
    sink_local *local = malloc(sizeof *local);

    (void)user_data;
    if (local == NULL) {
        rill_ctx_set_error(ctx, "out of memory");
        return -1;
    }
    for (int i = 0; i <= NUM_SENSORS; i++)
        stats_init(&local->sensors[i]);
    rill_ctx_set_local(ctx, local);
    return 0;
}

static int sink_record(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    sink_local *local = rill_ctx_local(ctx);
    reading r;

    (void)len;
    (void)user_data;
    memcpy(&r, rec, sizeof r);
    if (r.sensor < 1 || r.sensor > NUM_SENSORS) {
        rill_ctx_set_error(ctx, "unknown sensor %" PRIu32, r.sensor);
        return -1;
    }
    stats_add(&local->sensors[r.sensor], to_milli(r.temp));
    return 0;
}

static int sink_close(rill_ctx *ctx, void *user_data)
{
    summary *sum = user_data;
    sink_local *local = rill_ctx_local(ctx);
    int subtask = rill_ctx_subtask(ctx);

    if (local == NULL)
        return 0;
    pthread_mutex_lock(&sum->lock);
    for (int i = 1; i <= NUM_SENSORS; i++) {
        const sensor_stats *mine = &local->sensors[i];
        sensor_stats *all = &sum->sensors[i];

        if (mine->count == 0)
            continue;
        all->count += mine->count;
        all->sum_milli += mine->sum_milli;
        if (mine->min_milli < all->min_milli)
            all->min_milli = mine->min_milli;
        if (mine->max_milli > all->max_milli)
            all->max_milli = mine->max_milli;
        all->subtask = subtask;
        all->subtasks_seen++;
        if (subtask >= 0 && subtask < 64)
            sum->per_subtask[subtask] += mine->count;
    }
    pthread_mutex_unlock(&sum->lock);
    free(local);
    rill_ctx_set_local(ctx, NULL);
    return 0;
}

/* ---------------------------------------------------------------------
 * Printing
 * --------------------------------------------------------------------- */

/* milli-degrees as text with two decimals, e.g. "-12.35" */
static const char *celsius_text(char *buf, size_t cap, int64_t milli)
{
    int64_t mag = milli < 0 ? -milli : milli;
    int64_t hundredths = (mag + 5) / 10;

    snprintf(buf, cap, "%s%" PRId64 ".%02" PRId64, milli < 0 && hundredths ? "-" : "",
             hundredths / 100, hundredths % 100);
    return buf;
}

static int cmp_by_avg(const void *a, const void *b)
{
    const sensor_stats *x = *(const sensor_stats *const *)a;
    const sensor_stats *y = *(const sensor_stats *const *)b;
    /* sum_x/count_x against sum_y/count_y without rounding (the products
     * stay far below 2^63 at these sizes) */
    int64_t l = x->sum_milli * (int64_t)y->count;
    int64_t r = y->sum_milli * (int64_t)x->count;

    if (l != r)
        return l < r ? -1 : 1;
    return x < y ? -1 : (x > y);
}

/* ---------------------------------------------------------------------
 * Jobs
 * --------------------------------------------------------------------- */

/* The main job. Returns 0 on success and fills *sum. */
static int run_sensor_job(summary *sum, int parallelism)
{
    rill_env *env = rill_env_new();
    rill_stream *s;
    int rc;

    if (env == NULL) {
        fprintf(stderr, "demo: out of memory\n");
        return -1;
    }
    rill_env_set_parallelism(env, parallelism);

    s = rill_generator(env, "readings", NUM_READINGS, generate, NULL);
    s = rill_map(s, "to-celsius", map_to_celsius, NULL);
    s = rill_filter(s, "plausible", plausible, NULL);
    s = rill_key_by_bytes(s, offsetof(reading, sensor), sizeof(uint32_t));
    s = rill_sink(s, "per-sensor-stats", sink_record, sum);
    s = rill_stream_set_lifecycle(s, sink_open, sink_close);
    /* Any mistake above would surface here, with its message. */
    rc = rill_env_execute(env, "sensor statistics");
    if (rc != RILL_OK)
        fprintf(stderr, "demo: job failed: %s (%s)\n", rill_env_errmsg(env),
                rill_err_name(rc));
    rill_env_free(env);
    return rc == RILL_OK ? 0 : -1;
}

/* A map that refuses one reading, to show a failing callback. */
static int picky_map(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    const reading *bad = user_data;
    reading r;

    (void)len;
    memcpy(&r, rec, sizeof r);
    if (r.ts == bad->ts && r.sensor == bad->sensor) {
        rill_ctx_set_error(ctx, "sensor %" PRIu32 " sent a reading from the future",
                           r.sensor);
        return -1;
    }
    return rill_emit(ctx, &r, sizeof r);
}

static int discard(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)user_data;
    return 0;
}

static int show_errors(void)
{
    rill_env *env;
    rill_stream *s;
    int rc, ok = 1;
    reading bad;

    printf("\nerror handling:\n");

    /* 1. A building mistake: kept on the env, reported by validate. */
    env = rill_env_new();
    if (env == NULL)
        return -1;
    s = rill_generator(env, "readings", 100, generate, NULL);
    s = rill_stream_set_parallelism(s, 0); /* not a valid parallelism */
    s = rill_map(s, "to-celsius", map_to_celsius, NULL); /* NULL in, NULL out */
    rill_sink(s, "discard", discard, NULL);
    rc = rill_env_validate(env);
    printf("  building mistake -> %s: %s\n", rill_err_name(rc), rill_env_errmsg(env));
    ok &= rc == RILL_EINVAL;
    rill_env_free(env);

    /* 2. A callback failure: the job stops, the message names the operator
     *    and carries the callback's own words. Exactly one reading (index
     *    4242, on one generator subtask) triggers it. */
    env = rill_env_new();
    if (env == NULL)
        return -1;
    rill_env_set_parallelism(env, 2);
    make_reading(4242, &bad);
    s = rill_generator(env, "readings", 12000, generate, NULL);
    s = rill_map(s, "picky", picky_map, &bad);
    rill_sink(s, "discard", discard, NULL);
    rc = rill_env_execute(env, "failing job");
    printf("  failing callback -> %s: %s\n", rill_err_name(rc), rill_env_errmsg(env));
    ok &= rc == RILL_EUSER && strstr(rill_env_errmsg(env), "picky") != NULL;
    rill_env_free(env);

    return ok ? 0 : -1;
}

int main(void)
{
    static summary sum;
    sensor_stats expect[NUM_SENSORS + 1];
    const sensor_stats *order[NUM_SENSORS];
    uint64_t kept = 0, expect_kept = 0;
    const int parallelism = 2;
    int same = 1;

    printf("rill %s demo: %u sensor readings, parallelism %d\n", rill_version_string(),
           NUM_READINGS, parallelism);
    printf("pipeline: generator -> map(F to C) -> filter(%.0f..%.0f C) -> key_by(sensor)"
           " -> per-sensor stats sink\n\n",
           MIN_CELSIUS, MAX_CELSIUS);

    pthread_mutex_init(&sum.lock, NULL);
    for (int i = 0; i <= NUM_SENSORS; i++)
        stats_init(&sum.sensors[i]);
    if (run_sensor_job(&sum, parallelism) != 0)
        return 1;

    /* The same figures from a plain loop, to check the job against. */
    for (int i = 0; i <= NUM_SENSORS; i++)
        stats_init(&expect[i]);
    for (uint64_t i = 0; i < NUM_READINGS; i++) {
        reading r;
        double c;

        make_reading(i, &r);
        c = to_celsius(r.temp);
        if (in_range(c)) {
            stats_add(&expect[r.sensor], to_milli(c));
            expect_kept++;
        }
    }

    for (int i = 0; i < NUM_SENSORS; i++)
        order[i] = &sum.sensors[i + 1];
    qsort(order, NUM_SENSORS, sizeof order[0], cmp_by_avg);

    printf("per sensor, sorted by average temperature:\n");
    printf("sensor  readings     min C     avg C     max C  sink subtask\n");
    for (int i = 0; i < NUM_SENSORS; i++) {
        const sensor_stats *st = order[i];
        int id = (int)(st - sum.sensors);
        const sensor_stats *ex = &expect[id];
        int64_t n = (int64_t)st->count;
        int64_t avg = n == 0 ? 0
                      : st->sum_milli >= 0 ? (st->sum_milli + n / 2) / n
                                           : -((-st->sum_milli + n / 2) / n);

        char lo[32], mid[32], hi[32];

        printf("%6d  %8" PRIu64 "  %8s  %8s  %8s  %12d\n", id, st->count,
               celsius_text(lo, sizeof lo, st->min_milli),
               celsius_text(mid, sizeof mid, avg),
               celsius_text(hi, sizeof hi, st->max_milli), st->subtask + 1);
        kept += st->count;
        if (st->count != ex->count || st->sum_milli != ex->sum_milli ||
            st->min_milli != ex->min_milli || st->max_milli != ex->max_milli)
            same = 0;
        if (st->subtasks_seen != 1) {
            printf("  sensor %d was seen by %d sink subtasks (expected 1)\n", id,
                   st->subtasks_seen);
            same = 0;
        }
    }
    printf("\nkept %" PRIu64 " readings, dropped %" PRIu64 " out-of-range ones\n", kept,
           (uint64_t)NUM_READINGS - kept);
    for (int i = 0; i < parallelism; i++)
        printf("sink subtask %d handled %" PRIu64 " readings\n", i + 1, sum.per_subtask[i]);
    if (kept != expect_kept)
        same = 0;
    printf("check against a plain loop: %s\n", same ? "same figures" : "MISMATCH");

    if (show_errors() != 0) {
        printf("demo: FAILED (error handling did not behave as expected)\n");
        return 1;
    }
    pthread_mutex_destroy(&sum.lock);
    if (!same) {
        printf("demo: FAILED\n");
        return 1;
    }
    printf("\ndemo: OK\n");
    return 0;
}
