/* ckpt_int.h - the checkpoint coordinator's state, shared by checkpoint.c
 * (coordinator, barriers, acknowledgements) and ckpt_bg.c (the thread that
 * writes snapshots' keyed state in the background). */
#ifndef RILL_RUNTIME_CKPT_INT_H
#define RILL_RUNTIME_CKPT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "runtime/task.h"
#include "snapshot/format.h"
#include "state/snapshot.h"

typedef struct rill__ckpt {
    int64_t interval, timeout, min_pause;
    int mode, retained, retain_on_cancel;
    char *dir;
    pthread_t thread;
    int started;
    pthread_cond_t cv; /* with job->mu */
    int stop;
    int64_t first_id;  /* last_id when the job started */
    int64_t last_id;   /* last triggered */
    int64_t pending;   /* in flight, 0 when none */
    int64_t completed; /* last completed */
    _Atomic int64_t notify; /* completed, for the subtasks' on_complete hooks */
    int acks;
    int failed;
    int fail_code;                     /* the first failure's code, */
    char fail_msg[RILL__ERRMSG_MAX];   /* and cause */
    int64_t started_ms;                /* wall clock at the trigger */
    struct rill__ckpt_stats *stats;    /* the job's, across its attempts */
    rill__snap_meta_file *files; /* per subtask of the pending checkpoint */
    int64_t *kept;               /* completed ids still on disk, oldest first */
    int n_kept;
    char target[4096];           /* directory of the pending checkpoint */
    /* A savepoint asked for by rill_job_savepoint. */
    char *sp_dir;
    int sp_busy, sp_done, sp_rc;
    char sp_err[RILL__ERRMSG_MAX];
    /* Snapshot writer (ckpt_bg.c): keyed state written in the background. */
    _Atomic int64_t live;  /* pending, readable without the lock */
    struct rill__bgtask *bg_head, *bg_tail;
    int bg_inflight;       /* tasks queued or being written */
    _Atomic int bg_stop;
    int bg_started;
    pthread_t bg_thread;
    /* Final snapshots (ckpt_final.c) of subtasks whose input ended. */
    struct rill__final *fin; /* per subtask */
    char *final_dir;         /* where they are, for this run */
    int n_ready;             /* subtasks with a final snapshot */
    int n_gone;              /* subtasks that exited without one */
    int n_waiting;           /* waiting for a checkpoint to complete */
} rill__ckpt;

/* A subtask's final snapshot: not taken (its input goes on), being taken,
 * taken, or failed and to be taken again for a later checkpoint. */
enum { RILL__FIN_RUNNING, RILL__FIN_TAKING, RILL__FIN_READY, RILL__FIN_RETRY };

typedef struct rill__final {
    int state;
    int64_t first;             /* the first checkpoint it belongs to */
    rill__snap_fileinfo info;
} rill__final;

/* A subtask's snapshot file whose keyed state is still to be written: the
 * other sections are in w already. */
typedef struct rill__bgtask {
    struct rill__bgtask *next;
    rill__subtask *st;
    int64_t id;
    int final; /* a final snapshot: not given up with its checkpoint */
    rill__snap_writer *w;
    char name[32];
    size_t n;
    rill__state_snap **parts;
} rill__bgtask;

/* A task for st's file ("<number>.snap"); NULL when out of memory. */
rill__bgtask *rill__ckpt_task_new(const rill__subtask *st);
/* Frees t with what it holds (an open writer is aborted). Accepts NULL. */
void rill__ckpt_task_free(rill__bgtask *t);
/* On st's thread: the first part of st's snapshot for checkpoint id into
 * a new file at path: hooks (user snapshot hooks, pre-commits), source
 * positions, state held in memory, views of keyed state, all into t. On
 * error, with a message in err, t holds nothing; *fatal is set when the
 * job fails too (a hook failed). */
int rill__ckpt_begin_snapshot(rill__subtask *st, int64_t id, const char *path,
                              rill__bgtask *t, char *err, int *fatal);
/* Any thread: write t's keyed parts and commit its file (info gets its
 * size and digest), freeing the views; the writer is consumed. */
int rill__ckpt_write_task(rill__bgtask *t, rill__snap_fileinfo *info, char *err);
/* rill__ckpt_ack with job->mu held. */
void rill__ckpt_ack_locked(rill__subtask *st, int64_t id, int rc,
                           const rill__snap_fileinfo *info, const char *name, const char *why);
/* Tell the coordinator that st took (rc == 0) or could not take checkpoint
 * id; info describes its file, why says what failed (rc != 0). Any
 * thread. */
void rill__ckpt_ack(rill__subtask *st, int64_t id, int rc, const rill__snap_fileinfo *info,
                    const char *name, const char *why);
/* Write t's keyed parts, commit its file and acknowledge, in the
 * background (or right away when the writer thread cannot start). Takes
 * t. */
void rill__ckpt_bg_submit(rill__job *job, rill__bgtask *t);
/* With job->mu held: wait until no task is queued or being written. */
void rill__ckpt_bg_drain(rill__job *job);
/* With job->mu held, as checkpoint c->pending starts into c->target:
 * the final snapshots taken so far go into it (and count as acks). */
void rill__ckpt_add_finals(rill__job *job);
/* mkdir -p d; RILL_EIO/RILL_EINVAL with a message in err. */
int rill__ckpt_make_dir(const char *d, char *err);
/* Stop the writer thread (tasks left are given up). */
void rill__ckpt_bg_stop(rill__job *job);

#endif
