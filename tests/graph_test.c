/* graph_test.c - building a graph: every building mistake, graph-level
 * validation errors, default names and uids, first error wins, operators
 * that lead to no sink, and declared streams.
 *
 * Every user callback bumps one counter, so a test can check that a graph
 * with a mistake never runs any of them.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rill.h"
#include "common.h"

static atomic_int user_calls; /* every user callback of this file */

/* ---- callbacks (all counted) ------------------------------------------ */

static int src_fn(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    return RILL_SOURCE_END;
}

static int gen_fn(rill_ctx *ctx, uint64_t i, void *ud)
{
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    int v = (int)i;
    return rill_emit(ctx, &v, sizeof v);
}

static int map_fn(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    return rill_emit(ctx, rec, len);
}

static int filter_fn(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    return 1;
}

static int sink_fn(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    return 0;
}

static int key_fn(const void *rec, size_t len, void *key, size_t *key_len, void *ud)
{
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    if (*key_len < len) {
        *key_len = len;
        return 0;
    }
    memcpy(key, rec, len);
    *key_len = len;
    return 0;
}

static int part_fn(const void *rec, size_t len, int n, void *ud)
{
    (void)rec;
    (void)len;
    (void)n;
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    return 0;
}

static int fmt_fn(const void *rec, size_t len, char *buf, size_t cap, void *ud)
{
    (void)rec;
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    return snprintf(buf, cap, "%zu", len);
}

static int open_fn(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    return 0;
}

static int close_fn(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    (void)ud;
    atomic_fetch_add(&user_calls, 1);
    return 0;
}

/* A complete, valid pipeline whose every callback counts: generator ->
 * map -> sink, with lifecycle hooks. Returns the map's stream. */
static rill_stream *valid_part(rill_env *env)
{
    rill_stream *g = rill_generator(env, "ok-gen", 20, gen_fn, NULL);
    cr_assert_not_null(rill_stream_set_lifecycle(g, open_fn, close_fn));
    rill_stream *m = rill_map(g, "ok-map", map_fn, NULL);
    cr_assert_not_null(rill_stream_set_lifecycle(m, open_fn, close_fn));
    rill_stream *k = rill_sink(m, "ok-sink", sink_fn, NULL);
    cr_assert_not_null(rill_stream_set_lifecycle(k, open_fn, close_fn));
    return m;
}

/* The env holds a mistake: validate, start and execute all report it with
 * RILL_EINVAL and a message holding each needle; no callback runs. */
static void expect_mistake(rill_env *env, const char *needle1, const char *needle2)
{
    int rc = rill_env_validate(env);
    cr_assert_eq(rc, RILL_EINVAL, "validate gives %s (%s)", rill_err_name(rc),
                 rill_env_errmsg(env));
    const char *m = rill_env_errmsg(env);
    cr_assert_not_null(m);
    if (needle1)
        assert_has(m, needle1);
    if (needle2)
        assert_has(m, needle2);

    rill_job *job = (rill_job *)&job; /* not NULL: start must clear it */
    rc = rill_job_start(&job, env, "mistake");
    cr_assert_eq(rc, RILL_EINVAL, "start gives %s", rill_err_name(rc));
    cr_assert_null(job);
    if (needle1)
        assert_has(rill_env_errmsg(env), needle1);

    rc = rill_env_execute(env, "mistake");
    cr_assert_eq(rc, RILL_EINVAL, "execute gives %s", rill_err_name(rc));
    m = rill_env_errmsg(env);
    if (needle1)
        assert_has(m, needle1);
    if (needle2)
        assert_has(m, needle2);
    cr_assert_eq(atomic_load(&user_calls), 0, "a user callback ran");
}

/* ---- valid graphs ------------------------------------------------------ */

Test(graph, valid_graph_validates_ok)
{
    rill_env *env = new_env(2);
    valid_part(env);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(atomic_load(&user_calls), 0, "validate ran a callback");
    rill_env_free(env);
}

Test(graph, valid_graph_validates_twice_then_runs)
{
    rill_env *env = new_env(2);
    valid_part(env);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    /* 20 generator calls, 20 map calls, 20 sink calls, and one open and
     * one close per subtask of each of the three operators (2 subtasks). */
    cr_assert_eq(atomic_load(&user_calls), 60 + 3 * 2 * 2);
    rill_env_free(env);
}

