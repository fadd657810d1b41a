/* channel.c - bounded channels and input gates (see channel.h). */
#include "runtime/channel.h"

#include <errno.h>

#include "rill.h"
#include "util/alloc.h"
#include "util/clock.h"

rill__gate *rill__gate_new(size_t buf_size, int capacity, const atomic_int *stopping)
{
    rill__gate *g = rill__calloc(1, sizeof *g);
    if (!g)
        return NULL;
    if (pthread_mutex_init(&g->mu, NULL)) {
        rill__free(g);
        return NULL;
    }
    if (rill__cond_init_monotonic(&g->cv_data)) {
        pthread_mutex_destroy(&g->mu);
        rill__free(g);
        return NULL;
    }
    g->buf_size = buf_size;
    g->capacity = capacity;
    g->stopping = stopping;
    return g;
}

static void free_chan(rill__chan *c)
{
    for (int i = 0; i < c->count; i++) {
        rill__event *ev = &c->ring[(c->head + i) % c->ring_cap];
        if (ev->kind == RILL__EV_DATA)
            rill__free(ev->buf);
    }
    while (c->free_bufs) {
        rill__buf *b = c->free_bufs;
        c->free_bufs = b->next;
        rill__free(b);
    }
    rill__free(c->cur);
    rill__free(c->ring);
    pthread_cond_destroy(&c->cv_space);
    rill__free(c);
}

void rill__gate_free(rill__gate *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_ch; i++)
        free_chan(g->ch[i]);
    rill__free(g->ch);
    pthread_cond_destroy(&g->cv_data);
    pthread_mutex_destroy(&g->mu);
    rill__free(g);
}

rill__chan *rill__gate_add_channel(rill__gate *g, int input)
{
    size_t cap = (size_t)g->cap_ch;
    if (rill__grow((void **)&g->ch, &cap, (size_t)g->n_ch + 1, sizeof *g->ch))
        return NULL;
    g->cap_ch = (int)cap;
    rill__chan *c = rill__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    /* Room for `capacity` buffers plus the END event. */
    c->ring_cap = g->capacity + 1;
    c->ring = rill__calloc((size_t)c->ring_cap, sizeof *c->ring);
    if (!c->ring || rill__cond_init_monotonic(&c->cv_space)) {
        rill__free(c->ring);
        rill__free(c);
        return NULL;
    }
    c->gate = g;
    c->input = input;
    c->idx = g->n_ch;
    c->deadline = INT64_MAX;
    g->ch[g->n_ch++] = c;
    return c;
}

rill__buf *rill__buf_new(size_t cap)
{
    rill__buf *b = rill__malloc(sizeof *b + cap);
    if (!b)
        return NULL;
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    b->nrec = 0;
    return b;
}

static int stopping(const rill__gate *g)
{
    return atomic_load_explicit(g->stopping, memory_order_acquire);
}

int rill__chan_send(rill__chan *c, rill__event ev, rill__buf **spare)
{
    rill__gate *g = c->gate;
    pthread_mutex_lock(&g->mu);
    if (ev.kind == RILL__EV_DATA) {
        while (c->data_count >= g->capacity && !g->unbounded && !stopping(g)) {
            c->producer_waiting = 1;
            pthread_cond_wait(&c->cv_space, &g->mu);
            c->producer_waiting = 0;
        }
        if (stopping(g)) {
            /* Keep the buffer so that it is freed with the channel. */
            ev.buf->next = c->free_bufs;
            c->free_bufs = ev.buf;
            pthread_mutex_unlock(&g->mu);
            return RILL_ECANCELED;
        }
        c->data_count++;
        if (spare) {
            *spare = c->free_bufs;
            if (*spare) {
                c->free_bufs = (*spare)->next;
                (*spare)->used = 0;
                (*spare)->nrec = 0;
            }
        }
    }
    if (c->count == c->ring_cap) {
        /* Data is bounded by capacity; END, barriers and, under a harness
         * (one thread plays every subtask, so never block), data too may
         * need more room. */
        rill__event *nr = rill__malloc(sizeof *nr * (size_t)c->ring_cap * 2);
        if (!nr) {
            if (ev.kind == RILL__EV_DATA) {
                c->data_count--;
                if (spare && *spare) {
                    (*spare)->next = c->free_bufs;
                    c->free_bufs = *spare;
                    *spare = NULL;
                }
            }
            pthread_mutex_unlock(&g->mu);
            if (ev.kind == RILL__EV_DATA)
                rill__free(ev.buf);
            return RILL_ENOMEM;
        }
        for (int i = 0; i < c->count; i++)
            nr[i] = c->ring[(c->head + i) % c->ring_cap];
        rill__free(c->ring);
        c->ring = nr;
        c->head = 0;
        c->ring_cap *= 2;
    }
    c->ring[(c->head + c->count) % c->ring_cap] = ev;
    c->count++;
    if (!c->blocked) {
        g->pending++;
        if (g->consumer_waiting)
            pthread_cond_signal(&g->cv_data);
    }
    pthread_mutex_unlock(&g->mu);
    return RILL_OK;
}

