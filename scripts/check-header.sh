#!/bin/sh
# check-header.sh - the public headers stand alone: include/rill.h, and
# each module header include/rill/*.h it includes, is compiled as the only
# include of a translation unit, as C11 and C99 (-pedantic -Wall -Wextra
# -Werror) and as C++11; rill.h also without its inline functions
# (RILL_NO_INLINE), and the C++ object must refer to the functions by their
# C names (extern "C"). rill.h must include every module header.
#
#   sh scripts/check-header.sh [CC [CXX]]

CC=${1:-${CC:-cc}}
CXX=${2:-${CXX:-c++}}
root=$(cd "$(dirname "$0")/.." && pwd) || exit 1
inc=$root/include

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rill-header.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# Included twice: the include guard must hold. Uses types, macros, callback
# typedefs and a few functions, as a host program would.
cat >"$tmp/use.c" <<'SRC'
#include "rill.h"
#include "rill.h"

int rill_header_probe(void);

static int probe_map(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    (void)user_data;
    return rill_emit(ctx, rec, len);
}

int rill_header_probe(void)
{
    static const int values[3] = {1, 2, 3};
    rill_record rec = {0, 0, RILL_TS_MIN};
    rill_process_fn fn = probe_map;
    rill_env *env = rill_env_new();
    rill_stream *s;
    int rc;

    if (env == 0)
        return RILL_ENOMEM;
    s = rill_from_array(env, 0, values, sizeof values[0], 3);
    s = rill_map(s, "probe", fn, 0);
    (void)rill_sink_print(s, 0, RILL_STDOUT, 0, 0);
    rc = rill_env_execute(env, "header probe");
    rill_env_free(env);
    if (rec.len != 0 || RILL_VERSION_HEX != ((RILL_VERSION_MAJOR << 16) |
                                            (RILL_VERSION_MINOR << 8) |
                                            RILL_VERSION_PATCH))
        return RILL_EINVAL;
    return rc == RILL_OK ? RILL_OK : (int)rill_strerror(rc)[0];
}

/* The calls that take or return an enum, with its values (C++ converts no
 * int to an enum), and a call of each module header that the probe above
 * does not use, so that the C++ linkage check covers every header. */
int rill_header_enums(rill_env *env, rill_stream *s, rill_ctx *ctx, rill_harness *h);

int rill_header_enums(rill_env *env, rill_stream *s, rill_ctx *ctx, rill_harness *h)
{
    rill_job_state st = rill_job_status(0);
    int rc = rill_set_logger(0, RILL_LOG_WARN, 0);

    s = rill_stream_add_state(s, "seen", RILL_STATE_VALUE);
    s = rill_aggregate(s, "sum", RILL_AGG_SUM, 0, RILL_FIELD_I64);
    (void)rill_sink_print(s, 0, RILL_STDERR, 0, 0);
    rc |= rill_env_enable_checkpointing(env, 1000, "chk", RILL_AT_LEAST_ONCE);
    rc |= rill_env_set_restart_strategy(env, RILL_RESTART_FIXED_DELAY, 3, 10, 10);
    rc |= rill_timer_register(ctx, RILL_EVENT_TIME, 0);
    rc |= rill_timer_delete(ctx, RILL_PROCESSING_TIME, 0);
    rc |= rill_ctx_watermark(ctx) == RILL_TS_MIN;
    return rc | (int)rill_harness_timers(h, RILL_EVENT_TIME) | (st == RILL_JOB_INVALID);
}
SRC
cp "$tmp/use.c" "$tmp/use.cpp"

status=0

compile() { # compile DESCRIPTION COMPILER ARGS...
    what=$1
    shift
    if out=$("$@" 2>&1); then
        echo "header-check: $what: ok"
    else
        echo "header-check: $what: FAILED"
        echo "  \$ $*"
        printf '%s\n' "$out" | sed 's/^/  /'
        status=1
    fi
}

cflags="-pedantic -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror"
cxxflags="-pedantic -Wall -Wextra -Werror"
have_cxx=
if command -v "$CXX" >/dev/null 2>&1; then
    have_cxx=yes
else
    echo "header-check: C++ compiler '$CXX' not found (sh scripts/deps.sh installs one)"
    status=1
fi

# Each module header alone, included twice (its include guard must hold),
# in C11, C99 and C++11; rill.h must include it.
modules=$(cd "$inc" && ls rill/*.h 2>/dev/null)
if [ -z "$modules" ]; then
    echo "header-check: no module headers in $inc/rill"
    status=1
fi
for m in $modules; do
    name=$(basename "$m" .h)
    printf '#include "%s"\n#include "%s"\n' "$m" "$m" >"$tmp/$name.c"
    cp "$tmp/$name.c" "$tmp/$name.cpp"
    # shellcheck disable=SC2086
    compile "$m alone, C11 ($CC)" "$CC" -std=c11 $cflags -I"$inc" -c "$tmp/$name.c" \
        -o "$tmp/$name-c11.o"
    # shellcheck disable=SC2086
    compile "$m alone, C99 ($CC)" "$CC" -std=c99 $cflags -I"$inc" -c "$tmp/$name.c" \
        -o "$tmp/$name-c99.o"
    if [ -n "$have_cxx" ]; then
        # shellcheck disable=SC2086
        compile "$m alone, C++11 ($CXX)" "$CXX" -std=c++11 $cxxflags -I"$inc" \
            -c "$tmp/$name.cpp" -o "$tmp/$name-cxx.o"
    fi
    if ! grep -q "^#include \"$m\"\$" "$inc/rill.h"; then
        echo "header-check: rill.h does not include $m"
        status=1
    fi
done

# $cflags is a word list: split on purpose.
# shellcheck disable=SC2086
compile "C11 ($CC)" "$CC" -std=c11 $cflags -I"$inc" -c "$tmp/use.c" -o "$tmp/c11.o"
# shellcheck disable=SC2086
compile "C99 ($CC)" "$CC" -std=c99 $cflags -I"$inc" -c "$tmp/use.c" -o "$tmp/c99.o"
# shellcheck disable=SC2086
compile "C11 without inline functions ($CC)" "$CC" -std=c11 $cflags -DRILL_NO_INLINE \
    -I"$inc" -c "$tmp/use.c" -o "$tmp/noinline.o"

if [ -n "$have_cxx" ]; then
    # shellcheck disable=SC2086
    compile "C++11 ($CXX)" "$CXX" -std=c++11 $cxxflags -I"$inc" -c "$tmp/use.cpp" -o "$tmp/cxx.o"
    # The C++ object must call the C functions by their plain names.
    if [ -f "$tmp/cxx.o" ] && command -v nm >/dev/null 2>&1; then
        undef=$(nm -u "$tmp/cxx.o" | awk '{print $NF}')
        mangled=$(printf '%s\n' "$undef" | grep '^_Z.*rill_' || true)
        if [ -n "$mangled" ]; then
            echo "header-check: C++ linkage: FAILED: mangled references (missing extern \"C\"?):"
            printf '%s\n' "$mangled" | sed 's/^/  /'
            status=1
        elif printf '%s\n' "$undef" | grep -qx 'rill_env_new'; then
            echo "header-check: C++ linkage: ok"
        else
            echo "header-check: C++ linkage: FAILED: no reference to rill_env_new in the C++ object"
            status=1
        fi
    fi
fi

exit $status
