/* format_read.c - snapshot files: the reader and the verifier. */
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

/* A name from a file, printable and short, for messages. */
static void shown(char *out, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k < 48; i++)
        out[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n > 48) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
}

/* 0 when n bytes were read, 1 at an early end of file, -1 on an error. */
static int pread_full(int fd, unsigned char *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t k = pread(fd, p, n, (off_t)off);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (k == 0)
            return 1;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

struct rill__snap_reader {
    XXH3_state_t *hs; /* the current section's checksum */
    void *hs_raw;
    int fd;
    int rc; /* sticky error */
    unsigned flags;
    char *path;
    uint64_t size, count, table_off, digest;
    unsigned char *buf; /* file bytes [boff, boff + blen) */
    size_t blen;
    uint64_t boff;
    uint64_t pos;        /* next file offset to read */
    uint64_t next_index; /* the section rill__snap_reader_next reads */
    int in_section;
    uint64_t cur, left, sec_end, want_sum;
    uint32_t kind;
    unsigned char *head; /* the current section's header */
    size_t head_len, head_cap;
    char *names; /* uid NUL state NUL */
    size_t names_cap;
    unsigned char *kv;
    size_t kv_cap;
    char err[RILL__ERRMSG_MAX];
};

int rill__snap_reader_fail(rill__snap_reader *r, int code, const char *fmt, ...)
{
    char msg[RILL__ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rill__fmt(r->err, "snapshot '%s': %s", r->path, msg);
    r->rc = code;
    return code;
}

static int r_ioerr(rill__snap_reader *r, int how, uint64_t off)
{
    if (how > 0)
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "truncated at offset %" PRIu64, off);
    return rill__snap_reader_fail(r, RILL_EIO, "read error at offset %" PRIu64 ": %s", off,
                                  strerror(errno));
}

/* Take n bytes at r->pos: copied to dst when not NULL, hashed when hash. */
static int r_take(rill__snap_reader *r, void *dst, size_t n, int hash)
{
    unsigned char *d = dst;
    while (n > 0) {
        if (r->pos >= r->boff && r->pos < r->boff + r->blen) {
            size_t at = (size_t)(r->pos - r->boff);
            size_t k = r->blen - at < n ? r->blen - at : n;
            if (d) {
                memcpy(d, r->buf + at, k);
                d += k;
            }
            if (hash)
                XXH3_64bits_update(r->hs, r->buf + at, k);
            r->pos += k;
            n -= k;
            continue;
        }
        if (d && n >= RILL__SNAP_IOBUF) { /* large: straight into dst */
            int how = pread_full(r->fd, d, n, r->pos);
            if (how)
                return r_ioerr(r, how, r->pos);
            if (hash)
                XXH3_64bits_update(r->hs, d, n);
            r->pos += n;
            return RILL_OK;
        }
        if (r->pos >= r->size)
            return rill__snap_reader_fail(r, RILL_ECORRUPT, "truncated at offset %" PRIu64, r->pos);
        uint64_t avail = r->size - r->pos;
        size_t want = avail < RILL__SNAP_IOBUF ? (size_t)avail : RILL__SNAP_IOBUF;
        r->blen = 0;
        int how = pread_full(r->fd, r->buf, want, r->pos);
        if (how)
            return r_ioerr(r, how, r->pos);
        r->boff = r->pos;
        r->blen = want;
    }
    return RILL_OK;
}

static int r_check(rill__snap_reader *r, int want_meta)
{
    unsigned char h[RILL__SNAP_HEADER_SIZE], tr[RILL__SNAP_TRAILER_SIZE];
    if (r->size == 0)
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "empty file, not a rill snapshot");
    size_t n = r->size < RILL__SNAP_HEADER_SIZE ? (size_t)r->size : RILL__SNAP_HEADER_SIZE;
    int how = pread_full(r->fd, h, n, 0);
    if (how)
        return r_ioerr(r, how, 0);
    if (memcmp(h, RILL__SNAP_MAGIC, n < 8 ? n : 8) != 0)
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "not a rill snapshot (bad magic)");
    if (n < RILL__SNAP_HEADER_SIZE)
        return rill__snap_reader_fail(
            r, RILL_ECORRUPT, "truncated (%" PRIu64 " bytes, shorter than the header)", r->size);
    uint32_t version = rill__snap_get32(h + 8);
    if (version != RILL__SNAP_VERSION)
        return rill__snap_reader_fail(r, RILL_ECORRUPT,
                                      "unknown format version %" PRIu32 " (this library reads %u)",
                                      version, RILL__SNAP_VERSION);
    if (rill__snap_get64(h + 16) != XXH3_64bits(h, 16))
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "header checksum mismatch");
    r->flags = rill__snap_get32(h + 12);
    if (r->flags & ~RILL__SNAP_FLAG_META)
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "unknown header flags 0x%" PRIx32,
                                      (uint32_t)r->flags);
    int is_meta = (r->flags & RILL__SNAP_FLAG_META) != 0;
    if (want_meta >= 0 && is_meta != want_meta)
        return rill__snap_reader_fail(r, RILL_ECORRUPT,
                                      is_meta ? "a checkpoint _metadata file, not snapshot data"
                                              : "snapshot data, not a checkpoint _metadata file");
    if (r->size < RILL__SNAP_HEADER_SIZE + RILL__SNAP_TRAILER_SIZE)
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "truncated (no room for the trailer)");
    how = pread_full(r->fd, tr, RILL__SNAP_TRAILER_SIZE, r->size - RILL__SNAP_TRAILER_SIZE);
    if (how)
        return r_ioerr(r, how, r->size - RILL__SNAP_TRAILER_SIZE);
    if (memcmp(tr + 24, RILL__SNAP_END_MAGIC, 8) != 0)
        return rill__snap_reader_fail(r, RILL_ECORRUPT,
                                      "truncated or unfinished (no trailer at the end)");
    r->table_off = rill__snap_get64(tr);
    r->count = rill__snap_get64(tr + 8);
    uint64_t room = r->size - RILL__SNAP_HEADER_SIZE - RILL__SNAP_TRAILER_SIZE;
    if (r->count > room / RILL__SNAP_ENTRY_SIZE ||
        r->table_off != r->size - RILL__SNAP_TRAILER_SIZE - r->count * RILL__SNAP_ENTRY_SIZE)
        return rill__snap_reader_fail(
            r, RILL_ECORRUPT, "trailer does not match the file size (truncated or corrupt)");
    /* The table: checksum, and sections that tile [header, table). */
    XXH3_64bits_reset(r->hs);
    XXH3_64bits_update(r->hs, h, RILL__SNAP_HEADER_SIZE);
    uint64_t expect = RILL__SNAP_HEADER_SIZE, bad = UINT64_MAX;
    unsigned char e[RILL__SNAP_ENTRY_SIZE];
    r->pos = r->table_off;
    for (uint64_t i = 0; i < r->count; i++) {
        int rc = r_take(r, e, RILL__SNAP_ENTRY_SIZE, 1);
        if (rc)
            return rc;
        uint64_t off = rill__snap_get64(e), sz = rill__snap_get64(e + 8);
        if (bad == UINT64_MAX &&
            (off != expect || sz < RILL__SNAP_SECHEAD_SIZE + RILL__SNAP_SUM_SIZE ||
             sz > r->table_off - off))
            bad = i;
        if (bad == UINT64_MAX)
            expect += sz;
    }
    if (bad == UINT64_MAX && expect != r->table_off)
        bad = r->count;
    XXH3_64bits_update(r->hs, tr, 16);
    if (XXH3_64bits_digest(r->hs) != rill__snap_get64(tr + 16))
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "section table checksum mismatch");
    if (bad != UINT64_MAX)
        return rill__snap_reader_fail(r, RILL_ECORRUPT,
                                      "section table entry %" PRIu64 " is inconsistent", bad);
    r->digest = rill__snap_get64(tr + 16);
    r->pos = RILL__SNAP_HEADER_SIZE;
    return RILL_OK;
}

