/* build_process.c - builders of event-time, process, two-input, side output
 * and rolling aggregation operators, and of harness inputs. */
#include <string.h>

#include "graph/graph.h"
#include "ops/op.h"
#include "util/alloc.h"

#define FN(f) ((const void *)(uintptr_t)(f))

/* ---- event time ------------------------------------------------------- */

RILL_API rill_stream *rill_assign_timestamps(rill_stream *s, const char *name,
                                             rill_timestamp_fn fn, int64_t max_out_of_orderness,
                                             void *user_data)
{
    rill_env *env = rill__input_env(s, "rill_assign_timestamps");
    if (!env)
        return NULL;
    if (max_out_of_orderness < 0)
        return rill__env_fail(env, RILL_EINVAL,
                              "timestamps '%s': max out-of-orderness %lld ms is negative",
                              name ? name : rill__op_assign.default_name,
                              (long long)max_out_of_orderness);
    rill__node *n = rill__node_new(env, &rill__op_assign, name, s);
    if (!n)
        return NULL;
    n->ts_fn = fn;
    n->ooo = max_out_of_orderness;
    n->ud = user_data;
    return rill__stream_of(env, n);
}

RILL_API rill_stream *rill_assign_punctuated(rill_stream *s, const char *name,
                                             rill_timestamp_fn ts_fn, rill_punctuated_fn wm_fn,
                                             void *user_data)
{
    rill_stream *r = rill__add_op(s, &rill__op_assign, name, FN(wm_fn), user_data,
                                  "punctuated watermarks");
    if (r) {
        r->node->ts_fn = ts_fn;
        r->node->wm_fn = wm_fn;
    }
    return r;
}

RILL_API rill_stream *rill_stream_set_idle_timeout(rill_stream *s, int64_t ms)
{
    rill__node *n = rill__setting_node(s, "rill_stream_set_idle_timeout");
    if (!n)
        return NULL;
    if (!n->def->is_source && n->def != &rill__op_assign)
        return rill__env_fail(s->env, RILL_EINVAL,
                              "idle timeout on '%s': only sources and timestamp assigners "
                              "have one",
                              n->name);
    if (ms <= 0)
        return rill__env_fail(s->env, RILL_EINVAL, "idle timeout on '%s': %lld ms is not > 0",
                              n->name, (long long)ms);
    n->idle_timeout = ms;
    return s;
}

/* ---- process functions ------------------------------------------------ */

RILL_API rill_stream *rill_process(rill_stream *s, const char *name, rill_process_fn fn,
                                   rill_timer_fn on_timer, void *user_data)
{
    rill_stream *r = rill__add_op(s, &rill__op_process, name, FN(fn), user_data, "process");
    if (r) {
        r->node->fn.process = fn;
        r->node->on_timer = on_timer;
    }
    return r;
}

/* A two-input node: a's edges in slot 0, b's in slot 1. */
static rill_stream *two_input(rill_stream *a, rill_stream *b, const rill__opdef *def,
                              const char *name, rill_process_fn fn1, rill_process_fn fn2,
                              rill_timer_fn on_timer, void *ud, const char *what)
{
    if (!a || !b) {
        rill_stream *any = a ? a : b;
        if (any && rill__input_env(any, what))
            rill__env_fail(any->env, RILL_EINVAL, "%s '%s': input stream is NULL", what,
                           name ? name : def->default_name);
        return NULL;
    }
    rill_env *env = rill__input_env(a, what);
    if (!env || !rill__input_env(b, what))
        return NULL;
    if (b->env != env)
        return rill__env_fail(env, RILL_EINVAL, "%s '%s': the inputs belong to different "
                              "environments", what, name ? name : def->default_name);
    if (!fn1 || !fn2)
        return rill__env_fail(env, RILL_EINVAL, "%s '%s': function is NULL", what,
                              name ? name : def->default_name);
    rill__node *n = rill__node_new(env, def, name, a);
    if (!n)
        return NULL;
    size_t need = a->n_edges + b->n_edges;
    if (rill__grow((void **)&n->in, &n->cap_in, need, sizeof *n->in))
        return rill__oom(env);
    for (size_t i = 0; i < b->n_edges; i++) {
        n->in[n->n_in] = b->edges[i];
        n->in[n->n_in++].slot = 1;
    }
    n->fn.process = fn1;
    n->fn2 = fn2;
    n->on_timer = on_timer;
    n->ud = ud;
    n->two_input = 1;
    return rill__stream_of(env, n);
}

