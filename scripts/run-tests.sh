#!/bin/sh
# run-tests.sh - run Criterion test binaries and add up their results.
#
#   sh scripts/run-tests.sh TEST-BINARY...
#
# Each binary's own report (failures and its "Synthesis" line) is shown as
# it runs. The last line printed is "N passed, N failed", the totals over
# every binary; crashed tests count as failed, and a binary that dies
# without a summary, or exits non-zero while reporting no failure, counts
# as one failed test. Exit status 0 only when nothing failed.
#
# Environment:
#   RILL_TEST_JOBS      Criterion --jobs value (default: Criterion's, one per CPU)
#   RILL_TEST_TIMEOUT   Criterion --timeout value (in Criterion 2.4 it only caps
#                       tests that set their own .timeout)
#   RILL_BINARY_TIMEOUT hard limit in seconds for one whole binary (default 1800;
#                       needs timeout(1))
#   RILL_TEST_ARGS      extra arguments for every binary

if [ $# -eq 0 ]; then
    echo "usage: sh scripts/run-tests.sh TEST-BINARY..." >&2
    echo "0 passed, 0 failed"
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rill-tests.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

binary_timeout=${RILL_BINARY_TIMEOUT:-1800}
esc=$(printf '\033')

total_pass=0
total_fail=0
bad=

for bin in "$@"; do
    name=${bin##*/}
    echo "== $name"
    if [ ! -x "$bin" ]; then
        echo "-- $name: not found or not executable: $bin"
        total_fail=$((total_fail + 1))
        bad="$bad $name"
        continue
    fi

    set --
    [ -n "${RILL_TEST_TIMEOUT:-}" ] && set -- "$@" --timeout "$RILL_TEST_TIMEOUT"
    [ -n "${RILL_TEST_JOBS:-}" ] && set -- "$@" --jobs "$RILL_TEST_JOBS"
    limit=
    command -v timeout >/dev/null 2>&1 && limit="timeout -k 10 $binary_timeout"

    # Show the report as it comes and keep it; the exit status goes to a
    # file as the pipeline would lose it.
    echo 255 >"$tmp/rc"
    # $limit and $RILL_TEST_ARGS are word lists: split on purpose.
    # shellcheck disable=SC2086
    { $limit "$bin" "$@" ${RILL_TEST_ARGS:-} </dev/null 2>&1; echo $? >"$tmp/rc"; } |
        tee "$tmp/log"
    rc=$(cat "$tmp/rc")

    # The last Synthesis line, without colour codes:
    # "[====] Synthesis: Tested: X | Passing: Y | Failing: Z | Crashing: W"
    line=$(sed "s/$esc\[[0-9;]*m//g" "$tmp/log" | grep 'Synthesis: Tested:' | tail -n 1)
    tested=$(printf '%s\n' "$line" | sed -n 's/.*Tested: *\([0-9][0-9]*\).*/\1/p')
    passing=$(printf '%s\n' "$line" | sed -n 's/.*Passing: *\([0-9][0-9]*\).*/\1/p')
    failing=$(printf '%s\n' "$line" | sed -n 's/.*Failing: *\([0-9][0-9]*\).*/\1/p')
    crashing=$(printf '%s\n' "$line" | sed -n 's/.*Crashing: *\([0-9][0-9]*\).*/\1/p')

    if [ -z "$tested" ] || [ -z "$passing" ] || [ -z "$failing" ] || [ -z "$crashing" ]; then
        case $rc in
            124) why="killed after ${binary_timeout}s" ;;
            0) why="no summary" ;;
            *) why="died without a summary, exit status $rc" ;;
        esac
        echo "-- $name: $why: counted as 1 failed"
        if grep -q 'Could not initialize inheritable arena' "$tmp/log"; then
            echo "   (Criterion could not set up its shared memory arena; this is what"
            echo "   Criterion 2.4 does under ThreadSanitizer, whose memory layout overlaps it)"
        fi
        total_fail=$((total_fail + 1))
        bad="$bad $name"
        continue
    fi

    # Criterion counts crashes among the failures; count every test that
    # ran and did not pass, whichever way the totals are split.
    failed=$((tested - passing))
    [ "$failed" -lt "$failing" ] && failed=$failing
    [ "$failed" -lt "$crashing" ] && failed=$crashing
    # Criterion ignores the exit status of a test process that a sanitizer
    # reported on (a leak found at exit, say): a report fails the binary.
    if sed "s/$esc\[[0-9;]*m//g" "$tmp/log" |
        grep -qE '^(SUMMARY: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|WARNING: ThreadSanitizer)'; then
        echo "-- $name: a sanitizer reported a problem (see above): counted as 1 failed"
        if [ "$failed" -eq 0 ]; then
            failed=1
            [ "$passing" -gt 0 ] && passing=$((passing - 1))
        fi
    fi
    if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
        echo "-- $name: exit status $rc although no test failed: counted as 1 failed"
        failed=1
    fi
    total_pass=$((total_pass + passing))
    total_fail=$((total_fail + failed))
    if [ "$failed" -ne 0 ]; then
        bad="$bad $name"
        echo "-- $name: FAILED ($passing passed, $failed failed, of which $crashing crashed)"
    else
        echo "-- $name: ok ($passing passed)"
    fi
done

[ -n "$bad" ] && echo "failed:$bad"
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
