/*
 * keyed_timers.c - throughput of event-time timers in a keyed process
 * function: one timer registered per record, all of them fired.
 *
 *   keyed_timers [RECORDS]   (default 10 000 000)
 *
 * 16-byte records (8-byte key over 100 000 distinct keys, 8-byte event
 * time), one per millisecond of event time, in order. The job is
 * generator (parallelism 1) -> assign_timestamps (ascending, periodic
 * watermarks) -> key_by(key) -> process at the env's default parallelism
 * -> sink. The process function registers an event-time timer at the
 * record's time + 1 s (each (key, time) once, so every record makes a new
 * timer); the timer function counts the firing. Timers fire as the
 * watermarks advance; the rest at the end of input.
 *
 * The baseline is a plain C loop on one thread with a binary heap: for
 * each record, push (time + 1 s, key); every 200 ms of processing time
 * (rill's default watermark interval) pop and fire every timer at or
 * before the watermark (the largest time seen - 1); at the end pop the
 * rest. The user functions (make the record, the timer's time, the firing)
 * are the same on both sides, never inlined, called through volatile
 * function pointers (the firing is consume of bench/keyed_common.h, on the
 * timer's key and time). Best of 3 runs of each. Prints one line:
 *
 *   bench keyed_timers rate=<records/s> baseline=<records/s> ratio=<rate/baseline>
 *
 * and exits 1 unless both fired every timer exactly once (count and an
 * order-independent checksum of (key, time) of the firings).
 */
#include "keyed_common.h"

#define NAME "keyed_timers"
#define NUM_KEYS 100000ull
#define DELAY_MS 1000
#define WM_INTERVAL_MS 200 /* rill's default watermark interval */

__attribute__((noinline)) static void make_record(uint64_t i, keyed_rec *out)
{
    out->key = mix64(i % NUM_KEYS);
    out->ts = (int64_t)i;
}

__attribute__((noinline)) static int64_t timer_time(const keyed_rec *r)
{
    return r->ts + DELAY_MS;
}

static int64_t (*volatile timer_time_fp)(const keyed_rec *) = timer_time;

/* ------------------------------------------------------------------------
 * Baseline: one thread, a binary min-heap of (time, key)
 * ------------------------------------------------------------------------ */

typedef struct timer {
    int64_t ts;
    uint64_t key;
} timer;

typedef struct heap {
    timer *a;
    size_t n, cap;
} heap;

static int heap_push(heap *h, timer t)
{
    size_t i;

    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 1024;
        timer *a = realloc(h->a, cap * sizeof *a);

        if (a == NULL)
            return -1;
        h->a = a;
        h->cap = cap;
    }
    for (i = h->n++; i > 0; i = (i - 1) / 2) {
        size_t parent = (i - 1) / 2;

        if (h->a[parent].ts <= t.ts)
            break;
        h->a[i] = h->a[parent];
    }
    h->a[i] = t;
    return 0;
}

static timer heap_pop(heap *h)
{
    timer top = h->a[0], last = h->a[--h->n];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->a[c + 1].ts < h->a[c].ts)
            c++;
        if (last.ts <= h->a[c].ts)
            break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n > 0)
        h->a[i] = last;
    return top;
}

static int baseline(const char *dir, uint64_t n, tally *t)
{
    heap h = {NULL, 0, 0};
    int64_t max_ts = INT64_MIN;
    double now, next_wm = bench_now() + WM_INTERVAL_MS / 1000.0;

    (void)dir;
    for (uint64_t i = 0; i < n; i++) {
        keyed_rec r;

        make_record_fp(i, &r);
        if (heap_push(&h, (timer){timer_time_fp(&r), r.key}) != 0) {
            free(h.a);
            fprintf(stderr, "bench " NAME ": out of memory\n");
            return -1;
        }
        if (r.ts > max_ts)
            max_ts = r.ts;
        /* A watermark every WM_INTERVAL_MS, as rill's assigner makes them
         * (the clock is read every 256 records). */
        if ((i & 255) == 255 && (now = bench_now()) >= next_wm) {
            int64_t wm = max_ts - 1;

            next_wm = now + WM_INTERVAL_MS / 1000.0;
            while (h.n > 0 && h.a[0].ts <= wm) {
                timer x = heap_pop(&h);

                consume_fp(x.key, x.ts, t);
            }
        }
    }
    while (h.n > 0) {
        timer x = heap_pop(&h);

        consume_fp(x.key, x.ts, t);
    }
    free(h.a);
    return 0;
}

/* ------------------------------------------------------------------------
 * rill
 * ------------------------------------------------------------------------ */

static int gen(rill_ctx *ctx, uint64_t index, void *user_data)
{
    keyed_rec r;

    (void)user_data;
    make_record_fp(index, &r);
    return rill_emit_ts(ctx, &r, sizeof r, r.ts);
}

static int on_record(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    keyed_rec r;

    (void)len;
    (void)user_data;
    memcpy(&r, rec, sizeof r);
    return rill_timer_register(ctx, RILL_EVENT_TIME, timer_time_fp(&r));
}

static int on_timer(rill_ctx *ctx, int64_t ts, int domain, void *user_data)
{
    const void *key;
    size_t len;
    uint64_t k;
    int rc;

    (void)domain;
    (void)user_data;
    if ((rc = rill_ctx_key(ctx, &key, &len)) != RILL_OK)
        return rc;
    memcpy(&k, key, sizeof k);
    consume_fp(k, ts, rill_ctx_local(ctx));
    return 0;
}

/* The process function emits nothing: this sink is never called. */
static int discard(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    (void)ctx;
    (void)rec;
    (void)len;
    (void)user_data;
    return 0;
}

static void build(rill_env *env, uint64_t n)
{
    rill_stream *s;

    s = rill_generator(env, "generator", n, gen, NULL);
    s = rill_stream_set_parallelism(s, 1);
    s = rill_assign_timestamps(s, "timestamps", NULL, 0, NULL);
    s = rill_stream_set_parallelism(s, 1); /* chained to the generator */
    s = rill_key_by_bytes(s, offsetof(keyed_rec, key), sizeof(uint64_t));
    s = rill_process(s, "timers", on_record, on_timer, NULL);
    s = rill_stream_set_lifecycle(s, tally_open, tally_close);
    rill_sink(s, "sink", discard, NULL);
}

int main(int argc, char **argv)
{
    static const keyed_bench b = {.name = NAME, .default_n = 10000000ull, .rounds = BENCH_ROUNDS,
                                  .verb = "fired", .unit = "timers", .baseline = baseline,
                                  .build = build};

    return keyed_main(&b, argc, argv);
}
