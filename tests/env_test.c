/* env_test.c - environment settings (defaults, ranges, refusal while a job
 * runs), the allocator hook with an allocation-failure sweep, and the
 * logger hook.
 *
 * Callbacks only record what they see, under a mutex or in atomics; every
 * assertion runs on the test's thread.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rill.h"
#include "common.h"

/* generator(n) at parallelism 2 -> rebalance -> sink at parallelism 1. */
static void build_sum(rill_env *env, uint64_t n, sum_total *t)
{
    rill_stream *g = rill_stream_set_parallelism(rill_generator(env, "gen", n, gen_index, NULL), 2);
    cr_assert_not_null(g);
    rill_stream *k = rill_sink(rill_rebalance(g), "tally", total_sink, t);
    cr_assert_not_null(rill_stream_set_parallelism(k, 1));
}

static void expect_sum(sum_total *t, uint64_t n)
{
    cr_assert_eq(atomic_load(&t->count), n);
    cr_assert_eq(atomic_load(&t->sum), n * (n - 1) / 2);
}

/* ---- defaults --------------------------------------------------------- */

Test(env, default_parallelism_is_online_cpus)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cr_assert_gt(cpus, 0);
    cr_assert_eq(rill_env_get_parallelism(env), (int)cpus);
    rill_env_free(env);
}

Test(env, default_max_parallelism_is_128)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_get_max_parallelism(env), 128);
    rill_env_free(env);
}

Test(env, new_env_has_no_error_message)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_not_null(rill_env_errmsg(env));
    cr_assert_str_eq(rill_env_errmsg(env), "");
    rill_env_free(env);
}

Test(env, free_accepts_null)
{
    rill_env_free(NULL);
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    rill_env_free(env);
}

/* ---- ranges ----------------------------------------------------------- */

Test(env, parallelism_range)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_set_parallelism(env, 1), RILL_OK);
    cr_assert_eq(rill_env_get_parallelism(env), 1);
    cr_assert_eq(rill_env_set_parallelism(env, 32768), RILL_OK);
    cr_assert_eq(rill_env_get_parallelism(env), 32768);
    cr_assert_eq(rill_env_set_parallelism(env, 3), RILL_OK);
    const int bad[] = {0, -1, 32769, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(rill_env_set_parallelism(env, bad[i]), RILL_EINVAL, "parallelism %d",
                     bad[i]);
        cr_assert_eq(rill_env_get_parallelism(env), 3, "a refused value must not be kept");
        cr_assert_str_neq(rill_env_errmsg(env), "", "no message for parallelism %d", bad[i]);
    }
    rill_env_free(env);
}

Test(env, max_parallelism_range)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_set_max_parallelism(env, 1), RILL_OK);
    cr_assert_eq(rill_env_get_max_parallelism(env), 1);
    cr_assert_eq(rill_env_set_max_parallelism(env, 32768), RILL_OK);
    cr_assert_eq(rill_env_get_max_parallelism(env), 32768);
    cr_assert_eq(rill_env_set_max_parallelism(env, 64), RILL_OK);
    const int bad[] = {0, -1, 32769, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(rill_env_set_max_parallelism(env, bad[i]), RILL_EINVAL,
                     "max parallelism %d", bad[i]);
        cr_assert_eq(rill_env_get_max_parallelism(env), 64);
        cr_assert_str_neq(rill_env_errmsg(env), "");
    }
    rill_env_free(env);
}

Test(env, buffer_timeout_range)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    const int64_t good[] = {-1, 0, 1, 100, 60000, INT64_MAX};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(rill_env_set_buffer_timeout(env, good[i]), RILL_OK, "timeout %lld",
                     (long long)good[i]);
    const int64_t bad[] = {-2, -100, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(rill_env_set_buffer_timeout(env, bad[i]), RILL_EINVAL, "timeout %lld",
                     (long long)bad[i]);
        cr_assert_str_neq(rill_env_errmsg(env), "");
    }
    rill_env_free(env);
}

