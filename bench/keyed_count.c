/*
 * keyed_count.c - throughput of a keyed rolling count held in rill's keyed
 * state (everything fits in the state cache).
 *
 *   keyed_count [RECORDS]   (default 10 000 000)
 *
 * 16-byte records (8-byte key, 8-byte value 1) over 1 000 000 distinct
 * keys, each key in turn, so every key comes back RECORDS / 1 000 000
 * times. The job is generator -> key_by(key) -> aggregate(SUM of the
 * value) -> sink at the env's default parallelism; the sink sees, per
 * record, the key and its running count.
 *
 * The baseline is a plain C loop on one thread doing the same with an
 * in-memory hash table (open addressing, XXH3 of the key): for each
 * record, add the value to the key's count and hand (key, count) on. The
 * user functions (make the record, consume the result) are the same on
 * both sides, never inlined, called through volatile function pointers
 * (bench/keyed_common.h). Best of 3 runs of each. Prints one line:
 *
 *   bench keyed_count rate=<records/s> baseline=<records/s> ratio=<rate/baseline>
 *
 * and exits 1 if rill's results differ from the baseline's (the sink's
 * order-independent checksum over every (key, count) it sees).
 */
#include "keyed_common.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#define NAME "keyed_count"
#define NUM_KEYS 1000000ull

/* mix64 is a bijection: NUM_KEYS distinct keys, visited in turn. */
__attribute__((noinline)) static void make_record(uint64_t i, keyed_rec *out)
{
    out->key = mix64(i % NUM_KEYS);
    out->value = 1;
}

/* ------------------------------------------------------------------------
 * Baseline: one thread, open addressing, linear probing
 * ------------------------------------------------------------------------ */

typedef struct slot {
    uint64_t h; /* 0: empty */
    uint64_t key;
    int64_t sum;
} slot;

static int baseline(const char *dir, uint64_t n, tally *t)
{
    size_t cap = 1;
    slot *tab;

    (void)dir;
    while (cap < 2 * NUM_KEYS)
        cap <<= 1;
    tab = calloc(cap, sizeof *tab);
    if (tab == NULL) {
        fprintf(stderr, "bench " NAME ": out of memory\n");
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        keyed_rec r;
        uint64_t h;
        size_t k;

        make_record_fp(i, &r);
        h = XXH3_64bits(&r.key, sizeof r.key);
        h += h == 0;
        for (k = (size_t)h & (cap - 1);; k = (k + 1) & (cap - 1)) {
            if (tab[k].h == 0) {
                /* The key's first record, as it is. */
                tab[k].h = h;
                tab[k].key = r.key;
                tab[k].sum = r.value;
                break;
            }
            if (tab[k].h == h && tab[k].key == r.key) {
                tab[k].sum += r.value;
                break;
            }
        }
        consume_fp(r.key, tab[k].sum, t);
    }
    free(tab);
    return 0;
}

int main(int argc, char **argv)
{
    static const keyed_bench b = {.name = NAME, .default_n = 10000000ull, .rounds = BENCH_ROUNDS,
                                  .verb = "consumed", .unit = "records", .baseline = baseline,
                                  .build = keyed_count_job};

    return keyed_main(&b, argc, argv);
}
