/*
 * temperature_alert.c - alert when a sensor's temperature keeps rising for
 * one second of processing time.
 *
 * Shows:
 *  - a keyed process function (rill_process after rill_key_by_bytes on the
 *    sensor id) with two value states per sensor: the last temperature and
 *    the time of the pending timer (0 when none);
 *  - processing-time timers: registered on the first increase, deleted on
 *    a decrease; when one fires, the temperature has not fallen for a
 *    whole second and the timer function emits an alert;
 *  - the test harness running the whole graph on the calling thread with
 *    a clock the program sets (rill_harness_new with op NULL,
 *    rill_harness_input, rill_harness_push, rill_harness_set_time), so
 *    that the alerts come out the same on every run;
 *  - reading a sensor's state back through the harness
 *    (rill_harness_state with "uid/state").
 *
 * Readings equal to the previous one neither start nor stop a timer.
 * Alerts are printed by rill_sink_print as they happen, between the
 * readings of the timeline.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <rill.h>

#include <ftw.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct reading {
    uint32_t sensor; /* the key */
    uint32_t pad;    /* keeps every byte of the struct defined */
    double temp;     /* Celsius */
} reading;

typedef struct alert {
    uint32_t sensor;
    uint32_t pad;
    double temp;      /* last temperature when the alert fired */
    int64_t since;    /* processing time of the increase that started it */
    int64_t fired_at; /* processing time of the timer */
} alert;

#define RISE_MS 1000 /* how long the temperature must keep rising */

/* ---------------------------------------------------------------------
 * The process function
 * --------------------------------------------------------------------- */

static int state_error(rill_ctx *ctx, const char *what, int rc)
{
    rill_ctx_set_error(ctx, "%s: %s", what, rill_strerror(rc));
    return rc;
}

static int on_reading(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    rill_state *last = rill_ctx_state(ctx, "last-temp");
    rill_state *timer = rill_ctx_state(ctx, "timer");
    const void *val;
    size_t vlen;
    double prev;
    int64_t timer_ts = 0;
    reading r;
    int rc, have_prev;

    (void)len;
    (void)user_data;
    memcpy(&r, rec, sizeof r);

    rc = rill_state_get(last, &val, &vlen);
    if (rc != RILL_OK && rc != RILL_ENOTFOUND)
        return state_error(ctx, "reading last-temp", rc);
    have_prev = rc == RILL_OK;
    if (have_prev)
        memcpy(&prev, val, sizeof prev);
    if ((rc = rill_state_put(last, &r.temp, sizeof r.temp)) != RILL_OK)
        return state_error(ctx, "writing last-temp", rc);

    rc = rill_state_get(timer, &val, &vlen);
    if (rc == RILL_OK)
        memcpy(&timer_ts, val, sizeof timer_ts);
    else if (rc != RILL_ENOTFOUND)
        return state_error(ctx, "reading timer", rc);

    if (!have_prev)
        return 0;
    if (r.temp < prev && timer_ts != 0) {
        /* The rise is over: forget the pending alert. */
        if ((rc = rill_timer_delete(ctx, RILL_PROCESSING_TIME, timer_ts)) != RILL_OK)
            return rc;
        if ((rc = rill_state_clear(timer)) != RILL_OK)
            return state_error(ctx, "clearing timer", rc);
    } else if (r.temp > prev && timer_ts == 0) {
        /* The first increase: alert in RISE_MS unless it falls before. */
        timer_ts = rill_ctx_processing_time(ctx) + RISE_MS;
        if ((rc = rill_timer_register(ctx, RILL_PROCESSING_TIME, timer_ts)) != RILL_OK)
            return rc;
        if ((rc = rill_state_put(timer, &timer_ts, sizeof timer_ts)) != RILL_OK)
            return state_error(ctx, "writing timer", rc);
    }
    return 0;
}

static int on_timer(rill_ctx *ctx, int64_t ts, int domain, void *user_data)
{
    rill_state *last = rill_ctx_state(ctx, "last-temp");
    const void *key, *val;
    size_t klen, vlen;
    alert a;
    int rc;

    (void)domain;
    (void)user_data;
    memset(&a, 0, sizeof a);
    if ((rc = rill_ctx_key(ctx, &key, &klen)) != RILL_OK)
        return rc;
    memcpy(&a.sensor, key, sizeof a.sensor);
    if ((rc = rill_state_get(last, &val, &vlen)) != RILL_OK)
        return state_error(ctx, "reading last-temp", rc);
    memcpy(&a.temp, val, sizeof a.temp);
    a.since = ts - RISE_MS;
    a.fired_at = ts;
    if ((rc = rill_state_clear(rill_ctx_state(ctx, "timer"))) != RILL_OK)
        return state_error(ctx, "clearing timer", rc);
    return rill_emit(ctx, &a, sizeof a);
}

