/*
 * keyed_count_spill.c - throughput of a keyed rolling count whose state
 * does not fit in the state cache, so most of it lives in LMDB.
 *
 *   keyed_count_spill [RECORDS]   (default 12 000 000)
 *
 * 16-byte records (8-byte key, 8-byte value 1) over 10 000 000 distinct
 * keys, each key in turn: the first 10 000 000 records each bring a new
 * key, the ones after come back to the oldest keys, long gone from the
 * cache (with fewer records than keys, only the first RECORDS keys
 * appear). The default keeps the whole run under about two minutes on two
 * cores. The job is generator -> key_by(key) ->
 * aggregate(SUM of the value) -> sink at the env's default parallelism,
 * with a state cache of 64 MiB per subtask: a few million keys per subtask
 * do not fit, and visiting them in turn misses the cache on every record.
 * The state directory is a fresh one under /tmp, removed at the end.
 *
 * The baseline is a plain C loop on one thread doing the same
 * read-modify-write directly on one LMDB environment (MDB_NOSYNC |
 * MDB_NOMETASYNC, key -> count): get the key's count, add the value, put
 * it back, hand (key, count) on; one write transaction per 10 000 records.
 * Its LMDB files are removed after. The user functions (make the record,
 * consume the result) are the same on both sides, never inlined, called
 * through volatile function pointers (bench/keyed_common.h). One run of
 * each. Prints one line:
 *
 *   bench keyed_count_spill rate=<records/s> baseline=<records/s> ratio=<rate/baseline>
 *
 * and exits 1 if rill's results differ from the baseline's (the sink's
 * order-independent checksum over every (key, count) it sees).
 */
#include "keyed_common.h"

#include <lmdb.h>

#define NAME "keyed_count_spill"
#define NUM_KEYS 10000000ull
#define CACHE_BYTES ((size_t)64 << 20)
#define BATCH 10000 /* baseline updates per write transaction */

/* mix64 is a bijection: NUM_KEYS distinct keys, visited in turn. */
__attribute__((noinline)) static void make_record(uint64_t i, keyed_rec *out)
{
    out->key = mix64(i % NUM_KEYS);
    out->value = 1;
}

/* ------------------------------------------------------------------------
 * Baseline: one thread, read-modify-write on one LMDB environment
 * ------------------------------------------------------------------------ */

static int lmdb_fail(const char *what, int rc)
{
    fprintf(stderr, "bench " NAME ": baseline: %s: %s\n", what, mdb_strerror(rc));
    return -1;
}

static int baseline(const char *dir, uint64_t n, tally *t)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    int rc;

    if ((rc = mdb_env_create(&env)) != 0)
        return lmdb_fail("mdb_env_create", rc);
    /* Room for 10 million small records and then some. */
    if ((rc = mdb_env_set_mapsize(env, (size_t)8 << 30)) != 0 ||
        (rc = mdb_env_open(env, dir, MDB_NOSYNC | MDB_NOMETASYNC, 0644)) != 0) {
        mdb_env_close(env);
        return lmdb_fail("mdb_env_open", rc);
    }
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
        goto fail;
    for (uint64_t i = 0; i < n; i++) {
        MDB_val k, v;
        keyed_rec r;
        int64_t sum;

        make_record_fp(i, &r);
        k.mv_size = sizeof r.key;
        k.mv_data = &r.key;
        rc = mdb_get(txn, dbi, &k, &v);
        if (rc == 0) {
            memcpy(&sum, v.mv_data, sizeof sum);
            sum += r.value;
        } else if (rc == MDB_NOTFOUND) {
            sum = r.value;
        } else {
            goto fail;
        }
        v.mv_size = sizeof sum;
        v.mv_data = &sum;
        if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
            goto fail;
        consume_fp(r.key, sum, t);
        if ((i + 1) % BATCH == 0) {
            rc = mdb_txn_commit(txn);
            txn = NULL;
            if (rc != 0 || (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
                goto fail;
        }
    }
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc != 0)
        goto fail;
    mdb_env_close(env);
    return 0;
fail:
    if (txn != NULL)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return lmdb_fail("read-modify-write", rc);
}

/* ------------------------------------------------------------------------
 * rill: the rolling count of keyed_common.h with a small state cache
 * ------------------------------------------------------------------------ */

static void build(rill_env *env, uint64_t n)
{
    rill_env_set_state_cache_size(env, CACHE_BYTES);
    keyed_count_job(env, n);
}

int main(int argc, char **argv)
{
    static const keyed_bench b = {.name = NAME, .default_n = 12000000ull, .rounds = 1,
                                  .verb = "consumed", .unit = "records", .baseline = baseline,
                                  .build = build};

    return keyed_main(&b, argc, argv);
}
