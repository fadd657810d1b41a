/* stop_test.c - stop requests (rill_job_request_stop, rill_env_request_stop)
 * made from signal handlers: a stop with a savepoint, which a second job
 * restores and finishes with every record counted exactly once; a stop
 * without one; requests before the job starts, twice, after its end; and
 * the configuration errors.
 *
 * The job: a generator of N records {key = i % KEYS, 1} at parallelism 2
 * (slowed down in the job that is stopped), key_by(key), a rolling sum of
 * the 1s (uid "counts": the count of the key so far), and the exactly-once
 * file sink writing "key count" lines. Across the stopped job and the one
 * that restores its savepoint, each key's counts 1..N/KEYS must be in the
 * visible files exactly once: no record lost, none counted twice.
 *
 * The signal tests run the stopped job in a child process that the parent
 * sends SIGTERM at a time chosen from a seed; the others send a signal to
 * their own process, whose handler runs on any of its threads. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_NAME "stop"
#include "common.h"

#define KEYS 16
#define N_RECORDS 96000ull /* a multiple of KEYS */
#define SLOW_EVERY 50       /* stopped jobs: sleep 1 ms every this many records */

typedef struct item {
    uint64_t key;
    uint64_t count;
} item;

static atomic_int g_slow;         /* the generator sleeps now and then */
static atomic_ullong g_made;      /* records generated in this process */
static atomic_int g_src_closed;   /* generator subtasks closed */
static atomic_int g_hook_in;      /* the snapshot hook of "counts" runs */
static atomic_int g_block_hook;   /* ... and waits for a closed generator */
static _Atomic(rill_env *) g_env; /* for the signal handlers */
static _Atomic(rill_job *) g_job;
static atomic_int g_flags; /* flags the handlers pass */
static atomic_ullong g_ask_at = UINT64_MAX; /* the generator asks g_env to stop here */

static int gen(rill_ctx *ctx, uint64_t i, void *ud)
{
    (void)ud;
    if (atomic_load(&g_slow) && i % SLOW_EVERY == 0)
        sleep_ms(1);
    atomic_fetch_add(&g_made, 1);
    if (i == atomic_load(&g_ask_at))
        rill_env_request_stop(atomic_load(&g_env), RILL_STOP_SAVEPOINT);
    item it = {i % KEYS, 1};
    return rill_emit(ctx, &it, sizeof it);
}

static int gen_close(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    (void)ud;
    atomic_fetch_add(&g_src_closed, 1);
    return 0;
}

/* Snapshot hook of "counts": when g_block_hook is set, wait (10 s at
 * most) until a generator subtask closed, which it does once the job is
 * canceled. */
static int counts_snapshot(rill_ctx *ctx, int64_t id, void *ud)
{
    (void)ctx;
    (void)id;
    (void)ud;
    atomic_store(&g_hook_in, 1);
    for (int i = 0; atomic_load(&g_block_hook) && !atomic_load(&g_src_closed) && i < 10000; i++)
        sleep_ms(1);
    return 0;
}

static int fmt_item(const void *r, size_t len, char *buf, size_t cap, void *ud)
{
    (void)ud;
    item it;
    if (len != sizeof it)
        return -1;
    memcpy(&it, r, sizeof it);
    return snprintf(buf, cap, "%llu %llu", (unsigned long long)it.key,
                    (unsigned long long)it.count);
}

/* ---- building and checking ---------------------------------------------- */

typedef struct cfg {
    const char *name;    /* the case, in messages and under tmpdir */
    uint64_t n;          /* records */
    int checkpoints;     /* periodic checkpoints every 20 ms */
    int sp_dir;          /* 1: savepoints under <case>/sp; 2: under a regular file */
    int restart;         /* a fixed-delay restart strategy (delay_ms) */
    const char *restore; /* snapshot to start from, or NULL */
    int hooks;           /* the snapshot hook on "counts", the close hook on the source */
} cfg;

static void case_path(char *out, size_t cap, const cfg *c, const char *what)
{
    snprintf(out, cap, "%s/%s/%s", tmpdir, c->name, what);
}

/* The job of c, or NULL with a message on stderr (also used by children,
 * which must not assert). */
