#!/bin/sh
# check-install.sh - install rill into a temporary prefix as a user would,
# build a small program outside the source tree with pkg-config, run it,
# then uninstall; also check a DESTDIR (staged) install and uninstall.
#
#   sh scripts/check-install.sh        (from anywhere; runs make in the tree)
#
# Honours MAKE, CC and TMPDIR from the environment.

MAKE=${MAKE:-make}
CC=${CC:-cc}
root=$(cd "$(dirname "$0")/.." && pwd) || exit 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rill-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

failures=0
fail() {
    echo "install-check: FAILED: $*"
    failures=$((failures + 1))
}

# run_make LOGNAME ARGS...: make in the tree, output kept, shown on failure.
run_make() {
    log=$tmp/$1.log
    shift
    if ! (cd "$root" && $MAKE --no-print-directory "$@") >"$log" 2>&1 </dev/null; then
        echo "install-check: FAILED: $MAKE $*"
        sed 's/^/  /' "$log"
        exit 1
    fi
}

version=$(sed -n 's/^VERSION[[:space:]]*:=[[:space:]]*//p' "$root/Makefile")
soversion=$(sed -n 's/^SOVERSION[[:space:]]*:=[[:space:]]*//p' "$root/Makefile")
if [ -z "$version" ] || [ -z "$soversion" ]; then
    echo "install-check: FAILED: no VERSION/SOVERSION in $root/Makefile"
    exit 1
fi

man_pages() { # the pages the tree ships, as share/man/manN/NAME
    for f in "$root"/man/man1/*.1 "$root"/man/man3/*.3 "$root"/man/man5/*.5 "$root"/man/man7/*.7; do
        [ -f "$f" ] || continue
        d=${f%/*}
        echo "share/man/${d##*/}/${f##*/}"
    done
}

headers() { # the public headers the tree ships: include/rill.h and include/rill/*.h
    for f in "$root"/include/rill.h "$root"/include/rill/*.h; do
        [ -f "$f" ] && echo "${f#"$root"/}"
    done
}

# check_tree DIR PREFIX: the files of an install of PREFIX, found under DIR.
check_tree() {
    dir=$1
    want_prefix=$2
    for f in $(headers) lib/librill.a "lib/librill.so.$version" \
        lib/pkgconfig/rill.pc share/man/man7/rill.7 $(man_pages); do
        [ -f "$dir/$f" ] || fail "$f not installed under $dir"
    done
    [ -f "$dir/include/rill/common.h" ] || fail "include/rill/common.h not installed under $dir"
    for f in $(headers); do
        [ -f "$dir/$f" ] && ! cmp -s "$root/$f" "$dir/$f" && fail "installed $f differs from $f"
    done
    [ -x "$dir/lib/librill.so.$version" ] || fail "lib/librill.so.$version is not executable"
    [ -x "$dir/bin/rill-snapshot" ] || fail "bin/rill-snapshot is not installed or not executable"
    # The development and SONAME links are relative, so a staged tree can move.
    for pair in "librill.so.$soversion librill.so.$version" "librill.so librill.so.$soversion"; do
        # shellcheck disable=SC2086
        set -- $pair
        if [ ! -L "$dir/lib/$1" ]; then
            fail "lib/$1 is not a symbolic link"
        elif [ "$(readlink "$dir/lib/$1")" != "$2" ]; then
            fail "lib/$1 points to '$(readlink "$dir/lib/$1")', expected '$2'"
        fi
    done
    if [ -f "$dir/lib/librill.so.$version" ]; then
        soname=$(readelf -d "$dir/lib/librill.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
        [ "$soname" = "librill.so.$soversion" ] ||
            fail "installed library's SONAME is '$soname', expected librill.so.$soversion"
    fi
    pc=$dir/lib/pkgconfig/rill.pc
    if [ -f "$pc" ]; then
        got=$(sed -n 's/^prefix=//p' "$pc")
        [ "$got" = "$want_prefix" ] ||
            fail "installed rill.pc has prefix=$got, expected prefix=$want_prefix"
        got=$(sed -n 's/^Version:[[:space:]]*//p' "$pc")
        [ "$got" = "$version" ] || fail "installed rill.pc has Version: $got, expected $version"
    fi
}

