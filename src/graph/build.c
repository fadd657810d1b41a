/* build.c - the fluent builder calls: sources, transformations,
 * partitioning, declared streams, sinks and operator settings. */
#include <string.h>

#include "graph/graph.h"
#include "ops/op.h"
#include "util/alloc.h"

/* ---- support ---------------------------------------------------------- */

static int env_usable(rill_env *env, const char *what)
{
    if (env->err)
        return 0;
    if (atomic_load(&env->running)) {
        /* Not a building mistake to keep: the graph is unchanged, and
         * building goes on once the job ended. */
        rill__env_error(env, RILL_ESTATE, "%s: a job of this environment is running", what);
        return 0;
    }
    return 1;
}

rill_env *rill__input_env(rill_stream *s, const char *what)
{
    if (!s)
        return NULL;
    rill_env *env = s->env;
    if (!env_usable(env, what))
        return NULL;
    if (s->node && s->node->is_sink) {
        rill__env_fail(env, RILL_EINVAL, "%s: sink '%s' has no output stream to use as input",
                       what, s->node->name);
        return NULL;
    }
    return env;
}

void *rill__oom(rill_env *env)
{
    rill__env_fail(env, RILL_ENOMEM, "out of memory while building the graph");
    return NULL;
}

/* A stream handle over a copy of edges; node is the producing operator. */
rill_stream *rill__stream_new(rill_env *env, rill__node *node, const rill__edge *edges,
                               size_t n)
{
    if (rill__grow((void **)&env->streams, &env->cap_streams, env->n_streams + 1,
                   sizeof *env->streams))
        return rill__oom(env);
    rill_stream *s = rill__calloc(1, sizeof *s);
    if (!s)
        return rill__oom(env);
    s->edges = rill__calloc(n, sizeof *s->edges);
    if (!s->edges) {
        rill__free(s);
        return rill__oom(env);
    }
    memcpy(s->edges, edges, n * sizeof *edges);
    s->n_edges = n;
    s->env = env;
    s->node = node;
    env->streams[env->n_streams++] = s;
    return s;
}

rill_stream *rill__stream_of(rill_env *env, rill__node *node)
{
    rill__edge e;
    memset(&e, 0, sizeof e);
    e.from = node;
    return rill__stream_new(env, node, &e, 1);
}

rill__node *rill__node_new(rill_env *env, const rill__opdef *def, const char *name,
                           const rill_stream *input)
{
    if (rill__grow((void **)&env->nodes, &env->cap_nodes, env->n_nodes + 1, sizeof *env->nodes))
        return rill__oom(env);
    rill__node *n = rill__calloc(1, sizeof *n);
    if (!n)
        return rill__oom(env);
    n->def = def;
    n->name = rill__strdup(name ? name : def->default_name);
    if (!n->name) {
        rill__free(n);
        return rill__oom(env);
    }
    if (input) {
        n->in = rill__calloc(input->n_edges, sizeof *n->in);
        if (!n->in) {
            rill__free(n->name);
            rill__free(n);
            return rill__oom(env);
        }
        memcpy(n->in, input->edges, input->n_edges * sizeof *n->in);
        n->n_in = n->cap_in = input->n_edges;
    }
    n->index = (int)env->n_nodes;
    n->harness_input = -1;
    n->is_sink = def->is_sink;
    n->order = -1;
    env->nodes[env->n_nodes++] = n;
    return n;
}

/* A node reading input and its stream handle (or a sink's handle). */
rill_stream *rill__add_op(rill_stream *input, const rill__opdef *def, const char *name,
                           const void *fn, void *ud, const char *what)
{
    rill_env *env = rill__input_env(input, what);
    if (!env)
        return NULL;
    if (!fn)
        return rill__env_fail(env, RILL_EINVAL, "%s '%s': function is NULL", what,
                              name ? name : def->default_name);
    rill__node *n = rill__node_new(env, def, name, input);
    if (!n)
        return NULL;
    n->ud = ud;
    return rill__stream_of(env, n);
}