static rill_env *build(const cfg *c)
{
    char state[300], ck[300], sp[300], out[300];
    case_path(state, sizeof state, c, "state");
    case_path(ck, sizeof ck, c, "ck");
    case_path(sp, sizeof sp, c, c->sp_dir == 2 ? "file/sp" : "sp");
    case_path(out, sizeof out, c, "out");
    rill_env *env = rill_env_new();
    if (!env)
        return NULL;
    int rc = rill_env_set_parallelism(env, 2);
    if (!rc)
        rc = rill_env_set_state_dir(env, state);
    if (!rc && c->checkpoints)
        rc = rill_env_enable_checkpointing(env, 20, ck, RILL_EXACTLY_ONCE);
    if (!rc && c->sp_dir)
        rc = rill_env_set_savepoint_dir(env, sp);
    if (!rc && c->restart)
        rc = rill_env_set_restart_strategy(env, RILL_RESTART_FIXED_DELAY, 3, c->restart, 0);
    if (!rc && c->restore)
        rc = rill_env_set_restore(env, c->restore, 0);
    rill_stream *s = rill_generator(env, "items", c->n, gen, NULL);
    if (c->hooks)
        s = rill_stream_set_lifecycle(s, NULL, gen_close);
    s = rill_key_by_bytes(s, offsetof(item, key), 8);
    s = rill_aggregate(s, "counts", RILL_AGG_SUM, offsetof(item, count), RILL_FIELD_U64);
    if (c->hooks)
        s = rill_stream_set_checkpoint_hooks(s, counts_snapshot, NULL);
    rill_sink_file_exactly_once(s, "out", out, fmt_item, NULL);
    if (!rc)
        rc = rill_env_validate(env);
    if (rc) {
        fprintf(stderr, "%s: cannot build the job: %s\n", c->name, rill_env_errmsg(env));
        rill_env_free(env);
        return NULL;
    }
    return env;
}

static rill_env *build_ok(const cfg *c)
{
    char d[300];
    snprintf(d, sizeof d, "%s/%s", tmpdir, c->name);
    mkdir(d, 0777);
    rill_env *env = build(c);
    cr_assert_not_null(env, "%s: the job cannot be built", c->name);
    return env;
}

/* Each key's counts 1..n/KEYS are in the visible files of the case
 * exactly once, and nothing else is. */
static void check_counts(const cfg *c, uint64_t n)
{
    char dir[300];
    case_path(dir, sizeof dir, c, "out");
    uint64_t per = n / KEYS;
    unsigned char *seen = calloc(KEYS * per, 1);
    cr_assert_not_null(seen);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s: no output directory %s", c->name, dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue; /* "." "..", and pending files */
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s: %s", c->name, path);
        unsigned long long k, v;
        while (fscanf(f, "%llu %llu", &k, &v) == 2) {
            cr_assert(k < KEYS && v >= 1 && v <= per, "%s: line '%llu %llu' in %s", c->name, k,
                      v, path);
            cr_assert_eq(seen[k * per + v - 1], 0, "%s: key %llu count %llu twice", c->name, k,
                         v);
            seen[k * per + v - 1] = 1;
        }
        fclose(f);
    }
    closedir(d);
    for (uint64_t k = 0; k < KEYS; k++)
        for (uint64_t v = 1; v <= per; v++)
            cr_assert_eq(seen[k * per + v - 1], 1, "%s: key %llu count %llu is missing", c->name,
                         (unsigned long long)k, (unsigned long long)v);
    free(seen);
}

/* A second job, of everything, restoring savepoint path; then the counts
 * of both jobs are exact. */
static void restore_and_check(const cfg *c, const char *path)
{
    cfg again = *c;
    again.restore = path;
    again.restart = 0;
    again.hooks = 0;
    atomic_store(&g_slow, 0);
    rill_env *env = build_ok(&again);
    int rc = rill_env_execute(env, "restored");
    cr_assert_eq(rc, RILL_OK, "%s: restored job: %s (%s)", c->name, rill_err_name(rc),
                 rill_env_errmsg(env));
    rill_env_free(env);
    check_counts(c, c->n);
}

static int exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* <case>/sp/savepoint-<k>, and the same with "/_metadata" */
static void savepoint_path(char *out, size_t cap, const cfg *c, int k, int meta)
{
    snprintf(out, cap, "%s/%s/sp/savepoint-%d%s", tmpdir, c->name, k, meta ? "/_metadata" : "");
}

