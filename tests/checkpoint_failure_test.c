/* checkpoint_failure_test.c - failures and recovery: a job of a million
 * records with keyed state takes a checkpoint every 50 ms; a failure is
 * injected at a point chosen from a seed, only once a first checkpoint
 * completed (a user function error, or SIGKILL of a child process running
 * the job); a second run restores from the checkpoint directory and runs
 * to the end. Afterwards every key's count must be exact.
 *
 * The job: generator (parallelism 1, records {key = i % KEYS, 1, ts = i})
 * -> map (may fail) -> key_by(key) -> keyed operator (uid "keyed") -> sink
 * (parallelism 1). The keyed operator is either a rolling count
 * (rill_aggregate SUM) or a process function counting records in value
 * state and registering an event-time timer at ts + 1000 per record; each
 * firing counts itself in value state and emits {key, fired, count}.
 *
 * The sink keeps, per key, the first and last value of each run: the last
 * value across both runs is the key's final count (every key receives
 * records up to the end of the input, so the second run emits every key),
 * the first value of the second run is the restored count plus one.
 *
 * RILL_LONG_TESTS=1 also runs the long_failures suite (more seeds, more
 * records); it is skipped otherwise. */
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_NAME "ckfail"
#include "common.h"

#define N_RECORDS 1000000ull
#define KEYS 1000
#define INTERVAL_MS 50
/* The injected failure comes at least this many records before the end,
 * so the second run sees every key. */
#define TAIL (20ull * KEYS)

typedef struct rec {
    uint64_t key;
    int64_t val; /* 1 in the input; the count (or timer firings) out */
    int64_t ts;  /* the index in the input; out of the timers: the count */
} rec;

enum shape { ROLLING_COUNT, TIMERS };

typedef struct job_run {
    uint64_t n; /* records of the input */
    int shape;
    char ck[200], state[200];
    /* the map */
    atomic_llong mapped;  /* records through the map in this run */
    atomic_llong fail_at; /* the map fails at this record of the run */
    atomic_int warm;      /* a first checkpoint completed: no more throttle */
    int warm_every;       /* until warm: sleep 1 ms every this many records */
    int slow_every;       /* 0, or sleep 1 ms every this many records */
    /* the sink */
    pthread_mutex_t mu;
    int run;                /* 0 first run, 1 second run */
    int64_t first[2][KEYS]; /* per run: first value per key (0: none) */
    int64_t last[2][KEYS];  /* per run: last value per key */
    int64_t final[KEYS];    /* last value per key, across runs */
    int64_t aux[KEYS];      /* third field of the key's last record */
    long breaks; /* a key's value not one more than its previous one of the run */
    long over;   /* a value above the key's exact final count */
    long bad;    /* malformed records */
} job_run;

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int64_t exact(const job_run *x, int k)
{
    return (int64_t)(x->n / KEYS + ((uint64_t)k < x->n % KEYS));
}

static void run_init(job_run *x, int shape, uint64_t n, const char *tag)
{
    memset(x, 0, sizeof *x);
    x->n = n;
    x->shape = shape;
    x->warm_every = 128;
    atomic_store(&x->fail_at, LLONG_MAX);
    pthread_mutex_init(&x->mu, NULL);
    char name[64];
    snprintf(name, sizeof name, "ck%s", tag);
    tmp_path(x->ck, sizeof x->ck, name);
    snprintf(name, sizeof name, "state%s", tag);
    tmp_path(x->state, sizeof x->state, name);
}

/* ---- user functions ------------------------------------------------------ */

static int gen_rec(rill_ctx *ctx, uint64_t i, void *ud)
{
    (void)ud;
    rec r = {i % KEYS, 1, (int64_t)i};
    return rill_emit(ctx, &r, sizeof r);
}

static int64_t rec_ts(const void *r, size_t len, int64_t ts, void *ud)
{
    (void)len;
    (void)ts;
    (void)ud;
    rec v;
    memcpy(&v, r, sizeof v);
    return v.ts;
}

