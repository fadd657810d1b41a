/* checkpoint_dir_test.c - what a directory of checkpoints holds and how a
 * restore reads it: removing a checkpoint never leaves one that looks
 * complete, however the process is killed (kill -9 of a child that
 * removes checkpoints, at seeded random points, and of a child running a
 * checkpointed job); what a killed job left is removed at the next start
 * in the same directory; a restore takes the newest complete checkpoint,
 * and rill-snapshot list calls complete only those; with
 * RILL_RESTORE_IF_EXISTS a job starts empty when there is no checkpoint;
 * the restore errors of rill_job_start and rill_env_execute.
 *
 * RILL_LONG_TESTS=1 runs the kill loops with many more seeds. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_NAME "ckdir"
#include "common.h"
#include "runtime/ckpt_dir.h"
#include "snapshot/format.h"
#include "tool_run.h"
#include "util/error.h"

TestSuite(ckdir, .init = mk_tmp, .fini = rm_tmp);
TestSuite(restore_flags, .init = mk_tmp, .fini = rm_tmp);

static int long_tests(void)
{
    const char *v = getenv("RILL_LONG_TESTS");
    return v && strcmp(v, "1") == 0;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static void put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "create %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static void flip_byte(const char *path, off_t at)
{
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "open %s", path);
    cr_assert_eq(fseeko(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    cr_assert_neq(c, EOF);
    cr_assert_eq(fseeko(f, at, SEEK_SET), 0);
    fputc(c ^ 0x5a, f);
    cr_assert_eq(fclose(f), 0);
}

/* ---- checkpoints written with the format API --------------------------- */

/* dir/_metadata listing n files dir/<i>.snap (one small section each). */
static void write_checkpoint(const char *dir, int n)
{
    char err[RILL__ERRMSG_MAX], path[600];
    cr_assert_eq(mkdir(dir, 0755), 0, "mkdir %s", dir);
    rill__snap_meta_file *files = calloc((size_t)n, sizeof *files);
    char(*names)[32] = calloc((size_t)n, sizeof *names);
    cr_assert(files && names);
    for (int i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "%d.snap", i);
        pathf(path, sizeof path, "%s/%s", dir, names[i]);
        rill__snap_writer *w;
        rill__snap_fileinfo info;
        cr_assert_eq(rill__snap_writer_open(&w, path, err), RILL_OK, "%s", err);
        cr_assert_eq(rill__snap_writer_section_begin(w, RILL__SNAP_INFO, "op", "info",
                                                     RILL__SNAP_NO_KG, RILL__SNAP_NO_KG),
                     RILL_OK);
        cr_assert_eq(rill__snap_writer_append(w, &i, sizeof i), RILL_OK);
        cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
        cr_assert_eq(rill__snap_writer_commit(w, &info, err), RILL_OK, "%s", err);
        files[i] = (rill__snap_meta_file){names[i], info.size, info.digest};
    }
    rill__snap_meta m;
    memset(&m, 0, sizeof m);
    m.checkpoint_id = 1;
    m.timestamp_ms = 1700000000000;
    m.n_files = (size_t)n;
    m.files = files;
    m.job = "max_parallelism=128";
    m.job_len = strlen(m.job);
    pathf(path, sizeof path, "%s/_metadata", dir);
    cr_assert_eq(rill__snap_meta_write(path, &m, err), RILL_OK, "%s", err);
    free(files);
    free(names);
}

/* Every file of directory from hard-linked into new directory to. */
static void link_copy(const char *from, const char *to)
{
    cr_assert_eq(mkdir(to, 0755), 0, "mkdir %s", to);
    DIR *d = opendir(from);
    cr_assert_not_null(d, "%s", from);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char a[600], b[600];
        pathf(a, sizeof a, "%s/%s", from, e->d_name);
        pathf(b, sizeof b, "%s/%s", to, e->d_name);
        cr_assert_eq(link(a, b), 0, "link %s", b);
    }
    closedir(d);
}

/* Checkpoint dir has _metadata and, checked here with the format API and
 * stat (not with the code under test), every file it lists with its size
 * and digest: 1; no _metadata: 0; anything else fails the test. */