#define FN(f) ((const void *)(uintptr_t)(f))

/* ---- sources ---------------------------------------------------------- */

static rill__node *source_node(rill_env *env, const rill__opdef *def, const char *name,
                               const char *what)
{
    if (!env || !env_usable(env, what))
        return NULL;
    return rill__node_new(env, def, name, NULL);
}

RILL_API rill_stream *rill_source(rill_env *env, const char *name, rill_source_fn fn,
                                  void *user_data)
{
    if (env && !env->err && !fn)
        return rill__env_fail(env, RILL_EINVAL, "source '%s': function is NULL",
                              name ? name : "source");
    rill__node *n = source_node(env, &rill__op_source, name, "rill_source");
    if (!n)
        return NULL;
    n->fn.source = fn;
    n->ud = user_data;
    return rill__stream_of(env, n);
}

/* Copy count records into one block owned by node n. */
static rill_stream *records_node(rill_env *env, const rill__opdef *def, const char *name,
                                 const rill_record *recs, const void *arr, size_t rec_size,
                                 size_t count, const char *what)
{
    if (!env || !env_usable(env, what))
        return NULL;
    const char *nm = name ? name : def->default_name;
    if (count > 0 && !recs && !arr)
        return rill__env_fail(env, RILL_EINVAL, "%s '%s': records are NULL", what, nm);
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        size_t len = recs ? recs[i].len : rec_size;
        if (len > RILL_RECORD_MAX || (recs && len && !recs[i].data))
            return rill__env_fail(env, RILL_EINVAL, "%s '%s': record %zu is invalid", what,
                                  nm, i);
        total += len;
    }
    rill__node *n = rill__node_new(env, def, name, NULL);
    if (!n)
        return NULL;
    n->default_p1 = 1;
    n->recs = rill__calloc(count, sizeof *n->recs);
    n->rec_store = rill__malloc(total);
    if (!n->recs || !n->rec_store)
        return rill__oom(env);
    char *p = n->rec_store;
    for (size_t i = 0; i < count; i++) {
        size_t len = recs ? recs[i].len : rec_size;
        const void *src = recs ? recs[i].data : (const char *)arr + i * rec_size;
        if (len)
            memcpy(p, src, len);
        n->recs[i].data = p;
        n->recs[i].len = len;
        n->recs[i].ts = recs ? recs[i].ts : RILL_TS_MIN;
        p += len;
    }
    n->n_recs = count;
    return rill__stream_of(env, n);
}

RILL_API rill_stream *rill_from_array(rill_env *env, const char *name, const void *records,
                                      size_t rec_size, size_t count)
{
    if (env && !env->err && count > 0 && rec_size > 0 && count > SIZE_MAX / rec_size)
        return rill__env_fail(env, RILL_EINVAL, "from_array '%s': array too large",
                              name ? name : "from_array");
    return records_node(env, &rill__op_from_array, name, NULL, records, rec_size, count,
                        "from_array");
}

RILL_API rill_stream *rill_from_records(rill_env *env, const char *name,
                                        const rill_record *records, size_t count)
{
    if (env && !env->err && count > 0 && !records)
        return rill__env_fail(env, RILL_EINVAL, "from_records '%s': records are NULL",
                              name ? name : "from_records");
    return records_node(env, &rill__op_from_records, name, records, NULL, 0, count,
                        "from_records");
}

RILL_API rill_stream *rill_generator(rill_env *env, const char *name, uint64_t count,
                                     rill_generator_fn fn, void *user_data)
{
    if (env && !env->err && !fn)
        return rill__env_fail(env, RILL_EINVAL, "generator '%s': function is NULL",
                              name ? name : "generator");
    rill__node *n = source_node(env, &rill__op_generator, name, "rill_generator");
    if (!n)
        return NULL;
    n->fn.gen = fn;
    n->ud = user_data;
    n->gen_count = count;
    return rill__stream_of(env, n);
}