int rill__snap_reader_open_as(rill__snap_reader **out, const char *path, int want_meta, char *err)
{
    *out = NULL;
    if (!path || !*path) {
        if (err)
            rill__fmt(err, "snapshot path is NULL or empty");
        return RILL_EINVAL;
    }
    rill__snap_reader *r = rill__calloc(1, sizeof *r);
    if (!r)
        return rill__snap_failmsg(err, path, RILL_ENOMEM, "out of memory");
    r->fd = -1;
    r->path = rill__strdup(path);
    r->buf = rill__malloc(RILL__SNAP_IOBUF);
    r->hs = rill__snap_hash_new(&r->hs_raw);
    if (!r->path || !r->buf || !r->hs) {
        rill__snap_reader_close(r);
        return rill__snap_failmsg(err, path, RILL_ENOMEM, "out of memory");
    }
    int rc = RILL_OK;
    struct stat st;
    r->fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC); /* a FIFO must not block */
    if (r->fd < 0) {
        int e = errno;
        rc = e == ENOENT || e == ENOTDIR
                 ? rill__snap_reader_fail(r, RILL_ENOTFOUND, "no such file")
                 : rill__snap_reader_fail(r, RILL_EIO, "cannot open: %s", strerror(e));
    } else if (fstat(r->fd, &st) != 0) {
        rc = rill__snap_reader_fail(r, RILL_EIO, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = rill__snap_reader_fail(r, RILL_ECORRUPT, "not a regular file");
    } else {
        r->size = (uint64_t)st.st_size;
        rc = r_check(r, want_meta);
    }
    if (rc) {
        if (err)
            memcpy(err, r->err, RILL__ERRMSG_MAX);
        rill__snap_reader_close(r);
        return rc;
    }
    *out = r;
    return RILL_OK;
}

