/* task.h - operator instances, subtasks and jobs at run time.
 *
 * A job runs tasks; a task is a chain of operators (a head and the operators
 * chained to it) and runs as `parallelism` subtasks, one thread each. An
 * operator instance is the rill_ctx handed to its user callbacks; its outputs
 * are either chained instances (plain calls) or network outputs (channels).
 */
#ifndef RILL_RUNTIME_TASK_H
#define RILL_RUNTIME_TASK_H

#include <pthread.h>
#include <stdatomic.h>

#include "graph/node.h"
#include "runtime/channel.h"
#include "util/error.h"

typedef struct rill__subtask rill__subtask;
typedef struct rill_job rill__job;
typedef struct rill__stopper rill__stopper;

/* What an operator kind provides to the runtime. */
typedef struct rill__opdef {
    const char *default_name;
    int is_source;
    int is_sink;
    /* Set up the instance before the user's open hook (may be NULL). */
    int (*open)(rill_ctx *op);
    /* One input record; the timestamp is op->h.ts. Non-sources only. */
    int (*process)(rill_ctx *op, const void *rec, size_t len);
    /* The same for a record from a chained predecessor (h.entry), when
     * cheaper than process; the last argument is unused. May be NULL. */
    rill__entry_fn entry;
    /* The entry passes records on by rill__forward_tail. */
    int tails;
    /* Sources: produce some records; RILL_SOURCE_MORE/END/IDLE or < 0. */
    int (*step)(rill_ctx *op);
    /* Sources that read a descriptor: the one to wait on for input after
     * step returned RILL_SOURCE_IDLE, or -1 for a short pause. May be NULL
     * (a short pause). */
    int (*wait_fd)(rill_ctx *op);
    /* Write out what the operator holds back for its output (a sink's
     * stdio buffer): called after each input buffer of its subtask and
     * when the subtask's source has nothing now (RILL_SOURCE_IDLE). May be
     * NULL. */
    int (*flush)(rill_ctx *op);
    /* Tear down after the user's close hook; ok is 0 when the job is
     * failing or stopping (then nothing may be emitted). May be NULL. */
    int (*close)(rill_ctx *op, int ok);
    /* The operator's input watermark advanced to wm (> op->wm). NULL: the
     * default, rill__op_watermark_default (record it and forward it). */
    int (*on_watermark)(rill_ctx *op, int64_t wm);
    /* Periodic work at processing time now (timers, periodic watermarks,
     * idleness); sets op->wake_at to when it wants to run next (INT64_MAX:
     * never). Called when now >= op->wake_at. May be NULL. */
    int (*on_tick)(rill_ctx *op, int64_t now);
    /* Replayable sources: the position of the next record, and going back
     * to a position taken earlier (restore). May be NULL. */
    int (*position)(rill_ctx *op, uint64_t *pos);
    int (*seek)(rill_ctx *op, uint64_t pos);
    /* Checkpoints: taken (before the state is written) and completed. */
    int (*on_checkpoint)(rill_ctx *op, int64_t id);
    int (*on_complete)(rill_ctx *op, int64_t id);
} rill__opdef;

/* Records of one operator instance to the subtasks of one consumer. */
typedef struct rill__netout {
    rill__part part;
    const char *op_name;
    int p_d;
    int max_parallelism;
    rill__chan **ch; /* by target: all downstream subtasks, or a local subset */
    int n_ch;
    uint64_t rr;
    uint64_t rng;
    rill__subtask *st;
    char *keybuf;
    size_t keycap;
} rill__netout;

typedef struct rill__out {
    rill_ctx *next;     /* chained operator, or NULL */
    rill__netout *net;  /* otherwise */
} rill__out;

/* What h.entry of a context is. */
#define RILL__ENTRY_OP 0   /* an operator's entry (or none) */
#define RILL__ENTRY_USER 1 /* a flat_map's or sink's user function */
#define RILL__ENTRY_MAP 2  /* a map's user function */

struct rill_ctx {
    /* First: what the inline rill_emit reads (rill.h). h.next is the single
     * chained successor when that is the only output; h.entry takes a
     * record there: the successor's user function itself (map, flat_map,
     * callback sink) or an operator's entry, as entry_kind says. */
    struct rill__ctx_head h;
    int entry_kind; /* RILL__ENTRY_* */
    const atomic_int *stopping;
    rill__userfn fn; /* the node's user function and user_data */
    void *ud;
    const rill__node *node;
    rill__subtask *st;
    int subtask;
    int parallelism;
    void *local;
    int opened;      /* the operator's own open succeeded */
    int user_opened; /* the user's open hook succeeded */
    int final_done;  /* a checkpoint covering its final snapshot completed */
    rill__out *out;
    size_t n_out;
    void *priv; /* operator's own state */
    char *user_err;