/* Wait (10 s at most) until the job generated some records. */
static void wait_for_records(rill_job *job, unsigned long long n)
{
    for (int i = 0; atomic_load(&g_made) < n && i < 10000; i++) {
        cr_assert_eq(rill_job_status(job), RILL_JOB_RUNNING);
        sleep_ms(1);
    }
    cr_assert_geq(atomic_load(&g_made), n, "the job generated nothing within 10 s");
}

/* ---- signal handlers ------------------------------------------------------ */

static void ask_job(int sig)
{
    (void)sig;
    rill_job *job = atomic_load(&g_job);
    if (job)
        rill_job_request_stop(job, atomic_load(&g_flags));
}

static void ask_env(int sig)
{
    (void)sig;
    rill_env *env = atomic_load(&g_env);
    if (env)
        rill_env_request_stop(env, atomic_load(&g_flags));
}

static void on_signal(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(sig, &sa, NULL);
}

TestSuite(stop, .init = mk_tmp, .fini = rm_tmp, .timeout = 120);

/* ---- SIGTERM to a child process ------------------------------------------ */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

enum { VIA_ENV, VIA_JOB };

/* The child: runs the slowed-down job, stopped by SIGTERM with a
 * savepoint. Tells the parent it is ready (the handler is in place) on
 * fd; exits 0 when the job was stopped with a savepoint as documented, 2
 * when it finished first, 3 otherwise. */
static void child(const cfg *c, int via, int fd)
{
    atomic_store(&g_slow, 1);
    atomic_store(&g_flags, RILL_STOP_SAVEPOINT);
    rill_env *env = build(c);
    if (!env)
        _exit(3);
    on_signal(SIGTERM, via == VIA_ENV ? ask_env : ask_job);
    int rc, ok;
    if (via == VIA_ENV) {
        /* The signal may come before the job starts: it then stops at once. */
        atomic_store(&g_env, env);
        if (write(fd, "r", 1) != 1)
            _exit(3);
        rc = rill_env_execute(env, "stopped");
        const char *msg = rill_env_errmsg(env);
        ok = rc == RILL_ECANCELED && strstr(msg, "was stopped with a savepoint in '") != NULL;
        fprintf(stderr, "child: %s: %s\n", rill_err_name(rc), msg);
    } else {
        rill_job *job;
        if (rill_job_start(&job, env, "stopped") != RILL_OK)
            _exit(3);
        atomic_store(&g_job, job);
        if (write(fd, "r", 1) != 1)
            _exit(3);
        rc = rill_job_wait(job);
        const char *msg = rill_job_errmsg(job), *sp = rill_job_stop_savepoint(job);
        ok = rc == RILL_ECANCELED && rill_job_status(job) == RILL_JOB_CANCELED && sp &&
             strstr(msg, sp) != NULL;
        fprintf(stderr, "child: %s: %s\n", rill_err_name(rc), msg);
        atomic_store(&g_job, NULL);
        rill_job_free(job);
    }
    rill_env_free(env);
    _exit(ok ? 0 : rc == RILL_OK ? 2 : 3);
}

static void sigterm_case(const char *name, int via, uint64_t seed)
{
    cfg c = {name, N_RECORDS, 1, 1, 0, NULL, 0};
    char d[300];
    snprintf(d, sizeof d, "%s/%s", tmpdir, name);
    cr_assert_eq(mkdir(d, 0777), 0);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        child(&c, via, p[1]);
    }
    close(p[1]);
    char b;
    cr_assert_eq(read(p[0], &b, 1), 1, "%s: the child did not start", name);
    close(p[0]);
    uint64_t s = seed;
    long delay = seed ? (long)(splitmix(&s) % 301) : 0;
    sleep_ms(delay);
    kill(pid, SIGTERM);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "%s: SIGTERM %ld ms after the start: the child %s %d (2: it finished first, 3: "
              "another end)",
              name, delay, WIFEXITED(st) ? "exited with" : "was killed by signal",
              WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
    char sp[400], meta[400], next[400];
    savepoint_path(sp, sizeof sp, &c, 1, 0);
    savepoint_path(meta, sizeof meta, &c, 1, 1);
    savepoint_path(next, sizeof next, &c, 2, 0);
    cr_assert(exists(meta), "%s: no complete savepoint %s", name, sp);
    cr_assert(!exists(next), "%s: more than one savepoint", name);
    restore_and_check(&c, sp);
}