int rill__snap_reader_open(rill__snap_reader **r, const char *path, char *err)
{
    return rill__snap_reader_open_as(r, path, 0, err);
}

const char *rill__snap_reader_where(const rill__snap_reader *r, char *out, size_t cap)
{
    char u[64], s[64];
    if (!r->in_section) {
        snprintf(out, cap, "section %" PRIu64, r->next_index);
        return out;
    }
    const unsigned char *h = r->head;
    size_t ul = rill__snap_get16(h + 12), sl = rill__snap_get16(h + 14);
    shown(u, (const char *)h + RILL__SNAP_SECHEAD_SIZE, ul);
    shown(s, (const char *)h + RILL__SNAP_SECHEAD_SIZE + ul, sl);
    snprintf(out, cap, "section %" PRIu64 " (kind %" PRIu32 ", uid '%s', state '%s')", r->cur,
             r->kind, u, s);
    return out;
}

/* The payload was read: compare the section's checksum. */
static int r_finish(rill__snap_reader *r)
{
    unsigned char s[RILL__SNAP_SUM_SIZE];
    char d[200];
    int rc = r_take(r, s, RILL__SNAP_SUM_SIZE, 0);
    if (rc)
        return rc;
    XXH3_64bits_update(r->hs, r->head, r->head_len);
    if (rill__snap_get64(s) != XXH3_64bits_digest(r->hs) || rill__snap_get64(s) != r->want_sum)
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "%s: checksum mismatch",
                                      rill__snap_reader_where(r, d, sizeof d));
    return RILL_OK;
}

