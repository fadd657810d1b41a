/* plan.c - validate a graph and resolve what a job needs: the operators
 * that lead to a sink in topological order, parallelisms, partitioners,
 * chaining and uids. */
#include <stdio.h>
#include <string.h>

#include "graph/graph.h"
#include "ops/op.h"
#include "util/alloc.h"

typedef struct walk {
    rill_env *env;
    int next_order;
    rill__node **stack; /* current path, for cycle messages */
    size_t depth;
} walk;

static int cycle_error(walk *w, const rill__node *back)
{
    char path[RILL__ERRMSG_MAX] = "";
    size_t used = 0;
    size_t start = 0;
    for (size_t i = 0; i < w->depth; i++)
        if (w->stack[i] == back)
            start = i;
    /* The stack runs consumer -> input, so print it backwards: data order. */
    for (size_t i = w->depth; i-- > start && used < sizeof path - 1;)
        used += (size_t)snprintf(path + used, sizeof path - used, "'%s' -> ", w->stack[i]->name);
    if (used < sizeof path - 1)
        snprintf(path + used, sizeof path - used, "'%s'", w->stack[w->depth - 1]->name);
    return rill__env_error(w->env, RILL_EINVAL, "the graph has a cycle: %s", path);
}

/* Depth-first from a sink towards the sources; orders inputs first. */
static int visit(walk *w, rill__node *n)
{
    if (n->mark == 2)
        return RILL_OK;
    if (n->mark == 1)
        return cycle_error(w, n);
    if (n->is_declared && !n->defined)
        return rill__env_error(w->env, RILL_EINVAL,
                               "declared stream '%s' is used but never defined", n->name);
    n->mark = 1;
    w->stack[w->depth++] = n;
    for (size_t i = 0; i < n->n_in; i++) {
        int rc = visit(w, n->in[i].from);
        if (rc)
            return rc;
    }
    w->depth--;
    n->mark = 2;
    n->reach = 1;
    n->order = w->next_order++;
    return RILL_OK;
}

static int check_edges(rill_env *env, rill__node *n)
{
    for (size_t i = 0; i < n->n_in; i++) {
        rill__edge *e = &n->in[i];
        rill__part_kind k = e->part.kind;
        if (k == RILL__PART_DEFAULT)
            k = e->from->p == n->p ? RILL__PART_FORWARD : RILL__PART_REBALANCE;
        else if (k == RILL__PART_FORWARD && e->from->p != n->p)
            return rill__env_error(env, RILL_EINVAL,
                                   "forward from '%s' (parallelism %d) to '%s' (parallelism %d): "
                                   "forward needs equal parallelism",
                                   e->from->name, e->from->p, n->name, n->p);
        e->rkind = k;
    }
    n->chained = n->n_in == 1 && n->in[0].rkind == RILL__PART_FORWARD && !n->no_chain &&
                 !n->in[0].from->no_chain && !n->two_input;
    /* Keyed: every input edge (of the non-broadcast side) hashes. */
    int keyed = n->n_in > 0;
    for (size_t i = 0; i < n->n_in; i++)
        if (!(n->bc_input && n->in[i].slot == 1) && n->in[i].rkind != RILL__PART_HASH)
            keyed = 0;
    n->keyed = keyed;
    for (size_t i = 0; i < n->n_states; i++) {
        const rill__statedesc *d = &n->states[i];
        if (d->kind <= RILL_STATE_AGGREGATING && !keyed)
            return rill__env_error(env, RILL_EINVAL,
                                   "operator '%s' declares keyed state '%s' but its input is "
                                   "not keyed (use rill_key_by)",
                                   n->name, d->name);
        if (d->kind == RILL_STATE_BROADCAST && !n->bc_input)
            return rill__env_error(env, RILL_EINVAL,
                                   "operator '%s' declares broadcast state '%s' but has no "
                                   "broadcast input (use rill_connect_broadcast)",
                                   n->name, d->name);
    }
    return RILL_OK;
}