    /* Event time. */
    int64_t wm;          /* current watermark of the operator */
    int64_t wake_at;     /* processing time of the next on_tick (INT64_MAX: none) */
    int64_t maintain_at; /* processing time of the next background state work */
    int idle_out;        /* the operator told its outputs it is idle */
    uint64_t idle_seen;  /* emits at the last idleness check */
    int64_t idle_since;  /* processing time since when it emitted nothing */
    int input;           /* input slot of the record being processed */
    struct rill__wmtrack *track; /* input watermarks (head of a task, several inputs) */

    /* Keyed operators: the current key (borrowed from keybuf or a timer). */
    int keyed;
    const void *key;
    size_t key_len;
    uint16_t kg;
    const void *ns; /* state namespace (windows), NULL/0 otherwise */
    size_t ns_len;
    char *keybuf;
    size_t keycap;
    struct rill__timers *timers[2]; /* by domain */
    int bc_side;    /* inside the broadcast side's callback */

    void *capture; /* harness: records and watermarks reaching a sink are kept */

    /* State (state/state.h). */
    rill_state **states;
    size_t n_states;
    struct rill__kv *kv;

    /* Side outputs: tag -> outputs. */
    struct rill__side *side;
    size_t n_side;
};

typedef struct rill__side {
    const char *tag;
    rill__out *out;
    size_t n_out;
} rill__side;

struct rill__subtask {
    rill__job *job;
    int index;
    rill_ctx **ops; /* chain in topological order; ops[0] is the head */
    size_t n_ops;
    rill__gate *gate; /* NULL for a source task */
    rill__netout **outs;
    size_t n_outs;
    int64_t flush_at; /* earliest pending buffer deadline (monotonic ms) */
    int64_t tick_at;  /* earliest op->wake_at (processing time) */
    int flushes;      /* an operator of the chain has a flush (rill__opdef) */
    pthread_t thread;
    int started;
    rill__buf *held; /* buffer being consumed, given back to held_ch after */
    rill__chan *held_ch;
    /* Checkpoints (checkpoint.c). */
    int number;                /* position in job->subs */
    _Atomic int64_t barrier_req; /* sources: checkpoint the coordinator asks for */
    int64_t align_id;          /* checkpoint being aligned or last taken */
    int64_t notified;          /* last completed checkpoint told to the hooks */
    int aligning;
    int64_t *seen;             /* consumer: last barrier id per input channel */
    unsigned char *ended;      /* consumer: input channel ended */
};

struct rill_job {
    rill_env *env;
    rill__job *root; /* the first attempt (the rill_job handle), or itself */
    char *name;
    int64_t buffer_timeout;
    size_t buffer_size;
    int capacity;
    int max_parallelism;
    int64_t wm_interval;  /* periodic watermarks, ms */
    size_t cache_bytes;   /* keyed state cache per operator subtask */
    char *state_dir;      /* working state directory, NULL until made (statedir.c) */
    int state_fd;         /* holds it while the job lives */
    struct rill_harness *harness; /* set when a harness runs the job */
    int64_t clock;        /* processing time under a harness */

    rill__subtask **subs;
    size_t n_subs, cap_subs;
    rill_ctx **ctxs; /* every operator instance, for freeing */
    size_t n_ctxs, cap_ctxs;
    rill__gate **gates;
    size_t n_gates, cap_gates;

    atomic_int stopping;
    /* A pipe written when the job stops, for sources waiting on a
     * descriptor (when wake_pipe is set: a source may wait, and the pipe
     * could be made). */
    int wake_pipe;
    int wake_fd[2];
    struct rill__ckpt *ckpt; /* checkpointing, or NULL */
    struct rill__restore *restore; /* the snapshot the job starts from, or NULL */
    struct rill__restarter *rs;    /* restart strategy (first attempt only), or NULL */
    struct rill__stopper *stop;    /* stop requests (public jobs only), or NULL */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n_finished; /* subtasks that ended normally */
    int n_exited;   /* subtasks whose thread is done with the job */
    int result;
    int status;
    int joining, joined;
    char errmsg[RILL__ERRMSG_MAX];
    char *failed_op;
};

