/*
 * stateless_rebalance.c - throughput across a thread boundary.
 *
 *   stateless_rebalance [RECORDS]   (default 50 000 000)
 *
 * generator -> map -> filter (parallelism 1, chained in one thread)
 * -> rill_rebalance -> sink (parallelism 1, its own thread): every record
 * kept by the filter crosses a channel between two threads. The baseline
 * does the same work (bench/common.h) in a plain C loop on one thread.
 * Prints one line:
 *
 *   bench stateless_rebalance rate=<records/s> baseline=<records/s> ratio=<rate/baseline>
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
        fprintf(stderr, "bench stateless_rebalance: out of memory\n");
        return 1;
    }
    rill_env_set_parallelism(env, 1);
    s = rill_generator(env, "generator", n, bench_gen, NULL);
    s = rill_map(s, "map", bench_map, NULL);
    s = rill_filter(s, "filter", bench_filter, NULL);
    s = rill_rebalance(s);
    rill_sink(s, "sink", bench_sink, NULL);
    if (rill_env_validate(env) != RILL_OK) {
        fprintf(stderr, "bench stateless_rebalance: %s\n", rill_env_errmsg(env));
        rill_env_free(env);
        return 1;
    }
    status = bench_run("stateless_rebalance", env, n);
    rill_env_free(env);
    return status;
}
