/* sinks_test.c - callback, print and file sinks: exact output, prefixes at
 * parallelism > 1, formatters, and failures.
 *
 * Print output is captured by pointing file descriptor 1 or 2 at a
 * temporary file for the length of the job.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rill.h"

#define TEST_NAME "sinks"
#define MAXSUB 4
#include "common.h"

/* ---- files (in the temp dir of common.h) --------------------------------- */

/* The whole content of path (NUL added after it); *len its length. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void expect_file(const char *path, const char *want, size_t want_len)
{
    size_t len;
    char *got = slurp(path, &len);
    cr_assert_eq(len, want_len, "%s: %zu bytes, want %zu: \"%s\"", path, len, want_len, got);
    cr_assert_eq(memcmp(got, want, len), 0, "%s: \"%s\", want \"%s\"", path, got, want);
    free(got);
}

/* ---- capturing file descriptor 1 or 2 ---------------------------------- */

typedef struct capture {
    int fd;
    int saved;
    char path[128];
} capture;

static void capture_begin(capture *c, int fd)
{
    c->fd = fd;
    tmp_path(c->path, sizeof c->path, fd == 1 ? "stdout.txt" : "stderr.txt");
    fflush(stdout);
    fflush(stderr);
    c->saved = dup(fd);
    cr_assert_geq(c->saved, 0);
    int t = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(t, 0);
    cr_assert_eq(dup2(t, fd), fd);
    close(t);
}

static void capture_end(capture *c)
{
    fflush(stdout);
    fflush(stderr);
    cr_assert_eq(dup2(c->saved, c->fd), c->fd);
    close(c->saved);
}

/* ---- lines --------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Split text on '\n' (text must end with one) into sorted lines; returns
 * how many. */
static size_t sorted_lines(char *text, char **lines, size_t cap)
{
    size_t n = 0;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        cr_assert_not_null(nl, "output does not end with a newline");
        *nl = '\0';
        cr_assert_lt(n, cap);
        lines[n++] = p;
        p = nl + 1;
    }
    qsort(lines, n, sizeof *lines, cmp_str);
    return n;
}

/* ---- sources and formatters -------------------------------------------- */

static const char *const words[6] = {"zero", "one", "two", "three", "four", "five"};

/* The six words as records (without NUL), at parallelism 1. */
static rill_stream *words_source(rill_env *env)
{
    rill_record recs[6];
    for (int i = 0; i < 6; i++) {
        recs[i].data = words[i];
        recs[i].len = strlen(words[i]);
        recs[i].ts = RILL_TS_MIN;
    }
    rill_stream *s = rill_from_records(env, "words", recs, 6);
    return rill_stream_set_parallelism(s, 1);
}

typedef struct fmt_state {
    atomic_int calls;
    atomic_size_t max_cap;
    atomic_int bad_ud;
} fmt_state;

/* "<word>:<len>" */
static int fmt_word(const void *rec, size_t len, char *buf, size_t cap, void *ud)
{
    fmt_state *st = ud;
    if (st) {
        atomic_fetch_add(&st->calls, 1);
        if (cap > atomic_load(&st->max_cap))
            atomic_store(&st->max_cap, cap);
    }
    return snprintf(buf, cap, "%.*s:%zu", (int)len, (const char *)rec, len);
}

/* ---- callback sink -------------------------------------------------------- */

typedef struct got {
    pthread_mutex_t mu;
    char text[MAXSUB][16][32];
    int n[MAXSUB];
    int bad;
    void *ud_seen;
} got;

static int keep_word(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    got *g = ud;
    int s = rill_ctx_subtask(ctx);
    pthread_mutex_lock(&g->mu);
    g->ud_seen = ud;
    if (s < 0 || s >= MAXSUB || g->n[s] >= 16 || len >= 32) {
        g->bad++;
    } else {
        memcpy(g->text[s][g->n[s]], rec, len);
        g->text[s][g->n[s]][len] = '\0';
        g->n[s]++;
    }
    pthread_mutex_unlock(&g->mu);
    return 0;
}

static got *got_new(void)
{
    got *g = calloc(1, sizeof *g);
    cr_assert_not_null(g);
    pthread_mutex_init(&g->mu, NULL);
    return g;
}

Test(sink, callback_gets_every_record_in_order)
{
    rill_env *env = new_env(1);
    got *g = got_new();
    rill_stream *k = rill_sink(words_source(env), "collect", keep_word, g);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    run_ok(env);
    cr_assert_eq(g->bad, 0);
    cr_assert_eq(g->ud_seen, g);
    cr_assert_eq(g->n[0], 6);
    for (int i = 0; i < 6; i++)
        cr_assert_str_eq(g->text[0][i], words[i]);
    free(g);
    rill_env_free(env);
}

