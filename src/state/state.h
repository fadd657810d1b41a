/* state.h - keyed and operator state of one operator subtask.
 *
 * Keyed kinds (value, list, map, reducing, aggregating) live in an LMDB
 * environment per stateful operator subtask (kv.h) behind a bounded
 * write-back cache. Operator list state and broadcast state live in memory.
 * The public rill_state_* / rill_list_* / rill_map_* calls (state.c) act on
 * the operator's current key (op->key, op->key_len, op->kg).
 */
#ifndef RILL_STATE_STATE_H
#define RILL_STATE_STATE_H

#include "runtime/task.h"

/* Open the states the operator's node declares (op->node->states): makes
 * op->states (one handle per descriptor, same order) and, when any is
 * keyed, the store under dir (created; removed again by close). On error
 * returns the code and sets a message in err (RILL__ERRMSG_MAX bytes)
 * naming the operator and the state or file. */
int rill__state_open(rill_ctx *op, const char *dir, size_t cache_bytes, char *err);
/* Does the operator's node declare keyed state (which needs dir)? */
int rill__state_keyed(const rill_ctx *op);
/* Release everything state_open made (accepts an op without states). */
void rill__state_close(rill_ctx *op);
/* Background work (TTL cleanup of a bounded number of entries); called
 * from time to time on the subtask's thread with the processing time. */
int rill__state_maintain(rill_ctx *op, int64_t now);
/* Write every dirty cached entry to LMDB (checkpoint barriers). */
int rill__state_flush(rill_ctx *op);
/* The handle of the state called name, or NULL (rill_ctx_state without its
 * message). */
rill_state *rill__state_find(rill_ctx *op, const char *name);

#endif
