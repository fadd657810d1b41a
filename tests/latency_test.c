/* latency_test.c - records, watermarks and lines reach their consumer
 * while the job runs, whatever the rate of the source: buffers leave on
 * their timeout, periodic watermarks on their interval, the file source
 * passes on each line of a pipe as it comes and stops when the job is
 * canceled, the print sink flushes its stream.
 *
 * Each test waits for something to happen while the job runs, and gives up
 * after CAP_MS (then it fails): none of them measures how long it took. */
#define TEST_NAME "latency"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"

/* How long a test waits for what it expects before it fails. */
#define CAP_MS 10000
/* How long one step of a slow source blocks. */
#define STEP_MS 400

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a beacon: one thread counts arrivals, another waits for them ------ */

typedef struct beacon {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int seen;
} beacon;

static void beacon_init(beacon *b)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, &a);
    pthread_condattr_destroy(&a);
    b->seen = 0;
}

static void beacon_free(beacon *b)
{
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
}

static void beacon_signal(beacon *b)
{
    pthread_mutex_lock(&b->mu);
    b->seen++;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Wait until b has seen at least want arrivals, at most ms: 1 if it has. */
static int beacon_wait(beacon *b, int want, int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&b->mu);
    while (b->seen < want && pthread_cond_timedwait(&b->cv, &b->mu, &until) == 0)
        ;
    int ok = b->seen >= want;
    pthread_mutex_unlock(&b->mu);
    return ok;
}

static int signal_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    beacon_signal(ud);
    return 0;
}

/* ---- a slow source: one record, then steps that block ------------------ */

/* Emits one record (7, timestamp 1000), then returns RILL_SOURCE_MORE
 * from steps that each block up to STEP_MS, until the beacon b has seen an
 * arrival (then it ends) or CAP_MS passed (then it gives up). */
typedef struct slow_source {
    beacon *b;
    int emitted;
    int gave_up;
    int64_t since;
} slow_source;

static int emit_then_wait(rill_ctx *ctx, void *ud)
{
    slow_source *s = ud;
    if (!s->emitted) {
        uint64_t v = 7;
        s->emitted = 1;
        s->since = mono_ms();
        return rill_emit_ts(ctx, &v, sizeof v, 1000) ? -1 : RILL_SOURCE_MORE;
    }
    if (beacon_wait(s->b, 1, STEP_MS))
        return RILL_SOURCE_END;
    if (mono_ms() - s->since > CAP_MS) {
        s->gave_up = 1;
        return RILL_SOURCE_END;
    }
    return RILL_SOURCE_MORE;
}

/* The slow source at parallelism 1, waiting on b. */
static rill_stream *slow_stream(rill_env *env, slow_source *s, beacon *b)
{
    *s = (slow_source){b, 0, 0, 0};
    return rill_stream_set_parallelism(rill_source(env, "slow", emit_then_wait, s), 1);
}

/* ---- buffer timeout ------------------------------------------------------ */

static const struct {
    const char *name;
    int64_t timeout; /* buffer timeout, ms */
    int keyed;       /* key_by, else rebalance */
} slow_cases[] = {
    {"1 ms, rebalance", 1, 0},
    {"20 ms, key_by", 20, 1},
    {"100 ms (the default), rebalance", 100, 0},
    {"1000 ms, key_by", 1000, 1},
};

/* A record in a partly filled buffer leaves on the buffer timeout while
 * its source is still running (blocking in each step), not at its end. */
Test(buffer_timeout, partly_filled_buffer_leaves_while_a_slow_source_runs)
{
    for (size_t i = 0; i < sizeof slow_cases / sizeof slow_cases[0]; i++) {
        rill_env *env = new_env(2);
        cr_assert_eq(rill_env_set_buffer_timeout(env, slow_cases[i].timeout), RILL_OK);
        beacon seen;
        beacon_init(&seen);
        slow_source src;
        rill_stream *s = slow_stream(env, &src, &seen);
        s = slow_cases[i].keyed ? rill_key_by_bytes(s, 0, 8) : rill_rebalance(s);
        cr_assert_not_null(rill_sink(s, "seen", signal_sink, &seen));
        run_ok(env);
        cr_assert_eq(src.gave_up, 0, "%s: the record stayed in its buffer for %d ms",
                     slow_cases[i].name, CAP_MS);
        cr_assert_eq(seen.seen, 1, "%s", slow_cases[i].name);
        beacon_free(&seen);
        rill_env_free(env);
    }
}

