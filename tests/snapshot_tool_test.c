/* snapshot_tool_test.c - the rill-snapshot command-line tool: list, verify
 * and dump on checkpoints written by a running job and on files written
 * with the snapshot format API; corrupt and truncated files; usage errors.
 * (tool_run.h runs the tool.) */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <unistd.h>

#define TEST_NAME "snapshot-tool"
#include "common.h"
#include "tool_run.h"
#include "snapshot/format.h"
#include "util/error.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

TestSuite(tool, .init = mk_tmp, .fini = rm_tmp);
TestSuite(tool_job, .init = mk_tmp, .fini = rm_tmp);

#define assert_str(got, want) cr_assert_str_eq((got), (want), "got:\n%s\nwant:\n%s", (got), (want))

/* ---- building files ------------------------------------------------------- */

/* An expected output being built. */
typedef struct text {
    char b[16384];
    size_t n;
} text;

static void tprintf(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->b + t->n, sizeof t->b - t->n, fmt, ap);
    va_end(ap);
    cr_assert(k >= 0 && (size_t)k < sizeof t->b - t->n);
    t->n += (size_t)k;
}

static void iso(char *out, size_t cap, int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    cr_assert_not_null(gmtime_r(&s, &tm));
    pathf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
          tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static size_t fsize(const char *path)
{
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0, "stat %s", path);
    return (size_t)sb.st_size;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "create %s", path);
    cr_assert_eq(write(fd, b, n), (ssize_t)n);
    close(fd);
}

