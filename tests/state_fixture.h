/* state_fixture.h - one operator subtask built by hand for the state
 * tests: its declared states, its keyed-state store and timers (the key is
 * set as the runtime sets it: op.key, op.key_len, op.kg), the clock of a
 * (fake) harness job, and snapshots of it into files and restores from
 * them. Header only: every helper is static inline. Include after
 * common.h. */
#ifndef RILL_TESTS_STATE_FIXTURE_H
#define RILL_TESTS_STATE_FIXTURE_H

#include "runtime/task.h"
#include "runtime/timers.h"
#include "snapshot/format.h"
#include "state/kv.h"
#include "state/snapshot.h"
#include "state/state.h"
#include "util/alloc.h"

#define MAXSTATES 8
#define MAXP 128

/* A reduce function: the sum of two int64. */
static inline int sum_i64(const void *a, size_t al, const void *b, size_t bl, void *out,
                          size_t *out_len, void *ud)
{
    (void)ud;
    if (al != 8 || bl != 8)
        return 99;
    if (*out_len < 8) {
        *out_len = 8;
        return 0;
    }
    int64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, b, 8);
    x += y;
    memcpy(out, &x, 8);
    *out_len = 8;
    return 0;
}

/* ---- fixture: one operator subtask ------------------------------------- */

typedef struct fix {
    rill__node node;
    rill__statedesc desc[MAXSTATES];
    rill_ctx op;
    rill__subtask sub;
    rill__job job;
    char dir[256];
    unsigned char keybuf[64];
    char err[RILL__ERRMSG_MAX];
} fix;

static int harness_dummy;
static int fix_count;

static inline fix *fx_new(const char *uid, int subtask, int parallelism)
{
    fix *f = calloc(1, sizeof *f);
    cr_assert_not_null(f);
    f->node.name = (char *)uid;
    f->node.resolved_uid = (char *)uid;
    f->node.states = f->desc;
    f->op.node = &f->node;
    f->op.st = &f->sub;
    f->op.keyed = 1;
    f->op.subtask = subtask;
    f->op.parallelism = parallelism;
    f->op.wake_at = INT64_MAX;
    f->sub.job = &f->job;
    f->sub.tick_at = INT64_MAX;
    f->job.max_parallelism = MAXP;
    f->job.harness = (struct rill_harness *)(void *)&harness_dummy;
    f->job.clock = 0;
    snprintf(f->dir, sizeof f->dir, "%s/state/%d", tmpdir, fix_count++);
    return f;
}

static inline rill__statedesc *fx_add(fix *f, const char *name, int kind)
{
    cr_assert_lt(f->node.n_states, MAXSTATES);
    rill__statedesc *d = &f->desc[f->node.n_states++];
    memset(d, 0, sizeof *d);
    d->name = (char *)name;
    d->kind = kind;
    return d;
}

static inline void fx_open(fix *f, size_t cache)
{
    char err[RILL__ERRMSG_MAX];
    int rc = rill__state_open(&f->op, f->dir, cache, err);
    cr_assert_eq(rc, RILL_OK, "open: %s", err);
    for (int d = 0; d < 2; d++)
        cr_assert_not_null(f->op.timers[d] = rill__timers_new());
}

static inline void fx_free(fix *f)
{
    rill__state_close(&f->op);
    for (int d = 0; d < 2; d++)
        rill__timers_free(f->op.timers[d]);
    rill__free(f->op.user_err);
    free(f);
}

static inline rill_state *S(fix *f, const char *name)
{
    rill_state *st = rill_ctx_state(&f->op, name);
    cr_assert_not_null(st, "state %s", name);
    return st;
}


static inline void snap_file(fix *f, const char *path)
{
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, path, err), RILL_OK, "%s", err);
    int rc = rill__state_snapshot(&f->op, w, err);
    cr_assert_eq(rc, RILL_OK, "snapshot: %s: %s", rill_err_name(rc), err);
    cr_assert_eq(rill__snap_writer_commit(w, NULL, err), RILL_OK, "%s", err);
}

static inline int restore(fix *f, const char *const *paths, size_t n, int allow_unknown)
{
    return rill__state_restore(&f->op, paths, n, allow_unknown, f->err);
}

static inline void restore_ok(fix *f, const char *const *paths, size_t n)
{
    int rc = restore(f, paths, n, 0);
    cr_assert_eq(rc, RILL_OK, "restore: %s: %s", rill_err_name(rc), f->err);
}

#endif
