/* node.h - logical operators and edges of a dataflow graph.
 *
 * A node is built by the graph layer, resolved by plan.c (parallelism,
 * partitioners, chaining, uid) and then read by the operators and the
 * runtime while a job runs; nothing changes a node while a job runs.
 */
#ifndef RILL_GRAPH_NODE_H
#define RILL_GRAPH_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "rill.h"

struct rill__opdef;

typedef enum rill__part_kind {
    RILL__PART_DEFAULT = 0, /* forward if parallelisms match, else rebalance */
    RILL__PART_FORWARD,
    RILL__PART_REBALANCE,
    RILL__PART_RESCALE,
    RILL__PART_SHUFFLE,
    RILL__PART_BROADCAST,
    RILL__PART_GLOBAL,
    RILL__PART_HASH,
    RILL__PART_CUSTOM
} rill__part_kind;

typedef struct rill__part {
    rill__part_kind kind;
    rill_key_fn key_fn; /* HASH by function, else NULL */
    void *key_ud;
    size_t key_off; /* HASH by bytes */
    size_t key_len;
    rill_partition_fn custom_fn;
    void *custom_ud;
} rill__part;

typedef struct rill__node rill__node;

/* The user function of an operator, by kind. */
typedef union rill__userfn {
    rill_source_fn source;
    rill_generator_fn gen;
    rill_process_fn process;
    rill_filter_fn filter;
} rill__userfn;

/* An input edge of a node: records of from (its main output, or the side
 * output tag), partitioned by part, into input slot (0, or 1 for the second
 * input of a two-input operator). */
typedef struct rill__edge {
    rill__node *from;
    rill__part part;
    rill__part_kind rkind; /* resolved by the plan (never DEFAULT) */
    const char *tag;       /* side output tag (owned by the node's tags), or NULL */
    int slot;
} rill__edge;

/* A state declared on an operator. */
typedef struct rill__statedesc {
    char *name;
    int kind; /* rill_state_kind */
    rill_reduce_fn reduce;
    rill_aggregate_fns agg;
    void *ud;
    int64_t ttl; /* ms, 0: none */
} rill__statedesc;

struct rill__node {
    int index; /* creation order in the environment */
    const struct rill__opdef *def;
    char *name;
    char *uid;          /* explicit uid, or NULL */
    char *resolved_uid; /* set by the plan */
    int parallelism;    /* 0: default */
    int default_p1;     /* default parallelism is 1, not the environment's */
    int no_chain;
    int is_sink;
    int is_declared;
    int defined; /* declared streams only */

    rill__userfn fn;
    void *ud;
    rill_open_fn open_hook;
    rill_checkpoint_fn on_snapshot;
    rill_checkpoint_fn on_complete;
    rill_twophase_fns tp; /* two-phase-commit sinks */
    int tp_file;          /* the exactly-once file sink */
    rill_close_fn close_hook;

    rill__edge *in;
    size_t n_in, cap_in;

    /* Operator configuration (by kind). */
    rill_record *recs; /* from_array/from_records: copies of the records */
    void *rec_store;
    size_t n_recs;
    uint64_t gen_count;
    char *path;
    int fd;
    rill_format_fn fmt;
    rill_process_fn fn2;    /* second input of two-input operators */
    rill_timer_fn on_timer; /* process functions */
    rill_timestamp_fn ts_fn;   /* timestamp assigners */
    rill_punctuated_fn wm_fn;
    int64_t ooo;               /* max out-of-orderness */
    int64_t idle_timeout;      /* ms, 0: never idle */
    int agg, agg_type;         /* rolling aggregations */
    size_t agg_off;
    int two_input;             /* connect/co-process/broadcast */
    int bc_input;              /* input slot 1 is a broadcast side */
    int harness_input;         /* index among harness inputs, or -1 */

    rill__statedesc *states;
    size_t n_states, cap_states;
    char **tags; /* side output tags used by edges reading this node */
    size_t n_tags, cap_tags;

    /* Resolved by the plan. */
    int p;       /* parallelism */
    int reach;   /* leads to a sink */
    int chained; /* runs in its input's task, by plain calls */
    int keyed;   /* every input edge is hash partitioned */
    int order;   /* topological position, -1 if not reached */
    int mark;    /* scratch for graph walks */
};

#endif
