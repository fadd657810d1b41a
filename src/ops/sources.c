/* sources.c - user, array/records, generator and file sources. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ops/op.h"
#include "util/alloc.h"

#define STEP_RECORDS 64

/* floor(count * i / p) without overflow. */
static uint64_t split_point(uint64_t count, int i, int p)
{
    uint64_t q = count / (uint64_t)p, r = count % (uint64_t)p;
    return q * (uint64_t)i + r * (uint64_t)i / (uint64_t)p;
}

static int user_source_step(rill_ctx *op)
{
    op->h.ts = RILL_TS_MIN;
    int rc = op->fn.source(op, op->ud);
    if (rc == RILL_SOURCE_MORE || rc == RILL_SOURCE_END || rc == RILL_SOURCE_IDLE)
        return rc;
    return rill__user_fail(op, "source function", rc);
}

/* ---- array / records / generator: a position in an index range ------- */

typedef struct range_state {
    uint64_t next, end, stride;
} range_state;

static int range_open(rill_ctx *op, uint64_t next, uint64_t end, uint64_t stride)
{
    range_state *r = rill__malloc(sizeof *r);
    if (!r) {
        rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name, "out of memory");
        return RILL_ENOMEM;
    }
    r->next = next;
    r->end = end;
    r->stride = stride;
    op->priv = r;
    return RILL_OK;
}

static int range_position(rill_ctx *op, uint64_t *pos)
{
    *pos = ((range_state *)op->priv)->next;
    return RILL_OK;
}

static int range_seek(rill_ctx *op, uint64_t pos)
{
    range_state *r = op->priv;
    r->next = pos;
    return RILL_OK;
}

static int free_priv(rill_ctx *op, int ok)
{
    (void)ok;
    rill__free(op->priv);
    op->priv = NULL;
    return RILL_OK;
}

static int records_open(rill_ctx *op)
{
    return range_open(op, (uint64_t)op->subtask, op->node->n_recs, (uint64_t)op->parallelism);
}

static int records_step(rill_ctx *op)
{
    range_state *r = op->priv;
    for (int k = 0; k < STEP_RECORDS && r->next < r->end; k++) {
        const rill_record *rec = &op->node->recs[r->next];
        r->next += r->stride;
        op->h.ts = rec->ts;
        int rc = rill__emit(op, rec->data, rec->len, rec->ts);
        if (rc)
            return rc;
    }
    return r->next >= r->end ? RILL_SOURCE_END : RILL_SOURCE_MORE;
}

static int generator_open(rill_ctx *op)
{
    uint64_t n = op->node->gen_count;
    return range_open(op, split_point(n, op->subtask, op->parallelism),
                      split_point(n, op->subtask + 1, op->parallelism), 1);
}

static int generator_step(rill_ctx *op)
{
    range_state *r = op->priv;
    rill_generator_fn fn = op->fn.gen;
    void *ud = op->ud;
    uint64_t i = r->next, stop = r->end - i > STEP_RECORDS ? i + STEP_RECORDS : r->end;
    op->h.ts = RILL_TS_MIN; /* nothing else sets a source's timestamp */
    for (; i < stop; i++) {
        int rc = fn(op, i, ud);
        if (rc) {
            r->next = i + 1;
            return rill__user_fail(op, "generator function", rc);
        }
    }
    r->next = i;
    return i >= r->end ? RILL_SOURCE_END : RILL_SOURCE_MORE;
}

/* ---- text file, line by line ----------------------------------------- */

/* A regular file is read through stdio, in large blocks. Anything else (a
 * pipe, a FIFO, a terminal, a socket) is a stream: its descriptor is read
 * only when poll says there is input, so each line goes on as it comes,
 * and the step returns RILL_SOURCE_IDLE when there is none (the runtime
 * then waits for the descriptor, see rill__opdef.wait_fd). */
typedef struct file_state {
    FILE *f;              /* regular file */
    int fd;               /* stream, or -1 */
    int is_stdin;
    char *buf;
    size_t cap, len, off; /* buf[off..len) is unread */
    uint64_t pos;         /* file offset of buf[off] */
    uint64_t end;         /* lines starting at or after end belong to others */
    int eof;
} file_state;

/* What read_line found. */
#define LINE_END 0  /* the end of the file */
#define LINE_READ 1 /* a line */
#define LINE_WAIT 2 /* no whole line yet; a stream has no more input now */

static int file_fail(rill_ctx *op, const char *what, int err)
{
    rill__job_fail(op->st->job, RILL_EIO, op->node->name, "file_source '%s': cannot %s '%s': %s",
                   op->node->name, what, op->node->path, strerror(err));
    return RILL_EIO;
}

