/* checkpoint_test.c - periodic checkpoints: barriers through the graph,
 * one file per subtask, _metadata last, retention, settings. */
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_NAME "checkpoint"
#include "common.h"
#include "snapshot/format.h"

TestSuite(checkpoints, .init = mk_tmp, .fini = rm_tmp);
TestSuite(checkpoint_settings);

typedef struct {
    uint64_t key;
    int64_t one;
} rec;

/* A source that runs until the test says stop. */
typedef struct {
    atomic_int stop;
    atomic_llong emitted;
} feed;

static int feed_step(rill_ctx *ctx, void *ud)
{
    feed *f = ud;
    if (atomic_load(&f->stop))
        return RILL_SOURCE_END;
    for (int i = 0; i < 64; i++) {
        long long n = atomic_fetch_add(&f->emitted, 1);
        rec r = {(uint64_t)n % 1000, 1};
        int rc = rill_emit_ts(ctx, &r, sizeof r, n);
        if (rc)
            return rc;
    }
    return RILL_SOURCE_IDLE; /* a short pause: the job lasts, records stay few */
}

static int drop(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx;
    (void)r;
    (void)len;
    (void)ud;
    return 0;
}

/* A keyed count with checkpoints every 20 ms; runs until `want`
 * checkpoints completed, then ends its input. */
static int64_t run_until(int mode, int p, int retained, int64_t want, feed *f)
{
    rill_env *env = new_env(p);
    char dir[256];
    tmp_path(dir, sizeof dir, "ck");
    cr_assert_eq(rill_env_enable_checkpointing(env, 20, dir, mode), RILL_OK);
    cr_assert_eq(rill_env_set_checkpoints_retained(env, retained), RILL_OK);
    char sd[256];
    tmp_path(sd, sizeof sd, "state");
    cr_assert_eq(rill_env_set_state_dir(env, sd), RILL_OK);
    rill_stream *s = rill_source(env, "feed", feed_step, f);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_key_by_bytes(s, 0, 8);
    s = rill_aggregate(s, "count", RILL_AGG_SUM, 8, RILL_FIELD_I64);
    rill_sink(s, "out", drop, NULL);
    rill_job *job;
    int rc = rill_job_start(&job, env, "checkpoints");
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    while (rill_job_last_checkpoint(job) < want && rill_job_status(job) == RILL_JOB_RUNNING)
        sleep_ms(5);
    atomic_store(&f->stop, 1);
    cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
    int64_t last = rill_job_last_checkpoint(job);
    rill_job_free(job);
    rill_env_free(env);
    return last;
}

/* The chk-<n> directories under tmpdir/ck, as a bit set of n < 64. */
static uint64_t chk_dirs(void)
{
    char dir[256];
    tmp_path(dir, sizeof dir, "ck");
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    uint64_t set = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long n;
        if (sscanf(e->d_name, "chk-%ld", &n) == 1 && n < 64)
            set |= 1ull << n;
    }
    closedir(d);
    return set;
}

static void check_complete(int64_t id, int n_files)
{
    char path[700], dir[300], err[512];
    snprintf(dir, sizeof dir, "%s/ck/chk-%lld", tmpdir, (long long)id);
    snprintf(path, sizeof path, "%s/_metadata", dir);
    rill__snap_meta *m = NULL;
    int rc = rill__snap_meta_read(path, &m, err);
    cr_assert_eq(rc, RILL_OK, "%s", err);
    cr_assert_eq(m->checkpoint_id, (uint64_t)id);
    cr_assert_eq(m->n_files, (size_t)n_files);
    cr_assert_eq(rill__snap_meta_check_files(m, dir, err), RILL_OK, "%s", err);
    for (size_t i = 0; i < m->n_files; i++) {
        char f[600];
        snprintf(f, sizeof f, "%s/%s", dir, m->files[i].name);
        cr_assert_eq(rill__snap_verify(f, NULL, err), RILL_OK, "%s", err);
    }
    rill__snap_meta_free(m);
}