static int really_complete(const char *dir, const char *why)
{
    char m[600], err[RILL__ERRMSG_MAX];
    pathf(m, sizeof m, "%s/_metadata", dir);
    if (!exists(m))
        return 0;
    rill__snap_meta *meta;
    cr_assert_eq(rill__snap_meta_read(m, &meta, err), RILL_OK, "%s: %s", why, err);
    for (size_t i = 0; i < meta->n_files; i++) {
        char f[900];
        struct stat sb;
        pathf(f, sizeof f, "%s/%s", dir, meta->files[i].name);
        cr_assert_eq(stat(f, &sb), 0, "%s: '%s' has a _metadata but its '%s' is missing", why,
                     dir, meta->files[i].name);
        cr_assert_eq((uint64_t)sb.st_size, meta->files[i].size, "%s: '%s' has another size",
                     why, f);
    }
    cr_assert_eq(rill__snap_meta_check_files(meta, dir, err), RILL_OK, "%s: %s", why, err);
    rill__snap_meta_free(meta);
    return 1;
}

/* The rows of rill-snapshot list of root: *complete gets the bit of each
 * id (< 64) the tool calls complete. */
static uint64_t listed_complete(const char *root)
{
    result r = run("list", root, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    uint64_t set = 0;
    char *line = strchr(r.out, '\n'); /* after the header */
    while (line && line[1]) {
        long long id;
        char status[32];
        cr_assert_eq(sscanf(line + 1, "%lld %31s", &id, status), 2, "row: %s", line + 1);
        if (strcmp(status, "complete") == 0 && id >= 0 && id < 64)
            set |= 1ull << id;
        line = strchr(line + 1, '\n');
    }
    result_free(&r);
    return set;
}

/* ---- removal killed at seeded random points ---------------------------- */

#define PROTO_FILES 24
#define CHECKPOINTS 12

/* Child: remove root/chk-1.. oldest first, as retention does, telling
 * the parent as each removal starts. */
static void remover(const char *root, int fd)
{
    for (int id = 1; id <= CHECKPOINTS; id++) {
        char d[400];
        snprintf(d, sizeof d, "%s/chk-%d", root, id);
        if (write(fd, &(char){1}, 1) != 1)
            _exit(2);
        rill__ckpt_dir_remove(d);
    }
    _exit(0);
}

/* Lay out root (CHECKPOINTS copies of proto), run the remover in a child
 * and kill it kill_us microseconds after it started to remove chk-<at>
 * (at 0: let it finish). 1 when the kill came before its end. */
static int remove_and_kill(const char *proto, const char *root, int at, long kill_us)
{
    cr_assert_eq(mkdir(root, 0755), 0);
    for (int id = 1; id <= CHECKPOINTS; id++) {
        char d[400];
        pathf(d, sizeof d, "%s/chk-%d", root, id);
        link_copy(proto, d);
    }
    sync(); /* the remover's fsyncs do not write the links made here */
    int p[2];
    pid_t pid = fork_piped(p);
    if (pid == 0) {
        close(p[0]);
        remover(root, p[1]);
    }
    close(p[1]);
    char c;
    for (int i = 0; i < at; i++)
        cr_assert_eq(read(p[0], &c, 1), 1);
    while (!at && read(p[0], &c, 1) == 1)
        ; /* to its end */
    if (at) {
        struct timespec ts = {kill_us / 1000000, (kill_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
    }
    close(p[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st)) {
        cr_assert_eq(WTERMSIG(st), SIGKILL);
        return 1;
    }
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the remover failed");
    return 0;
}

/* After a kill: the checkpoints with a _metadata are all complete, and
 * are the newest ones (removal goes oldest first); the tool agrees; then
 * the clean-up leaves exactly those, and the newest is what a restore
 * takes. Returns 1 when the kill came in the middle of a removal. */
static int check_after_kill(const char *root, uint64_t seed, int with_tool)
{
    char why[64], p[600];
    snprintf(why, sizeof why, "seed %llu", (unsigned long long)seed);
    uint64_t complete = 0;
    int trash = 0, first = 0;
    DIR *d = opendir(root);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t id;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!strncmp(e->d_name, ".deleting-", 10)) {
            trash++;
            continue;
        }
        cr_assert(rill__ckpt_dir_id(e->d_name, &id) && id >= 1 && id <= CHECKPOINTS,
                  "%s: unexpected '%s'", why, e->d_name);
        pathf(p, sizeof p, "%s/%s", root, e->d_name);
        if (really_complete(p, why))
            complete |= 1ull << id;
    }
    closedir(d);
    cr_assert_leq(trash, 1, "%s: %d checkpoints being removed at once", why, trash);
    for (int id = 1; id <= CHECKPOINTS; id++)
        if (complete >> id & 1) {
            first = id;
            break;
        }
    for (int id = first; first && id <= CHECKPOINTS; id++)
        cr_assert(complete >> id & 1, "%s: chk-%d is gone but chk-%d is there", why, id, first);
    if (with_tool)
        cr_assert_eq(listed_complete(root), complete, "%s: the tool's complete ones differ",
                     why);

    rill__ckpt_dir_clean(root);
    d = opendir(root);
    cr_assert_not_null(d);
    while ((e = readdir(d))) {
        int64_t id;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        cr_assert(rill__ckpt_dir_id(e->d_name, &id) && (complete >> id & 1),
                  "%s: '%s' is left after the clean-up", why, e->d_name);
        pathf(p, sizeof p, "%s/%s", root, e->d_name);
        cr_assert(really_complete(p, why), "%s: the clean-up damaged '%s'", why, p);
    }
    closedir(d);
    char latest[600], err[RILL__ERRMSG_MAX];
    int rc = rill__ckpt_dir_latest(root, latest, sizeof latest, err);
    if (complete) {
        cr_assert_eq(rc, RILL_OK, "%s: %s", why, err);
        pathf(p, sizeof p, "%s/chk-%d", root, CHECKPOINTS);
        cr_assert_str_eq(latest, p, "%s", why);
    } else {
        cr_assert_eq(rc, RILL_ENOTFOUND, "%s: %s", why, err);
    }
    return trash > 0;
}

Test(ckdir, a_removal_killed_at_any_point_never_leaves_a_checkpoint_that_looks_complete)
{
    char proto[256], root[256];
    tmp_path(proto, sizeof proto, "proto");
    write_checkpoint(proto, PROTO_FILES);
    tmp_path(root, sizeof root, "ck");
    /* A whole run removes them all. */
    cr_assert_eq(remove_and_kill(proto, root, 0, 0), 0);
    cr_assert_eq(check_after_kill(root, 0, 1), 0);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    /* Kills in the removal of a seeded checkpoint, at a seeded time. */
    int seeds = long_tests() ? 3000 : 60, killed = 0, mid = 0;
    uint64_t s = 42;
    for (int seed = 1; seed <= seeds; seed++) {
        int at = 1 + (int)(splitmix(&s) % CHECKPOINTS);
        killed += remove_and_kill(proto, root, at, (long)(splitmix(&s) % 3000));
        mid += check_after_kill(root, (uint64_t)seed, seed <= 10);
        nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    }
    /* The kills did land in the middle of removals. */
    cr_assert_geq(killed, seeds / 2, "only %d of %d runs were killed", killed, seeds);
    cr_assert_geq(mid, seeds / 4, "only %d of %d kills came during a removal", mid, seeds);
}

/* ---- the job: a keyed count with checkpoints ----------------------------- */

#define N_RECORDS 30000
#define KEYS 16

typedef struct rec {
    uint64_t key;
    int64_t one;
} rec;

typedef struct counts {
    pthread_mutex_t mu;
    int64_t last[KEYS]; /* last running count the sink saw per key */
    long seen;          /* records the sink got */
} counts;

static atomic_int paced; /* the source pauses 1 ms every 32 records */

static int gen_rec(rill_ctx *ctx, uint64_t i, void *ud)
{
    (void)ud;
    if (atomic_load(&paced) && i % 32 == 0)
        sleep_ms(1);
    rec r = {i % KEYS, 1};
    return rill_emit(ctx, &r, sizeof r);
}

static int keep_last(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx;
    counts *c = ud;
    rec x;
    if (len != sizeof x)
        return -1;
    memcpy(&x, r, sizeof x);
    if (x.key >= KEYS)
        return -2;
    pthread_mutex_lock(&c->mu);
    c->last[x.key] = x.one;
    c->seen++;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void counts_init(counts *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
}

/* generator -> key_by -> running count per key (uid "count") -> sink, at
 * parallelism 3 (the source 1); checkpoints every 10 ms into ck keeping
 * `retained` when ck is not NULL; restoring from restore with flags when
 * restore is not NULL. */
static rill_env *count_env(counts *c, const char *ck, int retained, const char *restore,
                           int flags)
{
    rill_env *env = new_env(3);
    char sd[256];
    tmp_path(sd, sizeof sd, "state");
    cr_assert_eq(rill_env_set_state_dir(env, sd), RILL_OK);
    if (ck) {
        cr_assert_eq(rill_env_enable_checkpointing(env, 10, ck, RILL_EXACTLY_ONCE), RILL_OK);
        cr_assert_eq(rill_env_set_checkpoints_retained(env, retained), RILL_OK);
    }
    if (restore)
        cr_assert_eq(rill_env_set_restore(env, restore, flags), RILL_OK, "%s",
                     rill_env_errmsg(env));
    rill_stream *s = rill_generator(env, "gen", N_RECORDS, gen_rec, NULL);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_key_by_bytes(s, 0, 8);
    s = rill_aggregate(s, "count", RILL_AGG_SUM, offsetof(rec, one), RILL_FIELD_I64);
    s = rill_stream_set_uid(s, "count");
    rill_stream_set_parallelism(rill_sink(s, "out", keep_last, c), 1);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    return env;
}

/* Every key counted N_RECORDS / KEYS times in all. */
static void expect_full_counts(const counts *c, const char *why)
{
    for (int k = 0; k < KEYS; k++)
        cr_assert_eq(c->last[k], N_RECORDS / KEYS, "%s: key %d counted %lld times, want %d",
                     why, k, (long long)c->last[k], N_RECORDS / KEYS);
}

/* Runs the paced job until `want` checkpoints completed into ck, then
 * cancels it (its checkpoints stay); the id of the last one. */
static int64_t take_checkpoints(const char *ck, int retained, int64_t want)
{
    counts c;
    counts_init(&c);
    atomic_store(&paced, 1);
    rill_env *env = count_env(&c, ck, retained, NULL, 0);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "first"), RILL_OK, "%s", rill_env_errmsg(env));
    while (rill_job_last_checkpoint(job) < want && rill_job_status(job) == RILL_JOB_RUNNING)
        sleep_ms(2);
    rill_job_cancel(job);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED, "%s", rill_job_errmsg(job));
    int64_t id = rill_job_last_checkpoint(job);
    cr_assert_geq(id, want, "the job ended before %lld checkpoints", (long long)want);
    rill_job_free(job);
    rill_env_free(env);
    atomic_store(&paced, 0);
    pthread_mutex_destroy(&c.mu);
    return id;
}