# check_gone DIR PREFIX: nothing but empty directories left (and the man
# database of share/man, which mandb keeps: check_no_index tells it lists no
# page), and not the headers' own directory PREFIX/include/rill.
check_gone() {
    left=$(cd "$1" && find . ! -type d ! -path ./share/man/index.db | sort)
    if [ -n "$left" ]; then
        fail "left behind under $1 after uninstall:"
        printf '%s\n' "$left" | sed 's/^/  /'
    fi
    [ -d "$2/include/rill" ] && fail "directory $2/include/rill left behind after uninstall"
}

# ---- install into a prefix ------------------------------------------------

prefix=$tmp/prefix
echo "install-check: make install PREFIX=$prefix"
run_make install install PREFIX="$prefix" DESTDIR=
check_tree "$prefix" "$prefix"

# The installed tool runs from the prefix.
got=$("$prefix/bin/rill-snapshot" --version 2>&1) || fail "rill-snapshot --version: $got"
case $got in
"rill-snapshot $version "*) echo "install-check: rill-snapshot --version: $got" ;;
*) fail "rill-snapshot --version printed '$got'" ;;
esac

# ---- the man database: apropos and whatis find the pages -------------------

if command -v mandb >/dev/null 2>&1 && command -v whatis >/dev/null 2>&1; then
    indexed=yes
else
    indexed=
    echo "install-check: mandb or whatis not found: the man database is not checked"
fi

# check_index DIR: whatis and apropos find every page installed under DIR.
check_index() {
    got=$(whatis -M "$1/share/man" rill_map 2>&1)
    case $got in
    "rill_map (3) "*" - "?*) echo "install-check: whatis rill_map: $got" ;;
    *) fail "whatis -M $1/share/man rill_map printed '$got'" ;;
    esac
    want=$(man_pages | wc -l)
    got=$(apropos -M "$1/share/man" rill 2>/dev/null | wc -l)
    [ "$got" -eq "$want" ] ||
        fail "apropos -M $1/share/man rill lists $got pages, expected $want"
}

# check_no_index DIR: the man database under DIR lists no page any more.
check_no_index() {
    if got=$(whatis -M "$1/share/man" rill_map 2>/dev/null); then
        fail "whatis still finds rill_map after uninstall: $got"
    fi
}

[ -n "$indexed" ] && check_index "$prefix"

# ---- a host program built outside the tree with pkg-config ---------------

mkdir -p "$tmp/app"
cat >"$tmp/app/app.c" <<'SRC'
#include <rill.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int twice(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    int64_t v;

    (void)user_data;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    v *= 2;
    return rill_emit(ctx, &v, sizeof v);
}

static int add(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    int64_t v;

    (void)ctx;
    if (len != sizeof v)
        return -1;
    memcpy(&v, rec, sizeof v);
    *(int64_t *)user_data += v;
    return 0;
}

int main(void)
{
    int64_t values[10], sum = 0;
    rill_env *env;
    rill_stream *s;
    int i, rc;

    for (i = 0; i < 10; i++)
        values[i] = i + 1;
    env = rill_env_new();
    if (env == NULL)
        return 1;
    rill_env_set_parallelism(env, 2);
    s = rill_from_array(env, "numbers", values, sizeof values[0], 10);
    s = rill_map(s, "twice", twice, NULL);
    rill_stream_set_parallelism(rill_sink(s, "sum", add, &sum), 1);
    rc = rill_env_execute(env, "install check");
    if (rc != RILL_OK) {
        fprintf(stderr, "%s: %s\n", rill_err_name(rc), rill_env_errmsg(env));
        rill_env_free(env);
        return 1;
    }
    printf("rill %s\n", rill_version_string());
    printf("sum of doubled 1..10: %lld\n", (long long)sum);
    rill_env_free(env);
    return 0;
}
SRC
printf 'rill %s\nsum of doubled 1..10: 110\n' "$version" >"$tmp/app/expected"

PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export PKG_CONFIG_PATH