Test(checkpoints, exactly_once_checkpoints_complete_with_metadata)
{
    feed f = {0, 0};
    int64_t last = run_until(RILL_EXACTLY_ONCE, 2, 1, 3, &f);
    cr_assert_geq(last, 3);
    /* source + 2 count subtasks (the sink is chained to the count) */
    check_complete(last, 3);
}

Test(checkpoints, at_least_once_checkpoints_complete)
{
    feed f = {0, 0};
    int64_t last = run_until(RILL_AT_LEAST_ONCE, 2, 1, 2, &f);
    cr_assert_geq(last, 2);
    check_complete(last, 3);
}

Test(checkpoints, only_the_retained_checkpoints_stay)
{
    feed f = {0, 0};
    int64_t last = run_until(RILL_EXACTLY_ONCE, 1, 2, 4, &f);
    cr_assert_geq(last, 4);
    uint64_t set = chk_dirs();
    /* The last two completed, and perhaps one given up at the end (it
     * has no _metadata and is removed when discarded). */
    cr_assert(set & (1ull << last));
    cr_assert(set & (1ull << (last - 1)));
    for (int64_t i = 1; i < last - 1; i++)
        cr_assert(!(set & (1ull << i)), "chk-%lld should be deleted", (long long)i);
    check_complete(last - 1, 2);
}

Test(checkpoint_settings, bad_values_are_einval)
{
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_enable_checkpointing(env, 0, "/tmp/x", RILL_EXACTLY_ONCE), RILL_EINVAL);
    cr_assert(strstr(rill_env_errmsg(env), "interval") != NULL);
    cr_assert_eq(rill_env_enable_checkpointing(env, 10, NULL, RILL_EXACTLY_ONCE), RILL_EINVAL);
    cr_assert_eq(rill_env_enable_checkpointing(env, 10, "", RILL_EXACTLY_ONCE), RILL_EINVAL);
    cr_assert_eq(rill_env_enable_checkpointing(env, 10, "/tmp/x", 7), RILL_EINVAL);
    cr_assert(strstr(rill_env_errmsg(env), "mode") != NULL);
    cr_assert_eq(rill_env_set_checkpoint_timeout(env, 0), RILL_EINVAL);
    cr_assert_eq(rill_env_set_checkpoint_min_pause(env, -1), RILL_EINVAL);
    cr_assert_eq(rill_env_set_checkpoints_retained(env, 0), RILL_EINVAL);
    cr_assert_eq(rill_env_set_checkpoints_retained(env, 1001), RILL_EINVAL);
    cr_assert_eq(rill_env_set_checkpoint_timeout(NULL, 5), RILL_EINVAL);
    rill_env_free(env);
}

Test(checkpoint_settings, a_job_without_checkpointing_reports_none)
{
    rill_env *env = new_env(1);
    uint64_t recs[2] = {1, 2};
    rill_sink(rill_from_array(env, "a", recs, sizeof recs[0], 2), "out", drop, NULL);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "plain"), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    cr_assert_eq(rill_job_last_checkpoint(job), 0);
    cr_assert_eq(rill_job_last_checkpoint(NULL), 0);
    rill_job_free(job);
    rill_env_free(env);
}

/* ---- recovery: fail after a checkpoint, restore, exact counts ------------ */

TestSuite(recovery, .init = mk_tmp, .fini = rm_tmp);

#define KEYS 97

/* What the map does once a checkpoint is complete. */
enum { GO_ON, FAIL_ONCE, STALL, FAIL_ALWAYS };

typedef struct {
    atomic_int mode;
    atomic_int ckpt_seen;
    pthread_mutex_t mu;
    int64_t last[KEYS]; /* last count the sink saw per key */
    long seen;
} recovery_run;

static int gen_rec(rill_ctx *ctx, uint64_t i, void *ud)
{
    (void)ud;
    rec r = {i % KEYS, 1};
    return rill_emit(ctx, &r, sizeof r);
}

/* Until a checkpoint is complete the map goes slowly, so that one is taken
 * before the input ends; then it does what the run's mode says. */
