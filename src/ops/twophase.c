/* twophase.c - the two-phase-commit sink and the exactly-once file sink
 * built on it.
 *
 * The sink keeps, in its operator list state "rill.twophase", the
 * transactions pre-committed at each checkpoint (entry: checkpoint id u64 |
 * transaction id). A restored sink commits those first: they belong to
 * the checkpoint it restarts from, which completed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ops/op.h"
#include "util/alloc.h"

typedef struct pend {
    int64_t cid;
    char *id;
    size_t len;
} pend;

typedef struct tp_state {
    rill_twophase_fns fns;
    void *ud;
    int init;
    char *cur; /* the open transaction */
    size_t cur_len, cur_cap;
    int has_cur;
    int written; /* records went into cur since it began */
    pend *pend;
    size_t n_pend, cap_pend;
} tp_state;

/* A function's result: a failure it reported itself (RILL_EIO...) stays
 * as it is; anything else non-zero is a user function's failure. */
static int user(rill_ctx *op, const char *what, int rc)
{
    if (!rc)
        return RILL_OK;
    if (rill__stopping(op))
        return rc < 0 ? rc : RILL_ECANCELED;
    return rill__user_fail(op, what, rc);
}

static int oom(rill_ctx *op)
{
    rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name, "sink '%s': out of memory",
                   op->node->name);
    return RILL_ENOMEM;
}

static int begin(rill_ctx *op, tp_state *t)
{
    for (;;) {
        size_t len = t->cur_cap;
        int rc = t->fns.begin(op, t->cur, &len, t->ud);
        if (rc)
            return user(op, "begin function", rc);
        if (len <= t->cur_cap) {
            t->cur_len = len;
            t->has_cur = 1;
            return RILL_OK;
        }
        char *nb = rill__realloc(t->cur, len);
        if (!nb)
            return oom(op);
        t->cur = nb;
        t->cur_cap = len;
    }
}

static int commit(rill_ctx *op, tp_state *t, const void *id, size_t len)
{
    return user(op, "commit function", t->fns.commit(op, id, len, t->ud));
}

/* Save the pre-committed transactions in the operator state. */
static int save(rill_ctx *op, tp_state *t)
{
    rill_state *st = op->states[0];
    int rc = rill_state_clear(st);
    for (size_t i = 0; i < t->n_pend && !rc; i++) {
        char *e = rill__malloc(8 + t->pend[i].len);
        if (!e)
            return oom(op);
        memcpy(e, &t->pend[i].cid, 8);
        memcpy(e + 8, t->pend[i].id, t->pend[i].len);
        rc = rill_state_add(st, e, 8 + t->pend[i].len);
        rill__free(e);
    }
    if (rc)
        rill__job_fail(op->st->job, rc, op->node->name, "sink '%s': cannot keep its transactions: %s",
                       op->node->name, rill_strerror(rc));
    return rc;
}

/* First use: commit what a restored state holds, then begin. */
static int ensure_init(rill_ctx *op, tp_state *t)
{
    if (t->init)
        return RILL_OK;
    t->init = 1;
    rill_state *st = op->states[0];
    size_t pos = 0;
    const void *item;
    size_t len;
    int rc;
    while ((rc = rill_state_list_next(st, &pos, &item, &len)) == 1)
        if (len >= 8 && (rc = commit(op, t, (const char *)item + 8, len - 8)))
            return rc;
    if (rc < 0 || (rc = rill_state_clear(st)))
        return rc;
    return begin(op, t);
}

static int tp_open(rill_ctx *op)
{
    tp_state *t = rill__calloc(1, sizeof *t);
    if (!t || !(t->cur = rill__malloc(256))) {
        rill__free(t);
        return oom(op);
    }
    t->cur_cap = 256;
    t->fns = op->node->tp;
    t->ud = op->ud;
    op->priv = t;
    return RILL_OK;
}

static int tp_process(rill_ctx *op, const void *rec, size_t len)
{
    tp_state *t = op->priv;
    int rc = ensure_init(op, t);
    if (rc)
        return rc;
    t->written = 1;
    return user(op, "write function", t->fns.write(op, t->cur, t->cur_len, rec, len, t->ud));
}

