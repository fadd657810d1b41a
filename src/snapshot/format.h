/* format.h - the snapshot file format: writing, reading and verifying
 * snapshot files and a checkpoint's _metadata file.
 *
 * The byte layout is documented in man/man5/rill-snapshot.5 (keep the two
 * in step). In short, all integers little-endian and fixed width:
 *
 *   header   magic "RILLSNP\0" | version u32 (1) | flags u32 | xxh3 u64
 *   sections kind u32 | reserved u32 | kg_first u16 | kg_last u16 |
 *            uid_len u16 | state_len u16 | payload_len u64 | uid | state |
 *            payload | checksum u64 (xxh3-64 of payload, then header)
 *   table    per section: offset u64 | size u64 | header xxh3 u64 |
 *            checksum u64
 *   trailer  table offset u64 | section count u64 |
 *            digest u64 (xxh3-64 of header, table, first 16 trailer bytes) |
 *            magic "RILLEND\0"
 *
 * The digest in the trailer covers, through the table, every byte of the
 * file: it identifies the file's content (the _metadata file lists it).
 *
 * Writing is streamed (a section's payload is appended in pieces and never
 * held whole in memory) into "<path>.tmp"; commit writes the table and the
 * trailer, fsyncs the file, renames it to path and fsyncs the directory,
 * so path either does not exist or holds a complete file. Two writers of
 * the same path at once are not supported.
 *
 * Reading validates the header, the trailer and the whole section table
 * when the file is opened (a truncated file fails there), and each
 * section's header when the section is reached. A section's payload is
 * checked when its last byte has been read: the read that consumes it
 * returns RILL_ECORRUPT instead of RILL_OK on a mismatch, so a caller
 * never sees the end of a corrupt section as a success. Callers restoring
 * state must still stage what they read and apply it only once every
 * section they use has been read to its end (or call rill__snap_verify on
 * the file first): bytes handed out before the end of a section are not
 * yet verified. Sections skipped with rill__snap_reader_next are not
 * verified at all.
 *
 * Hostile input never crashes or loops: every length is checked against
 * the file size before it is used, allocations are bounded by the file's
 * size, and every failure is RILL_ECORRUPT (bad content), RILL_ENOTFOUND
 * (no such file), RILL_EIO (an I/O error) or RILL_ENOMEM, with a message
 * that starts with the file's path.
 *
 * Handles are not thread-safe: one thread uses a handle at a time.
 */
#ifndef RILL_SNAPSHOT_FORMAT_H
#define RILL_SNAPSHOT_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define RILL__SNAP_VERSION 1u

/* Header flags. */
#define RILL__SNAP_FLAG_META 1u /* a checkpoint _metadata file */

/* Section kinds of a snapshot data file. */
enum {
    RILL__SNAP_INFO = 1,      /* facts about the snapshotted subtask */
    RILL__SNAP_KEYED = 2,     /* keyed state of a key-group range (entries) */
    RILL__SNAP_TIMERS = 3,    /* timers of a key-group range (entries) */
    RILL__SNAP_OPLIST = 4,    /* operator list state */
    RILL__SNAP_BROADCAST = 5, /* broadcast state (entries) */
    RILL__SNAP_SOURCE = 6,    /* a source's position */
    /* Section kinds of a _metadata file (see rill__snap_meta_*). */
    RILL__SNAP_M_CHECKPOINT = 16,
    RILL__SNAP_M_FILE = 17,
    RILL__SNAP_M_JOB = 18
};

/* kg_first = kg_last = RILL__SNAP_NO_KG: a section not tied to key groups.
 * Otherwise kg_first <= kg_last <= RILL__SNAP_KG_MAX. */
#define RILL__SNAP_NO_KG 0xFFFFu
#define RILL__SNAP_KG_MAX 32767u
/* Longest operator uid and state name (bytes, without the NUL). */
#define RILL__SNAP_NAME_MAX 65535u

/* ---- writer ---------------------------------------------------------- */

typedef struct rill__snap_writer rill__snap_writer;

/* Size and digest of a committed file (the trailer's digest). */
typedef struct rill__snap_fileinfo {
    uint64_t size;
    uint64_t digest;
} rill__snap_fileinfo;

/* Create "<path>.tmp" (truncated if it exists) and write the header.
 * On failure *w is NULL, err (RILL__ERRMSG_MAX bytes, may be NULL) holds
 * a message naming the file: RILL_EINVAL (NULL or empty path), RILL_EIO,
 * RILL_ENOMEM. */
int rill__snap_writer_open(rill__snap_writer **w, const char *path, char *err);
/* Start a section. uid and state are NUL-terminated (copied), at most
 * RILL__SNAP_NAME_MAX bytes; kind a data-file kind; kg_first..kg_last a
 * key-group range or both RILL__SNAP_NO_KG. RILL_EINVAL for bad
 * arguments or a section already open. */
int rill__snap_writer_section_begin(rill__snap_writer *w, uint32_t kind, const char *uid,
                                    const char *state, uint16_t kg_first, uint16_t kg_last);
/* Append len bytes (copied) to the open section's payload. Writes are
 * buffered. RILL_EINVAL outside a section. */
int rill__snap_writer_append(rill__snap_writer *w, const void *bytes, size_t len);
/* Append one entry: key length u32, key, value length u32, value.
 * RILL_EINVAL for a length above UINT32_MAX or outside a section. */
int rill__snap_writer_kv(rill__snap_writer *w, const void *key, size_t klen, const void *val,
                         size_t vlen);
