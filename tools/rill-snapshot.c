/* rill-snapshot - list, verify and dump rill checkpoints and snapshot files.
 *
 *   rill-snapshot list DIR
 *   rill-snapshot verify PATH
 *   rill-snapshot dump [--keys] [--max-entries N] PATH
 *
 * Exit status: 0 success, 1 a missing, unreadable or corrupt snapshot, 2 a
 * usage error. The file format is man/man5/rill-snapshot.5; what the
 * sections of a data file hold is src/state/snapshot.h. Output formats are
 * documented in man/man1/rill-snapshot.1 (keep the two in step). This file
 * has the helpers, list, verify and main; rill-snapshot-dump.c has dump.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rill-snapshot.h"
#include "rill.h"
#include "runtime/ckpt_dir.h"
#include "util/error.h"

static const char usage_text[] = "usage: " TOOL_PROG " list DIR\n"
                                 "       " TOOL_PROG " verify PATH\n"
                                 "       " TOOL_PROG " dump [--keys] [--max-entries N] PATH\n"
                                 "       " TOOL_PROG " --help | --version\n";

/* ---- small helpers ------------------------------------------------------ */

int tool_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs(TOOL_PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

static int usage_error(const char *what)
{
    fprintf(stderr, TOOL_PROG ": %s\n%s", what, usage_text);
    return TOOL_EXIT_USAGE;
}

void *tool_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        tool_fail(TOOL_EXIT_CORRUPT, "out of memory");
        exit(TOOL_EXIT_CORRUPT);
    }
    return p;
}

/* Grow *p (an array of *cap elements of size bytes) to hold need. */
void tool_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 8;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * size);
    if (!q) {
        tool_fail(TOOL_EXIT_CORRUPT, "out of memory");
        exit(TOOL_EXIT_CORRUPT);
    }
    *p = q;
    *cap = n;
}

char *tool_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = tool_calloc(n, 1);
    memcpy(c, s, n);
    return c;
}

/* "dir/name" in a new string. */
char *tool_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = tool_calloc(a + b + 2, 1);
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* A copy of path without trailing slashes (but "/" stays). */
char *tool_trimmed(const char *path)
{
    char *p = tool_strdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    return p;
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Milliseconds since the epoch as "YYYY-MM-DDThh:mm:ss.mmmZ" (UTC). */
void tool_iso_time(char *out, size_t cap, int64_t ms)
{
    int64_t s = ms / 1000, r = ms % 1000;
    if (r < 0) {
        r += 1000;
        s -= 1;
    }
    time_t t = (time_t)s;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        snprintf(out, cap, "@%" PRId64 "ms", ms);
        return;
    }
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)r);
}

/* A name from a file between single quotes, bytes outside printable ASCII
 * (and the quote and backslash) as \xNN. */
void tool_put_name(const char *s, size_t n)
{
    putchar('\'');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\')
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    putchar('\'');
}

const char *tool_plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* 1 when path starts with a _metadata file's header (magic, version 1,
 * the metadata flag); 0 otherwise (the readers then say what is wrong). */
int tool_is_metadata(const char *path)
{
    unsigned char h[16];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat sb;
    ssize_t got = fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) ? read(fd, h, sizeof h) : -1;
    close(fd);
    return got == (ssize_t)sizeof h && memcmp(h, "RILLSNP", 8) == 0 && h[8] == 1 && !h[9] &&
           !h[10] && !h[11] && (h[12] & RILL__SNAP_FLAG_META);
}

/* The kinds whose payload the format defines as a sequence of entries. */
static int entry_kind(uint32_t kind)
{
    return kind == RILL__SNAP_KEYED || kind == RILL__SNAP_TIMERS || kind == RILL__SNAP_BROADCAST;
}

/* Read the rest of the current section's payload (its checksum is then
 * verified). */
int tool_drain(rill__snap_reader *r)
{
    unsigned char buf[1 << 14];
    size_t got;
    int rc;
    do
        rc = rill__snap_reader_read(r, buf, sizeof buf, &got);
    while (rc == RILL_OK && got > 0);
    return rc;
}

/* The message of a failed read of r: the reader's own (it names the
 * file), else a generic one. */
void tool_reader_error(const rill__snap_reader *r, const char *path, int rc, char *err)
{
    const char *m = rill__snap_reader_errmsg(r);
    if (m[0])
        rill__fmt(err, "%s", m);
    else
        rill__fmt(err, "snapshot '%s': %s", path, rill_strerror(rc));
}

/* ---- verify --------------------------------------------------------------- */

/* Check every byte of data file path: the file's size and digest against
 * want (may be NULL), every section's checksum, the layout of entries
 * where the format defines entries.
 * *sections gets the section count. Message in err. */
