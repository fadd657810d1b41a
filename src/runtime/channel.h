/* channel.h - bounded channels of record buffers between subtasks.
 *
 * A channel joins one producer subtask to one consumer subtask and carries
 * events in order: full (or flushed) record buffers and end-of-input. Each
 * consumer subtask has one input gate holding all its channels; the gate's
 * mutex guards every channel's queue and free list. A producer whose channel
 * already queues `capacity` buffers blocks until the consumer takes one:
 * that is backpressure. Buffers are recycled through the channel's free list,
 * so a channel never holds more than capacity + 2 buffers.
 */
#ifndef RILL_RUNTIME_CHANNEL_H
#define RILL_RUNTIME_CHANNEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* A buffer of records. Each record is a header (length, timestamp)
 * followed by its bytes, padded so that every record starts 8-aligned. */
typedef struct rill__buf {
    struct rill__buf *next; /* free list link */
    size_t cap;             /* bytes of data */
    size_t used;
    size_t nrec;
} rill__buf;

typedef struct rill__rechdr {
    uint32_t len;
    uint32_t reserved; /* kind: data, or a marker (task.h RILL__MARK_*) */
    int64_t ts;
} rill__rechdr;

#define RILL__BUF_DATA(b) ((char *)((b) + 1))
#define RILL__REC_ALIGN(n) (((n) + 7u) & ~(size_t)7u)
#define RILL__REC_SPACE(len) (sizeof(rill__rechdr) + RILL__REC_ALIGN(len))

typedef enum rill__ev_kind {
    RILL__EV_DATA = 1,
    RILL__EV_END = 2,
    RILL__EV_BARRIER = 3 /* checkpoint barrier id */
} rill__ev_kind;

typedef struct rill__event {
    int kind;
    rill__buf *buf; /* DATA */
    int64_t id;     /* BARRIER */
} rill__event;

typedef struct rill__gate rill__gate;

typedef struct rill__chan {
    rill__gate *gate;
    int input; /* which input edge of the consumer it belongs to */
    int idx;   /* position in the gate */
    /* Guarded by gate->mu. */
    rill__event *ring;
    int ring_cap, head, count, data_count;
    int producer_waiting;
    int blocked; /* held back by barrier alignment: the consumer skips it */
    pthread_cond_t cv_space;
    rill__buf *free_bufs;
    /* Producer side only. */
    rill__buf *cur;
    int64_t deadline; /* when cur must be sent (INT64_MAX: not pending) */
} rill__chan;

struct rill__gate {
    pthread_mutex_t mu;
    pthread_cond_t cv_data;
    rill__chan **ch;
    int n_ch, cap_ch;
    int rr;
    int pending; /* events queued over all channels that are not blocked */
    int consumer_waiting;
    int n_ended; /* consumer side only */
    size_t buf_size;
    int capacity;
    int unbounded; /* harness: a full channel grows instead of blocking */
    int poked;     /* wake the consumer without an event (rill__gate_poke) */
    const atomic_int *stopping;
};

/* A gate (no channels yet). NULL when out of memory. */
rill__gate *rill__gate_new(size_t buf_size, int capacity, const atomic_int *stopping);
void rill__gate_free(rill__gate *g);
/* A new channel into g for consumer input edge `input`. NULL on ENOMEM. */
rill__chan *rill__gate_add_channel(rill__gate *g, int input);

/* Producer: send a buffer (DATA) or END. Blocks while the channel is full.
 * On DATA, *spare may receive a recycled buffer (or NULL). RILL_OK, or
 * RILL_ECANCELED when the job is stopping (the buffer is then kept by the
 * channel and freed with it). */
int rill__chan_send(rill__chan *c, rill__event ev, rill__buf **spare);
/* A buffer able to hold need bytes (recycled when standard size). */
rill__buf *rill__buf_new(size_t cap);

/* Consumer: take the next event, round-robin over channels. Gives back
 * `recycle` (a buffer taken earlier from channel `from_ch`) first. Waits
 * until an event arrives, the job stops (RILL_ECANCELED) or the monotonic
 * time deadline_ms passes (returns 0). Returns 1 with *ev and *from set. */
int rill__gate_next(rill__gate *g, rill__event *ev, rill__chan **from, int64_t deadline_ms,
                    rill__buf *recycle, rill__chan *recycle_ch);
/* Consumer: hold channel c back (barrier alignment) / release every
 * channel. */
void rill__gate_block(rill__gate *g, rill__chan *c);
void rill__gate_unblock_all(rill__gate *g);

/* Make the consumer's rill__gate_next return 0 soon (something to do). */
void rill__gate_poke(rill__gate *g);

/* Wake every thread waiting on g (used when the job stops). */
void rill__gate_wake(rill__gate *g);

#endif
