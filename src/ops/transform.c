/* transform.c - map, filter, flat_map and the identity of declared streams. */
#include "ops/op.h"

static int map_process(rill_ctx *op, const void *rec, size_t len)
{
    uint64_t before = op->h.emits;
    int rc = op->fn.process(op, rec, len, op->ud);
    if (rc)
        return rill__user_fail(op, "map function", rc);
    return op->h.emits - before == 1 ? RILL_OK : rill__one_emit_fail(op, before, "map", "flat_map");
}

int rill__one_emit_fail(rill_ctx *op, uint64_t before, const char *kind, const char *instead)
{
    if (rill__stopping(op))
        return RILL_ECANCELED;
    rill__job_fail(op->st->job, RILL_EUSER, op->node->name,
                   "%s '%s' emitted %llu records for one input; a %s emits exactly one (use %s "
                   "for 0..n)",
                   kind, op->node->name, (unsigned long long)(op->h.emits - before), kind, instead);
    return RILL_EUSER;
}

static int filter_entry(rill_ctx *op, const void *rec, size_t len, void *unused)
{
    (void)unused;
    int rc = op->fn.filter(op, rec, len, op->ud);
    if (rc == 1)
        return rill__forward_tail(op, rec, len, op->h.ts);
    if (rc == 0)
        return RILL_OK;
    return rill__user_fail(op, "filter function", rc);
}

static int filter_process(rill_ctx *op, const void *rec, size_t len)
{
    int rc = filter_entry(op, rec, len, NULL);
    return rc ? rill__forward_failed(op, rc) : RILL_OK;
}

static int flat_map_process(rill_ctx *op, const void *rec, size_t len)
{
    int rc = op->fn.process(op, rec, len, op->ud);
    return rc ? rill__user_fail(op, "flat_map function", rc) : RILL_OK;
}

static int identity_process(rill_ctx *op, const void *rec, size_t len)
{
    return rill__forward(op, rec, len, op->h.ts);
}

const rill__opdef rill__op_map = {
    .default_name = "map",
    .process = map_process,
};
const rill__opdef rill__op_filter = {
    .default_name = "filter",
    .process = filter_process,
    .entry = filter_entry,
    .tails = 1,
};
const rill__opdef rill__op_flat_map = {
    .default_name = "flat_map",
    .process = flat_map_process,
};
const rill__opdef rill__op_identity = {
    .default_name = "declared",
    .process = identity_process,
};