if ! got=$(pkg-config --modversion rill 2>&1); then
    fail "pkg-config --modversion rill: $got"
elif [ "$got" != "$version" ]; then
    fail "pkg-config --modversion rill gives '$got', expected '$version'"
fi

# run_app NAME [ENV...]: run $tmp/app/NAME and compare its output.
run_app() {
    name=$1
    shift
    if ! (cd "$tmp/app" && env "$@" "./$name") >"$tmp/app/$name.out" 2>"$tmp/app/$name.err" </dev/null; then
        fail "$name exited with an error:"
        sed 's/^/  /' "$tmp/app/$name.err"
    elif ! cmp -s "$tmp/app/expected" "$tmp/app/$name.out"; then
        fail "$name printed something else than expected:"
        diff "$tmp/app/expected" "$tmp/app/$name.out" | sed 's/^/  /'
    else
        echo "install-check: $name: output ok"
    fi
}

flags=$(pkg-config --cflags --libs rill)
echo "install-check: cc app.c $flags"
# $flags is a word list: split on purpose.
# shellcheck disable=SC2086
if (cd "$tmp/app" && "$CC" -std=c11 -Wall -Wextra -Werror app.c $flags -o app) >"$tmp/cc.log" 2>&1; then
    run_app app LD_LIBRARY_PATH="$prefix/lib"
    lib=$(cd "$tmp/app" && LD_LIBRARY_PATH="$prefix/lib" ldd ./app 2>/dev/null |
        sed -n 's/^[[:space:]]*librill\.so[^ ]* => \([^ ]*\).*/\1/p')
    [ "$lib" = "$prefix/lib/librill.so.$soversion" ] ||
        fail "app loads librill from '$lib', expected $prefix/lib/librill.so.$soversion"
else
    fail "building app.c against the installed rill:"
    sed 's/^/  /' "$tmp/cc.log"
fi

# Static linking needs only what rill.pc lists (Libs.private).
flags=$(pkg-config --static --libs rill | sed 's/-lrill/-Wl,-Bstatic -lrill -Wl,-Bdynamic/')
cflags=$(pkg-config --cflags rill)
echo "install-check: cc app.c $cflags $flags"
# shellcheck disable=SC2086
if (cd "$tmp/app" && "$CC" -std=c11 -Wall -Wextra -Werror app.c $cflags $flags -o app-static) >"$tmp/cc.log" 2>&1; then
    run_app app-static
    readelf -d "$tmp/app/app-static" | grep -q 'NEEDED.*librill' &&
        fail "app-static still needs librill.so"
else
    fail "building app.c against the installed static library:"
    sed 's/^/  /' "$tmp/cc.log"
fi

# ---- uninstall ------------------------------------------------------------

echo "install-check: make uninstall PREFIX=$prefix"
run_make uninstall uninstall PREFIX="$prefix" DESTDIR=
check_gone "$prefix" "$prefix"
[ -n "$indexed" ] && check_no_index "$prefix"

# ---- staged install (DESTDIR), as a package build does --------------------

stage=$tmp/stage
sprefix=/opt/rill-install-check
echo "install-check: make install DESTDIR=$stage PREFIX=$sprefix"
run_make stage-install install DESTDIR="$stage" PREFIX="$sprefix"
check_tree "$stage$sprefix" "$sprefix"
outside=$(cd "$stage" && find . ! -type d | grep -v "^\.$sprefix/")
[ -n "$outside" ] && fail "DESTDIR install wrote outside $stage$sprefix: $outside"
[ -e "$sprefix" ] && fail "DESTDIR install created $sprefix outside DESTDIR"
# A staged install leaves the man database to the package's installation.
[ -e "$stage$sprefix/share/man/index.db" ] && fail "DESTDIR install ran mandb"
echo "install-check: make uninstall DESTDIR=$stage PREFIX=$sprefix"
run_make stage-uninstall uninstall DESTDIR="$stage" PREFIX="$sprefix"
check_gone "$stage" "$stage$sprefix"

if [ $failures -ne 0 ]; then
    echo "install-check: $failures problem(s)"
    exit 1
fi
echo "install-check: ok"