static int test_map(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    recovery_run *run = ud;
    static _Thread_local unsigned n;
    int mode = atomic_load(&run->mode);
    if (mode == FAIL_ALWAYS || (atomic_load(&run->ckpt_seen) && mode == FAIL_ONCE &&
                                atomic_exchange(&run->mode, GO_ON) == FAIL_ONCE)) {
        rill_ctx_set_error(ctx, "injected failure");
        return -1;
    }
    if ((++n & 7) == 0 && (!atomic_load(&run->ckpt_seen) || mode == STALL)) {
        if (!atomic_load(&run->ckpt_seen) && has_checkpoint())
            atomic_store(&run->ckpt_seen, 1);
        else
            sleep_ms(1);
    }
    return rill_emit(ctx, r, len);
}

static int keep_last(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx;
    (void)len;
    recovery_run *run = ud;
    rec x;
    memcpy(&x, r, sizeof x);
    pthread_mutex_lock(&run->mu);
    run->last[x.key] = x.one;
    run->seen++;
    pthread_mutex_unlock(&run->mu);
    return 0;
}

static rill_env *recovery_env(recovery_run *run, uint64_t n, int p, int restore)
{
    rill_env *env = checkpointed_env(p, restore);
    rill_stream *s = rill_generator(env, "gen", n, gen_rec, NULL);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_map(s, "slow", test_map, run);
    s = rill_key_by_bytes(s, 0, 8);
    s = rill_aggregate(s, "count", RILL_AGG_SUM, 8, RILL_FIELD_I64);
    s = rill_stream_set_uid(s, "count");
    rill_stream_set_parallelism(rill_sink(s, "out", keep_last, run), 1);
    return env;
}

static void expect_exact(const recovery_run *run, uint64_t n)
{
    for (int k = 0; k < KEYS; k++) {
        int64_t want = (int64_t)(n / KEYS + ((uint64_t)k < n % KEYS));
        cr_assert_eq(run->last[k], want, "key %d: count %lld, want %lld", k,
                     (long long)run->last[k], (long long)want);
    }
}

static void recover_exactly(int p1, int p2)
{
    const uint64_t n = 40000;
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    atomic_store(&run.mode, FAIL_ONCE);
    rill_env *env = recovery_env(&run, n, p1, 0);
    int rc = rill_env_execute(env, "first attempt");
    cr_assert_eq(rc, RILL_EUSER, "%s", rill_env_errmsg(env));
    cr_assert(strstr(rill_env_errmsg(env), "injected failure") != NULL, "%s",
              rill_env_errmsg(env));
    rill_env_free(env);

    env = recovery_env(&run, n, p2, 1);
    rc = rill_env_execute(env, "second attempt");
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    expect_exact(&run, n);
    pthread_mutex_destroy(&run.mu);
}

Test(recovery, counts_are_exact_after_a_failure_and_restore)
{
    recover_exactly(2, 2);
}

Test(recovery, restore_at_a_lower_parallelism)
{
    recover_exactly(2, 1);
}

Test(recovery, restore_at_a_higher_parallelism)
{
    recover_exactly(2, 3);
}

/* The host process is killed (SIGKILL) after a checkpoint completed; a new
 * run restores from the latest checkpoint of the directory. */
Test(recovery, counts_are_exact_after_the_process_is_killed)
{
    const uint64_t n = 40000;
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    atomic_store(&run.mode, STALL);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        rill_env *env = recovery_env(&run, n, 2, 0);
        int rc = rill_env_execute(env, "killed");
        if (rc)
            fprintf(stderr, "child: %s\n", rill_env_errmsg(env));
        _exit(rc ? 3 : 0);
    }
    while (!has_checkpoint()) {
        int st = 0;
        pid_t w = waitpid(pid, &st, WNOHANG);
        cr_assert_eq(w, 0, "the job ended before a checkpoint (status %d, signal %d)",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
        sleep_ms(2);
    }
    kill(pid, SIGKILL);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child ended before the kill");

    atomic_store(&run.mode, GO_ON);
    rill_env *env = recovery_env(&run, n, 2, 1);
    int rc = rill_env_execute(env, "after the kill");
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    for (int k = 0; k < KEYS; k++) {
        int64_t want = (int64_t)(n / KEYS + ((uint64_t)k < n % KEYS));
        cr_assert_eq(run.last[k], want, "key %d: count %lld, want %lld", k,
                     (long long)run.last[k], (long long)want);
    }
    pthread_mutex_destroy(&run.mu);
}

