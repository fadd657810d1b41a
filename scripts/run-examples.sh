#!/bin/sh
# run-examples.sh DIR - run every example program in DIR and check its output.
#
# Known examples are run with suitable arguments and their output checked;
# any other executable in DIR is run with no arguments and must exit 0.
# Prints one line per example; exits 1 if any example failed.
set -u

dir=${1:-build/examples}
if [ ! -d "$dir" ]; then
    echo "run-examples: no such directory: $dir" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rill-examples.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT HUP INT TERM

failures=0
count=0

pass() {
    echo "PASS $1"
}

fail() {
    echo "FAIL $1: $2"
    failures=$((failures + 1))
}

# Show what a failing example printed (first lines only).
show() {
    sed -n '1,20s/^/    | /p' "$1"
}

# Did the last command (status $1) fail? Then report it for $name, with
# label $2, and say so.
exited_badly() {
    [ "$1" -eq 0 ] && return 1
    fail "$name" "$2exit status $1"
    show "$tmp/err"
    return 0
}

# Does $tmp/out differ from file $1? Then report it for $name with message
# $2 and the first lines of the difference, and say so.
differs() {
    cmp -s "$tmp/out" "$1" && return 1
    fail "$name" "$2"
    diff "$1" "$tmp/out" | sed -n '1,20s/^/    | /p'
    return 0
}

check_demo() {
    name=$1 bin=$2
    "$bin" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -ne 0 ]; then
        fail "$name" "exit status $rc"
        show "$tmp/err"
        return
    fi
    if ! grep -q '^demo: OK$' "$tmp/out"; then
        fail "$name" "no 'demo: OK' line"
        show "$tmp/out"
        return
    fi
    if ! grep -q '^check against a plain loop: same figures$' "$tmp/out"; then
        fail "$name" "figures differ from the plain loop"
        show "$tmp/out"
        return
    fi
    pass "$name"
}

check_wordcount() {
    name=$1 bin=$2
    in=$tmp/words.txt
    want=$tmp/words.expected

    # Mixed case, punctuation, CRLF, an empty line, UTF-8 and a last line
    # without a newline.
    printf '%s\n' \
        'The quick brown fox jumps over the lazy dog.' \
        'THE DOG barks; the fox runs!' \
        '' \
        "It's 2 o'clock, fox-time." \
        'naïve café, Café' >"$in"
    printf 'the end\r\nThe End' >>"$in"

    cat >"$want" <<'EOF'
2 1
barks 1
brown 1
café 2
clock 1
dog 2
end 2
fox 3
it 1
jumps 1
lazy 1
naïve 1
o 1
over 1
quick 1
runs 1
s 1
the 6
time 1
EOF

    for mode in file file-p1 file-p3 stdin stdin-dash; do
        case $mode in
            file)       "$bin" "$in" ;;
            file-p1)    "$bin" -p 1 "$in" ;;
            file-p3)    "$bin" -p 3 "$in" ;;
            stdin)      "$bin" <"$in" ;;
            stdin-dash) "$bin" - <"$in" ;;
        esac >"$tmp/out" 2>"$tmp/err"
        exited_badly $? "$mode: " && return
        differs "$want" "$mode: output differs from the expected counts" && return
    done

    # An empty input gives no output.
    if ! "$bin" </dev/null >"$tmp/out" 2>"$tmp/err" || [ -s "$tmp/out" ]; then
        fail "$name" "empty input: expected exit 0 and no output"
        return
    fi

    # A missing file is an error naming the file.
    if "$bin" "$tmp/missing.txt" >"$tmp/out" 2>"$tmp/err"; then
        fail "$name" "missing file: expected a non-zero exit"
        return
    fi
    if ! grep -q 'missing.txt' "$tmp/err"; then
        fail "$name" "missing file: message does not name the file"
        show "$tmp/err"
        return
    fi
    pass "$name"
}

check_temperature_alert() {
    name=$1 bin=$2
    want=$tmp/temperature.expected

    cat >"$want" <<'EOF'
     0 ms  sensor-1 20.0 C
   100 ms  sensor-2 30.0 C
   200 ms  sensor-1 20.5 C
   300 ms  sensor-2 29.0 C
   400 ms  sensor-1 21.0 C
   500 ms  sensor-2 29.5 C
   600 ms  sensor-3 15.0 C
   700 ms  sensor-3 15.5 C
   900 ms  sensor-2 29.5 C
  1000 ms  sensor-3 15.2 C
  1100 ms  sensor-3 15.4 C
  1200 ms  ALERT sensor-1: rising since 200 ms, now 21.0 C
  1300 ms  sensor-1 21.5 C
  1500 ms  ALERT sensor-2: rising since 500 ms, now 29.5 C
  1800 ms  sensor-1 21.2 C
  2100 ms  ALERT sensor-3: rising since 1100 ms, now 15.4 C

3 alerts, 0 timers pending
last temperature per sensor (from the keyed state):
  sensor-1 21.2 C
  sensor-2 29.5 C
  sensor-3 15.4 C
EOF

    "$bin" >"$tmp/out" 2>"$tmp/err"
    exited_badly $? "" && return
    differs "$want" "output differs from the expected timeline" && return
    pass "$name"
}

