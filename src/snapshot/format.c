/* format.c - snapshot files: common helpers and the writer. The layout is
 * described in format.h and man/man5/rill-snapshot.5. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rill.h"
#include "snapshot/format_int.h"
#include "util/alloc.h"

/* ---- shared helpers ---------------------------------------------------- */

/* XXH3_state_t wants 64-byte alignment, more than malloc promises. */
XXH3_state_t *rill__snap_hash_new(void **raw)
{
    *raw = rill__malloc(sizeof(XXH3_state_t) + 64);
    if (!*raw)
        return NULL;
    return (XXH3_state_t *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
}

int rill__snap_failmsg(char *err, const char *path, int code, const char *fmt, ...)
{
    if (err) {
        char msg[RILL__ERRMSG_MAX];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        rill__fmt(err, "snapshot '%s': %s", path, msg);
    }
    return code;
}

static int write_full(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The directory holding path (allocated), NULL when out of memory. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 1;
    char *dir = rill__malloc(n + 1);
    if (!dir)
        return NULL;
    if (slash)
        memcpy(dir, path, n);
    else
        dir[0] = '.';
    dir[n] = '\0';
    return dir;
}

/* fsync a directory (so that a rename in it is durable). */
static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 || fsync(fd) != 0 ? RILL_EIO : RILL_OK;
    int e = errno;
    if (fd >= 0)
        close(fd);
    errno = e; /* for the caller's message */
    return rc;
}

/* ---- writer ------------------------------------------------------------ */

struct rill__snap_writer {
    XXH3_state_t *hs; /* the open section's checksum: payload, then header */
    void *hs_raw;
    int fd;
    int rc; /* sticky I/O or memory error */
    unsigned flags;
    char *path, *tmp, *dir;
    unsigned char *buf; /* bytes at file offsets [boff, boff + blen) */
    size_t blen;
    uint64_t boff;
    int in_section;
    uint64_t sec_off; /* offset of the open section's header */
    uint64_t payload_len;
    /* Payload bytes are hashed in large runs: buf[hpos, blen) is payload
     * not hashed yet while hashing is set. */
    int hashing;
    size_t hpos;
    unsigned char *head; /* the open section's header */
    size_t head_len, head_cap;
    unsigned char *table; /* RILL__SNAP_ENTRY_SIZE bytes per closed section */
    size_t n_sections, table_cap;
    unsigned char hdr[RILL__SNAP_HEADER_SIZE];
    char err[RILL__ERRMSG_MAX];
};