/* Close the open section (its header and checksum are written). */
int rill__snap_writer_section_end(rill__snap_writer *w);
/* Finish the file: table, trailer, fsync, rename to path, fsync of the
 * directory. The writer is freed whatever the result; on failure the
 * temporary file is removed, path is left as it was, and err (may be NULL)
 * holds the message (RILL_EIO, RILL_ENOMEM, or RILL_EINVAL for a section
 * still open). Exception: when only the final fsync of the directory
 * fails, the file is already at path and RILL_EIO says so. info (may be
 * NULL) receives the size and digest. */
int rill__snap_writer_commit(rill__snap_writer *w, rill__snap_fileinfo *info, char *err);
/* Drop the file being written: the temporary file is removed and the
 * writer freed. Accepts NULL. */
void rill__snap_writer_abort(rill__snap_writer *w);
/* The message of the last failure (one line naming the file). A call
 * that failed with RILL_EINVAL changed nothing; once a call failed with
 * RILL_EIO or RILL_ENOMEM, every later call returns that error (commit
 * then removes the temporary file). */
const char *rill__snap_writer_errmsg(const rill__snap_writer *w);

/* ---- reader ---------------------------------------------------------- */

typedef struct rill__snap_reader rill__snap_reader;

/* One section, as rill__snap_reader_next describes it. uid and state are
 * NUL-terminated and borrowed, valid until the next call of
 * rill__snap_reader_next or rill__snap_reader_close. */
typedef struct rill__snap_section {
    uint64_t index; /* 0 for the first section of the file */
    uint32_t kind;
    uint16_t kg_first, kg_last;
    const char *uid;
    size_t uid_len;
    const char *state;
    size_t state_len;
    uint64_t payload_len;
} rill__snap_section;

/* Open a snapshot data file and check its header, trailer and section
 * table. On failure *r is NULL and err (may be NULL) holds a message that
 * names the file: RILL_ENOTFOUND (no such file), RILL_ECORRUPT (foreign,
 * truncated or corrupt file, or a _metadata file), RILL_EIO, RILL_ENOMEM. */
int rill__snap_reader_open(rill__snap_reader **r, const char *path, char *err);
/* Move to the next section: 1 with *info filled, 0 after the last section,
 * or a negative error. The unread rest of the current section is skipped
 * unverified. A section with an empty payload is verified here. */
int rill__snap_reader_next(rill__snap_reader *r, rill__snap_section *info);
/* Read up to cap bytes of the current section's payload into buf; *got is
 * the count (0 at the end of the payload or with no current section).
 * When the read consumes the payload's last byte, the section's checksum
 * is verified and a mismatch returns RILL_ECORRUPT. */
int rill__snap_reader_read(rill__snap_reader *r, void *buf, size_t cap, size_t *got);
/* The next entry of the current section's payload (written with
 * rill__snap_writer_kv): 1 with the entry, 0 at the end of the payload, or
 * a negative error (RILL_ECORRUPT for an entry that does not fit in the
 * payload or a checksum mismatch; the last entry is returned only once the
 * section verified). key and val are borrowed, valid until the next call
 * on r. */
int rill__snap_reader_kv_next(rill__snap_reader *r, const void **key, size_t *klen,
                              const void **val, size_t *vlen);
/* Number of sections, size and digest of the open file. */
uint64_t rill__snap_reader_count(const rill__snap_reader *r);
rill__snap_fileinfo rill__snap_reader_fileinfo(const rill__snap_reader *r);
/* The message of the last failure; every later call returns the error. */
const char *rill__snap_reader_errmsg(const rill__snap_reader *r);
/* Accepts NULL. */
void rill__snap_reader_close(rill__snap_reader *r);

/* Check every byte of a snapshot data file or _metadata file without
 * returning its data. RILL_OK, or the errors of rill__snap_reader_open
 * with the message in err (may be NULL). info (may be NULL) receives the
 * size and digest. */
int rill__snap_verify(const char *path, rill__snap_fileinfo *info, char *err);

/* ---- checkpoint metadata ----------------------------------------------- */

/* One file of a checkpoint: its name relative to the checkpoint directory
 * (components separated by '/', none empty, "." or ".."; not absolute; at
 * most RILL__SNAP_META_NAME_MAX bytes), size and digest. */
typedef struct rill__snap_meta_file {
    char *name;
    uint64_t size;
    uint64_t digest;
} rill__snap_meta_file;

#define RILL__SNAP_META_NAME_MAX 4096u
/* Largest job description a _metadata file may hold. */
#define RILL__SNAP_META_JOB_MAX ((size_t)64 << 20)

typedef struct rill__snap_meta {
    uint64_t checkpoint_id;
    int64_t timestamp_ms; /* wall clock, ms since the epoch */
    size_t n_files;
    rill__snap_meta_file *files;
    void *job; /* opaque description of the job (parallelism...) */
    size_t job_len;
} rill__snap_meta;

/* Write m to path atomically (temporary file, fsync, rename, fsync of the
 * directory). RILL_EINVAL for a bad file name or an oversized job
 * description; RILL_EIO, RILL_ENOMEM; err (may be NULL) has the message. */
int rill__snap_meta_write(const char *path, const rill__snap_meta *m, char *err);
/* Read and verify a _metadata file; *out is allocated (free it with
 * rill__snap_meta_free). Errors as rill__snap_reader_open; a snapshot data
 * file given here is RILL_ECORRUPT. */
int rill__snap_meta_read(const char *path, rill__snap_meta **out, char *err);
/* Check that every file m lists exists under dir with its size and digest
 * (header, table and trailer are checked, not every payload: use
 * rill__snap_verify for that). RILL_ECORRUPT naming the first file that
 * is missing or differs; RILL_EIO, RILL_ENOMEM. */
int rill__snap_meta_check_files(const rill__snap_meta *m, const char *dir, char *err);
/* Accepts NULL. */
void rill__snap_meta_free(rill__snap_meta *m);

#endif
