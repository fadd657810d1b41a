/* ckpt_dir.c - a directory of checkpoints on disk (see ckpt_dir.h).
 *
 * A checkpoint is complete when its _metadata exists and every file it
 * lists is there with the size it lists. The coordinator writes
 * _metadata last and atomically, so a checkpoint being written has none;
 * a checkpoint is removed by renaming its directory to a hidden name
 * first, so one being removed is not under its name any more. A job
 * killed in the middle leaves such directories: the next job that
 * checkpoints into the same directory removes them.
 */
#include "runtime/ckpt_dir.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rill.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"
#include "util/workdir.h"

#define TRASH_PREFIX ".deleting-"

/* name is prefix followed by decimal digits that fit an int64. */
static int prefixed_id(const char *name, const char *prefix, int64_t *id)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0 || !name[n])
        return 0;
    int64_t v = 0;
    for (const char *p = name + n; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (*p - '0');
    }
    *id = v;
    return 1;
}

int rill__ckpt_dir_id(const char *name, int64_t *id)
{
    return prefixed_id(name, "chk-", id);
}

/* "a/b" into out; 0 when it does not fit. */
static int join(char *out, size_t cap, const char *a, const char *b)
{
    return (size_t)snprintf(out, cap, "%s/%s", a, b) < cap;
}

int rill__ckpt_dir_examine(const char *dir, int *state, rill__snap_meta **meta, char *err)
{
    char p[4200];
    struct stat sb;
    if (meta)
        *meta = NULL;
    *state = RILL__CHK_PARTIAL;
    if (!join(p, sizeof p, dir, "_metadata")) {
        rill__fmt(err, "checkpoint '%.200s...': path too long", dir);
        return RILL_EIO;
    }
    if (stat(p, &sb) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) {
            rill__fmt(err, "checkpoint '%s' has no _metadata", dir);
            return RILL_OK;
        }
        rill__fmt(err, "checkpoint '%s': cannot read its _metadata: %s", dir, strerror(errno));
        return RILL_EIO;
    }
    rill__snap_meta *m;
    int rc = rill__snap_meta_read(p, &m, err);
    if (rc == RILL_ENOTFOUND) /* removed meanwhile */
        return RILL_OK;
    if (rc)
        return rc;
    *state = RILL__CHK_COMPLETE;
    for (size_t i = 0; i < m->n_files && *state == RILL__CHK_COMPLETE && !rc; i++) {
        const rill__snap_meta_file *f = &m->files[i];
        if (!join(p, sizeof p, dir, f->name)) {
            rill__fmt(err, "checkpoint '%.200s...': path too long", dir);
            rc = RILL_EIO;
        } else if (stat(p, &sb) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) {
                *state = RILL__CHK_INCOMPLETE;
                rill__fmt(err, "'%s', listed in its _metadata, is missing", p);
            } else {
                rill__fmt(err, "checkpoint '%s': cannot read '%s': %s", dir, p, strerror(errno));
                rc = RILL_EIO;
            }
        } else if (!S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != f->size) {
            *state = RILL__CHK_INCOMPLETE;
            rill__fmt(err, "'%s' has %" PRIu64 " bytes, its _metadata lists %" PRIu64, p,
                      S_ISREG(sb.st_mode) ? (uint64_t)sb.st_size : 0, f->size);
        }
    }
    if (!rc && *state == RILL__CHK_COMPLETE && meta)
        *meta = m;
    else
        rill__snap_meta_free(m);
    return rc;
}

/* The chk-<n> entries of a directory, newest first. */
typedef struct ids {
    int64_t *v;
    size_t n, cap;
} ids;