Test(recovery, restore_from_a_missing_directory_is_enotfound)
{
    recovery_run run;
    memset(&run, 0, sizeof run);
    rill_env *env = recovery_env(&run, 10, 1, 1);
    cr_assert_eq(rill_env_execute(env, "nothing to restore"), RILL_ENOTFOUND);
    cr_assert(strstr(rill_env_errmsg(env), "ck") != NULL, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

/* ---- savepoints --------------------------------------------------------- */

static void savepoint_and_resume(int p2)
{
    const uint64_t n = 40000;
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    atomic_store(&run.mode, STALL);
    rill_env *env = recovery_env(&run, n, 2, 0);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "to stop"), RILL_OK, "%s", rill_env_errmsg(env));
    char sp[256];
    tmp_path(sp, sizeof sp, "savepoints/one");
    cr_assert_eq(rill_job_savepoint(job, sp, 1), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    rill_job_free(job);
    rill_env_free(env);

    atomic_store(&run.mode, GO_ON);
    env = recovery_env(&run, n, p2, 0);
    cr_assert_eq(rill_env_set_restore(env, sp, 0), RILL_OK);
    int rc = rill_env_execute(env, "resumed");
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    for (int k = 0; k < KEYS; k++) {
        int64_t want = (int64_t)(n / KEYS + ((uint64_t)k < n % KEYS));
        cr_assert_eq(run.last[k], want, "key %d: count %lld, want %lld", k,
                     (long long)run.last[k], (long long)want);
    }
    /* The savepoint stays. */
    char meta[300];
    snprintf(meta, sizeof meta, "%s/_metadata", sp);
    struct stat sb;
    cr_assert_eq(stat(meta, &sb), 0);
    pthread_mutex_destroy(&run.mu);
}

Test(recovery, stop_with_savepoint_then_resume)
{
    savepoint_and_resume(2);
}

Test(recovery, stop_with_savepoint_then_resume_at_parallelism_3)
{
    savepoint_and_resume(3);
}

Test(checkpoint_settings, savepoint_arguments)
{
    rill_env *env = new_env(1);
    uint64_t recs[2] = {1, 2};
    rill_sink(rill_from_array(env, "a", recs, sizeof recs[0], 2), "out", drop, NULL);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "plain"), RILL_OK);
    cr_assert_eq(rill_job_savepoint(job, NULL, 0), RILL_EINVAL);
    cr_assert_eq(rill_job_savepoint(job, "", 0), RILL_EINVAL);
    cr_assert_eq(rill_job_savepoint(NULL, "/tmp/x", 0), RILL_EINVAL);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    rill_job_free(job);
    rill_env_free(env);
}

Test(recovery, restore_with_another_max_parallelism_is_einval)
{
    const uint64_t n = 40000;
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    atomic_store(&run.mode, STALL);
    rill_env *env = recovery_env(&run, n, 2, 0);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "to stop"), RILL_OK, "%s", rill_env_errmsg(env));
    char sp[256];
    tmp_path(sp, sizeof sp, "sp");
    cr_assert_eq(rill_job_savepoint(job, sp, 1), RILL_OK);
    rill_job_wait(job);
    rill_job_free(job);
    rill_env_free(env);
    env = recovery_env(&run, n, 2, 0);
    cr_assert_eq(rill_env_set_max_parallelism(env, 64), RILL_OK);
    cr_assert_eq(rill_env_set_restore(env, sp, 0), RILL_OK);
    cr_assert_eq(rill_env_execute(env, "other key groups"), RILL_EINVAL);
    cr_assert(strstr(rill_env_errmsg(env), "max parallelism") != NULL, "%s",
              rill_env_errmsg(env));
    rill_env_free(env);
    pthread_mutex_destroy(&run.mu);
}

/* ---- restart strategies --------------------------------------------------- */

