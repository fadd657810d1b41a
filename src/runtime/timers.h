/* timers.h - the timers of one operator subtask in one time domain.
 *
 * A timer is (time, key group, key); there is at most one per (key, time):
 * adding it again does nothing. Timers come out in time order (ties in any
 * order). Deleting is O(1): the entry is dropped from the set and skipped
 * when it reaches the top of the heap.
 */
#ifndef RILL_RUNTIME_TIMERS_H
#define RILL_RUNTIME_TIMERS_H

#include <stddef.h>
#include <stdint.h>

typedef struct rill__timers rill__timers;

/* NULL when out of memory. */
rill__timers *rill__timers_new(void);
void rill__timers_free(rill__timers *t);
/* 1 added, 0 already there, RILL_ENOMEM. */
int rill__timers_add(rill__timers *t, int64_t ts, uint16_t kg, const void *key, size_t key_len);
/* 1 deleted, 0 there was none. */
int rill__timers_del(rill__timers *t, int64_t ts, const void *key, size_t key_len);
/* Number of live timers. */
size_t rill__timers_count(const rill__timers *t);
/* Time of the earliest live timer, INT64_MAX when none. */
int64_t rill__timers_next(rill__timers *t);
/* Take the earliest live timer if its time is <= limit: returns 1 with
 * *ts, *kg and *key (borrowed, valid until the next call on t) set, 0 when
 * there is none that early. */
int rill__timers_pop(rill__timers *t, int64_t limit, int64_t *ts, uint16_t *kg,
                     const void **key, size_t *key_len);
/* Call fn for every live timer in time order (snapshots); stops at and
 * returns fn's first non-zero result. */
int rill__timers_foreach(rill__timers *t,
                         int (*fn)(int64_t ts, uint16_t kg, const void *key, size_t key_len,
                                   void *arg),
                         void *arg);

#endif
