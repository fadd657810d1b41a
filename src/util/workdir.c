/* workdir.c - working directories on disk: removing a tree, the
 * temporary directory, directories held by the process that uses them
 * (see workdir.h). */
#include "util/workdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (flag == FTW_DP)
        (void)rmdir(path);
    else
        (void)unlink(path);
    return 0; /* go on with the rest */
}

void rill__rmtree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int rill__mkdirs(const char *path)
{
    char p[4096];
    size_t n = strlen(path);
    if (n >= sizeof p)
        return ENAMETOOLONG;
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        p[i] = '\0';
        int rc = mkdir(p, 0777) ? errno : 0;
        p[i] = path[i];
        if (rc && rc != EEXIST)
            return rc;
    }
    struct stat sb;
    if (stat(path, &sb))
        return errno;
    return S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;
}

int rill__fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) ? errno : 0;
    close(fd);
    return rc;
}

const char *rill__tmpdir(void)
{
    const char *t = getenv("TMPDIR");
    return t && t[0] == '/' ? t : "/tmp";
}

/* fd and path are the same directory (path not replaced meanwhile). */
static int same_dir(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

int rill__workdir_make(char *path, int is_template, int *fd)
{
    *fd = -1;
    if (is_template ? !mkdtemp(path) : mkdir(path, 0700) != 0)
        return errno;
    int d = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (d < 0)
        return errno == ENOENT ? EAGAIN : errno;
    /* A sweep may hold it for a moment (it then removes it): wait. */
    while (flock(d, LOCK_EX) != 0 && errno == EINTR)
        ;
    if (!same_dir(d, path)) {
        close(d);
        return EAGAIN;
    }
    *fd = d;
    return 0;
}

void rill__workdir_remove(const char *path, int fd)
{
    rill__rmtree(path);
    if (fd >= 0)
        close(fd);
}

int rill__workdir_sweep(const char *parent, int (*match)(const char *name))
{
    DIR *d = opendir(parent);
    if (!d)
        return 0;
    uid_t me = geteuid();
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!match(e->d_name))
            continue;
        char path[4096];
        struct stat sb;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", parent, e->d_name) >= sizeof path ||
            lstat(path, &sb) != 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != me)
            continue;
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && same_dir(fd, path)) {
            rill__rmtree(path);
            removed++;
        }
        close(fd);
    }
    closedir(d);
    return removed;
}