Test(env, buffer_size_range)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    const size_t good[] = {4096, 4097, 32768, (size_t)64 << 20};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(rill_env_set_buffer_size(env, good[i]), RILL_OK, "size %zu", good[i]);
    const size_t bad[] = {0, 1, 4095, ((size_t)64 << 20) + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(rill_env_set_buffer_size(env, bad[i]), RILL_EINVAL, "size %zu", bad[i]);
        cr_assert_str_neq(rill_env_errmsg(env), "");
    }
    rill_env_free(env);
}

Test(env, channel_capacity_range)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    const int good[] = {1, 2, 4, 1024};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(rill_env_set_channel_capacity(env, good[i]), RILL_OK, "capacity %d",
                     good[i]);
    const int bad[] = {0, -1, 1025, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(rill_env_set_channel_capacity(env, bad[i]), RILL_EINVAL, "capacity %d",
                     bad[i]);
        cr_assert_str_neq(rill_env_errmsg(env), "");
    }
    rill_env_free(env);
}

Test(env, state_dir_range)
{
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    cr_assert_eq(rill_env_set_state_dir(env, "some-dir"), RILL_OK);
    cr_assert_eq(rill_env_set_state_dir(env, "/tmp/a/b/c"), RILL_OK);
    cr_assert_eq(rill_env_set_state_dir(env, NULL), RILL_EINVAL);
    cr_assert_str_neq(rill_env_errmsg(env), "");
    cr_assert_eq(rill_env_set_state_dir(env, ""), RILL_EINVAL);
    cr_assert_str_neq(rill_env_errmsg(env), "");
    rill_env_free(env);
}

Test(env, setters_refuse_null_env)
{
    cr_assert_eq(rill_env_set_parallelism(NULL, 1), RILL_EINVAL);
    cr_assert_eq(rill_env_set_max_parallelism(NULL, 1), RILL_EINVAL);
    cr_assert_eq(rill_env_set_buffer_timeout(NULL, 0), RILL_EINVAL);
    cr_assert_eq(rill_env_set_buffer_size(NULL, 4096), RILL_EINVAL);
    cr_assert_eq(rill_env_set_channel_capacity(NULL, 1), RILL_EINVAL);
    cr_assert_eq(rill_env_set_state_dir(NULL, "x"), RILL_EINVAL);
}

/* A refused setting is reported by the setter only: it is not a building
 * mistake, so a valid graph still runs. */
Test(env, refused_setting_does_not_poison_the_graph)
{
    rill_env *env = new_env(2);
    cr_assert_eq(rill_env_set_parallelism(env, 0), RILL_EINVAL);
    cr_assert_eq(rill_env_set_buffer_size(env, 1), RILL_EINVAL);
    sum_total t = {0, 0};
    build_sum(env, 100, &t);
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    expect_sum(&t, 100);
    rill_env_free(env);
}

/* ---- settings take effect -------------------------------------------- */

typedef struct par_seen {
    pthread_mutex_t mu;
    int par; /* last rill_ctx_parallelism seen, -1 if it varied */
    int calls;
} par_seen;

static int note_parallelism(rill_ctx *ctx, uint64_t index, void *ud)
{
    par_seen *s = ud;
    pthread_mutex_lock(&s->mu);
    int p = rill_ctx_parallelism(ctx);
    if (s->calls == 0)
        s->par = p;
    else if (s->par != p)
        s->par = -1;
    s->calls++;
    pthread_mutex_unlock(&s->mu);
    return rill_emit(ctx, &index, sizeof index);
}

Test(env, parallelism_is_the_default_of_operators)
{
    rill_env *env = new_env(3);
    par_seen s = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
    sum_total t = {0, 0};
    rill_stream *g = rill_generator(env, NULL, 30, note_parallelism, &s);
    cr_assert_not_null(rill_sink(g, NULL, total_sink, &t));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_eq(s.calls, 30);
    cr_assert_eq(s.par, 3);
    expect_sum(&t, 30);
    rill_env_free(env);
}

