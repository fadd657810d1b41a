/* harness.c - the test harness: one operator, or a whole graph, run on the
 * calling thread, deterministically, with pushed records, watermarks and a
 * processing-time clock the test controls. */
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "graph/graph.h"
#include "runtime/statedir.h"
#include "runtime/task.h"
#include "runtime/timers.h"
#include "state/state.h"
#include "util/alloc.h"

int rill__job_build(rill__job **out, rill_env *env, const char *name);
void rill__job_destroy(rill__job *job);

typedef struct item {
    int kind; /* RILL_HARNESS_RECORD or RILL_HARNESS_WATERMARK */
    int64_t ts;
    size_t len;
    char *data;
} item;

typedef struct hout {
    char *name; /* NULL: the main output of the operator under test */
    item *items;
    size_t n, cap;
} hout;

struct rill_harness {
    rill_env *env;
    rill__job *job;
    rill_ctx *target; /* single operator mode */
    rill__node cap_node;
    rill_ctx **inputs; /* whole graph mode: harness input operators */
    size_t n_inputs;
    int n_slots; /* single operator mode: its inputs */
    hout *outs;
    size_t n_outs, cap_outs;
    int rc;    /* failure kept */
    int ended;
    int *closed; /* per subtask */
    char msg[RILL__ERRMSG_MAX];
};

/* ---- outputs ---------------------------------------------------------- */