/* A job that checkpoints into ck (keeping `retained`) and restores from
 * it with flags runs to its end and counts exactly; returns how many
 * records its sink got. */
static long run_restored(const char *ck, int retained, int flags, const char *why)
{
    counts c;
    counts_init(&c);
    rill_env *env = count_env(&c, ck, retained, ck, flags);
    int rc = rill_env_execute(env, why);
    cr_assert_eq(rc, RILL_OK, "%s: %s", why, rill_env_errmsg(env));
    rill_env_free(env);
    expect_full_counts(&c, why);
    pthread_mutex_destroy(&c.mu);
    return c.seen;
}

/* The ids (< 64) of the complete checkpoints in root, as a bit set. */
static uint64_t complete_ids(const char *root)
{
    DIR *d = opendir(root);
    cr_assert_not_null(d);
    uint64_t set = 0;
    int64_t id;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[600];
        pathf(p, sizeof p, "%s/%s", root, e->d_name);
        if (rill__ckpt_dir_id(e->d_name, &id) && id < 64 && really_complete(p, "listing"))
            set |= 1ull << id;
    }
    closedir(d);
    return set;
}

/* ---- a checkpointing job killed at seeded points ------------------------- */

static void kill_a_checkpointing_job(uint64_t seed)
{
    char ck[256], why[64], latest[600], err[RILL__ERRMSG_MAX];
    snprintf(why, sizeof why, "seed %llu", (unsigned long long)seed);
    tmp_path(ck, sizeof ck, "ck");
    nftw(ck, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        counts c;
        counts_init(&c);
        atomic_store(&paced, 1);
        rill_env *env = count_env(&c, ck, 2, NULL, 0);
        int rc = rill_env_execute(env, "killed");
        _exit(rc ? 3 : 0);
    }
    while (rill__ckpt_dir_latest(ck, latest, sizeof latest, err) != RILL_OK) {
        int st = 0;
        cr_assert_eq(waitpid(pid, &st, WNOHANG), 0, "%s: the job ended before a checkpoint",
                     why);
        sleep_ms(1);
    }
    uint64_t s = seed;
    sleep_ms((long)(splitmix(&s) % 301));
    kill(pid, SIGKILL);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: the job ended before the kill",
              why);

    /* What the tool calls complete is complete. */
    uint64_t listed = listed_complete(ck);
    DIR *d = opendir(ck);
    cr_assert_not_null(d);
    struct dirent *e;
    int64_t id;
    while ((e = readdir(d))) {
        char p[600];
        pathf(p, sizeof p, "%s/%s", ck, e->d_name);
        if (rill__ckpt_dir_id(e->d_name, &id) && id < 64)
            cr_assert_eq(really_complete(p, why), (int)(listed >> id & 1),
                         "%s: the tool and the files disagree on %s", why, p);
    }
    closedir(d);

    /* A new job restores from it and counts exactly. */
    run_restored(ck, 2, 0, why);
    /* Nothing but complete checkpoints is left. */
    d = opendir(ck);
    cr_assert_not_null(d);
    while ((e = readdir(d))) {
        char p[600];
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        pathf(p, sizeof p, "%s/%s", ck, e->d_name);
        cr_assert(rill__ckpt_dir_id(e->d_name, &id) && really_complete(p, why),
                  "%s: '%s' is left", why, p);
    }
    closedir(d);
}