int rill__snap_reader_next(rill__snap_reader *r, rill__snap_section *info)
{
    if (!r || !info)
        return RILL_EINVAL;
    if (r->rc)
        return r->rc;
    if (r->in_section) {
        r->pos = r->sec_end;
        r->in_section = 0;
    }
    if (r->next_index >= r->count)
        return 0;
    uint64_t i = r->next_index;
    unsigned char e[RILL__SNAP_ENTRY_SIZE];
    char d[200];
    int how = pread_full(r->fd, e, RILL__SNAP_ENTRY_SIZE, r->table_off + i * RILL__SNAP_ENTRY_SIZE);
    if (how)
        return r_ioerr(r, how, r->table_off + i * RILL__SNAP_ENTRY_SIZE);
    uint64_t off = rill__snap_get64(e), sz = rill__snap_get64(e + 8);
    /* Checked at open; checked again in case the file changed since. */
    if (off != r->pos || sz < RILL__SNAP_SECHEAD_SIZE + RILL__SNAP_SUM_SIZE ||
        sz > r->table_off - off)
        return rill__snap_reader_fail(r, RILL_ECORRUPT,
                                      "section table entry %" PRIu64 " is inconsistent", i);
    if (rill__grow((void **)&r->head, &r->head_cap, RILL__SNAP_SECHEAD_SIZE, 1) != RILL_OK)
        return rill__snap_reader_fail(r, RILL_ENOMEM, "out of memory");
    int rc = r_take(r, r->head, RILL__SNAP_SECHEAD_SIZE, 0);
    if (rc)
        return rc;
    size_t ul = rill__snap_get16(r->head + 12), sl = rill__snap_get16(r->head + 14);
    if (RILL__SNAP_SECHEAD_SIZE + ul + sl + RILL__SNAP_SUM_SIZE > sz)
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "%s: header longer than the section",
                                      rill__snap_reader_where(r, d, sizeof d));
    size_t hl = RILL__SNAP_SECHEAD_SIZE + ul + sl;
    if (rill__grow((void **)&r->head, &r->head_cap, hl, 1) != RILL_OK ||
        rill__grow((void **)&r->names, &r->names_cap, ul + sl + 2, 1) != RILL_OK)
        return rill__snap_reader_fail(r, RILL_ENOMEM, "out of memory");
    rc = r_take(r, r->head + RILL__SNAP_SECHEAD_SIZE, ul + sl, 0);
    if (rc)
        return rc;
    r->head_len = hl;
    if (XXH3_64bits(r->head, hl) != rill__snap_get64(e + 16))
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "%s: header checksum mismatch",
                                      rill__snap_reader_where(r, d, sizeof d));
    const unsigned char *h = r->head;
    uint32_t kind = rill__snap_get32(h);
    uint16_t kf = rill__snap_get16(h + 8), kl = rill__snap_get16(h + 10);
    uint64_t plen = rill__snap_get64(h + 16);
    int meta = (r->flags & RILL__SNAP_FLAG_META) != 0;
    const char *bad = NULL;
    if (!(meta ? rill__snap_is_meta_kind(kind) : rill__snap_is_data_kind(kind)))
        bad = "unknown section kind";
    else if (rill__snap_get32(h + 4) != 0)
        bad = "reserved field is not zero";
    else if (!rill__snap_kg_ok(kf, kl))
        bad = "bad key-group range";
    else if (plen != sz - hl - RILL__SNAP_SUM_SIZE)
        bad = "payload length does not match the section table";
    else if (memchr(h + RILL__SNAP_SECHEAD_SIZE, 0, ul + sl))
        bad = "NUL byte in a name";
    r->cur = i;
    r->kind = kind;
    r->in_section = 1;
    if (bad)
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "%s: %s",
                                      rill__snap_reader_where(r, d, sizeof d), bad);
    memcpy(r->names, h + RILL__SNAP_SECHEAD_SIZE, ul);
    r->names[ul] = '\0';
    memcpy(r->names + ul + 1, h + RILL__SNAP_SECHEAD_SIZE + ul, sl);
    r->names[ul + 1 + sl] = '\0';
    r->left = plen;
    r->sec_end = off + sz;
    r->want_sum = rill__snap_get64(e + 24);
    r->next_index = i + 1;
    XXH3_64bits_reset(r->hs);
    info->index = i;
    info->kind = kind;
    info->kg_first = kf;
    info->kg_last = kl;
    info->uid = r->names;
    info->uid_len = ul;
    info->state = r->names + ul + 1;
    info->state_len = sl;
    info->payload_len = plen;
    if (plen == 0 && (rc = r_finish(r)) != RILL_OK)
        return rc;
    return 1;
}

int rill__snap_reader_read(rill__snap_reader *r, void *buf, size_t cap, size_t *got)
{
    if (!r || !got || (cap && !buf))
        return RILL_EINVAL;
    *got = 0;
    if (r->rc)
        return r->rc;
    if (!r->in_section || r->left == 0 || cap == 0)
        return RILL_OK;
    size_t n = r->left < cap ? (size_t)r->left : cap;
    int rc = r_take(r, buf, n, 1);
    if (rc)
        return rc;
    r->left -= n;
    if (r->left == 0 && (rc = r_finish(r)) != RILL_OK)
        return rc;
    *got = n;
    return RILL_OK;
}