static rill_env *restart_env(recovery_run *run, uint64_t n, int kind, int attempts)
{
    rill_env *env = checkpointed_env(2, 0);
    cr_assert_eq(rill_env_set_restart_strategy(env, kind, attempts, 5, 40), RILL_OK);
    rill_stream *s = rill_generator(env, "gen", n, gen_rec, NULL);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_map(s, "flaky", test_map, run);
    s = rill_key_by_bytes(s, 0, 8);
    s = rill_aggregate(s, "count", RILL_AGG_SUM, 8, RILL_FIELD_I64);
    rill_stream_set_parallelism(rill_sink(s, "out", keep_last, run), 1);
    return env;
}

static void restart_once(int kind)
{
    const uint64_t n = 40000;
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    atomic_store(&run.mode, FAIL_ONCE);
    rill_env *env = restart_env(&run, n, kind, 3);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "restarts"), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
    cr_assert_eq(rill_job_status(job), RILL_JOB_FINISHED);
    cr_assert_eq(rill_job_restarts(job), 1);
    rill_job_free(job);
    rill_env_free(env);
    for (int k = 0; k < KEYS; k++) {
        int64_t want = (int64_t)(n / KEYS + ((uint64_t)k < n % KEYS));
        cr_assert_eq(run.last[k], want, "key %d: count %lld, want %lld", k,
                     (long long)run.last[k], (long long)want);
    }
    pthread_mutex_destroy(&run.mu);
}

Test(recovery, fixed_delay_restart_from_the_latest_checkpoint)
{
    restart_once(RILL_RESTART_FIXED_DELAY);
}

Test(recovery, backoff_restart_from_the_latest_checkpoint)
{
    restart_once(RILL_RESTART_BACKOFF);
}

Test(recovery, restarts_stop_after_the_attempts)
{
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    atomic_store(&run.mode, FAIL_ALWAYS);
    rill_env *env = restart_env(&run, 1000, RILL_RESTART_FIXED_DELAY, 2);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "always failing"), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_eq(rill_job_restarts(job), 2);
    cr_assert(strstr(rill_job_errmsg(job), "injected failure") != NULL, "%s",
              rill_job_errmsg(job));
    cr_assert_str_eq(rill_job_failed_operator(job), "flaky");
    rill_job_free(job);
    rill_env_free(env);
    pthread_mutex_destroy(&run.mu);
}

Test(checkpoint_settings, restart_strategy_arguments)
{
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_set_restart_strategy(env, 9, 1, 0, 0), RILL_EINVAL);
    cr_assert_eq(rill_env_set_restart_strategy(env, RILL_RESTART_FIXED_DELAY, 0, 0, 0),
                 RILL_EINVAL);
    cr_assert_eq(rill_env_set_restart_strategy(env, RILL_RESTART_FIXED_DELAY, 1, -1, 0),
                 RILL_EINVAL);
    cr_assert_eq(rill_env_set_restart_strategy(env, RILL_RESTART_BACKOFF, 1, 10, 5), RILL_EINVAL);
    cr_assert_eq(rill_env_set_restart_strategy(env, RILL_RESTART_BACKOFF, 1, 10, 10), RILL_OK);
    cr_assert_eq(rill_env_set_restart_strategy(env, RILL_RESTART_NONE, 0, 0, 0), RILL_OK);
    rill_env_free(env);
}

/* ---- checkpoint hooks: a user source that keeps its position ----------- */

typedef struct {
    recovery_run *run;
    uint64_t n;
    atomic_llong completed; /* largest id on_complete saw */
    atomic_int snapshots;
} hooked;

typedef struct {
    uint64_t next;
} src_pos;

static int src_open(rill_ctx *ctx, void *ud)
{
    (void)ud;
    src_pos *p = calloc(1, sizeof *p);
    cr_assert_not_null(p);
    size_t cur = 0;
    const void *item;
    size_t len;
    rill_state *st = rill_ctx_state(ctx, "position");
    cr_assert_not_null(st);
    /* Restored: continue where the checkpoint was taken. */
    if (rill_state_list_next(st, &cur, &item, &len) == 1 && len == sizeof p->next)
        memcpy(&p->next, item, sizeof p->next);
    rill_ctx_set_local(ctx, p);
    return 0;
}

static int src_close(rill_ctx *ctx, void *ud)
{
    (void)ud;
    free(rill_ctx_local(ctx));
    return 0;
}

