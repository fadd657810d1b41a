/* build.c - turn a resolved graph into a job: subtasks, operator instances,
 * channels. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "graph/graph.h"
#include "runtime/statedir.h"
#include "runtime/task.h"
#include "util/alloc.h"

#define PUSH(arr, n, cap, v)                                            \
    (rill__grow((void **)&(arr), &(cap), (n) + 1, sizeof *(arr)) ? -1 \
                                                                  : ((arr)[(n)++] = (v), 0))

void rill__job_destroy(rill__job *job);

static void free_outs(rill__out *out, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        rill__netout *o = out[k].net;
        if (o) {
            rill__free(o->ch);
            rill__free(o->keybuf);
            rill__free(o);
        }
    }
    rill__free(out);
}

void rill__job_destroy(rill__job *job)
{
    if (!job)
        return;
    rill__ckpt_free(job); /* reads the subtasks */
    for (size_t i = 0; i < job->n_ctxs; i++) {
        rill_ctx *c = job->ctxs[i];
        free_outs(c->out, c->n_out);
        for (size_t k = 0; k < c->n_side; k++)
            free_outs(c->side[k].out, c->side[k].n_out);
        rill__free(c->side);
        rill__free(c->user_err);
        rill__free(c->keybuf);
        rill__wmtrack_free(c->track);
        rill__free(c);
    }
    rill__free(job->ctxs);
    for (size_t i = 0; i < job->n_subs; i++) {
        rill__free(job->subs[i]->ops);
        rill__free(job->subs[i]->outs);
        rill__free(job->subs[i]);
    }
    rill__free(job->subs);
    for (size_t i = 0; i < job->n_gates; i++)
        rill__gate_free(job->gates[i]);
    rill__free(job->gates);
    rill__restore_free(job);
    if (job->wake_pipe) {
        close(job->wake_fd[0]);
        close(job->wake_fd[1]);
    }
    rill__free(job->failed_op);
    rill__state_dir_remove(job); /* what state close left */
    rill__free(job->name);
    pthread_cond_destroy(&job->cv);
    pthread_mutex_destroy(&job->mu);
    if (job->env)
        rill__env_unref(job->env);
    rill__free(job);
}

/* Downstream subtasks that upstream subtask i of p_u sends to. */
static int targets(rill__part_kind k, int i, int p_u, int p_d, int *out)
{
    int n = 0;
    switch (k) {
    case RILL__PART_FORWARD:
        out[n++] = i;
        break;
    case RILL__PART_GLOBAL:
        out[n++] = 0;
        break;
    case RILL__PART_RESCALE:
        if (p_d >= p_u) {
            for (int j = 0; j < p_d; j++)
                if ((int)((int64_t)j * p_u / p_d) == i)
                    out[n++] = j;
        } else {
            out[n++] = (int)((int64_t)i * p_d / p_u);
        }
        break;
    default:
        for (int j = 0; j < p_d; j++)
            out[n++] = j;
    }
    return n;
}

/* The output list of up that edge e reads: main or a side output. */
static int out_list(rill_ctx *up, const rill__edge *e, rill__out ***list, size_t **n)
{
    if (!e->tag) {
        *list = &up->out;
        *n = &up->n_out;
        return RILL_OK;
    }
    for (size_t i = 0; i < up->n_side; i++)
        if (up->side[i].tag == e->tag) {
            *list = &up->side[i].out;
            *n = &up->side[i].n_out;
            return RILL_OK;
        }
    size_t cap = up->n_side;
    if (rill__grow((void **)&up->side, &cap, up->n_side + 1, sizeof *up->side))
        return RILL_ENOMEM;
    rill__side *sd = &up->side[up->n_side++];
    memset(sd, 0, sizeof *sd);
    sd->tag = e->tag;
    *list = &sd->out;
    *n = &sd->n_out;
    return RILL_OK;
}

