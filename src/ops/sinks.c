/* sinks.c - callback, print and file sinks. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "ops/op.h"
#include "util/alloc.h"

static int sink_process(rill_ctx *op, const void *rec, size_t len)
{
    if (op->capture && rill__capture(op, rec, len))
        return RILL_ENOMEM;
    int rc = op->fn.process(op, rec, len, op->ud);
    return rc ? rill__user_fail(op, "sink function", rc) : RILL_OK;
}

/* ---- lines: print and file sinks share the formatting ---------------- */

typedef struct line_state {
    FILE *f;
    int owns_file;
    int dirty; /* print: lines written since the last flush */
    char *buf;
    size_t cap;
} line_state;

static int line_open(rill_ctx *op, FILE *f, int owns)
{
    line_state *ls = rill__calloc(1, sizeof *ls);
    if (ls) {
        ls->cap = 256;
        ls->buf = rill__malloc(ls->cap);
    }
    if (!ls || !ls->buf) {
        rill__free(ls);
        if (owns)
            fclose(f);
        rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name, "out of memory");
        return RILL_ENOMEM;
    }
    ls->f = f;
    ls->owns_file = owns;
    op->priv = ls;
    return RILL_OK;
}

static int io_fail(rill_ctx *op, const char *what, const char *path, int err)
{
    rill__job_fail(op->st->job, RILL_EIO, op->node->name, "sink '%s': cannot %s '%s': %s",
                   op->node->name, what, path, strerror(err));
    return RILL_EIO;
}

/* What the sink writes to, for messages. */
static const char *line_target(const rill_ctx *op)
{
    if (op->node->path)
        return op->node->path;
    return op->node->fd == RILL_STDERR ? "standard error" : "standard output";
}

int rill__format_line(rill_ctx *op, void *user_data, const void *rec, size_t len, char **buf,
                      size_t *cap, const char **text, size_t *n)
{
    *text = rec;
    *n = len;
    rill_format_fn fmt = op->node->fmt;
    if (!fmt)
        return RILL_OK;
    for (;;) {
        int r = fmt(rec, len, *buf, *cap, user_data);
        if (r < 0)
            return rill__user_fail(op, "format function", r);
        if ((size_t)r < *cap) {
            *text = *buf;
            *n = (size_t)r;
            return RILL_OK;
        }
        char *nb = rill__realloc(*buf, (size_t)r + 1);
        if (!nb) {
            rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name, "out of memory");
            return RILL_ENOMEM;
        }
        *buf = nb;
        *cap = (size_t)r + 1;
    }
}

static int line_process(rill_ctx *op, const void *rec, size_t len, int prefix)
{
    line_state *ls = op->priv;
    const char *text;
    size_t n;
    int rc = rill__format_line(op, op->ud, rec, len, &ls->buf, &ls->cap, &text, &n);
    if (rc)
        return rc;
    flockfile(ls->f);
    if (prefix)
        fprintf(ls->f, "%d> ", op->subtask + 1);
    fwrite(text, 1, n, ls->f);
    putc_unlocked('\n', ls->f);
    int bad = ferror(ls->f);
    funlockfile(ls->f);
    if (bad)
        return io_fail(op, "write to", line_target(op), errno);
    return RILL_OK;
}

static int line_close(rill_ctx *op, int ok)
{
    line_state *ls = op->priv;
    int rc = RILL_OK;
    if (!ls)
        return rc;
    int err = 0;
    if (ls->owns_file) {
        if (fclose(ls->f) != 0)
            err = errno;
    } else if (fflush(ls->f) != 0) {
        err = errno;
    }
    if (err && ok)
        rc = io_fail(op, "write to", line_target(op), err);
    rill__free(ls->buf);
    rill__free(ls);
    op->priv = NULL;
    return rc;
}

static int print_open(rill_ctx *op)
{
    return line_open(op, op->node->fd == RILL_STDERR ? stderr : stdout, 0);
}

/* The print sink's lines leave its stream as records leave a buffer: at
 * once with a buffer timeout of 0, else after each input buffer of its
 * subtask (rill__opdef.flush), when its source has nothing now, and at the
 * latest a buffer timeout after the first line written since the last
 * flush (a tick). */
static int print_flush(rill_ctx *op)
{
    line_state *ls = op->priv;
    if (!ls->dirty)
        return RILL_OK;
    ls->dirty = 0;
    if (fflush(ls->f) != 0)
        return io_fail(op, "write to", line_target(op), errno);
    return RILL_OK;
}

static int print_tick(rill_ctx *op, int64_t now)
{
    (void)now;
    return print_flush(op);
}

static int print_process(rill_ctx *op, const void *rec, size_t len)
{
    if (op->capture && rill__capture(op, rec, len))
        return RILL_ENOMEM;
    int rc = line_process(op, rec, len, op->parallelism > 1);
    line_state *ls = op->priv;
    if (rc || ls->dirty)
        return rc;
    ls->dirty = 1;
    int64_t timeout = op->st->job->buffer_timeout;
    if (timeout == 0)
        return print_flush(op);
    if (timeout > 0)
        rill__op_wake(op, rill__time_add(rill__proc_now(op), timeout));
    return RILL_OK;
}

static int file_sink_open(rill_ctx *op)
{
    const char *path = op->node->path;
    char *p = NULL;
    if (op->parallelism > 1) {
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return io_fail(op, "create directory", path, errno);
        size_t n = strlen(path) + 16;
        if (!(p = rill__malloc(n))) {
            rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name,
                           "file_sink '%s': out of memory", op->node->name);
            return RILL_ENOMEM;
        }
        snprintf(p, n, "%s/%d", path, op->subtask + 1);
        path = p;
    }
    FILE *f = fopen(path, "w");
    int err = errno;
    int rc = f ? line_open(op, f, 1) : io_fail(op, "open", path, err);
    rill__free(p);
    return rc;
}

static int file_sink_process(rill_ctx *op, const void *rec, size_t len)
{
    if (op->capture && rill__capture(op, rec, len))
        return RILL_ENOMEM;
    return line_process(op, rec, len, 0);
}

const rill__opdef rill__op_sink = {
    .default_name = "sink",
    .is_sink = 1,
    .process = sink_process,
};
const rill__opdef rill__op_print = {
    .default_name = "print",
    .is_sink = 1,
    .open = print_open,
    .process = print_process,
    .flush = print_flush,
    .on_tick = print_tick,
    .close = line_close,
};
const rill__opdef rill__op_file_sink = {
    .default_name = "file_sink",
    .is_sink = 1,
    .open = file_sink_open,
    .process = file_sink_process,
    .close = line_close,
};