RILL__SNAP_PRINTF(3, 4)
static int wfail(rill__snap_writer *w, int code, const char *fmt, ...)
{
    char msg[RILL__ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rill__fmt(w->err, "snapshot '%s': %s", w->path, msg);
    if (code == RILL_EIO || code == RILL_ENOMEM)
        w->rc = code;
    return code;
}

static void w_hash(rill__snap_writer *w)
{
    if (w->hashing && w->blen > w->hpos)
        XXH3_64bits_update(w->hs, w->buf + w->hpos, w->blen - w->hpos);
    w->hpos = w->blen;
}

static int w_flush(rill__snap_writer *w)
{
    w_hash(w);
    w->hpos = 0;
    if (w->blen && write_full(w->fd, w->buf, w->blen) != 0)
        return wfail(w, RILL_EIO, "cannot write '%s': %s", w->tmp, strerror(errno));
    w->boff += w->blen;
    w->blen = 0;
    return RILL_OK;
}

static int w_put(rill__snap_writer *w, const void *p, size_t n)
{
    if (w->blen + n > RILL__SNAP_IOBUF) {
        int rc = w_flush(w);
        if (rc)
            return rc;
    }
    if (n >= RILL__SNAP_IOBUF) { /* large: straight to the file */
        if (w->hashing)
            XXH3_64bits_update(w->hs, p, n);
        if (write_full(w->fd, p, n) != 0)
            return wfail(w, RILL_EIO, "cannot write '%s': %s", w->tmp, strerror(errno));
        w->boff += n;
        return RILL_OK;
    }
    memcpy(w->buf + w->blen, p, n);
    w->blen += n;
    return RILL_OK;
}

static void w_free(rill__snap_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    rill__free(w->hs_raw);
    rill__free(w->path);
    rill__free(w->tmp);
    rill__free(w->dir);
    rill__free(w->buf);
    rill__free(w->head);
    rill__free(w->table);
    rill__free(w);
}

int rill__snap_writer_open_flags(rill__snap_writer **out, const char *path, unsigned flags,
                                 char *err)
{
    *out = NULL;
    if (!path || !*path) {
        if (err)
            rill__fmt(err, "snapshot path is NULL or empty");
        return RILL_EINVAL;
    }
    rill__snap_writer *w = rill__calloc(1, sizeof *w);
    if (!w)
        return rill__snap_failmsg(err, path, RILL_ENOMEM, "out of memory");
    w->fd = -1;
    w->flags = flags;
    size_t n = strlen(path);
    w->path = rill__strdup(path);
    w->tmp = rill__malloc(n + 5);
    w->dir = dir_of(path);
    w->buf = rill__malloc(RILL__SNAP_IOBUF);
    w->hs = rill__snap_hash_new(&w->hs_raw);
    if (!w->path || !w->tmp || !w->dir || !w->buf || !w->hs) {
        w_free(w);
        return rill__snap_failmsg(err, path, RILL_ENOMEM, "out of memory");
    }
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        rill__snap_failmsg(err, path, RILL_EIO, "cannot create '%s': %s", w->tmp, strerror(e));
        w_free(w);
        return RILL_EIO;
    }
    memcpy(w->hdr, RILL__SNAP_MAGIC, 8);
    rill__snap_put32(w->hdr + 8, RILL__SNAP_VERSION);
    rill__snap_put32(w->hdr + 12, flags);
    rill__snap_put64(w->hdr + 16, XXH3_64bits(w->hdr, 16));
    int rc = w_put(w, w->hdr, RILL__SNAP_HEADER_SIZE);
    if (rc) { /* not reached: the buffer is empty */
        if (err)
            memcpy(err, w->err, RILL__ERRMSG_MAX);
        rill__snap_writer_abort(w);
        return rc;
    }
    *out = w;
    return RILL_OK;
}

int rill__snap_writer_open(rill__snap_writer **w, const char *path, char *err)
{
    return rill__snap_writer_open_flags(w, path, 0, err);
}

int rill__snap_writer_begin(rill__snap_writer *w, uint32_t kind, const char *uid, const char *state,
                            uint16_t kg_first, uint16_t kg_last)
{
    if (w->rc)
        return w->rc;
    if (w->in_section)
        return wfail(w, RILL_EINVAL, "section_begin: a section is already open");
    if (!uid || !state)
        return wfail(w, RILL_EINVAL, "section_begin: uid or state name is NULL");
    size_t ul = strlen(uid), sl = strlen(state);
    if (ul > RILL__SNAP_NAME_MAX || sl > RILL__SNAP_NAME_MAX)
        return wfail(w, RILL_EINVAL, "section_begin: uid or state name longer than %u bytes",
                     RILL__SNAP_NAME_MAX);
    if (!rill__snap_kg_ok(kg_first, kg_last))
        return wfail(w, RILL_EINVAL, "section_begin: bad key-group range %u..%u",
                     (unsigned)kg_first, (unsigned)kg_last);
    size_t hl = RILL__SNAP_SECHEAD_SIZE + ul + sl;
    if (rill__grow((void **)&w->head, &w->head_cap, hl, 1) != RILL_OK)
        return wfail(w, RILL_ENOMEM, "out of memory");
    unsigned char *h = w->head;
    rill__snap_put32(h, kind);
    rill__snap_put32(h + 4, 0);
    rill__snap_put16(h + 8, kg_first);
    rill__snap_put16(h + 10, kg_last);
    rill__snap_put16(h + 12, (uint16_t)ul);
    rill__snap_put16(h + 14, (uint16_t)sl);
    rill__snap_put64(h + 16, 0); /* payload length, filled in by section_end */
    memcpy(h + RILL__SNAP_SECHEAD_SIZE, uid, ul);
    memcpy(h + RILL__SNAP_SECHEAD_SIZE + ul, state, sl);
    w->head_len = hl;
    w->sec_off = w->boff + w->blen;
    int rc = w_put(w, h, hl);
    if (rc)
        return rc;
    XXH3_64bits_reset(w->hs);
    w->payload_len = 0;
    w->in_section = 1;
    w->hashing = 1;
    w->hpos = w->blen;
    return RILL_OK;
}