/* SIGTERM at random points (seed 0: at once, maybe before the job's
 * threads run), to a handler calling rill_env_request_stop around
 * rill_env_execute, or rill_job_request_stop around rill_job_start and
 * rill_job_wait. */
static const struct {
    const char *name;
    int via;
    uint64_t seed;
} sigterm_cases[] = {
    {"env-at-once", VIA_ENV, 0}, {"env-seed-1", VIA_ENV, 1}, {"env-seed-2", VIA_ENV, 2},
    {"env-seed-3", VIA_ENV, 3},  {"job-at-once", VIA_JOB, 0}, {"job-seed-4", VIA_JOB, 4},
    {"job-seed-5", VIA_JOB, 5},  {"job-seed-6", VIA_JOB, 6},
};

Test(stop, sigterm_stops_with_a_savepoint_that_a_second_job_finishes_exactly_once)
{
    for (size_t i = 0; i < sizeof sigterm_cases / sizeof sigterm_cases[0]; i++)
        sigterm_case(sigterm_cases[i].name, sigterm_cases[i].via, sigterm_cases[i].seed);
}

/* ---- in this process -------------------------------------------------------- */

/* Start the slowed-down job of c with the handler on SIGUSR1. */
static rill_job *start_slow(rill_env *env, int flags)
{
    atomic_store(&g_slow, 1);
    atomic_store(&g_flags, flags);
    on_signal(SIGUSR1, ask_job);
    rill_job *job;
    int rc = rill_job_start(&job, env, "stopped");
    cr_assert_eq(rc, RILL_OK, "start: %s", rill_env_errmsg(env));
    atomic_store(&g_job, job);
    return job;
}

static void end_job(rill_job *job)
{
    atomic_store(&g_job, NULL);
    rill_job_free(job);
}

/* The job of env ends canceled, as by rill_job_cancel, and nothing is at
 * path. Frees both. */
static void expect_canceled(rill_job *job, rill_env *env, const char *path)
{
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    cr_assert_str_eq(rill_job_errmsg(job), "job 'stopped' was canceled");
    cr_assert_null(rill_job_stop_savepoint(job));
    cr_assert(!exists(path), "%s exists", path);
    end_job(job);
    rill_env_free(env);
}

/* A stop with a savepoint, with and without periodic checkpoints and a
 * restart strategy: the job ends canceled, names its savepoint, is not
 * restarted, and a second job restoring it finishes the count. */
static const cfg savepoint_cases[] = {
    {"checkpoints", N_RECORDS, 1, 1, 0, NULL, 0},
    {"no-checkpoints", N_RECORDS, 0, 1, 0, NULL, 0},
    {"restarts", N_RECORDS, 1, 1, 10, NULL, 0},
    {"restarts-no-checkpoints", N_RECORDS, 0, 1, 10, NULL, 0},
};

Test(stop, a_signal_stops_with_a_savepoint_that_a_second_job_finishes_exactly_once)
{
    for (size_t i = 0; i < sizeof savepoint_cases / sizeof savepoint_cases[0]; i++) {
        const cfg *c = &savepoint_cases[i];
        atomic_store(&g_made, 0);
        rill_env *env = build_ok(c);
        rill_job *job = start_slow(env, RILL_STOP_SAVEPOINT);
        wait_for_records(job, 5000);
        cr_assert_eq(kill(getpid(), SIGUSR1), 0);
        int rc = rill_job_wait(job);
        cr_assert_eq(rc, RILL_ECANCELED, "%s: %s (%s)", c->name, rill_err_name(rc),
                     rill_job_errmsg(job));
        cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED, "%s", c->name);
        cr_assert_eq(rill_job_restarts(job), 0, "%s", c->name);
        char sp[400], meta[400], want[500];
        savepoint_path(sp, sizeof sp, c, 1, 0);
        savepoint_path(meta, sizeof meta, c, 1, 1);
        cr_assert_not_null(rill_job_stop_savepoint(job), "%s", c->name);
        cr_assert_str_eq(rill_job_stop_savepoint(job), sp, "%s", c->name);
        cr_assert(exists(meta), "%s: %s is not complete", c->name, sp);
        snprintf(want, sizeof want, "job 'stopped' was stopped with a savepoint in '%s'", sp);
        cr_assert_str_eq(rill_job_errmsg(job), want, "%s", c->name);
        end_job(job);
        rill_env_free(env);
        restore_and_check(c, sp);
    }
}