Test(ckdir, a_job_killed_while_it_checkpoints_leaves_only_complete_checkpoints)
{
    int seeds = long_tests() ? 40 : 2;
    for (int seed = 1; seed <= seeds; seed++)
        kill_a_checkpointing_job((uint64_t)seed * 7919);
}

/* ---- restore takes the newest complete checkpoint ----------------------- */

/* Removes one data file of root/chk-<id>, as a crash in the middle of a
 * depth-first removal would; returns its path in out. */
static void remove_a_data_file(const char *root, int64_t id, char *out, size_t cap)
{
    char m[400], err[RILL__ERRMSG_MAX];
    pathf(m, sizeof m, "%s/chk-%lld/_metadata", root, (long long)id);
    rill__snap_meta *meta;
    cr_assert_eq(rill__snap_meta_read(m, &meta, err), RILL_OK, "%s", err);
    cr_assert_gt(meta->n_files, 1);
    pathf(out, cap, "%s/chk-%lld/%s", root, (long long)id, meta->files[1].name);
    rill__snap_meta_free(meta);
    cr_assert_eq(unlink(out), 0, "unlink %s", out);
}

Test(ckdir, a_restore_passes_over_a_newer_checkpoint_that_misses_a_file)
{
    char ck[256], gone[600];
    tmp_path(ck, sizeof ck, "ck");
    int64_t b = take_checkpoints(ck, 10, 2), a = 0;
    uint64_t kept = complete_ids(ck);
    cr_assert_lt(b, 64);
    for (int64_t id = 1; id < b; id++)
        if (kept >> id & 1)
            a = id; /* the newest complete one before b */
    cr_assert_gt(a, 0);
    remove_a_data_file(ck, b, gone, sizeof gone);

    counts c;
    counts_init(&c);
    rill_env *env = count_env(&c, NULL, 1, ck, 0);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "restored"), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_job_last_checkpoint(job), a, "restored from %lld, not %lld",
                 (long long)rill_job_last_checkpoint(job), (long long)a);
    cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
    rill_job_free(job);
    expect_full_counts(&c, "restored from the older checkpoint");
    cr_assert_lt(c.seen, N_RECORDS, "the source did not resume from its position");

    /* With the older one incomplete too, nothing complete is left: a
     * corrupt directory, not an empty start. */
    remove_a_data_file(ck, a, gone, sizeof gone);
    for (int flags = 0; flags <= RILL_RESTORE_IF_EXISTS; flags += RILL_RESTORE_IF_EXISTS) {
        cr_assert_eq(rill_env_set_restore(env, ck, flags), RILL_OK);
        int rc = rill_env_execute(env, "no complete checkpoint");
        cr_assert_eq(rc, RILL_ECORRUPT, "flags %d: %s (%s)", flags, rill_err_name(rc),
                     rill_env_errmsg(env));
        assert_has(rill_env_errmsg(env), "chk-");
        assert_has(rill_env_errmsg(env), "is missing");
    }
    rill_env_free(env);
    pthread_mutex_destroy(&c.mu);
}