static int tp_checkpoint(rill_ctx *op, int64_t id)
{
    tp_state *t = op->priv;
    int rc = ensure_init(op, t);
    if (rc)
        return rc;
    if ((rc = user(op, "precommit function", t->fns.precommit(op, t->cur, t->cur_len, t->ud))))
        return rc;
    if (rill__grow((void **)&t->pend, &t->cap_pend, t->n_pend + 1, sizeof *t->pend))
        return oom(op);
    pend *p = &t->pend[t->n_pend];
    if (!(p->id = rill__malloc(t->cur_len ? t->cur_len : 1)))
        return oom(op);
    memcpy(p->id, t->cur, t->cur_len);
    p->len = t->cur_len;
    p->cid = id;
    t->n_pend++;
    t->has_cur = 0;
    t->written = 0;
    if ((rc = save(op, t)))
        return rc;
    return begin(op, t);
}

static int tp_complete(rill_ctx *op, int64_t id)
{
    tp_state *t = op->priv;
    size_t k = 0;
    int rc = RILL_OK;
    for (size_t i = 0; i < t->n_pend; i++) {
        if (!rc && t->pend[i].cid <= id) {
            rc = commit(op, t, t->pend[i].id, t->pend[i].len);
            rill__free(t->pend[i].id);
        } else {
            t->pend[k++] = t->pend[i];
        }
    }
    t->n_pend = k;
    return rc;
}

static int tp_close(rill_ctx *op, int ok)
{
    tp_state *t = op->priv;
    if (!t)
        return RILL_OK;
    int rc = RILL_OK;
    if (ok && op->final_done && !t->written) {
        /* Committed with the checkpoint that covers the final snapshot;
         * the transaction begun after it holds nothing. */
        if (t->has_cur)
            t->fns.abort(op, t->cur, t->cur_len, t->ud);
    } else if (ok) {
        /* End of input: everything becomes visible. */
        rc = ensure_init(op, t);
        if (!rc)
            rc = user(op, "precommit function",
                      t->fns.precommit(op, t->cur, t->cur_len, t->ud));
        if (!rc)
            rc = tp_complete(op, INT64_MAX);
        if (!rc)
            rc = commit(op, t, t->cur, t->cur_len);
        if (rc)
            t->fns.abort(op, t->cur, t->cur_len, t->ud);
    } else if (t->has_cur) {
        t->fns.abort(op, t->cur, t->cur_len, t->ud);
    }
    for (size_t i = 0; i < t->n_pend; i++)
        rill__free(t->pend[i].id);
    rill__free(t->pend);
    rill__free(t->cur);
    rill__free(t);
    op->priv = NULL;
    return rc;
}

const rill__opdef rill__op_twophase = {
    .default_name = "twophase_sink",
    .is_sink = 1,
    .open = tp_open,
    .process = tp_process,
    .close = tp_close,
    .on_checkpoint = tp_checkpoint,
    .on_complete = tp_complete,
};

/* ---- the exactly-once file sink ---------------------------------------- */

/* One per sink subtask; the functions below get it as user data. */
typedef struct eo_file {
    FILE *f;
    char *buf;
    size_t cap;
    uint64_t seq;
    long long stamp; /* tells this run's files from earlier runs' */
} eo_file;

/* A file error fails the job with RILL_EIO (not as a user function). */
static int eo_fail(rill_ctx *op, const char *what, const char *path)
{
    rill__job_fail(op->st->job, RILL_EIO, op->node->name, "file sink '%s': cannot %s '%s': %s",
                   op->node->name, what, path, strerror(errno));
    return RILL_EIO;
}

/* Final name of the pending file id ("<dir>/.part-...pending"). */
static void final_name(const char *id, size_t len, char *out, size_t cap)
{
    const char *slash = memchr(id, '/', len) ? strrchr(id, '/') : NULL;
    size_t dl = slash ? (size_t)(slash - id) + 1 : 0;
    size_t rest = len - dl - 1 - strlen(".pending"); /* skip '.' and the suffix */
    snprintf(out, cap, "%.*s%.*s", (int)dl, id, (int)rest, id + dl + 1);
}