static int src_step(rill_ctx *ctx, void *ud)
{
    hooked *h = ud;
    src_pos *p = rill_ctx_local(ctx);
    for (int i = 0; i < 32 && p->next < h->n; i++, p->next++) {
        rec r = {p->next % KEYS, 1};
        int rc = rill_emit(ctx, &r, sizeof r);
        if (rc)
            return rc;
    }
    return p->next < h->n ? RILL_SOURCE_MORE : RILL_SOURCE_END;
}

static int src_snapshot(rill_ctx *ctx, int64_t id, void *ud)
{
    (void)id;
    hooked *h = ud;
    src_pos *p = rill_ctx_local(ctx);
    rill_state *st = rill_ctx_state(ctx, "position");
    rill_record r = {&p->next, sizeof p->next, 0};
    atomic_fetch_add(&h->snapshots, 1);
    return rill_state_list_update(st, &r, 1);
}

static int sink_complete(rill_ctx *ctx, int64_t id, void *ud)
{
    (void)ctx;
    hooked *h = ud;
    long long seen = atomic_load(&h->completed);
    while (id > seen && !atomic_compare_exchange_weak(&h->completed, &seen, id))
        ;
    return 0;
}

static int hooked_sink(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    hooked *h = ud;
    return keep_last(ctx, r, len, h->run);
}

static rill_env *hooked_env(hooked *h, int restore)
{
    rill_env *env = checkpointed_env(2, restore);
    rill_stream *s = rill_source(env, "positions", src_step, h);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_stream_add_state(s, "position", RILL_STATE_OPERATOR_LIST);
    s = rill_stream_set_lifecycle(s, src_open, src_close);
    s = rill_stream_set_checkpoint_hooks(s, src_snapshot, NULL);
    s = rill_map(s, "slow", test_map, h->run);
    s = rill_key_by_bytes(s, 0, 8);
    s = rill_aggregate(s, "count", RILL_AGG_SUM, 8, RILL_FIELD_I64);
    s = rill_sink(s, "out", hooked_sink, h);
    s = rill_stream_set_parallelism(s, 1);
    rill_stream_set_checkpoint_hooks(s, NULL, sink_complete);
    return env;
}

Test(recovery, a_user_source_resumes_from_the_position_its_hook_saved)
{
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    hooked h;
    memset(&h, 0, sizeof h);
    h.run = &run;
    h.n = 40000;
    atomic_store(&run.mode, STALL);
    rill_env *env = hooked_env(&h, 0);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "first"), RILL_OK, "%s", rill_env_errmsg(env));
    /* The sink hears of a completed checkpoint; then the job is stopped. */
    while (atomic_load(&h.completed) == 0 && rill_job_status(job) == RILL_JOB_RUNNING)
        sleep_ms(2);
    cr_assert_eq(rill_job_status(job), RILL_JOB_RUNNING);
    cr_assert_leq(atomic_load(&h.completed), rill_job_last_checkpoint(job));
    rill_job_cancel(job);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    rill_job_free(job);
    rill_env_free(env);
    cr_assert_gt(atomic_load(&h.snapshots), 0);

    atomic_store(&run.mode, GO_ON);
    env = hooked_env(&h, 1);
    cr_assert_eq(rill_env_execute(env, "second"), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    expect_exact(&run, h.n);
    pthread_mutex_destroy(&run.mu);
}

/* ---- the exactly-once file sink ------------------------------------------ */

static int gen_numbered(rill_ctx *ctx, uint64_t i, void *ud)
{
    (void)ud;
    rec r = {i, 1};
    return rill_emit(ctx, &r, sizeof r);
}

static int fmt_index(const void *r, size_t len, char *buf, size_t cap, void *ud)
{
    (void)len;
    (void)ud;
    rec x;
    memcpy(&x, r, sizeof x);
    return snprintf(buf, cap, "%llu", (unsigned long long)x.key);
}