/* ---- the clean-up at the next start ---------------------------------------- */

Test(ckdir, what_a_killed_job_left_is_removed_at_the_next_start)
{
    char ck[256], p[600], q[600], gone[600];
    tmp_path(ck, sizeof ck, "ck");
    int64_t b = take_checkpoints(ck, 10, 2), a = 1;
    uint64_t kept = complete_ids(ck);
    /* chk-<b+1>: being written when the job was killed (no _metadata). */
    pathf(p, sizeof p, "%s/chk-%lld", ck, (long long)b + 1);
    cr_assert_eq(mkdir(p, 0755), 0);
    pathf(q, sizeof q, "%s/0.snap.tmp", p);
    put_file(q, "partial");
    /* chk-<b+2>: partly removed the old way (_metadata, a file missing). */
    pathf(q, sizeof q, "%s/chk-%lld", ck, (long long)b);
    pathf(p, sizeof p, "%s/chk-%lld", ck, (long long)b + 2);
    link_copy(q, p);
    remove_a_data_file(ck, b + 2, gone, sizeof gone);
    /* Being removed, final snapshots of the killed run, a temporary file
     * in a complete checkpoint. */
    pathf(p, sizeof p, "%s/.deleting-chk-%lld", ck, (long long)a);
    link_copy(q, p);
    pathf(p, sizeof p, "%s/.final-1", ck);
    cr_assert_eq(mkdir(p, 0755), 0);
    pathf(p, sizeof p, "%s/.final-1/0.snap", ck);
    put_file(p, "final");
    pathf(p, sizeof p, "%s/chk-%lld/_metadata.tmp", ck, (long long)b);
    put_file(p, "tmp");
    /* What the user keeps there. */
    static const char *const theirs[] = {"notes.txt", "chk-x", "savepoints", ".keep"};
    for (int i = 0; i < 4; i++) {
        pathf(p, sizeof p, "%s/%s", ck, theirs[i]);
        if (i == 0)
            put_file(p, "mine");
        else
            cr_assert_eq(mkdir(p, 0755), 0);
    }

    /* A service's start: restore if there is a checkpoint, checkpoint into
     * the same directory. */
    cr_assert_lt(run_restored(ck, 10, RILL_RESTORE_IF_EXISTS, "next start"), N_RECORDS,
                 "the source did not resume from its position");

    char leftovers[5][64];
    snprintf(leftovers[0], 64, "chk-%lld", (long long)b + 1);
    snprintf(leftovers[1], 64, "chk-%lld", (long long)b + 2);
    snprintf(leftovers[2], 64, ".deleting-chk-%lld", (long long)a);
    snprintf(leftovers[3], 64, ".final-1");
    snprintf(leftovers[4], 64, "chk-%lld/_metadata.tmp", (long long)b);
    for (int i = 0; i < 5; i++) {
        pathf(p, sizeof p, "%s/%s", ck, leftovers[i]);
        cr_assert(!exists(p), "'%s' is still there", p);
    }
    cr_assert_eq(complete_ids(ck) & kept, kept, "a complete checkpoint is gone");
    for (int i = 0; i < 4; i++) {
        pathf(p, sizeof p, "%s/%s", ck, theirs[i]);
        cr_assert(exists(p), "'%s' of the user was removed", p);
    }
    /* New checkpoints never took the names of removed ones. */
    DIR *d = opendir(ck);
    cr_assert_not_null(d);
    struct dirent *e;
    int64_t id;
    while ((e = readdir(d)))
        if (rill__ckpt_dir_id(e->d_name, &id))
            cr_assert(id <= b || id > b + 2, "chk-%lld reused a removed checkpoint's name",
                      (long long)id);
    closedir(d);
}

