/* format_meta.c - a checkpoint's _metadata file, kept in the snapshot
 * container (header flag RILL__SNAP_FLAG_META). */
#include <inttypes.h>
#include <string.h>

#include "rill.h"
#include "snapshot/format_int.h"
#include "util/alloc.h"

/* A relative name whose components are neither empty, "." nor "..". */
static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > RILL__SNAP_META_NAME_MAX || memchr(s, 0, n))
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '/')
            continue;
        size_t len = i - start;
        if (len == 0 || (len == 1 && s[start] == '.') ||
            (len == 2 && s[start] == '.' && s[start + 1] == '.'))
            return 0;
        start = i + 1;
    }
    return 1;
}

int rill__snap_meta_write(const char *path, const rill__snap_meta *m, char *err)
{
    if (!path || !*path || !m || (m->n_files && !m->files) || (m->job_len && !m->job)) {
        if (err)
            rill__fmt(err, "snapshot metadata: NULL or empty argument");
        return RILL_EINVAL;
    }
    if (m->job_len > RILL__SNAP_META_JOB_MAX)
        return rill__snap_failmsg(err, path, RILL_EINVAL,
                                  "job description of %zu bytes is too large", m->job_len);
    for (size_t i = 0; i < m->n_files; i++)
        if (!m->files[i].name || !name_ok(m->files[i].name, strlen(m->files[i].name)))
            return rill__snap_failmsg(err, path, RILL_EINVAL, "bad file name at index %zu", i);
    rill__snap_writer *w;
    int rc = rill__snap_writer_open_flags(&w, path, RILL__SNAP_FLAG_META, err);
    if (rc)
        return rc;
    unsigned char b[16];
    rill__snap_put64(b, m->checkpoint_id);
    rill__snap_put64(b + 8, (uint64_t)m->timestamp_ms);
    rc = rill__snap_writer_begin(w, RILL__SNAP_M_CHECKPOINT, "", "", RILL__SNAP_NO_KG,
                                 RILL__SNAP_NO_KG);
    if (!rc)
        rc = rill__snap_writer_append(w, b, 16);
    if (!rc)
        rc = rill__snap_writer_section_end(w);
    for (size_t i = 0; !rc && i < m->n_files; i++) {
        rill__snap_put64(b, m->files[i].size);
        rill__snap_put64(b + 8, m->files[i].digest);
        rc = rill__snap_writer_begin(w, RILL__SNAP_M_FILE, "", "", RILL__SNAP_NO_KG,
                                     RILL__SNAP_NO_KG);
        if (!rc)
            rc = rill__snap_writer_append(w, b, 16);
        if (!rc)
            rc = rill__snap_writer_append(w, m->files[i].name, strlen(m->files[i].name));
        if (!rc)
            rc = rill__snap_writer_section_end(w);
    }
    if (!rc)
        rc = rill__snap_writer_begin(w, RILL__SNAP_M_JOB, "", "", RILL__SNAP_NO_KG,
                                     RILL__SNAP_NO_KG);
    if (!rc)
        rc = rill__snap_writer_append(w, m->job, m->job_len);
    if (!rc)
        rc = rill__snap_writer_section_end(w);
    if (rc) {
        if (err)
            memcpy(err, rill__snap_writer_errmsg(w), RILL__ERRMSG_MAX);
        rill__snap_writer_abort(w);
        return rc;
    }
    return rill__snap_writer_commit(w, NULL, err);
}

void rill__snap_meta_free(rill__snap_meta *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_files; i++)
        rill__free(m->files[i].name);
    rill__free(m->files);
    rill__free(m->job);
    rill__free(m);
}

/* Read the whole payload of the current section into a new buffer. */
static int read_payload(rill__snap_reader *r, uint64_t len, unsigned char **out)
{
    *out = rill__malloc((size_t)len + 1);
    if (!*out)
        return rill__snap_reader_fail(r, RILL_ENOMEM, "out of memory");
    size_t got;
    int rc = len ? rill__snap_reader_read(r, *out, (size_t)len, &got) : RILL_OK;
    if (rc) {
        rill__free(*out);
        *out = NULL;
    }
    return rc;
}