/* p=1 -> p=2 rebalance: record k goes to subtask k % 2, in order. */
Test(sink, callback_at_parallelism_two)
{
    rill_env *env = new_env(1);
    got *g = got_new();
    rill_stream *k = rill_sink(words_source(env), "collect", keep_word, g);
    cr_assert_not_null(rill_stream_set_parallelism(k, 2));
    run_ok(env);
    cr_assert_eq(g->bad, 0);
    cr_assert_eq(g->n[0], 3);
    cr_assert_eq(g->n[1], 3);
    for (int i = 0; i < 6; i++)
        cr_assert_str_eq(g->text[i % 2][i / 2], words[i]);
    free(g);
    rill_env_free(env);
}

static int failing_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return -17;
}

Test(sink, callback_non_zero_fails_the_job)
{
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink(words_source(env), "refuser", failing_sink, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "refuser");
    cr_assert(strstr(rill_job_errmsg(job), "refuser"), "%s", rill_job_errmsg(job));
    cr_assert(strstr(rill_job_errmsg(job), "-17"), "%s", rill_job_errmsg(job));
    rill_job_free(job);
    rill_env_free(env);
}

/* ---- print sink ---------------------------------------------------------- */

static void check_print_words(int fd)
{
    rill_env *env = new_env(1);
    fmt_state st = {0, 0, 0};
    rill_stream *k = rill_sink_print(words_source(env), NULL, fd, fmt_word, &st);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    capture cap;
    capture_begin(&cap, fd == RILL_STDOUT ? 1 : 2);
    int rc = rill_env_execute(env, NULL);
    capture_end(&cap);
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    const char *want = "zero:4\none:3\ntwo:3\nthree:5\nfour:4\nfive:4\n";
    expect_file(cap.path, want, strlen(want));
    cr_assert_geq(atomic_load(&st.calls), 6);
    rill_env_free(env);
}

Test(print, formatted_lines_on_stdout, .init = mk_tmp, .fini = rm_tmp)
{
    check_print_words(RILL_STDOUT);
}

Test(print, formatted_lines_on_stderr, .init = mk_tmp, .fini = rm_tmp)
{
    check_print_words(RILL_STDERR);
}

Test(print, stdout_sink_writes_nothing_to_stderr, .init = mk_tmp, .fini = rm_tmp)
{
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_print(words_source(env), NULL, RILL_STDOUT, NULL, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    capture out, err;
    capture_begin(&out, 1);
    capture_begin(&err, 2);
    int rc = rill_env_execute(env, NULL);
    capture_end(&err);
    capture_end(&out);
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    const char *want = "zero\none\ntwo\nthree\nfour\nfive\n";
    expect_file(out.path, want, strlen(want));
    expect_file(err.path, "", 0);
    rill_env_free(env);
}

static void check_prefixed(int fd, int p)
{
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_print(words_source(env), "shown", fd, NULL, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, p));
    capture cap;
    capture_begin(&cap, fd == RILL_STDOUT ? 1 : 2);
    int rc = rill_env_execute(env, NULL);
    capture_end(&cap);
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));

    size_t len;
    char *text = slurp(cap.path, &len);
    char *lines[16];
    size_t n = sorted_lines(text, lines, 16);
    /* Rebalance from one upstream subtask: record k on subtask k % p. */
    char want_buf[6][32];
    char *want[6];
    for (int i = 0; i < 6; i++) {
        snprintf(want_buf[i], sizeof want_buf[i], "%d> %s", i % p + 1, words[i]);
        want[i] = want_buf[i];
    }
    qsort(want, 6, sizeof *want, cmp_str);
    cr_assert_eq(n, 6);
    for (int i = 0; i < 6; i++)
        cr_assert_str_eq(lines[i], want[i]);
    free(text);
    rill_env_free(env);
}

Test(print, parallelism_two_prefixes_subtask_numbers, .init = mk_tmp, .fini = rm_tmp)
{
    check_prefixed(RILL_STDOUT, 2);
}

Test(print, parallelism_three_prefixes_on_stderr, .init = mk_tmp, .fini = rm_tmp)
{
    check_prefixed(RILL_STDERR, 3);
}