static int same(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static hout *find_out(const rill_harness *h, const char *name)
{
    for (size_t i = 0; i < h->n_outs; i++)
        if (same(h->outs[i].name, name))
            return &h->outs[i];
    return NULL;
}

static hout *get_out(rill_harness *h, const char *name)
{
    hout *o = find_out(h, name);
    if (o)
        return o;
    if (rill__grow((void **)&h->outs, &h->cap_outs, h->n_outs + 1, sizeof *h->outs))
        return NULL;
    o = &h->outs[h->n_outs];
    memset(o, 0, sizeof *o);
    if (name && !(o->name = rill__strdup(name)))
        return NULL;
    h->n_outs++;
    return o;
}

static int keep(hout *o, int kind, const void *rec, size_t len, int64_t ts)
{
    if (rill__grow((void **)&o->items, &o->cap, o->n + 1, sizeof *o->items))
        return RILL_ENOMEM;
    item *it = &o->items[o->n];
    it->kind = kind;
    it->ts = ts;
    it->len = len;
    it->data = rill__malloc(len ? len : 1);
    if (!it->data)
        return RILL_ENOMEM;
    if (len)
        memcpy(it->data, rec, len);
    o->n++;
    return RILL_OK;
}

int rill__capture(rill_ctx *op, const void *rec, size_t len)
{
    return keep(op->capture, RILL_HARNESS_RECORD, rec, len, op->h.ts);
}

int rill__capture_watermark(rill_ctx *op, int64_t wm)
{
    return keep(op->capture, RILL_HARNESS_WATERMARK, NULL, 0, wm);
}

int rill__capture_side(rill_ctx *op, const char *tag, const void *rec, size_t len)
{
    rill_harness *h = op->st->job->harness;
    if (op != h->target)
        return RILL_OK;
    hout *o = get_out(h, tag);
    return o ? keep(o, RILL_HARNESS_RECORD, rec, len, op->h.ts) : RILL_ENOMEM;
}

/* The operator a capture output of the harness is: records and watermarks
 * that reach it are kept. */
static int capture_process(rill_ctx *op, const void *rec, size_t len)
{
    return rill__capture(op, rec, len);
}

static const rill__opdef capture_def = {
    .default_name = "harness output",
    .is_sink = 1,
    .process = capture_process,
};

/* ---- failures ----------------------------------------------------------- */

static int fail(rill_harness *h, int rc)
{
    if (h->rc)
        return h->rc;
    /* A reported failure gives its code and message (what reaches here may
     * be the RILL_ECANCELED an emit returned because of it). */
    pthread_mutex_lock(&h->job->mu);
    if (h->job->result != RILL_OK) {
        rc = h->job->result;
        memcpy(h->msg, h->job->errmsg, sizeof h->msg);
    } else {
        rill__fmt(h->msg, "harness: %s", rill_strerror(rc));
    }
    pthread_mutex_unlock(&h->job->mu);
    h->rc = rc;
    atomic_store(&h->job->stopping, 1);
    return rc;
}

static int usable(rill_harness *h)
{
    if (!h)
        return RILL_EINVAL;
    if (h->rc)
        return h->rc;
    if (h->ended) {
        rill__fmt(h->msg, "harness: input has ended (rill_harness_end was called)");
        return RILL_ESTATE;
    }
    return RILL_OK;
}

/* ---- running ------------------------------------------------------------ */

/* Whole graph: move everything queued in channels until nothing moves. */
static int pump(rill_harness *h)
{
    rill__job *job = h->job;
    for (;;) {
        int moved = 0;
        for (size_t i = 0; i < job->n_subs; i++) {
            rill__subtask *st = job->subs[i];
            if (h->closed[i])
                continue;
            int rc = rill__subtask_flush(st, INT64_MAX);
            if (rc)
                return rc;
        }
        for (size_t i = 0; i < job->n_subs; i++) {
            rill__subtask *st = job->subs[i];
            if (!st->gate || h->closed[i])
                continue;
            for (;;) {
                rill__event ev;
                rill__chan *from;
                rill__buf *done = st->held;
                st->held = NULL;
                int got = rill__gate_next(st->gate, &ev, &from, 0, done, st->held_ch);
                if (got < 0)
                    return got;
                if (got == 0)
                    break;
                moved = 1;
                int rc = rill__subtask_consume(st, &ev, from);
                if (rc)
                    return rc;
                if (st->gate->n_ended == st->gate->n_ch) {
                    rill__subtask_release(st);
                    h->closed[i] = 1;
                    if ((rc = rill__subtask_close(st, 1)) || (rc = rill__subtask_end_outputs(st)))
                        return rc;
                    break;
                }
            }
        }
        if (!moved)
            return RILL_OK;
    }
}

/* Fire what is due at the harness clock, then let it flow. */
static int settle_time(rill_harness *h)
{
    rill__job *job = h->job;
    for (int round = 0; round < 1000; round++) {
        int any = 0;
        for (size_t i = 0; i < job->n_subs; i++) {
            rill__subtask *st = job->subs[i];
            if (h->closed[i] || st->tick_at > job->clock)
                continue;
            any = 1;
            int rc = rill__subtask_tick(st, job->clock);
            if (rc)
                return rc;
        }
        int rc = h->target ? RILL_OK : pump(h);
        if (rc)
            return rc;
        if (!any)
            return RILL_OK;
    }
    return RILL_OK;
}

static int after(rill_harness *h, int rc)
{
    if (!rc)
        rc = h->target ? RILL_OK : pump(h);
    if (!rc)
        rc = settle_time(h);
    return rc ? fail(h, rc) : RILL_OK;
}

/* ---- construction --------------------------------------------------- */

static void close_all(rill_harness *h, int ok)
{
    rill__job *job = h->job;
    for (size_t i = 0; i < job->n_subs; i++) {
        if (h->closed[i])
            continue;
        h->closed[i] = 1;
        rill__subtask_release(job->subs[i]);
        rill__subtask_close(job->subs[i], ok);
    }
}

static rill_ctx *new_ctx(rill__job *job, rill__subtask *st, const rill__node *n)
{
    rill_ctx *c = rill__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (rill__grow((void **)&job->ctxs, &job->cap_ctxs, job->n_ctxs + 1, sizeof *job->ctxs)) {
        rill__free(c);
        return NULL;
    }
    job->ctxs[job->n_ctxs++] = c;
    if (rill__grow((void **)&st->ops, &(size_t){st->n_ops}, st->n_ops + 1, sizeof *st->ops))
        return NULL;
    st->ops[st->n_ops++] = c;
    c->node = n;
    c->st = st;
    c->parallelism = 1;
    c->h.ts = RILL_TS_MIN;
    c->stopping = &job->stopping;
    c->ud = n->ud;
    c->fn = n->fn;
    c->wm = RILL_TS_MIN;
    c->wake_at = INT64_MAX;
    return c;
}

/* A capture output of the operator under test: main (tag NULL) or a side. */
static int add_capture(rill_harness *h, rill__subtask *st, const char *tag)
{
    rill_ctx *c = new_ctx(h->job, st, &h->cap_node);
    hout *o = c ? get_out(h, tag) : NULL;
    if (!o)
        return RILL_ENOMEM;
    c->capture = o;
    rill_ctx *t = h->target;
    rill__out **list = &t->out;
    size_t *n = &t->n_out;
    if (tag) {
        if (rill__grow((void **)&t->side, &(size_t){t->n_side}, t->n_side + 1, sizeof *t->side))
            return RILL_ENOMEM;
        rill__side *sd = &t->side[t->n_side++];
        memset(sd, 0, sizeof *sd);
        sd->tag = tag;
        list = &sd->out;
        n = &sd->n_out;
    }
    if (rill__grow((void **)list, &(size_t){*n}, *n + 1, sizeof **list))
        return RILL_ENOMEM;
    (*list)[(*n)++] = (rill__out){c, NULL};
    return RILL_OK;
}

static rill__job *new_job(rill_env *env)
{
    rill__job *job = rill__calloc(1, sizeof *job);
    if (!job)
        return NULL;
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    atomic_init(&job->stopping, 0);
    atomic_fetch_add(&env->refs, 1);
    job->env = env;
    job->max_parallelism = env->max_parallelism;
    job->wm_interval = env->wm_interval;
    job->cache_bytes = env->state_cache_bytes;
    job->buffer_size = env->buffer_size;
    job->capacity = env->channel_capacity;
    job->buffer_timeout = -1;
    job->name = rill__strdup("harness");
    if (!job->name) {
        rill__job_destroy(job);
        return NULL;
    }
    rill__state_dir_sweep(env);
    return job;
}

static int single_new(rill_harness *h, rill_stream *s)
{
    rill_env *env = h->env;
    rill__node *n = s->node;
    if (!n || n->def->is_source)
        return rill__env_error(env, RILL_EINVAL,
                               "rill_harness_new: the stream is not an operator's output with "
                               "inputs (a source or a union)");
    int keyed = n->n_in > 0;
    for (size_t i = 0; i < n->n_in; i++)
        if (!(n->bc_input && n->in[i].slot == 1) && n->in[i].part.kind != RILL__PART_HASH)
            keyed = 0;
    for (size_t i = 0; i < n->n_states; i++)
        if (n->states[i].kind <= RILL_STATE_AGGREGATING && !keyed)
            return rill__env_error(env, RILL_EINVAL,
                                   "operator '%s' declares keyed state '%s' but its input is "
                                   "not keyed (use rill_key_by)",
                                   n->name, n->states[i].name);
    n->keyed = keyed;
    rill__job *job = h->job;
    rill__subtask *st = rill__calloc(1, sizeof *st);
    if (!st ||
        rill__grow((void **)&job->subs, &job->cap_subs, job->n_subs + 1, sizeof *job->subs)) {
        rill__free(st);
        return RILL_ENOMEM;
    }
    job->subs[job->n_subs++] = st;
    st->job = job;
    st->flush_at = INT64_MAX;
    st->tick_at = INT64_MAX;
    h->n_slots = n->two_input ? 2 : 1;
    h->cap_node.def = &capture_def;
    h->cap_node.name = (char *)"harness output";
    h->cap_node.harness_input = -1;
    h->cap_node.is_sink = 1;
    rill_ctx *t = new_ctx(job, st, n);
    if (!t)
        return RILL_ENOMEM;
    h->target = t;
    t->keyed = keyed;
    if (!(t->track = rill__wmtrack_new(h->n_slots)))
        return RILL_ENOMEM;
    int rc = add_capture(h, st, NULL);
    for (size_t i = 0; i < n->n_tags && !rc; i++)
        rc = add_capture(h, st, n->tags[i]);
    if (rc)
        return rc;
    rill__chain_link(t);
    return RILL_OK;
}

static int graph_new(rill_harness *h)
{
    rill_env *env = h->env;
    int rc = rill__plan_resolve_mode(env, 1);
    if (rc)
        return rc;
    for (size_t i = 0; i < env->n_nodes; i++) {
        rill__node *n = env->nodes[i];
        if (n->order >= 0 && n->def->is_source && n->harness_input < 0)
            return rill__env_error(env, RILL_EINVAL,
                                   "rill_harness_new: source '%s' is not a harness input; in a "
                                   "harness, only harness inputs feed the graph",
                                   n->name);
    }
    rill__job_destroy(h->job);
    h->job = NULL;
    if ((rc = rill__job_build(&h->job, env, "harness")))
        return rc;
    rill__job *job = h->job;
    job->buffer_timeout = -1;
    for (size_t i = 0; i < job->n_gates; i++)
        job->gates[i]->unbounded = 1;
    h->n_inputs = (size_t)env->n_harness_inputs;
    h->inputs = rill__calloc(h->n_inputs ? h->n_inputs : 1, sizeof *h->inputs);
    if (!h->inputs)
        return RILL_ENOMEM;
    for (size_t i = 0; i < job->n_ctxs; i++) {
        rill_ctx *c = job->ctxs[i];
        if (c->node->harness_input >= 0 && c->node->order >= 0)
            h->inputs[c->node->harness_input] = c;
        if (c->node->is_sink && !(c->capture = get_out(h, c->node->name)))
            return RILL_ENOMEM;
    }
    /* Captured sinks take chained records through their operator. */
    for (size_t i = 0; i < job->n_ctxs; i++)
        rill__chain_link(job->ctxs[i]);
    return RILL_OK;
}

RILL_API int rill_harness_new(rill_harness **out, rill_env *env, rill_stream *op)
{
    if (!out)
        return RILL_EINVAL;
    *out = NULL;
    if (!env)
        return RILL_EINVAL;
    if (op && op->env != env)
        return rill__env_error(env, RILL_EINVAL,
                               "rill_harness_new: the stream belongs to another environment");
    if (env->err) {
        memcpy(env->msg, env->err_kept, sizeof env->msg);
        return env->err;
    }
    if (atomic_load(&env->running))
        return rill__env_error(env, RILL_ESTATE,
                               "rill_harness_new: a job or harness of this environment is "
                               "running");
    rill_harness *h = rill__calloc(1, sizeof *h);
    if (!h)
        return rill__env_error(env, RILL_ENOMEM, "out of memory");
    h->env = env;
    h->job = new_job(env);
    int rc = h->job ? RILL_OK : RILL_ENOMEM;
    if (!rc)
        rc = op ? single_new(h, op) : graph_new(h);
    if (!rc) {
        h->job->harness = h;
        h->closed = rill__calloc(h->job->n_subs + 1, sizeof *h->closed);
        if (!h->closed)
            rc = RILL_ENOMEM;
    }
    if (!rc) {
        /* Open downstream subtasks first: job->subs is in topological order. */
        for (size_t i = h->job->n_subs; i-- > 0 && !rc;) {
            rc = rill__subtask_open(h->job->subs[i]);
            if (rc) {
                rill__subtask_close(h->job->subs[i], 0);
                for (size_t k = 0; k <= i; k++)
                    h->closed[k] = 1;
            }
        }
        if (rc) {
            pthread_mutex_lock(&h->job->mu);
            if (h->job->result != RILL_OK)
                rill__env_error(env, rc, "%s", h->job->errmsg);
            pthread_mutex_unlock(&h->job->mu);
        }
    }
    if (rc) {
        if (rc == RILL_ENOMEM)
            rill__env_error(env, rc, "rill_harness_new: out of memory");
        if (h->job && h->closed)
            close_all(h, 0);
        h->ended = 1;
        rill_harness_free(h);
        return rc;
    }
    atomic_fetch_add(&env->running, 1);
    *out = h;
    return RILL_OK;
}

RILL_API void rill_harness_free(rill_harness *h)
{
    if (!h)
        return;
    if (h->job) {
        if (!h->ended) {
            close_all(h, 0);
            atomic_fetch_sub(&h->env->running, 1);
        }
        rill__job_destroy(h->job);
    }
    for (size_t i = 0; i < h->n_outs; i++) {
        for (size_t k = 0; k < h->outs[i].n; k++)
            rill__free(h->outs[i].items[k].data);
        rill__free(h->outs[i].items);
        rill__free(h->outs[i].name);
    }
    rill__free(h->outs);
    rill__free(h->inputs);
    rill__free(h->closed);
    rill__free(h);
}

RILL_API const char *rill_harness_errmsg(const rill_harness *h)
{
    return h ? h->msg : "";
}

/* ---- input ---------------------------------------------------------------- */

static int bad_input(rill_harness *h, int input)
{
    int n = h->target ? h->n_slots : (int)h->n_inputs;
    if (input >= 0 && input < n && (h->target || h->inputs[input]))
        return 0;
    rill__fmt(h->msg, "harness: input %d does not exist (%d input%s)", input, n,
              n == 1 ? "" : "s");
    return 1;
}

RILL_API int rill_harness_push(rill_harness *h, int input, const void *rec, size_t len,
                               int64_t ts)
{
    int rc = usable(h);
    if (rc)
        return rc;
    if (bad_input(h, input))
        return RILL_EINVAL;
    if (!rec && len) {
        rill__fmt(h->msg, "harness: record is NULL with length %zu", len);
        return RILL_EINVAL;
    }
    rill_ctx *t = h->target;
    if (!t) {
        rill_ctx *in = h->inputs[input];
        in->h.ts = ts;
        rc = rill__emit(in, rec, len, ts);
        if (!rc)
            rc = rill__idle_resume(in);
        return after(h, rc);
    }
    const rill__node *n = t->node;
    const rill__edge *e = NULL;
    for (size_t i = 0; i < n->n_in && !e; i++)
        if (n->in[i].slot == input)
            e = &n->in[i];
    t->input = input;
    t->h.ts = ts;
    if (t->track->idle[input] && (rc = rill__wmtrack_status(t->track, t, input, 0)))
        return after(h, rc);
    if (t->keyed && !(n->bc_input && input == 1) &&
        (rc = rill__op_key_from(t, &e->part, rec, len)))
        return after(h, rc);
    return after(h, n->def->process(t, rec, len));
}

RILL_API int rill_harness_watermark(rill_harness *h, int input, int64_t wm)
{
    int rc = usable(h);
    if (rc)
        return rc;
    if (bad_input(h, input))
        return RILL_EINVAL;
    if (h->target)
        return after(h, rill__wmtrack_watermark(h->target->track, h->target, input, wm));
    return after(h, rill__op_watermark(h->inputs[input], wm));
}

RILL_API int rill_harness_set_time(rill_harness *h, int64_t now)
{
    int rc = usable(h);
    if (rc)
        return rc;
    if (now < h->job->clock) {
        rill__fmt(h->msg, "harness: time %lld is before the clock's %lld", (long long)now,
                  (long long)h->job->clock);
        return RILL_EINVAL;
    }
    h->job->clock = now;
    return after(h, RILL_OK);
}

RILL_API int rill_harness_end(rill_harness *h)
{
    int rc = usable(h);
    if (rc)
        return rc;
    if (h->target) {
        for (int i = 0; i < h->n_slots && !rc; i++)
            rc = rill__wmtrack_end(h->target->track, h->target, i);
        if (rc)
            return fail(h, rc);
    } else {
        for (size_t i = 0; i < h->job->n_subs && !rc; i++) {
            rill__subtask *st = h->job->subs[i];
            if (st->gate)
                continue;
            rc = rill__op_watermark(st->ops[0], RILL_TS_MAX);
            if (!rc) {
                h->closed[i] = 1;
                rc = rill__subtask_close(st, 1);
            }
            if (!rc)
                rc = rill__subtask_end_outputs(st);
        }
        if (!rc)
            rc = pump(h);
        if (rc)
            return fail(h, rc);
    }
    for (size_t i = 0; i < h->job->n_subs && !rc; i++)
        if (!h->closed[i]) {
            h->closed[i] = 1;
            rc = rill__subtask_close(h->job->subs[i], 1);
        }
    h->ended = 1;
    atomic_fetch_sub(&h->env->running, 1);
    return rc ? fail(h, rc) : RILL_OK;
}

/* ---- reading -------------------------------------------------------------- */

RILL_API size_t rill_harness_count(const rill_harness *h, const char *output)
{
    const hout *o = h ? find_out(h, output) : NULL;
    return o ? o->n : 0;
}

RILL_API int rill_harness_output(const rill_harness *h, const char *output, size_t i,
                                 rill_record *rec)
{
    if (!h || !rec)
        return RILL_EINVAL;
    const hout *o = find_out(h, output);
    if (!o || i >= o->n)
        return RILL_ENOTFOUND;
    const item *it = &o->items[i];
    rec->data = it->kind == RILL_HARNESS_RECORD ? it->data : NULL;
    rec->len = it->len;
    rec->ts = it->ts;
    return it->kind;
}

RILL_API void rill_harness_clear(rill_harness *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_outs; i++) {
        for (size_t k = 0; k < h->outs[i].n; k++)
            rill__free(h->outs[i].items[k].data);
        h->outs[i].n = 0;
    }
}

