/* state_dir_test.c - where jobs and harnesses keep their working state:
 * by default a private directory (mode 0700) under $TMPDIR, or /tmp,
 * never the working directory; removed with the job or harness; one that
 * a process killed with SIGKILL left is removed at the next start in the
 * same place, with or without rill_env_set_state_dir; one that a live
 * process holds never is, whatever pid its name carries. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_NAME "statedir"
#include "common.h"

/* Each test runs with TMPDIR at tmpdir/tmp and in tmpdir/cwd. */
static char tmp_dir[300], cwd_dir[300], old_cwd[4096];

static void setup(void)
{
    mk_tmp();
    tmp_path(tmp_dir, sizeof tmp_dir, "tmp");
    tmp_path(cwd_dir, sizeof cwd_dir, "cwd");
    cr_assert_eq(mkdir(tmp_dir, 0755), 0);
    cr_assert_eq(mkdir(cwd_dir, 0755), 0);
    cr_assert_not_null(getcwd(old_cwd, sizeof old_cwd));
    cr_assert_eq(chdir(cwd_dir), 0);
    cr_assert_eq(setenv("TMPDIR", tmp_dir, 1), 0);
}

static void teardown(void)
{
    if (chdir(old_cwd) != 0)
        perror("chdir");
    unsetenv("TMPDIR");
    rm_tmp();
}

TestSuite(state_dir, .init = setup, .fini = teardown);

/* ---- jobs ------------------------------------------------------------------ */

typedef struct rec {
    uint64_t key;
    int64_t one;
} rec;

/* A source that sends 100 records, then idles until stop is set. */
typedef struct feed {
    atomic_int stop;
    atomic_long sent;
} feed;

static int feed_step(rill_ctx *ctx, void *ud)
{
    feed *f = ud;
    if (atomic_load(&f->stop))
        return RILL_SOURCE_END;
    if (atomic_load(&f->sent) >= 100) {
        sleep_ms(1);
        return RILL_SOURCE_IDLE;
    }
    long n = atomic_fetch_add(&f->sent, 1);
    rec r = {(uint64_t)n % 4, 1};
    int rc = rill_emit(ctx, &r, sizeof r);
    return rc ? rc : RILL_SOURCE_MORE;
}

static int drop(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx;
    (void)r;
    (void)ud;
    return len == sizeof(rec) ? 0 : -1;
}

/* feed -> key_by -> running count (keyed state, uid "count", parallelism
 * 2) -> sink; state under state_dir, or the default when NULL. */
static rill_env *keyed_env(feed *f, const char *state_dir)
{
    rill_env *env = new_env(2);
    if (state_dir)
        cr_assert_eq(rill_env_set_state_dir(env, state_dir), RILL_OK);
    rill_stream *s = rill_source(env, "feed", feed_step, f);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_key_by_bytes(s, 0, 8);
    s = rill_aggregate(s, "count", RILL_AGG_SUM, offsetof(rec, one), RILL_FIELD_I64);
    s = rill_stream_set_uid(s, "count");
    rill_sink(s, "out", drop, NULL);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    return env;
}

/* A job without keyed state, run to its end, with state_dir (or the
 * default): a start in that place. */
static void start_elsewhere(const char *state_dir)
{
    rill_env *env = new_env(1);
    if (state_dir)
        cr_assert_eq(rill_env_set_state_dir(env, state_dir), RILL_OK);
    sum_total t = {0, 0};
    rill_sink(rill_generator(env, "gen", 10, gen_index, NULL), "sum", total_sink, &t);
    run_ok(env);
    rill_env_free(env);
    cr_assert_eq(atomic_load(&t.count), 10);
}

/* ---- directory helpers ---------------------------------------------------- */

/* The entries of dir whose names start with prefix (at most 8 kept in
 * names, each up to 255 bytes); how many there are. */