/* A regular file at parallelism > 1: go to the first line of this
 * subtask's byte range and set where the range ends. */
static int file_split(rill_ctx *op, file_state *fs, uint64_t size)
{
    uint64_t start = split_point(size, op->subtask, op->parallelism);
    fs->end = split_point(size, op->subtask + 1, op->parallelism);
    if (start == 0)
        return RILL_OK;
    /* A line starts at `start` only if the byte before it ends a line. */
    if (fseeko(fs->f, (off_t)(start - 1), SEEK_SET) != 0)
        return file_fail(op, "seek in", errno);
    fs->pos = start - 1;
    int c;
    while ((c = getc(fs->f)) != EOF) {
        fs->pos++;
        if (c == '\n')
            break;
    }
    if (ferror(fs->f))
        return file_fail(op, "read", errno);
    return RILL_OK;
}

static int file_open(rill_ctx *op)
{
    file_state *fs = rill__calloc(1, sizeof *fs);
    if (fs) {
        op->priv = fs;
        fs->fd = -1;
        fs->end = UINT64_MAX;
        fs->cap = 64 * 1024;
        fs->buf = rill__malloc(fs->cap);
    }
    if (!fs || !fs->buf) {
        rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name,
                       "file_source '%s': out of memory reading '%s'", op->node->name,
                       op->node->path);
        return RILL_ENOMEM;
    }
    const char *path = op->node->path;
    int fd;
    if (strcmp(path, "-") == 0) {
        fs->is_stdin = 1;
        if (op->subtask != 0) {
            fs->end = 0;
            return RILL_OK;
        }
        fd = STDIN_FILENO;
    } else if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
        /* O_NONBLOCK: opening a FIFO does not wait for a writer. */
        return file_fail(op, "open", errno);
    }
    struct stat sb;
    int err = fstat(fd, &sb) != 0 ? errno : S_ISDIR(sb.st_mode) ? EISDIR : 0;
    if (!err && S_ISREG(sb.st_mode)) {
        if (fs->is_stdin) {
            fs->f = stdin;
        } else {
            int fl = fcntl(fd, F_GETFL);
            if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0 ||
                !(fs->f = fdopen(fd, "rb")))
                err = errno;
        }
    }
    if (err) {
        if (!fs->is_stdin)
            close(fd);
        return file_fail(op, "open", err);
    }
    if (fs->f && !fs->is_stdin)
        return op->parallelism > 1 ? file_split(op, fs, (uint64_t)sb.st_size) : RILL_OK;
    if (fs->f)
        return RILL_OK;
    /* A stream is read by subtask 0 alone. */
    if (op->subtask != 0) {
        if (!fs->is_stdin)
            close(fd);
        fs->end = 0;
        return RILL_OK;
    }
    fs->fd = fd;
    return RILL_OK;
}

/* Read more of the file into fs->buf (which has room): LINE_READ when
 * something came or the end was reached (fs->eof), LINE_WAIT when a stream
 * has no input now, or an error. */
static int file_fill(rill_ctx *op, file_state *fs)
{
    if (fs->f) {
        size_t got = fread(fs->buf + fs->len, 1, fs->cap - fs->len, fs->f);
        fs->len += got;
        if (got == 0) {
            if (ferror(fs->f))
                return file_fail(op, "read", errno);
            fs->eof = 1;
        }
        return LINE_READ;
    }
    /* Read only what is there: read on a descriptor with input returns at
     * once (a stream opened here is non-blocking anyway). */
    struct pollfd pf = {fs->fd, POLLIN, 0};
    int ready = poll(&pf, 1, 0);
    if (ready < 0 && errno != EINTR)
        return file_fail(op, "read", errno);
    if (ready <= 0)
        return LINE_WAIT;
    ssize_t got = read(fs->fd, fs->buf + fs->len, fs->cap - fs->len);
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return LINE_WAIT;
        return file_fail(op, "read", errno);
    }
    fs->len += (size_t)got;
    if (got == 0)
        fs->eof = 1;
    return LINE_READ;
}

/* The next line of fs (without its ending) in *line, *n: LINE_READ,
 * LINE_END, LINE_WAIT, or an error. */