Test(graph, every_builder_in_one_valid_graph)
{
    char dir[] = "/tmp/rill-graph-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256], out[256];
    snprintf(path, sizeof path, "%s/in.txt", dir);
    snprintf(out, sizeof out, "%s/out.txt", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("x\ny\n", f);
    fclose(f);

    rill_env *env = new_env(2);
    const int arr[2] = {1, 2};
    const rill_record recs[1] = {{"r", 1, 5}};
    rill_stream *parts[5] = {
        rill_source(env, NULL, src_fn, NULL),
        rill_from_array(env, NULL, arr, sizeof(int), 2),
        rill_from_records(env, NULL, recs, 1),
        rill_generator(env, NULL, 4, gen_fn, NULL),
        rill_file_source(env, NULL, path),
    };
    for (int i = 0; i < 5; i++)
        cr_assert_not_null(parts[i]);
    rill_stream *u = rill_union(parts, 5);
    cr_assert_not_null(u);
    rill_stream *d = rill_stream_declare(env, NULL);
    cr_assert_not_null(d);
    cr_assert_eq(rill_stream_define(d, rill_rebalance(u)), RILL_OK);
    rill_stream *s = rill_filter(rill_key_by(d, key_fn, NULL), NULL, filter_fn, NULL);
    s = rill_flat_map(rill_key_by_bytes(s, 0, 1), NULL, map_fn, NULL);
    s = rill_map(rill_rescale(s), NULL, map_fn, NULL);
    s = rill_map(rill_shuffle(s), "m2", map_fn, NULL);
    s = rill_map(rill_partition_custom(s, part_fn, NULL), "m3", map_fn, NULL);
    s = rill_map(rill_forward(s), "m4", map_fn, NULL);
    s = rill_map(rill_global(s), "m5", map_fn, NULL);
    s = rill_stream_disable_chaining(s);
    cr_assert_not_null(s);
    cr_assert_not_null(rill_sink(rill_broadcast(s), NULL, sink_fn, NULL));
    cr_assert_not_null(rill_sink_file(s, NULL, out, fmt_fn, NULL));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
    remove(path);
    remove(out);
    rmdir(dir);
}

/* ---- building mistakes: NULL functions --------------------------------- */

Test(mistake, null_source_function)
{
    rill_env *env = new_env(2);
    valid_part(env);
    cr_assert_null(rill_source(env, "my-source", NULL, NULL));
    expect_mistake(env, "function is NULL", "my-source");
    rill_env_free(env);
}

Test(mistake, null_generator_function)
{
    rill_env *env = new_env(2);
    valid_part(env);
    cr_assert_null(rill_generator(env, "my-gen", 10, NULL, NULL));
    expect_mistake(env, "function is NULL", "my-gen");
    rill_env_free(env);
}

Test(mistake, null_map_function)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_map(m, "my-map", NULL, NULL));
    expect_mistake(env, "function is NULL", "my-map");
    rill_env_free(env);
}

Test(mistake, null_filter_function)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_filter(m, "my-filter", NULL, NULL));
    expect_mistake(env, "function is NULL", "my-filter");
    rill_env_free(env);
}

Test(mistake, null_flat_map_function)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_flat_map(m, "my-flat", NULL, NULL));
    expect_mistake(env, "function is NULL", "my-flat");
    rill_env_free(env);
}

Test(mistake, null_sink_function)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_sink(m, "my-sink", NULL, NULL));
    expect_mistake(env, "function is NULL", "my-sink");
    rill_env_free(env);
}

Test(mistake, null_key_function)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_key_by(m, NULL, NULL));
    expect_mistake(env, "function is NULL", "'ok-map'");
    rill_env_free(env);
}

Test(mistake, null_partition_function)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_partition_custom(m, NULL, NULL));
    expect_mistake(env, "function is NULL", "'ok-map'");
    rill_env_free(env);
}

/* ---- building mistakes: NULL stream or environment -------------------- */

/* With a NULL input there is no environment to keep the mistake on: the
 * builders return NULL and do nothing. */
Test(mistake, null_stream_gives_null_from_every_builder)
{
    cr_assert_null(rill_map(NULL, "m", map_fn, NULL));
    cr_assert_null(rill_filter(NULL, "f", filter_fn, NULL));
    cr_assert_null(rill_flat_map(NULL, "fm", map_fn, NULL));
    cr_assert_null(rill_sink(NULL, "s", sink_fn, NULL));
    cr_assert_null(rill_sink_print(NULL, "p", RILL_STDOUT, NULL, NULL));
    cr_assert_null(rill_sink_file(NULL, "fs", "/tmp/unused", NULL, NULL));
    cr_assert_null(rill_key_by(NULL, key_fn, NULL));
    cr_assert_null(rill_key_by_bytes(NULL, 0, 4));
    cr_assert_null(rill_forward(NULL));
    cr_assert_null(rill_rebalance(NULL));
    cr_assert_null(rill_rescale(NULL));
    cr_assert_null(rill_shuffle(NULL));
    cr_assert_null(rill_broadcast(NULL));
    cr_assert_null(rill_global(NULL));
    cr_assert_null(rill_partition_custom(NULL, part_fn, NULL));
    cr_assert_null(rill_stream_set_uid(NULL, "u"));
    cr_assert_null(rill_stream_set_parallelism(NULL, 1));
    cr_assert_null(rill_stream_disable_chaining(NULL));
    cr_assert_null(rill_stream_set_lifecycle(NULL, open_fn, close_fn));
    rill_stream *none[1] = {NULL};
    cr_assert_null(rill_union(none, 1));
    cr_assert_null(rill_union(NULL, 1));
    cr_assert_eq(atomic_load(&user_calls), 0);
}

Test(mistake, null_env_gives_null_from_every_source)
{
    const int arr[1] = {1};
    const rill_record recs[1] = {{"r", 1, 0}};
    cr_assert_null(rill_source(NULL, "s", src_fn, NULL));
    cr_assert_null(rill_from_array(NULL, "a", arr, sizeof(int), 1));
    cr_assert_null(rill_from_records(NULL, "r", recs, 1));
    cr_assert_null(rill_generator(NULL, "g", 1, gen_fn, NULL));
    cr_assert_null(rill_file_source(NULL, "f", "/tmp/unused"));
    cr_assert_null(rill_stream_declare(NULL, "d"));
    cr_assert_eq(atomic_load(&user_calls), 0);
}