/* ---- periodic watermarks ------------------------------------------------- */

/* An event-time timer at the record's timestamp - 1 (the first periodic
 * watermark after it, with no out-of-orderness allowed) signals the
 * beacon when it fires. */
static int register_timer(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    return rill_timer_register(ctx, RILL_EVENT_TIME, rill_ctx_timestamp(ctx) - 1);
}

static int timer_signals(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)ctx;
    (void)ts;
    (void)domain;
    beacon_signal(ud);
    return 0;
}

/* A periodic watermark goes out on its interval while the source still
 * runs (blocking in each step), and fires an event-time timer downstream. */
Test(periodic_watermark, emitted_while_a_slow_source_runs)
{
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_set_watermark_interval(env, 10), RILL_OK);
    cr_assert_eq(rill_env_set_buffer_timeout(env, 10), RILL_OK);
    beacon fired;
    beacon_init(&fired);
    slow_source src;
    rill_stream *s = rill_assign_timestamps(slow_stream(env, &src, &fired), "ts", NULL, 0, NULL);
    s = rill_process(rill_key_by_bytes(s, 0, 8), "timer", register_timer, timer_signals, &fired);
    cr_assert_not_null(rill_sink(s, "end", signal_sink, &fired));
    run_ok(env);
    cr_assert_eq(src.gave_up, 0, "no watermark reached the timer in %d ms", CAP_MS);
    cr_assert_eq(fired.seen, 1);
    beacon_free(&fired);
    rill_env_free(env);
}

/* ---- the file source on pipes and FIFOs ---------------------------------- */

#define MAX_LINES 8

/* Lines in arrival order; each arrival signals the beacon. */
typedef struct lines {
    beacon b;
    pthread_mutex_t mu;
    char text[MAX_LINES][32];
    int n;
} lines;

static int keep_line(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    lines *l = ud;
    pthread_mutex_lock(&l->mu);
    if (l->n < MAX_LINES && len < sizeof l->text[0]) {
        memcpy(l->text[l->n], rec, len);
        l->text[l->n][len] = '\0';
    }
    l->n++;
    pthread_mutex_unlock(&l->mu);
    beacon_signal(&l->b);
    return 0;
}

/* Writes "line 0".."line 4", each after the sink got the one before (at
 * most CAP_MS each), then "tail" with no line ending, then closes. */
typedef struct feeder {
    lines *l;
    const char *fifo; /* open this for writing, or */
    int fd;           /* write here */
    int gave_up;      /* a line did not reach the sink in CAP_MS */
} feeder;

#define FED_LINES 5

static void *feed(void *arg)
{
    feeder *f = arg;
    int fd = f->fifo ? open(f->fifo, O_WRONLY) : f->fd;
    if (fd < 0)
        return NULL;
    for (int i = 0; i < FED_LINES && !f->gave_up; i++) {
        char line[32];
        int n = snprintf(line, sizeof line, "line %d\n", i);
        if (write(fd, line, (size_t)n) != n || !beacon_wait(&f->l->b, i + 1, CAP_MS))
            f->gave_up = 1;
    }
    if (write(fd, "tail", 4) != 4)
        f->gave_up = 1;
    close(fd);
    return NULL;
}

static const char *const stream_cases[] = {"a FIFO", "standard input, a pipe"};

/* Each line of a pipe or FIFO reaches the sink (across a channel) as it
 * comes, while the writer keeps the pipe open; the last line without a
 * line ending comes at the end. */
