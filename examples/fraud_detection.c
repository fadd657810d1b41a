/*
 * fraud_detection.c - flag a large transaction that comes right after a
 * small one on the same account, within a minute of event time.
 *
 *   fraud_detection [-p N]
 *
 * A card thief often tries a stolen card with a tiny purchase first, then
 * spends big. The job reads a bounded list of transactions (account,
 * amount, time), some of them out of order, and raises an alert when an
 * account's transaction over 500.00 directly follows one under 1.00 made
 * at most 60 s before it.
 *
 * Shows:
 *  - rill_from_records with rill_assign_timestamps: event time taken from
 *    the record, watermarks that allow 5 s of disorder;
 *  - rill_key_by_bytes on the account id and a keyed process function
 *    with value state: "the last transaction was small" (kept as the small
 *    amount) and the time of its timer;
 *  - an event-time timer 60 s after the small transaction that clears the
 *    flag, so accounts that never spend again do not keep state;
 *  - a side output "alerts" printed with rill_sink_print, while the main
 *    output passes every transaction on to the next operator.
 *
 * When the alert is decided, the large transaction's own time is compared
 * with the timer's too: a watermark can reach the detector later than the
 * records behind it, and the alerts must not depend on when it does.
 *
 * -p N sets the parallelism of the detector (default 1). The alert lines
 * are printed in the order the detector finds them: with N > 1 the
 * accounts of different subtasks interleave in any order.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <rill.h>

#include <ftw.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct transaction {
    uint64_t account;
    int64_t cents;
    int64_t ts; /* ms since midnight */
} transaction;

typedef struct alert {
    uint64_t account;
    int64_t small_cents;
    int64_t small_ts;
    int64_t large_cents;
    int64_t large_ts;
} alert;

#define SMALL_CENTS 100       /* under 1.00 */
#define LARGE_CENTS 50000     /* over 500.00 */
#define WINDOW_MS 60000       /* one minute */
#define OUT_OF_ORDER_MS 5000  /* how late a transaction may arrive */

#define AT(h, m, s) ((int64_t)((((h) * 60 + (m)) * 60 + (s)) * 1000))

/* In arrival order; a few arrive up to 5 s after later ones. */
static const transaction transactions[] = {
    {1001, 2150, AT(9, 0, 0)},
    {1002, 89, AT(9, 0, 3)},     /* small ... */
    {1003, 4599, AT(9, 0, 5)},
    {1001, 1299, AT(9, 0, 9)},
    {1002, 74900, AT(9, 0, 12)}, /* ... then large 9 s later: alert */
    {1004, 50, AT(9, 0, 20)},    /* small ... */
    {1003, 25, AT(9, 0, 17)},    /* small (out of order) ... */
    {1005, 9999, AT(9, 0, 25)},
    {1003, 99000, AT(9, 0, 31)}, /* ... then large: alert */
    {1001, 68000, AT(9, 0, 40)}, /* large, but not after a small one */
    {1005, 10, AT(9, 1, 2)},     /* small ... */
    {1005, 1500, AT(9, 1, 10)},  /* ... then a normal one ... */
    {1005, 80000, AT(9, 1, 15)}, /* ... so this large one is fine */
    {1004, 60000, AT(9, 1, 30)}, /* large 70 s after the small: too late */
    {1006, 1, AT(9, 2, 0)},      /* small ... */
    {1006, 51000, AT(9, 1, 58)}, /* ... large, 2 s earlier (out of order): alert */
    {1001, 3300, AT(9, 2, 10)},
    {1002, 99, AT(9, 2, 30)},    /* small ... */
    {1002, 99, AT(9, 2, 45)},    /* small again ... */
    {1002, 120000, AT(9, 3, 44)}, /* ... large 59 s after the last small: alert */
    {1003, 5, AT(9, 4, 0)},      /* small, nothing follows: the timer clears it */
    {1004, 3100, AT(9, 4, 2)},
};

