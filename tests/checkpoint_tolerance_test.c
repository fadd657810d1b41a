/* checkpoint_tolerance_test.c - checkpoints that fail: each is logged at
 * WARN with its id and cause and counted in the job's statistics; past
 * the tolerated number of consecutive failures the job fails with a
 * message naming the last cause. A final snapshot that cannot be written
 * never lets a two-phase-commit sink commit what no checkpoint covers.
 *
 * Failures are injected by putting a regular file where a checkpoint's
 * directory (or the final snapshots' directory) will be: its subtasks
 * cannot create their files in it ("Not a directory"), and the discarded
 * checkpoint removes it. */
#include <fcntl.h>
#include <unistd.h>

#define TEST_NAME "ck-tolerance"
#include "common.h"

TestSuite(tolerance, .init = mk_tmp, .fini = rm_tmp, .timeout = 120);

/* ---- logging ------------------------------------------------------------- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char warned[8192]; /* the WARN lines, one per line */
static int n_warned;

static void keep_warnings(int level, const char *msg, void *ud)
{
    (void)ud;
    if (level != RILL_LOG_WARN)
        return;
    pthread_mutex_lock(&log_mu);
    size_t used = strlen(warned);
    snprintf(warned + used, sizeof warned - used, "%s\n", msg);
    n_warned++;
    pthread_mutex_unlock(&log_mu);
}

static void logger_on(void)
{
    warned[0] = '\0';
    n_warned = 0;
    cr_assert_eq(rill_set_logger(keep_warnings, RILL_LOG_WARN, NULL), RILL_OK);
}

/* ---- the job ------------------------------------------------------------- */

typedef struct slow_run {
    atomic_int go;    /* the map stops slowing down */
    atomic_long seen; /* records through the map */
} slow_run;

/* Slow (1 ms every 8 records) until run->go. */
static int slow_map(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    slow_run *run = ud;
    if ((atomic_fetch_add(&run->seen, 1) & 7) == 0 && !atomic_load(&run->go))
        sleep_ms(1);
    return rill_emit(ctx, r, len);
}

static int drop(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx, (void)r, (void)len, (void)ud;
    return 0;
}

static rill_env *slow_env(slow_run *run, uint64_t n, int tolerable)
{
    rill_env *env = checkpointed_env(1, 0);
    cr_assert_eq(rill_env_set_tolerable_checkpoint_failures(env, tolerable), RILL_OK);
    rill_stream *s = rill_generator(env, "gen", n, gen_index, NULL);
    s = rill_map(s, "slow", slow_map, run);
    rill_sink(s, "drop", drop, NULL);
    return env;
}

static rill_checkpoint_stats stats_of(const rill_job *job)
{
    rill_checkpoint_stats st;
    memset(&st, 0xee, sizeof st);
    cr_assert_eq(rill_job_checkpoint_stats(job, &st, sizeof st), RILL_OK);
    return st;
}

/* Wait (at most 20 s) until the job completed a checkpoint; its id. */
static int64_t first_checkpoint(rill_job *job)
{
    for (int i = 0; i < 10000 && rill_job_status(job) == RILL_JOB_RUNNING; i++) {
        int64_t id = rill_job_last_checkpoint(job);
        if (id > 0)
            return id;
        sleep_ms(2);
    }
    cr_assert_fail("no checkpoint completed");
    return 0;
}

/* Regular files where checkpoints from..to will write. */
static void block_checkpoints(int64_t from, int64_t to)
{
    for (int64_t id = from; id <= to; id++) {
        char p[300];
        snprintf(p, sizeof p, "%s/ck/chk-%lld", tmpdir, (long long)id);
        int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0)
            close(fd);
    }
}

/* ---- tolerated failures -------------------------------------------------- */

/* With `tolerable` failures tolerated, one more fails the job. */
static void fails_past(int tolerable)
{
    slow_run run;
    memset(&run, 0, sizeof run);
    logger_on();
    rill_env *env = slow_env(&run, RILL_UNBOUNDED, tolerable);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "failing checkpoints"), RILL_OK, "%s",
                 rill_env_errmsg(env));
    int64_t last = first_checkpoint(job);
    block_checkpoints(last + 1, last + 40);
    int rc = RILL_OK;
    for (int i = 0; i < 10000 && rill_job_status(job) == RILL_JOB_RUNNING; i++)
        sleep_ms(2);
    if (rill_job_status(job) == RILL_JOB_RUNNING)
        rill_job_cancel(job);
    rc = rill_job_wait(job);
    rill_set_logger(NULL, RILL_LOG_ERROR, NULL);
    const char *msg = rill_job_errmsg(job);
    cr_assert_eq(rc, RILL_EIO, "tolerable %d: %s: %s", tolerable, rill_err_name(rc), msg);
    assert_has(msg, "Not a directory");
    assert_has(msg, "operator 'gen'");
    char want[64];
    snprintf(want, sizeof want, "more than the %d tolerated", tolerable);
    assert_has(msg, want);
    rill_checkpoint_stats st = stats_of(job);
    cr_assert_geq(st.failed, tolerable + 1);
    cr_assert_eq(st.last_failure_code, RILL_EIO);
    cr_assert_gt(st.last_failed_id, last);
    assert_has(st.last_failure, "Not a directory");
    cr_assert_geq(st.completed, 1);
    /* Every failure was logged with its id. */
    cr_assert_geq(n_warned, tolerable + 1, "%s", warned);
    snprintf(want, sizeof want, "checkpoint %lld failed", (long long)st.last_failed_id);
    assert_has(warned, want);
    rill_job_free(job);
    rill_env_free(env);
}