static int add_netout(rill__job *job, rill_ctx *up, rill__subtask **down_st, const rill__edge *e,
                      int input, const rill__node *down)
{
    rill__netout *o = rill__calloc(1, sizeof *o);
    if (!o)
        return RILL_ENOMEM;
    rill__out **list;
    size_t *nl;
    if (out_list(up, e, &list, &nl)) {
        rill__free(o);
        return RILL_ENOMEM;
    }
    size_t cap = *nl;
    if (PUSH(*list, *nl, cap, ((rill__out){NULL, o}))) {
        rill__free(o);
        return RILL_ENOMEM;
    }
    o->part = e->part;
    o->part.kind = e->rkind;
    o->op_name = up->node->name;
    o->p_d = down->p;
    o->max_parallelism = job->max_parallelism;
    o->st = up->st;
    o->rr = e->rkind == RILL__PART_REBALANCE ? (uint64_t)up->subtask : 0;
    o->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(up->subtask + 1) ^ (uint64_t)(input + 1) << 32 ^
             (uint64_t)(down->index + 1);
    if (e->rkind == RILL__PART_HASH && e->part.key_fn) {
        o->keycap = 256;
        if (!(o->keybuf = rill__malloc(o->keycap)))
            return RILL_ENOMEM;
    }
    int *t = rill__malloc(sizeof(int) * (size_t)down->p);
    if (!t)
        return RILL_ENOMEM;
    int n = targets(e->rkind, up->subtask, up->parallelism, down->p, t);
    o->ch = rill__calloc((size_t)n, sizeof *o->ch);
    if (!o->ch) {
        rill__free(t);
        return RILL_ENOMEM;
    }
    for (int k = 0; k < n; k++) {
        o->ch[k] = rill__gate_add_channel(down_st[t[k]]->gate, input);
        if (!o->ch[k]) {
            rill__free(t);
            return RILL_ENOMEM;
        }
        o->n_ch = k + 1;
    }
    rill__free(t);
    rill__subtask *st = up->st;
    size_t scap = st->n_outs;
    if (PUSH(st->outs, st->n_outs, scap, o))
        return RILL_ENOMEM;
    return RILL_OK;
}

/* The job's wake-up pipe (job->wake_fd), both ends non-blocking. Without
 * one (no descriptor left) the sources waiting on a descriptor look at the
 * job's state every RILL__SOURCE_BARRIER_WAIT ms instead. */
static void make_wake_pipe(rill__job *job)
{
    if (pipe(job->wake_fd) != 0)
        return;
    job->wake_pipe = 1;
    for (int i = 0; i < 2; i++) {
        fcntl(job->wake_fd[i], F_SETFD, FD_CLOEXEC);
        fcntl(job->wake_fd[i], F_SETFL, O_NONBLOCK);
    }
}

int rill__job_build(rill__job **out, rill_env *env, const char *name);