Test(mistake, null_env_is_refused_by_validate_start_and_execute)
{
    cr_assert_eq(rill_env_validate(NULL), RILL_EINVAL);
    cr_assert_eq(rill_env_execute(NULL, NULL), RILL_EINVAL);
    rill_job *job = (rill_job *)&job;
    cr_assert_eq(rill_job_start(&job, NULL, NULL), RILL_EINVAL);
    cr_assert_null(job);
}

Test(mistake, null_stream_inside_union)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *in[2] = {m, NULL};
    cr_assert_null(rill_union(in, 2));
    expect_mistake(env, "NULL", NULL);
    rill_env_free(env);
}

/* ---- building mistakes: parallelism ----------------------------------- */

Test(mistake, parallelism_zero)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *f = rill_filter(m, "zero-par", filter_fn, NULL);
    cr_assert_not_null(f);
    cr_assert_null(rill_stream_set_parallelism(f, 0));
    expect_mistake(env, "parallelism", "zero-par");
    rill_env_free(env);
}

Test(mistake, parallelism_negative)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *f = rill_filter(m, "neg-par", filter_fn, NULL);
    cr_assert_null(rill_stream_set_parallelism(f, -3));
    expect_mistake(env, "parallelism", "neg-par");
    rill_env_free(env);
}

Test(mistake, parallelism_above_max_parallelism)
{
    rill_env *env = new_env(2);
    cr_assert_eq(rill_env_set_max_parallelism(env, 8), RILL_OK);
    rill_stream *m = valid_part(env);
    rill_stream *f = rill_filter(rill_rebalance(m), "too-wide", filter_fn, NULL);
    rill_stream_set_parallelism(f, 9);
    rill_sink(rill_rebalance(f), "after-wide", sink_fn, NULL);
    expect_mistake(env, "parallelism", "too-wide");
    rill_env_free(env);
}

Test(mistake, parallelism_above_limit)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *f = rill_filter(rill_rebalance(m), "huge", filter_fn, NULL);
    rill_stream_set_parallelism(f, 32769);
    rill_sink(rill_rebalance(f), "after-huge", sink_fn, NULL);
    expect_mistake(env, "parallelism", "huge");
    rill_env_free(env);
}

/* ---- building mistakes: a sink used as input -------------------------- */

Test(mistake, sink_used_as_input_of_map)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *k = rill_sink(m, "the-sink", sink_fn, NULL);
    cr_assert_not_null(k);
    cr_assert_null(rill_map(k, "after-sink", map_fn, NULL));
    expect_mistake(env, "the-sink", NULL);
    rill_env_free(env);
}

Test(mistake, sink_used_as_input_of_partitioning)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *k = rill_sink_print(m, "the-print", RILL_STDOUT, fmt_fn, NULL);
    cr_assert_not_null(k);
    cr_assert_null(rill_rebalance(k));
    expect_mistake(env, "the-print", NULL);
    rill_env_free(env);
}

Test(mistake, sink_used_as_input_of_a_sink)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *k = rill_sink(m, "first-sink", sink_fn, NULL);
    cr_assert_null(rill_sink(k, "second-sink", sink_fn, NULL));
    expect_mistake(env, "first-sink", NULL);
    rill_env_free(env);
}

Test(mistake, sink_inside_union)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *k = rill_sink(m, "union-sink", sink_fn, NULL);
    rill_stream *in[2] = {m, k};
    cr_assert_null(rill_union(in, 2));
    expect_mistake(env, "union-sink", NULL);
    rill_env_free(env);
}

Test(mistake, sink_used_to_define_a_declared_stream)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *k = rill_sink(m, "define-sink", sink_fn, NULL);
    rill_stream *d = rill_stream_declare(env, "decl");
    cr_assert_not_null(d);
    rill_sink(d, "decl-out", sink_fn, NULL);
    cr_assert_eq(rill_stream_define(d, k), RILL_EINVAL);
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EINVAL);
    cr_assert_eq(atomic_load(&user_calls), 0);
    rill_env_free(env);
}

/* ---- building mistakes: union across environments --------------------- */

Test(mistake, union_of_streams_of_two_environments)
{
    rill_env *env = new_env(2);
    rill_env *other = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *o = rill_generator(other, "other-gen", 5, gen_fn, NULL);
    cr_assert_not_null(o);
    rill_stream *in[2] = {m, o};
    cr_assert_null(rill_union(in, 2));
    expect_mistake(env, "union", NULL);
    rill_env_free(other);
    rill_env_free(env);
}

/* ---- building mistakes: key_by_bytes length --------------------------- */

Test(mistake, key_by_bytes_length_zero)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_key_by_bytes(m, 0, 0));
    expect_mistake(env, "key length 0", "'ok-map'");
    rill_env_free(env);
}