static int newest_first(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* RILL_OK, or RILL_ENOTFOUND / RILL_EIO / RILL_ENOMEM with err set. */
static int list_ids(const char *root, ids *out, char *err)
{
    memset(out, 0, sizeof *out);
    DIR *d = opendir(root);
    if (!d) {
        int e = errno;
        rill__fmt(err, e == ENOENT ? "'%s' does not exist" : "cannot read directory '%s': %s",
                  root, strerror(e));
        return e == ENOENT ? RILL_ENOTFOUND : RILL_EIO;
    }
    struct dirent *e;
    int64_t id;
    int rc = RILL_OK;
    while (!rc && (e = readdir(d)))
        if (rill__ckpt_dir_id(e->d_name, &id)) {
            if (rill__grow((void **)&out->v, &out->cap, out->n + 1, sizeof *out->v)) {
                rill__fmt(err, "out of memory");
                rc = RILL_ENOMEM;
            } else {
                out->v[out->n++] = id;
            }
        }
    closedir(d);
    if (out->n)
        qsort(out->v, out->n, sizeof *out->v, newest_first);
    return rc;
}

int rill__ckpt_dir_latest(const char *root, char *out, size_t cap, char *err)
{
    ids all;
    int rc = list_ids(root, &all, err);
    char why[RILL__ERRMSG_MAX] = "";
    int found = 0;
    for (size_t i = 0; !rc && !found && i < all.n; i++) {
        int state;
        char msg[RILL__ERRMSG_MAX];
        snprintf(out, cap, "%s/chk-%" PRId64, root, all.v[i]);
        if ((rc = rill__ckpt_dir_examine(out, &state, NULL, msg))) {
            rill__fmt(err, "%s", msg);
        } else if (state == RILL__CHK_COMPLETE) {
            found = 1;
        } else if (state == RILL__CHK_INCOMPLETE) {
            rill__log(RILL_LOG_WARN, "checkpoint '%s' is incomplete (%s): passed over", out,
                      msg);
            if (!why[0])
                rill__fmt(why, "%s", msg);
        }
    }
    rill__free(all.v);
    if (rc || found)
        return rc;
    out[0] = '\0';
    if (why[0]) {
        rill__fmt(err, "'%s' holds no complete checkpoint: %s", root, why);
        return RILL_ECORRUPT;
    }
    rill__fmt(err, "'%s' holds no complete checkpoint", root);
    return RILL_ENOTFOUND;
}

int64_t rill__ckpt_dir_largest_id(const char *root)
{
    ids all;
    char err[RILL__ERRMSG_MAX];
    int64_t id = list_ids(root, &all, err) == RILL_OK && all.n ? all.v[0] : 0;
    rill__free(all.v);
    return id;
}

void rill__ckpt_dir_remove(const char *path)
{
    char parent[4096], trash[4200];
    const char *slash = strrchr(path, '/');
    int plen = !slash ? 1 : slash == path ? 1 : (int)(slash - path);
    snprintf(parent, sizeof parent, "%.*s", plen, slash ? path : ".");
    int renamed = 0;
    if ((size_t)snprintf(trash, sizeof trash, "%s/" TRASH_PREFIX "%s", parent,
                         slash ? slash + 1 : path) < sizeof trash) {
        renamed = rename(path, trash) == 0;
        if (!renamed && (errno == EEXIST || errno == ENOTEMPTY)) {
            rill__rmtree(trash); /* left by an earlier removal */
            renamed = rename(path, trash) == 0;
        }
        if (!renamed && errno == ENOENT)
            return;
    }
    if (renamed) {
        (void)rill__fsync_dir(parent);
        rill__rmtree(trash);
        return;
    }
    /* It cannot be renamed: take its _metadata away first. */
    char m[4200];
    if (join(m, sizeof m, path, "_metadata")) {
        (void)unlink(m);
        (void)rill__fsync_dir(path);
    }
    rill__rmtree(path);
}

/* Temporary files (*.tmp) directly in dir. */
static void remove_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        char p[4200];
        if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp") && join(p, sizeof p, dir, e->d_name))
            (void)unlink(p);
    }
    closedir(d);
}

void rill__ckpt_dir_clean(const char *root)
{
    DIR *d = opendir(root);
    if (!d)
        return;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char p[4200], msg[RILL__ERRMSG_MAX];
        int64_t id;
        struct stat sb;
        int chk = rill__ckpt_dir_id(e->d_name, &id);
        if (!chk && !prefixed_id(e->d_name, TRASH_PREFIX "chk-", &id) &&
            !prefixed_id(e->d_name, ".final-", &id))
            continue;
        if (!join(p, sizeof p, root, e->d_name) || lstat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
            continue;
        int state = RILL__CHK_PARTIAL;
        if (chk && rill__ckpt_dir_examine(p, &state, NULL, msg) != RILL_OK)
            continue; /* its _metadata cannot be read: left to the user */
        if (state == RILL__CHK_COMPLETE) {
            remove_tmp_files(p);
            continue;
        }
        if (state == RILL__CHK_INCOMPLETE)
            rill__log(RILL_LOG_WARN, "removing incomplete checkpoint '%s': %s", p, msg);
        if (chk)
            rill__ckpt_dir_remove(p);
        else
            rill__rmtree(p);
        removed++;
    }
    closedir(d);
    if (removed)
        rill__log(RILL_LOG_INFO, "removed %d %s that a stopped job left in '%s'", removed,
                  removed == 1 ? "partial checkpoint or working directory"
                               : "partial checkpoints or working directories",
                  root);
}