Test(print, each_subtask_prints_in_record_order, .init = mk_tmp, .fini = rm_tmp)
{
    rill_env *env = new_env(1);
    rill_record recs[40];
    char text[40][16];
    for (int i = 0; i < 40; i++) {
        snprintf(text[i], sizeof text[i], "%d", i);
        recs[i].data = text[i];
        recs[i].len = strlen(text[i]);
        recs[i].ts = RILL_TS_MIN;
    }
    rill_stream *s = rill_stream_set_parallelism(rill_from_records(env, NULL, recs, 40), 1);
    rill_stream *m = rill_sink_print(s, NULL, RILL_STDOUT, NULL, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(m, 2));
    capture cap;
    capture_begin(&cap, 1);
    int rc = rill_env_execute(env, NULL);
    capture_end(&cap);
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    size_t len;
    char *out = slurp(cap.path, &len);
    int next[2] = {0, 1}; /* subtask k prints k, k+2, k+4, ... */
    int lines = 0;
    for (char *p = out; *p;) {
        char *nl = strchr(p, '\n');
        cr_assert_not_null(nl);
        *nl = '\0';
        int sub, v;
        cr_assert_eq(sscanf(p, "%d> %d", &sub, &v), 2, "line \"%s\"", p);
        cr_assert(sub == 1 || sub == 2, "line \"%s\"", p);
        cr_assert_eq(v, next[sub - 1], "line \"%s\"", p);
        next[sub - 1] += 2;
        lines++;
        p = nl + 1;
    }
    cr_assert_eq(lines, 40);
    free(out);
    rill_env_free(env);
}

Test(print, null_formatter_writes_raw_bytes, .init = mk_tmp, .fini = rm_tmp)
{
    rill_env *env = new_env(1);
    const char raw1[] = {'a', '\0', 'b', '\t', (char)0xe2, (char)0x82, (char)0xac};
    const rill_record recs[3] = {{raw1, sizeof raw1, 0}, {"", 0, 0}, {"end", 3, 0}};
    rill_stream *s = rill_from_records(env, NULL, recs, 3);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink_print(s, NULL, RILL_STDOUT, NULL, NULL), 1));
    capture cap;
    capture_begin(&cap, 1);
    int rc = rill_env_execute(env, NULL);
    capture_end(&cap);
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    const char want[] = {'a', '\0', 'b', '\t', (char)0xe2, (char)0x82, (char)0xac, '\n',
                         '\n', 'e', 'n', 'd', '\n'};
    expect_file(cap.path, want, sizeof want);
    rill_env_free(env);
}

/* A formatter for a 10000-character line: snprintf-like, so the first call
 * (small buffer) returns the length needed and rill calls again. */
static int fmt_long(const void *rec, size_t len, char *buf, size_t cap, void *ud)
{
    (void)rec;
    (void)len;
    fmt_state *st = ud;
    atomic_fetch_add(&st->calls, 1);
    if (cap > atomic_load(&st->max_cap))
        atomic_store(&st->max_cap, cap);
    size_t need = 10000;
    size_t n = need < cap ? need : cap - 1;
    if (cap > 0) {
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)('a' + i % 26);
        buf[n] = '\0';
    }
    return (int)need;
}

Test(print, formatter_gets_a_larger_buffer_when_needed, .init = mk_tmp, .fini = rm_tmp)
{
    rill_env *env = new_env(1);
    fmt_state st = {0, 0, 0};
    const rill_record recs[2] = {{"x", 1, 0}, {"y", 1, 0}};
    rill_stream *s = rill_from_records(env, NULL, recs, 2);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink_print(s, NULL, RILL_STDOUT, fmt_long, &st), 1));
    capture cap;
    capture_begin(&cap, 1);
    int rc = rill_env_execute(env, NULL);
    capture_end(&cap);
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    char *want = malloc(2 * 10001);
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < 10000; i++)
            want[l * 10001 + i] = (char)('a' + i % 26);
        want[l * 10001 + 10000] = '\n';
    }
    expect_file(cap.path, want, 2 * 10001);
    free(want);
    cr_assert_gt(atomic_load(&st.max_cap), 10000, "largest buffer offered: %zu",
                 atomic_load(&st.max_cap));
    rill_env_free(env);
}

static int fmt_empty(const void *rec, size_t len, char *buf, size_t cap, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    if (cap)
        buf[0] = '\0';
    return 0;
}

Test(print, formatter_returning_zero_prints_an_empty_line, .init = mk_tmp, .fini = rm_tmp)
{
    rill_env *env = new_env(1);
    const rill_record recs[2] = {{"x", 1, 0}, {"y", 1, 0}};
    rill_stream *s = rill_from_records(env, NULL, recs, 2);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink_print(s, NULL, RILL_STDOUT, fmt_empty, NULL), 1));
    capture cap;
    capture_begin(&cap, 1);
    int rc = rill_env_execute(env, NULL);
    capture_end(&cap);
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    expect_file(cap.path, "\n\n", 2);
    rill_env_free(env);
}