#define N_TRANSACTIONS (sizeof transactions / sizeof transactions[0])

/* ---------------------------------------------------------------------
 * The detector
 * --------------------------------------------------------------------- */

static int state_error(rill_ctx *ctx, const char *what, int rc)
{
    rill_ctx_set_error(ctx, "%s: %s", what, rill_strerror(rc));
    return rc;
}

static int get_i64(rill_ctx *ctx, rill_state *st, const char *what, int64_t *out, int *found)
{
    const void *val;
    size_t len;
    int rc = rill_state_get(st, &val, &len);

    *found = rc == RILL_OK;
    if (rc == RILL_ENOTFOUND)
        return 0;
    if (rc != RILL_OK)
        return state_error(ctx, what, rc);
    memcpy(out, val, sizeof *out);
    return 0;
}

/* Forget the small transaction and its timer. */
static int clean_up(rill_ctx *ctx, rill_state *flag, rill_state *timer, int64_t timer_ts)
{
    int rc;

    if ((rc = rill_timer_delete(ctx, RILL_EVENT_TIME, timer_ts)) != RILL_OK)
        return rc;
    if ((rc = rill_state_clear(flag)) != RILL_OK)
        return state_error(ctx, "clearing small", rc);
    if ((rc = rill_state_clear(timer)) != RILL_OK)
        return state_error(ctx, "clearing timer", rc);
    return 0;
}

static int detect(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    rill_state *flag = rill_ctx_state(ctx, "small");
    rill_state *timer = rill_ctx_state(ctx, "timer");
    int64_t small_cents = 0, timer_ts = 0;
    int was_small, has_timer, rc;
    transaction t;

    (void)user_data;
    memcpy(&t, rec, sizeof t);
    if ((rc = get_i64(ctx, flag, "reading small", &small_cents, &was_small)) != 0 ||
        (rc = get_i64(ctx, timer, "reading timer", &timer_ts, &has_timer)) != 0)
        return rc;

    if (was_small) {
        if (t.cents > LARGE_CENTS && t.ts <= timer_ts) {
            alert a = {t.account, small_cents, timer_ts - WINDOW_MS, t.cents, t.ts};

            if ((rc = rill_emit_side(ctx, "alerts", &a, sizeof a)) != RILL_OK)
                return rc;
        }
        if ((rc = clean_up(ctx, flag, timer, timer_ts)) != 0)
            return rc;
    }
    if (t.cents < SMALL_CENTS) {
        timer_ts = t.ts + WINDOW_MS;
        if ((rc = rill_state_put(flag, &t.cents, sizeof t.cents)) != RILL_OK)
            return state_error(ctx, "writing small", rc);
        if ((rc = rill_state_put(timer, &timer_ts, sizeof timer_ts)) != RILL_OK)
            return state_error(ctx, "writing timer", rc);
        if ((rc = rill_timer_register(ctx, RILL_EVENT_TIME, timer_ts)) != RILL_OK)
            return rc;
    }
    return rill_emit(ctx, rec, len); /* the main output: every transaction */
}

/* A minute after a small transaction with nothing after it. */
static int expire(rill_ctx *ctx, int64_t ts, int domain, void *user_data)
{
    int rc;

    (void)ts;
    (void)domain;
    (void)user_data;
    if ((rc = rill_state_clear(rill_ctx_state(ctx, "small"))) != RILL_OK)
        return state_error(ctx, "clearing small", rc);
    if ((rc = rill_state_clear(rill_ctx_state(ctx, "timer"))) != RILL_OK)
        return state_error(ctx, "clearing timer", rc);
    return 0;
}

/* ---------------------------------------------------------------------
 * Around it
 * --------------------------------------------------------------------- */

static int64_t transaction_time(const void *rec, size_t len, int64_t ts, void *user_data)
{
    transaction t;

    (void)len;
    (void)ts;
    (void)user_data;
    memcpy(&t, rec, sizeof t);
    return t.ts;
}

