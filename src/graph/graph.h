/* graph.h - the environment: settings, nodes and stream handles. */
#ifndef RILL_GRAPH_GRAPH_H
#define RILL_GRAPH_GRAPH_H

#include <stdatomic.h>

#include "graph/node.h"
#include "util/error.h"

struct rill_stream {
    rill_env *env;
    rill__node *node; /* producing operator; NULL for a union */
    rill__edge *edges;
    size_t n_edges;
};

struct rill_env {
    atomic_int refs; /* the host's reference + one per job */
    atomic_int running;
    int parallelism;
    int max_parallelism;
    int64_t buffer_timeout;
    size_t buffer_size;
    int channel_capacity;
    char *state_dir;
    size_t state_cache_bytes;
    int64_t wm_interval;
    int n_harness_inputs;
    /* Checkpointing (0 interval: off). */
    int64_t ckpt_interval;
    char *ckpt_dir;
    int ckpt_mode;
    int64_t ckpt_timeout;
    int64_t ckpt_min_pause;
    int ckpt_retained;
    int ckpt_retain_on_cancel;
    int ckpt_tolerable; /* consecutive checkpoint failures tolerated */
    char *restore_path; /* start jobs from this snapshot, or NULL */
    int restart_kind;
    int restart_attempts;
    int64_t restart_delay, restart_max_delay;
    int restore_flags; /* RILL_RESTORE_* */
    char *savepoint_dir; /* stop requests with a savepoint write under it, or NULL */
    /* Stop requests (runtime/stop.c), touched by signal handlers: lock-free
     * atomics only. Requests no job took yet; the stopper of the job that
     * runs, or NULL; handlers using it now. */
    atomic_int stop_pending;
    struct rill__stopper *_Atomic stop_live;
    atomic_int stop_users;

    rill__node **nodes;
    size_t n_nodes, cap_nodes;
    rill_stream **streams;
    size_t n_streams, cap_streams;

    int err;                         /* first building mistake, kept */
    char err_kept[RILL__ERRMSG_MAX]; /* its message */
    char msg[RILL__ERRMSG_MAX];      /* message of the last error */
};

/* Record a building mistake (the first one is kept); returns NULL. */
rill_stream *rill__env_fail(rill_env *env, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Set the last error message; returns code. */
int rill__env_error(rill_env *env, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* Drop a reference; frees the environment at zero. */
void rill__env_unref(rill_env *env);

/* Builder support: the environment of an input stream, or NULL (error kept)
 * when building cannot go on. what names the calling builder. */
rill_env *rill__input_env(rill_stream *s, const char *what);
/* A new node with def, name (copied; NULL -> def's default name) and, when
 * input is given, one input edge per edge of input. NULL on error (kept). */
rill__node *rill__node_new(rill_env *env, const struct rill__opdef *def, const char *name,
                           const rill_stream *input);
/* A stream handle producing the records of node. NULL on error (kept). */
rill_stream *rill__stream_of(rill_env *env, rill__node *node);

/* A node of def reading input (fn must be non-NULL; what names the builder
 * in messages) and its stream handle. */
rill_stream *rill__add_op(rill_stream *input, const struct rill__opdef *def, const char *name,
                          const void *fn, void *ud, const char *what);
/* A stream handle over a copy of edges; node is the producing operator. */
rill_stream *rill__stream_new(rill_env *env, rill__node *node, const rill__edge *edges, size_t n);
/* The operator a setting call on s configures; NULL (mistake kept) for a
 * union or when building cannot go on. what names the call. */
rill__node *rill__setting_node(rill_stream *s, const char *what);
/* Keep an out-of-memory building mistake; returns NULL. */
void *rill__oom(rill_env *env);

/* Validate and resolve the graph (plan.c). RILL_OK or RILL_EINVAL/ENOMEM. */
int rill__plan_resolve(rill_env *env);
/* The same; harness != 0 resolves every operator at parallelism 1 and
 * allows harness inputs. */
int rill__plan_resolve_mode(rill_env *env, int harness);

#endif
