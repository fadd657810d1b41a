/* rill-snapshot.h - what the files of the rill-snapshot program share:
 * exit codes, helpers (rill-snapshot.c) and the dump command
 * (rill-snapshot-dump.c). The program's output formats are documented in
 * man/man1/rill-snapshot.1 (keep the two in step). */
#ifndef RILL_TOOLS_RILL_SNAPSHOT_H
#define RILL_TOOLS_RILL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "snapshot/format.h"

#define TOOL_PROG "rill-snapshot"
#define TOOL_EXIT_CORRUPT 1 /* missing, unreadable or corrupt input */
#define TOOL_EXIT_USAGE 2
/* Entries shown per state by dump --keys unless --max-entries says. */
#define TOOL_DEFAULT_MAX_ENTRIES 10

#if defined(__GNUC__)
#define TOOL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TOOL_PRINTF(a, b)
#endif

/* Print "rill-snapshot: message" and a newline on stderr (stdout is
 * flushed first); returns code. */
int tool_fail(int code, const char *fmt, ...) TOOL_PRINTF(2, 3);
/* calloc, realloc-based growth of an array of *cap elements of size bytes
 * to hold need, strdup: out of memory ends the program (exit 1). */
void *tool_calloc(size_t n, size_t size);
void tool_grow(void **p, size_t *cap, size_t need, size_t size);
char *tool_strdup(const char *s);
/* "dir/name", newly allocated. */
char *tool_join(const char *dir, const char *name);
/* A copy of path without trailing slashes ("/" stays). */
char *tool_trimmed(const char *path);
/* Milliseconds since the epoch as "YYYY-MM-DDThh:mm:ss.mmmZ" (UTC). */
void tool_iso_time(char *out, size_t cap, int64_t ms);
/* s[0..n) on stdout between single quotes; bytes outside printable ASCII,
 * the quote and the backslash as \xNN. */
void tool_put_name(const char *s, size_t n);
/* one when n is 1, else many. */
const char *tool_plural(uint64_t n, const char *one, const char *many);
/* 1 when path is a regular file that starts like a _metadata file (magic,
 * version 1, the metadata flag). */
int tool_is_metadata(const char *path);
/* Read the rest of r's current section (its checksum is then verified). */
int tool_drain(rill__snap_reader *r);
/* The message of r's failure rc into err (RILL__ERRMSG_MAX bytes). */
void tool_reader_error(const rill__snap_reader *r, const char *path, int rc, char *err);

/* rill-snapshot dump [--keys] [--max-entries max] path: the exit code. */
int tool_dump(const char *path, int keys, uint64_t max);

#endif
