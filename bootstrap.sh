#!/bin/sh
# Installs what obm needs to build and test (Debian 12, as root; skipped when
# everything is already there), then generates ./configure. Every package
# the test command needs is here, and a failed install stops it: nothing is
# left for the tests to skip.
set -e
cd "$(dirname "$0")"

packages="build-essential autoconf automake libtool pkg-config git
libcmocka-dev clang clang-format llvm libclang-rt-14-dev valgrind
python3 sqlite3 time libxml2-utils
libbenchmark-dev libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libtbbmalloc2
python3-dev liblua5.4-dev lua5.4
gnuplot-nox fonts-dejavu-core"

# install_packages PACKAGES...: those not installed yet, or a message and exit 1.
install_packages() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    [ -n "$missing" ] || return 0
    if [ "$(id -u)" != 0 ]; then
        echo "bootstrap.sh: missing packages:$missing (run as root to install them)" >&2
        exit 1
    fi
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
install_packages $packages
# CPython's own regression tests (tests/real/test_cpython_regrtest.sh), for
# the python3 just installed.
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
install_packages "libpython$pyver-testsuite"
/usr/bin/python3 -c 'import test.test_dict' || {
    echo "bootstrap.sh: libpython$pyver-testsuite is installed but python3 cannot import test.test_dict" >&2
    exit 1
}

autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