/* Read a u32 length of an entry, or fail when it cannot fit. */
static int kv_len(rill__snap_reader *r, uint32_t *len)
{
    char d[200];
    unsigned char b[4];
    uint64_t at = r->sec_end - RILL__SNAP_SUM_SIZE - r->left;
    if (r->left < 4)
        return rill__snap_reader_fail(
            r, RILL_ECORRUPT, "%s: entry at offset %" PRIu64 " crosses the end of the payload",
            rill__snap_reader_where(r, d, sizeof d), at);
    int rc = r_take(r, b, 4, 1);
    if (rc)
        return rc;
    r->left -= 4;
    *len = rill__snap_get32(b);
    if (*len > r->left)
        return rill__snap_reader_fail(
            r, RILL_ECORRUPT, "%s: entry at offset %" PRIu64 " crosses the end of the payload",
            rill__snap_reader_where(r, d, sizeof d), at);
    return RILL_OK;
}

int rill__snap_reader_kv_next(rill__snap_reader *r, const void **key, size_t *klen,
                              const void **val, size_t *vlen)
{
    if (!r || !key || !klen || !val || !vlen)
        return RILL_EINVAL;
    if (r->rc)
        return r->rc;
    if (!r->in_section || r->left == 0)
        return 0;
    uint32_t kl, vl;
    int rc = kv_len(r, &kl);
    /* The buffer never outgrows what is left of the payload. */
    if (!rc && rill__grow((void **)&r->kv, &r->kv_cap, (size_t)kl + 1, 1) != RILL_OK)
        rc = rill__snap_reader_fail(r, RILL_ENOMEM, "out of memory");
    if (!rc)
        rc = r_take(r, r->kv, kl, 1);
    if (rc)
        return rc;
    r->left -= kl;
    rc = kv_len(r, &vl);
    if (!rc && rill__grow((void **)&r->kv, &r->kv_cap, (size_t)kl + vl + 1, 1) != RILL_OK)
        rc = rill__snap_reader_fail(r, RILL_ENOMEM, "out of memory");
    if (!rc)
        rc = r_take(r, r->kv + kl, vl, 1);
    if (rc)
        return rc;
    r->left -= vl;
    if (r->left == 0 && (rc = r_finish(r)) != RILL_OK)
        return rc;
    *key = r->kv;
    *klen = kl;
    *val = r->kv + kl;
    *vlen = vl;
    return 1;
}

uint64_t rill__snap_reader_count(const rill__snap_reader *r) { return r ? r->count : 0; }

rill__snap_fileinfo rill__snap_reader_fileinfo(const rill__snap_reader *r)
{
    rill__snap_fileinfo fi = {0, 0};
    if (r) {
        fi.size = r->size;
        fi.digest = r->digest;
    }
    return fi;
}

const char *rill__snap_reader_errmsg(const rill__snap_reader *r) { return r ? r->err : ""; }

void rill__snap_reader_close(rill__snap_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    rill__free(r->hs_raw);
    rill__free(r->path);
    rill__free(r->buf);
    rill__free(r->head);
    rill__free(r->names);
    rill__free(r->kv);
    rill__free(r);
}

/* Read the rest of the current section's payload (hashing it) and check it. */
static int r_drain(rill__snap_reader *r)
{
    while (r->left > 0) {
        size_t n = r->left < RILL__SNAP_IOBUF ? (size_t)r->left : RILL__SNAP_IOBUF;
        int rc = r_take(r, NULL, n, 1);
        if (rc)
            return rc;
        r->left -= n;
        if (r->left == 0)
            return r_finish(r);
    }
    return RILL_OK;
}

int rill__snap_verify(const char *path, rill__snap_fileinfo *info, char *err)
{
    rill__snap_reader *r;
    int rc = rill__snap_reader_open_as(&r, path, -1, err);
    if (rc)
        return rc;
    rill__snap_section s;
    while ((rc = rill__snap_reader_next(r, &s)) == 1)
        if ((rc = r_drain(r)) != RILL_OK)
            break;
    if (rc && err)
        memcpy(err, r->err, RILL__ERRMSG_MAX);
    if (!rc && info)
        *info = rill__snap_reader_fileinfo(r);
    rill__snap_reader_close(r);
    return rc;
}
