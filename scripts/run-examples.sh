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
        rc=$?
        if [ $rc -ne 0 ]; then
            fail "$name" "$mode: exit status $rc"
            show "$tmp/err"
            return
        fi
        if ! cmp -s "$tmp/out" "$want"; then
            fail "$name" "$mode: output differs from the expected counts"
            diff "$want" "$tmp/out" | sed -n '1,20s/^/    | /p'
            return
        fi
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