Test(stop, a_stop_without_savepoint_cancels_the_job)
{
    cfg c = {"cancel", N_RECORDS, 1, 1, 0, NULL, 0};
    rill_env *env = build_ok(&c);
    rill_job *job = start_slow(env, 0);
    wait_for_records(job, 5000);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    char sp[400];
    snprintf(sp, sizeof sp, "%s/%s/sp", tmpdir, c.name);
    expect_canceled(job, env, sp);
}

Test(stop, an_environment_request_made_before_the_job_starts_stops_it_at_once)
{
    cfg c = {"before", N_RECORDS, 1, 1, 0, NULL, 0};
    rill_env *env = build_ok(&c);
    atomic_store(&g_slow, 1);
    atomic_store(&g_env, env);
    atomic_store(&g_flags, RILL_STOP_SAVEPOINT);
    on_signal(SIGUSR1, ask_env);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    cr_assert_eq(rill_env_execute(env, "stopped"), RILL_ECANCELED, "%s", rill_env_errmsg(env));
    char sp[400], want[500];
    savepoint_path(sp, sizeof sp, &c, 1, 0);
    snprintf(want, sizeof want, "job 'stopped' was stopped with a savepoint in '%s'", sp);
    cr_assert_str_eq(rill_env_errmsg(env), want);
    cr_assert_lt(atomic_load(&g_made), N_RECORDS, "the job ran to its end");
    atomic_store(&g_env, NULL);
    rill_env_free(env);
    restore_and_check(&c, sp);
}

Test(stop, a_callback_of_the_job_may_ask_for_the_stop)
{
    cfg c = {"callback", N_RECORDS, 1, 1, 0, NULL, 0};
    rill_env *env = build_ok(&c);
    atomic_store(&g_slow, 1);
    atomic_store(&g_env, env);
    atomic_store(&g_ask_at, 1000);
    cr_assert_eq(rill_env_execute(env, "stopped"), RILL_ECANCELED, "%s", rill_env_errmsg(env));
    char sp[400], want[500];
    savepoint_path(sp, sizeof sp, &c, 1, 0);
    snprintf(want, sizeof want, "job 'stopped' was stopped with a savepoint in '%s'", sp);
    cr_assert_str_eq(rill_env_errmsg(env), want);
    atomic_store(&g_env, NULL);
    atomic_store(&g_ask_at, UINT64_MAX);
    rill_env_free(env);
    restore_and_check(&c, sp);
}