Test(env, operator_parallelism_above_max_parallelism_is_refused)
{
    rill_env *env = new_env(2);
    cr_assert_eq(rill_env_set_max_parallelism(env, 4), RILL_OK);
    sum_total t = {0, 0};
    rill_stream *g = rill_generator(env, "wide-gen", 10, gen_index, NULL);
    rill_stream_set_parallelism(g, 5);
    rill_sink(rill_rebalance(g), NULL, total_sink, &t);
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    cr_assert(strstr(rill_env_errmsg(env), "parallelism"), "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EINVAL);
    cr_assert_eq(atomic_load(&t.count), 0);
    rill_env_free(env);
}

Test(env, env_parallelism_above_max_parallelism_is_refused)
{
    rill_env *env = new_env(8);
    cr_assert_eq(rill_env_set_max_parallelism(env, 4), RILL_OK);
    sum_total t = {0, 0};
    rill_stream *g = rill_generator(env, "gen", 10, gen_index, NULL);
    rill_sink(g, "all", total_sink, &t);
    cr_assert_eq(rill_env_validate(env), RILL_EINVAL);
    cr_assert(strstr(rill_env_errmsg(env), "parallelism"), "%s", rill_env_errmsg(env));
    cr_assert_eq(atomic_load(&t.count), 0);
    rill_env_free(env);
}

/* Each valid extreme of the network settings still delivers every record. */
static void run_with_settings(int64_t timeout, size_t size, int capacity)
{
    rill_env *env = new_env(2);
    cr_assert_eq(rill_env_set_buffer_timeout(env, timeout), RILL_OK);
    cr_assert_eq(rill_env_set_buffer_size(env, size), RILL_OK);
    cr_assert_eq(rill_env_set_channel_capacity(env, capacity), RILL_OK);
    sum_total t = {0, 0};
    build_sum(env, 20000, &t);
    int rc = rill_env_execute(env, "settings");
    cr_assert_eq(rc, RILL_OK, "timeout %lld size %zu capacity %d: %s", (long long)timeout, size,
                 capacity, rill_env_errmsg(env));
    expect_sum(&t, 20000);
    rill_env_free(env);
}

Test(env, buffer_timeout_zero_delivers_everything)
{
    run_with_settings(0, 32768, 4);
}

Test(env, buffer_timeout_minus_one_delivers_everything)
{
    run_with_settings(-1, 32768, 4);
}

Test(env, smallest_buffer_and_capacity_deliver_everything)
{
    run_with_settings(100, 4096, 1);
}

Test(env, largest_capacity_delivers_everything)
{
    run_with_settings(5, 65536, 1024);
}

/* ---- refusal while a job runs ---------------------------------------- */

typedef struct gate {
    atomic_int started;
    atomic_int release;
} gate;

/* Blocks in its first call until released, then stays idle until canceled. */
static int blocking_source(rill_ctx *ctx, void *ud)
{
    (void)ctx;
    gate *g = ud;
    atomic_store(&g->started, 1);
    while (!atomic_load(&g->release))
        sleep_ms(1);
    return RILL_SOURCE_IDLE;
}

static int drop_sink(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return 0;
}

static rill_job *start_blocked(rill_env *env, gate *g)
{
    rill_stream *s = rill_stream_set_parallelism(rill_source(env, "blocker", blocking_source, g), 1);
    cr_assert_not_null(rill_stream_set_parallelism(rill_sink(s, NULL, drop_sink, NULL), 1));
    rill_job *job = NULL;
    cr_assert_eq(rill_job_start(&job, env, "blocked"), RILL_OK, "%s", rill_env_errmsg(env));
    cr_assert_not_null(job);
    while (!atomic_load(&g->started))
        sleep_ms(1);
    return job;
}

static void stop_blocked(rill_job *job, gate *g)
{
    atomic_store(&g->release, 1);
    cr_assert_eq(rill_job_cancel(job), RILL_OK);
    cr_assert_eq(rill_job_wait(job), RILL_ECANCELED);
    cr_assert_eq(rill_job_status(job), RILL_JOB_CANCELED);
    rill_job_free(job);
}

Test(env, setters_return_estate_while_a_job_runs)
{
    rill_env *env = new_env(1);
    cr_assert_eq(rill_env_set_max_parallelism(env, 64), RILL_OK);
    gate g = {0, 0};
    rill_job *job = start_blocked(env, &g);

    cr_assert_eq(rill_env_set_parallelism(env, 2), RILL_ESTATE);
    cr_assert_eq(rill_env_set_max_parallelism(env, 32), RILL_ESTATE);
    cr_assert_eq(rill_env_set_buffer_timeout(env, 0), RILL_ESTATE);
    cr_assert_eq(rill_env_set_buffer_size(env, 8192), RILL_ESTATE);
    cr_assert_eq(rill_env_set_channel_capacity(env, 2), RILL_ESTATE);
    cr_assert_eq(rill_env_set_state_dir(env, "elsewhere"), RILL_ESTATE);
    cr_assert_eq(rill_env_get_parallelism(env), 1);
    cr_assert_eq(rill_env_get_max_parallelism(env), 64);
    cr_assert_eq(rill_job_status(job), RILL_JOB_RUNNING);

    stop_blocked(job, &g);
    rill_env_free(env);
}

/* ESTATE wins over EINVAL: the env is busy whatever the value. */
Test(env, out_of_range_setter_while_running_is_estate)
{
    rill_env *env = new_env(1);
    gate g = {0, 0};
    rill_job *job = start_blocked(env, &g);
    cr_assert_eq(rill_env_set_parallelism(env, 0), RILL_ESTATE);
    cr_assert_eq(rill_env_set_channel_capacity(env, 0), RILL_ESTATE);
    stop_blocked(job, &g);
    rill_env_free(env);
}

Test(env, setters_work_again_after_the_job_ended)
{
    rill_env *env = new_env(1);
    gate g = {0, 0};
    rill_job *job = start_blocked(env, &g);
    cr_assert_eq(rill_env_set_parallelism(env, 2), RILL_ESTATE);
    stop_blocked(job, &g);

    cr_assert_eq(rill_env_set_parallelism(env, 2), RILL_OK);
    cr_assert_eq(rill_env_get_parallelism(env), 2);
    cr_assert_eq(rill_env_set_max_parallelism(env, 32), RILL_OK);
    cr_assert_eq(rill_env_get_max_parallelism(env), 32);
    cr_assert_eq(rill_env_set_buffer_timeout(env, 0), RILL_OK);
    cr_assert_eq(rill_env_set_buffer_size(env, 8192), RILL_OK);
    cr_assert_eq(rill_env_set_channel_capacity(env, 2), RILL_OK);
    cr_assert_eq(rill_env_set_state_dir(env, "elsewhere"), RILL_OK);
    rill_env_free(env);
}

static int identity_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return rill_emit(ctx, rec, len);
}

