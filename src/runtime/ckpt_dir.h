/* ckpt_dir.h - a directory of checkpoints on disk (<root>/chk-<n>):
 * which of them are complete, removing one so that no crash leaves it
 * looking complete, and removing at the start of a job what a job that
 * was killed left there. Used by the checkpoint coordinator, restore and
 * the rill-snapshot tool. */
#ifndef RILL_RUNTIME_CKPT_DIR_H
#define RILL_RUNTIME_CKPT_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot/format.h"

/* What rill__ckpt_dir_examine finds in a checkpoint directory. */
enum {
    RILL__CHK_COMPLETE,   /* _metadata, and every file it lists, of the size it lists */
    RILL__CHK_PARTIAL,    /* no _metadata: being written, given up, or being removed */
    RILL__CHK_INCOMPLETE  /* _metadata, but a file it lists is missing or of another size */
};

/* name is "chk-<n>" (decimal digits that fit an int64): 1 and *id. */
int rill__ckpt_dir_id(const char *name, int64_t *id);

/* Look at checkpoint directory dir: RILL_OK with *state, and for a
 * partial or incomplete one the reason in err (RILL__ERRMSG_MAX bytes);
 * or the error of reading its _metadata (RILL_ECORRUPT, RILL_EIO,
 * RILL_ENOMEM) with the message in err. Sizes are checked, not content
 * (rill__snap_meta_check_files does). meta (may be NULL) receives the
 * _metadata of a complete one (free it with rill__snap_meta_free). */
int rill__ckpt_dir_examine(const char *dir, int *state, rill__snap_meta **meta, char *err);

/* The path of the complete checkpoint with the largest id in root, into
 * out (cap bytes). Newer partial ones are passed over, newer incomplete
 * ones too with a warning in the log. RILL_OK; RILL_ENOTFOUND when root
 * does not exist or holds no checkpoint with a _metadata; RILL_ECORRUPT
 * when those it holds are all incomplete, or when one newer than the
 * newest complete one has a corrupt _metadata; RILL_EIO when root or a
 * _metadata cannot be read; RILL_ENOMEM. err says why. */
int rill__ckpt_dir_latest(const char *root, char *out, size_t cap, char *err);

/* The largest n of the chk-<n> directories in root (0 when none). */
int64_t rill__ckpt_dir_largest_id(const char *root);

/* Remove checkpoint directory path (a chk-<n> directory) so that a crash
 * at any point leaves either the whole checkpoint or nothing under that
 * name: it is first renamed to the hidden .deleting-chk-<n> (and the
 * rename made durable), then removed. */
void rill__ckpt_dir_remove(const char *path);

/* At the start of a job that checkpoints into root: remove what jobs
 * that were killed left there: partial and incomplete checkpoints,
 * .deleting-* and .final-* directories, and temporary files in complete
 * checkpoints. Complete checkpoints, and those whose _metadata cannot be
 * read, stay. */
void rill__ckpt_dir_clean(const char *root);

#endif
