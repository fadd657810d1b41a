#!/bin/sh
# deps.sh - check for what building and testing rill needs. When something
# is missing: as root on Debian/Ubuntu, install it with apt-get; otherwise
# print the command to run and exit 1. Quiet when everything is present.
# Run by `make deps`, and so by `make demo` and `make check`.
#
#   sh scripts/deps.sh
#
# Honours CC and CXX from the environment (default cc and c++).

CC=${CC:-cc}
CXX=${CXX:-c++}

have() { command -v "$1" >/dev/null 2>&1; }

need() { # need DEBIAN-PACKAGE DESCRIPTION
    case " $missing_pkgs " in
        *" $1 "*) ;;
        *) missing_pkgs="$missing_pkgs $1" ;;
    esac
    missing_what="$missing_what
  - $2"
}

# header_present HEADER: the C compiler finds it (without a compiler yet,
# look in /usr/include).
header_present() {
    if have "$CC"; then
        printf '#include <%s>\n' "$1" | "$CC" -E -x c - >/dev/null 2>&1
    else
        [ -f "/usr/include/$1" ]
    fi
}

# Sets missing_pkgs (space-separated Debian packages) and missing_what.
find_missing() {
    missing_pkgs=
    missing_what=
    have "$CC" || need gcc "a C compiler ($CC)"
    # gcc only recommends the C library headers.
    header_present stdio.h || need libc6-dev "the C library headers (stdio.h)"
    have make || need make "make"
    { have nm && have readelf; } || need binutils "nm and readelf"
    have "$CXX" || need g++ "a C++ compiler ($CXX), for the header test"
    have pkg-config || need pkg-config "pkg-config"
    have groff || need groff-base "groff, for the manual page checks"
    { have mandb && have whatis; } ||
        need man-db "man-db (mandb, whatis), for the check that make install indexes the manual"
    header_present lmdb.h || need liblmdb-dev "LMDB (lmdb.h)"
    header_present xxhash.h || need libxxhash-dev "xxHash (xxhash.h)"
    header_present criterion/criterion.h ||
        need libcriterion-dev "Criterion, the test framework (criterion/criterion.h)"
    missing_pkgs=${missing_pkgs# }
}

find_missing
[ -z "$missing_pkgs" ] && exit 0

echo "rill: missing build dependencies:$missing_what" >&2

if ! have apt-get; then
    echo "rill: install them (Debian package names: $missing_pkgs), then try again" >&2
    exit 1
fi

if [ "$(id -u)" != 0 ]; then
    echo "rill: to install them, run as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing_pkgs" >&2
    exit 1
fi

echo "rill: installing $missing_pkgs"
DEBIAN_FRONTEND=noninteractive
export DEBIAN_FRONTEND
apt-get update || exit 1
# A list of package names: split on purpose.
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing_pkgs || exit 1

find_missing
if [ -n "$missing_pkgs" ]; then
    echo "rill: still missing after installing:$missing_what" >&2
    exit 1
fi
echo "rill: dependencies installed"