int rill__job_build(rill__job **out, rill_env *env, const char *name)
{
    *out = NULL;
    rill__job *job = rill__calloc(1, sizeof *job);
    if (!job)
        return RILL_ENOMEM;
    if (pthread_mutex_init(&job->mu, NULL)) {
        rill__free(job);
        return RILL_ENOMEM;
    }
    if (pthread_cond_init(&job->cv, NULL)) {
        pthread_mutex_destroy(&job->mu);
        rill__free(job);
        return RILL_ENOMEM;
    }
    atomic_init(&job->stopping, 0);
    atomic_fetch_add(&env->refs, 1);
    job->env = env;
    job->root = job;
    job->status = RILL_JOB_RUNNING;
    job->buffer_timeout = env->buffer_timeout;
    job->buffer_size = env->buffer_size;
    job->capacity = env->channel_capacity;
    job->max_parallelism = env->max_parallelism;
    job->wm_interval = env->wm_interval;
    job->cache_bytes = env->state_cache_bytes;
    int rc = RILL_ENOMEM;
    job->name = rill__strdup(name ? name : "rill job");
    if (!job->name)
        goto fail;
    rill__state_dir_sweep(env);

    /* Reached nodes in topological order. */
    size_t nn = 0;
    for (size_t i = 0; i < env->n_nodes; i++)
        if (env->nodes[i]->order >= 0)
            nn++;
    rill__node **topo = rill__calloc(nn, sizeof *topo);
    rill_ctx ***inst = rill__calloc(nn, sizeof *inst);
    rill__subtask ***sts = rill__calloc(nn, sizeof *sts);
    if (!topo || !inst || !sts)
        goto fail_tmp;
    for (size_t i = 0; i < env->n_nodes; i++)
        if (env->nodes[i]->order >= 0)
            topo[env->nodes[i]->order] = env->nodes[i];

    for (size_t k = 0; k < nn; k++) {
        rill__node *n = topo[k];
        inst[k] = rill__calloc((size_t)n->p, sizeof **inst);
        sts[k] = rill__calloc((size_t)n->p, sizeof **sts);
        if (!inst[k] || !sts[k])
            goto fail_tmp;
        for (int i = 0; i < n->p; i++) {
            rill__subtask *st;
            if (n->chained) {
                st = sts[n->in[0].from->order][i];
            } else {
                st = rill__calloc(1, sizeof *st);
                if (!st || PUSH(job->subs, job->n_subs, job->cap_subs, st)) {
                    rill__free(st);
                    goto fail_tmp;
                }
                st->job = job;
                st->number = (int)job->n_subs - 1;
                st->index = i;
                st->flush_at = INT64_MAX;
                st->tick_at = INT64_MAX;
                if (n->def->wait_fd && !job->wake_pipe)
                    make_wake_pipe(job);
                if (!n->def->is_source) {
                    st->gate = rill__gate_new(env->buffer_size, env->channel_capacity,
                                              &job->stopping);
                    if (!st->gate ||
                        PUSH(job->gates, job->n_gates, job->cap_gates, st->gate)) {
                        rill__gate_free(st->gate);
                        st->gate = NULL;
                        goto fail_tmp;
                    }
                }
            }
            sts[k][i] = st;
            rill_ctx *c = rill__calloc(1, sizeof *c);
            if (!c || PUSH(job->ctxs, job->n_ctxs, job->cap_ctxs, c)) {
                rill__free(c);
                goto fail_tmp;
            }
            c->node = n;
            c->st = st;
            c->subtask = i;
            c->parallelism = n->p;
            c->h.ts = RILL_TS_MIN;
            c->stopping = &job->stopping;
            c->ud = n->ud;
            c->fn = n->fn;
            c->keyed = n->keyed;
            c->wm = RILL_TS_MIN;
            c->wake_at = INT64_MAX;
            inst[k][i] = c;
            size_t ocap = st->n_ops;
            if (PUSH(st->ops, st->n_ops, ocap, c))
                goto fail_tmp;
            if (n->def->flush)
                st->flushes = 1;
        }
    }
    for (size_t k = 0; k < nn; k++) {
        rill__node *n = topo[k];
        for (size_t e = 0; e < n->n_in; e++) {
            const rill__edge *ed = &n->in[e];
            int uo = ed->from->order;
            for (int i = 0; i < ed->from->p; i++) {
                rill_ctx *up = inst[uo][i];
                if (n->chained) {
                    rill__out **list;
                    size_t *nl;
                    if (out_list(up, ed, &list, &nl))
                        goto fail_tmp;
                    size_t cap = *nl;
                    if (PUSH(*list, *nl, cap, ((rill__out){inst[k][i], NULL})))
                        goto fail_tmp;
                } else if ((rc = add_netout(job, up, sts[k], ed, (int)e, n))) {
                    goto fail_tmp;
                }
            }
        }
    }
    /* Heads of consumer tasks track the watermark of each input channel. */
    for (size_t i = 0; i < job->n_subs; i++) {
        rill__subtask *st = job->subs[i];
        if (st->gate && !(st->ops[0]->track = rill__wmtrack_new(st->gate->n_ch))) {
            rc = RILL_ENOMEM;
            goto fail_tmp;
        }
    }
    for (size_t i = 0; i < job->n_ctxs; i++)
        rill__chain_link(job->ctxs[i]);
    rc = RILL_OK;
fail_tmp:
    for (size_t k = 0; k < nn && inst && sts; k++) {
        rill__free(inst[k]);
        rill__free(sts[k]);
    }
    rill__free(topo);
    rill__free(inst);
    rill__free(sts);
    if (rc == RILL_OK) {
        *out = job;
        return RILL_OK;
    }
    rc = RILL_ENOMEM;
fail:
    rill__job_destroy(job);
    return rc;
}