static int eo_begin(rill_ctx *ctx, void *id, size_t *id_len, void *ud)
{
    eo_file *e = ud;
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/.part-%d-%lld-%llu.pending", ctx->node->path,
                     ctx->subtask + 1, e->stamp, (unsigned long long)e->seq);
    if (n < 0 || (size_t)n >= sizeof path)
        return eo_fail(ctx, "name a file in", ctx->node->path);
    if (*id_len < (size_t)n + 1) {
        *id_len = (size_t)n + 1;
        return 0;
    }
    memcpy(id, path, (size_t)n + 1);
    *id_len = (size_t)n + 1;
    e->seq++;
    if (!(e->f = fopen(path, "w")))
        return eo_fail(ctx, "create", path);
    return 0;
}

static int eo_write(rill_ctx *ctx, const void *id, size_t id_len, const void *rec, size_t len,
                    void *ud)
{
    (void)id_len;
    eo_file *e = ud;
    const char *text;
    size_t n;
    int rc = rill__format_line(ctx, ctx->node->ud, rec, len, &e->buf, &e->cap, &text, &n);
    if (rc)
        return rc;
    if (fwrite(text, 1, n, e->f) != n || putc('\n', e->f) == EOF)
        return eo_fail(ctx, "write to", id);
    return 0;
}

static int eo_precommit(rill_ctx *ctx, const void *id, size_t id_len, void *ud)
{
    (void)id_len;
    eo_file *e = ud;
    if (!e->f)
        return 0;
    int bad = fflush(e->f) != 0 || fsync(fileno(e->f)) != 0;
    bad |= fclose(e->f) != 0;
    e->f = NULL;
    return bad ? eo_fail(ctx, "write to", id) : 0;
}

static int eo_commit(rill_ctx *ctx, const void *id, size_t id_len, void *ud)
{
    (void)ud;
    char final[4096];
    final_name(id, id_len - 1, final, sizeof final);
    if (rename(id, final) == 0)
        return 0;
    struct stat sb;
    if (errno == ENOENT && stat(final, &sb) == 0)
        return 0; /* committed before: commits are idempotent */
    return eo_fail(ctx, "commit", id);
}

static int eo_abort(rill_ctx *ctx, const void *id, size_t id_len, void *ud)
{
    (void)ctx;
    (void)id_len;
    eo_file *e = ud;
    if (e->f) {
        fclose(e->f);
        e->f = NULL;
    }
    unlink(id);
    return 0;
}

static int eo_open(rill_ctx *op)
{
    if (mkdir(op->node->path, 0777) != 0 && errno != EEXIST) {
        rill__job_fail(op->st->job, RILL_EIO, op->node->name,
                       "file sink '%s': cannot create directory '%s': %s", op->node->name,
                       op->node->path, strerror(errno));
        return RILL_EIO;
    }
    eo_file *e = rill__calloc(1, sizeof *e);
    if (!e || !(e->buf = rill__malloc(256))) {
        rill__free(e);
        return oom(op);
    }
    e->cap = 256;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->stamp = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    int rc = tp_open(op);
    if (rc) {
        rill__free(e->buf);
        rill__free(e);
        return rc;
    }
    tp_state *t = op->priv;
    t->ud = e;
    return RILL_OK;
}

static int eo_close(rill_ctx *op, int ok)
{
    tp_state *t = op->priv;
    eo_file *e = t ? t->ud : NULL;
    int rc = tp_close(op, ok);
    if (e) {
        if (e->f)
            fclose(e->f);
        rill__free(e->buf);
        rill__free(e);
    }
    return rc;
}

const rill__opdef rill__op_file_eo = {
    .default_name = "file_sink_exactly_once",
    .is_sink = 1,
    .open = eo_open,
    .process = tp_process,
    .close = eo_close,
    .on_checkpoint = tp_checkpoint,
    .on_complete = tp_complete,
};

const rill_twophase_fns rill__file_eo_fns = {eo_begin, eo_write, eo_precommit, eo_commit,
                                             eo_abort};
