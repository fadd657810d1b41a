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
    return bench_pipeline("stateless_rebalance", argc, argv, 1);
}
