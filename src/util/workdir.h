/* workdir.h - working directories on disk: removing a tree, the
 * temporary directory, and directories held by the process that uses
 * them.
 *
 * A held directory is locked by its owner (flock(2), exclusive, on the
 * directory itself) for as long as the owner uses it. The lock goes with
 * the owner however it ends, kill -9 included, and does not depend on its
 * pid (pids are reused): a directory nobody holds is one that a dead
 * process left, and rill__workdir_sweep removes it. Making a directory
 * locks it before anything is written into it, and sees a sweep that
 * removed it in between (the caller then makes another).
 */
#ifndef RILL_UTIL_WORKDIR_H
#define RILL_UTIL_WORKDIR_H

/* Remove path and everything under it; symbolic links are removed, not
 * followed. What cannot be removed stays (errors are ignored). */
void rill__rmtree(const char *path);

/* mkdir -p path (new directories with mode 0777 less the umask): 0, or
 * the errno value of the first directory that cannot be made (ENOTDIR
 * when path is not a directory). */
int rill__mkdirs(const char *path);

/* fsync directory dir (a rename or unlink in it is then durable): 0 or
 * an errno value. */
int rill__fsync_dir(const char *dir);

/* The directory for temporary files: $TMPDIR when it is an absolute
 * path, else "/tmp". */
const char *rill__tmpdir(void);

/* Make directory path (mode 0700) and hold it; *fd receives the
 * descriptor that holds it (close-on-exec; give it to
 * rill__workdir_remove). With is_template non-zero, path ends in "XXXXXX",
 * which is replaced to make a new name (mkdtemp(3)); otherwise path must
 * not exist. 0, or an errno value: EEXIST when path exists, EAGAIN when
 * a sweep removed the new directory before it was held (make another),
 * or the error of mkdir or open. On a file system without flock(2) the
 * directory is made but not held (a sweep cannot lock it either, and
 * leaves it). */
int rill__workdir_make(char *path, int is_template, int *fd);

/* Remove held directory path with everything under it, then release it
 * (fd from rill__workdir_make). */
void rill__workdir_remove(const char *path, int fd);

/* Remove every directory directly in parent whose name match accepts,
 * that belongs to the effective user and that no process holds (a
 * directory held while it is looked at, or replaced meanwhile, stays).
 * Returns how many were removed; a parent that cannot be read has none. */
int rill__workdir_sweep(const char *parent, int (*match)(const char *name));

#endif