RILL_API rill_stream *rill_file_source(rill_env *env, const char *name, const char *path)
{
    if (env && !env->err && (!path || !*path))
        return rill__env_fail(env, RILL_EINVAL, "file_source '%s': path is NULL or empty",
                              name ? name : "file_source");
    rill__node *n = source_node(env, &rill__op_file_source, name, "rill_file_source");
    if (!n)
        return NULL;
    n->default_p1 = 1;
    if (!(n->path = rill__strdup(path)))
        return rill__oom(env);
    return rill__stream_of(env, n);
}

/* ---- operator settings ------------------------------------------------ */

rill__node *rill__setting_node(rill_stream *s, const char *what)
{
    if (!s || !env_usable(s->env, what))
        return NULL;
    if (!s->node) {
        rill__env_fail(s->env, RILL_EINVAL, "%s: a union has no single operator to configure",
                       what);
        return NULL;
    }
    return s->node;
}

RILL_API rill_stream *rill_stream_set_uid(rill_stream *s, const char *uid)
{
    rill__node *n = rill__setting_node(s, "rill_stream_set_uid");
    if (!n)
        return NULL;
    if (!uid || !*uid)
        return rill__env_fail(s->env, RILL_EINVAL, "operator '%s': uid is NULL or empty",
                              n->name);
    char *u = rill__strdup(uid);
    if (!u)
        return rill__oom(s->env);
    rill__free(n->uid);
    n->uid = u;
    return s;
}

RILL_API rill_stream *rill_stream_set_parallelism(rill_stream *s, int parallelism)
{
    rill__node *n = rill__setting_node(s, "rill_stream_set_parallelism");
    if (!n)
        return NULL;
    if (parallelism < 1 || parallelism > 32768)
        return rill__env_fail(s->env, RILL_EINVAL,
                              "operator '%s': parallelism %d is out of range 1..32768", n->name,
                              parallelism);
    n->parallelism = parallelism;
    return s;
}

RILL_API rill_stream *rill_stream_disable_chaining(rill_stream *s)
{
    rill__node *n = rill__setting_node(s, "rill_stream_disable_chaining");
    if (!n)
        return NULL;
    n->no_chain = 1;
    return s;
}

RILL_API rill_stream *rill_stream_set_lifecycle(rill_stream *s, rill_open_fn open,
                                                rill_close_fn close)
{
    rill__node *n = rill__setting_node(s, "rill_stream_set_lifecycle");
    if (!n)
        return NULL;
    n->open_hook = open;
    n->close_hook = close;
    return s;
}

/* ---- transformations -------------------------------------------------- */

RILL_API rill_stream *rill_map(rill_stream *s, const char *name, rill_process_fn fn,
                               void *user_data)
{
    rill_stream *r = rill__add_op(s, &rill__op_map, name, FN(fn), user_data, "map");
    if (r)
        r->node->fn.process = fn;
    return r;
}

RILL_API rill_stream *rill_filter(rill_stream *s, const char *name, rill_filter_fn fn,
                                  void *user_data)
{
    rill_stream *r = rill__add_op(s, &rill__op_filter, name, FN(fn), user_data, "filter");
    if (r)
        r->node->fn.filter = fn;
    return r;
}

RILL_API rill_stream *rill_flat_map(rill_stream *s, const char *name, rill_process_fn fn,
                                    void *user_data)
{
    rill_stream *r = rill__add_op(s, &rill__op_flat_map, name, FN(fn), user_data, "flat_map");
    if (r)
        r->node->fn.process = fn;
    return r;
}

RILL_API rill_stream *rill_union(rill_stream *const *streams, size_t n)
{
    if (!streams || n == 0 || !streams[0])
        return NULL;
    rill_env *env = rill__input_env(streams[0], "rill_union");
    if (!env)
        return NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!streams[i])
            return rill__env_fail(env, RILL_EINVAL, "rill_union: stream %zu is NULL", i);
        if (streams[i]->env != env)
            return rill__env_fail(env, RILL_EINVAL,
                                  "rill_union: stream %zu belongs to another environment", i);
        if (!rill__input_env(streams[i], "rill_union"))
            return NULL;
        total += streams[i]->n_edges;
    }
    rill__edge *edges = rill__calloc(total, sizeof *edges);
    if (!edges)
        return rill__oom(env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e < streams[i]->n_edges; e++)
            edges[k++] = streams[i]->edges[e];
    rill_stream *u = rill__stream_new(env, n == 1 ? streams[0]->node : NULL, edges, total);
    rill__free(edges);
    return u;
}