Test(mistake, key_by_bytes_length_above_key_max)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_key_by_bytes(m, 0, RILL_KEY_MAX + 1));
    expect_mistake(env, "key length 65536", "'ok-map'");
    rill_env_free(env);
}

Test(mistake, key_by_bytes_length_key_max_is_valid)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *k = rill_key_by_bytes(m, 0, RILL_KEY_MAX);
    cr_assert_not_null(k);
    cr_assert_not_null(rill_sink(k, "keyed", sink_fn, NULL));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

/* ---- building mistakes: print fd and NULL paths ----------------------- */

Test(mistake, print_fd_neither_stdout_nor_stderr)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_sink_print(m, "bad-fd", 0, NULL, NULL));
    expect_mistake(env, "bad-fd", NULL);
    rill_env_free(env);
}

Test(mistake, print_fd_three)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_sink_print(m, "fd-three", 3, NULL, NULL));
    expect_mistake(env, "fd-three", NULL);
    rill_env_free(env);
}

Test(mistake, file_source_null_path)
{
    rill_env *env = new_env(2);
    valid_part(env);
    cr_assert_null(rill_file_source(env, "no-path-in", NULL));
    expect_mistake(env, "no-path-in", "path");
    rill_env_free(env);
}

Test(mistake, file_sink_null_path)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_sink_file(m, "no-path-out", NULL, NULL, NULL));
    expect_mistake(env, "no-path-out", "path");
    rill_env_free(env);
}

/* ---- graph-level errors ------------------------------------------------ */

Test(invalid, graph_without_sink)
{
    rill_env *env = new_env(2);
    rill_stream *g = rill_generator(env, "lonely", 10, gen_fn, NULL);
    cr_assert_not_null(rill_map(g, "lonely-map", map_fn, NULL));
    expect_mistake(env, "no sink", NULL);
    rill_env_free(env);
}

Test(invalid, empty_environment)
{
    rill_env *env = new_env(2);
    expect_mistake(env, "no sink", NULL);
    rill_env_free(env);
}

Test(invalid, declared_stream_never_defined)
{
    rill_env *env = new_env(2);
    valid_part(env);
    rill_stream *d = rill_stream_declare(env, "pending");
    cr_assert_not_null(d);
    cr_assert_not_null(rill_sink(rill_map(d, "use-pending", map_fn, NULL), NULL, sink_fn, NULL));
    expect_mistake(env, "never defined", "pending");
    rill_env_free(env);
}

Test(invalid, cycle_through_a_declared_stream)
{
    rill_env *env = new_env(2);
    valid_part(env);
    rill_stream *d = rill_stream_declare(env, "loop");
    rill_stream *m = rill_map(d, "loop-step", map_fn, NULL);
    cr_assert_not_null(m);
    cr_assert_eq(rill_stream_define(d, m), RILL_OK);
    cr_assert_not_null(rill_sink(m, "loop-out", sink_fn, NULL));
    expect_mistake(env, "cycle", NULL);
    rill_env_free(env);
}

Test(invalid, cycle_through_a_union_and_a_declared_stream)
{
    rill_env *env = new_env(2);
    valid_part(env);
    rill_stream *d = rill_stream_declare(env, "feedback");
    rill_stream *g = rill_generator(env, "seed", 5, gen_fn, NULL);
    rill_stream *in[2] = {g, d};
    rill_stream *u = rill_union(in, 2);
    cr_assert_not_null(u);
    rill_stream *m = rill_map(u, "iterate", map_fn, NULL);
    rill_stream *f = rill_filter(m, "again", filter_fn, NULL);
    cr_assert_not_null(f);
    cr_assert_eq(rill_stream_define(d, f), RILL_OK);
    cr_assert_not_null(rill_sink(m, "result", sink_fn, NULL));
    expect_mistake(env, "cycle", NULL);
    rill_env_free(env);
}

Test(invalid, cycle_of_two_declared_streams)
{
    rill_env *env = new_env(2);
    valid_part(env);
    rill_stream *a = rill_stream_declare(env, "a");
    rill_stream *b = rill_stream_declare(env, "b");
    cr_assert_eq(rill_stream_define(a, b), RILL_OK);
    cr_assert_eq(rill_stream_define(b, a), RILL_OK);
    cr_assert_not_null(rill_sink(a, "ab-out", sink_fn, NULL));
    expect_mistake(env, "cycle", NULL);
    rill_env_free(env);
}

Test(invalid, explicit_uid_used_twice)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *a = rill_map(m, "first", map_fn, NULL);
    rill_stream *b = rill_map(a, "second", map_fn, NULL);
    cr_assert_not_null(rill_stream_set_uid(a, "same-uid"));
    cr_assert_not_null(rill_stream_set_uid(b, "same-uid"));
    cr_assert_not_null(rill_sink(b, NULL, sink_fn, NULL));
    expect_mistake(env, "same-uid", NULL);
    rill_env_free(env);
}

Test(invalid, explicit_uid_clashes_with_a_default_uid)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env); /* "ok-map" has default uid "ok-map" */
    rill_stream *f = rill_filter(m, "f", filter_fn, NULL);
    cr_assert_not_null(rill_stream_set_uid(f, "ok-map"));
    cr_assert_not_null(rill_sink(f, NULL, sink_fn, NULL));
    expect_mistake(env, "ok-map", NULL);
    rill_env_free(env);
}

