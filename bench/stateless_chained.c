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
    return bench_pipeline("stateless_chained", argc, argv, 0);
}