Test(tolerance, the_first_failure_fails_the_job_by_default)
{
    fails_past(0);
}

Test(tolerance, the_third_failure_fails_the_job_when_two_are_tolerated)
{
    fails_past(2);
}

/* Three failures with more tolerated: counted, and the job goes on to its
 * end, checkpoints completing again. */
Test(tolerance, failures_below_the_limit_are_counted_and_the_job_goes_on)
{
    slow_run run;
    memset(&run, 0, sizeof run);
    logger_on();
    rill_env *env = slow_env(&run, 2000000, 5);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "three failures"), RILL_OK, "%s",
                 rill_env_errmsg(env));
    int64_t last = first_checkpoint(job);
    /* last + 1 may be under way already. */
    block_checkpoints(last + 2, last + 4);
    for (int i = 0; i < 10000 && rill_job_last_checkpoint(job) <= last + 4 &&
                    rill_job_status(job) == RILL_JOB_RUNNING;
         i++)
        sleep_ms(2);
    atomic_store(&run.go, 1);
    cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
    rill_set_logger(NULL, RILL_LOG_ERROR, NULL);
    rill_checkpoint_stats st = stats_of(job);
    cr_assert_eq(st.failed, 3, "%s", warned);
    cr_assert_eq(st.last_failed_id, last + 4);
    cr_assert_eq(st.last_failure_code, RILL_EIO);
    assert_has(st.last_failure, "Not a directory");
    cr_assert_eq(st.consecutive_failures, 0);
    cr_assert_gt(st.last_completed_id, last + 4);
    cr_assert_eq(st.last_completed_id, rill_job_last_checkpoint(job));
    cr_assert_eq(st.in_progress, 0);
    cr_assert_eq(n_warned, 3, "%s", warned);
    for (int64_t id = last + 2; id <= last + 4; id++) {
        char want[64];
        snprintf(want, sizeof want, "checkpoint %lld failed", (long long)id);
        assert_has(warned, want);
    }
    assert_has(warned, "3 consecutive failures, 5 tolerated");
    rill_job_free(job);
    rill_env_free(env);
}

/* A checkpoint whose barrier waits behind a slow operator for longer than
 * the timeout. */
static int very_slow(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ud;
    sleep_ms(5);
    return rill_emit(ctx, r, len);
}

Test(tolerance, a_timed_out_checkpoint_fails_the_job_by_default)
{
    rill_env *env = checkpointed_env(1, 0);
    cr_assert_eq(rill_env_set_checkpoint_timeout(env, 1), RILL_OK);
    rill_stream *s = rill_generator(env, "gen", RILL_UNBOUNDED, gen_index, NULL);
    s = rill_rebalance(s);
    s = rill_map(s, "very_slow", very_slow, NULL);
    rill_sink(s, "drop", drop, NULL);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "timeouts"), RILL_OK, "%s", rill_env_errmsg(env));
    for (int i = 0; i < 10000 && rill_job_status(job) == RILL_JOB_RUNNING; i++)
        sleep_ms(2);
    rill_job_cancel(job);
    int rc = rill_job_wait(job);
    cr_assert_eq(rc, RILL_ETIMEDOUT, "%s: %s", rill_err_name(rc), rill_job_errmsg(job));
    assert_has(rill_job_errmsg(job), "timed out after 1 ms");
    rill_checkpoint_stats st = stats_of(job);
    cr_assert_eq(st.failed, 1);
    cr_assert_eq(st.last_failure_code, RILL_ETIMEDOUT);
    rill_job_free(job);
    rill_env_free(env);
}

/* ---- statistics ---------------------------------------------------------- */

