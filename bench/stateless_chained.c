/*
 * stateless_chained.c - throughput of a chained stateless pipeline.
 *
 *   stateless_chained [RECORDS]   (default 50 000 000)
 *
 * generator -> map -> filter -> sink, parallelism 1 everywhere, so rill
 * chains all four operators into one thread and passes records by plain
 * calls. The baseline does the same work (bench/common.h) in a plain C
 * loop. Prints one line:
 *
 *   bench stateless_chained rate=<records/s> baseline=<records/s> ratio=<rate/baseline>
 *
 * and exits 1 if rill's result differs from the baseline's.
 */
#include "common.h"

int main(int argc, char **argv)
{
    uint64_t n = bench_parse_n(argc, argv);
    rill_env *env = rill_env_new();
    rill_stream *s;
    int status;

    if (env == NULL) {
        fprintf(stderr, "bench stateless_chained: out of memory\n");
        return 1;
    }
    rill_env_set_parallelism(env, 1);
    s = rill_generator(env, "generator", n, bench_gen, NULL);
    s = rill_map(s, "map", bench_map, NULL);
    s = rill_filter(s, "filter", bench_filter, NULL);
    rill_sink(s, "sink", bench_sink, NULL);
    if (rill_env_validate(env) != RILL_OK) {
        fprintf(stderr, "bench stateless_chained: %s\n", rill_env_errmsg(env));
        rill_env_free(env);
        return 1;
    }
    status = bench_run("stateless_chained", env, n);
    rill_env_free(env);
    return status;
}
