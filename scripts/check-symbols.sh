#!/bin/sh
# check-symbols.sh - the shared library's ABI surface:
#  - every dynamic symbol it defines starts with rill_ (internal rill__
#    names must stay hidden), apart from the linker's own markers;
#  - every function declared RILL_API in the public headers (include/rill.h
#    and the module headers include/rill/*.h) is exported;
#  - its SONAME is librill.so.<major>, with major from RILL_VERSION_MAJOR.
#
#   sh scripts/check-symbols.sh lib/librill.so

so=${1:-lib/librill.so}
root=$(cd "$(dirname "$0")/.." && pwd) || exit 1
# The text of the public headers: rill.h and the module headers it includes.
public_headers() {
    cat "$root/include/rill.h" "$root"/include/rill/*.h
}

if [ ! -f "$so" ]; then
    echo "symbols-check: $so not found (run make first)"
    exit 1
fi
for tool in nm readelf; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "symbols-check: $tool not found (sh scripts/deps.sh installs it)"
        exit 1
    fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rill-symbols.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

status=0

# Defined dynamic symbols: "ADDRESS TYPE NAME"; versioned names lose "@...".
if ! nm -D --defined-only "$so" >"$tmp/nm" 2>"$tmp/nm.err"; then
    echo "symbols-check: nm -D failed on $so:"
    sed 's/^/  /' "$tmp/nm.err"
    exit 1
fi
awk 'NF >= 2 { name = $NF; sub(/@.*/, "", name); print name }' "$tmp/nm" |
    sort -u >"$tmp/exported"

grep -v -x -e '_init' -e '_fini' -e '_edata' -e '_end' -e '__bss_start' \
    "$tmp/exported" >"$tmp/ours"
foreign=$(grep -v '^rill_' "$tmp/ours")
internal=$(grep '^rill__' "$tmp/ours")
if [ -n "$foreign" ]; then
    echo "symbols-check: FAILED: $so exports symbols without the rill_ prefix:"
    printf '%s\n' "$foreign" | sed 's/^/  /'
    status=1
fi
if [ -n "$internal" ]; then
    echo "symbols-check: FAILED: $so exports internal rill__ symbols (missing static or hidden visibility):"
    printf '%s\n' "$internal" | sed 's/^/  /'
    status=1
fi

# Functions declared RILL_API in the public headers, leaving out preprocessor
# lines (declarations may span lines; the name is the identifier right
# before the first "(").
public_headers | grep -v '^[[:space:]]*#' | tr '\n' ' ' |
    grep -o 'RILL_API [^;(]*(' |
    sed -e 's/[[:space:]]*($//' -e 's/.*[^A-Za-z0-9_]//' |
    sort -u >"$tmp/declared"
if [ ! -s "$tmp/declared" ]; then
    echo "symbols-check: FAILED: found no RILL_API declaration in $root/include"
    status=1
fi
unexported=$(comm -23 "$tmp/declared" "$tmp/exported")
if [ -n "$unexported" ]; then
    echo "symbols-check: FAILED: declared RILL_API in include/ but not exported by $so:"
    printf '%s\n' "$unexported" | sed 's/^/  /'
    status=1
fi

major=$(public_headers | sed -n 's/^#define RILL_VERSION_MAJOR[[:space:]]*\([0-9][0-9]*\).*/\1/p')
want="librill.so.${major:-0}"
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [ "$soname" != "$want" ]; then
    echo "symbols-check: FAILED: SONAME of $so is '${soname:-none}', expected '$want'"
    status=1
fi

if [ $status -eq 0 ]; then
    echo "symbols-check: ok ($(wc -l <"$tmp/declared" | tr -d ' ') public functions exported, SONAME $soname)"
fi
exit $status