static int entries(const char *dir, const char *prefix, char names[][256])
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            strncmp(e->d_name, prefix, strlen(prefix)) != 0)
            continue;
        if (names && n < 8)
            snprintf(names[n], 256, "%s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* Waits (up to 10 s) until dir has an entry starting with prefix; its
 * name into name. */
static void await_entry(const char *dir, const char *prefix, char *name)
{
    char names[8][256];
    for (int i = 0; i < 10000 && entries(dir, prefix, names) == 0; i++)
        sleep_ms(1);
    cr_assert_eq(entries(dir, prefix, names), 1, "no single '%s*' in %s", prefix, dir);
    snprintf(name, 256, "%s", names[0]);
}

/* name is prefix followed by exactly six letters or digits. */
static void assert_random_tail(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    cr_assert(strncmp(name, prefix, n) == 0 && strlen(name) == n + 6, "'%s' is not %sXXXXXX",
              name, prefix);
    for (const char *c = name + n; *c; c++)
        cr_assert(isalnum((unsigned char)*c), "'%s' is not %sXXXXXX", name, prefix);
}

/* path is a directory of ours, mode 0700, locked by its owner. */
static void assert_private_and_held(const char *path)
{
    struct stat sb;
    cr_assert_eq(lstat(path, &sb), 0, "%s", path);
    cr_assert(S_ISDIR(sb.st_mode), "%s is not a directory", path);
    cr_assert_eq(sb.st_mode & 0777, 0700, "%s has mode %o", path, sb.st_mode & 0777);
    cr_assert_eq(sb.st_uid, geteuid());
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    cr_assert_neq(flock(fd, LOCK_EX | LOCK_NB), 0, "%s is not held", path);
    cr_assert_eq(errno, EWOULDBLOCK);
    close(fd);
}

/* ---- the default place ----------------------------------------------------- */

Test(state_dir, the_default_is_a_private_directory_under_tmpdir_removed_with_the_job)
{
    feed f = {0, 0};
    rill_env *env = keyed_env(&f, NULL);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "default"), RILL_OK, "%s", rill_env_errmsg(env));
    char name[256], prefix[64], path[600], sub[700];
    snprintf(prefix, sizeof prefix, "rill-job-%ld-", (long)getpid());
    await_entry(tmp_dir, prefix, name);
    assert_random_tail(name, prefix);
    pathf(path, sizeof path, "%s/%s", tmp_dir, name);
    assert_private_and_held(path);
    for (int i = 0; i < 2; i++) {
        pathf(sub, sizeof sub, "%s/count/%d/data.mdb", path, i);
        for (int k = 0; k < 10000 && access(sub, F_OK) != 0; k++)
            sleep_ms(1);
        cr_assert_eq(access(sub, F_OK), 0, "%s: no state of subtask %d", sub, i);
    }
    cr_assert_eq(entries(tmp_dir, "", NULL), 1, "more than the job's directory in TMPDIR");
    atomic_store(&f.stop, 1);
    cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
    rill_job_free(job);
    cr_assert_eq(entries(tmp_dir, "", NULL), 0, "the job's directory is left in TMPDIR");
    cr_assert_eq(entries(cwd_dir, "", NULL), 0, "the job wrote into the working directory");
    rill_env_free(env);
}

static int count_in(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ud;
    rill_state *st = rill_ctx_state(ctx, "n");
    const void *v;
    size_t vl;
    int64_t n = 0;
    if (rill_state_get(st, &v, &vl) == RILL_OK && vl == sizeof n)
        memcpy(&n, v, sizeof n);
    n++;
    int rc = rill_state_put(st, &n, sizeof n);
    return rc ? rc : rill_emit(ctx, r, len);
}

Test(state_dir, a_harness_keeps_its_state_in_a_private_directory_too)
{
    rill_env *env = new_env(1);
    rill_stream *s = rill_key_by_bytes(rill_harness_input(env, "in"), 0, 8);
    s = rill_process(s, "counter", count_in, NULL, NULL);
    s = rill_stream_add_state(s, "n", RILL_STATE_VALUE);
    rill_harness *h;
    cr_assert_eq(rill_harness_new(&h, env, s), RILL_OK, "%s", rill_env_errmsg(env));
    rec r = {7, 1};
    cr_assert_eq(rill_harness_push(h, 0, &r, sizeof r, 0), RILL_OK, "%s",
                 rill_harness_errmsg(h));
    char name[256], prefix[64], path[600];
    snprintf(prefix, sizeof prefix, "rill-harness-%ld-", (long)getpid());
    await_entry(tmp_dir, prefix, name);
    assert_random_tail(name, prefix);
    pathf(path, sizeof path, "%s/%s", tmp_dir, name);
    assert_private_and_held(path);
    rill_harness_free(h);
    cr_assert_eq(entries(tmp_dir, "", NULL), 0, "the harness's directory is left in TMPDIR");
    cr_assert_eq(entries(cwd_dir, "", NULL), 0, "the harness wrote into the working directory");
    rill_env_free(env);
}