static const char *clock_text(char *buf, size_t cap, int64_t ms)
{
    int64_t s = ms / 1000;

    snprintf(buf, cap, "%02" PRId64 ":%02" PRId64 ":%02" PRId64, s / 3600, s / 60 % 60,
             s % 60);
    return buf;
}

static int format_alert(const void *rec, size_t len, char *buf, size_t cap, void *user_data)
{
    char t1[32], t2[32];
    alert a;

    (void)len;
    (void)user_data;
    memcpy(&a, rec, sizeof a);
    return snprintf(buf, cap,
                    "ALERT account %" PRIu64 ": %" PRId64 ".%02" PRId64 " at %s, then %" PRId64
                    ".%02" PRId64 " at %s",
                    a.account, a.small_cents / 100, a.small_cents % 100,
                    clock_text(t1, sizeof t1, a.small_ts), a.large_cents / 100,
                    a.large_cents % 100, clock_text(t2, sizeof t2, a.large_ts));
}

static atomic_uint_fast64_t passed; /* transactions through the detector */

static int count_passed(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)user_data;
    atomic_fetch_add(&passed, 1);
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [-p N]\n", prog);
    return 2;
}

int main(int argc, char **argv)
{
    rill_record records[N_TRANSACTIONS];
    char state_dir[] = "/tmp/rill-fraud-detection.XXXXXX";
    rill_env *env;
    rill_stream *s, *checked;
    int parallelism = 1, rc;

    if (argc == 3 && strcmp(argv[1], "-p") == 0) {
        char *end;
        long p = strtol(argv[2], &end, 10);

        if (argv[2][0] == '\0' || *end != '\0' || p < 1 || p > 128)
            return usage(argv[0]);
        parallelism = (int)p;
    } else if (argc != 1) {
        return usage(argv[0]);
    }

    for (size_t i = 0; i < N_TRANSACTIONS; i++) {
        records[i].data = &transactions[i];
        records[i].len = sizeof transactions[i];
        records[i].ts = RILL_TS_MIN; /* the assigner reads the record */
    }

    if (mkdtemp(state_dir) == NULL) {
        perror("fraud_detection: mkdtemp");
        return 1;
    }
    env = rill_env_new();
    if (env == NULL) {
        fprintf(stderr, "fraud_detection: out of memory\n");
        return 1;
    }
    rill_env_set_parallelism(env, parallelism);
    rill_env_set_state_dir(env, state_dir);

    s = rill_from_records(env, "transactions", records, N_TRANSACTIONS);
    s = rill_assign_timestamps(s, "event-time", transaction_time, OUT_OF_ORDER_MS, NULL);
    s = rill_stream_set_parallelism(s, 1); /* chained to the source: arrival order kept */
    s = rill_key_by_bytes(s, offsetof(transaction, account), sizeof(uint64_t));
    checked = rill_process(s, "detector", detect, expire, NULL);
    checked = rill_stream_add_state(checked, "small", RILL_STATE_VALUE);
    checked = rill_stream_add_state(checked, "timer", RILL_STATE_VALUE);
    rill_sink(checked, "checked", count_passed, NULL);
    s = rill_side_output(checked, "alerts");
    s = rill_sink_print(s, "print-alerts", RILL_STDOUT, format_alert, NULL);
    rill_stream_set_parallelism(s, 1);

    rc = rill_env_execute(env, "fraud detection");
    if (rc != RILL_OK)
        fprintf(stderr, "fraud_detection: %s (%s)\n", rill_env_errmsg(env), rill_err_name(rc));
    rill_env_free(env);
    nftw(state_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    if (rc != RILL_OK)
        return 1;
    printf("%" PRIu64 " of %zu transactions checked\n", (uint64_t)atomic_load(&passed),
           N_TRANSACTIONS);
    return atomic_load(&passed) == N_TRANSACTIONS ? 0 : 1;
}