Test(tolerance, statistics_of_a_normal_run)
{
    slow_run run;
    memset(&run, 0, sizeof run);
    logger_on();
    rill_env *env = slow_env(&run, 20000, 0);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "normal"), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
    rill_set_logger(NULL, RILL_LOG_ERROR, NULL);
    rill_checkpoint_stats st = stats_of(job);
    cr_assert_geq(st.completed, 1);
    cr_assert_eq(st.failed, 0);
    cr_assert_eq(st.in_progress, 0);
    cr_assert_eq(st.last_completed_id, rill_job_last_checkpoint(job));
    cr_assert_gt(st.last_size_bytes, 0);
    cr_assert_geq(st.last_duration_ms, 0);
    cr_assert_eq(st.last_failed_id, 0);
    cr_assert_eq(st.last_failure_code, RILL_OK);
    cr_assert_eq(st.consecutive_failures, 0);
    cr_assert_str_eq(st.last_failure, "");
    cr_assert_eq(n_warned, 0, "%s", warned);
    /* A shorter struct gets its first fields only. */
    int64_t two[3] = {-1, -1, -1};
    cr_assert_eq(rill_job_checkpoint_stats(job, (rill_checkpoint_stats *)two, 2 * sizeof two[0]),
                 RILL_OK);
    cr_assert_eq(two[0], st.completed);
    cr_assert_eq(two[1], 0);
    cr_assert_eq(two[2], -1);
    rill_job_free(job);
    rill_env_free(env);
}

Test(tolerance, statistics_arguments)
{
    rill_checkpoint_stats st;
    cr_assert_eq(rill_job_checkpoint_stats(NULL, &st, sizeof st), RILL_EINVAL);
    rill_env *env = new_env(1);
    uint64_t recs[2] = {1, 2};
    rill_sink(rill_from_array(env, "a", recs, sizeof recs[0], 2), "out", drop, NULL);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "plain"), RILL_OK);
    cr_assert_eq(rill_job_checkpoint_stats(job, NULL, sizeof st), RILL_EINVAL);
    cr_assert_eq(rill_job_checkpoint_stats(job, &st, 0), RILL_EINVAL);
    cr_assert_eq(rill_job_wait(job), RILL_OK);
    memset(&st, 0x55, sizeof st);
    cr_assert_eq(rill_job_checkpoint_stats(job, &st, sizeof st), RILL_OK);
    cr_assert_eq(st.completed, 0);
    cr_assert_eq(st.failed, 0);
    cr_assert_str_eq(st.last_failure, "");
    rill_job_free(job);
    cr_assert_eq(rill_env_set_tolerable_checkpoint_failures(env, -1), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "tolerable");
    cr_assert_eq(rill_env_set_tolerable_checkpoint_failures(NULL, 1), RILL_EINVAL);
    cr_assert_eq(rill_env_set_tolerable_checkpoint_failures(env, 0), RILL_OK);
    rill_env_free(env);
}

/* ---- a final snapshot that cannot be written ----------------------------- */

/* Slow (1 ms every 8 records, for ten seconds at most) until a checkpoint
 * completed, so that the job does not end before one. */
static int until_checkpoint(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    static _Thread_local unsigned n, waits;
    (void)ud;
    if ((++n & 7) == 0 && waits < 10000 && !has_checkpoint()) {
        waits++;
        sleep_ms(1);
    }
    return rill_emit(ctx, r, len);
}

static rill_env *files_env(uint64_t n, int restore)
{
    rill_env *env = checkpointed_env(2, restore);
    counted_files_job(env, n, 64, until_checkpoint);
    return env;
}

/* The job fails (its final snapshots fail every checkpoint) without the
 * sink committing its last records; a restore then commits each record
 * once. */
Test(tolerance, a_failing_final_snapshot_commits_nothing_uncovered)
{
    const uint64_t n = 50000;
    char blocker[300];
    snprintf(blocker, sizeof blocker, "%s/ck", tmpdir);
    cr_assert_eq(mkdir(blocker, 0755), 0);
    snprintf(blocker, sizeof blocker, "%s/ck/.final-0", tmpdir);
    int fd = open(blocker, O_WRONLY | O_CREAT | O_EXCL, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    rill_env *env = files_env(n, 0);
    int rc = rill_env_execute(env, "final snapshots fail");
    cr_assert_eq(rc, RILL_EIO, "%s: %s", rill_err_name(rc), rill_env_errmsg(env));
    assert_has(rill_env_errmsg(env), "final snapshot");
    assert_has(rill_env_errmsg(env), "Not a directory");
    rill_env_free(env);
    unsigned char *seen = calloc(n, 1);
    cr_assert_not_null(seen);
    int pending;
    count_output_lines("out", n, seen, &pending);
    for (uint64_t i = 0; i < n; i++)
        cr_assert_leq(seen[i], 1, "record %llu is in %d files", (unsigned long long)i, seen[i]);

    (void)unlink(blocker); /* the job removed it with its final snapshots */
    env = files_env(n, 1);
    rc = rill_env_execute(env, "restored");
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    memset(seen, 0, n);
    count_output_lines("out", n, seen, &pending);
    for (uint64_t i = 0; i < n; i++)
        cr_assert_eq(seen[i], 1, "record %llu is in %d files", (unsigned long long)i, seen[i]);
    free(seen);
}