int rill__gate_next(rill__gate *g, rill__event *ev, rill__chan **from, int64_t deadline_ms,
                    rill__buf *recycle, rill__chan *recycle_ch)
{
    pthread_mutex_lock(&g->mu);
    if (recycle) {
        if (recycle->cap == g->buf_size) {
            recycle->next = recycle_ch->free_bufs;
            recycle_ch->free_bufs = recycle;
        } else {
            rill__free(recycle);
        }
    }
    while (g->pending == 0) {
        if (stopping(g)) {
            pthread_mutex_unlock(&g->mu);
            return RILL_ECANCELED;
        }
        if (g->poked) {
            g->poked = 0;
            pthread_mutex_unlock(&g->mu);
            return 0;
        }
        g->consumer_waiting = 1;
        if (deadline_ms == INT64_MAX) {
            pthread_cond_wait(&g->cv_data, &g->mu);
        } else {
            struct timespec ts = rill__deadline_ts(deadline_ms);
            int rc = pthread_cond_timedwait(&g->cv_data, &g->mu, &ts);
            if (rc == ETIMEDOUT && g->pending == 0) {
                g->consumer_waiting = 0;
                pthread_mutex_unlock(&g->mu);
                return 0;
            }
        }
        g->consumer_waiting = 0;
    }
    int n = g->n_ch;
    for (int k = 0; k < n; k++) {
        int i = (g->rr + k) % n;
        rill__chan *c = g->ch[i];
        if (c->count == 0 || c->blocked)
            continue;
        *ev = c->ring[c->head];
        c->head = (c->head + 1) % c->ring_cap;
        c->count--;
        g->pending--;
        if (ev->kind == RILL__EV_DATA) {
            c->data_count--;
            if (c->producer_waiting)
                pthread_cond_signal(&c->cv_space);
        }
        g->rr = (i + 1) % n;
        *from = c;
        pthread_mutex_unlock(&g->mu);
        return 1;
    }
    pthread_mutex_unlock(&g->mu);
    return 0; /* unreachable: pending > 0 means some channel has an event */
}

void rill__gate_block(rill__gate *g, rill__chan *c)
{
    pthread_mutex_lock(&g->mu);
    if (!c->blocked) {
        c->blocked = 1;
        g->pending -= c->count;
    }
    pthread_mutex_unlock(&g->mu);
}

void rill__gate_unblock_all(rill__gate *g)
{
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < g->n_ch; i++) {
        rill__chan *c = g->ch[i];
        if (c->blocked) {
            c->blocked = 0;
            g->pending += c->count;
        }
    }
    pthread_mutex_unlock(&g->mu);
}

void rill__gate_poke(rill__gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->poked = 1;
    pthread_cond_broadcast(&g->cv_data);
    pthread_mutex_unlock(&g->mu);
}

void rill__gate_wake(rill__gate *g)
{
    pthread_mutex_lock(&g->mu);
    pthread_cond_broadcast(&g->cv_data);
    for (int i = 0; i < g->n_ch; i++)
        pthread_cond_broadcast(&g->ch[i]->cv_space);
    pthread_mutex_unlock(&g->mu);
}