static int verify_data(const char *path, const rill__snap_meta_file *want, uint64_t *sections,
                       char *err)
{
    rill__snap_reader *r;
    err[0] = '\0';
    int rc = rill__snap_reader_open(&r, path, err);
    if (rc == RILL_ENOTFOUND && want)
        rill__fmt(err, "snapshot '%s': listed in the checkpoint metadata but missing", path);
    if (rc)
        return rc;
    rill__snap_fileinfo fi = rill__snap_reader_fileinfo(r);
    if (want && fi.size != want->size) {
        rc = RILL_ECORRUPT;
        rill__fmt(err, "snapshot '%s': %" PRIu64 " bytes, the checkpoint metadata says %" PRIu64,
                  path, fi.size, want->size);
    } else if (want && fi.digest != want->digest) {
        rc = RILL_ECORRUPT;
        rill__fmt(err,
                  "snapshot '%s': digest %016" PRIx64 ", the checkpoint metadata says %016" PRIx64,
                  path, fi.digest, want->digest);
    }
    rill__snap_section s;
    while (!rc && (rc = rill__snap_reader_next(r, &s)) == 1) {
        if (entry_kind(s.kind)) {
            const void *k, *v;
            size_t kl, vl;
            while ((rc = rill__snap_reader_kv_next(r, &k, &kl, &v, &vl)) == 1)
                ;
        } else {
            rc = tool_drain(r);
        }
    }
    if (rc < 0 && !err[0])
        tool_reader_error(r, path, rc, err);
    *sections = rill__snap_reader_count(r);
    rill__snap_reader_close(r);
    return rc < 0 ? rc : RILL_OK;
}

static uint64_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static int cmd_verify(const char *arg)
{
    char err[RILL__ERRMSG_MAX];
    struct stat sb;
    int rc;
    if (stat(arg, &sb) != 0)
        return tool_fail(TOOL_EXIT_CORRUPT, "'%s': %s", arg, strerror(errno));
    char *path = tool_trimmed(arg);
    if (!S_ISDIR(sb.st_mode)) {
        if (tool_is_metadata(path)) {
            rill__snap_meta *m;
            if ((rc = rill__snap_meta_read(path, &m, err))) {
                free(path);
                return tool_fail(TOOL_EXIT_CORRUPT, "%s", err);
            }
            printf("%s: OK (metadata of checkpoint %" PRIu64 ", %zu %s listed)\n", path,
                   m->checkpoint_id, m->n_files, tool_plural(m->n_files, "file", "files"));
            rill__snap_meta_free(m);
        } else {
            uint64_t n = 0;
            if ((rc = verify_data(path, NULL, &n, err))) {
                free(path);
                return tool_fail(TOOL_EXIT_CORRUPT, "%s", err);
            }
            printf("%s: OK (snapshot file, %" PRIu64 " %s, %" PRIu64 " bytes)\n", path, n,
                   tool_plural(n, "section", "sections"), file_size(path));
        }
        free(path);
        return 0;
    }
    char *mpath = tool_join(path, "_metadata");
    rill__snap_meta *m = NULL;
    int code = 0;
    if (stat(mpath, &sb) != 0) {
        code =
            tool_fail(TOOL_EXIT_CORRUPT, "'%s' has no _metadata: not a complete checkpoint", path);
    } else if ((rc = rill__snap_meta_read(mpath, &m, err))) {
        code = tool_fail(TOOL_EXIT_CORRUPT, "%s", err);
    } else {
        uint64_t bytes = (uint64_t)sb.st_size;
        for (size_t i = 0; i < m->n_files && !code; i++) {
            char *f = tool_join(path, m->files[i].name);
            uint64_t n;
            if ((rc = verify_data(f, &m->files[i], &n, err)))
                code = tool_fail(TOOL_EXIT_CORRUPT, "%s", err);
            bytes += m->files[i].size;
            free(f);
        }
        if (!code)
            printf("%s: OK (checkpoint %" PRIu64 ", %zu %s, %" PRIu64 " bytes)\n", path,
                   m->checkpoint_id, m->n_files, tool_plural(m->n_files, "file", "files"), bytes);
    }
    rill__snap_meta_free(m);
    free(mpath);
    free(path);
    return code;
}

/* ---- list ----------------------------------------------------------------- */

typedef struct chk {
    int64_t id;
    char *name; /* chk-<id> */
} chk;

static int chk_cmp(const void *a, const void *b)
{
    const chk *x = a, *y = b;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Regular files directly in dir other than _metadata (*files), and the
 * size of every regular file in it (*bytes). */
static void on_disk(const char *dir, uint64_t *files, uint64_t *bytes)
{
    *files = *bytes = 0;
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *p = tool_join(dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
            *bytes += (uint64_t)sb.st_size;
            if (strcmp(e->d_name, "_metadata") != 0)
                (*files)++;
        }
        free(p);
    }
    closedir(d);
}