int rill__snap_writer_section_begin(rill__snap_writer *w, uint32_t kind, const char *uid,
                                    const char *state, uint16_t kg_first, uint16_t kg_last)
{
    if (!w)
        return RILL_EINVAL;
    if (!rill__snap_is_data_kind(kind))
        return wfail(w, RILL_EINVAL, "section_begin: unknown section kind %" PRIu32, kind);
    return rill__snap_writer_begin(w, kind, uid, state, kg_first, kg_last);
}

int rill__snap_writer_append(rill__snap_writer *w, const void *bytes, size_t len)
{
    if (!w)
        return RILL_EINVAL;
    if (w->rc)
        return w->rc;
    if (!w->in_section)
        return wfail(w, RILL_EINVAL, "append: no section is open");
    if (len == 0)
        return RILL_OK;
    if (!bytes)
        return wfail(w, RILL_EINVAL, "append: NULL bytes");
    w->payload_len += len;
    return w_put(w, bytes, len);
}

int rill__snap_writer_kv(rill__snap_writer *w, const void *key, size_t klen, const void *val,
                         size_t vlen)
{
    if (!w)
        return RILL_EINVAL;
    if (w->rc)
        return w->rc;
    if (!w->in_section)
        return wfail(w, RILL_EINVAL, "kv: no section is open");
    if (klen > UINT32_MAX || vlen > UINT32_MAX || (klen && !key) || (vlen && !val))
        return wfail(w, RILL_EINVAL, "kv: entry of %zu + %zu bytes is invalid", klen, vlen);
    size_t n = 8 + klen + vlen;
    if (n < RILL__SNAP_IOBUF) { /* built in the buffer */
        if (w->blen + n > RILL__SNAP_IOBUF) {
            int rc = w_flush(w);
            if (rc)
                return rc;
        }
        unsigned char *p = w->buf + w->blen;
        rill__snap_put32(p, (uint32_t)klen);
        if (klen)
            memcpy(p + 4, key, klen);
        rill__snap_put32(p + 4 + klen, (uint32_t)vlen);
        if (vlen)
            memcpy(p + 8 + klen, val, vlen);
        w->blen += n;
        w->payload_len += n;
        return RILL_OK;
    }
    unsigned char len[4];
    rill__snap_put32(len, (uint32_t)klen);
    int rc = rill__snap_writer_append(w, len, 4);
    if (!rc)
        rc = rill__snap_writer_append(w, key, klen);
    rill__snap_put32(len, (uint32_t)vlen);
    if (!rc)
        rc = rill__snap_writer_append(w, len, 4);
    if (!rc)
        rc = rill__snap_writer_append(w, val, vlen);
    return rc;
}