Test(invalid, explicit_forward_between_different_parallelisms)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *f = rill_filter(rill_forward(m), "narrow", filter_fn, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(f, 1));
    cr_assert_not_null(rill_sink(f, NULL, sink_fn, NULL));
    expect_mistake(env, "forward", NULL);
    rill_env_free(env);
}

Test(invalid, explicit_forward_between_equal_parallelisms_is_valid)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *f = rill_filter(rill_forward(m), "same", filter_fn, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(f, 2));
    cr_assert_not_null(rill_sink(f, NULL, sink_fn, NULL));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

/* ---- first error wins; later builders do nothing ---------------------- */

Test(graph, first_building_mistake_wins)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_map(m, "first-mistake", NULL, NULL));
    cr_assert_null(rill_stream_set_parallelism(m, 0));
    cr_assert_null(rill_sink_print(m, "second-mistake", 7, NULL, NULL));
    cr_assert_null(rill_filter(m, "third-mistake", NULL, NULL));
    expect_mistake(env, "first-mistake", NULL);
    const char *msg = rill_env_errmsg(env);
    cr_assert_null(strstr(msg, "second-mistake"), "%s", msg);
    cr_assert_null(strstr(msg, "third-mistake"), "%s", msg);
    rill_env_free(env);
}

Test(graph, building_mistake_wins_over_graph_errors)
{
    rill_env *env = new_env(2);
    rill_stream *g = rill_generator(env, "no-sink-gen", 5, gen_fn, NULL);
    cr_assert_null(rill_filter(g, "kept-mistake", NULL, NULL));
    rill_stream_declare(env, "never");
    expect_mistake(env, "kept-mistake", NULL);
    cr_assert_null(strstr(rill_env_errmsg(env), "no sink"));
    rill_env_free(env);
}

Test(graph, mistake_is_kept_across_calls)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    cr_assert_null(rill_map(m, "kept", NULL, NULL));
    expect_mistake(env, "kept", NULL);
    /* Reported again, not forgotten after the first report. */
    expect_mistake(env, "kept", NULL);
    rill_env_free(env);
}

Test(graph, later_builders_return_null)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    rill_stream *g = rill_generator(env, "spare", 5, gen_fn, NULL);
    cr_assert_not_null(g);
    cr_assert_null(rill_flat_map(m, "mistake", NULL, NULL));

    const int arr[1] = {1};
    const rill_record recs[1] = {{"r", 1, 0}};
    rill_stream *two[2] = {m, g};
    cr_assert_null(rill_source(env, "s", src_fn, NULL));
    cr_assert_null(rill_from_array(env, "a", arr, sizeof(int), 1));
    cr_assert_null(rill_from_records(env, "r", recs, 1));
    cr_assert_null(rill_generator(env, "g", 1, gen_fn, NULL));
    cr_assert_null(rill_file_source(env, "f", "/tmp/unused"));
    cr_assert_null(rill_stream_declare(env, "d"));
    cr_assert_null(rill_map(m, "m", map_fn, NULL));
    cr_assert_null(rill_filter(m, "fi", filter_fn, NULL));
    cr_assert_null(rill_flat_map(m, "fm", map_fn, NULL));
    cr_assert_null(rill_union(two, 2));
    cr_assert_null(rill_key_by(m, key_fn, NULL));
    cr_assert_null(rill_key_by_bytes(m, 0, 4));
    cr_assert_null(rill_forward(m));
    cr_assert_null(rill_rebalance(m));
    cr_assert_null(rill_rescale(m));
    cr_assert_null(rill_shuffle(m));
    cr_assert_null(rill_broadcast(m));
    cr_assert_null(rill_global(m));
    cr_assert_null(rill_partition_custom(m, part_fn, NULL));
    cr_assert_null(rill_sink(g, "k", sink_fn, NULL));
    cr_assert_null(rill_sink_print(g, "p", RILL_STDOUT, NULL, NULL));
    cr_assert_null(rill_sink_file(g, "fs", "/tmp/unused", NULL, NULL));
    cr_assert_null(rill_stream_set_uid(g, "u"));
    cr_assert_null(rill_stream_set_parallelism(g, 1));
    cr_assert_null(rill_stream_disable_chaining(g));
    cr_assert_null(rill_stream_set_lifecycle(g, open_fn, close_fn));
    expect_mistake(env, "mistake", NULL);
    rill_env_free(env);
}

/* ---- operators that lead to no sink ----------------------------------- */

static int failing_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    atomic_fetch_add(&user_calls, 1000);
    return -1;
}

Test(graph, operators_leading_to_no_sink_never_run)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    /* A dangling branch off the valid pipeline, and a dangling source. */
    rill_stream *d = rill_map(m, "dangling", failing_map, NULL);
    cr_assert_not_null(rill_stream_set_lifecycle(d, open_fn, close_fn));
    rill_stream *g = rill_generator(env, "dangling-gen", 5, gen_fn, NULL);
    cr_assert_not_null(rill_map(g, "dangling-2", failing_map, NULL));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    /* Only the valid part ran: 60 calls + open/close of 3 ops x 2 subtasks. */
    cr_assert_eq(atomic_load(&user_calls), 60 + 12);
    rill_env_free(env);
}

