/* prefetch.h - a hint from the runtime that keyed state of a key will be
 * used soon, so the cache lines it needs are fetched while other records
 * are processed (memory latency dominates the state calls of a large key
 * space; a loop that hints a few records ahead overlaps those misses). */
#ifndef RILL_STATE_PREFETCH_H
#define RILL_STATE_PREFETCH_H

#include "runtime/task.h"

/* For every keyed state of op, prefetch what a call with current key
 * (kg, key, key_len) and no namespace will touch. Call with stage 0 for the
 * record D positions ahead and stage 1 for the record about D/2 ahead
 * (D around 8-16). No effect on results; cheap when op has no keyed
 * state. */
void rill__state_prefetch(rill_ctx *op, uint16_t kg, const void *key, size_t key_len, int stage);

#endif