Test(env, builder_refused_while_a_job_runs_is_not_kept)
{
    rill_env *env = new_env(1);
    gate g = {0, 0};
    /* Leads to no sink: not part of the job. */
    rill_stream *extra = rill_source(env, "extra", blocking_source, &g);
    cr_assert_not_null(extra);
    rill_job *job = start_blocked(env, &g);
    cr_assert_null(rill_map(extra, "m", identity_map, NULL));
    cr_assert_str_eq(rill_env_errmsg(env), "map: a job of this environment is running");
    cr_assert_null(rill_stream_set_parallelism(extra, 1));
    cr_assert_str_eq(rill_env_errmsg(env),
                     "rill_stream_set_parallelism: a job of this environment is running");
    cr_assert_null(rill_source(env, "late", blocking_source, &g));
    cr_assert_str_eq(rill_env_errmsg(env), "rill_source: a job of this environment is running");
    cr_assert_null(rill_harness_input(env, "in"));
    cr_assert_str_eq(rill_env_errmsg(env),
                     "rill_harness_input: a job of this environment is running");
    stop_blocked(job, &g);

    /* The job ended: the environment builds and validates as before. */
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_stream *m = rill_map(extra, "m", identity_map, NULL);
    cr_assert_not_null(m, "%s", rill_env_errmsg(env));
    cr_assert_not_null(rill_sink(m, "more", drop_sink, NULL), "%s", rill_env_errmsg(env));
    cr_assert_eq(rill_env_validate(env), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

Test(env, define_refused_while_a_job_runs_is_estate)
{
    rill_env *env = new_env(1);
    gate g = {0, 0};
    rill_stream *decl = rill_stream_declare(env, "loop");
    rill_stream *extra = rill_source(env, "extra", blocking_source, &g);
    rill_job *job = start_blocked(env, &g);
    cr_assert_eq(rill_stream_define(decl, extra), RILL_ESTATE);
    cr_assert_str_eq(rill_env_errmsg(env),
                     "rill_stream_define: a job of this environment is running");
    stop_blocked(job, &g);
    cr_assert_eq(rill_stream_define(decl, extra), RILL_OK, "%s", rill_env_errmsg(env));
    rill_env_free(env);
}

/* rill_env_validate / rill_job_start / rill_env_execute while a job runs. */
static int validate_call(rill_env *env) { return rill_env_validate(env); }

static int job_start_call(rill_env *env)
{
    rill_job *job = (rill_job *)1;
    int rc = rill_job_start(&job, env, "again");
    cr_assert_null(job);
    return rc;
}

static int execute_call(rill_env *env) { return rill_env_execute(env, "again"); }

Test(env, starting_while_a_job_runs_names_the_call_made)
{
    static const struct {
        int (*call)(rill_env *env);
        const char *message;
    } cases[] = {
        {validate_call, "rill_env_validate: a job of this environment is running"},
        {job_start_call, "rill_job_start: a job of this environment is running"},
        {execute_call, "rill_env_execute: a job of this environment is running"},
    };
    rill_env *env = new_env(1);
    gate g = {0, 0};
    rill_job *job = start_blocked(env, &g);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cr_assert_eq(cases[c].call(env), RILL_ESTATE, "%s", cases[c].message);
        cr_assert_str_eq(rill_env_errmsg(env), cases[c].message);
    }
    stop_blocked(job, &g);
    rill_env_free(env);
}

/* ---- allocator hook --------------------------------------------------- */

static atomic_long alloc_calls; /* allocation attempts (malloc, calloc, realloc) */
static atomic_long alloc_fail_at; /* the attempt that fails (1-based); 0: none */
static atomic_int alloc_injected; /* the failing attempt was reached */
static atomic_long alloc_live;    /* blocks handed out and not freed */
static atomic_long free_calls;

static int should_fail(void)
{
    long k = atomic_fetch_add(&alloc_calls, 1) + 1;
    if (k == atomic_load(&alloc_fail_at)) {
        atomic_store(&alloc_injected, 1);
        return 1;
    }
    return 0;
}

static void *count_malloc(size_t n)
{
    if (should_fail())
        return NULL;
    void *p = malloc(n);
    if (p)
        atomic_fetch_add(&alloc_live, 1);
    return p;
}

static void *count_calloc(size_t c, size_t n)
{
    if (should_fail())
        return NULL;
    void *p = calloc(c, n);
    if (p)
        atomic_fetch_add(&alloc_live, 1);
    return p;
}

static void *count_realloc(void *old, size_t n)
{
    if (should_fail())
        return NULL;
    void *p = realloc(old, n);
    if (p && !old)
        atomic_fetch_add(&alloc_live, 1);
    else if (!p && old && n == 0)
        atomic_fetch_sub(&alloc_live, 1);
    return p;
}

static void count_free(void *p)
{
    atomic_fetch_add(&free_calls, 1);
    if (p)
        atomic_fetch_sub(&alloc_live, 1);
    free(p);
}

static void install_counting(long fail_at)
{
    atomic_store(&alloc_calls, 0);
    atomic_store(&alloc_fail_at, fail_at);
    atomic_store(&alloc_injected, 0);
    atomic_store(&alloc_live, 0);
    atomic_store(&free_calls, 0);
    cr_assert_eq(rill_replace_allocator(count_malloc, count_realloc, count_calloc, count_free),
                 RILL_OK);
}

static void restore_allocator(void)
{
    cr_assert_eq(rill_replace_allocator(malloc, realloc, calloc, free), RILL_OK);
}

static void fini_restore(void)
{
    rill_replace_allocator(malloc, realloc, calloc, free);
}

Test(allocator, replace_refuses_null_functions)
{
    cr_assert_eq(rill_replace_allocator(NULL, realloc, calloc, free), RILL_EINVAL);
    cr_assert_eq(rill_replace_allocator(malloc, NULL, calloc, free), RILL_EINVAL);
    cr_assert_eq(rill_replace_allocator(malloc, realloc, NULL, free), RILL_EINVAL);
    cr_assert_eq(rill_replace_allocator(malloc, realloc, calloc, NULL), RILL_EINVAL);
    cr_assert_eq(rill_replace_allocator(NULL, NULL, NULL, NULL), RILL_EINVAL);
    /* The allocator in place still works. */
    rill_env *env = rill_env_new();
    cr_assert_not_null(env);
    rill_env_free(env);
}

Test(allocator, every_allocation_goes_through_the_hook, .fini = fini_restore)
{
    install_counting(0);
    rill_env *env = new_env(2);
    cr_assert_gt(atomic_load(&alloc_calls), 0, "rill_env_new did not use the allocator");
    sum_total t = {0, 0};
    build_sum(env, 1000, &t);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK, "%s", rill_env_errmsg(env));
    expect_sum(&t, 1000);
    rill_env_free(env);
    cr_assert_eq(atomic_load(&alloc_live), 0, "%ld blocks not freed", atomic_load(&alloc_live));
    cr_assert_gt(atomic_load(&free_calls), 0);
    restore_allocator();
}

