/* build_state.c - declaring state on operators. */
#include <string.h>

#include "graph/graph.h"
#include "ops/op.h"
#include "util/alloc.h"

static int keyed_kind(int kind)
{
    return kind >= RILL_STATE_VALUE && kind <= RILL_STATE_AGGREGATING;
}

static rill__statedesc *add_state(rill_stream *s, const char *name, int kind, const char *what)
{
    rill_env *env = rill__input_env(s, what);
    if (!env)
        return NULL;
    if (!s->node) {
        rill__env_fail(env, RILL_EINVAL, "%s: the stream is a union, not an operator's output",
                       what);
        return NULL;
    }
    rill__node *n = s->node;
    if (!name || !*name) {
        rill__env_fail(env, RILL_EINVAL, "%s on '%s': state name is NULL or empty", what,
                       n->name);
        return NULL;
    }
    if (kind < RILL_STATE_VALUE || kind > RILL_STATE_BROADCAST) {
        rill__env_fail(env, RILL_EINVAL, "%s on '%s': state '%s' has unknown kind %d", what,
                       n->name, name, kind);
        return NULL;
    }
    for (size_t i = 0; i < n->n_states; i++)
        if (strcmp(n->states[i].name, name) == 0) {
            rill__env_fail(env, RILL_EINVAL, "%s on '%s': state '%s' is declared twice", what,
                           n->name, name);
            return NULL;
        }
    if (rill__grow((void **)&n->states, &n->cap_states, n->n_states + 1, sizeof *n->states))
        return rill__oom(env);
    rill__statedesc *d = &n->states[n->n_states];
    memset(d, 0, sizeof *d);
    if (!(d->name = rill__strdup(name)))
        return rill__oom(env);
    d->kind = kind;
    n->n_states++;
    return d;
}

RILL_API rill_stream *rill_stream_add_state(rill_stream *s, const char *name, rill_state_kind kind)
{
    if (s && (kind == RILL_STATE_REDUCING || kind == RILL_STATE_AGGREGATING) &&
        rill__input_env(s, "rill_stream_add_state"))
        return rill__env_fail(s->env, RILL_EINVAL,
                              "rill_stream_add_state: state '%s' needs its functions: use "
                              "rill_stream_add_%s_state",
                              name ? name : "", kind == RILL_STATE_REDUCING ? "reducing"
                                                                            : "aggregating");
    return add_state(s, name, kind, "rill_stream_add_state") ? s : NULL;
}

RILL_API rill_stream *rill_stream_add_reducing_state(rill_stream *s, const char *name,
                                                     rill_reduce_fn fn, void *user_data)
{
    if (s && !fn && rill__input_env(s, "rill_stream_add_reducing_state"))
        return rill__env_fail(s->env, RILL_EINVAL,
                              "reducing state '%s': reduce function is NULL", name ? name : "");
    rill__statedesc *d = add_state(s, name, RILL_STATE_REDUCING, "rill_stream_add_reducing_state");
    if (!d)
        return NULL;
    d->reduce = fn;
    d->ud = user_data;
    return s;
}

RILL_API rill_stream *rill_stream_add_aggregating_state(rill_stream *s, const char *name,
                                                        const rill_aggregate_fns *fns,
                                                        void *user_data)
{
    if (s && (!fns || !fns->create || !fns->add || !fns->merge || !fns->result) &&
        rill__input_env(s, "rill_stream_add_aggregating_state"))
        return rill__env_fail(s->env, RILL_EINVAL,
                              "aggregating state '%s': create, add, merge and result are all "
                              "required",
                              name ? name : "");
    rill__statedesc *d =
        add_state(s, name, RILL_STATE_AGGREGATING, "rill_stream_add_aggregating_state");
    if (!d)
        return NULL;
    d->agg = *fns;
    d->ud = user_data;
    return s;
}

RILL_API rill_stream *rill_stream_set_state_ttl(rill_stream *s, const char *name,
                                                int64_t ttl_ms)
{
    rill_env *env = rill__input_env(s, "rill_stream_set_state_ttl");
    if (!env)
        return NULL;
    rill__node *n = s->node;
    for (size_t i = 0; n && name && i < n->n_states; i++) {
        rill__statedesc *d = &n->states[i];
        if (strcmp(d->name, name) != 0)
            continue;
        if (!keyed_kind(d->kind))
            return rill__env_fail(env, RILL_EINVAL,
                                  "state ttl on '%s': state '%s' is not keyed state", n->name,
                                  name);
        if (ttl_ms <= 0)
            return rill__env_fail(env, RILL_EINVAL, "state ttl on '%s': %lld ms is not > 0",
                                  n->name, (long long)ttl_ms);
        d->ttl = ttl_ms;
        return s;
    }
    return rill__env_fail(env, RILL_EINVAL, "state ttl on '%s': no state named '%s'",
                          n ? n->name : "a union", name ? name : "(null)");
}
