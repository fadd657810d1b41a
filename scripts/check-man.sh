#!/bin/sh
# check-man.sh - the manual pages are complete and correct:
#  (a) every page under man/ lints clean with groff (-ww: any warning fails);
#  (b) every function declared RILL_API in the public headers (include/rill.h
#      and the module headers include/rill/*.h), and every rill_*
#      function the shared library exports, has man/man3/<name>.3; a page
#      names no function that does not exist; a page is either an alias
#      (a single ".so man3/<other>.3" line whose target documents it) or
#      follows the fixed layout NAME, SYNOPSIS, DESCRIPTION, RETURN VALUE,
#      ERRORS, THREAD SAFETY, EXAMPLES, SEE ALSO, and its SEE ALSO
#      references exist;
#  (c) every program of an EXAMPLES section compiles warning-free with the
#      project's flags and links against the shared library. A program is
#      the text between the comment lines
#          .\" example-begin
#          .\" example-end
#      inside .EX/.EE (or .nf/.fi); roff escapes \e, \- and \& are undone,
#      and compiler messages point at the lines of the page. Program lines
#      are at most 72 characters, so that they fit an 80-column terminal;
#  (d) prints "check-man: N pages, M examples ok".
#
#   sh scripts/check-man.sh [CC [LIBDIR]]     (LIBDIR defaults to lib)
set -eu

CC=${1:-${CC:-cc}}
root=$(cd "$(dirname "$0")/.." && pwd)
# A LIBDIR given is relative to where the script was started (the Makefile
# passes "lib" from the repository root); without one, the repository's lib.
libdir=${2:-$root/lib}
case $libdir in
/*) ;;
*) libdir=$(pwd)/$libdir ;;
esac
cd "$root"

header=include/rill.h
# The public headers: rill.h and the module headers it includes.
headers=$(ls "$header" include/rill/*.h 2>/dev/null || true)
so=$libdir/librill.so
CFLAGS_EX="-std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
 -Wmissing-prototypes -Wformat=2 -Wvla -Werror"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rill-man.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

problems=0
fail() { # fail MESSAGE: report a problem; the script goes on, then fails
    echo "check-man: FAILED: $*"
    problems=$((problems + 1))
}
indent() {
    sed 's/^/    /'
}

for tool in groff nm awk; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "check-man: $tool not found (sh scripts/deps.sh installs it)"
        exit 1
    fi
done
if [ ! -f "$header" ]; then
    echo "check-man: $header not found"
    exit 1
fi
if [ ! -f "$so" ]; then
    echo "check-man: $so not found (run make first)"
    exit 1
fi

pages=$(ls man/man1/*.1 man/man3/*.3 man/man5/*.5 man/man7/*.7 2>/dev/null || true)
if [ -z "$pages" ]; then
    echo "check-man: no pages under man/man3 and man/man7"
    exit 1
fi
npages=$(printf '%s\n' "$pages" | wc -l | tr -d ' ')

# An alias page: one line ".so man3/NAME.3" and nothing else.
is_alias() {
    [ "$(grep -c . "$1")" -eq 1 ] && grep -q '^\.so man3/rill_[a-z0-9_]*\.3$' "$1"
}

# ---- (a) lint ------------------------------------------------------------
# groff -man with its default device, and the terminal device man(1) uses.
# Run from man/ so that ".so man3/x.3" resolves as it does for man(1).
devices=
for dev in '' -Tutf8; do
    if out=$(printf '.TH t 7\n.SH NAME\nt \\- t\n' |
        groff ${dev:+"$dev"} -man -ww -z 2>&1) && [ -z "$out" ]; then
        devices="$devices ${dev:-default}"
    fi
done
if [ -z "$devices" ]; then
    echo "check-man: groff -man cannot format a trivial page here"
    exit 1
fi
for page in $pages; do
    rel=${page#man/}
    for dev in $devices; do
        [ "$dev" = default ] && opt= || opt=$dev
        if ! out=$(cd man && groff ${opt:+"$opt"} -man -ww -z "$rel" 2>&1) || [ -n "$out" ]; then
            fail "$page: groff -man -ww -z${opt:+ $opt} warns:"
            printf '%s\n' "$out" | indent
        fi
    done
    if LC_ALL=C grep -n '[^	 -~]' "$page" >"$tmp/nonascii"; then
        fail "$page: non-ASCII bytes (write them as roff escapes):"
        indent <"$tmp/nonascii"
    fi
done

# ---- (b) coverage and layout ---------------------------------------------
# Functions declared RILL_API (the name is the identifier before the first
# "(" of the declaration, which may span lines).
# $headers is a word list: split on purpose.
# shellcheck disable=SC2086
cat $headers | grep -v '^[[:space:]]*#' | tr '\n' ' ' |
    grep -o 'RILL_API [^;(]*(' |
    sed -e 's/[[:space:]]*($//' -e 's/.*[^A-Za-z0-9_]//' |
    sort -u >"$tmp/declared"
if [ ! -s "$tmp/declared" ]; then
    fail "found no RILL_API declaration in" $headers
fi
if ! nm -D --defined-only "$so" >"$tmp/nm" 2>"$tmp/nm.err"; then
    fail "nm -D failed on $so:"
    indent <"$tmp/nm.err"
fi
awk '$2 == "T" && $3 ~ /^rill_/ { n = $3; sub(/@.*/, "", n); print n }' "$tmp/nm" |
    sort -u >"$tmp/exported"
