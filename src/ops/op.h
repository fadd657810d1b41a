/* op.h - the operator kinds (each implements rill__opdef, runtime/task.h). */
#ifndef RILL_OPS_OP_H
#define RILL_OPS_OP_H

#include "runtime/task.h"


extern const rill__opdef rill__op_source;
extern const rill__opdef rill__op_from_array;
extern const rill__opdef rill__op_from_records;
extern const rill__opdef rill__op_generator;
extern const rill__opdef rill__op_file_source;
extern const rill__opdef rill__op_map;
extern const rill__opdef rill__op_filter;
extern const rill__opdef rill__op_flat_map;
extern const rill__opdef rill__op_identity;
extern const rill__opdef rill__op_sink;
extern const rill__opdef rill__op_print;
extern const rill__opdef rill__op_file_sink;
extern const rill__opdef rill__op_process;
extern const rill__opdef rill__op_co_process;
extern const rill__opdef rill__op_co_map;
extern const rill__opdef rill__op_assign;
extern const rill__opdef rill__op_harness_input;
extern const rill__opdef rill__op_reduce;
extern const rill__opdef rill__op_twophase;
extern const rill__opdef rill__op_file_eo;
extern const rill_twophase_fns rill__file_eo_fns;

/* A map-like operator (kind) emitted other than one record for an input
 * since op->emits was `before`: fail the job (RILL_EUSER), naming instead
 * as the operator to use. */
int rill__one_emit_fail(rill_ctx *op, uint64_t before, const char *kind, const char *instead);

/* The line for rec: formatted by the node's format function (into *buf of
 * *cap bytes, grown as needed) or the record's bytes. */
int rill__format_line(rill_ctx *op, void *user_data, const void *rec, size_t len, char **buf,
                      size_t *cap, const char **text, size_t *n);
extern const rill__opdef rill__op_aggregate;

#endif
