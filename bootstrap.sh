#!/bin/sh
# Installs what obm needs to build and test (Debian 12, as root; skipped when
# everything is already there), then generates ./configure.
set -e
cd "$(dirname "$0")"

packages="build-essential autoconf automake libtool pkg-config git
libcmocka-dev clang clang-format llvm libclang-rt-14-dev valgrind
python3 sqlite3 time
libbenchmark-dev libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 libtbbmalloc2
python3-dev liblua5.4-dev lua5.4
gnuplot-nox fonts-dejavu-core"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "bootstrap.sh: missing packages:$missing (run as root to install them)" >&2
        exit 1
    fi
    echo "bootstrap.sh: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# CPython's own regression tests, run under the drop-in by the test suite.
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! /usr/bin/python3 -c 'import test.test_dict' 2>/dev/null && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "libpython$pyver-testsuite" >/dev/null || true
fi

autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