/* ---- partitioning ----------------------------------------------------- */

/* Name of the operator producing s, for messages. */
static const char *producer_name(const rill_stream *s)
{
    return s->node ? s->node->name : s->n_edges ? s->edges[0].from->name : "?";
}

static rill_stream *partitioned(rill_stream *s, const rill__part *part, const char *what)
{
    rill_env *env = rill__input_env(s, what);
    if (!env)
        return NULL;
    rill__edge *edges = rill__calloc(s->n_edges, sizeof *edges);
    if (!edges)
        return rill__oom(env);
    for (size_t i = 0; i < s->n_edges; i++) {
        edges[i] = s->edges[i]; /* keeps a side output's tag */
        edges[i].part = *part;
    }
    rill_stream *r = rill__stream_new(env, s->node, edges, s->n_edges);
    rill__free(edges);
    return r;
}

static rill_stream *simple_part(rill_stream *s, rill__part_kind kind, const char *what)
{
    rill__part p;
    memset(&p, 0, sizeof p);
    p.kind = kind;
    return partitioned(s, &p, what);
}

RILL_API rill_stream *rill_key_by(rill_stream *s, rill_key_fn fn, void *user_data)
{
    if (s && !fn && rill__input_env(s, "rill_key_by"))
        return rill__env_fail(s->env, RILL_EINVAL, "key_by after '%s': key function is NULL",
                              producer_name(s));
    rill__part p;
    memset(&p, 0, sizeof p);
    p.kind = RILL__PART_HASH;
    p.key_fn = fn;
    p.key_ud = user_data;
    return partitioned(s, &p, "rill_key_by");
}

RILL_API rill_stream *rill_key_by_bytes(rill_stream *s, size_t offset, size_t len)
{
    if (s && (len == 0 || len > RILL_KEY_MAX) && rill__input_env(s, "rill_key_by_bytes"))
        return rill__env_fail(s->env, RILL_EINVAL,
                              "key_by_bytes after '%s': key length %zu is out of range 1..%zu",
                              producer_name(s), len, (size_t)RILL_KEY_MAX);
    rill__part p;
    memset(&p, 0, sizeof p);
    p.kind = RILL__PART_HASH;
    p.key_off = offset;
    p.key_len = len;
    return partitioned(s, &p, "rill_key_by_bytes");
}

RILL_API rill_stream *rill_forward(rill_stream *s)
{
    return simple_part(s, RILL__PART_FORWARD, "rill_forward");
}
RILL_API rill_stream *rill_rebalance(rill_stream *s)
{
    return simple_part(s, RILL__PART_REBALANCE, "rill_rebalance");
}
RILL_API rill_stream *rill_rescale(rill_stream *s)
{
    return simple_part(s, RILL__PART_RESCALE, "rill_rescale");
}
RILL_API rill_stream *rill_shuffle(rill_stream *s)
{
    return simple_part(s, RILL__PART_SHUFFLE, "rill_shuffle");
}
RILL_API rill_stream *rill_broadcast(rill_stream *s)
{
    return simple_part(s, RILL__PART_BROADCAST, "rill_broadcast");
}
RILL_API rill_stream *rill_global(rill_stream *s)
{
    return simple_part(s, RILL__PART_GLOBAL, "rill_global");
}

RILL_API rill_stream *rill_partition_custom(rill_stream *s, rill_partition_fn fn,
                                            void *user_data)
{
    if (s && !fn && rill__input_env(s, "rill_partition_custom"))
        return rill__env_fail(s->env, RILL_EINVAL,
                              "partition_custom after '%s': function is NULL", producer_name(s));
    rill__part p;
    memset(&p, 0, sizeof p);
    p.kind = RILL__PART_CUSTOM;
    p.custom_fn = fn;
    p.custom_ud = user_data;
    return partitioned(s, &p, "rill_partition_custom");
}

