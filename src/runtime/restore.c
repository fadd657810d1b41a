/* restore.c - starting a job from a checkpoint or savepoint: finding the
 * snapshot, checking it against the job, and giving each operator subtask
 * its state and each replayable source its position. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "graph/graph.h"
#include "runtime/ckpt_dir.h"
#include "runtime/task.h"
#include "snapshot/format.h"
#include "state/snapshot.h"
#include "util/alloc.h"
#include "util/log.h"

typedef struct rill__restore {
    int64_t id;
    int allow_unknown;
    char **paths;
    size_t n;
} rill__restore;

/* The checkpoint that path names, into out: path itself when it has a
 * _metadata, else the newest complete chk-<n> in it (ckpt_dir.c).
 * RILL_ENOTFOUND with *none set when there is nothing to restore: path
 * does not exist, or is a directory without any checkpoint. */
static int find_checkpoint(const char *path, char *out, size_t cap, int *none, char *err)
{
    char m[4200], why[RILL__ERRMSG_MAX];
    struct stat sb;
    *none = 0;
    snprintf(m, sizeof m, "%s/_metadata", path);
    int e = stat(m, &sb) == 0 ? 0 : errno;
    if (!e) {
        snprintf(out, cap, "%s", path);
        return RILL_OK;
    }
    if (e == ENOENT || e == ENOTDIR)
        e = stat(path, &sb) != 0 ? errno : S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;
    if (e == ENOENT) {
        *none = 1;
        rill__fmt(err, "restore: '%s' does not exist", path);
        return RILL_ENOTFOUND;
    }
    if (e == ENOTDIR) {
        rill__fmt(err, "restore: '%s' is neither a checkpoint nor a directory of checkpoints",
                  path);
        return RILL_ENOTFOUND;
    }
    if (e) {
        rill__fmt(err, "restore: cannot read '%s': %s", path, strerror(e));
        return RILL_EIO;
    }
    int rc = rill__ckpt_dir_latest(path, out, cap, why);
    *none = rc == RILL_ENOTFOUND;
    if (rc)
        rill__fmt(err, "restore: %s", why);
    return rc;
}

static int known_uid(const rill__job *job, const char *uid)
{
    for (size_t i = 0; i < job->n_ctxs; i++) {
        const char *u = job->ctxs[i]->node->resolved_uid;
        if (u && strcmp(u, uid) == 0)
            return 1;
    }
    return 0;
}

/* Every section must belong to an operator of the job (unless allowed). */
static int check_uids(const rill__job *job, const rill__restore *r, char *err)
{
    for (size_t i = 0; i < r->n; i++) {
        rill__snap_reader *rd;
        int rc = rill__snap_reader_open(&rd, r->paths[i], err);
        if (rc)
            return rc;
        rill__snap_section s;
        while ((rc = rill__snap_reader_next(rd, &s)) == 1) {
            if (!r->allow_unknown && !known_uid(job, s.uid)) {
                rill__fmt(err,
                          "restore: '%s' holds state of operator uid '%s', which this job "
                          "does not have (allow non-restored state to skip it)",
                          r->paths[i], s.uid);
                rc = RILL_EINVAL;
                break;
            }
        }
        if (rc < 0 && rc != RILL_EINVAL)
            rill__fmt(err, "%s", rill__snap_reader_errmsg(rd));
        rill__snap_reader_close(rd);
        if (rc < 0)
            return rc;
    }
    return RILL_OK;
}

void rill__restore_free(rill__job *job)
{
    rill__restore *r = job->restore;
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        rill__free(r->paths[i]);
    rill__free(r->paths);
    rill__free(r);
    job->restore = NULL;
}