Test(state_dir, tmpdir_unset_empty_or_relative_means_slash_tmp)
{
    static const char *const values[] = {NULL, "", "relative/dir"};
    for (int i = 0; i < 3; i++) {
        if (values[i])
            cr_assert_eq(setenv("TMPDIR", values[i], 1), 0);
        else
            unsetenv("TMPDIR");
        feed f = {0, 0};
        rill_env *env = keyed_env(&f, NULL);
        rill_job *job;
        cr_assert_eq(rill_job_start(&job, env, "in /tmp"), RILL_OK, "%s", rill_env_errmsg(env));
        char name[256], prefix[64];
        snprintf(prefix, sizeof prefix, "rill-job-%ld-", (long)getpid());
        await_entry("/tmp", prefix, name);
        atomic_store(&f.stop, 1);
        cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
        rill_job_free(job);
        rill_env_free(env);
        cr_assert_eq(entries("/tmp", prefix, NULL), 0, "TMPDIR %s: /tmp/%s is left",
                     values[i] ? values[i] : "unset", name);
        cr_assert_eq(entries(cwd_dir, "", NULL), 0);
    }
}

/* ---- what killed processes leave ------------------------------------------ */

typedef struct place {
    const char *name;
    const char *sub; /* the state directory under tmpdir; NULL: the default */
    const char *kind; /* a job's directory name starts with kind-<pid>- */
} place;

static const place places[] = {
    {"the default place", NULL, "rill-job"},
    {"a state directory set on the environment", "state", "job"},
};

/* The parent directory of a place's working directories. */
static void place_dir(const place *pl, char *out, size_t cap)
{
    if (pl->sub)
        tmp_path(out, cap, pl->sub);
    else
        pathf(out, cap, "%s", tmp_dir);
}

/* A child process running the keyed job in pl until the parent writes to
 * *to_child (then it ends the job, and exits 0 when the job succeeded);
 * returns once the job's directory exists, its name in name. */
static pid_t start_child(const place *pl, int *to_child, char *name)
{
    char sd[300], prefix[64];
    place_dir(pl, sd, sizeof sd);
    int p[2];
    pid_t pid = fork_piped(p);
    if (pid == 0) {
        close(p[1]);
        feed f = {0, 0};
        rill_env *env = keyed_env(&f, pl->sub ? sd : NULL);
        rill_job *job;
        if (rill_job_start(&job, env, "child") != RILL_OK)
            _exit(3);
        char c;
        if (read(p[0], &c, 1) != 1)
            _exit(4);
        atomic_store(&f.stop, 1);
        int rc = rill_job_wait(job);
        rill_job_free(job);
        rill_env_free(env);
        _exit(rc ? 5 : 0);
    }
    close(p[0]);
    *to_child = p[1];
    snprintf(prefix, sizeof prefix, "%s-%ld-", pl->kind, (long)pid);
    for (int i = 0; i < 10000 && (access(sd, F_OK) != 0 || entries(sd, prefix, NULL) == 0);
         i++)
        sleep_ms(1);
    await_entry(sd, prefix, name);
    /* Both subtasks of the keyed operator opened their state. */
    for (int i = 0; i < 2; i++) {
        char sub[700];
        pathf(sub, sizeof sub, "%s/%s/count/%d/data.mdb", sd, name, i);
        for (int k = 0; k < 10000 && access(sub, F_OK) != 0; k++)
            sleep_ms(1);
        cr_assert_eq(access(sub, F_OK), 0, "%s: the child has no state", sub);
    }
    return pid;
}

static void kill_child(pid_t pid)
{
    kill(pid, SIGKILL);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "the child ended before the kill");
}

Test(state_dir, a_directory_left_by_a_killed_process_is_removed_at_the_next_start)
{
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
        const place *pl = &places[i];
        char sd[300], name[256], path[600];
        place_dir(pl, sd, sizeof sd);
        int to_child;
        pid_t pid = start_child(pl, &to_child, name);
        kill_child(pid);
        close(to_child);
        pathf(path, sizeof path, "%s/%s/count/0/data.mdb", sd, name);
        cr_assert_eq(access(path, F_OK), 0, "%s: the killed job left no state", pl->name);
        start_elsewhere(pl->sub ? sd : NULL);
        pathf(path, sizeof path, "%s/%s", sd, name);
        cr_assert_neq(access(path, F_OK), 0, "%s: '%s' is still there after a start",
                      pl->name, path);
    }
}

/* A process that holds directory path (an flock, as a job does) until
 * the parent writes to *to_child. */