/* ---- declared streams ------------------------------------------------- */

RILL_API rill_stream *rill_stream_declare(rill_env *env, const char *name)
{
    rill__node *n = source_node(env, &rill__op_identity, name, "rill_stream_declare");
    if (!n)
        return NULL;
    n->is_declared = 1;
    return rill__stream_of(env, n);
}

RILL_API int rill_stream_define(rill_stream *decl, rill_stream *s)
{
    if (!decl || !s)
        return RILL_EINVAL;
    rill_env *env = decl->env;
    if (env->err)
        return env->err;
    if (!decl->node || !decl->node->is_declared || decl->n_edges != 1 ||
        decl->edges[0].part.kind != RILL__PART_DEFAULT)
        return rill__env_error(env, RILL_EINVAL, "rill_stream_define: not a declared stream");
    rill__node *n = decl->node;
    if (n->defined)
        return rill__env_error(env, RILL_EINVAL,
                               "rill_stream_define: stream '%s' is already defined", n->name);
    if (s->env != env)
        return rill__env_error(env, RILL_EINVAL,
                               "rill_stream_define: stream for '%s' belongs to another "
                               "environment",
                               n->name);
    if (!rill__input_env(s, "rill_stream_define"))
        return env->err ? env->err : RILL_ESTATE; /* a mistake, or a job runs */
    rill__edge *in = rill__calloc(s->n_edges, sizeof *in);
    if (!in)
        return rill__env_error(env, RILL_ENOMEM, "out of memory");
    memcpy(in, s->edges, s->n_edges * sizeof *in);
    rill__free(n->in);
    n->in = in;
    n->n_in = n->cap_in = s->n_edges;
    n->defined = 1;
    return RILL_OK;
}

/* ---- sinks ------------------------------------------------------------ */

RILL_API rill_stream *rill_sink(rill_stream *s, const char *name, rill_process_fn fn,
                                void *user_data)
{
    rill_stream *r = rill__add_op(s, &rill__op_sink, name, FN(fn), user_data, "sink");
    if (r)
        r->node->fn.process = fn;
    return r;
}

/* Print and file sinks have no user function: fmt is optional. */
static rill_stream *line_sink(rill_stream *s, const rill__opdef *def, const char *name,
                              rill_format_fn fmt, void *ud, const char *what)
{
    rill_env *env = rill__input_env(s, what);
    if (!env)
        return NULL;
    rill__node *n = rill__node_new(env, def, name, s);
    if (!n)
        return NULL;
    n->fmt = fmt;
    n->ud = ud;
    return rill__stream_of(env, n);
}

RILL_API rill_stream *rill_sink_print(rill_stream *s, const char *name, rill_print_target fd,
                                      rill_format_fn fmt, void *user_data)
{
    if (s && fd != RILL_STDOUT && fd != RILL_STDERR && rill__input_env(s, "rill_sink_print"))
        return rill__env_fail(s->env, RILL_EINVAL,
                              "print '%s': fd %d is neither RILL_STDOUT nor RILL_STDERR",
                              name ? name : "print", (int)fd);
    rill_stream *r = line_sink(s, &rill__op_print, name, fmt, user_data, "rill_sink_print");
    if (r)
        r->node->fd = fd;
    return r;
}

RILL_API rill_stream *rill_sink_file(rill_stream *s, const char *name, const char *path,
                                     rill_format_fn fmt, void *user_data)
{
    if (s && (!path || !*path) && rill__input_env(s, "rill_sink_file"))
        return rill__env_fail(s->env, RILL_EINVAL, "file_sink '%s': path is NULL or empty",
                              name ? name : "file_sink");
    rill_stream *r = line_sink(s, &rill__op_file_sink, name, fmt, user_data, "rill_sink_file");
    if (r && !(r->node->path = rill__strdup(path)))
        return rill__oom(s->env);
    return r;
}