/* ---- RILL_RESTORE_IF_EXISTS ------------------------------------------------ */

typedef struct nothing_case {
    const char *name;
    const char *sub; /* what tmpdir/r holds: NULL nothing, "" an empty dir */
    const char *file;
} nothing_case;

Test(restore_flags, if_exists_starts_empty_when_the_path_holds_no_checkpoint)
{
    static const nothing_case cases[] = {
        {"a missing directory", NULL, NULL},
        {"an empty directory", "", NULL},
        {"a checkpoint being written only", "chk-3", "0.snap"},
        {"other files only", "", "notes.txt"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const nothing_case *k = &cases[i];
        char r[256], p[600];
        pathf(r, sizeof r, "%s/r%zu", tmpdir, i);
        if (k->sub) {
            cr_assert_eq(mkdir(r, 0755), 0);
            pathf(p, sizeof p, "%s/%s", r, k->sub);
            if (k->sub[0])
                cr_assert_eq(mkdir(p, 0755), 0);
            if (k->file) {
                pathf(p, sizeof p, "%s/%s/%s", r, k->sub, k->file);
                put_file(p, "x");
            }
        }
        counts c;
        counts_init(&c);
        rill_env *env = count_env(&c, NULL, 1, r, RILL_RESTORE_IF_EXISTS);
        rill_job *job;
        int rc = rill_job_start(&job, env, "if exists");
        cr_assert_eq(rc, RILL_OK, "%s: %s (%s)", k->name, rill_err_name(rc),
                     rill_env_errmsg(env));
        cr_assert_eq(rill_job_last_checkpoint(job), 0, "%s", k->name);
        cr_assert_eq(rill_job_wait(job), RILL_OK, "%s: %s", k->name, rill_job_errmsg(job));
        rill_job_free(job);
        expect_full_counts(&c, k->name);
        cr_assert_eq(c.seen, N_RECORDS, "%s: not every record ran", k->name);
        /* Without the flag, there is nothing to restore. */
        cr_assert_eq(rill_env_set_restore(env, r, 0), RILL_OK);
        rc = rill_env_execute(env, "required");
        cr_assert_eq(rc, RILL_ENOTFOUND, "%s: %s", k->name, rill_err_name(rc));
        assert_has(rill_env_errmsg(env), r);
        rill_env_free(env);
        pthread_mutex_destroy(&c.mu);
    }
}

/* A service builds the same job on every start: the first starts empty,
 * the next one goes on from the first one's checkpoint. */
Test(restore_flags, the_same_settings_start_empty_then_restore)
{
    char ck[256];
    tmp_path(ck, sizeof ck, "ck");
    counts c1;
    counts_init(&c1);
    atomic_store(&paced, 1);
    rill_env *env = count_env(&c1, ck, 1, ck, RILL_RESTORE_IF_EXISTS);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "first start"), RILL_OK, "%s",
                 rill_env_errmsg(env));
    while (rill_job_last_checkpoint(job) < 1 && rill_job_status(job) == RILL_JOB_RUNNING)
        sleep_ms(2);
    rill_job_cancel(job);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED, "%s", rill_job_errmsg(job));
    cr_assert_geq(rill_job_last_checkpoint(job), 1);
    rill_job_free(job);
    rill_env_free(env);
    atomic_store(&paced, 0);

    cr_assert_lt(run_restored(ck, 1, RILL_RESTORE_IF_EXISTS, "next start"), N_RECORDS,
                 "the next start did not resume from the checkpoint");
    pthread_mutex_destroy(&c1.mu);
}