Test(graph, graph_errors_of_operators_leading_to_no_sink_are_ignored)
{
    rill_env *env = new_env(2);
    rill_stream *m = valid_part(env);
    /* forward between different parallelisms, then a uid clash: both off
     * any path to a sink. */
    rill_stream *f = rill_filter(rill_forward(m), "dangling-forward", filter_fn, NULL);
    cr_assert_not_null(rill_stream_set_parallelism(f, 1));
    cr_assert_not_null(rill_stream_set_uid(f, "ok-map"));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

/* ---- default names and uids ------------------------------------------- */

typedef struct names_seen {
    pthread_mutex_t mu;
    char source[32], generator[32], map[32], filter[32], flat_map[32], sink[32];
} names_seen;

static names_seen seen = {PTHREAD_MUTEX_INITIALIZER, "", "", "", "", "", ""};

static void note_name(char *slot, rill_ctx *ctx)
{
    pthread_mutex_lock(&seen.mu);
    snprintf(slot, 32, "%s", rill_ctx_operator_name(ctx));
    pthread_mutex_unlock(&seen.mu);
}

static int name_source(rill_ctx *ctx, void *ud)
{
    (void)ud;
    note_name(seen.source, ctx);
    int v = 1;
    int rc = rill_emit(ctx, &v, sizeof v);
    return rc ? rc : RILL_SOURCE_END;
}

static int name_gen(rill_ctx *ctx, uint64_t i, void *ud)
{
    (void)ud;
    note_name(seen.generator, ctx);
    int v = (int)i;
    return rill_emit(ctx, &v, sizeof v);
}

static int name_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    note_name(seen.map, ctx);
    return rill_emit(ctx, rec, len);
}

static int name_filter(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    note_name(seen.filter, ctx);
    return 1;
}

static int name_flat(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    note_name(seen.flat_map, ctx);
    return rill_emit(ctx, rec, len);
}

static int name_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)rec;
    (void)len;
    (void)ud;
    note_name(seen.sink, ctx);
    return 0;
}

Test(names, default_names_seen_by_callbacks)
{
    rill_env *env = new_env(1);
    rill_stream *a = rill_source(env, NULL, name_source, NULL);
    rill_stream *b = rill_generator(env, NULL, 3, name_gen, NULL);
    rill_stream *in[2] = {a, b};
    rill_stream *s = rill_map(rill_union(in, 2), NULL, name_map, NULL);
    s = rill_filter(s, NULL, name_filter, NULL);
    s = rill_flat_map(s, NULL, name_flat, NULL);
    cr_assert_not_null(rill_sink(s, NULL, name_sink, NULL));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_str_eq(seen.source, "source");
    cr_assert_str_eq(seen.generator, "generator");
    cr_assert_str_eq(seen.map, "map");
    cr_assert_str_eq(seen.filter, "filter");
    cr_assert_str_eq(seen.flat_map, "flat_map");
    cr_assert_str_eq(seen.sink, "sink");
    rill_env_free(env);
}

Test(names, given_names_are_copied)
{
    rill_env *env = new_env(1);
    char name[16];
    strcpy(name, "given");
    rill_stream *g = rill_generator(env, "gen", 2, name_gen, NULL);
    rill_stream *m = rill_map(g, name, name_map, NULL);
    strcpy(name, "changed");
    cr_assert_not_null(rill_sink(m, NULL, name_sink, NULL));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_str_eq(seen.map, "given");
    rill_env_free(env);
}

Test(names, default_name_reported_by_a_failing_operator)
{
    rill_env *env = new_env(1);
    rill_stream *g = rill_generator(env, "gen", 2, gen_fn, NULL);
    rill_stream *m = rill_map(g, NULL, failing_map, NULL);
    cr_assert_not_null(rill_sink(m, "out", sink_fn, NULL));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_job_wait(job), RILL_EUSER);
    cr_assert_not_null(rill_job_failed_operator(job));
    cr_assert_str_eq(rill_job_failed_operator(job), "map");
    rill_job_free(job);
    rill_env_free(env);
}

/* Build a graph where kind creates one operator with its default name on
 * the path to the sink; other gets uid. Returns the validate result. */
enum kind {
    K_SOURCE,
    K_FROM_ARRAY,
    K_FROM_RECORDS,
    K_GENERATOR,
    K_FILE_SOURCE,
    K_MAP,
    K_FILTER,
    K_FLAT_MAP,
    K_DECLARED,
    K_SINK,
    K_PRINT,
    K_FILE_SINK
};

