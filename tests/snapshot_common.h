/* snapshot_common.h - helpers of the snapshot format tests: paths in the
 * temporary directory, whole-file reads and writes, reading a snapshot to
 * its end, and the sample file (sections of every kind). Header only:
 * every helper is static inline. */
#ifndef RILL_TESTS_SNAPSHOT_COMMON_H
#define RILL_TESTS_SNAPSHOT_COMMON_H

#define TEST_NAME "snapshot"
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "snapshot/format.h"
#include "snapshot/format_int.h"
#include "util/error.h"

static inline char *tpath(const char *name)
{
    static char bufs[4][256];
    static int k;
    char *p = bufs[k++ & 3];
    tmp_path(p, sizeof bufs[0], name);
    return p;
}

static inline int exists(const char *path) { return access(path, F_OK) == 0; }

static inline size_t file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "stat %s", path);
    return (size_t)st.st_size;
}

static inline unsigned char *slurp(const char *path, size_t *len)
{
    *len = file_size(path);
    unsigned char *b = malloc(*len + 1);
    cr_assert_not_null(b);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(read(fd, b, *len), (ssize_t)*len);
    close(fd);
    return b;
}

static inline void spit(const char *path, const void *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "create %s", path);
    cr_assert_eq(write(fd, b, len), (ssize_t)len);
    close(fd);
}

/* Open, walk every section and read every payload byte: the first error,
 * or RILL_OK. Bounded, so that a loop on hostile input fails the test. */
static inline int read_all(const char *path, char *err)
{
    rill__snap_reader *r;
    int rc = rill__snap_reader_open(&r, path, err);
    if (rc)
        return rc;
    rill__snap_section s;
    unsigned char buf[97];
    long steps = 0;
    while ((rc = rill__snap_reader_next(r, &s)) == 1) {
        size_t got;
        do {
            rc = rill__snap_reader_read(r, buf, sizeof buf, &got);
            cr_assert_lt(++steps, 10000000L, "reader loops");
        } while (rc == RILL_OK && got > 0);
        if (rc)
            break;
    }
    if (rc)
        strcpy(err, rill__snap_reader_errmsg(r));
    rill__snap_reader_close(r);
    return rc;
}

/* The sample file: six sections of every kind, some with empty payloads. */
typedef struct spec {
    uint32_t kind;
    const char *uid, *state;
    uint16_t kf, kl;
    const char *payload; /* NULL: the two entries of kv_sample */
    size_t len;
} spec;

__attribute__((unused)) static const spec sample[] = {
    {RILL__SNAP_INFO, "", "", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG, "subtask 0 of 2", 14},
    {RILL__SNAP_KEYED, "counter", "count", 0, 63, NULL, 22},
    {RILL__SNAP_TIMERS, "counter", "", 0, 63, "", 0},
    {RILL__SNAP_OPLIST, "src", "offsets", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG, "xyz", 3},
    {RILL__SNAP_BROADCAST, "rules", "rules", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG, "", 0},
    {RILL__SNAP_SOURCE, "src", "", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG, "\x2a\0\0\0\0\0\0\0", 8},
};
#define N_SAMPLE (sizeof sample / sizeof sample[0])

static inline size_t sec_size(const spec *s)
{
    return 24 + strlen(s->uid) + strlen(s->state) + s->len + 8;
}

/* Byte offsets where a file of the sample may be cut: after the header,
 * after each section, after each table entry; the last is the size. */
static inline size_t sample_bounds(size_t *b)
{
    size_t n = 0, off = 24;
    b[n++] = off;
    for (size_t i = 0; i < N_SAMPLE; i++)
        b[n++] = off += sec_size(&sample[i]);
    for (size_t i = 0; i < N_SAMPLE; i++)
        b[n++] = off += 32;
    b[n++] = off + 32;
    return n;
}

static inline rill__snap_fileinfo write_sample(const char *path)
{
    rill__snap_writer *w;
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&w, path, err), RILL_OK, "%s", err);
    for (size_t i = 0; i < N_SAMPLE; i++) {
        const spec *s = &sample[i];
        cr_assert_eq(rill__snap_writer_section_begin(w, s->kind, s->uid, s->state, s->kf, s->kl),
                     RILL_OK, "%s", rill__snap_writer_errmsg(w));
        if (s->payload) {
            /* In two pieces, to exercise streaming. */
            cr_assert_eq(rill__snap_writer_append(w, s->payload, s->len / 2), RILL_OK);
            cr_assert_eq(rill__snap_writer_append(w, s->payload + s->len / 2, s->len - s->len / 2),
                         RILL_OK);
        } else {
            cr_assert_eq(rill__snap_writer_kv(w, "a", 1, "1", 1), RILL_OK);
            cr_assert_eq(rill__snap_writer_kv(w, "bb", 2, "22", 2), RILL_OK);
        }
        cr_assert_eq(rill__snap_writer_section_end(w), RILL_OK);
    }
    rill__snap_fileinfo fi;
    cr_assert_eq(rill__snap_writer_commit(w, &fi, err), RILL_OK, "%s", err);
    return fi;
}

/* Files a _metadata file lists. */
__attribute__((unused)) static rill__snap_meta_file mf[] = {
    {"counter/0", 1234, 0x1111222233334444u},
    {"counter/1", 0, 0},
    {"src-0.snap", UINT64_MAX, UINT64_MAX},
};

#endif