/* The small job of the sweep: 8 ints -> map (+1) -> sink; the sink
 * (keep_int into an `ints`, common.h) keeps what it got (with the C
 * library's allocator, not rill's). */
static int plus_one(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ud;
    return emit_int_affine(ctx, rec, len, 1, 1);
}

static const int sweep_input[8] = {10, 20, 30, 40, 50, 60, 70, 80};

/* Was the output exactly the input + 1 (as a multiset: order may differ
 * across subtasks)? */
static int sweep_output_ok(const ints *g)
{
    if (g->n != 8)
        return 0;
    int seen[8] = {0};
    for (int i = 0; i < 8; i++) {
        int k = (g->v[i] - 11) / 10;
        if (k < 0 || k >= 8 || g->v[i] != sweep_input[k] + 1 || seen[k])
            return 0;
        seen[k] = 1;
    }
    return 1;
}

/* Build and run the sweep job; returns its result. parallel: map at
 * parallelism 2 behind a rebalance, sink at 1 (threads and channels);
 * otherwise one chained task. */
static int sweep_once(int parallel, ints *g)
{
    rill_env *env = rill_env_new();
    if (!env)
        return RILL_ENOMEM;
    cr_assert_eq(rill_env_set_parallelism(env, 1), RILL_OK);
    rill_stream *s = rill_from_array(env, NULL, sweep_input, sizeof(int), 8);
    if (parallel)
        s = rill_rebalance(s);
    s = rill_map(s, NULL, plus_one, NULL);
    if (parallel)
        s = rill_rebalance(rill_stream_set_parallelism(s, 2));
    s = rill_stream_set_parallelism(rill_sink(s, NULL, keep_int, g), 1);
    int rc;
    if (!s) {
        /* A builder failed: the kept error is RILL_ENOMEM. */
        rc = rill_env_validate(env);
        cr_assert_eq(rc, RILL_ENOMEM, "builder returned NULL; validate gives %s (%s)",
                     rill_err_name(rc), rill_env_errmsg(env));
        cr_assert_str_neq(rill_env_errmsg(env), "");
        int rc2 = rill_env_execute(env, "sweep");
        cr_assert_eq(rc2, RILL_ENOMEM, "execute gives %s", rill_err_name(rc2));
    } else {
        rc = rill_env_execute(env, "sweep");
        if (rc != RILL_OK)
            cr_assert_str_neq(rill_env_errmsg(env), "", "failure without a message");
    }
    rill_env_free(env);
    return rc;
}