static void flip_byte(const char *path, size_t off)
{
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    unsigned char c;
    cr_assert_eq(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x5a;
    cr_assert_eq(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

static void mkdir_ok(const char *path) { cr_assert_eq(mkdir(path, 0755), 0, "mkdir %s", path); }

/* A snapshot file being written. */
typedef struct wr {
    rill__snap_writer *w;
} wr;

static void w_open(wr *x, const char *path)
{
    char err[RILL__ERRMSG_MAX];
    cr_assert_eq(rill__snap_writer_open(&x->w, path, err), RILL_OK, "%s", err);
}

static void w_begin(wr *x, uint32_t kind, const char *uid, const char *state, uint16_t kf,
                    uint16_t kl)
{
    cr_assert_eq(rill__snap_writer_section_begin(x->w, kind, uid, state, kf, kl), RILL_OK, "%s",
                 rill__snap_writer_errmsg(x->w));
}

static void w_kv(wr *x, const void *k, size_t kl, const void *v, size_t vl)
{
    cr_assert_eq(rill__snap_writer_kv(x->w, k, kl, v, vl), RILL_OK);
}

static void w_end(wr *x) { cr_assert_eq(rill__snap_writer_section_end(x->w), RILL_OK); }

static rill__snap_fileinfo w_commit(wr *x)
{
    char err[RILL__ERRMSG_MAX];
    rill__snap_fileinfo fi;
    cr_assert_eq(rill__snap_writer_commit(x->w, &fi, err), RILL_OK, "%s", err);
    return fi;
}

/* An info section as the state layer writes it. */
static void w_info(wr *x, const char *uid, const char *state, const char *kind, const char *ttl)
{
    w_begin(x, RILL__SNAP_INFO, uid, state, RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    w_kv(x, "kind", 4, kind, strlen(kind));
    w_kv(x, "ttl", 3, ttl, strlen(ttl));
    w_end(x);
}

/* A keyed entry's key: key length u16 BE | key | ns length u16 BE | ns |
 * map key. */
static size_t keyed_key(unsigned char *b, const char *key, const char *ns, const char *mk)
{
    size_t kl = strlen(key), nl = strlen(ns), ml = strlen(mk);
    b[0] = (unsigned char)(kl >> 8);
    b[1] = (unsigned char)kl;
    memcpy(b + 2, key, kl);
    b[2 + kl] = (unsigned char)(nl >> 8);
    b[3 + kl] = (unsigned char)nl;
    memcpy(b + 4 + kl, ns, nl);
    memcpy(b + 4 + kl + nl, mk, ml);
    return 4 + kl + nl + ml;
}

static void w_keyed(wr *x, const char *key, const char *ns, const char *mk, const void *v,
                    size_t vl)
{
    unsigned char b[256];
    size_t n = keyed_key(b, key, ns, mk);
    w_kv(x, b, n, v, vl);
}

/* A timer: key group u16 BE | time + 2^63 u64 BE | key; value empty. */
static void w_timer(wr *x, unsigned kg, int64_t t, const char *key)
{
    unsigned char b[64];
    uint64_t u = (uint64_t)t ^ (UINT64_C(1) << 63);
    b[0] = (unsigned char)(kg >> 8);
    b[1] = (unsigned char)kg;
    for (int i = 0; i < 8; i++)
        b[2 + i] = (unsigned char)(u >> (56 - 8 * i));
    memcpy(b + 10, key, strlen(key));
    w_kv(x, b, 10 + strlen(key), NULL, 0);
}

/* An operator list element: subtask u32 BE | index u64 BE. */
static void w_element(wr *x, uint32_t sub, uint64_t idx, const char *v)
{
    unsigned char b[12];
    for (int i = 0; i < 4; i++)
        b[i] = (unsigned char)(sub >> (24 - 8 * i));
    for (int i = 0; i < 8; i++)
        b[4 + i] = (unsigned char)(idx >> (56 - 8 * i));
    w_kv(x, b, sizeof b, v, strlen(v));
}

/* A source position as runtime/checkpoint.c writes it. */
static void w_source(wr *x, const char *uid, uint32_t sub, uint32_t par, uint64_t pos)
{
    unsigned char b[16];
    memcpy(b, &sub, 4);
    memcpy(b + 4, &par, 4);
    memcpy(b + 8, &pos, 8);
    w_begin(x, RILL__SNAP_SOURCE, uid, "position", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    cr_assert_eq(rill__snap_writer_append(x->w, b, sizeof b), RILL_OK);
    w_end(x);
}

static void w_rules(wr *x)
{
    w_info(x, "rules", "rules", "broadcast", "0");
    w_begin(x, RILL__SNAP_BROADCAST, "rules", "rules", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    unsigned char big[40]; /* longer than dump --keys shows */
    memset(big, 0xab, sizeof big);
    w_kv(x, "r1", 2, "x", 1);
    w_kv(x, "r2", 2, big, sizeof big);
    w_end(x);
}

/* Subtask 0 of the sample checkpoint: keyed state of two states, event
 * timers, a broadcast copy, an operator list element, a source. */
static rill__snap_fileinfo write_file0(const char *path)
{
    wr x;
    w_open(&x, path);
    w_info(&x, "count", "n", "value", "0");
    w_info(&x, "count", "seen", "map", "60000");
    w_begin(&x, RILL__SNAP_KEYED, "count", "n", 3, 3);
    w_keyed(&x, "a", "", "", "\1\0\0\0\0\0\0\0", 8);
    w_keyed(&x, "b", "", "", "\2\0\0\0\0\0\0\0", 8);
    w_end(&x);
    w_begin(&x, RILL__SNAP_KEYED, "count", "n", 7, 7);
    w_keyed(&x, "c", "", "", "\3\0\0\0\0\0\0\0", 8);
    w_end(&x);
    w_begin(&x, RILL__SNAP_KEYED, "count", "seen", 3, 3);
    w_keyed(&x, "a", "", "k1", "v", 1);
    w_end(&x);
    w_begin(&x, RILL__SNAP_TIMERS, "count", "event", 0, 63);
    w_timer(&x, 3, 100, "a");
    w_timer(&x, 7, 250, "c");
    w_end(&x);
    w_rules(&x);
    w_info(&x, "src", "offsets", "operator list", "0");
    w_begin(&x, RILL__SNAP_OPLIST, "src", "offsets", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    w_element(&x, 0, 0, "p");
    w_end(&x);
    w_source(&x, "src", 0, 2, 42);
    return w_commit(&x);
}

/* Subtask 1: the other key groups, both timer domains. */
static rill__snap_fileinfo write_file1(const char *path)
{
    wr x;
    w_open(&x, path);
    w_info(&x, "count", "n", "value", "0");
    w_info(&x, "count", "seen", "map", "60000");
    w_begin(&x, RILL__SNAP_KEYED, "count", "n", 70, 70);
    w_keyed(&x, "d", "w1", "", "\4\0\0\0\0\0\0\0", 8);
    w_end(&x);
    w_begin(&x, RILL__SNAP_TIMERS, "count", "event", 64, 127);
    w_timer(&x, 70, -5, "d");
    w_end(&x);
    w_begin(&x, RILL__SNAP_TIMERS, "count", "processing", 64, 127);
    w_timer(&x, 70, 1000, "d");
    w_end(&x);
    w_rules(&x);
    w_info(&x, "src", "offsets", "operator list", "0");
    w_begin(&x, RILL__SNAP_OPLIST, "src", "offsets", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    w_element(&x, 1, 0, "q");
    w_element(&x, 1, 1, "rr");
    w_end(&x);
    w_source(&x, "src", 1, 2, 40);
    return w_commit(&x);
}

#define SAMPLE_TIME INT64_C(1700000000123) /* 2023-11-14T22:13:20.123Z */

/* A complete checkpoint in dir (created): 0.snap, 1.snap, _metadata. */
static void write_sample(const char *dir, uint64_t id, int64_t ts, rill__snap_meta_file *files)
{
    char p0[300], p1[300], m[300], err[RILL__ERRMSG_MAX];
    mkdir_ok(dir);
    pathf(p0, sizeof p0, "%s/0.snap", dir);
    pathf(p1, sizeof p1, "%s/1.snap", dir);
    pathf(m, sizeof m, "%s/_metadata", dir);
    rill__snap_fileinfo f0 = write_file0(p0), f1 = write_file1(p1);
    files[0] = (rill__snap_meta_file){"0.snap", f0.size, f0.digest};
    files[1] = (rill__snap_meta_file){"1.snap", f1.size, f1.digest};
    rill__snap_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.checkpoint_id = id;
    meta.timestamp_ms = ts;
    meta.n_files = 2;
    meta.files = files;
    meta.job = "max_parallelism=128";
    meta.job_len = strlen("max_parallelism=128");
    cr_assert_eq(rill__snap_meta_write(m, &meta, err), RILL_OK, "%s", err);
}

/* tmpdir/ck/chk-2: the sample checkpoint. */
static void sample_checkpoint(char *dir, size_t cap, rill__snap_meta_file *files)
{
    char root[300];
    tmp_path(root, sizeof root, "ck");
    mkdir_ok(root);
    pathf(dir, cap, "%s/chk-2", root);
    write_sample(dir, 2, SAMPLE_TIME, files);
}

static const char sample_operators[] =
    "operator 'count'\n"
    "  state 'n': value, 4 entries in 3 key groups (3..70)\n"
    "  state 'seen': map, ttl 60000 ms, 1 entry in 1 key group (3..3)\n"
    "  timers 'event': 3 timers, key groups 0..127\n"
    "  timers 'processing': 1 timer, key groups 64..127\n"
    "operator 'rules'\n"
    "  state 'rules': broadcast, 2 entries, 2 copies\n"
    "operator 'src'\n"
    "  state 'offsets': operator list, 3 entries\n"
    "  source 'position': subtask 0 of 2 at 42\n"
    "  source 'position': subtask 1 of 2 at 40\n";

static void sample_header(text *t, uint64_t id, const rill__snap_meta_file *files)
{
    char when[64];
    iso(when, sizeof when, SAMPLE_TIME);
    tprintf(t, "checkpoint %" PRIu64 "\n  time %s\n  job max_parallelism=128\n", id, when);
    for (int i = 0; i < 2; i++)
        tprintf(t, "  file '%s': %" PRIu64 " bytes, digest %016" PRIx64 "\n", files[i].name,
                files[i].size, files[i].digest);
}

/* ---- usage ---------------------------------------------------------------- */

static void assert_usage_error(result *r, const char *what)
{
    cr_assert_eq(r->status, 2, "status %d, stderr: %s", r->status, r->err);
    assert_str(r->out, "");
    assert_has(r->err, what);
    assert_has(r->err, "usage: rill-snapshot list DIR\n");
}

Test(tool, no_command_is_a_usage_error)
{
    result r = run(NULL);
    assert_usage_error(&r, "rill-snapshot: no command given\n");
    result_free(&r);
}

Test(tool, an_unknown_command_is_a_usage_error)
{
    result r = run("frobnicate", "x", NULL);
    assert_usage_error(&r, "rill-snapshot: unknown command 'frobnicate'\n");
    result_free(&r);
}

Test(tool, a_missing_path_is_a_usage_error)
{
    result r = run("verify", NULL);
    assert_usage_error(&r, "rill-snapshot: verify needs a path\n");
    result_free(&r);
    r = run("list", NULL);
    assert_usage_error(&r, "rill-snapshot: list needs a directory\n");
    result_free(&r);
}

Test(tool, two_paths_are_a_usage_error)
{
    result r = run("dump", "a", "b", NULL);
    assert_usage_error(&r, "rill-snapshot: dump takes one path\n");
    result_free(&r);
}

Test(tool, an_unknown_option_is_a_usage_error)
{
    result r = run("verify", "--keys", "x", NULL);
    assert_usage_error(&r, "rill-snapshot: verify: unknown option '--keys'\n");
    result_free(&r);
}

Test(tool, a_bad_max_entries_is_a_usage_error)
{
    result r = run("dump", "--max-entries", "many", "x", NULL);
    assert_usage_error(&r, "rill-snapshot: --max-entries: 'many' is not a number");
    result_free(&r);
    r = run("dump", "x", "--max-entries", NULL);
    assert_usage_error(&r, "rill-snapshot: --max-entries needs a number\n");
    result_free(&r);
}

Test(tool, help_prints_the_usage_on_stdout)
{
    result r = run("--help", NULL);
    cr_assert_eq(r.status, 0);
    assert_has(r.out, "usage: rill-snapshot list DIR\n");
    assert_has(r.out, "rill-snapshot dump [--keys] [--max-entries N] PATH\n");
    assert_str(r.err, "");
    result_free(&r);
}

Test(tool, version_names_the_library_and_format_versions)
{
    result r = run("--version", NULL);
    cr_assert_eq(r.status, 0);
    char want[128];
    pathf(want, sizeof want, "rill-snapshot %s (snapshot format 1)\n", rill_version_string());
    assert_str(r.out, want);
    result_free(&r);
}

/* ---- list ----------------------------------------------------------------- */

static void list_row(text *t, uint64_t id, const char *status, const char *when, uint64_t files,
                     uint64_t bytes)
{
    tprintf(t, "%-8" PRIu64 "  %-10s  %-24s  %5" PRIu64 "  %12" PRIu64 "\n", id, status, when,
            files, bytes);
}

static const char list_header[] =
    "ID        STATUS      TIME                      FILES         BYTES\n";

Test(tool, list_shows_checkpoints_sorted_by_id_with_their_status)
{
    char root[300], d[400], f[500];
    rill__snap_meta_file files2[2], files10[2];
    tmp_path(root, sizeof root, "ck");
    mkdir_ok(root);
    pathf(d, sizeof d, "%s/chk-2", root);
    write_sample(d, 2, SAMPLE_TIME, files2);
    pathf(d, sizeof d, "%s/chk-10", root);
    write_sample(d, 10, SAMPLE_TIME + 60000, files10);
    /* chk-3: being written (no _metadata). */
    pathf(d, sizeof d, "%s/chk-3", root);
    mkdir_ok(d);
    pathf(f, sizeof f, "%s/1.snap.tmp", d);
    write_bytes(f, "12345", 5);
    /* chk-4: a _metadata that is not one. */
    pathf(d, sizeof d, "%s/chk-4", root);
    mkdir_ok(d);
    pathf(f, sizeof f, "%s/_metadata", d);
    write_bytes(f, "garbage!!!", 10);
    pathf(f, sizeof f, "%s/0.snap", d);
    write_bytes(f, "1234567", 7);
    /* Not checkpoints. */
    pathf(d, sizeof d, "%s/chk-x", root);
    mkdir_ok(d);
    pathf(d, sizeof d, "%s/savepoints", root);
    mkdir_ok(d);
    pathf(f, sizeof f, "%s/chk-5", root);
    write_bytes(f, "x", 1);

    text t = {.n = 0};
    char w2[64], w10[64];
    iso(w2, sizeof w2, SAMPLE_TIME);
    iso(w10, sizeof w10, SAMPLE_TIME + 60000);
    pathf(f, sizeof f, "%s/chk-2/_metadata", root);
    uint64_t b2 = fsize(f) + files2[0].size + files2[1].size;
    pathf(f, sizeof f, "%s/chk-10/_metadata", root);
    uint64_t b10 = fsize(f) + files10[0].size + files10[1].size;
    tprintf(&t, "%s", list_header);
    list_row(&t, 2, "complete", w2, 2, b2);
    list_row(&t, 3, "incomplete", "-", 1, 5);
    list_row(&t, 4, "corrupt", "-", 1, 17);
    list_row(&t, 10, "complete", w10, 2, b10);

    result r = run("list", root, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    assert_str(r.err, "");
    result_free(&r);
}

/* A checkpoint is complete only with every file its _metadata lists, of
 * the size it lists: one partly removed (a crash while an old checkpoint
 * was deleted) or with a file of another size is incomplete. */
Test(tool, list_calls_a_checkpoint_missing_a_listed_file_incomplete)
{
    char root[300], d[400], f[500], m[500];
    rill__snap_meta_file files[2];
    tmp_path(root, sizeof root, "ck");
    mkdir_ok(root);
    /* chk-5: its 1.snap removed; chk-6: its 0.snap one byte short. */
    pathf(d, sizeof d, "%s/chk-5", root);
    write_sample(d, 5, SAMPLE_TIME, files);
    pathf(f, sizeof f, "%s/1.snap", d);
    cr_assert_eq(unlink(f), 0);
    pathf(m, sizeof m, "%s/_metadata", d);
    uint64_t b5 = fsize(m) + files[0].size;
    pathf(d, sizeof d, "%s/chk-6", root);
    write_sample(d, 6, SAMPLE_TIME, files);
    pathf(f, sizeof f, "%s/0.snap", d);
    cr_assert_eq(truncate(f, (off_t)files[0].size - 1), 0);
    pathf(m, sizeof m, "%s/_metadata", d);
    uint64_t b6 = fsize(m) + files[0].size - 1 + files[1].size;

    text t = {.n = 0};
    tprintf(&t, "%s", list_header);
    list_row(&t, 5, "incomplete", "-", 1, b5);
    list_row(&t, 6, "incomplete", "-", 2, b6);
    result r = run("list", root, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    assert_str(r.err, "");
    result_free(&r);
}

Test(tool, list_of_an_empty_directory_prints_the_header_only)
{
    char root[300];
    tmp_path(root, sizeof root, "empty");
    mkdir_ok(root);
    result r = run("list", root, NULL);
    cr_assert_eq(r.status, 0);
    assert_str(r.out, list_header);
    assert_str(r.err, "");
    result_free(&r);
}

Test(tool, list_of_a_checkpoint_itself_says_so)
{
    char dir[300];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    result r = run("list", dir, NULL);
    cr_assert_eq(r.status, 0);
    assert_str(r.out, list_header);
    char want[600];
    pathf(want, sizeof want,
          "rill-snapshot: '%s' is itself a checkpoint or savepoint (use verify or dump)\n", dir);
    assert_str(r.err, want);
    result_free(&r);
}

Test(tool, list_of_a_missing_directory_fails)
{
    char root[300];
    tmp_path(root, sizeof root, "nothing");
    result r = run("list", root, NULL);
    cr_assert_eq(r.status, 1);
    assert_str(r.out, "");
    char want[600];
    pathf(want, sizeof want,
          "rill-snapshot: cannot open directory '%s': No such file or directory\n", root);
    assert_str(r.err, want);
    result_free(&r);
}

/* ---- verify ----------------------------------------------------------------- */

Test(tool, verify_a_checkpoint_directory)
{
    char dir[300], m[400], want[800];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(m, sizeof m, "%s/_metadata", dir);
    uint64_t bytes = fsize(m) + files[0].size + files[1].size;
    pathf(want, sizeof want, "%s: OK (checkpoint 2, 2 files, %" PRIu64 " bytes)\n", dir, bytes);
    result r = run("verify", dir, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, want);
    assert_str(r.err, "");
    result_free(&r);
    /* A trailing slash names the same directory. */
    char slash[400];
    pathf(slash, sizeof slash, "%s/", dir);
    r = run("verify", slash, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, want);
    result_free(&r);
}

Test(tool, verify_a_single_data_file)
{
    char dir[300], f[400], want[800];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f, sizeof f, "%s/1.snap", dir);
    /* 1.snap: 2 info + keyed + 2 timers + info + broadcast + info + oplist + source */
    pathf(want, sizeof want, "%s: OK (snapshot file, 10 sections, %" PRIu64 " bytes)\n", f,
          files[1].size);
    result r = run("verify", f, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, want);
    assert_str(r.err, "");
    result_free(&r);
}

Test(tool, verify_a_metadata_file)
{
    char dir[300], f[400], want[800];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f, sizeof f, "%s/_metadata", dir);
    pathf(want, sizeof want, "%s: OK (metadata of checkpoint 2, 2 files listed)\n", f);
    result r = run("verify", f, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, want);
    result_free(&r);
}

/* stderr is one line "rill-snapshot: snapshot '<path>': ..." holding what. */
static void assert_corrupt(result *r, const char *path, const char *what)
{
    char head[600];
    pathf(head, sizeof head, "rill-snapshot: snapshot '%s': ", path);
    cr_assert_eq(r->status, 1, "status %d, stdout %s, stderr %s", r->status, r->out, r->err);
    assert_str(r->out, "");
    cr_assert_eq(strncmp(r->err, head, strlen(head)), 0, "stderr \"%s\" does not start with \"%s\"",
                 r->err, head);
    assert_has(r->err, what);
    cr_assert_eq(strchr(r->err, '\n'), r->err + strlen(r->err) - 1, "not one line: %s", r->err);
}

Test(tool, verify_finds_a_flipped_payload_byte_and_names_the_file)
{
    char dir[300], f[400];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f, sizeof f, "%s/1.snap", dir);
    /* The first section's payload starts at 24 + 24 + "count" + "n". */
    flip_byte(f, 24 + 24 + 6 + 5); /* inside the key "kind" */
    result r = run("verify", dir, NULL);
    assert_corrupt(&r, f, "section 0 (kind 1, uid 'count', state 'n'): checksum mismatch");
    result_free(&r);
    r = run("verify", f, NULL);
    assert_corrupt(&r, f, "checksum mismatch");
    result_free(&r);
}

Test(tool, verify_finds_a_truncated_file_and_names_it)
{
    char dir[300], f[400];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f, sizeof f, "%s/0.snap", dir);
    cr_assert_eq(truncate(f, (off_t)files[0].size - 40), 0);
    result r = run("verify", dir, NULL);
    assert_corrupt(&r, f, "truncated");
    result_free(&r);
    r = run("verify", f, NULL);
    assert_corrupt(&r, f, "truncated");
    result_free(&r);
}

Test(tool, verify_finds_a_file_cut_at_each_section_boundary)
{
    char dir[300], f[400];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f, sizeof f, "%s/0.snap", dir);
    /* Section ends, from the section table. */
    size_t len = fsize(f);
    unsigned char *b = malloc(len);
    cr_assert_not_null(b);
    int fd = open(f, O_RDONLY);
    cr_assert_eq(read(fd, b, len), (ssize_t)len);
    close(fd);
    uint64_t count = 0, table = 0;
    for (int i = 7; i >= 0; i--) {
        table = table << 8 | b[len - 32 + i];
        count = count << 8 | b[len - 24 + i];
    }
    cr_assert_eq(count, 11);
    for (uint64_t s = 0; s <= count; s++) {
        uint64_t cut = 24;
        for (uint64_t k = 0; k < s; k++) {
            uint64_t sz = 0;
            for (int i = 7; i >= 0; i--)
                sz = sz << 8 | b[table + 32 * k + 8 + i];
            cut += sz;
        }
        write_bytes(f, b, (size_t)cut);
        result r = run("verify", dir, NULL);
        assert_corrupt(&r, f, "");
        result_free(&r);
    }
    free(b);
}

Test(tool, verify_finds_a_corrupt_metadata_file)
{
    char dir[300], m[400];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(m, sizeof m, "%s/_metadata", dir);
    flip_byte(m, 30);
    result r = run("verify", dir, NULL);
    assert_corrupt(&r, m, "");
    result_free(&r);
}

Test(tool, verify_finds_a_missing_file)
{
    char dir[300], f[400];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f, sizeof f, "%s/1.snap", dir);
    cr_assert_eq(unlink(f), 0);
    result r = run("verify", dir, NULL);
    assert_corrupt(&r, f, "listed in the checkpoint metadata but missing");
    result_free(&r);
}

Test(tool, verify_finds_a_file_that_differs_from_the_metadata)
{
    char dir[300], f0[400], f1[400];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f0, sizeof f0, "%s/0.snap", dir);
    pathf(f1, sizeof f1, "%s/1.snap", dir);
    /* A sound snapshot file, but not the one the metadata lists. */
    cr_assert_eq(rename(f1, f0), 0);
    write_file1(f1);
    result r = run("verify", dir, NULL);
    char what[200];
    pathf(what, sizeof what, "%" PRIu64 " bytes, the checkpoint metadata says %" PRIu64,
          files[1].size, files[0].size);
    assert_corrupt(&r, f0, what);
    result_free(&r);
}

Test(tool, verify_of_a_directory_without_metadata_fails)
{
    char d[300];
    tmp_path(d, sizeof d, "chk-9");
    mkdir_ok(d);
    result r = run("verify", d, NULL);
    cr_assert_eq(r.status, 1);
    assert_str(r.out, "");
    char want[600];
    pathf(want, sizeof want, "rill-snapshot: '%s' has no _metadata: not a complete checkpoint\n",
          d);
    assert_str(r.err, want);
    result_free(&r);
}

Test(tool, verify_of_foreign_and_missing_files_fails)
{
    char f[300];
    tmp_path(f, sizeof f, "notes.txt");
    write_bytes(f, "hello, world\n", 13);
    result r = run("verify", f, NULL);
    assert_corrupt(&r, f, "not a rill snapshot");
    result_free(&r);
    tmp_path(f, sizeof f, "empty");
    write_bytes(f, "", 0);
    r = run("dump", f, NULL);
    assert_corrupt(&r, f, "empty file");
    result_free(&r);
    tmp_path(f, sizeof f, "absent");
    r = run("verify", f, NULL);
    cr_assert_eq(r.status, 1);
    char want[600];
    pathf(want, sizeof want, "rill-snapshot: '%s': No such file or directory\n", f);
    assert_str(r.err, want);
    result_free(&r);
}

Test(tool, verify_accepts_payloads_the_format_leaves_open)
{
    /* The format defines entries for keyed, timers and broadcast sections
     * only: an info or operator list payload may hold any bytes. */
    char f[300], want[600];
    tmp_path(f, sizeof f, "open.snap");
    wr x;
    w_open(&x, f);
    w_begin(&x, RILL__SNAP_INFO, "", "", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    cr_assert_eq(rill__snap_writer_append(x.w, "subtask 0 of 2", 14), RILL_OK);
    w_end(&x);
    w_begin(&x, RILL__SNAP_OPLIST, "src", "offsets", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    cr_assert_eq(rill__snap_writer_append(x.w, "xyz", 3), RILL_OK);
    w_end(&x);
    rill__snap_fileinfo fi = w_commit(&x);
    pathf(want, sizeof want, "%s: OK (snapshot file, 2 sections, %" PRIu64 " bytes)\n", f, fi.size);
    result r = run("verify", f, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, want);
    result_free(&r);
    /* dump reads operator list state as rill writes it: entries. */
    r = run("dump", f, NULL);
    assert_corrupt(&r, f, "section 1 (kind 4, uid 'src', state 'offsets')");
    result_free(&r);
}

/* ---- dump ----------------------------------------------------------------- */

Test(tool, dump_a_checkpoint_per_operator)
{
    char dir[300];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    text t = {.n = 0};
    sample_header(&t, 2, files);
    tprintf(&t, "%s", sample_operators);
    result r = run("dump", dir, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    assert_str(r.err, "");
    result_free(&r);
}

Test(tool, dump_a_single_data_file)
{
    char dir[300], f[400];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f, sizeof f, "%s/0.snap", dir);
    text t = {.n = 0};
    tprintf(&t,
            "file '%s': %" PRIu64 " bytes\n"
            "operator 'count'\n"
            "  state 'n': value, 3 entries in 2 key groups (3..7)\n"
            "  state 'seen': map, ttl 60000 ms, 1 entry in 1 key group (3..3)\n"
            "  timers 'event': 2 timers, key groups 0..63\n"
            "operator 'rules'\n"
            "  state 'rules': broadcast, 2 entries, 1 copy\n"
            "operator 'src'\n"
            "  state 'offsets': operator list, 1 entry\n"
            "  source 'position': subtask 0 of 2 at 42\n",
            f, files[0].size);
    result r = run("dump", f, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    result_free(&r);
}

Test(tool, dump_a_metadata_file)
{
    char dir[300], f[400];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f, sizeof f, "%s/_metadata", dir);
    text t = {.n = 0};
    sample_header(&t, 2, files);
    result r = run("dump", f, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    result_free(&r);
}

Test(tool, dump_keys_prints_entries_in_hex)
{
    char dir[300];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    text t = {.n = 0};
    sample_header(&t, 2, files);
    tprintf(&t, "%s",
            "operator 'count'\n"
            "  state 'n': value, 4 entries in 3 key groups (3..70)\n"
            "    key 61, value 0100000000000000\n"
            "    key 62, value 0200000000000000\n"
            "    key 63, value 0300000000000000\n"
            "    key 64, namespace 7731, value 0400000000000000\n"
            "  state 'seen': map, ttl 60000 ms, 1 entry in 1 key group (3..3)\n"
            "    key 61, map key 6b31, value 76\n"
            "  timers 'event': 3 timers, key groups 0..127\n"
            "    time 100, key group 3, key 61\n"
            "    time 250, key group 7, key 63\n"
            "    time -5, key group 70, key 64\n"
            "  timers 'processing': 1 timer, key groups 64..127\n"
            "    time 1000, key group 70, key 64\n"
            "operator 'rules'\n"
            "  state 'rules': broadcast, 2 entries, 2 copies\n"
            "    key 7231, value 78\n"
            "    key 7232, value "
            "abababababababababababababababababababababababababababababababab... (40 bytes)\n"
            "operator 'src'\n"
            "  state 'offsets': operator list, 3 entries\n"
            "    subtask 0 index 0, value 70\n"
            "    subtask 1 index 0, value 71\n"
            "    subtask 1 index 1, value 7272\n"
            "  source 'position': subtask 0 of 2 at 42\n"
            "  source 'position': subtask 1 of 2 at 40\n");
    result r = run("dump", "--keys", dir, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    result_free(&r);
}

Test(tool, dump_keys_is_bounded_by_max_entries)
{
    char dir[300];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    text t = {.n = 0};
    sample_header(&t, 2, files);
    tprintf(&t, "%s",
            "operator 'count'\n"
            "  state 'n': value, 4 entries in 3 key groups (3..70)\n"
            "    key 61, value 0100000000000000\n"
            "    ... 3 more\n"
            "  state 'seen': map, ttl 60000 ms, 1 entry in 1 key group (3..3)\n"
            "    key 61, map key 6b31, value 76\n"
            "  timers 'event': 3 timers, key groups 0..127\n"
            "    time 100, key group 3, key 61\n"
            "    ... 2 more\n"
            "  timers 'processing': 1 timer, key groups 64..127\n"
            "    time 1000, key group 70, key 64\n"
            "operator 'rules'\n"
            "  state 'rules': broadcast, 2 entries, 2 copies\n"
            "    key 7231, value 78\n"
            "    ... 1 more\n"
            "operator 'src'\n"
            "  state 'offsets': operator list, 3 entries\n"
            "    subtask 0 index 0, value 70\n"
            "    ... 2 more\n"
            "  source 'position': subtask 0 of 2 at 42\n"
            "  source 'position': subtask 1 of 2 at 40\n");
    result r = run("dump", "--keys", "--max-entries=1", dir, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    result_free(&r);
}

Test(tool, dump_of_a_corrupt_checkpoint_prints_nothing_and_fails)
{
    char dir[300], f[400];
    rill__snap_meta_file files[2];
    sample_checkpoint(dir, sizeof dir, files);
    pathf(f, sizeof f, "%s/0.snap", dir);
    flip_byte(f, 24 + 24 + 6 + 5); /* inside the key "kind" */
    result r = run("dump", dir, NULL);
    assert_corrupt(&r, f, "checksum mismatch");
    result_free(&r);
    cr_assert_eq(truncate(f, 100), 0);
    r = run("dump", "--keys", dir, NULL);
    assert_corrupt(&r, f, "");
    result_free(&r);
}

Test(tool, dump_shows_hostile_names_escaped)
{
    char f[300];
    tmp_path(f, sizeof f, "odd.snap");
    wr x;
    w_open(&x, f);
    w_begin(&x, RILL__SNAP_KEYED, "op'\x1b[2J", "st\\x", 5, 5);
    w_kv(&x, "z", 1, "", 0); /* not a keyed key: shown raw */
    w_end(&x);
    w_begin(&x, RILL__SNAP_SOURCE, "src", "odd", RILL__SNAP_NO_KG, RILL__SNAP_NO_KG);
    cr_assert_eq(rill__snap_writer_append(x.w, "\1\2\3", 3), RILL_OK);
    w_end(&x);
    rill__snap_fileinfo fi = w_commit(&x);
    text t = {.n = 0};
    tprintf(&t,
            "file '%s': %" PRIu64 " bytes\n"
            "operator 'op\\x27\\x1b[2J'\n"
            "  state 'st\\x5cx': unknown kind, 1 entry in 1 key group (5..5)\n"
            "    key 7a, value (empty)\n"
            "operator 'src'\n"
            "  source 'odd': 3 bytes: 010203\n",
            f, fi.size);
    result r = run("dump", "--keys", f, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    result_free(&r);
}

/* ---- checkpoints of a running job ------------------------------------------ */

#define KEYS 50

typedef struct {
    uint64_t key;
    int64_t one;
} rec;

typedef struct {
    atomic_int stop;
    atomic_int seen; /* records the sink got */
} run_state;

/* Keys 0..KEYS-1 once, then nothing but a slow pace until told to stop. */
static int slow_gen(rill_ctx *ctx, uint64_t i, void *ud)
{
    run_state *s = ud;
    if (i < KEYS) {
        rec r = {i, 1};
        return rill_emit(ctx, &r, sizeof r);
    }
    if (!atomic_load(&s->stop))
        sleep_ms(1);
    return 0;
}

static int count_sink(rill_ctx *ctx, const void *r, size_t len, void *ud)
{
    (void)ctx;
    (void)r;
    (void)len;
    atomic_fetch_add(&((run_state *)ud)->seen, 1);
    return 0;
}

/* Run generator -> key_by -> aggregate (p 2) -> sink with checkpoints
 * every 20 ms into tmpdir/ck until a checkpoint holds every key; returns
 * the id of the last completed checkpoint (the only one kept). */
static int64_t run_job(void)
{
    run_state s;
    atomic_init(&s.stop, 0);
    atomic_init(&s.seen, 0);
    rill_env *env = new_env(2);
    char dir[256], sd[256];
    tmp_path(dir, sizeof dir, "ck");
    tmp_path(sd, sizeof sd, "state");
    cr_assert_eq(rill_env_set_state_dir(env, sd), RILL_OK);
    cr_assert_eq(rill_env_enable_checkpointing(env, 20, dir, RILL_EXACTLY_ONCE), RILL_OK);
    rill_stream *st = rill_generator(env, "gen", KEYS + 100000, slow_gen, &s);
    st = rill_stream_set_parallelism(st, 1);
    st = rill_key_by_bytes(st, 0, 8);
    st = rill_aggregate(st, "count", RILL_AGG_SUM, 8, RILL_FIELD_I64);
    rill_sink(st, "out", count_sink, &s);
    rill_job *job;
    cr_assert_eq(rill_job_start(&job, env, "tool"), RILL_OK, "%s", rill_env_errmsg(env));
    while (atomic_load(&s.seen) < KEYS && rill_job_status(job) == RILL_JOB_RUNNING)
        sleep_ms(2);
    /* A checkpoint triggered from now on holds every key. */
    int64_t c0 = rill_job_last_checkpoint(job);
    while (rill_job_last_checkpoint(job) < c0 + 2 && rill_job_status(job) == RILL_JOB_RUNNING)
        sleep_ms(2);
    cr_assert_eq(rill_job_status(job), RILL_JOB_RUNNING, "%s", rill_job_errmsg(job));
    atomic_store(&s.stop, 1);
    cr_assert_eq(rill_job_wait(job), RILL_OK, "%s", rill_job_errmsg(job));
    int64_t last = rill_job_last_checkpoint(job);
    rill_job_free(job);
    rill_env_free(env);
    cr_assert_geq(last, c0 + 2);
    /* A checkpoint discarded as the job ends can leave its directory
     * behind, with the file of a subtask that was still writing it when
     * the directory was removed: keep only the last complete one, the
     * subject of these tests. */
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    char keep[64], p[600];
    pathf(keep, sizeof keep, "chk-%lld", (long long)last);
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "chk-", 4) == 0 && strcmp(e->d_name, keep) != 0) {
            pathf(p, sizeof p, "%s/%s", dir, e->d_name);
            nftw(p, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        }
    closedir(d);
    return last;
}

static rill__snap_meta *read_meta(const char *dir)
{
    char m[400], err[RILL__ERRMSG_MAX];
    pathf(m, sizeof m, "%s/_metadata", dir);
    rill__snap_meta *meta;
    cr_assert_eq(rill__snap_meta_read(m, &meta, err), RILL_OK, "%s", err);
    return meta;
}

/* The generator's position, as its file holds it. */
static uint64_t gen_position(const char *dir, const rill__snap_meta *m)
{
    uint64_t pos = UINT64_MAX;
    for (size_t i = 0; i < m->n_files; i++) {
        char f[600], err[RILL__ERRMSG_MAX];
        pathf(f, sizeof f, "%s/%s", dir, m->files[i].name);
        rill__snap_reader *r;
        cr_assert_eq(rill__snap_reader_open(&r, f, err), RILL_OK, "%s", err);
        rill__snap_section s;
        while (rill__snap_reader_next(r, &s) == 1) {
            if (s.kind != RILL__SNAP_SOURCE)
                continue;
            unsigned char b[16];
            size_t got;
            cr_assert_eq(rill__snap_reader_read(r, b, sizeof b, &got), RILL_OK);
            cr_assert_eq(got, 16);
            memcpy(&pos, b + 8, 8);
        }
        rill__snap_reader_close(r);
    }
    cr_assert_neq(pos, UINT64_MAX, "no source position");
    return pos;
}

/* The file of the checkpoint that holds keyed state (the largest). */
static const rill__snap_meta_file *largest(const rill__snap_meta *m)
{
    const rill__snap_meta_file *f = &m->files[0];
    for (size_t i = 1; i < m->n_files; i++)
        if (m->files[i].size > f->size)
            f = &m->files[i];
    return f;
}

Test(tool_job, list_verify_and_dump_a_job_checkpoint)
{
    int64_t id = run_job();
    char root[300], dir[400], mp[500];
    tmp_path(root, sizeof root, "ck");
    pathf(dir, sizeof dir, "%s/chk-%lld", root, (long long)id);
    pathf(mp, sizeof mp, "%s/_metadata", dir);
    rill__snap_meta *m = read_meta(dir);
    cr_assert_eq(m->n_files, 3); /* the generator, two aggregate subtasks */
    uint64_t bytes = fsize(mp);
    for (size_t i = 0; i < m->n_files; i++)
        bytes += m->files[i].size;
    char when[64];
    iso(when, sizeof when, m->timestamp_ms);

    /* list: the one checkpoint kept */
    text t = {.n = 0};
    tprintf(&t, "%s", list_header);
    list_row(&t, (uint64_t)id, "complete", when, 3, bytes);
    result r = run("list", root, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    result_free(&r);

    /* verify */
    t.n = 0;
    tprintf(&t, "%s: OK (checkpoint %lld, 3 files, %" PRIu64 " bytes)\n", dir, (long long)id,
            bytes);
    r = run("verify", dir, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    result_free(&r);

    /* dump: every key in the aggregate's state, key groups as hashed */
    unsigned char seen[128] = {0};
    int groups = 0, lo = 128, hi = -1;
    for (uint64_t k = 0; k < KEYS; k++) {
        int g = (int)(XXH3_64bits(&k, sizeof k) % 128);
        groups += !seen[g];
        seen[g] = 1;
        lo = g < lo ? g : lo;
        hi = g > hi ? g : hi;
    }
    t.n = 0;
    tprintf(&t, "checkpoint %lld\n  time %s\n  job max_parallelism=128\n", (long long)id, when);
    for (size_t i = 0; i < m->n_files; i++)
        tprintf(&t, "  file '%s': %" PRIu64 " bytes, digest %016" PRIx64 "\n", m->files[i].name,
                m->files[i].size, m->files[i].digest);
    tprintf(&t,
            "operator 'count'\n"
            "  state 'rolling': value, %d entries in %d key groups (%d..%d)\n"
            "operator 'gen'\n"
            "  source 'position': subtask 0 of 1 at %" PRIu64 "\n",
            KEYS, groups, lo, hi, gen_position(dir, m));
    r = run("dump", dir, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    assert_str(r.out, t.b);
    result_free(&r);
    rill__snap_meta_free(m);
}

Test(tool_job, a_flipped_byte_in_a_job_checkpoint_is_found)
{
    int64_t id = run_job();
    char dir[400], f[600];
    tmp_path(f, sizeof f, "ck");
    pathf(dir, sizeof dir, "%s/chk-%lld", f, (long long)id);
    rill__snap_meta *m = read_meta(dir);
    const rill__snap_meta_file *big = largest(m);
    pathf(f, sizeof f, "%s/%s", dir, big->name);
    flip_byte(f, (size_t)big->size / 3); /* inside the keyed sections */
    result r = run("verify", dir, NULL);
    assert_corrupt(&r, f, "");
    result_free(&r);
    r = run("dump", dir, NULL);
    assert_corrupt(&r, f, "");
    result_free(&r);
    rill__snap_meta_free(m);
}

Test(tool_job, a_truncated_job_checkpoint_is_found)
{
    int64_t id = run_job();
    char dir[400], f[600];
    tmp_path(f, sizeof f, "ck");
    pathf(dir, sizeof dir, "%s/chk-%lld", f, (long long)id);
    rill__snap_meta *m = read_meta(dir);
    const rill__snap_meta_file *big = largest(m);
    pathf(f, sizeof f, "%s/%s", dir, big->name);
    cr_assert_eq(truncate(f, (off_t)big->size / 2), 0);
    result r = run("verify", dir, NULL);
    assert_corrupt(&r, f, "truncated");
    result_free(&r);
    r = run("dump", dir, NULL);
    assert_corrupt(&r, f, "truncated");
    result_free(&r);
    rill__snap_meta_free(m);
}