static int fmt_negative(const void *rec, size_t len, char *buf, size_t cap, void *ud)
{
    (void)rec;
    (void)len;
    (void)buf;
    (void)cap;
    (void)ud;
    return -3;
}

Test(print, negative_formatter_result_fails_the_job, .init = mk_tmp, .fini = rm_tmp)
{
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_print(words_source(env), "printer", RILL_STDOUT, fmt_negative, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    capture cap;
    capture_begin(&cap, 1);
    rill_job *job = NULL;
    int rc = rill_job_start(&job, env, NULL);
    int wrc = job ? rill_job_wait(job) : rc;
    capture_end(&cap);
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(wrc, RILL_EUSER);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "printer");
    cr_assert(strstr(rill_job_errmsg(job), "printer"), "%s", rill_job_errmsg(job));
    cr_assert(strstr(rill_job_errmsg(job), "-3"), "%s", rill_job_errmsg(job));
    rill_job_free(job);
    expect_file(cap.path, "", 0);
    rill_env_free(env);
}

Test(print, formatter_gets_the_user_data, .init = mk_tmp, .fini = rm_tmp)
{
    rill_env *env = new_env(1);
    fmt_state st = {0, 0, 0};
    rill_stream *k = rill_sink_print(words_source(env), NULL, RILL_STDOUT, fmt_word, &st);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    capture cap;
    capture_begin(&cap, 1);
    int rc = rill_env_execute(env, NULL);
    capture_end(&cap);
    cr_assert_eq(rc, RILL_OK, "%s", rill_env_errmsg(env));
    /* fmt_word counts into st only through the user_data pointer. */
    cr_assert_geq(atomic_load(&st.calls), 6);
    rill_env_free(env);
}

/* ---- file sink ------------------------------------------------------------ */

Test(file_sink, exact_content_at_parallelism_one, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "out.txt");
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_file(words_source(env), NULL, path, NULL, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    run_ok(env);
    const char *want = "zero\none\ntwo\nthree\nfour\nfive\n";
    expect_file(path, want, strlen(want));
    rill_env_free(env);
}

Test(file_sink, formatted_content, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "fmt.txt");
    rill_env *env = new_env(1);
    fmt_state st = {0, 0, 0};
    rill_stream *k = rill_sink_file(words_source(env), NULL, path, fmt_word, &st);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    run_ok(env);
    const char *want = "zero:4\none:3\ntwo:3\nthree:5\nfour:4\nfive:4\n";
    expect_file(path, want, strlen(want));
    rill_env_free(env);
}

Test(file_sink, existing_file_is_truncated, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "old.txt");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < 100; i++)
        fputs("old content that is much longer than the new one\n", f);
    fclose(f);
    rill_env *env = new_env(1);
    const rill_record recs[1] = {{"new", 3, 0}};
    rill_stream *s = rill_from_records(env, NULL, recs, 1);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink_file(s, NULL, path, NULL, NULL), 1));
    run_ok(env);
    expect_file(path, "new\n", 4);
    rill_env_free(env);
}

Test(file_sink, no_record_gives_an_empty_file, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "empty.txt");
    rill_env *env = new_env(1);
    rill_stream *s = rill_from_array(env, NULL, NULL, 4, 0);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink_file(s, NULL, path, NULL, NULL), 1));
    run_ok(env);
    expect_file(path, "", 0);
    rill_env_free(env);
}

Test(file_sink, raw_bytes_without_formatter, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "raw.txt");
    rill_env *env = new_env(1);
    const char raw[] = {'\0', 'x', '\r', (char)0x80};
    const rill_record recs[2] = {{raw, sizeof raw, 0}, {"", 0, 0}};
    rill_stream *s = rill_from_records(env, NULL, recs, 2);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink_file(s, NULL, path, NULL, NULL), 1));
    run_ok(env);
    const char want[] = {'\0', 'x', '\r', (char)0x80, '\n', '\n'};
    expect_file(path, want, sizeof want);
    rill_env_free(env);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

static size_t dir_entries(const char *path, char names[][16], size_t cap)
{
    DIR *d = opendir(path);
    cr_assert_not_null(d, "%s is not a directory", path);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t l = strlen(e->d_name);
        cr_assert_lt(n, cap);
        cr_assert_lt(l, (size_t)16, "unexpected entry %s", e->d_name);
        memcpy(names[n++], e->d_name, l + 1);
    }
    closedir(d);
    qsort(names, n, 16, cmp_name);
    return n;
}