static void sweep(int parallel)
{
    int done = 0;
    long n;
    for (n = 1; n <= 100000 && !done; n++) {
        ints g;
        memset(&g, 0, sizeof g);
        pthread_mutex_init(&g.mu, NULL);
        install_counting(n);
        int rc = sweep_once(parallel, &g);
        int injected = atomic_load(&alloc_injected);
        long live = atomic_load(&alloc_live);
        restore_allocator();
        cr_assert_eq(live, 0, "N=%ld: %ld blocks leaked (result %s)", n, live, rill_err_name(rc));
        if (!injected) {
            cr_assert_eq(rc, RILL_OK, "N=%ld: no allocation failed but the job gives %s", n,
                         rill_err_name(rc));
            cr_assert(sweep_output_ok(&g), "N=%ld: wrong output (%d records)", n, g.n);
            done = 1;
        } else if (rc == RILL_OK) {
            /* A failed allocation the library could do without: the
             * result must still be exact. */
            cr_assert(sweep_output_ok(&g), "N=%ld: job succeeded with wrong output (%d records)",
                      n, g.n);
        } else {
            cr_assert_eq(rc, RILL_ENOMEM, "N=%ld: failed allocation gives %s, not RILL_ENOMEM",
                         n, rill_err_name(rc));
        }
        pthread_mutex_destroy(&g.mu);
    }
    cr_assert(done, "the sweep did not reach a run without failure");
    cr_assert_gt(n, 3, "the job made almost no allocation");
}

