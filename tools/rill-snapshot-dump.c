/* rill-snapshot-dump.c - rill-snapshot dump: what a checkpoint or a
 * snapshot file holds, per operator (see rill-snapshot.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rill-snapshot.h"
#include "rill.h"
#include "util/error.h"

/* Bytes of a key or value shown by dump --keys. */
#define SHOW_BYTES 32
/* Largest info payload parsed (larger ones are verified, not parsed). */
#define INFO_MAX ((uint64_t)1 << 16)

static uint64_t rd_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* What an item of the dump describes, in the order they are printed. */
enum { CAT_STATE, CAT_TIMERS, CAT_SOURCE };

/* One state, timer domain or source position of an operator, gathered
 * over every file read. */
typedef struct item {
    char *uid;
    int cat;
    char *name;
    size_t seq;      /* order of first appearance */
    int64_t subtask; /* sources: the subtask, for ordering */
    char kind[32];   /* from the info section, "" when none */
    int64_t ttl;
    uint32_t data;      /* kind of the first data section, 0 when none */
    uint64_t entries;   /* entries (broadcast: of the first copy only) */
    uint64_t copies;    /* broadcast sections seen */
    long kg_lo, kg_hi;  /* -1 when none */
    unsigned char *kgs; /* keyed: bit set of key groups with a section */
    uint64_t n_kgs;
    char *text;   /* sources: the line to print */
    char **lines; /* dump --keys: entries shown */
    size_t n_lines, cap_lines;
    uint64_t more; /* entries not shown */
} item;

typedef struct dump {
    item **items;
    size_t n, cap;
    size_t *slots; /* hash table of items (index + 1, 0 free) */
    size_t n_slots;
    int keys;
    uint64_t max;
} dump;