Test(stop, an_environment_request_is_taken_by_one_job_only)
{
    cfg c = {"once", 1000, 0, 1, 0, NULL, 0};
    rill_env *env = build_ok(&c);
    cr_assert_eq(rill_env_request_stop(env, 0), RILL_OK);
    cr_assert_eq(rill_env_execute(env, "first"), RILL_ECANCELED, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_execute(env, "second"), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(stop, a_second_request_takes_no_second_savepoint)
{
    cfg c = {"twice", N_RECORDS, 1, 1, 0, NULL, 0};
    rill_env *env = build_ok(&c);
    rill_job *job = start_slow(env, RILL_STOP_SAVEPOINT);
    wait_for_records(job, 5000);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    cr_assert_eq(rill_job_request_stop(job, RILL_STOP_SAVEPOINT), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED, "%s", rill_job_errmsg(job));
    char one[400], two[400];
    savepoint_path(one, sizeof one, &c, 1, 1);
    savepoint_path(two, sizeof two, &c, 2, 0);
    cr_assert(exists(one));
    cr_assert(!exists(two), "a second savepoint was taken");
    end_job(job);
    rill_env_free(env);
}

Test(stop, a_request_after_the_end_is_refused)
{
    cfg c = {"after", 1024, 1, 1, 0, NULL, 0};
    rill_env *env = build_ok(&c);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "short"), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
    cr_assert_eq(rill_job_request_stop(job, RILL_STOP_SAVEPOINT), RILL_ESTATE);
    cr_assert_eq(rill_job_request_stop(job, 0), RILL_ESTATE);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    cr_assert_str_eq(rill_job_errmsg(job), "");
    cr_assert_null(rill_job_stop_savepoint(job));
    rill_job_free(job);
    rill_env_free(env);
    check_counts(&c, c.n);
}

/* A cancel asked for while the savepoint of an earlier request is being
 * taken (the snapshot hook of "counts" holds it until the canceled
 * generator closed) gives the savepoint up. */
Test(stop, a_request_without_savepoint_cancels_a_stop_with_one_at_once)
{
    cfg c = {"escalate", N_RECORDS, 0, 1, 0, NULL, 1};
    rill_env *env = build_ok(&c);
    atomic_store(&g_block_hook, 1);
    rill_job *job = start_slow(env, RILL_STOP_SAVEPOINT);
    wait_for_records(job, 5000);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    for (int i = 0; !atomic_load(&g_hook_in) && i < 10000; i++)
        sleep_ms(1);
    cr_assert(atomic_load(&g_hook_in), "no savepoint started within 10 s");
    atomic_store(&g_flags, 0);
    cr_assert_eq(kill(getpid(), SIGUSR1), 0);
    char sp[400];
    savepoint_path(sp, sizeof sp, &c, 1, 0); /* the given-up savepoint is removed */
    expect_canceled(job, env, sp);
}

/* ---- configuration errors --------------------------------------------------- */

/* Without a savepoint directory (also with a restart strategy), or with
 * one that cannot be made, the job stops without a savepoint and ends
 * with the error; it is not restarted. */
static const struct {
    cfg c;
    int rc;
    const char *msg;
} failing_cases[] = {
    {{"no-dir", N_RECORDS, 1, 0, 0, NULL, 0},
     RILL_EINVAL,
     "job 'stopped' was stopped without a savepoint: no savepoint directory is set "
     "(rill_env_set_savepoint_dir)"},
    {{"no-dir-restarts", N_RECORDS, 1, 0, 10, NULL, 0},
     RILL_EINVAL,
     "job 'stopped' was stopped without a savepoint: no savepoint directory is set "
     "(rill_env_set_savepoint_dir)"},
    {{"bad-dir", N_RECORDS, 1, 2, 0, NULL, 0}, RILL_EIO, "/file/sp': Not a directory"},
};

Test(stop, a_stop_whose_savepoint_cannot_be_taken_fails_the_job)
{
    for (size_t i = 0; i < sizeof failing_cases / sizeof failing_cases[0]; i++) {
        const cfg *c = &failing_cases[i].c;
        rill_env *env = build_ok(c);
        char file[300];
        case_path(file, sizeof file, c, "file");
        FILE *f = fopen(file, "w");
        cr_assert_not_null(f);
        fclose(f);
        rill_job *job = start_slow(env, RILL_STOP_SAVEPOINT);
        wait_for_records(job, 2000);
        cr_assert_eq(kill(getpid(), SIGUSR1), 0);
        int rc = rill_job_wait(job);
        cr_assert_eq(rc, failing_cases[i].rc, "%s: %s (%s)", c->name, rill_err_name(rc),
                     rill_job_errmsg(job));
        cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED, "%s", c->name);
        cr_assert_eq(rill_job_restarts(job), 0, "%s", c->name);
        cr_assert_null(rill_job_stop_savepoint(job), "%s", c->name);
        assert_has(rill_job_errmsg(job), failing_cases[i].msg);
        assert_has(rill_job_errmsg(job), "was stopped without a savepoint");
        cr_assert_lt(atomic_load(&g_made), N_RECORDS, "%s: the job ran to its end", c->name);
        end_job(job);
        rill_env_free(env);
    }
}

/* A restart is pending when a logger is told so. */
static atomic_int g_restart_pending;

static void watch_log(int level, const char *msg, void *ud)
{
    (void)level;
    (void)ud;
    if (strstr(msg, "restart 1 of 3"))
        atomic_store(&g_restart_pending, 1);
}

static int fail_once(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    static atomic_int failed;
    if (!atomic_exchange(&failed, 1))
        return 7;
    return rill_emit(ctx, rec, len);
}