static int inject_map(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    job_run *x = ud;
    long long n = atomic_fetch_add(&x->mapped, 1) + 1;
    if (n >= atomic_load(&x->fail_at)) {
        rill_ctx_set_error(ctx, "injected failure at record %lld", n);
        return -1;
    }
    if (x->slow_every && n % x->slow_every == 0)
        sleep_ms(1);
    else if (!atomic_load_explicit(&x->warm, memory_order_relaxed) && n % x->warm_every == 0)
        sleep_ms(1);
    return rill_emit(ctx, r, len);
}

/* Counts the key's records and registers a timer 1000 ms after each. */
static int count_and_register(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)r;
    (void)len;
    (void)ud;
    rill_state *st = rill_ctx_state(ctx, "count");
    int64_t n = st ? state_i64(st) : -1;
    if (n < 0)
        return -2;
    n++;
    int rc = rill_state_put(st, &n, sizeof n);
    if (rc)
        return rc;
    return rill_timer_register(ctx, RILL_EVENT_TIME, rill_ctx_timestamp(ctx) + 1000);
}

/* Counts the key's firings; emits {key, firings, records}. */
static int count_firing(rill_ctx *ctx, int64_t ts, int domain, void *ud)
{
    (void)ts;
    (void)ud;
    if (domain != RILL_EVENT_TIME)
        return -3;
    rill_state *fired = rill_ctx_state(ctx, "fired");
    rill_state *count = rill_ctx_state(ctx, "count");
    if (!fired || !count)
        return -4;
    int64_t f = state_i64(fired);
    if (f < 0)
        return -5;
    f++;
    int rc = rill_state_put(fired, &f, sizeof f);
    if (rc)
        return rc;
    int64_t c = state_i64(count);
    const void *key;
    size_t kl;
    if (c < 0 || rill_ctx_key(ctx, &key, &kl) != RILL_OK || kl != 8)
        return -6;
    rec out = {0, f, c};
    memcpy(&out.key, key, 8);
    return rill_emit(ctx, &out, sizeof out);
}

static int note_sink(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx;
    job_run *x = ud;
    rec v;
    if (len != sizeof v) {
        pthread_mutex_lock(&x->mu);
        x->bad++;
        pthread_mutex_unlock(&x->mu);
        return 0;
    }
    memcpy(&v, r, sizeof v);
    pthread_mutex_lock(&x->mu);
    if (v.key >= KEYS || v.val <= 0) {
        x->bad++;
    } else {
        int k = (int)v.key, run = x->run;
        if (x->last[run][k] == 0)
            x->first[run][k] = v.val;
        else if (v.val != x->last[run][k] + 1)
            x->breaks++;
        if (v.val > exact(x, k))
            x->over++;
        x->last[run][k] = v.val;
        x->final[k] = v.val;
        x->aux[k] = v.ts;
    }
    pthread_mutex_unlock(&x->mu);
    return 0;
}

/* ---- the job --------------------------------------------------------- */

static rill_env *build(job_run *x, int p, int mode, int restore)
{
    rill_env *env = new_env(p);
    cr_assert_eq(rill_env_set_state_dir(env, x->state), RILL_OK);
    cr_assert_eq(rill_env_enable_checkpointing(env, INTERVAL_MS, x->ck, mode), RILL_OK);
    cr_assert_eq(rill_env_set_watermark_interval(env, 10), RILL_OK);
    if (restore)
        cr_assert_eq(rill_env_set_restore(env, x->ck, 0), RILL_OK);
    rill_stream *s = rill_generator(env, "gen", x->n, gen_rec, NULL);
    s = rill_stream_set_parallelism(s, 1);
    if (x->shape == TIMERS)
        s = rill_assign_timestamps(s, "ts", rec_ts, 0, NULL);
    s = rill_map(s, "inject", inject_map, x);
    s = rill_key_by_bytes(s, 0, 8);
    if (x->shape == ROLLING_COUNT) {
        s = rill_aggregate(s, "count", RILL_AGG_SUM, offsetof(rec, val), RILL_FIELD_I64);
    } else {
        s = rill_process(s, "timers", count_and_register, count_firing, NULL);
        s = rill_stream_add_state(s, "count", RILL_STATE_VALUE);
        s = rill_stream_add_state(s, "fired", RILL_STATE_VALUE);
    }
    s = rill_stream_set_uid(s, "keyed");
    rill_stream_set_parallelism(rill_sink(s, "out", note_sink, x), 1);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    return env;
}

