/* exactly_once_test.c - exactly-once output, counted: a generator of N
 * numbered records, key_by, a keyed count in value state, and the
 * exactly-once file sink, with checkpoints every CK_MS ms at parallelism
 * 2. However the runs end (to the end, killed with SIGKILL at a random
 * point, restored again after the end), every record is in exactly one
 * visible file, and a normal run logs no warning.
 *
 * RILL_LONG_TESTS=1 also runs the long_kills suite (many more seeds); it
 * is skipped otherwise. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_NAME "exactly-once"
#include "common.h"

#define KEYS 1000
#define CK_MS 75

/* ---- the job ------------------------------------------------------------ */

static rill_env *job_env(uint64_t n, int restore)
{
    rill_env *env = new_env(2);
    char ck[256], sd[256];
    tmp_path(ck, sizeof ck, "ck");
    tmp_path(sd, sizeof sd, "state");
    cr_assert_eq(rill_env_set_state_dir(env, sd), RILL_OK);
    cr_assert_eq(rill_env_enable_checkpointing(env, CK_MS, ck, RILL_EXACTLY_ONCE), RILL_OK);
    if (restore)
        cr_assert_eq(rill_env_set_restore(env, ck, 0), RILL_OK);
    counted_files_job(env, n, KEYS, NULL);
    return env;
}

/* Every record 0..n-1 in exactly one visible file. */
static void expect_each_once(uint64_t n, const char *when)
{
    unsigned char *seen = calloc(n, 1);
    cr_assert_not_null(seen);
    int pending;
    count_output_lines("out", n, seen, &pending);
    uint64_t missing = 0, repeated = 0, first_bad = n;
    for (uint64_t i = 0; i < n; i++) {
        missing += seen[i] == 0;
        repeated += seen[i] > 1;
        if (seen[i] != 1 && first_bad == n)
            first_bad = i;
    }
    free(seen);
    cr_assert(missing == 0 && repeated == 0,
              "%s: %llu records missing, %llu in more than one file (first: %llu)", when,
              (unsigned long long)missing, (unsigned long long)repeated,
              (unsigned long long)first_bad);
}

/* ---- warnings ------------------------------------------------------------ */

static atomic_int warnings;
static char first_warning[512];

static void count_warnings(int level, const char *msg, void *ud)
{
    (void)ud;
    if (level <= RILL_LOG_WARN && atomic_fetch_add(&warnings, 1) == 0)
        snprintf(first_warning, sizeof first_warning, "%s", msg);
}

/* ---- runs in this process ------------------------------------------------ */

TestSuite(exactly_once, .init = mk_tmp, .fini = rm_tmp, .timeout = 300);

/* A run to the end, then a run restored from its latest checkpoint: the
 * finished job's checkpoint resumes to nothing more to emit. */
Test(exactly_once, a_restore_after_the_end_emits_nothing_again)
{
    const uint64_t n = 600000;
    cr_assert_eq(rill_set_logger(count_warnings, RILL_LOG_WARN, NULL), RILL_OK);
    for (int run = 0; run < 3; run++) {
        rill_env *env = job_env(n, run > 0);
        cr_assert_eq(rill_env_execute(env, "run"), RILL_OK, "run %d: %s", run,
                     rill_env_errmsg(env));
        rill_env_free(env);
        char when[64];
        snprintf(when, sizeof when, "after run %d", run);
        expect_each_once(n, when);
    }
    rill_set_logger(NULL, RILL_LOG_ERROR, NULL);
    cr_assert_eq(atomic_load(&warnings), 0, "%d warnings, the first: %s",
                 atomic_load(&warnings), first_warning);
}

/* ---- runs in child processes, killed at random points -------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* One run in a child process, restored from the checkpoints when there
 * are any; killed after kill_ms unless it ends first. 1 when it ran to its
 * end, 0 when it was killed. */
static int child_run(uint64_t n, long kill_ms)
{
    int restore = has_checkpoint();
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        rill_env *env = job_env(n, restore);
        int rc = rill_env_execute(env, "child");
        if (rc)
            fprintf(stderr, "child: %s\n", rill_env_errmsg(env));
        _exit(rc ? 3 : 0);
    }
    int st = 0;
    for (long waited = 0; waited < kill_ms; waited++) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        cr_assert_neq(w, -1);
        if (w == pid) {
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the job failed (status %d)",
                      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            return 1;
        }
        sleep_ms(1);
    }
    kill(pid, SIGKILL);
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    if (WIFEXITED(st)) {
        cr_assert_eq(WEXITSTATUS(st), 0, "the job failed");
        return 1;
    }
    return 0;
}

/* Kills at random points until a run ends, then one more restored run;
 * every record exactly once. */
static void kill_campaign(uint64_t seed, uint64_t n, int max_kills)
{
    uint64_t s = seed;
    int kills = 0;
    while (kills < max_kills && !child_run(n, 20 + (long)(splitmix(&s) % 300)))
        kills++;
    if (getenv("RILL_TEST_VERBOSE"))
        fprintf(stderr, "seed %llx: %d kills\n", (unsigned long long)seed, kills);
    if (kills == max_kills)
        cr_assert_eq(child_run(n, 600000), 1);
    expect_each_once(n, "after the runs to the end");
    cr_assert_eq(child_run(n, 600000), 1);
    expect_each_once(n, "after a restore of the finished job");
}

static int seed_count(void)
{
    const char *e = getenv("RILL_KILL_SEEDS");
    return e && atoi(e) > 0 ? atoi(e) : 3;
}

Test(exactly_once, every_record_once_across_kills)
{
    for (int i = 0; i < seed_count(); i++) {
        kill_campaign(0x5eed0000u + (uint64_t)i, 2000000, 4);
        rm_tmp();
        mk_tmp();
    }
}

TestSuite(long_kills, .init = mk_tmp, .fini = rm_tmp, .timeout = 7200);

Test(long_kills, a_hundred_campaigns_of_kills)
{
    const char *v = getenv("RILL_LONG_TESTS");
    if (!v || strcmp(v, "1") != 0) {
        rm_tmp(); /* a skipped test does not reach .fini */
        cr_skip_test("set RILL_LONG_TESTS=1 to run the long kill campaigns");
    }
    for (int i = 0; i < 100; i++) {
        kill_campaign(0x10000000u + (uint64_t)i, 3000000, 8);
        rm_tmp();
        mk_tmp();
    }
}