static uint64_t hash_key(const char *uid, int cat, const char *name)
{
    uint64_t h = 1469598103934665603u;
    for (const char *p = uid; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    h = (h ^ (unsigned)(cat + 1) * 0x100) * 1099511628211u;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return h;
}

static void rehash(dump *d)
{
    free(d->slots);
    d->n_slots = d->n_slots ? d->n_slots * 2 : 64;
    d->slots = tool_calloc(d->n_slots, sizeof *d->slots);
    for (size_t i = 0; i < d->n; i++) {
        item *it = d->items[i];
        if (it->cat == CAT_SOURCE)
            continue;
        size_t j = (size_t)(hash_key(it->uid, it->cat, it->name) & (d->n_slots - 1));
        while (d->slots[j])
            j = (j + 1) & (d->n_slots - 1);
        d->slots[j] = i + 1;
    }
}

static item *new_item(dump *d, const char *uid, int cat, const char *name)
{
    item *it = tool_calloc(1, sizeof *it);
    it->uid = tool_strdup(uid);
    it->cat = cat;
    it->name = tool_strdup(name);
    it->seq = d->n;
    it->kg_lo = it->kg_hi = -1;
    tool_grow((void **)&d->items, &d->cap, d->n + 1, sizeof *d->items);
    d->items[d->n++] = it;
    return it;
}

/* The item (uid, cat, name), created when new. */
static item *find_item(dump *d, const char *uid, int cat, const char *name)
{
    if (2 * (d->n + 1) > d->n_slots)
        rehash(d);
    size_t j = (size_t)(hash_key(uid, cat, name) & (d->n_slots - 1));
    for (; d->slots[j]; j = (j + 1) & (d->n_slots - 1)) {
        item *it = d->items[d->slots[j] - 1];
        if (it->cat == cat && strcmp(it->uid, uid) == 0 && strcmp(it->name, name) == 0)
            return it;
    }
    item *it = new_item(d, uid, cat, name);
    d->slots[j] = d->n;
    return it;
}

static void free_dump(dump *d)
{
    for (size_t i = 0; i < d->n; i++) {
        item *it = d->items[i];
        for (size_t k = 0; k < it->n_lines; k++)
            free(it->lines[k]);
        free(it->lines);
        free(it->uid);
        free(it->name);
        free(it->kgs);
        free(it->text);
        free(it);
    }
    free(d->items);
    free(d->slots);
}

/* Append to a line being built in out (cap bytes, *at used). */
static void add(char *out, size_t cap, size_t *at, const char *fmt, ...) TOOL_PRINTF(4, 5);

static void add(char *out, size_t cap, size_t *at, const char *fmt, ...)
{
    if (*at >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *at, cap - *at, fmt, ap);
    va_end(ap);
    if (n > 0)
        *at = *at + (size_t)n < cap ? *at + (size_t)n : cap;
}

/* n bytes in hex, at most SHOW_BYTES of them (and of the avail bytes at
 * p), then "... (n bytes)". */
static void add_hex(char *out, size_t cap, size_t *at, const unsigned char *p, size_t avail,
                    uint64_t n)
{
    if (n == 0) {
        add(out, cap, at, "(empty)");
        return;
    }
    size_t shown = avail < SHOW_BYTES ? avail : SHOW_BYTES;
    if (shown > n)
        shown = (size_t)n;
    for (size_t i = 0; i < shown; i++)
        add(out, cap, at, "%02x", p[i]);
    if (n > shown)
        add(out, cap, at, "... (%" PRIu64 " bytes)", n);
}

/* One entry of a section of kind kind as a line for dump --keys. */
static char *entry_line(uint32_t kind, const unsigned char *k, size_t kl, const unsigned char *v,
                        size_t vl)
{
    char out[1024];
    size_t at = 0;
    size_t ul = kl >= 2 ? (size_t)rd_be(k, 2) : 0;
    size_t nl = kl >= 4 + ul ? (size_t)rd_be(k + 2 + ul, 2) : 0;
    if (kind == RILL__SNAP_KEYED && kl >= 4 + ul + nl) {
        /* key length u16 BE | key | namespace length u16 BE | namespace | map key */
        add(out, sizeof out, &at, "key ");
        add_hex(out, sizeof out, &at, k + 2, ul, ul);
        if (nl) {
            add(out, sizeof out, &at, ", namespace ");
            add_hex(out, sizeof out, &at, k + 4 + ul, nl, nl);
        }
        if (kl > 4 + ul + nl) {
            add(out, sizeof out, &at, ", map key ");
            add_hex(out, sizeof out, &at, k + 4 + ul + nl, kl - 4 - ul - nl, kl - 4 - ul - nl);
        }
    } else if (kind == RILL__SNAP_TIMERS && kl >= 10) {
        /* key group u16 BE | time + 2^63 u64 BE | key */
        int64_t t = (int64_t)(rd_be(k + 2, 8) ^ (UINT64_C(1) << 63));
        add(out, sizeof out, &at, "time %" PRId64 ", key group %u, key ", t, (unsigned)rd_be(k, 2));
        add_hex(out, sizeof out, &at, k + 10, kl - 10, kl - 10);
    } else if (kind == RILL__SNAP_OPLIST && kl == 12) {
        /* subtask u32 BE | index u64 BE */
        add(out, sizeof out, &at, "subtask %u index %" PRIu64, (unsigned)rd_be(k, 4),
            rd_be(k + 4, 8));
    } else {
        add(out, sizeof out, &at, "key ");
        add_hex(out, sizeof out, &at, k, kl, kl);
    }
    if (kind != RILL__SNAP_TIMERS || vl) {
        add(out, sizeof out, &at, ", value ");
        add_hex(out, sizeof out, &at, v, vl, vl);
    }
    return tool_strdup(out);
}

/* The entries of a keyed, timers, operator list or broadcast section. */
static int dump_entries(dump *d, rill__snap_reader *r, const rill__snap_section *s, item *it)
{
    int counted = s->kind != RILL__SNAP_BROADCAST || it->copies == 0;
    if (s->kind == RILL__SNAP_BROADCAST)
        it->copies++;
    if (!it->data)
        it->data = s->kind;
    if (s->kg_first != RILL__SNAP_NO_KG) {
        if (it->kg_lo < 0 || s->kg_first < it->kg_lo)
            it->kg_lo = s->kg_first;
        if (s->kg_last > it->kg_hi)
            it->kg_hi = s->kg_last;
        if (s->kind == RILL__SNAP_KEYED) {
            if (!it->kgs)
                it->kgs = tool_calloc((RILL__SNAP_KG_MAX + 1) / 8, 1);
            for (unsigned g = s->kg_first; g <= s->kg_last; g++)
                if (!(it->kgs[g / 8] & (1u << (g % 8)))) {
                    it->kgs[g / 8] |= (unsigned char)(1u << (g % 8));
                    it->n_kgs++;
                }
        }
    }
    const void *k, *v;
    size_t kl, vl;
    int rc;
    while ((rc = rill__snap_reader_kv_next(r, &k, &kl, &v, &vl)) == 1) {
        if (!counted)
            continue;
        it->entries++;
        if (!d->keys)
            continue;
        if (it->n_lines < d->max) {
            tool_grow((void **)&it->lines, &it->cap_lines, it->n_lines + 1, sizeof *it->lines);
            it->lines[it->n_lines++] = entry_line(s->kind, k, kl, v, vl);
        } else {
            it->more++;
        }
    }
    return rc;
}

/* Read up to cap bytes of r's current payload into buf (*len of them). */
static int read_some(rill__snap_reader *r, unsigned char *buf, size_t cap, size_t *len)
{
    *len = 0;
    while (*len < cap) {
        size_t got;
        int rc = rill__snap_reader_read(r, buf + *len, cap - *len, &got);
        if (rc || !got)
            return rc;
        *len += got;
    }
    return RILL_OK;
}

static uint32_t rd_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* An info section: entries "kind" and "ttl" (see state/snapshot.h). A
 * payload that is not such entries is verified and otherwise ignored. */
static int dump_info(dump *d, rill__snap_reader *r, const rill__snap_section *s)
{
    item *it = find_item(d, s->uid, CAT_STATE, s->state);
    if (s->payload_len > INFO_MAX)
        return tool_drain(r);
    unsigned char *p = tool_calloc((size_t)s->payload_len + 1, 1);
    size_t len, at = 0;
    int rc = read_some(r, p, (size_t)s->payload_len, &len);
    while (rc == RILL_OK && len - at >= 8) {
        uint32_t kl = rd_le32(p + at);
        if (kl > len - at - 8)
            break;
        const unsigned char *k = p + at + 4;
        uint32_t vl = rd_le32(k + kl);
        if (vl > len - at - 8 - kl)
            break;
        const unsigned char *v = k + kl + 4;
        if (kl == 4 && memcmp(k, "kind", 4) == 0 && vl < sizeof it->kind) {
            for (size_t i = 0; i < vl; i++)
                it->kind[i] = v[i] >= 0x20 && v[i] < 0x7f ? (char)v[i] : '?';
            it->kind[vl] = '\0';
        } else if (kl == 3 && memcmp(k, "ttl", 3) == 0 && vl < 24) {
            char t[24];
            memcpy(t, v, vl);
            t[vl] = '\0';
            it->ttl = strtoll(t, NULL, 10);
        }
        at += 8 + (size_t)kl + vl;
    }
    free(p);
    return rc;
}

/* A source section: subtask u32 | parallelism u32 | position u64, in the
 * byte order of the machine that wrote it (runtime/checkpoint.c). */
static int dump_source(dump *d, rill__snap_reader *r, const rill__snap_section *s)
{
    item *it = new_item(d, s->uid, CAT_SOURCE, s->state);
    unsigned char b[16];
    size_t len;
    int rc = read_some(r, b, sizeof b, &len);
    if (rc || (rc = tool_drain(r)) != RILL_OK)
        return rc;
    char out[256];
    size_t at = 0;
    it->subtask = INT64_MAX;
    if (s->payload_len == 16) {
        uint32_t sub, par;
        uint64_t pos;
        memcpy(&sub, b, 4);
        memcpy(&par, b + 4, 4);
        memcpy(&pos, b + 8, 8);
        it->subtask = sub;
        add(out, sizeof out, &at, "subtask %" PRIu32 " of %" PRIu32 " at %" PRIu64, sub, par, pos);
    } else {
        add(out, sizeof out, &at, "%" PRIu64 " %s: ", s->payload_len,
            tool_plural(s->payload_len, "byte", "bytes"));
        add_hex(out, sizeof out, &at, b, len, s->payload_len);
    }
    it->text = tool_strdup(out);
    return RILL_OK;
}

/* Read every section of data file path into d. */
static int dump_file(dump *d, const char *path, char *err)
{
    rill__snap_reader *r;
    err[0] = '\0';
    int rc = rill__snap_reader_open(&r, path, err);
    if (rc)
        return rc;
    rill__snap_section s;
    while ((rc = rill__snap_reader_next(r, &s)) == 1) {
        switch (s.kind) {
        case RILL__SNAP_INFO:
            rc = dump_info(d, r, &s);
            break;
        case RILL__SNAP_KEYED:
        case RILL__SNAP_OPLIST:
        case RILL__SNAP_BROADCAST:
            rc = dump_entries(d, r, &s, find_item(d, s.uid, CAT_STATE, s.state));
            break;
        case RILL__SNAP_TIMERS:
            rc = dump_entries(d, r, &s, find_item(d, s.uid, CAT_TIMERS, s.state));
            break;
        default:
            rc = dump_source(d, r, &s);
            break;
        }
        if (rc < 0)
            break;
    }
    if (rc < 0)
        tool_reader_error(r, path, rc, err);
    rill__snap_reader_close(r);
    return rc < 0 ? rc : RILL_OK;
}

static int item_cmp(const void *a, const void *b)
{
    const item *x = *(item *const *)a, *y = *(item *const *)b;
    int c = strcmp(x->uid, y->uid);
    if (c)
        return c;
    if (x->cat != y->cat)
        return x->cat < y->cat ? -1 : 1;
    if (x->subtask != y->subtask)
        return x->subtask < y->subtask ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void print_item(const dump *d, const item *it)
{
    if (it->cat == CAT_SOURCE) {
        fputs("  source ", stdout);
        tool_put_name(it->name, strlen(it->name));
        printf(": %s\n", it->text);
        return;
    }
    if (it->cat == CAT_TIMERS) {
        fputs("  timers ", stdout);
        tool_put_name(it->name, strlen(it->name));
        printf(": %" PRIu64 " %s", it->entries, tool_plural(it->entries, "timer", "timers"));
        if (it->kg_lo >= 0)
            printf(", key groups %ld..%ld", it->kg_lo, it->kg_hi);
        putchar('\n');
    } else {
        const char *kind = it->kind[0] ? it->kind : "unknown kind";
        fputs("  state ", stdout);
        tool_put_name(it->name, strlen(it->name));
        printf(": %s", kind);
        if (it->ttl > 0)
            printf(", ttl %" PRId64 " ms", it->ttl);
        printf(", %" PRIu64 " %s", it->entries, tool_plural(it->entries, "entry", "entries"));
        if (it->data == RILL__SNAP_BROADCAST)
            printf(", %" PRIu64 " %s", it->copies, tool_plural(it->copies, "copy", "copies"));
        if (it->n_kgs)
            printf(" in %" PRIu64 " key %s (%ld..%ld)", it->n_kgs,
                   tool_plural(it->n_kgs, "group", "groups"), it->kg_lo, it->kg_hi);
        putchar('\n');
    }
    for (size_t i = 0; d->keys && i < it->n_lines; i++)
        printf("    %s\n", it->lines[i]);
    if (d->keys && it->more)
        printf("    ... %" PRIu64 " more\n", it->more);
}

static void print_operators(dump *d)
{
    if (d->n)
        qsort(d->items, d->n, sizeof *d->items, item_cmp);
    for (size_t i = 0; i < d->n; i++) {
        if (i == 0 || strcmp(d->items[i]->uid, d->items[i - 1]->uid) != 0) {
            fputs("operator ", stdout);
            tool_put_name(d->items[i]->uid, strlen(d->items[i]->uid));
            putchar('\n');
        }
        print_item(d, d->items[i]);
    }
}

/* The checkpoint block: id, time, job description, files. */
static void print_meta(const rill__snap_meta *m)
{
    char when[64];
    tool_iso_time(when, sizeof when, m->timestamp_ms);
    printf("checkpoint %" PRIu64 "\n  time %s\n  job ", m->checkpoint_id, when);
    const unsigned char *j = m->job;
    size_t shown = m->job_len < 256 ? m->job_len : 256;
    for (size_t i = 0; i < shown; i++) {
        if (j[i] >= 0x20 && j[i] < 0x7f && j[i] != '\\')
            putchar(j[i]);
        else
            printf("\\x%02x", j[i]);
    }
    if (m->job_len > shown)
        printf("... (%zu bytes)", m->job_len);
    putchar('\n');
    for (size_t i = 0; i < m->n_files; i++) {
        fputs("  file ", stdout);
        tool_put_name(m->files[i].name, strlen(m->files[i].name));
        printf(": %" PRIu64 " %s, digest %016" PRIx64 "\n", m->files[i].size,
               tool_plural(m->files[i].size, "byte", "bytes"), m->files[i].digest);
    }
}

int tool_dump(const char *arg, int keys, uint64_t max)
{
    char err[RILL__ERRMSG_MAX];
    struct stat sb;
    if (stat(arg, &sb) != 0)
        return tool_fail(TOOL_EXIT_CORRUPT, "'%s': %s", arg, strerror(errno));
    char *path = tool_trimmed(arg);
    dump d;
    memset(&d, 0, sizeof d);
    d.keys = keys;
    d.max = max;
    rill__snap_meta *m = NULL;
    int code = 0, rc;
    if (S_ISDIR(sb.st_mode)) {
        char *mpath = tool_join(path, "_metadata");
        if (stat(mpath, &sb) != 0)
            code = tool_fail(TOOL_EXIT_CORRUPT, "'%s' has no _metadata: not a complete checkpoint",
                             path);
        else if ((rc = rill__snap_meta_read(mpath, &m, err)) ||
                 (rc = rill__snap_meta_check_files(m, path, err)))
            code = tool_fail(TOOL_EXIT_CORRUPT, "%s", err);
        for (size_t i = 0; !code && i < m->n_files; i++) {
            char *f = tool_join(path, m->files[i].name);
            if ((rc = dump_file(&d, f, err)))
                code = tool_fail(TOOL_EXIT_CORRUPT, "%s", err);
            free(f);
        }
        free(mpath);
        if (!code)
            print_meta(m);
    } else if (tool_is_metadata(path)) {
        if ((rc = rill__snap_meta_read(path, &m, err)))
            code = tool_fail(TOOL_EXIT_CORRUPT, "%s", err);
        else
            print_meta(m);
    } else if ((rc = dump_file(&d, path, err))) {
        code = tool_fail(TOOL_EXIT_CORRUPT, "%s", err);
    } else {
        fputs("file ", stdout);
        tool_put_name(path, strlen(path));
        printf(": %" PRIu64 " bytes\n", (uint64_t)sb.st_size);
    }
    if (!code)
        print_operators(&d);
    rill__snap_meta_free(m);
    free_dump(&d);
    free(path);
    return code;
}