/* The first run: once a first checkpoint completed, the map is told to
 * fail at a record chosen from seed between the records it has seen and
 * TAIL records before the end. */
static void first_run_fails(job_run *x, int p, int mode, uint64_t seed)
{
    rill_env *env = build(x, p, mode, 0);
    x->run = 0;
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "first run"), RILL_OK, "%s", rill_env_errmsg(env));
    while (rill_job_last_checkpoint(job) < 1 && rill_job_status(job) == RILL_JOB_RUNNING)
        sleep_ms(1);
    cr_assert_eq(rill_job_status(job), RILL_JOB_RUNNING, "the job ended before a checkpoint: %s",
                 rill_job_errmsg(job));
    long long seen = atomic_load(&x->mapped), hi = (long long)(x->n - TAIL);
    cr_assert_lt(seen, hi, "the map saw %lld records before the first checkpoint", seen);
    long long at = seen + 1 + (long long)(splitmix(&seed) % (uint64_t)(hi - seen));
    atomic_store(&x->fail_at, at);
    atomic_store(&x->warm, 1);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_EUSER, "first run: %s (%s)", rill_err_name(rc), rill_job_errmsg(job));
    assert_has(rill_job_errmsg(job), "injected failure");
    cr_assert_geq(rill_job_last_checkpoint(job), 1);
    rill_job_free(job);
    rill_env_free(env);
}

/* The second run restores from the checkpoint directory and runs to the
 * end. */
static void second_run(job_run *x, int p, int mode)
{
    x->run = 1;
    x->slow_every = 0;
    atomic_store(&x->mapped, 0);
    atomic_store(&x->fail_at, LLONG_MAX);
    atomic_store(&x->warm, 1);
    rill_env *env = build(x, p, mode, 1);
    int rc = rill_env_execute(env, "second run");
    cr_assert_eq(rc, RILL_OK, "second run: %s (%s)", rill_err_name(rc), rill_env_errmsg(env));
    rill_env_free(env);
}

/* What every run must give: well-formed records, per key one more at each
 * output of a run, a second run that started from a restored position and
 * emitted every key. */
static void check_common(job_run *x)
{
    cr_assert_eq(x->bad, 0, "%ld malformed records", x->bad);
    cr_assert_eq(x->breaks, 0, "%ld outputs did not follow their key's previous one", x->breaks);
    long long replayed = atomic_load(&x->mapped);
    cr_assert_lt((uint64_t)replayed, x->n,
                 "the second run read all %lld records: nothing was restored", replayed);
    cr_assert_geq((uint64_t)replayed, TAIL, "the second run read %lld records", replayed);
    for (int k = 0; k < KEYS; k++)
        cr_assert_gt(x->first[1][k], 0, "key %d: no output in the second run", k);
}

/* Exactly once: every final count is exact, nothing ever counted above
 * it, and the restored counts add up to the records before the restored
 * source position. */