Test(restore_flags, if_exists_still_fails_on_a_corrupt_checkpoint)
{
    char ck[256], f[600];
    tmp_path(ck, sizeof ck, "ck");
    int64_t b = take_checkpoints(ck, 1, 1);
    static const char *const files[] = {"_metadata", "0.snap"};
    for (int i = 0; i < 2; i++) {
        pathf(f, sizeof f, "%s/chk-%lld/%s", ck, (long long)b, files[i]);
        flip_byte(f, 8); /* the format version */
        counts c;
        counts_init(&c);
        rill_env *env = count_env(&c, NULL, 1, ck, RILL_RESTORE_IF_EXISTS);
        int rc = rill_env_execute(env, "corrupt");
        cr_assert_eq(rc, RILL_ECORRUPT, "%s: %s (%s)", files[i], rill_err_name(rc),
                     rill_env_errmsg(env));
        assert_has(rill_env_errmsg(env), f);
        cr_assert_eq(c.seen, 0, "%s: records ran", files[i]);
        rill_env_free(env);
        pthread_mutex_destroy(&c.mu);
        flip_byte(f, 8);
    }
}

Test(restore_flags, unknown_flags_are_einval_and_change_nothing)
{
    char missing[256];
    tmp_path(missing, sizeof missing, "missing");
    counts c;
    counts_init(&c);
    rill_env *env = count_env(&c, NULL, 1, missing, RILL_RESTORE_IF_EXISTS);
    static const int bad[] = {4, 8, 1 | 16, -1, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(rill_env_set_restore(env, "elsewhere", bad[i]), RILL_EINVAL, "flags %d",
                     bad[i]);
        char bits[32];
        snprintf(bits, sizeof bits, "0x%x",
                 (unsigned)bad[i] & ~(unsigned)(RILL_RESTORE_ALLOW_NON_RESTORED |
                                                RILL_RESTORE_IF_EXISTS));
        assert_has(rill_env_errmsg(env), bits);
    }
    /* Still the missing path, if it exists: the job starts empty. */
    int rc = rill_env_execute(env, "unchanged");
    cr_assert_eq(rc, RILL_OK, "%s (%s)", rill_err_name(rc), rill_env_errmsg(env));
    expect_full_counts(&c, "unchanged");
    rill_env_free(env);
    pthread_mutex_destroy(&c.mu);
}