static int validate_with_uid(enum kind k, const char *uid)
{
    rill_env *env = new_env(1);
    const int arr[1] = {1};
    const rill_record recs[1] = {{"r", 1, 0}};
    rill_stream *src;
    switch (k) {
    case K_SOURCE: src = rill_source(env, NULL, src_fn, NULL); break;
    case K_FROM_ARRAY: src = rill_from_array(env, NULL, arr, sizeof(int), 1); break;
    case K_FROM_RECORDS: src = rill_from_records(env, NULL, recs, 1); break;
    case K_FILE_SOURCE: src = rill_file_source(env, NULL, "/tmp/never-read"); break;
    default: src = rill_generator(env, k == K_GENERATOR ? NULL : "the-source", 1, gen_fn, NULL);
    }
    cr_assert_not_null(src);
    rill_stream *s = src;
    switch (k) {
    case K_MAP: s = rill_map(s, NULL, map_fn, NULL); break;
    case K_FILTER: s = rill_filter(s, NULL, filter_fn, NULL); break;
    case K_FLAT_MAP: s = rill_flat_map(s, NULL, map_fn, NULL); break;
    case K_DECLARED: {
        rill_stream *d = rill_stream_declare(env, NULL);
        cr_assert_eq(rill_stream_define(d, s), RILL_OK);
        s = d;
        break;
    }
    default: break;
    }
    /* The operator carrying the explicit uid. */
    rill_stream *other = rill_map(s, "other", map_fn, NULL);
    cr_assert_not_null(rill_stream_set_uid(other, uid));
    rill_stream *k_out;
    switch (k) {
    case K_PRINT: k_out = rill_sink_print(other, NULL, RILL_STDOUT, NULL, NULL); break;
    case K_FILE_SINK: k_out = rill_sink_file(other, NULL, "/tmp/never-written", NULL, NULL); break;
    case K_SINK: k_out = rill_sink(other, NULL, sink_fn, NULL); break;
    default: k_out = rill_sink(other, "the-sink", sink_fn, NULL);
    }
    cr_assert_not_null(k_out);
    int rc = rill_env_validate(env);
    if (rc != RILL_OK)
        assert_has(rill_env_errmsg(env), uid);
    rill_env_free(env);
    return rc;
}

static void expect_default_uid(enum kind k, const char *name)
{
    cr_assert_eq(validate_with_uid(k, name), RILL_EINVAL, "default uid of %s", name);
    char other[64];
    snprintf(other, sizeof other, "%s-x", name);
    cr_assert_eq(validate_with_uid(k, other), RILL_OK, "uid %s", other);
    cr_assert_eq(atomic_load(&user_calls), 0);
}

Test(names, default_uid_of_source) { expect_default_uid(K_SOURCE, "source"); }
Test(names, default_uid_of_from_array) { expect_default_uid(K_FROM_ARRAY, "from_array"); }
Test(names, default_uid_of_from_records) { expect_default_uid(K_FROM_RECORDS, "from_records"); }
Test(names, default_uid_of_generator) { expect_default_uid(K_GENERATOR, "generator"); }
Test(names, default_uid_of_file_source) { expect_default_uid(K_FILE_SOURCE, "file_source"); }
Test(names, default_uid_of_map) { expect_default_uid(K_MAP, "map"); }
Test(names, default_uid_of_filter) { expect_default_uid(K_FILTER, "filter"); }
Test(names, default_uid_of_flat_map) { expect_default_uid(K_FLAT_MAP, "flat_map"); }
Test(names, default_uid_of_declared) { expect_default_uid(K_DECLARED, "declared"); }
Test(names, default_uid_of_sink) { expect_default_uid(K_SINK, "sink"); }
Test(names, default_uid_of_print) { expect_default_uid(K_PRINT, "print"); }
Test(names, default_uid_of_file_sink) { expect_default_uid(K_FILE_SINK, "file_sink"); }

/* Three unnamed maps in a row: uids "map", "map#2", "map#3"; a filter
 * given uid u clashes exactly with those. */
static int three_maps_and_uid(const char *uid)
{
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 1, gen_fn, NULL);
    for (int i = 0; i < 3; i++)
        s = rill_map(s, NULL, map_fn, NULL);
    s = rill_stream_set_uid(rill_filter(s, "f", filter_fn, NULL), uid);
    cr_assert_not_null(rill_sink(s, "out", sink_fn, NULL));
    int rc = rill_env_validate(env);
    if (rc != RILL_OK)
        assert_has(rill_env_errmsg(env), uid);
    rill_env_free(env);
    return rc;
}

Test(names, shared_names_get_numbered_uids)
{
    cr_assert_eq(three_maps_and_uid("map"), RILL_EINVAL);
    cr_assert_eq(three_maps_and_uid("map#2"), RILL_EINVAL);
    cr_assert_eq(three_maps_and_uid("map#3"), RILL_EINVAL);
    cr_assert_eq(three_maps_and_uid("map#4"), RILL_OK, "only three maps");
    cr_assert_eq(three_maps_and_uid("map#1"), RILL_OK, "the first map is \"map\"");
}

Test(names, same_given_name_gets_numbered_uids)
{
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 1, gen_fn, NULL);
    s = rill_map(s, "double", map_fn, NULL);
    s = rill_map(s, "double", map_fn, NULL);
    s = rill_stream_set_uid(rill_filter(s, "f", filter_fn, NULL), "double#2");
    cr_assert_not_null(rill_sink(s, "out", sink_fn, NULL));
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    assert_has(rill_env_errmsg(env), "double#2");
    rill_env_free(env);
}