Test(stop, a_stop_with_a_savepoint_while_a_restart_is_pending_ends_the_job)
{
    cfg c = {"pending", N_RECORDS, 1, 1, 0, NULL, 0};
    char d[300], sp[300], state[300];
    snprintf(d, sizeof d, "%s/%s", tmpdir, c.name);
    mkdir(d, 0777);
    case_path(sp, sizeof sp, &c, "sp");
    case_path(state, sizeof state, &c, "state");
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_set_state_dir(env, state), RILL_OK);
    cr_assert_eq(rill_env_set_savepoint_dir(env, sp), RILL_OK);
    cr_assert_eq(rill_env_set_restart_strategy(env, RILL_RESTART_FIXED_DELAY, 3, 600000, 0),
                 RILL_OK);
    rill_stream *s = rill_generator(env, "items", 1000, gen, NULL);
    s = rill_map(s, "fails", fail_once, NULL);
    rill_sink(s, "count", total_sink, &(sum_total){0});
    cr_assert_eq(rill_set_logger(watch_log, RILL_LOG_WARN, NULL), RILL_OK);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "stopped"), RILL_OK, "%s", rill_env_errmsg(env));
    for (int i = 0; !atomic_load(&g_restart_pending) && i < 10000; i++)
        sleep_ms(1);
    cr_assert(atomic_load(&g_restart_pending), "no restart pending within 10 s");
    cr_assert_eq(rill_job_request_stop(job, RILL_STOP_SAVEPOINT), RILL_OK);
    int rc = rill_job_wait(job);
    rill_set_logger(NULL, RILL_LOG_ERROR, NULL);
    cr_assert_eq(rc, RILL_ESTATE, "%s (%s)", rill_err_name(rc), rill_job_errmsg(job));
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_eq(rill_job_restarts(job), 0);
    assert_has(rill_job_errmsg(job), "was stopped without a savepoint");
    assert_has(rill_job_errmsg(job), "the job does not run");
    rill_job_free(job);
    rill_env_free(env);
}

Test(stop, bad_arguments_are_refused)
{
    cfg c = {"args", N_RECORDS, 0, 0, 0, NULL, 0};
    rill_env *env = build_ok(&c);
    cr_assert_eq(rill_job_request_stop(NULL, 0), RILL_EINVAL);
    cr_assert_eq(rill_env_request_stop(NULL, RILL_STOP_SAVEPOINT), RILL_EINVAL);
    cr_assert_eq(rill_env_request_stop(env, 4), RILL_EINVAL);
    cr_assert_eq(rill_env_request_stop(env, -1), RILL_EINVAL);
    cr_assert_null(rill_job_stop_savepoint(NULL));
    cr_assert_eq(rill_env_set_savepoint_dir(NULL, "x"), RILL_EINVAL);
    cr_assert_eq(rill_env_set_savepoint_dir(env, ""), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "savepoint directory is empty");
    cr_assert_eq(rill_env_set_savepoint_dir(env, NULL), RILL_OK);
    rill_job *job = start_slow(env, 0);
    cr_assert_eq(rill_job_request_stop(job, 2), RILL_EINVAL);
    cr_assert_eq(rill_env_set_savepoint_dir(env, "elsewhere"), RILL_ESTATE);
    assert_has(rill_env_errmsg(env), "rill_env_set_savepoint_dir: a job of this environment is "
                                     "running");
    cr_assert_eq(rill_job_status(job), RILL_JOB_RUNNING, "a refused request stopped the job");
    cr_assert_eq(rill_job_request_stop(job, 0), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    end_job(job);
    rill_env_free(env);
}

/* An allocator that fails while g_no_memory is set. */
static atomic_int g_no_memory;

static void *maybe_malloc(size_t n)
{
    return atomic_load(&g_no_memory) ? NULL : malloc(n);
}

static void *maybe_realloc(void *p, size_t n)
{
    return atomic_load(&g_no_memory) ? NULL : realloc(p, n);
}

static void *maybe_calloc(size_t k, size_t n)
{
    return atomic_load(&g_no_memory) ? NULL : calloc(k, n);
}

static void back_to_malloc(void)
{
    rill_replace_allocator(malloc, realloc, calloc, free);
}

Test(stop, setting_the_savepoint_directory_without_memory_fails, .fini = back_to_malloc)
{
    cr_assert_eq(rill_replace_allocator(maybe_malloc, maybe_realloc, maybe_calloc, free),
                 RILL_OK);
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_set_savepoint_dir(env, "first"), RILL_OK);
    atomic_store(&g_no_memory, 1);
    int rc = rill_env_set_savepoint_dir(env, "second");
    atomic_store(&g_no_memory, 0);
    cr_assert_eq(rc, RILL_ENOMEM);
    assert_has(rill_env_errmsg(env), "out of memory");
    rill_env_free(env);
    back_to_malloc();
}