static int read_line(rill_ctx *op, file_state *fs, const char **line, size_t *n)
{
    for (;;) {
        char *s = fs->buf + fs->off;
        char *nl = memchr(s, '\n', fs->len - fs->off);
        if (nl || (fs->eof && fs->off < fs->len)) {
            size_t full = nl ? (size_t)(nl - s) + 1 : fs->len - fs->off;
            size_t l = nl ? full - 1 : full;
            if (nl && l > 0 && s[l - 1] == '\r')
                l--;
            *line = s;
            *n = l;
            fs->off += full;
            fs->pos += full;
            return LINE_READ;
        }
        if (fs->eof)
            return LINE_END;
        if (fs->off > 0) {
            memmove(fs->buf, fs->buf + fs->off, fs->len - fs->off);
            fs->len -= fs->off;
            fs->off = 0;
        }
        if (fs->len == fs->cap) {
            if (fs->cap >= RILL_RECORD_MAX) {
                rill__job_fail(op->st->job, RILL_EINVAL, op->node->name,
                               "file_source '%s': a line of '%s' is longer than %zu bytes",
                               op->node->name, op->node->path, (size_t)RILL_RECORD_MAX);
                return RILL_EINVAL;
            }
            char *nb = rill__realloc(fs->buf, fs->cap * 2);
            if (!nb) {
                rill__job_fail(op->st->job, RILL_ENOMEM, op->node->name,
                               "file_source '%s': out of memory for a line of '%s'",
                               op->node->name, op->node->path);
                return RILL_ENOMEM;
            }
            fs->buf = nb;
            fs->cap *= 2;
        }
        int rc = file_fill(op, fs);
        if (rc != LINE_READ)
            return rc;
    }
}

static int file_step(rill_ctx *op)
{
    file_state *fs = op->priv;
    for (int k = 0; k < STEP_RECORDS; k++) {
        if (fs->pos >= fs->end)
            return RILL_SOURCE_END;
        const char *line = NULL;
        size_t n = 0;
        int rc = read_line(op, fs, &line, &n);
        if (rc != LINE_READ)
            return rc == LINE_END ? RILL_SOURCE_END : rc == LINE_WAIT ? RILL_SOURCE_IDLE : rc;
        op->h.ts = RILL_TS_MIN;
        if ((rc = rill__emit(op, line, n, RILL_TS_MIN)))
            return rc;
    }
    return RILL_SOURCE_MORE;
}

static int file_wait_fd(rill_ctx *op)
{
    return ((file_state *)op->priv)->fd;
}

static int file_position(rill_ctx *op, uint64_t *pos)
{
    *pos = ((file_state *)op->priv)->pos;
    return RILL_OK;
}

static int file_seek(rill_ctx *op, uint64_t pos)
{
    file_state *fs = op->priv;
    if (fs->is_stdin) {
        rill__job_fail(op->st->job, RILL_EINVAL, op->node->name,
                       "file_source '%s': standard input cannot go back to a checkpoint",
                       op->node->name);
        return RILL_EINVAL;
    }
    if (fs->fd >= 0 && lseek(fs->fd, (off_t)pos, SEEK_SET) < 0)
        return file_fail(op, "seek in", errno);
    if (fs->f && fseeko(fs->f, (off_t)pos, SEEK_SET) != 0)
        return file_fail(op, "seek in", errno);
    fs->pos = pos;
    fs->off = fs->len = 0;
    fs->eof = 0;
    return RILL_OK;
}

static int file_close(rill_ctx *op, int ok)
{
    (void)ok;
    file_state *fs = op->priv;
    if (!fs)
        return RILL_OK;
    if (fs->f && !fs->is_stdin)
        fclose(fs->f);
    if (fs->fd >= 0 && !fs->is_stdin)
        close(fs->fd);
    rill__free(fs->buf);
    rill__free(fs);
    op->priv = NULL;
    return RILL_OK;
}

const rill__opdef rill__op_source = {
    .default_name = "source",
    .is_source = 1,
    .step = user_source_step,
};
const rill__opdef rill__op_from_array = {
    .default_name = "from_array",
    .is_source = 1,
    .open = records_open,
    .step = records_step,
    .close = free_priv,
    .position = range_position,
    .seek = range_seek,
};
const rill__opdef rill__op_from_records = {
    .default_name = "from_records",
    .is_source = 1,
    .open = records_open,
    .step = records_step,
    .close = free_priv,
    .position = range_position,
    .seek = range_seek,
};
const rill__opdef rill__op_generator = {
    .default_name = "generator",
    .is_source = 1,
    .open = generator_open,
    .step = generator_step,
    .close = free_priv,
    .position = range_position,
    .seek = range_seek,
};
const rill__opdef rill__op_file_source = {
    .default_name = "file_source",
    .is_source = 1,
    .open = file_open,
    .step = file_step,
    .wait_fd = file_wait_fd,
    .close = file_close,
    .position = file_position,
    .seek = file_seek,
};