Test(allocator, failing_each_allocation_of_a_chained_job_gives_enomem, .fini = fini_restore)
{
    sweep(0);
}

Test(allocator, failing_each_allocation_of_a_parallel_job_gives_enomem, .fini = fini_restore)
{
    sweep(1);
}

/* ---- logger hook ------------------------------------------------------ */

typedef struct logbook {
    pthread_mutex_t mu;
    int n;
    int max_level_seen;
    int bad; /* NULL message or level outside 0..3 */
} logbook;

static void log_into(int level, const char *msg, void *ud)
{
    logbook *b = ud;
    pthread_mutex_lock(&b->mu);
    b->n++;
    if (level > b->max_level_seen)
        b->max_level_seen = level;
    if (!msg || level < RILL_LOG_ERROR || level > RILL_LOG_DEBUG)
        b->bad++;
    pthread_mutex_unlock(&b->mu);
}

static void unset_logger(void)
{
    rill_set_logger(NULL, RILL_LOG_ERROR, NULL);
}

static int failing_map(rill_ctx *ctx, const void *rec, size_t len, void *ud)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)ud;
    return -5;
}

/* A job that fails (a map returns -5). */
static void run_failing_job(void)
{
    rill_env *env = new_env(1);
    const int v[3] = {1, 2, 3};
    rill_stream *s = rill_map(rill_from_array(env, NULL, v, sizeof(int), 3), "bad-map",
                              failing_map, NULL);
    rill_sink(s, NULL, drop_sink, NULL);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_EUSER);
    rill_env_free(env);
}

