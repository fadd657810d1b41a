/* checkpoint_final_test.c - checkpoints after some subtasks finished: a
 * subtask whose input ended takes a final snapshot that later checkpoints
 * include; an exactly-once sink that finished commits only once a
 * checkpoint covering its end completed, so a failure elsewhere afterwards
 * neither loses nor repeats its output. */
#define TEST_NAME "checkpoint-final"
#include "common.h"

#include <dirent.h>
#include <sys/stat.h>

TestSuite(final_checkpoints, .init = mk_tmp, .fini = rm_tmp);

#define SHORT_N 200
#define LONG_N 20000

typedef struct {
    uint64_t i;
    uint64_t pad;
} item;

typedef struct {
    atomic_int fail_once;    /* the long branch fails once when it may */
    atomic_int short_closed; /* the short branch's sink ran its close hook */
    atomic_long base_id;     /* latest complete checkpoint then */
    atomic_int saw_after;    /* a checkpoint completed after that */
    atomic_long short_seen;  /* records the short branch's sink got */
    atomic_long long_seen;
} final_run;

static int numbered(rill_ctx *ctx, uint64_t i, void *ud)
{
    (void)ud;
    item r = {i, 0};
    return rill_emit(ctx, &r, sizeof r);
}

static int fmt_item(const void *r, size_t len, char *buf, size_t cap, void *ud)
{
    (void)len;
    (void)ud;
    item x;
    memcpy(&x, r, sizeof x);
    return snprintf(buf, cap, "%llu", (unsigned long long)x.i);
}

/* Has tmpdir/sub an entry whose name starts with prefix (NULL: any
 * visible one)? */
static int has_entry(const char *sub, const char *prefix)
{
    char dir[256];
    tmp_path(dir, sizeof dir, sub);
    DIR *d = opendir(dir);
    int found = 0;
    struct dirent *e;
    while (d && !found && (e = readdir(d)))
        found = prefix ? strncmp(e->d_name, prefix, strlen(prefix)) == 0 : e->d_name[0] != '.';
    if (d)
        closedir(d);
    return found;
}

/* ---- a failure after an exactly-once sink finished ----------------------- */

/* Slow until the short branch's output is committed, then fails once. */
static int flaky(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    final_run *run = ud;
    static _Thread_local unsigned n;
    if ((++n & 7) != 0)
        return rill_emit(ctx, r, len);
    if (!has_entry("out", NULL)) {
        sleep_ms(1);
    } else if (atomic_exchange(&run->fail_once, 0)) {
        rill_ctx_set_error(ctx, "injected failure");
        return -1;
    }
    return rill_emit(ctx, r, len);
}

static int count_long(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx, (void)r, (void)len;
    atomic_fetch_add(&((final_run *)ud)->long_seen, 1);
    return 0;
}

static rill_env *two_branches(final_run *run, int restore, int exactly_once);

Test(final_checkpoints, a_finished_exactly_once_sink_survives_a_later_failure)
{
    final_run run;
    memset(&run, 0, sizeof run);
    atomic_store(&run.fail_once, 1);
    rill_env *env = two_branches(&run, 0, 1);
    cr_assert_eq(rill_env_execute(env, "first"), RILL_EUSER, "%s", rill_env_errmsg(env));
    cr_assert(strstr(rill_env_errmsg(env), "injected failure") != NULL, "%s",
              rill_env_errmsg(env));
    rill_env_free(env);
    unsigned char seen[SHORT_N];
    int pending;
    memset(seen, 0, sizeof seen);
    count_output_lines("out", SHORT_N, seen, &pending);
    for (int i = 0; i < SHORT_N; i++)
        cr_assert_eq(seen[i], 1, "before the restore, record %d is in %d files", i, seen[i]);

    env = two_branches(&run, 1, 1);
    cr_assert_eq(rill_env_execute(env, "second"), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    memset(seen, 0, sizeof seen);
    count_output_lines("out", SHORT_N, seen, &pending);
    cr_assert_eq(pending, 0, "pending files left");
    for (int i = 0; i < SHORT_N; i++)
        cr_assert_eq(seen[i], 1, "record %d is in %d files", i, seen[i]);
}

/* ---- checkpoints go on after a subtask finished ------------------------- */

static int short_close(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    final_run *run = ud;
    atomic_store(&run->base_id, latest_checkpoint());
    atomic_store(&run->short_closed, 1);
    return 0;
}

static int count_short(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx, (void)r, (void)len;
    atomic_fetch_add(&((final_run *)ud)->short_seen, 1);
    return 0;
}

/* Slow until a checkpoint completed after the short branch ended (at
 * most about ten seconds). */
static int patient(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    final_run *run = ud;
    static _Thread_local unsigned n, waits;
    if ((++n & 7) == 0 && !atomic_load(&run->saw_after) && waits < 10000) {
        if (atomic_load(&run->short_closed) && latest_checkpoint() > atomic_load(&run->base_id))
            atomic_store(&run->saw_after, 1);
        else {
            waits++;
            sleep_ms(1);
        }
    }
    return rill_emit(ctx, r, len);
}

/* A short branch and a long one, in one job. With exactly_once, the short
 * one goes into the exactly-once file sink and the long one fails once
 * (flaky); else the short one is counted and the long one waits for a
 * checkpoint after it (patient). */
static rill_env *two_branches(final_run *run, int restore, int exactly_once)
{
    rill_env *env = checkpointed_env(1, restore);
    rill_stream *a = rill_generator(env, "short", SHORT_N, numbered, NULL);
    if (exactly_once) {
        char out[256];
        tmp_path(out, sizeof out, "out");
        rill_sink_file_exactly_once(a, "files", out, fmt_item, NULL);
    } else {
        rill_stream_set_lifecycle(rill_sink(a, "short_sink", count_short, run), NULL,
                                  short_close);
    }
    rill_stream *b = rill_generator(env, "long", LONG_N, numbered, NULL);
    b = rill_map(b, "long_map", exactly_once ? flaky : patient, run);
    rill_sink(b, "long_sink", count_long, run);
    return env;
}

Test(final_checkpoints, checkpoints_complete_after_a_subtask_finished)
{
    final_run run;
    memset(&run, 0, sizeof run);
    rill_env *env = two_branches(&run, 0, 0);
    cr_assert_eq(rill_env_execute(env, "first"), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    cr_assert_eq(atomic_load(&run.saw_after), 1, "no checkpoint completed after 'short' ended");
    cr_assert_eq(atomic_load(&run.short_seen), SHORT_N);
    cr_assert_eq(atomic_load(&run.long_seen), LONG_N);
    cr_assert_eq(has_entry("ck", ".final-"), 0, "final snapshots left in the checkpoint directory");

    /* From the latest checkpoint: the finished branch stays finished. */
    atomic_store(&run.short_seen, 0);
    atomic_store(&run.long_seen, 0);
    env = two_branches(&run, 1, 0);
    cr_assert_eq(rill_env_execute(env, "restored"), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    cr_assert_eq(atomic_load(&run.short_seen), 0);
    cr_assert_leq(atomic_load(&run.long_seen), LONG_N);
}