check_fraud_detection() {
    name=$1 bin=$2
    want=$tmp/fraud.expected

    cat >"$want" <<'EOF'
ALERT account 1002: 0.89 at 09:00:03, then 749.00 at 09:00:12
ALERT account 1003: 0.25 at 09:00:17, then 990.00 at 09:00:31
ALERT account 1006: 0.01 at 09:02:00, then 510.00 at 09:01:58
ALERT account 1002: 0.99 at 09:02:45, then 1200.00 at 09:03:44
22 of 22 transactions checked
EOF

    # At parallelism 1 the alerts come in arrival order; at 2 and 3 the
    # accounts of different subtasks interleave, so compare sorted lines.
    for p in 1 2 3; do
        "$bin" -p $p >"$tmp/out" 2>"$tmp/err"
        exited_badly $? "-p $p: " && return
        if [ $p -eq 1 ]; then
            cp "$want" "$tmp/fraud.want"
        else
            sort "$want" >"$tmp/fraud.want"
            sort "$tmp/out" >"$tmp/out.sorted"
            mv "$tmp/out.sorted" "$tmp/out"
        fi
        differs "$tmp/fraud.want" "-p $p: alerts differ from the expected ones" && return
    done
    pass "$name"
}

# graceful_stop: stopped by SIGTERM (-k) with a savepoint, restored (-r)
# and stopped again, restored again: the final counts are those of a run
# that was never stopped.
check_graceful_stop() {
    name=$1 bin=$2
    work=$tmp/graceful
    want=$tmp/graceful.expected
    : >"$want"
    for p in 0 1 2 3 4 5 6 7 8 9; do
        echo "page $p: 10000 views" >>"$want"
    done
    echo "total: 100000 views" >>"$want"

    restore=
    for k in 1 2; do
        # Stop k: SIGTERM once view 20000k is generated.
        "$bin" -k $((20000 * k)) ${restore:+-r "$restore"} "$work" >"$tmp/out" 2>"$tmp/err"
        exited_badly $? "stop $k: " && return
        restore=$(sed -n 's/^savepoint: //p' "$tmp/out")
        if [ "$restore" != "$work/savepoints/savepoint-$k" ]; then
            fail "$name" "stop $k: expected 'savepoint: $work/savepoints/savepoint-$k'"
            show "$tmp/out"
            return
        fi
        if [ ! -f "$restore/_metadata" ]; then
            fail "$name" "stop $k: $restore is not a complete savepoint"
            return
        fi
    done
    "$bin" -r "$restore" "$work" >"$tmp/out" 2>"$tmp/err"
    exited_badly $? "restored: " && return
    differs "$want" "restored: counts differ from a run that was never stopped" && return

    # Without a directory, a usage message and exit status 2.
    "$bin" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -ne 2 ] || ! grep -q '^usage: ' "$tmp/err"; then
        fail "$name" "no arguments: expected a usage message and exit status 2, got $rc"
        return
    fi
    pass "$name"
}

check_other() {
    name=$1 bin=$2
    "$bin" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ $rc -eq 0 ]; then
        pass "$name"
    else
        fail "$name" "exit status $rc"
        show "$tmp/err"
    fi
}

for bin in "$dir"/*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=${bin##*/}
    count=$((count + 1))
    case $name in
        demo)      check_demo "$name" "$bin" ;;
        wordcount) check_wordcount "$name" "$bin" ;;
        temperature_alert) check_temperature_alert "$name" "$bin" ;;
        fraud_detection)   check_fraud_detection "$name" "$bin" ;;
        graceful_stop)     check_graceful_stop "$name" "$bin" ;;
        *)         check_other "$name" "$bin" ;;
    esac
done

if [ $count -eq 0 ]; then
    echo "run-examples: no example programs in $dir" >&2
    exit 1
fi
if [ $failures -ne 0 ]; then
    echo "run-examples: $failures of $count examples failed"
    exit 1
fi
echo "run-examples: all $count examples passed"