RILL_API rill_state *rill_harness_state(rill_harness *h, const char *name, const void *key,
                                        size_t key_len)
{
    if (!h || !name || (!key && key_len) || key_len > RILL_KEY_MAX)
        return NULL;
    rill_ctx *c = h->target;
    const char *sname = name;
    if (!c) {
        const char *slash = strrchr(name, '/');
        if (!slash)
            return NULL;
        size_t ul = (size_t)(slash - name);
        for (size_t i = 0; i < h->job->n_ctxs && !c; i++) {
            rill_ctx *x = h->job->ctxs[i];
            const char *uid = x->node->resolved_uid;
            if (uid && strlen(uid) == ul && memcmp(uid, name, ul) == 0)
                c = x;
        }
        sname = slash + 1;
    }
    if (!c)
        return NULL;
    uint16_t kg = (uint16_t)(XXH3_64bits(key, key_len) % (uint64_t)h->job->max_parallelism);
    return rill__op_set_key(c, key, key_len, kg) ? NULL : rill__state_find(c, sname);
}

RILL_API size_t rill_harness_timers(const rill_harness *h, rill_time_domain domain)
{
    if (!h || (domain != RILL_EVENT_TIME && domain != RILL_PROCESSING_TIME))
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < h->job->n_ctxs; i++) {
        rill__timers *t = h->job->ctxs[i]->timers[domain];
        if (t)
            n += rill__timers_count(t);
    }
    return n;
}
