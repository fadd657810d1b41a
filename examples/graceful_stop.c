/*
 * graceful_stop.c - a service that stops on SIGTERM or SIGINT with a
 * savepoint, and goes on from it at its next start.
 *
 *   graceful_stop [-k N] [-r SAVEPOINT] DIR
 *
 * It counts page views per page: 100000 views of 10 pages (10000 each)
 * arrive at a steady rate (a generator that pauses now and then, as a live
 * source would), are keyed by page and counted by a rolling sum, with a
 * checkpoint every 100 ms into DIR/checkpoints. A sink at parallelism 1
 * keeps the latest count of each page, which the program prints at the
 * end.
 *
 * Shows:
 *  - signal handlers (sigaction) for SIGTERM and SIGINT that call
 *    rill_env_request_stop, which is async-signal-safe: the first signal
 *    asks for a stop with a savepoint (RILL_STOP_SAVEPOINT), a second one
 *    for a stop at once. The handler asks the environment, so it needs no
 *    job handle, and a signal that comes before the job has started stops
 *    it too;
 *  - rill_env_set_savepoint_dir: the savepoint goes into a new
 *    DIR/savepoints/savepoint-<n>; the job ends with RILL_ECANCELED and
 *    rill_job_stop_savepoint names the savepoint, which the program
 *    prints ("savepoint: <path>");
 *  - rill_env_set_restore: with -r SAVEPOINT, the job starts from that
 *    savepoint and goes on where the stopped one was; the counts at the
 *    end are exactly those of a run that was never stopped.
 *
 * -k N makes the program send itself SIGTERM once the views up to N have
 * been generated (as `kill -TERM <pid>` would), so that it stops at a
 * known point.
 */
#define _POSIX_C_SOURCE 200809L /* sigaction, kill */

#include <rill.h>

#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define VIEWS 100000
#define PAGES 10
#define PAUSE_EVERY 50 /* views between two pauses of 1 ms, per subtask */

typedef struct view {
    int64_t page;  /* the key */
    int64_t count; /* 1 per view; the page's count after the rolling sum */
} view;

static rill_env *env;           /* for the signal handler */
static atomic_int signals;      /* signals received so far */
static atomic_ullong kill_at;   /* -k: the view after which to send SIGTERM */
static int64_t counts[PAGES];   /* latest count per page (one sink subtask) */

/* ---------------------------------------------------------------------
 * Signals
 * --------------------------------------------------------------------- */

/* Only async-signal-safe calls here: rill_env_request_stop is one. */
static void on_signal(int sig)
{
    (void)sig;
    int first = atomic_fetch_add(&signals, 1) == 0;
    rill_env_request_stop(env, first ? RILL_STOP_SAVEPOINT : 0);
}

static void handle_signals(void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* ---------------------------------------------------------------------
 * The job
 * --------------------------------------------------------------------- */

static int make_view(rill_ctx *ctx, uint64_t i, void *user_data)
{
    (void)user_data;
    if (i % PAUSE_EVERY == 0) {
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    if (i + 1 == atomic_load(&kill_at))
        kill(getpid(), SIGTERM);
    view v = {(int64_t)(i % PAGES), 1};
    return rill_emit(ctx, &v, sizeof v);
}

static int keep_count(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    (void)ctx;
    (void)user_data;
    view v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    if (v.page < 0 || v.page >= PAGES)
        return -1;
    counts[v.page] = v.count;
    return 0;
}

static int build(const char *dir, const char *restore)
{
    char path[4096];
    int rc = rill_env_set_parallelism(env, 2);
    snprintf(path, sizeof path, "%s/checkpoints", dir);
    if (!rc)
        rc = rill_env_enable_checkpointing(env, 100, path, RILL_EXACTLY_ONCE);
    snprintf(path, sizeof path, "%s/savepoints", dir);
    if (!rc)
        rc = rill_env_set_savepoint_dir(env, path);
    snprintf(path, sizeof path, "%s/state", dir);
    if (!rc)
        rc = rill_env_set_state_dir(env, path);
    if (!rc && restore)
        rc = rill_env_set_restore(env, restore, 0);
    if (rc)
        return rc;
    rill_stream *s = rill_generator(env, "views", VIEWS, make_view, NULL);
    s = rill_key_by_bytes(s, offsetof(view, page), sizeof(int64_t));
    s = rill_aggregate(s, "counts", RILL_AGG_SUM, offsetof(view, count), RILL_FIELD_I64);
    s = rill_sink(s, "latest", keep_count, NULL);
    rill_stream_set_parallelism(s, 1);
    return rill_env_validate(env);
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [-k N] [-r SAVEPOINT] DIR\n", prog);
    return 2;
}

int main(int argc, char **argv)
{
    const char *restore = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "k:r:")) != -1) {
        if (opt == 'k')
            atomic_store(&kill_at, strtoull(optarg, NULL, 10));
        else if (opt == 'r')
            restore = optarg;
        else
            return usage(argv[0]);
    }
    if (optind != argc - 1)
        return usage(argv[0]);

    env = rill_env_new();
    if (!env) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    /* From here on, SIGTERM and SIGINT stop the job (also before it runs). */
    handle_signals(on_signal);
    int rc = build(argv[optind], restore);
    rill_job *job = NULL;
    if (rc == RILL_OK)
        rc = rill_job_start(&job, env, "page views");
    if (rc != RILL_OK) {
        fprintf(stderr, "graceful_stop: %s\n", rill_env_errmsg(env));
    } else {
        rc = rill_job_wait(job);
        const char *savepoint = rill_job_stop_savepoint(job);
        if (savepoint) {
            printf("savepoint: %s\n", savepoint);
            rc = RILL_OK;
        } else if (rc == RILL_OK) {
            int64_t total = 0;
            for (int p = 0; p < PAGES; p++) {
                printf("page %d: %lld views\n", p, (long long)counts[p]);
                total += counts[p];
            }
            printf("total: %lld views\n", (long long)total);
        } else {
            fprintf(stderr, "graceful_stop: %s\n", rill_job_errmsg(job));
        }
        rill_job_free(job);
    }
    /* No handler may use env once it is freed. */
    handle_signals(SIG_DFL);
    rill_env_free(env);
    return rc == RILL_OK ? 0 : 1;
}