static int format_alert(const void *rec, size_t len, char *buf, size_t cap, void *user_data)
{
    alert a;

    (void)len;
    (void)user_data;
    memcpy(&a, rec, sizeof a);
    return snprintf(buf, cap,
                    "%6" PRId64 " ms  ALERT sensor-%" PRIu32
                    ": rising since %" PRId64 " ms, now %.1f C",
                    a.fired_at, a.sensor, a.since, a.temp);
}

/* ---------------------------------------------------------------------
 * The timeline fed to the harness
 * --------------------------------------------------------------------- */

typedef struct step {
    int64_t at;      /* processing time, ms */
    uint32_t sensor; /* 0: only advance the clock */
    double temp;
} step;

static const step timeline[] = {
    {0, 1, 20.0},    {100, 2, 30.0},  {200, 1, 20.5}, /* sensor-1 starts rising */
    {300, 2, 29.0},  {400, 1, 21.0},  {500, 2, 29.5}, /* sensor-2 starts rising */
    {600, 3, 15.0},  {700, 3, 15.5},                  /* sensor-3 starts rising */
    {900, 2, 29.5},                                   /* equal: sensor-2 still rising */
    {1000, 3, 15.2},                                  /* sensor-3 falls: no alert */
    {1100, 3, 15.4},                                  /* ... and rises again */
    {1200, 0, 0},                                     /* sensor-1 alert */
    {1300, 1, 21.5}, {1500, 0, 0},                    /* sensor-2 alert */
    {1800, 1, 21.2},                                  /* sensor-1 falls */
    {2100, 0, 0},                                     /* sensor-3 alert */
    {2400, 0, 0},
};

/* ---------------------------------------------------------------------
 * Running it
 * --------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int run(const char *state_dir)
{
    rill_env *env = rill_env_new();
    rill_harness *h = NULL;
    rill_stream *s;
    size_t n_alerts = 0;
    int rc;

    if (env == NULL) {
        fprintf(stderr, "temperature_alert: out of memory\n");
        return -1;
    }
    rill_env_set_state_dir(env, state_dir);

    s = rill_harness_input(env, "readings");
    s = rill_key_by_bytes(s, offsetof(reading, sensor), sizeof(uint32_t));
    s = rill_process(s, "temp-increase", on_reading, on_timer, NULL);
    s = rill_stream_add_state(s, "last-temp", RILL_STATE_VALUE);
    s = rill_stream_add_state(s, "timer", RILL_STATE_VALUE);
    rill_sink_print(s, "alerts", RILL_STDOUT, format_alert, NULL);

    rc = rill_harness_new(&h, env, NULL);
    if (rc != RILL_OK) {
        fprintf(stderr, "temperature_alert: %s\n", rill_env_errmsg(env));
        rill_env_free(env);
        return -1;
    }

    for (size_t i = 0; i < sizeof timeline / sizeof timeline[0] && rc == RILL_OK; i++) {
        const step *st = &timeline[i];

        /* Timers due by st->at fire (and print) inside set_time. */
        rc = rill_harness_set_time(h, st->at);
        if (rc != RILL_OK || st->sensor == 0)
            continue;
        reading r = {st->sensor, 0, st->temp};
        printf("%6" PRId64 " ms  sensor-%" PRIu32 " %.1f C\n", st->at, r.sensor, r.temp);
        rc = rill_harness_push(h, 0, &r, sizeof r, RILL_TS_MIN);
    }
    if (rc == RILL_OK) {
        n_alerts = rill_harness_count(h, "alerts");
        printf("\n%zu alerts, %zu timers pending\n", n_alerts,
               rill_harness_timers(h, RILL_PROCESSING_TIME));
        printf("last temperature per sensor (from the keyed state):\n");
        for (uint32_t sensor = 1; sensor <= 3; sensor++) {
            rill_state *last = rill_harness_state(h, "temp-increase/last-temp", &sensor,
                                                  sizeof sensor);
            const void *val;
            size_t vlen;
            double t;

            if (last == NULL || rill_state_get(last, &val, &vlen) != RILL_OK) {
                fprintf(stderr, "temperature_alert: no state for sensor-%" PRIu32 "\n",
                        sensor);
                rc = RILL_ENOTFOUND;
                break;
            }
            memcpy(&t, val, sizeof t);
            printf("  sensor-%" PRIu32 " %.1f C\n", sensor, t);
        }
    }
    if (rc == RILL_OK)
        rc = rill_harness_end(h);
    if (rc != RILL_OK)
        fprintf(stderr, "temperature_alert: %s (%s)\n", rill_harness_errmsg(h),
                rill_err_name(rc));
    rill_harness_free(h);
    rill_env_free(env);
    return rc == RILL_OK && n_alerts == 3 ? 0 : -1;
}

int main(void)
{
    char dir[] = "/tmp/rill-temperature-alert.XXXXXX";
    int status;

    if (mkdtemp(dir) == NULL) {
        perror("temperature_alert: mkdtemp");
        return 1;
    }
    status = run(dir);
    nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    return status == 0 ? 0 : 1;
}
