#!/bin/sh
# Installs what obm needs to build, test and benchmark (Debian 12, as root;
# skipped when everything is already there), then generates ./configure.
# Every package the test command needs is here, and a failed install stops
# it: nothing is left for the tests to skip. Not as root: only what building
# needs is required; what the tests and benchmarks lack is listed.
set -e
cd "$(dirname "$0")"

# What each part needs: building obm; its tests (./test.sh); its
# benchmarks (make bench). As root, all of them are installed; a user who
# is not root can build with the first list alone, and is told what the
# others lack.
build_packages="build-essential autoconf automake libtool pkg-config git"
test_packages="libcmocka-dev clang clang-format llvm libclang-rt-14-dev valgrind
python3 sqlite3 time libxml2-utils python3-dev liblua5.4-dev lua5.4 man-db"
bench_packages="libbenchmark-dev libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libtbbmalloc2
gnuplot-nox fonts-dejavu-core redis-server redis-tools"

# missing_of PACKAGES...: those not installed yet.
missing_of() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || printf ' %s' "$p"
    done
}

if [ "$(id -u)" != 0 ]; then
    # shellcheck disable=SC2086
    build_missing=$(missing_of $build_packages)
    [ -z "$build_missing" ] || {
        echo "bootstrap.sh: missing to build obm:$build_missing (run as root to install them)" >&2
        exit 1
    }
    # shellcheck disable=SC2086
    test_missing=$(missing_of $test_packages)
    # shellcheck disable=SC2086
    bench_missing=$(missing_of $bench_packages)
    [ -z "$test_missing" ] ||
        echo "bootstrap.sh: missing for the tests (./test.sh):$test_missing (root installs them)" >&2
    [ -z "$bench_missing" ] ||
        echo "bootstrap.sh: missing for the benchmarks (make bench):$bench_missing (root installs them)" >&2
    autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
    exit 0
fi

# install_packages PACKAGES...: those not installed yet, or a message and exit 1.
install_packages() {
    # shellcheck disable=SC2086
    missing=$(missing_of "$@")
    [ -n "$missing" ] || return 0
    echo "bootstrap.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "${apt_updated:-}" ]; then
        apt-get update -qq || { echo "bootstrap.sh: apt-get update failed" >&2; exit 1; }
        apt_updated=yes
    fi
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
        { echo "bootstrap.sh: apt-get install$missing failed" >&2; exit 1; }
}

# shellcheck disable=SC2086
install_packages $build_packages $test_packages $bench_packages
# CPython's own regression tests (tests/real/test_cpython_regrtest.sh), for
# the python3 just installed.
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
install_packages "libpython$pyver-testsuite"
/usr/bin/python3 -c 'import test.test_dict' || {
    echo "bootstrap.sh: libpython$pyver-testsuite is installed but python3 cannot import test.test_dict" >&2
    exit 1
}

autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
