/* format_int.h - the insides of the snapshot format shared by format.c
 * (common helpers, the writer), format_read.c (the reader, verification)
 * and format_meta.c (_metadata files). The layout is in format.h. */
#ifndef RILL_SNAPSHOT_FORMAT_INT_H
#define RILL_SNAPSHOT_FORMAT_INT_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "snapshot/format.h"
#include "util/error.h"

#define RILL__SNAP_HEADER_SIZE 24  /* file header */
#define RILL__SNAP_SECHEAD_SIZE 24 /* fixed part of a section header */
#define RILL__SNAP_SUM_SIZE 8      /* section checksum */
#define RILL__SNAP_ENTRY_SIZE 32   /* one section table entry */
#define RILL__SNAP_TRAILER_SIZE 32 /* file trailer */
#define RILL__SNAP_IOBUF ((size_t)256 << 10)
/* 8 bytes each, with the terminating NUL. */
#define RILL__SNAP_MAGIC "RILLSNP"
#define RILL__SNAP_END_MAGIC "RILLEND"

#if defined(__GNUC__)
#define RILL__SNAP_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RILL__SNAP_PRINTF(a, b)
#endif

/* Little-endian fixed-width fields. */
static inline void rill__snap_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void rill__snap_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline void rill__snap_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint16_t rill__snap_get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t rill__snap_get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t rill__snap_get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static inline int rill__snap_is_data_kind(uint32_t k)
{
    return k >= RILL__SNAP_INFO && k <= RILL__SNAP_SOURCE;
}
static inline int rill__snap_is_meta_kind(uint32_t k)
{
    return k >= RILL__SNAP_M_CHECKPOINT && k <= RILL__SNAP_M_JOB;
}
/* A key-group range, or RILL__SNAP_NO_KG twice. */
static inline int rill__snap_kg_ok(uint16_t first, uint16_t last)
{
    if (first == RILL__SNAP_NO_KG || last == RILL__SNAP_NO_KG)
        return first == last;
    return first <= last && last <= RILL__SNAP_KG_MAX;
}

/* A new XXH3 streaming state, 64-byte aligned inside the allocation *raw
 * (free *raw). NULL when out of memory. */
XXH3_state_t *rill__snap_hash_new(void **raw);
/* "snapshot 'path': message" into err (may be NULL); returns code. */
int rill__snap_failmsg(char *err, const char *path, int code, const char *fmt, ...)
    RILL__SNAP_PRINTF(4, 5);

/* rill__snap_writer_open with header flags (RILL__SNAP_FLAG_META). */
int rill__snap_writer_open_flags(rill__snap_writer **w, const char *path, unsigned flags,
                                 char *err);
/* rill__snap_writer_section_begin without the check of the kind. */
int rill__snap_writer_begin(rill__snap_writer *w, uint32_t kind, const char *uid, const char *state,
                            uint16_t kg_first, uint16_t kg_last);

/* rill__snap_reader_open for a data file (want_meta 0), a _metadata file
 * (1) or either (-1). */
int rill__snap_reader_open_as(rill__snap_reader **r, const char *path, int want_meta, char *err);
/* Fail r with code and "snapshot 'path': message"; returns code. Every
 * later call on r returns code. */
int rill__snap_reader_fail(rill__snap_reader *r, int code, const char *fmt, ...)
    RILL__SNAP_PRINTF(3, 4);
/* "section N (kind K, uid 'u', state 's')" of the current section into out. */
const char *rill__snap_reader_where(const rill__snap_reader *r, char *out, size_t cap);

#endif