Test(file_source_stream, each_line_reaches_the_sink_as_it_comes, .init = mk_tmp, .fini = rm_tmp)
{
    for (int c = 0; c < 2; c++) {
        char fifo[128];
        feeder f = {NULL, NULL, -1, 0};
        const char *path = "-";
        if (c == 0) {
            tmp_path(fifo, sizeof fifo, "fifo");
            cr_assert_eq(mkfifo(fifo, 0600), 0);
            path = f.fifo = fifo;
        } else {
            int p[2];
            cr_assert_eq(pipe(p), 0);
            cr_assert_neq(dup2(p[0], 0), -1);
            close(p[0]);
            f.fd = p[1];
        }
        lines l;
        beacon_init(&l.b);
        pthread_mutex_init(&l.mu, NULL);
        l.n = 0;
        f.l = &l;
        rill_env *env = new_env(1);
        rill_stream *s = rill_rebalance(rill_file_source(env, "lines", path));
        cr_assert_not_null(rill_sink(s, "kept", keep_line, &l));
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, feed, &f), 0);
        run_ok(env);
        pthread_join(t, NULL);
        cr_assert_eq(f.gave_up, 0, "%s: a line did not reach the sink in %d ms", stream_cases[c],
                     CAP_MS);
        cr_assert_eq(l.n, FED_LINES + 1, "%s", stream_cases[c]);
        for (int i = 0; i < FED_LINES; i++) {
            char want[32];
            snprintf(want, sizeof want, "line %d", i);
            cr_assert_str_eq(l.text[i], want, "%s", stream_cases[c]);
        }
        cr_assert_str_eq(l.text[FED_LINES], "tail", "%s", stream_cases[c]);
        rill_env_free(env);
        pthread_mutex_destroy(&l.mu);
        beacon_free(&l.b);
    }
}

/* The source's open hook: it is about to read. */
static beacon source_opened;

static int signal_open(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    (void)ud;
    beacon_signal(&source_opened);
    return 0;
}

/* The job's status once it is no longer running, or RILL_JOB_RUNNING
 * after CAP_MS. */
static int wait_status(rill_job *job)
{
    int64_t until = mono_ms() + CAP_MS;
    int s;
    while ((s = rill_job_status(job)) == RILL_JOB_RUNNING && mono_ms() < until)
        sleep_ms(5);
    return s;
}

static const char *const quiet_cases[] = {
    "standard input, an empty pipe",
    "a FIFO nobody opened for writing",
    "a FIFO open for writing, with nothing written",
};

/* rill_job_cancel stops a file source that waits for input that does not
 * come: the job ends canceled. */
Test(file_source_stream, cancel_stops_a_source_waiting_for_input, .init = mk_tmp, .fini = rm_tmp)
{
    for (int c = 0; c < 3; c++) {
        char fifo[128];
        const char *path = fifo;
        int keep = -1; /* the write end the test holds open */
        tmp_path(fifo, sizeof fifo, c == 1 ? "fifo1" : "fifo2");
        if (c == 0) {
            int p[2];
            cr_assert_eq(pipe(p), 0);
            cr_assert_neq(dup2(p[0], 0), -1);
            close(p[0]);
            keep = p[1];
            path = "-";
        } else {
            cr_assert_eq(mkfifo(fifo, 0600), 0);
            if (c == 2)
                cr_assert_geq(keep = open(fifo, O_RDWR), 0);
        }
        beacon_init(&source_opened);
        rill_env *env = new_env(1);
        rill_stream *s = rill_file_source(env, "quiet", path);
        cr_assert_not_null(rill_stream_set_lifecycle(s, signal_open, NULL));
        cr_assert_not_null(rill_sink(rill_rebalance(s), "none", signal_sink, &source_opened));
        rill_job *job = NULL;
        cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
        cr_assert(beacon_wait(&source_opened, 1, CAP_MS), "%s: the source did not open",
                  quiet_cases[c]);
        cr_assert_eq(rill_job_cancel(job), RILL_OK);
        cr_assert_eq(wait_status(job), RILL_JOB_CANCELED, "%s: still running %d ms after cancel",
                     quiet_cases[c], CAP_MS);
        cr_assert_eq(rill_job_wait(job), RILL_ECANCELED, "%s", quiet_cases[c]);
        cr_assert_eq(source_opened.seen, 1, "%s: no line was read", quiet_cases[c]);
        rill_job_free(job);
        rill_env_free(env);
        beacon_free(&source_opened);
        if (keep >= 0)
            close(keep);
    }
}

/* ---- the print sink into a pipe ------------------------------------------ */

/* Reads the pipe until its end; each whole line read signals the beacon. */
typedef struct pipe_reader {
    beacon b;
    int fd;
    char text[256];
    size_t len;
} pipe_reader;