/* p=1 source -> p=2 file sink: rebalance puts record k on subtask k % 2,
 * which writes path/<k % 2 + 1>, without prefixes. */
static void check_dir_output(const char *dir)
{
    char names[8][16];
    size_t n = dir_entries(dir, names, 8);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(names[0], "1");
    cr_assert_str_eq(names[1], "2");
    char p1[160], p2[160];
    snprintf(p1, sizeof p1, "%s/1", dir);
    snprintf(p2, sizeof p2, "%s/2", dir);
    expect_file(p1, "zero\ntwo\nfour\n", 14);
    expect_file(p2, "one\nthree\nfive\n", 15);
}

Test(file_sink, parallelism_two_writes_a_directory, .init = mk_tmp, .fini = rm_tmp)
{
    char dir[128];
    tmp_path(dir, sizeof dir, "outdir");
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_file(words_source(env), NULL, dir, NULL, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 2));
    run_ok(env);
    struct stat sb;
    cr_assert_eq(stat(dir, &sb), 0);
    cr_assert(S_ISDIR(sb.st_mode));
    check_dir_output(dir);
    rill_env_free(env);
}

Test(file_sink, parallelism_two_into_an_existing_directory, .init = mk_tmp, .fini = rm_tmp)
{
    char dir[128], old[160];
    tmp_path(dir, sizeof dir, "existing");
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(old, sizeof old, "%s/1", dir);
    FILE *f = fopen(old, "w");
    cr_assert_not_null(f);
    fputs("stale content, longer than what comes\nand more\n", f);
    fclose(f);
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_file(words_source(env), NULL, dir, NULL, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 2));
    run_ok(env);
    check_dir_output(dir);
    rill_env_free(env);
}

Test(file_sink, parallelism_three_with_formatter, .init = mk_tmp, .fini = rm_tmp)
{
    char dir[128];
    tmp_path(dir, sizeof dir, "three");
    rill_env *env = new_env(1);
    fmt_state st = {0, 0, 0};
    rill_stream *k = rill_sink_file(words_source(env), NULL, dir, fmt_word, &st);
    cr_assert_not_null(rill_stream_set_parallelism(k, 3));
    run_ok(env);
    char names[8][16];
    cr_assert_eq(dir_entries(dir, names, 8), 3);
    const char *want[3] = {"zero:4\nthree:5\n", "one:3\nfour:4\n", "two:3\nfive:4\n"};
    for (int i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s/%d", dir, i + 1);
        expect_file(p, want[i], strlen(want[i]));
    }
    rill_env_free(env);
}

Test(file_sink, unwritable_path_is_eio, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "no-such-dir/out.txt");
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_file(words_source(env), "writer", path, NULL, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_job_wait(job), RILL_EIO);
    cr_assert_eq(rill_job_status(job), RILL_JOB_FAILED);
    cr_assert_str_eq(rill_job_failed_operator(job), "writer");
    cr_assert(strstr(rill_job_errmsg(job), path), "%s", rill_job_errmsg(job));
    rill_job_free(job);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EIO);
    cr_assert(strstr(rill_env_errmsg(env), path), "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(file_sink, parallel_path_that_is_a_file_is_eio, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "plain-file");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_file(words_source(env), "dir-writer", path, NULL, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 2));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EIO);
    cr_assert(strstr(rill_env_errmsg(env), path), "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(file_sink, parallel_path_in_missing_parent_is_eio, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "missing/parent/dir");
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_file(words_source(env), NULL, path, NULL, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 2));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EIO);
    cr_assert(strstr(rill_env_errmsg(env), path), "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(file_sink, negative_formatter_result_fails_the_job, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128];
    tmp_path(path, sizeof path, "neg.txt");
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_file(words_source(env), "file-fmt", path, fmt_negative, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EUSER);
    cr_assert(strstr(rill_env_errmsg(env), "file-fmt"), "%s", rill_env_errmsg(env));
    cr_assert(strstr(rill_env_errmsg(env), "-3"), "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(file_sink, path_is_copied, .init = mk_tmp, .fini = rm_tmp)
{
    char path[128], buf[128];
    tmp_path(path, sizeof path, "copied.txt");
    strcpy(buf, path);
    rill_env *env = new_env(1);
    rill_stream *k = rill_sink_file(words_source(env), NULL, buf, NULL, NULL);
    strcpy(buf, "/nonexistent/elsewhere");
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
    run_ok(env);
    const char *want = "zero\none\ntwo\nthree\nfour\nfive\n";
    expect_file(path, want, strlen(want));
    rill_env_free(env);
}