/* Fail the job (the first failure wins): stops every subtask. */
void rill__job_fail(rill__job *job, int code, const char *op_name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Report a user callback's non-zero result rc for operator op; returns
 * RILL_EUSER. what names the callback ("map function"). */
int rill__user_fail(rill_ctx *op, const char *what, int rc);
/* The calling thread runs a subtask of job from now on (NULL: no more). */
void rill__thread_job(const rill__job *job);
/* env refuses call (a static string naming it) because a job of env runs:
 * when the caller is a callback of that job, note it for the message of the
 * callback's failure and return 1; otherwise 0. */
int rill__refuse_from_callback(const rill_env *env, const char *call);

/* Is the job stopping? (cheap, for the record path) */
static inline int rill__stopping(const rill_ctx *op)
{
    return atomic_load_explicit(op->stopping, memory_order_relaxed);
}

/* Emit a record from op to its outputs: rill_emit_ts without the NULL
 * check; a chained successor takes it directly (rill.h). */
int rill__emit_slow(rill_ctx *op, const void *rec, size_t len, int64_t ts)
    __attribute__((noinline));
static inline int rill__emit(rill_ctx *op, const void *rec, size_t len, int64_t ts)
{
    return rill__emit_at(op, rec, len, ts);
}

/* rill__emit of a record the operator was given (so rec is not NULL, or
 * len is 0): the check is left out. */
static inline int rill__forward(rill_ctx *op, const void *rec, size_t len, int64_t ts)
{
    if (!rec && len)
        __builtin_unreachable();
    return rill__emit_at(op, rec, len, ts);
}

/* rill__forward, not inline. */
int rill__forward_call(rill_ctx *op, const void *rec, size_t len, int64_t ts);

/* rill__forward for an operator that passes on records it was given
 * (filter): to a successor that is a user function other than a map, the
 * record goes by a tail call, and a failure it returns comes back
 * unreported: rill__forward_failed reports it, and rill_emit_done does so
 * for a chained predecessor. There is no look at whether the job is
 * stopping: the emit or the channel the record came from looks often
 * enough, as it passes no more records than it was given. */
static inline int rill__forward_tail(rill_ctx *op, const void *rec, size_t len, int64_t ts)
{
    if (__builtin_expect(op->entry_kind == RILL__ENTRY_USER, 1)) {
        rill_ctx *nx = op->h.next;
        op->h.emits++;
        nx->h.ts = ts;
        return op->h.entry(nx, rec, len, op->h.entry_data);
    }
    return rill__forward_call(op, rec, len, ts);
}
int rill__forward_failed(rill_ctx *op, int rc);

/* The entry of a chained successor that is an operator (not a user
 * function): its process function. */
int rill__entry_process(rill_ctx *op, const void *rec, size_t len, void *unused);
/* Point every context with a single chained output at it (h.next, h.entry);
 * run again after the outputs or the harness captures changed. */
void rill__chain_link(rill_ctx *c);

/* Processing time of the operator's job: wall-clock ms since the epoch, or
 * the harness's clock. */
int64_t rill__proc_now(const rill_ctx *op);

/* Deliver a record to an operator instance. */
static inline int rill__deliver(rill_ctx *op, const void *rec, size_t len, int64_t ts);

/* Network outputs (netout.c). */
int rill__netout_push(rill__netout *o, const void *rec, size_t len, int64_t ts);
/* Kinds of records in a buffer (rill__rechdr.reserved). */
#define RILL__MARK_DATA 0u
#define RILL__MARK_WATERMARK 1u /* ts: the watermark */
#define RILL__MARK_IDLE 2u
#define RILL__MARK_ACTIVE 3u
/* Append a marker to every channel of o. */
int rill__netout_marker(rill__netout *o, unsigned kind, int64_t ts);

/* Event time (time.c). The operator's watermark advanced: run its
 * on_watermark (or the default). Ignored when not above op->wm. */
int rill__op_watermark(rill_ctx *op, int64_t wm);
/* Default on_watermark: record wm as op->wm and forward it. */
int rill__op_watermark_default(rill_ctx *op, int64_t wm);
/* Send wm to every output of op (main and side outputs). */
int rill__out_watermark(rill_ctx *op, int64_t wm);
/* Send the idle (idle != 0) or active status to every output of op. */
int rill__out_status(rill_ctx *op, int idle);
/* Ask for op's on_tick at processing time at (keeps the earlier). */
void rill__op_wake(rill_ctx *op, int64_t at);
/* Idleness of an operator with an idle timeout (sources, assigners), as
 * Flink's WatermarksWithIdleness: only records count, watermarks do not.
 * Start counting at processing time now (at open) and ask for the first
 * check. */
void rill__idle_start(rill_ctx *op, int64_t now);
/* Call from its tick: marks its outputs idle when more than the timeout
 * passed without an emit, and asks for the next check. */
int rill__idle_check(rill_ctx *op, int64_t now);
/* An idle operator emitted again: tell its outputs it is active. */
int rill__idle_resume(rill_ctx *op);
/* t + d for times, saturating at the int64 limits. */
static inline int64_t rill__time_add(int64_t t, int64_t d)
{
    if (d > 0 && t > INT64_MAX - d)
        return INT64_MAX;
    if (d < 0 && t < INT64_MIN - d)
        return INT64_MIN;
    return t + d;
}
/* Run on_tick of every operator of st that is due at processing time now. */
int rill__subtask_tick(rill__subtask *st, int64_t now);

/* Input watermarks of a task head with n inputs (channels, or edges under a
 * harness), as Flink's StatusWatermarkValve: the minimum over active inputs,
 * never going backwards. Only a record makes an idle input active (the
 * caller reports it with status 0 before the record); a watermark on an idle
 * input is kept without making it active. When every input is idle, the
 * highest watermark among them goes out before the idle status. */
typedef struct rill__wmtrack {
    int n;
    int n_idle;
    int64_t out; /* last watermark given to the operator */
    int64_t *wm;
    unsigned char *idle;
    unsigned char *aligned;
} rill__wmtrack;
rill__wmtrack *rill__wmtrack_new(int n);
void rill__wmtrack_free(rill__wmtrack *t);
/* Input i carried watermark wm / went idle / became active / ended. Each
 * passes what follows on to op (watermark, status). */
int rill__wmtrack_watermark(rill__wmtrack *t, rill_ctx *op, int i, int64_t wm);
int rill__wmtrack_status(rill__wmtrack *t, rill_ctx *op, int i, int idle);
int rill__wmtrack_end(rill__wmtrack *t, rill_ctx *op, int i);

/* Keyed operators: make a copy of key (key group kg) op's current key.
 * RILL_OK or RILL_ENOMEM. */
int rill__op_set_key(rill_ctx *op, const void *key, size_t len, uint16_t kg);
/* The key of record rec by pt into *key and *key_len: the record's bytes,
 * or the key function's output in *buf (capacity *cap, grown as needed up
 * to RILL_KEY_MAX). Failures fail job, naming operator op_name: the keyed
 * operator itself (after 0) or the one whose key_by it is (after 1). */
int rill__record_key_slow(rill__job *job, const char *op_name, int after, const rill__part *pt,
                          const void *rec, size_t len, char **buf, size_t *cap,
                          const void **key, size_t *key_len);
static inline int rill__record_key(rill__job *job, const char *op_name, int after,
                                   const rill__part *pt, const void *rec, size_t len, char **buf,
                                   size_t *cap, const void **key, size_t *key_len)
{
    if (!pt->key_fn && len >= pt->key_off + pt->key_len) {
        *key = (const char *)rec + pt->key_off;
        *key_len = pt->key_len;
        return RILL_OK;
    }
    return rill__record_key_slow(job, op_name, after, pt, rec, len, buf, cap, key, key_len);
}
/* Keyed operators: set op's current key from record rec of input edge e
 * (computing it with the edge's key function or bytes). */
int rill__op_key_from(rill_ctx *op, const rill__part *pt, const void *rec, size_t len);
/* Send every partly filled buffer whose deadline is <= now (INT64_MAX: all). */
int rill__subtask_flush(rill__subtask *st, int64_t now);
/* Send END on every output channel of the subtask. */
int rill__subtask_end_outputs(rill__subtask *st);

/* Subtask steps (job.c), also used by the harness: open the operators
 * (downstream first), handle one gate event, give back the held buffer,
 * close the operators (head first; ok 0 when failing or stopping). */
int rill__subtask_open(rill__subtask *st);
int rill__subtask_consume(rill__subtask *st, const rill__event *ev, rill__chan *from);
void rill__subtask_release(rill__subtask *st);
int rill__subtask_close(rill__subtask *st, int ok);

/* Harness (harness.c): keep a record / watermark reaching op->capture. */
int rill__capture(rill_ctx *op, const void *rec, size_t len);
int rill__capture_watermark(rill_ctx *op, int64_t wm);
/* Harness: a side output record of the operator under test that no stream
 * consumes. */
int rill__capture_side(rill_ctx *op, const char *tag, const void *rec, size_t len);

/* Checkpoints (checkpoint.c). Send barrier id on every output channel. */
int rill__subtask_barrier_out(rill__subtask *st, int64_t id);
/* A barrier from channel c reached consumer st (aligns, then snapshots). */
int rill__subtask_on_barrier(rill__subtask *st, rill__chan *c, int64_t id);
/* Input channel c of st ended (it counts as aligned). */
int rill__subtask_on_end(rill__subtask *st, rill__chan *c);
/* Run the on_complete hooks of st for a newly completed checkpoint. */
int rill__ckpt_notify(rill__subtask *st);
/* At the end of st's input, with periodic checkpoints: take st's final
 * snapshot (later checkpoints include it) and, when an operator has
 * checkpoint-complete hooks, wait until a checkpoint that includes it
 * completed (forwarding its barriers) and tell them. Then st closes as
 * usual. Without periodic checkpoints: nothing. */
int rill__ckpt_finish(rill__subtask *st);
/* With job->mu held, as st's thread exits. */
void rill__ckpt_exited(rill__subtask *st);
/* Sources: take the checkpoint the coordinator asks for, if any. */
int rill__source_barrier(rill__subtask *st);
/* The job is stopping: wake its coordinator and the subtasks waiting on
 * it. */
void rill__ckpt_wake(rill__job *job);
/* Start / stop the coordinator of a job with checkpointing. */
int rill__ckpt_start(rill__job *job);
void rill__ckpt_stop(rill__job *job);
void rill__ckpt_free(rill__job *job);
/* Take a savepoint of the job (the attempt that runs now) into dir and
 * wait for it; RILL_OK, or an error with a message in err
 * (RILL__ERRMSG_MAX bytes). */
int rill__ckpt_savepoint(rill__job *root, const char *dir, char *err);

/* Restore (restore.c): find and check the snapshot at path for job
 * (flags: RILL_RESTORE_*; with RILL_RESTORE_IF_EXISTS and none there,
 * RILL_OK and the job starts empty); give an operator subtask its state
 * or source position; the checkpoint id. */
int rill__restore_prepare(rill__job *job, const char *path, int flags, char *err);
int rill__restore_op(rill_ctx *op, char *err);
int64_t rill__restore_id(const rill__job *job);
void rill__restore_free(rill__job *job);

/* One attempt of a job (job.c); restart.c builds the public job API on
 * these. */
int rill__attempt_wait(rill__job *job);
int rill__attempt_cancel(rill__job *job);
int rill__attempt_status(const rill__job *job);
const char *rill__attempt_errmsg(const rill__job *job);
const char *rill__attempt_failed_operator(const rill__job *job);
/* The attempt that runs now (the job itself without restarts). */
rill__job *rill__current(const rill__job *job);
/* Start the restart supervisor of a launched job (restart.c). */
int rill__restart_start(rill__job *job);
void rill__restart_free(rill__job *job);

/* Stop requests (stop.c). Before the job's threads are launched: set up
 * its stop requests (RILL_ENOMEM); once the job is started: start the
 * thread that acts on them. */
int rill__stop_init(rill__job *job);
int rill__stop_start(rill__job *job);
/* The job ended: with job->mu held, as an attempt settles (the end of a
 * job without restart strategy); from the restart supervisor (the end of
 * one with). Requests are refused from then on. */
void rill__stop_settled(rill__job *job);
void rill__stop_ended(rill__job *job);
/* What the public calls report about a job whose own result is rc /
 * status / errmsg: a stop request that took a savepoint, or could not,
 * says so. rill__stop_result waits until the request is done. */
int rill__stop_result(rill__job *job, int rc);
int rill__stop_status(const rill__job *job, int status);
const char *rill__stop_errmsg(const rill__job *job, int status, const char *msg);
/* Wait for the stop thread to end and free what the requests use. */
void rill__stop_free(rill__job *job);

/* The longest a source waits for input on a descriptor when the job takes
 * checkpoints, so that a barrier gets in after at most that long (ms);
 * also when the job has no wake-up pipe, so that it stops as soon. */
#define RILL__SOURCE_BARRIER_WAIT 10

/* Launch the threads of a built job (job.c). */
int rill__job_launch(rill__job *job);

static inline int rill__deliver(rill_ctx *op, const void *rec, size_t len, int64_t ts)
{
    op->h.ts = ts;
    return op->node->def->process(op, rec, len);
}

#endif