static pid_t hold(const char *path, int *to_child)
{
    int p[2], q[2];
    cr_assert_eq(pipe(q), 0);
    pid_t pid = fork_piped(p);
    if (pid == 0) {
        close(p[1]);
        close(q[0]);
        int fd = open(path, O_RDONLY | O_DIRECTORY);
        char c = 1;
        if (fd < 0 || flock(fd, LOCK_EX) != 0 || write(q[1], &c, 1) != 1)
            _exit(3);
        _exit(read(p[0], &c, 1) == 1 ? 0 : 4);
    }
    close(p[0]);
    close(q[1]);
    char c;
    cr_assert_eq(read(q[0], &c, 1), 1, "the holder could not lock %s", path);
    close(q[0]);
    *to_child = p[1];
    return pid;
}

static void release(pid_t pid, int to_child)
{
    cr_assert_eq(write(to_child, "x", 1), 1);
    close(to_child);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child failed (status %d)",
              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

Test(state_dir, a_directory_a_live_process_holds_is_never_removed)
{
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
        const place *pl = &places[i];
        char sd[300], name[256], path[600], gone[600], held[600], us[600];
        place_dir(pl, sd, sizeof sd);
        int to_child;
        pid_t pid = start_child(pl, &to_child, name);
        pathf(path, sizeof path, "%s/%s", sd, name);
        assert_private_and_held(path);
        /* Names say nothing: a directory of a process that ended (its pid
         * in the name), held by another, stays; one of this very process
         * that nobody holds goes. */
        pid_t dead = fork();
        cr_assert_geq(dead, 0);
        if (dead == 0)
            _exit(0);
        cr_assert_eq(waitpid(dead, NULL, 0), dead);
        const char *px = pl->sub ? "" : "rill-";
        pathf(held, sizeof held, "%s/%sjob-%ld-%s", sd, px, (long)dead,
              pl->sub ? "1" : "Ab12Cd");
        pathf(us, sizeof us, "%s/%sjob-%ld-%s", sd, px, (long)getpid(),
              pl->sub ? "999" : "Zz99Yy");
        cr_assert_eq(mkdir(held, 0700), 0);
        cr_assert_eq(mkdir(us, 0700), 0);
        int to_holder;
        pid_t holder = hold(held, &to_holder);

        start_elsewhere(pl->sub ? sd : NULL);
        feed f = {1, 100}; /* a keyed job that ends at once */
        rill_env *env = keyed_env(&f, pl->sub ? sd : NULL);
        run_ok(env);
        rill_env_free(env);

        cr_assert_eq(access(path, F_OK), 0, "%s: the live job's directory was removed",
                     pl->name);
        cr_assert_eq(access(held, F_OK), 0, "%s: a held directory was removed", pl->name);
        cr_assert_neq(access(us, F_OK), 0, "%s: '%s' nobody holds is still there", pl->name,
                      us);
        /* The live job goes on to its end with its state. */
        release(pid, to_child);
        cr_assert_neq(access(path, F_OK), 0, "%s: the job did not remove its directory",
                      pl->name);
        release(holder, to_holder);
        start_elsewhere(pl->sub ? sd : NULL);
        cr_assert_neq(access(held, F_OK), 0, "%s: released, '%s' stays", pl->name, held);
        pathf(gone, sizeof gone, "%s", sd);
        cr_assert_eq(entries(gone, "", NULL), 0, "%s: '%s' is not empty", pl->name, sd);
    }
}

/* ---- errors ---------------------------------------------------------------- */

Test(state_dir, a_working_directory_that_cannot_be_made_fails_the_job_naming_it)
{
    char file[300], sd[400], missing[400];
    tmp_path(file, sizeof file, "a-file");
    FILE *fp = fopen(file, "w");
    cr_assert_not_null(fp);
    fclose(fp);
    pathf(sd, sizeof sd, "%s/state", file);
    pathf(missing, sizeof missing, "%s/missing", tmpdir);
    /* A state directory under a file; a TMPDIR that does not exist. */
    const char *dirs[] = {sd, NULL};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i])
            cr_assert_eq(setenv("TMPDIR", missing, 1), 0);
        feed f = {1, 100};
        rill_env *env = keyed_env(&f, dirs[i]);
        int rc = rill_env_execute(env, "no state directory");
        cr_assert_eq(rc, RILL_EIO, "%s (%s)", rill_err_name(rc), rill_env_errmsg(env));
        assert_has(rill_env_errmsg(env), dirs[i] ? file : missing);
        assert_has(rill_env_errmsg(env), "count");
        rill_env_free(env);
    }
}