Test(names, explicit_uid_replaces_the_default)
{
    /* The map's uid is "renamed", so the filter may take "map". */
    rill_env *env = new_env(1);
    rill_stream *s = rill_generator(env, "gen", 1, gen_fn, NULL);
    s = rill_stream_set_uid(rill_map(s, NULL, map_fn, NULL), "renamed");
    s = rill_stream_set_uid(rill_filter(s, NULL, filter_fn, NULL), "map");
    cr_assert_not_null(rill_sink(s, "out", sink_fn, NULL));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

/* ---- declared streams -------------------------------------------------- */

static int doubled(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return emit_int_affine(ctx, rec, len, 2, 0);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

Test(declared, declared_then_defined_graph_runs)
{
    rill_env *env = new_env(1);
    ints out = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};
    /* Use before definition: declared -> map -> sink, then define it. */
    rill_stream *d = rill_stream_declare(env, "numbers-in");
    cr_assert_not_null(d);
    rill_stream *m = rill_map(d, "double", doubled, NULL);
    cr_assert_not_null(rill_sink(m, "collect", keep_int, &out));
    const int arr[5] = {3, 1, 4, 1, 5};
    rill_stream *src = rill_from_array(env, "numbers", arr, sizeof(int), 5);
    cr_assert_eq(rill_stream_define(d, src), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(out.n, 5);
    const int want[5] = {6, 2, 8, 2, 10};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(out.v[i], want[i], "record %d: %d", i, out.v[i]);
    rill_env_free(env);
}

Test(declared, declared_defined_as_a_union)
{
    rill_env *env = new_env(1);
    ints out = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};
    rill_stream *d = rill_stream_declare(env, "merged");
    cr_assert_not_null(rill_sink(rill_map(d, "double", doubled, NULL), NULL, keep_int, &out));
    const int a[3] = {1, 2, 3}, b[2] = {10, 20};
    rill_stream *in[2] = {rill_from_array(env, "a", a, sizeof(int), 3),
                          rill_from_array(env, "b", b, sizeof(int), 2)};
    cr_assert_eq(rill_stream_define(d, rill_union(in, 2)), RILL_OK);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(out.n, 5);
    qsort(out.v, 5, sizeof(int), cmp_int);
    const int want[5] = {2, 4, 6, 20, 40};
    for (int i = 0; i < 5; i++)
        cr_assert_eq(out.v[i], want[i]);
    rill_env_free(env);
}

Test(declared, declared_feeding_two_consumers)
{
    rill_env *env = new_env(1);
    ints x = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};
    ints y = {PTHREAD_MUTEX_INITIALIZER, {0}, 0};
    rill_stream *d = rill_stream_declare(env, "shared");
    cr_assert_not_null(rill_sink(d, "raw", keep_int, &x));
    cr_assert_not_null(rill_sink(rill_map(d, "double", doubled, NULL), "twice", keep_int, &y));
    const int arr[3] = {7, 8, 9};
    cr_assert_eq(rill_stream_define(d, rill_from_array(env, NULL, arr, sizeof(int), 3)), RILL_OK);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(x.n, 3);
    cr_assert_eq(y.n, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(x.v[i], arr[i]);
        cr_assert_eq(y.v[i], 2 * arr[i]);
    }
    rill_env_free(env);
}

Test(declared, define_twice_is_einval)
{
    rill_env *env = new_env(1);
    rill_stream *d = rill_stream_declare(env, "once");
    const int arr[1] = {1};
    rill_stream *a = rill_from_array(env, "a", arr, sizeof(int), 1);
    rill_stream *b = rill_from_array(env, "b", arr, sizeof(int), 1);
    cr_assert_eq(rill_stream_define(d, a), RILL_OK);
    cr_assert_eq(rill_stream_define(d, b), RILL_EINVAL);
    cr_assert_eq(rill_stream_define(d, a), RILL_EINVAL);
    rill_env_free(env);
}

Test(declared, define_of_a_stream_not_declared_is_einval)
{
    rill_env *env = new_env(1);
    const int arr[1] = {1};
    rill_stream *a = rill_from_array(env, "a", arr, sizeof(int), 1);
    rill_stream *b = rill_from_array(env, "b", arr, sizeof(int), 1);
    cr_assert_eq(rill_stream_define(a, b), RILL_EINVAL);
    rill_stream *m = rill_map(a, "m", map_fn, NULL);
    cr_assert_eq(rill_stream_define(m, b), RILL_EINVAL);
    rill_env_free(env);
}

Test(declared, define_with_a_stream_of_another_environment_is_einval)
{
    rill_env *env = new_env(1);
    rill_env *other = new_env(1);
    const int arr[1] = {1};
    rill_stream *d = rill_stream_declare(env, "here");
    rill_stream *o = rill_from_array(other, "there", arr, sizeof(int), 1);
    cr_assert_not_null(o);
    cr_assert_eq(rill_stream_define(d, o), RILL_EINVAL);
    rill_env_free(other);
    rill_env_free(env);
}

Test(declared, define_with_null_is_einval)
{
    rill_env *env = new_env(1);
    const int arr[1] = {1};
    rill_stream *d = rill_stream_declare(env, "nothing");
    rill_stream *a = rill_from_array(env, "a", arr, sizeof(int), 1);
    cr_assert_eq(rill_stream_define(d, NULL), RILL_EINVAL);
    cr_assert_eq(rill_stream_define(NULL, a), RILL_EINVAL);
    rill_env_free(env);
}