int rill__restore_prepare(rill__job *job, const char *path, int flags, char *err)
{
    char dir[4096];
    int none;
    int rc = find_checkpoint(path, dir, sizeof dir, &none, err);
    if (rc && none && (flags & RILL_RESTORE_IF_EXISTS)) {
        rill__log(RILL_LOG_INFO, "job '%s': no checkpoint to restore in '%s': it starts empty",
                  job->name, path);
        err[0] = '\0';
        return RILL_OK;
    }
    if (rc)
        return rc;
    char meta_path[4200];
    snprintf(meta_path, sizeof meta_path, "%s/_metadata", dir);
    rill__snap_meta *m = NULL;
    if ((rc = rill__snap_meta_read(meta_path, &m, err)))
        return rc;
    if ((rc = rill__snap_meta_check_files(m, dir, err))) {
        rill__snap_meta_free(m);
        return rc;
    }
    int maxp = 0;
    if (m->job && m->job_len < 64) {
        char buf[64];
        memcpy(buf, m->job, m->job_len);
        buf[m->job_len] = '\0';
        sscanf(buf, "max_parallelism=%d", &maxp);
    }
    if (maxp != job->max_parallelism) {
        rill__fmt(err,
                  "restore: '%s' was taken with max parallelism %d; this job has %d (the "
                  "number of key groups must stay the same)",
                  dir, maxp, job->max_parallelism);
        rill__snap_meta_free(m);
        return RILL_EINVAL;
    }
    rill__restore *r = rill__calloc(1, sizeof *r);
    if (!r || !(r->paths = rill__calloc(m->n_files ? m->n_files : 1, sizeof *r->paths))) {
        rill__free(r);
        rill__snap_meta_free(m);
        rill__fmt(err, "restore: out of memory");
        return RILL_ENOMEM;
    }
    job->restore = r;
    r->id = (int64_t)m->checkpoint_id;
    r->allow_unknown = (flags & RILL_RESTORE_ALLOW_NON_RESTORED) != 0;
    for (size_t i = 0; i < m->n_files; i++) {
        size_t len = strlen(dir) + strlen(m->files[i].name) + 2;
        if (!(r->paths[i] = rill__malloc(len))) {
            rill__snap_meta_free(m);
            rill__fmt(err, "restore: out of memory");
            return RILL_ENOMEM;
        }
        snprintf(r->paths[i], len, "%s/%s", dir, m->files[i].name);
        r->n++;
    }
    rill__snap_meta_free(m);
    return check_uids(job, r, err);
}

int64_t rill__restore_id(const rill__job *job)
{
    return job->restore ? job->restore->id : 0;
}

/* A replayable source takes the position its subtask had. */
static int restore_source(rill_ctx *op, const rill__restore *r, char *err)
{
    const char *uid = op->node->resolved_uid;
    int found = 0;
    for (size_t i = 0; i < r->n && !found; i++) {
        rill__snap_reader *rd;
        int rc = rill__snap_reader_open(&rd, r->paths[i], err);
        if (rc)
            return rc;
        rill__snap_section s;
        while (!found && (rc = rill__snap_reader_next(rd, &s)) == 1) {
            if (s.kind != RILL__SNAP_SOURCE || strcmp(s.uid, uid) != 0)
                continue;
            unsigned char b[16];
            size_t got = 0, all = 0;
            while (all < sizeof b && (rc = rill__snap_reader_read(rd, b + all, sizeof b - all,
                                                                  &got)) == RILL_OK && got)
                all += got;
            if (rc)
                break;
            if (all != sizeof b) {
                rill__fmt(err, "restore: '%s': source position of '%s' has %zu bytes, not 16",
                          r->paths[i], uid, all);
                rc = RILL_ECORRUPT;
                break;
            }
            uint32_t sub, par;
            uint64_t pos;
            memcpy(&sub, b, 4);
            memcpy(&par, b + 4, 4);
            memcpy(&pos, b + 8, 8);
            if ((int)sub != op->subtask)
                continue;
            found = 1;
            if ((int)par != op->parallelism) {
                rill__fmt(err,
                          "restore: source '%s' was checkpointed at parallelism %u and cannot "
                          "resume at parallelism %d",
                          op->node->name, par, op->parallelism);
                rc = RILL_EINVAL;
                break;
            }
            rc = op->node->def->seek(op, pos);
        }
        /* A reader error names the file; a seek error is the source's own. */
        if (rc == RILL_ECORRUPT && !strstr(err, r->paths[i]))
            rill__fmt(err, "%s", rill__snap_reader_errmsg(rd));
        rill__snap_reader_close(rd);
        if (rc < 0)
            return rc;
    }
    return RILL_OK;
}

int rill__restore_op(rill_ctx *op, char *err)
{
    const rill__restore *r = op->st->job->restore;
    if (!r)
        return RILL_OK;
    if (op->node->def->seek)
        return restore_source(op, r, err);
    if (!op->n_states && !op->timers[0] && !op->timers[1])
        return RILL_OK;
    return rill__state_restore(op, (const char *const *)r->paths, r->n, r->allow_unknown, err);
}