/* ---- the restore errors of rill_job_start and rill_env_execute --------- */

typedef struct error_case {
    const char *name;
    int code;
    void (*make)(const char *path); /* what the restore path is */
    const char *says;               /* in the message, after the path */
} error_case;

static void make_nothing(const char *path) { (void)path; }

/* path/chk-4, a checkpoint of two files; p gets path/chk-4/name. */
static void make_chk4(const char *path, const char *name, char *p, size_t cap)
{
    cr_assert_eq(mkdir(path, 0755), 0);
    pathf(p, cap, "%s/chk-4", path);
    write_checkpoint(p, 2);
    pathf(p, cap, "%s/chk-4/%s", path, name);
}

static void make_corrupt_metadata(const char *path)
{
    char p[600];
    make_chk4(path, "_metadata", p, sizeof p);
    flip_byte(p, 30);
}

static void make_incomplete(const char *path)
{
    char p[600];
    make_chk4(path, "1.snap", p, sizeof p);
    cr_assert_eq(unlink(p), 0);
}

static void make_loop(const char *path) { cr_assert_eq(symlink(path, path), 0); }

static void make_metadata_loop(const char *path)
{
    char p[600];
    make_chk4(path, "_metadata", p, sizeof p);
    cr_assert_eq(unlink(p), 0);
    cr_assert_eq(symlink(p, p), 0);
}

Test(restore_flags, the_restore_errors_of_job_start_and_env_execute)
{
    static const error_case cases[] = {
        {"no such path", RILL_ENOTFOUND, make_nothing, "does not exist"},
        {"a corrupt _metadata", RILL_ECORRUPT, make_corrupt_metadata, "_metadata"},
        {"a listed file missing", RILL_ECORRUPT, make_incomplete, "1.snap"},
        {"a path that cannot be read", RILL_EIO, make_loop, "cannot read"},
        {"a _metadata that cannot be read", RILL_EIO, make_metadata_loop, "cannot read"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const error_case *k = &cases[i];
        char path[256];
        pathf(path, sizeof path, "%s/e%zu", tmpdir, i);
        k->make(path);
        counts c;
        counts_init(&c);
        rill_env *env = count_env(&c, NULL, 1, path, 0);
        rill_job *job = (rill_job *)&c; /* anything: start sets it */
        int rc = rill_job_start(&job, env, "start");
        cr_assert_eq(rc, k->code, "%s: rill_job_start gives %s (%s), want %s", k->name,
                     rill_err_name(rc), rill_env_errmsg(env), rill_err_name(k->code));
        cr_assert_null(job, "%s", k->name);
        assert_has(rill_env_errmsg(env), path);
        assert_has(rill_env_errmsg(env), k->says);
        rc = rill_env_execute(env, "execute");
        cr_assert_eq(rc, k->code, "%s: rill_env_execute gives %s (%s), want %s", k->name,
                     rill_err_name(rc), rill_env_errmsg(env), rill_err_name(k->code));
        assert_has(rill_env_errmsg(env), path);
        assert_has(rill_env_errmsg(env), k->says);
        cr_assert_eq(c.seen, 0, "%s: records ran", k->name);
        rill_env_free(env);
        pthread_mutex_destroy(&c.mu);
    }
}