static void check_exactly_once(job_run *x)
{
    check_common(x);
    cr_assert_eq(x->over, 0, "%ld outputs above their key's exact count", x->over);
    int64_t restored = 0;
    for (int k = 0; k < KEYS; k++) {
        int64_t want = exact(x, k);
        cr_assert_eq(x->final[k], want, "key %d: count %lld, want %lld", k,
                     (long long)x->final[k], (long long)want);
        if (x->shape == TIMERS)
            cr_assert_eq(x->aux[k], want, "key %d: %lld records in state, want %lld", k,
                         (long long)x->aux[k], (long long)want);
        restored += x->first[1][k] - 1;
    }
    if (x->shape == ROLLING_COUNT) {
        long long replayed = atomic_load(&x->mapped);
        cr_assert_eq(restored, (int64_t)x->n - replayed,
                     "restored counts add up to %lld, the source resumed after %lld records",
                     (long long)restored, (long long)x->n - replayed);
    }
}

/* At least once: barriers are not aligned, so a subtask with several
 * inputs goes on with the records of an input whose barrier came first;
 * its snapshot may count records that come after the source position and
 * are read again after the restore. Nothing is lost: every count is at
 * least the exact one, and the restored counts cover at least the records
 * before the restored position. */
static void check_at_least_once(job_run *x)
{
    check_common(x);
    int64_t restored = 0;
    for (int k = 0; k < KEYS; k++) {
        int64_t want = exact(x, k);
        cr_assert_geq(x->final[k], want, "key %d: count %lld, want at least %lld", k,
                      (long long)x->final[k], (long long)want);
        if (x->shape == TIMERS)
            cr_assert_geq(x->aux[k], want, "key %d: %lld records in state, want at least %lld",
                          k, (long long)x->aux[k], (long long)want);
        restored += x->first[1][k] - 1;
    }
    if (x->shape == ROLLING_COUNT) {
        long long replayed = atomic_load(&x->mapped);
        cr_assert_geq(restored, (int64_t)x->n - replayed,
                      "restored counts add up to %lld, the source resumed after %lld records",
                      (long long)restored, (long long)x->n - replayed);
    }
}

static void fail_and_recover(int shape, int p1, int p2, int mode, uint64_t seed)
{
    job_run x;
    run_init(&x, shape, N_RECORDS, "");
    first_run_fails(&x, p1, mode, seed);
    second_run(&x, p2, mode);
    if (mode == RILL_EXACTLY_ONCE)
        check_exactly_once(&x);
    else
        check_at_least_once(&x);
    pthread_mutex_destroy(&x.mu);
}

/* ---- a user function error --------------------------------------------- */

TestSuite(failure, .init = mk_tmp, .fini = rm_tmp, .timeout = 60);

Test(failure, exact_counts_after_a_failure_seed_1)
{
    fail_and_recover(ROLLING_COUNT, 2, 2, RILL_EXACTLY_ONCE, 1);
}

Test(failure, exact_counts_after_a_failure_seed_2)
{
    fail_and_recover(ROLLING_COUNT, 2, 2, RILL_EXACTLY_ONCE, 2);
}

Test(failure, exact_counts_after_a_failure_seed_3)
{
    fail_and_recover(ROLLING_COUNT, 2, 2, RILL_EXACTLY_ONCE, 3);
}

Test(failure, no_count_lost_at_least_once)
{
    fail_and_recover(ROLLING_COUNT, 2, 2, RILL_AT_LEAST_ONCE, 4);
}

Test(failure, exact_counts_restored_at_parallelism_3)
{
    fail_and_recover(ROLLING_COUNT, 2, 3, RILL_EXACTLY_ONCE, 5);
}

Test(failure, exact_timer_firings_and_value_state_seed_6)
{
    fail_and_recover(TIMERS, 2, 2, RILL_EXACTLY_ONCE, 6);
}

Test(failure, exact_timer_firings_and_value_state_seed_7)
{
    fail_and_recover(TIMERS, 2, 2, RILL_EXACTLY_ONCE, 7);
}

/* ---- the host process killed (SIGKILL) --------------------------------- */

static int run_has_checkpoint(const job_run *x)
{
    return latest_checkpoint_in(x->ck) > 0;
}

