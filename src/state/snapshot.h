/* snapshot.h - snapshot and restore of the state of one operator subtask:
 * keyed state (from its LMDB store), timers, operator list state and
 * broadcast state, as sections of a snapshot file (snapshot/format.h).
 *
 * Every section carries the operator's uid (op->node->resolved_uid) and,
 * but for timers, the state's name. Payloads are sequences of entries
 * (rill__snap_writer_kv). What the entries hold:
 *
 *   info       one per declared state (kg 0xffff): entries "kind" -> the
 *              kind's name ("value", "list", "map", "reducing",
 *              "aggregating", "operator list", "broadcast") and "ttl" ->
 *              the TTL in ms, in decimal ("0": none). Restore refuses a
 *              state whose kind or TTL presence changed.
 *   keyed      one per state and key group that has records, kg_first =
 *              kg_last = the key group, in increasing key-group order.
 *              One entry per LMDB record, in LMDB order: the record's key
 *              without its 2-byte key-group prefix (key length u16 BE |
 *              key | namespace length u16 BE | namespace | map key for map
 *              state, see kv.h) and its value as stored (TTL header and
 *              list encoding included, native byte order), so restore puts
 *              the records back byte for byte. A long record (kv.h: a key
 *              longer than LMDB's key size) gives the entries its key would
 *              give as direct records (one per map entry), keys of any
 *              length (never a hash), somewhere among the entries of its
 *              key group; restore stores them in long records again.
 *   timers     one per time domain that has timers, state name "event" or
 *              "processing", kg_first..kg_last = the key groups of the
 *              subtask (widened to the timers' own key groups should any
 *              lie outside). Entries in time order: key = key group (u16
 *              BE) | time (u64 BE of the time + 2^63, so keys sort by key
 *              group then time) | key; value empty.
 *   operator list  one per state (kg 0xffff), also when empty: one entry
 *              per element, in list order: key = the writing subtask's
 *              index (u32 BE) | the element's index (u64 BE); value = the
 *              element.
 *   broadcast  one per state (kg 0xffff), also when empty: the map's
 *              entries in key order (key, value).
 *
 * Restore runs on the subtask's thread; a snapshot's keyed part may be
 * written by another.
 */
#ifndef RILL_STATE_SNAPSHOT_H
#define RILL_STATE_SNAPSHOT_H

#include <stddef.h>

#include "runtime/task.h"
#include "snapshot/format.h"

/* A snapshot of op's state in two parts. The first, on the subtask's
 * thread, writes into w (no section open) the info, timers, operator list
 * and broadcast sections, and takes a view of the keyed state (kv.h: a
 * copy of the dirty cache entries and an LMDB read transaction; nothing
 * is written to LMDB); *keyed gets it, or NULL when op has no keyed
 * state. The second writes the keyed sections from that view, on any
 * thread, while the subtask goes on; the operator may even close
 * meanwhile (its store waits for the view). cancel (may be NULL) is asked
 * every few thousand records; when it returns non-zero the write stops
 * with RILL_ECANCELED. Free the view with rill__state_snapshot_free as
 * soon as it is written (the store cannot grow its map until then).
 *
 * Sections of one operator thus come as: info, timers, operator list,
 * broadcast, keyed. An operator with neither states nor timers writes
 * nothing. Errors: RILL_EINVAL for an operator without a resolved uid,
 * RILL_EIO, RILL_ENOMEM, RILL_ECANCELED or the writer's error, with a
 * message in err (RILL__ERRMSG_MAX bytes) naming the operator, the state
 * and the file; w is then unusable (abort it). */
typedef struct rill__state_snap rill__state_snap;
int rill__state_snapshot_begin(rill_ctx *op, rill__snap_writer *w, rill__state_snap **keyed,
                               char *err);
int rill__state_snapshot_keyed(rill__state_snap *keyed, rill__snap_writer *w,
                               int (*cancel)(void *), void *cancel_arg, char *err);
/* Accepts NULL. */
void rill__state_snapshot_free(rill__state_snap *keyed);
/* Both parts at once, on the subtask's thread. */
int rill__state_snapshot(rill_ctx *op, rill__snap_writer *w, char *err);

/* Restore op's state from the snapshot files paths[0..n) (every data file
 * of one checkpoint or savepoint, written at any parallelism, in any
 * order). Call after rill__state_open and the operator's own open, so
 * op->states, op->kv and op->timers exist, and before any record; the
 * state should be empty (keyed records of the snapshot overwrite equal
 * keys, the lists replace the operator list and broadcast states).
 *
 * Only sections whose uid is op's resolved uid are used:
 *  - keyed records and timers of the key groups this subtask owns (kg
 *    owned iff kg * op->parallelism / max parallelism == op->subtask, the
 *    max parallelism being op->st->job->max_parallelism; a key group at or
 *    above it is RILL_EINVAL: the max parallelism changed);
 *  - operator list state: the elements of every old subtask, ordered by
 *    (old subtask, index), are dealt round-robin: the i-th goes to subtask
 *    i % parallelism (an even split);
 *  - broadcast state: the section of the first file (in paths order) that
 *    has one (every subtask holds the same);
 *  - after processing-time timers are restored, the operator is woken at
 *    the earliest (rill__op_wake), so timers already due fire at once.
 *
 * Nothing is applied before everything to be used has been read and
 * verified: a first pass reads every section it will use to its end
 * (checksums, entry layout) and stages timers, operator list and
 * broadcast state in memory; a second pass reads the keyed sections again
 * and writes their records straight into LMDB in large transactions
 * (memory stays bounded, state larger than memory restores). Sections not
 * used (other operators, key groups of other subtasks) are not verified.
 *
 * Errors, with a message in err (RILL__ERRMSG_MAX bytes):
 *  RILL_ECORRUPT / RILL_ENOTFOUND / RILL_EIO: a corrupt, truncated,
 *    foreign or missing file (the message names the file); the state is
 *    left untouched (a file that changes between the two passes, or an
 *    I/O or LMDB failure while applying, leaves the state empty instead);
 *  RILL_EINVAL: a section for a state the operator does not declare
 *    ("state 'x' of operator 'y' in the snapshot is not declared"), or
 *    timers for an operator without timers, unless allow_unknown is set
 *    (then they are skipped); a state whose kind or TTL presence differs
 *    from its declaration; a key group beyond the max parallelism; an
 *    operator without a resolved uid or a subtask out of range;
 *  RILL_ENOMEM. */
int rill__state_restore(rill_ctx *op, const char *const *paths, size_t n, int allow_unknown,
                        char *err);

#endif