RILL_API rill_stream *rill_co_map(rill_stream *a, rill_stream *b, const char *name,
                                  rill_process_fn fn1, rill_process_fn fn2, void *user_data)
{
    return two_input(a, b, &rill__op_co_map, name, fn1, fn2, NULL, user_data, "co_map");
}

RILL_API rill_stream *rill_co_flat_map(rill_stream *a, rill_stream *b, const char *name,
                                       rill_process_fn fn1, rill_process_fn fn2,
                                       void *user_data)
{
    return two_input(a, b, &rill__op_co_process, name ? name : "co_flat_map", fn1, fn2, NULL,
                     user_data, "co_flat_map");
}

RILL_API rill_stream *rill_co_process(rill_stream *a, rill_stream *b, const char *name,
                                      rill_process_fn fn1, rill_process_fn fn2,
                                      rill_timer_fn on_timer, void *user_data)
{
    return two_input(a, b, &rill__op_co_process, name, fn1, fn2, on_timer, user_data,
                     "co_process");
}

RILL_API rill_stream *rill_connect_broadcast(rill_stream *s, rill_stream *bc, const char *name,
                                             rill_process_fn fn, rill_process_fn bc_fn,
                                             rill_timer_fn on_timer, void *user_data)
{
    rill_stream *r = two_input(s, bc, &rill__op_co_process, name ? name : "broadcast_process",
                               fn, bc_fn, on_timer, user_data, "connect_broadcast");
    if (!r)
        return NULL;
    rill__node *n = r->node;
    for (size_t i = 0; i < n->n_in; i++)
        if (n->in[i].slot == 1)
            memset(&n->in[i].part, 0, sizeof n->in[i].part), n->in[i].part.kind =
                                                                 RILL__PART_BROADCAST;
    n->bc_input = 1;
    return r;
}

/* ---- side outputs ----------------------------------------------------- */

RILL_API rill_stream *rill_side_output(rill_stream *s, const char *tag)
{
    rill__node *n = rill__setting_node(s, "rill_side_output");
    if (!n)
        return NULL;
    if (!tag || !*tag)
        return rill__env_fail(s->env, RILL_EINVAL, "side output of '%s': tag is NULL or empty",
                              n->name);
    if (n->is_sink)
        return rill__env_fail(s->env, RILL_EINVAL, "side output of sink '%s'", n->name);
    const char *t = NULL;
    for (size_t i = 0; i < n->n_tags && !t; i++)
        if (strcmp(n->tags[i], tag) == 0)
            t = n->tags[i];
    if (!t) {
        char *c = rill__strdup(tag);
        if (!c || rill__grow((void **)&n->tags, &n->cap_tags, n->n_tags + 1, sizeof *n->tags)) {
            rill__free(c);
            return rill__oom(s->env);
        }
        n->tags[n->n_tags++] = c;
        t = c;
    }
    rill__edge e;
    memset(&e, 0, sizeof e);
    e.from = n;
    e.tag = t;
    return rill__stream_new(s->env, n, &e, 1);
}

/* ---- rolling aggregations --------------------------------------------- */

static rill_stream *rolling(rill_stream *s, const char *name, const rill__opdef *def,
                            const char *what)
{
    rill_env *env = rill__input_env(s, what);
    if (!env)
        return NULL;
    for (size_t i = 0; i < s->n_edges; i++)
        if (s->edges[i].part.kind != RILL__PART_HASH)
            return rill__env_fail(env, RILL_EINVAL,
                                  "%s '%s': the input is not keyed (use rill_key_by first)",
                                  what, name ? name : def->default_name);
    rill__node *n = rill__node_new(env, def, name, s);
    if (!n)
        return NULL;
    if (rill__grow((void **)&n->states, &n->cap_states, 1, sizeof *n->states) ||
        !(n->states[0].name = rill__strdup("rolling")))
        return rill__oom(env);
    n->states[0].kind = RILL_STATE_VALUE;
    n->n_states = 1;
    return rill__stream_of(env, n);
}