/* The child runs the job (slowed down so that it lasts about two
 * seconds); the parent kills it at a time chosen from seed, 0 to 400 ms
 * after a first checkpoint is on disk, then restores. */
static void kill_and_recover(int shape, int mode, uint64_t seed)
{
    job_run x;
    run_init(&x, shape, N_RECORDS, "");
    x.slow_every = 256;
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        rill_env *env = build(&x, 2, mode, 0);
        rill_job *job;
        int rc = rill_job_start(&job, env, "killed");
        if (rc == RILL_OK) {
            while (rill_job_last_checkpoint(job) < 1 && rill_job_status(job) == RILL_JOB_RUNNING)
                sleep_ms(1);
            atomic_store(&x.warm, 1);
            rc = rill_job_wait(job);
            rill_job_free(job);
        }
        _exit(rc ? 3 : 0);
    }
    while (!run_has_checkpoint(&x)) {
        int st = 0;
        pid_t w = waitpid(pid, &st, WNOHANG);
        cr_assert_eq(w, 0, "the child ended before a checkpoint (status %d)",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        sleep_ms(1);
    }
    sleep_ms((long)(splitmix(&seed) % 401));
    kill(pid, SIGKILL);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "the child ended before the kill (status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    second_run(&x, 2, mode);
    /* The sink of the killed run was in the child: only the second run's
     * outputs are here, and they must be the complete tail. */
    check_exactly_once(&x);
    pthread_mutex_destroy(&x.mu);
}

Test(failure, exact_counts_after_the_process_is_killed_seed_8)
{
    kill_and_recover(ROLLING_COUNT, RILL_EXACTLY_ONCE, 8);
}

Test(failure, exact_timer_firings_after_the_process_is_killed_seed_9)
{
    kill_and_recover(TIMERS, RILL_EXACTLY_ONCE, 9);
}

/* ---- longer: RILL_LONG_TESTS=1 ----------------------------------------- */

static void need_long(void)
{
    const char *v = getenv("RILL_LONG_TESTS");
    if (!v || strcmp(v, "1") != 0) {
        rm_tmp(); /* a skipped test does not reach .fini */
        cr_skip_test("set RILL_LONG_TESTS=1 to run the long failure tests");
    }
}

TestSuite(long_failures, .init = mk_tmp, .fini = rm_tmp, .timeout = 1800);

/* Twenty seeds of each shape and mode, 3 million records each, alternating
 * the parallelism of the second run between 1, 2 and 3. */
Test(long_failures, twenty_seeds_of_each_kind)
{
    need_long();
    for (uint64_t seed = 100; seed < 120; seed++) {
        for (int shape = ROLLING_COUNT; shape <= TIMERS; shape++) {
            for (int mode = RILL_EXACTLY_ONCE; mode <= RILL_AT_LEAST_ONCE; mode++) {
                job_run x;
                char tag[48];
                snprintf(tag, sizeof tag, "-%llu-%d-%d", (unsigned long long)seed, shape, mode);
                run_init(&x, shape, 3 * N_RECORDS, tag);
                int p2 = 1 + (int)(seed % 3);
                first_run_fails(&x, 2, mode, seed);
                second_run(&x, p2, mode);
                if (mode == RILL_EXACTLY_ONCE)
                    check_exactly_once(&x);
                else
                    check_at_least_once(&x);
                pthread_mutex_destroy(&x.mu);
                nftw(x.ck, rm_one, 16, FTW_DEPTH | FTW_PHYS);
                nftw(x.state, rm_one, 16, FTW_DEPTH | FTW_PHYS);
            }
        }
    }
}

Test(long_failures, ten_kills_at_seeded_times)
{
    need_long();
    for (uint64_t seed = 200; seed < 210; seed++) {
        kill_and_recover(seed % 2 ? TIMERS : ROLLING_COUNT, RILL_EXACTLY_ONCE, seed);
        rm_tmp();
        mk_tmp();
    }
}