static rill_env *eo_env(recovery_run *run, uint64_t n, int restore)
{
    rill_env *env = checkpointed_env(2, restore);
    char out[256];
    tmp_path(out, sizeof out, "out");
    rill_stream *s = rill_generator(env, "gen", n, gen_numbered, NULL);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_map(s, "slow", test_map, run);
    s = rill_rebalance(s);
    rill_sink_file_exactly_once(s, "files", out, fmt_index, NULL);
    return env;
}

Test(recovery, exactly_once_files_after_a_failure_and_restore)
{
    const uint64_t n = 40000;
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    atomic_store(&run.mode, FAIL_ONCE);
    rill_env *env = eo_env(&run, n, 0);
    cr_assert_eq(rill_env_execute(env, "first"), RILL_EUSER, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    env = eo_env(&run, n, 1);
    cr_assert_eq(rill_env_execute(env, "second"), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    unsigned char *seen = calloc(n, 1);
    cr_assert_not_null(seen);
    int hidden;
    count_output_lines("out", n, seen, &hidden);
    for (uint64_t i = 0; i < n; i++)
        cr_assert_eq(seen[i], 1, "record %llu is in %d visible files", (unsigned long long)i,
                     seen[i]);
    free(seen);
    pthread_mutex_destroy(&run.mu);
}

Test(recovery, exactly_once_files_without_a_failure)
{
    const uint64_t n = 5000;
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    rill_env *env = eo_env(&run, n, 0);
    cr_assert_eq(rill_env_execute(env, "once"), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    unsigned char *seen = calloc(n, 1);
    cr_assert_not_null(seen);
    int hidden;
    count_output_lines("out", n, seen, &hidden);
    cr_assert_eq(hidden, 0, "pending files left after a successful job");
    for (uint64_t i = 0; i < n; i++)
        cr_assert_eq(seen[i], 1, "record %llu", (unsigned long long)i);
    free(seen);
    pthread_mutex_destroy(&run.mu);
}

static void cancel_after_a_checkpoint(int retain)
{
    recovery_run run;
    memset(&run, 0, sizeof run);
    pthread_mutex_init(&run.mu, NULL);
    atomic_store(&run.mode, STALL);
    rill_env *env = recovery_env(&run, 40000, 2, 0);
    cr_assert_eq(rill_env_set_checkpoint_retain_on_cancel(env, retain), RILL_OK);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "to cancel"), RILL_OK, "%s", rill_env_errmsg(env));
    while (rill_job_last_checkpoint(job) < 1 && rill_job_status(job) == RILL_JOB_RUNNING)
        sleep_ms(2);
    rill_job_cancel(job);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    rill_job_free(job);
    rill_env_free(env);
    cr_assert_eq(has_checkpoint(), retain);
    pthread_mutex_destroy(&run.mu);
}

Test(recovery, checkpoints_are_kept_when_the_job_is_canceled)
{
    cancel_after_a_checkpoint(1);
}

Test(recovery, checkpoints_are_deleted_on_cancel_when_asked)
{
    cancel_after_a_checkpoint(0);
}

Test(recovery, exactly_once_file_sink_into_a_file_is_eio)
{
    recovery_run run;
    memset(&run, 0, sizeof run);
    char out[256];
    tmp_path(out, sizeof out, "out");
    FILE *f = fopen(out, "w");
    cr_assert_not_null(f);
    fclose(f);
    rill_env *env = eo_env(&run, 10, 0);
    cr_assert_eq(rill_env_execute(env, "no directory"), RILL_EIO);
    cr_assert(strstr(rill_env_errmsg(env), out) != NULL, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(checkpoint_settings, twophase_sink_needs_all_functions)
{
    rill_env *env = new_env(1);
    uint64_t recs[2] = {1, 2};
    rill_twophase_fns fns;
    memset(&fns, 0, sizeof fns);
    rill_stream *s = rill_from_array(env, "a", recs, sizeof recs[0], 2);
    cr_assert_null(rill_sink_twophase(s, "tx", &fns, NULL));
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    cr_assert(strstr(rill_env_errmsg(env), "commit") != NULL, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    env = new_env(1);
    s = rill_from_array(env, "a", recs, sizeof recs[0], 2);
    cr_assert_null(rill_sink_file_exactly_once(s, "files", "", NULL, NULL));
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    rill_env_free(env);
}