static void *read_pipe(void *arg)
{
    pipe_reader *r = arg;
    for (;;) {
        ssize_t got = read(r->fd, r->text + r->len, sizeof r->text - 1 - r->len);
        if (got <= 0)
            break;
        for (ssize_t i = 0; i < got; i++)
            if (r->text[r->len + (size_t)i] == '\n')
                beacon_signal(&r->b);
        r->len += (size_t)got;
        if (r->len == sizeof r->text - 1)
            break;
    }
    r->text[r->len] = '\0';
    return NULL;
}

static int fmt_u64(const void *rec, size_t len, char *buf, size_t cap, void *ud)
{
    (void)ud;
    uint64_t v;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    return snprintf(buf, cap, "%llu", (unsigned long long)v);
}

static const struct {
    const char *name;
    int64_t timeout; /* buffer timeout, ms */
    int rebalance;   /* the sink reads a channel, else it is chained to the source */
} print_cases[] = {
    {"chained to its source", 100, 0},
    {"after a rebalance", 100, 1},
    {"buffer timeout 0, after a rebalance", 0, 1},
    {"buffer timeout 0, chained to its source", 0, 0},
};

/* Standard output is a block-buffered pipe: a line printed while the job
 * runs reaches the pipe's reader before the job ends. */
Test(print_stream, line_reaches_a_pipe_while_the_job_runs)
{
    for (size_t i = 0; i < sizeof print_cases / sizeof print_cases[0]; i++) {
        int p[2];
        cr_assert_eq(pipe(p), 0);
        fflush(stdout);
        int saved = dup(1);
        cr_assert_geq(saved, 0);
        cr_assert_neq(dup2(p[1], 1), -1);
        close(p[1]);
        cr_assert_eq(setvbuf(stdout, NULL, _IOFBF, 1 << 16), 0);
        pipe_reader r = {.fd = p[0]};
        beacon_init(&r.b);
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, read_pipe, &r), 0);

        rill_env *env = new_env(1);
        cr_assert_eq(rill_env_set_buffer_timeout(env, print_cases[i].timeout), RILL_OK);
        slow_source src;
        rill_stream *s = slow_stream(env, &src, &r.b);
        if (print_cases[i].rebalance)
            s = rill_rebalance(s);
        cr_assert_not_null(rill_sink_print(s, "shown", RILL_STDOUT, fmt_u64, NULL));
        int rc = rill_env_execute(env, NULL);

        fflush(stdout);
        cr_assert_neq(dup2(saved, 1), -1);
        close(saved);
        pthread_join(t, NULL);
        close(p[0]);
        cr_assert_eq(rc, RILL_OK, "%s: %s", print_cases[i].name, rill_env_errmsg(env));
        cr_assert_eq(src.gave_up, 0, "%s: the line did not reach the pipe in %d ms",
                     print_cases[i].name, CAP_MS);
        cr_assert_str_eq(r.text, "7\n", "%s", print_cases[i].name);
        beacon_free(&r.b);
        rill_env_free(env);
    }
}

/* Checkpoints complete while a file source waits for the next line of a
 * pipe (its barrier does not wait for input). */
Test(file_source_stream, checkpoints_complete_while_the_source_waits, .init = mk_tmp,
     .fini = rm_tmp)
{
    char state[128], ck[128];
    tmp_path(state, sizeof state, "state");
    tmp_path(ck, sizeof ck, "ck");
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_neq(dup2(p[0], 0), -1);
    close(p[0]);
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_set_state_dir(env, state), RILL_OK);
    cr_assert_eq(rill_env_enable_checkpointing(env, 20, ck, RILL_EXACTLY_ONCE), RILL_OK);
    beacon none;
    beacon_init(&none);
    rill_stream *s = rill_file_source(env, "quiet", "-");
    cr_assert_not_null(rill_sink(rill_rebalance(s), "none", signal_sink, &none));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    int64_t until = mono_ms() + CAP_MS;
    while (rill_job_last_checkpoint(job) < 2 && mono_ms() < until)
        sleep_ms(5);
    cr_assert_geq(rill_job_last_checkpoint(job), 2, "no checkpoint in %d ms", CAP_MS);
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(wait_status(job), RILL_JOB_CANCELED);
    cr_assert_eq(none.seen, 0);
    rill_job_free(job);
    rill_env_free(env);
    beacon_free(&none);
    close(p[1]);
}