sort -u "$tmp/declared" "$tmp/exported" >"$tmp/functions"

while read -r fn; do
    if [ ! -f "man/man3/$fn.3" ]; then
        where=
        # shellcheck disable=SC2086
        grep -qx "$fn" "$tmp/declared" &&
            where="declared in $(grep -lw "$fn" $headers | tr '\n' ' ' | sed 's/ $//')"
        grep -qx "$fn" "$tmp/exported" && where="${where:+$where, }exported by $so"
        fail "no page man/man3/$fn.3 for $fn ($where)"
    fi
done <"$tmp/functions"

layout='NAME|SYNOPSIS|DESCRIPTION|RETURN VALUE|ERRORS|THREAD SAFETY|EXAMPLES|SEE ALSO'

# Section headings of a page, one per line, quotes removed.
sections() {
    sed -n 's/^\.SH[[:space:]]*//p' "$1" | sed 's/"//g'
}
# The text of one section of a page.
section() { # section PAGE NAME
    awk -v want="$2" '
        /^\.SH/ { h = $0; sub(/^\.SH[ \t]*/, "", h); gsub(/"/, "", h); on = (h == want); next }
        on { print }' "$1"
}
# Function names listed in the NAME line ("a, b \- what they do").
names_of() {
    section "$1" NAME | sed -n '1s/[[:space:]]*\\-.*//p' | tr ',' '\n' |
        sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e 's/\\f[BIRP]//g' |
        grep -v '^$' || true
}

for page in man/man3/*.3; do
    [ -f "$page" ] || continue
    base=$(basename "$page" .3)
    if ! grep -qx "$base" "$tmp/functions"; then
        fail "$page: documents $base, which is neither declared in the public headers nor exported"
    fi
    if grep -q '^\.so' "$page"; then
        if ! is_alias "$page"; then
            fail "$page: an alias page is exactly one line: .so man3/rill_<name>.3"
            continue
        fi
        target=man/$(sed -n 's/^\.so //p' "$page")
        if [ ! -f "$target" ]; then
            fail "$page: aliases $target, which does not exist"
        elif is_alias "$target"; then
            fail "$page: aliases $target, which is itself an alias"
        elif ! names_of "$target" | grep -qx "$base"; then
            fail "$page: $target does not list $base in its NAME section"
        fi
        continue
    fi
    got=$(sections "$page" | tr '\n' '|' | sed 's/|$//')
    if [ "$got" != "$layout" ]; then
        fail "$page: sections are '$got', expected '$layout'"
    fi
    if ! grep -q "^\\.TH $base 3 " "$page"; then
        fail "$page: no '.TH $base 3 ...' line"
    fi
    names=$(names_of "$page")
    if ! printf '%s\n' "$names" | grep -qx "$base"; then
        fail "$page: the NAME section does not list $base"
    fi
    section "$page" SYNOPSIS >"$tmp/synopsis"
    for n in $names; do
        if ! grep -q "$n(" "$tmp/synopsis"; then
            fail "$page: $n is in NAME but not declared in SYNOPSIS"
        fi
    done
    if ! section "$page" EXAMPLES | grep -q '^\.\\" example-begin$'; then
        fail "$page: EXAMPLES has no program (.\\\" example-begin ... .\\\" example-end)"
    fi
done

for page in $pages; do
    is_alias "$page" && continue
    # SEE ALSO references: ".BR name (N)" must be pages of this manual
    # (references to other manuals, such as printf(3), are not checked).
    section "$page" 'SEE ALSO' | sed -n 's/^\.BR[[:space:]]*\(rill[a-z0-9_]*\)[[:space:]]*(\([0-9]\)).*/\1 \2/p' |
        while read -r name sec; do
            if [ ! -f "man/man$sec/$name.$sec" ]; then
                echo "$page: SEE ALSO names $name($sec), which has no page"
            fi
        done >"$tmp/refs"
    if [ -s "$tmp/refs" ]; then
        while read -r line; do fail "$line"; done <"$tmp/refs"
    fi
done

# Every page's NAME parses as mandb reads it for whatis and apropos
# ("name, ... - description"), first of all the page's own name (lexgrog
# comes with man-db; without it, this is left out).
if command -v lexgrog >/dev/null 2>&1; then
    for page in $pages; do
        is_alias "$page" && continue
        base=$(basename "$page")
        base=${base%.*}
        if ! out=$(lexgrog "$page" 2>&1); then
            fail "$page: lexgrog cannot read its NAME section: $out"
            continue
        fi
        case $out in
        *": \"$base - "?*|*": \"$base, "*" - "?*) ;;
        *) fail "$page: whatis would read its NAME section as $out" ;;
        esac
    done