static int meta_section(rill__snap_reader *r, rill__snap_meta *m, const rill__snap_section *s,
                        size_t *cap)
{
    char d[200];
    uint64_t n = s->payload_len;
    const char *bad = NULL;
    if (s->uid_len || s->state_len || s->kg_first != RILL__SNAP_NO_KG)
        bad = "names or key groups set";
    else if ((s->index == 0) != (s->kind == RILL__SNAP_M_CHECKPOINT))
        bad = "the checkpoint section is not first";
    else if ((s->kind == RILL__SNAP_M_JOB) != (s->index + 1 == rill__snap_reader_count(r)))
        bad = "the job section is not last";
    else if (s->kind == RILL__SNAP_M_CHECKPOINT && n != 16)
        bad = "checkpoint section of a bad length";
    else if (s->kind == RILL__SNAP_M_FILE && (n <= 16 || n > 16 + RILL__SNAP_META_NAME_MAX))
        bad = "file section of a bad length";
    else if (s->kind == RILL__SNAP_M_JOB && n > RILL__SNAP_META_JOB_MAX)
        bad = "job description too large";
    if (bad)
        return rill__snap_reader_fail(r, RILL_ECORRUPT, "%s: %s",
                                      rill__snap_reader_where(r, d, sizeof d), bad);
    unsigned char *p;
    int rc = read_payload(r, n, &p);
    if (rc)
        return rc;
    if (s->kind == RILL__SNAP_M_CHECKPOINT) {
        m->checkpoint_id = rill__snap_get64(p);
        m->timestamp_ms = (int64_t)rill__snap_get64(p + 8);
        rill__free(p);
    } else if (s->kind == RILL__SNAP_M_JOB) {
        m->job = p;
        m->job_len = (size_t)n;
    } else {
        p[n] = '\0';
        if (!name_ok((const char *)p + 16, (size_t)n - 16)) {
            rill__free(p);
            return rill__snap_reader_fail(r, RILL_ECORRUPT, "%s: bad file name",
                                          rill__snap_reader_where(r, d, sizeof d));
        }
        if (rill__grow((void **)&m->files, cap, m->n_files + 1, sizeof *m->files) != RILL_OK) {
            rill__free(p);
            return rill__snap_reader_fail(r, RILL_ENOMEM, "out of memory");
        }
        rill__snap_meta_file *f = &m->files[m->n_files++];
        f->size = rill__snap_get64(p);
        f->digest = rill__snap_get64(p + 8);
        memmove(p, p + 16, (size_t)n - 16 + 1);
        f->name = (char *)p;
    }
    return RILL_OK;
}

int rill__snap_meta_read(const char *path, rill__snap_meta **out, char *err)
{
    if (!out)
        return RILL_EINVAL;
    *out = NULL;
    rill__snap_reader *r;
    int rc = rill__snap_reader_open_as(&r, path, 1, err);
    if (rc)
        return rc;
    rill__snap_meta *m = rill__calloc(1, sizeof *m);
    if (!m)
        rc = rill__snap_reader_fail(r, RILL_ENOMEM, "out of memory");
    else if (rill__snap_reader_count(r) < 2)
        rc = rill__snap_reader_fail(r, RILL_ECORRUPT,
                                    "a _metadata file needs a checkpoint and a job section");
    size_t cap = 0;
    rill__snap_section s;
    while (!rc && (rc = rill__snap_reader_next(r, &s)) == 1)
        rc = meta_section(r, m, &s, &cap);
    if (rc) {
        if (err)
            memcpy(err, rill__snap_reader_errmsg(r), RILL__ERRMSG_MAX);
        rill__snap_meta_free(m);
    } else {
        *out = m;
    }
    rill__snap_reader_close(r);
    return rc;
}

int rill__snap_meta_check_files(const rill__snap_meta *m, const char *dir, char *err)
{
    if (!m || !dir)
        return RILL_EINVAL;
    size_t dl = strlen(dir);
    for (size_t i = 0; i < m->n_files; i++) {
        size_t nl = strlen(m->files[i].name);
        char *p = rill__malloc(dl + nl + 2);
        if (!p)
            return rill__snap_failmsg(err, dir, RILL_ENOMEM, "out of memory");
        memcpy(p, dir, dl);
        p[dl] = '/';
        memcpy(p + dl + 1, m->files[i].name, nl + 1);
        rill__snap_reader *r;
        int rc = rill__snap_reader_open_as(&r, p, 0, err);
        if (rc == RILL_ENOTFOUND)
            rc = rill__snap_failmsg(err, p, RILL_ECORRUPT,
                                    "listed in the checkpoint metadata but missing");
        if (!rc) {
            rill__snap_fileinfo fi = rill__snap_reader_fileinfo(r);
            if (fi.size != m->files[i].size || fi.digest != m->files[i].digest)
                rc = rill__snap_failmsg(err, p, RILL_ECORRUPT,
                                        "differs from the checkpoint metadata (size %" PRIu64
                                        ", expected %" PRIu64 ")",
                                        fi.size, m->files[i].size);
            rill__snap_reader_close(r);
        }
        rill__free(p);
        if (rc)
            return rc;
    }
    return RILL_OK;
}
