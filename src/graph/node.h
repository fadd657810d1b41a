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

/* An input edge of a node: records of from, partitioned by part. */
typedef struct rill__edge {
    rill__node *from;
    rill__part part;
    rill__part_kind rkind; /* resolved by the plan (never DEFAULT) */
} rill__edge;

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

    /* Resolved by the plan. */
    int p;       /* parallelism */
    int reach;   /* leads to a sink */
    int chained; /* runs in its input's task, by plain calls */
    int order;   /* topological position, -1 if not reached */
    int mark;    /* scratch for graph walks */
};

#endif