fi

# The overview lists every page of section 3 in its SEE ALSO.
if [ -f man/man7/rill.7 ]; then
    section man/man7/rill.7 'SEE ALSO' >"$tmp/overview"
    for page in man/man3/*.3; do
        [ -f "$page" ] || continue
        base=$(basename "$page" .3)
        if ! grep -q "^\\.BR $base (3)" "$tmp/overview"; then
            fail "man/man7/rill.7: SEE ALSO does not list $base(3)"
        fi
    done
else
    fail "man/man7/rill.7 (the overview) is missing"
fi

# ---- (c) examples --------------------------------------------------------
# Extract each program to $tmp/ex/<page>-<k>.c. Lines that are roff
# requests (.EX, .EE, .nf, .fi, comments) become empty lines, and a #line
# directive maps the program's lines to the page's.
mkdir "$tmp/ex"
for page in $pages; do
    awk -v page="$page" -v out="$tmp/ex" -v stem="$(basename "$page")" -v q="'" '
        function fail(msg) { printf "%s:%d: %s\n", page, NR, msg; bad = 1 }
        /^\.\\" example-begin$/ {
            if (on) fail("example-begin inside an example")
            on = 1; k++; file = sprintf("%s/%s-%d.c", out, stem, k)
            printf "#line %d \"%s\"\n", NR + 1, page > file
            next
        }
        /^\.\\" example-end$/ {
            if (!on) fail("example-end without example-begin")
            on = 0; close(file); next
        }
        !on { next }
        substr($0, 1, 1) == "." || substr($0, 1, 1) == q { print "" > file; next }
        {
            line = $0
            gsub(/\\&/, "", line)
            gsub(/\\-/, "-", line)
            gsub(/\\e/, "\\", line)
            if (length(line) > 72)
                fail("example line longer than 72 characters (it would not fit an 80-column terminal)")
            print line > file
        }
        END {
            if (on) fail("example-begin without example-end")
            exit bad
        }' "$page" >"$tmp/extract" 2>&1 || {
        fail "$page: problems with its examples:"
        indent <"$tmp/extract"
    }
done

nex=0
for src in "$tmp"/ex/*.c; do
    [ -f "$src" ] || continue
    nex=$((nex + 1))
    name=$(basename "$src" .c)
    # shellcheck disable=SC2086
    if ! $CC $CFLAGS_EX -Iinclude -o "$tmp/ex/$name" "$src" \
        -L"$libdir" -lrill -llmdb -lpthread >"$tmp/cc.out" 2>&1; then
        if $CC $CFLAGS_EX -Iinclude -c -o "$tmp/ex/$name.o" "$src" >/dev/null 2>&1; then
            fail "example $name compiles but does not link against $so:"
        else
            fail "example $name does not compile:"
        fi
        indent <"$tmp/cc.out"
    fi
done
if [ "$nex" -eq 0 ]; then
    fail "found no example program in the pages"
fi

if [ "$problems" -ne 0 ]; then
    echo "check-man: $problems problem(s) in $npages pages, $nex examples"
    exit 1
fi
echo "check-man: $npages pages, $nex examples ok"