RILL_API rill_stream *rill_reduce(rill_stream *s, const char *name, rill_reduce_fn fn,
                                  void *user_data)
{
    if (s && !fn && rill__input_env(s, "reduce"))
        return rill__env_fail(s->env, RILL_EINVAL, "reduce '%s': function is NULL",
                              name ? name : "reduce");
    rill_stream *r = rolling(s, name, &rill__op_reduce, "reduce");
    if (r) {
        r->node->states[0].reduce = fn;
        r->node->ud = user_data;
    }
    return r;
}

RILL_API rill_stream *rill_aggregate(rill_stream *s, const char *name, rill_agg_kind agg,
                                     size_t offset, rill_field_type type)
{
    if (s && rill__input_env(s, "aggregate")) {
        if ((int)agg < RILL_AGG_SUM || (int)agg > RILL_AGG_MAX_BY)
            return rill__env_fail(s->env, RILL_EINVAL, "aggregate '%s': unknown kind %d",
                                  name ? name : "aggregate", (int)agg);
        if ((int)type < RILL_FIELD_I32 || (int)type > RILL_FIELD_F64)
            return rill__env_fail(s->env, RILL_EINVAL, "aggregate '%s': unknown field type %d",
                                  name ? name : "aggregate", (int)type);
    }
    rill_stream *r = rolling(s, name, &rill__op_aggregate, "aggregate");
    if (r) {
        r->node->agg = agg;
        r->node->agg_off = offset;
        r->node->agg_type = type;
    }
    return r;
}

/* ---- harness inputs --------------------------------------------------- */

RILL_API rill_stream *rill_harness_input(rill_env *env, const char *name)
{
    if (!env)
        return NULL;
    if (env->err)
        return NULL;
    if (atomic_load(&env->running)) {
        rill__env_error(env, RILL_ESTATE,
                        "rill_harness_input: a job of this environment is running");
        return NULL;
    }
    rill__node *n = rill__node_new(env, &rill__op_harness_input, name, NULL);
    if (!n)
        return NULL;
    n->harness_input = env->n_harness_inputs++;
    n->default_p1 = 1;
    return rill__stream_of(env, n);
}

/* ---- two-phase-commit sinks -------------------------------------------- */

static rill_stream *twophase(rill_stream *s, const rill__opdef *def, const char *name,
                             const rill_twophase_fns *fns, void *ud, const char *what)
{
    rill_env *env = rill__input_env(s, what);
    if (!env)
        return NULL;
    if (!fns || !fns->begin || !fns->write || !fns->precommit || !fns->commit || !fns->abort)
        return rill__env_fail(env, RILL_EINVAL,
                              "%s '%s': begin, write, precommit, commit and abort are all "
                              "required",
                              what, name ? name : def->default_name);
    rill__node *n = rill__node_new(env, def, name, s);
    if (!n)
        return NULL;
    n->tp = *fns;
    n->ud = ud;
    if (rill__grow((void **)&n->states, &n->cap_states, 1, sizeof *n->states) ||
        !(n->states[0].name = rill__strdup("rill.twophase")))
        return rill__oom(env);
    n->states[0].kind = RILL_STATE_OPERATOR_LIST;
    n->n_states = 1;
    return rill__stream_of(env, n);
}

RILL_API rill_stream *rill_sink_twophase(rill_stream *s, const char *name,
                                         const rill_twophase_fns *fns, void *user_data)
{
    return twophase(s, &rill__op_twophase, name, fns, user_data, "rill_sink_twophase");
}

RILL_API rill_stream *rill_sink_file_exactly_once(rill_stream *s, const char *name,
                                                  const char *dir, rill_format_fn fmt,
                                                  void *user_data)
{
    if (s && (!dir || !*dir) && rill__input_env(s, "rill_sink_file_exactly_once"))
        return rill__env_fail(s->env, RILL_EINVAL,
                              "file_sink_exactly_once '%s': directory is NULL or empty",
                              name ? name : "file_sink_exactly_once");
    rill_stream *r = twophase(s, &rill__op_file_eo, name, &rill__file_eo_fns, user_data,
                              "rill_sink_file_exactly_once");
    if (r) {
        r->node->fmt = fmt;
        if (!(r->node->path = rill__strdup(dir)))
            return rill__oom(s->env);
    }
    return r;
}