Test(logger, set_and_unset, .fini = unset_logger)
{
    logbook b = {PTHREAD_MUTEX_INITIALIZER, 0, -1, 0};
    cr_assert_eq(rill_set_logger(log_into, RILL_LOG_ERROR, &b), RILL_OK);
    cr_assert_eq(rill_set_logger(log_into, RILL_LOG_WARN, &b), RILL_OK);
    cr_assert_eq(rill_set_logger(log_into, RILL_LOG_INFO, &b), RILL_OK);
    cr_assert_eq(rill_set_logger(log_into, RILL_LOG_DEBUG, &b), RILL_OK);
    cr_assert_eq(rill_set_logger(NULL, RILL_LOG_ERROR, NULL), RILL_OK);
}

Test(logger, unknown_level_is_refused, .fini = unset_logger)
{
    logbook b = {PTHREAD_MUTEX_INITIALIZER, 0, -1, 0};
    cr_assert_eq(rill_set_logger(log_into, -1, &b), RILL_EINVAL);
    cr_assert_eq(rill_set_logger(log_into, 4, &b), RILL_EINVAL);
    cr_assert_eq(rill_set_logger(log_into, 100, &b), RILL_EINVAL);
    cr_assert_eq(rill_set_logger(log_into, INT32_MIN, &b), RILL_EINVAL);
}

Test(logger, messages_respect_the_level, .fini = unset_logger)
{
    logbook b = {PTHREAD_MUTEX_INITIALIZER, 0, -1, 0};
    cr_assert_eq(rill_set_logger(log_into, RILL_LOG_ERROR, &b), RILL_OK);
    run_failing_job();
    sum_total t = {0, 0};
    rill_env *env = new_env(2);
    build_sum(env, 100, &t);
    cr_assert_eq(rill_env_execute(env, NULL), RILL_OK);
    rill_env_free(env);
    unset_logger();
    cr_assert_eq(b.bad, 0);
    cr_assert_leq(b.max_level_seen, RILL_LOG_ERROR, "a level %d message passed a level 0 logger",
                  b.max_level_seen);
}

Test(logger, well_formed_messages_at_debug, .fini = unset_logger)
{
    logbook b = {PTHREAD_MUTEX_INITIALIZER, 0, -1, 0};
    cr_assert_eq(rill_set_logger(log_into, RILL_LOG_DEBUG, &b), RILL_OK);
    run_failing_job();
    unset_logger();
    cr_assert_eq(b.bad, 0);
    cr_assert_leq(b.max_level_seen, RILL_LOG_DEBUG);
}

Test(logger, removed_logger_is_not_called, .fini = unset_logger)
{
    logbook b = {PTHREAD_MUTEX_INITIALIZER, 0, -1, 0};
    cr_assert_eq(rill_set_logger(log_into, RILL_LOG_DEBUG, &b), RILL_OK);
    cr_assert_eq(rill_set_logger(NULL, RILL_LOG_DEBUG, NULL), RILL_OK);
    run_failing_job();
    cr_assert_eq(b.n, 0);
}

/* A logger replaced by another: only the new one is called afterwards. */
Test(logger, replaced_logger_is_not_called, .fini = unset_logger)
{
    logbook old = {PTHREAD_MUTEX_INITIALIZER, 0, -1, 0};
    logbook cur = {PTHREAD_MUTEX_INITIALIZER, 0, -1, 0};
    cr_assert_eq(rill_set_logger(log_into, RILL_LOG_DEBUG, &old), RILL_OK);
    cr_assert_eq(rill_set_logger(log_into, RILL_LOG_DEBUG, &cur), RILL_OK);
    run_failing_job();
    unset_logger();
    cr_assert_eq(old.n, 0);
    cr_assert_eq(cur.bad, 0);
}