static int assign_uids(rill_env *env)
{
    /* Default uid: the name, made unique by "#k" in creation order. */
    for (size_t i = 0; i < env->n_nodes; i++) {
        rill__node *n = env->nodes[i];
        if (!n->reach)
            continue;
        if (n->uid) {
            n->resolved_uid = rill__strdup(n->uid);
        } else {
            int k = 1;
            for (size_t j = 0; j < i; j++)
                if (env->nodes[j]->reach && strcmp(env->nodes[j]->name, n->name) == 0)
                    k++;
            size_t len = strlen(n->name) + 16;
            n->resolved_uid = rill__malloc(len);
            if (n->resolved_uid) {
                if (k == 1)
                    snprintf(n->resolved_uid, len, "%s", n->name);
                else
                    snprintf(n->resolved_uid, len, "%s#%d", n->name, k);
            }
        }
        if (!n->resolved_uid)
            return rill__env_error(env, RILL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < env->n_nodes; i++) {
        rill__node *a = env->nodes[i];
        if (!a->reach)
            continue;
        for (size_t j = i + 1; j < env->n_nodes; j++) {
            rill__node *b = env->nodes[j];
            if (b->reach && strcmp(a->resolved_uid, b->resolved_uid) == 0)
                return rill__env_error(env, RILL_EINVAL,
                                       "uid '%s' is used by two operators, '%s' and '%s'",
                                       a->resolved_uid, a->name, b->name);
        }
    }
    return RILL_OK;
}

int rill__plan_resolve(rill_env *env)
{
    return rill__plan_resolve_mode(env, 0);
}

int rill__plan_resolve_mode(rill_env *env, int harness)
{
    if (env->err) {
        memcpy(env->msg, env->err_kept, sizeof env->msg);
        return env->err;
    }
    size_t sinks = 0;
    for (size_t i = 0; i < env->n_nodes; i++) {
        rill__node *n = env->nodes[i];
        n->reach = 0;
        n->order = -1;
        n->chained = 0;
        n->mark = 0;
        rill__free(n->resolved_uid);
        n->resolved_uid = NULL;
        sinks += (size_t)n->is_sink;
        n->p = harness ? 1 : n->parallelism ? n->parallelism : n->default_p1 ? 1 : env->parallelism;
        /* A timestamp assigner keeps its input's parallelism, as in Flink
         * (nodes come after their inputs in creation order). */
        if (!harness && !n->parallelism && n->def == &rill__op_assign && n->n_in > 0 &&
            n->in[0].from->index < n->index)
            n->p = n->in[0].from->p;
    }
    if (sinks == 0)
        return rill__env_error(env, RILL_EINVAL, "the graph has no sink: nothing would run");
    walk w = {env, 0, rill__calloc(env->n_nodes, sizeof(rill__node *)), 0};
    if (!w.stack)
        return rill__env_error(env, RILL_ENOMEM, "out of memory");
    int rc = RILL_OK;
    for (size_t i = 0; i < env->n_nodes && !rc; i++)
        if (env->nodes[i]->is_sink)
            rc = visit(&w, env->nodes[i]);
    rill__free(w.stack);
    for (size_t i = 0; i < env->n_nodes && !rc; i++) {
        rill__node *n = env->nodes[i];
        if (!n->reach)
            continue;
        if (n->harness_input >= 0 && !harness)
            rc = rill__env_error(env, RILL_EINVAL,
                                 "'%s' is a harness input: the graph runs only in a test "
                                 "harness (rill_harness_new)",
                                 n->name);
        else if (n->p > env->max_parallelism)
            rc = rill__env_error(env, RILL_EINVAL,
                                 "operator '%s': parallelism %d exceeds the max parallelism %d",
                                 n->name, n->p, env->max_parallelism);
        else
            rc = check_edges(env, n);
    }
    if (!rc)
        rc = assign_uids(env);
    if (rc) {
        for (size_t i = 0; i < env->n_nodes; i++)
            env->nodes[i]->order = -1;
    }
    return rc;
}