int rill__snap_writer_section_end(rill__snap_writer *w)
{
    if (!w)
        return RILL_EINVAL;
    if (w->rc)
        return w->rc;
    if (!w->in_section)
        return wfail(w, RILL_EINVAL, "section_end: no section is open");
    w_hash(w);
    w->hashing = 0;
    rill__snap_put64(w->head + 16, w->payload_len);
    XXH3_64bits_update(w->hs, w->head, w->head_len);
    uint64_t sum = XXH3_64bits_digest(w->hs);
    uint64_t hsum = XXH3_64bits(w->head, w->head_len);
    /* The header is wholly in the buffer or wholly in the file. */
    if (w->sec_off >= w->boff) {
        memcpy(w->buf + (w->sec_off - w->boff), w->head, w->head_len);
    } else {
        size_t done = 0;
        while (done < w->head_len) {
            ssize_t k =
                pwrite(w->fd, w->head + done, w->head_len - done, (off_t)(w->sec_off + done));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0)
                return wfail(w, RILL_EIO, "cannot write '%s': %s", w->tmp, strerror(errno));
            done += (size_t)k;
        }
    }
    unsigned char s[RILL__SNAP_SUM_SIZE];
    rill__snap_put64(s, sum);
    int rc = w_put(w, s, RILL__SNAP_SUM_SIZE);
    if (rc)
        return rc;
    if (rill__grow((void **)&w->table, &w->table_cap, w->n_sections + 1, RILL__SNAP_ENTRY_SIZE) !=
        RILL_OK)
        return wfail(w, RILL_ENOMEM, "out of memory");
    unsigned char *e = w->table + w->n_sections * RILL__SNAP_ENTRY_SIZE;
    rill__snap_put64(e, w->sec_off);
    rill__snap_put64(e + 8, w->head_len + w->payload_len + RILL__SNAP_SUM_SIZE);
    rill__snap_put64(e + 16, hsum);
    rill__snap_put64(e + 24, sum);
    w->n_sections++;
    w->in_section = 0;
    return RILL_OK;
}

const char *rill__snap_writer_errmsg(const rill__snap_writer *w) { return w ? w->err : ""; }

void rill__snap_writer_abort(rill__snap_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    unlink(w->tmp);
    w_free(w);
}

int rill__snap_writer_commit(rill__snap_writer *w, rill__snap_fileinfo *info, char *err)
{
    if (!w) {
        if (err)
            rill__fmt(err, "snapshot writer is NULL");
        return RILL_EINVAL;
    }
    int rc = w->rc;
    if (!rc && w->in_section)
        rc = wfail(w, RILL_EINVAL, "commit: a section is still open");
    uint64_t table_off = w->boff + w->blen;
    unsigned char tr[RILL__SNAP_TRAILER_SIZE];
    rill__snap_put64(tr, table_off);
    rill__snap_put64(tr + 8, w->n_sections);
    XXH3_64bits_reset(w->hs);
    XXH3_64bits_update(w->hs, w->hdr, RILL__SNAP_HEADER_SIZE);
    if (w->n_sections)
        XXH3_64bits_update(w->hs, w->table, w->n_sections * RILL__SNAP_ENTRY_SIZE);
    XXH3_64bits_update(w->hs, tr, 16);
    uint64_t digest = XXH3_64bits_digest(w->hs);
    rill__snap_put64(tr + 16, digest);
    memcpy(tr + 24, RILL__SNAP_END_MAGIC, 8);
    if (!rc && w->n_sections)
        rc = w_put(w, w->table, w->n_sections * RILL__SNAP_ENTRY_SIZE);
    if (!rc)
        rc = w_put(w, tr, RILL__SNAP_TRAILER_SIZE);
    if (!rc)
        rc = w_flush(w);
    if (!rc && fsync(w->fd) != 0)
        rc = wfail(w, RILL_EIO, "cannot fsync '%s': %s", w->tmp, strerror(errno));
    if (!rc) {
        int fd = w->fd;
        w->fd = -1;
        if (close(fd) != 0)
            rc = wfail(w, RILL_EIO, "cannot close '%s': %s", w->tmp, strerror(errno));
    }
    if (!rc && rename(w->tmp, w->path) != 0)
        rc = wfail(w, RILL_EIO, "cannot rename '%s': %s", w->tmp, strerror(errno));
    if (rc) {
        if (err)
            memcpy(err, w->err, RILL__ERRMSG_MAX);
        rill__snap_writer_abort(w);
        return rc;
    }
    rc = fsync_dir(w->dir);
    if (rc)
        rill__snap_failmsg(err, w->path, rc, "renamed into place, but fsync of '%s' failed: %s",
                           w->dir, strerror(errno));
    if (info) {
        info->size =
            table_off + (uint64_t)w->n_sections * RILL__SNAP_ENTRY_SIZE + RILL__SNAP_TRAILER_SIZE;
        info->digest = digest;
    }
    w_free(w);
    return rc;
}