static void list_one(const char *root, const chk *c)
{
    char *dir = tool_join(root, c->name), *mpath = tool_join(dir, "_metadata");
    char err[RILL__ERRMSG_MAX], when[64] = "-";
    const char *status;
    uint64_t files, bytes;
    struct stat sb;
    rill__snap_meta *m = NULL;
    int state;
    /* Complete only with every file _metadata lists, of its size. */
    if (rill__ckpt_dir_examine(dir, &state, &m, err) != RILL_OK) {
        status = "corrupt";
        on_disk(dir, &files, &bytes);
    } else if (state != RILL__CHK_COMPLETE) {
        status = "incomplete";
        on_disk(dir, &files, &bytes);
    } else {
        status = "complete";
        tool_iso_time(when, sizeof when, m->timestamp_ms);
        files = m->n_files;
        bytes = stat(mpath, &sb) == 0 ? (uint64_t)sb.st_size : 0;
        for (size_t i = 0; i < m->n_files; i++)
            bytes += m->files[i].size;
    }
    printf("%-8" PRId64 "  %-10s  %-24s  %5" PRIu64 "  %12" PRIu64 "\n", c->id, status, when, files,
           bytes);
    rill__snap_meta_free(m);
    free(mpath);
    free(dir);
}

static int cmd_list(const char *arg)
{
    char *root = tool_trimmed(arg);
    DIR *d = opendir(root);
    if (!d) {
        int code =
            tool_fail(TOOL_EXIT_CORRUPT, "cannot open directory '%s': %s", root, strerror(errno));
        free(root);
        return code;
    }
    chk *v = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t id;
        if (!rill__ckpt_dir_id(e->d_name, &id))
            continue;
        char *p = tool_join(root, e->d_name);
        int dir = is_dir(p);
        free(p);
        if (!dir)
            continue;
        tool_grow((void **)&v, &cap, n + 1, sizeof *v);
        v[n].id = id;
        v[n].name = tool_strdup(e->d_name);
        n++;
    }
    closedir(d);
    if (n)
        qsort(v, n, sizeof *v, chk_cmp);
    printf("%-8s  %-10s  %-24s  %5s  %12s\n", "ID", "STATUS", "TIME", "FILES", "BYTES");
    for (size_t i = 0; i < n; i++) {
        list_one(root, &v[i]);
        free(v[i].name);
    }
    free(v);
    if (n == 0) {
        char *m = tool_join(root, "_metadata");
        struct stat sb;
        if (stat(m, &sb) == 0)
            fprintf(stderr,
                    TOOL_PROG ": '%s' is itself a checkpoint or savepoint (use verify or dump)\n",
                    root);
        free(m);
    }
    free(root);
    return 0;
}

/* ---- main ----------------------------------------------------------------- */

/* A count for --max-entries: decimal digits, at most 1000000. */
static int parse_count(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > 1000000)
            return 0;
    }
    *out = v;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage_error("no command given");
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0) {
        fputs(usage_text, stdout);
        return fflush(stdout) ? TOOL_EXIT_CORRUPT : 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf(TOOL_PROG " %s (snapshot format %u)\n", rill_version_string(), RILL__SNAP_VERSION);
        return fflush(stdout) ? TOOL_EXIT_CORRUPT : 0;
    }
    int is_list = strcmp(cmd, "list") == 0, is_verify = strcmp(cmd, "verify") == 0,
        is_dump = strcmp(cmd, "dump") == 0;
    if (!is_list && !is_verify && !is_dump) {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown command '%.200s'", cmd);
        return usage_error(msg);
    }
    const char *path = NULL;
    int keys = 0, opts = 1;
    uint64_t max = TOOL_DEFAULT_MAX_ENTRIES;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        char msg[300];
        if (opts && strcmp(a, "--") == 0) {
            opts = 0;
        } else if (opts && is_dump && strcmp(a, "--keys") == 0) {
            keys = 1;
        } else if (opts && is_dump &&
                   (strcmp(a, "--max-entries") == 0 || strncmp(a, "--max-entries=", 14) == 0)) {
            const char *v = a[13] == '=' ? a + 14 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v)
                return usage_error("--max-entries needs a number");
            if (!parse_count(v, &max)) {
                snprintf(msg, sizeof msg,
                         "--max-entries: '%.200s' is not a number from 0 to "
                         "1000000",
                         v);
                return usage_error(msg);
            }
        } else if (opts && a[0] == '-' && a[1]) {
            snprintf(msg, sizeof msg, "%s: unknown option '%.200s'", cmd, a);
            return usage_error(msg);
        } else if (path) {
            snprintf(msg, sizeof msg, "%s takes one path", cmd);
            return usage_error(msg);
        } else {
            path = a;
        }
    }
    if (!path || !*path) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s needs a %s", cmd, is_list ? "directory" : "path");
        return usage_error(msg);
    }
    int code = is_list ? cmd_list(path) : is_verify ? cmd_verify(path) : tool_dump(path, keys, max);
    if (fflush(stdout) != 0 || ferror(stdout))
        return tool_fail(TOOL_EXIT_CORRUPT, "writing the output: %s", strerror(errno));
    return code;
}
