#!/bin/sh
# Real program: CPython's own regression tests for the object types and
# modules that allocate most, with PYTHONMALLOC=malloc so every object comes
# from obm (worker processes inherit the preload). The modules are chosen
# up front, each one passing with Debian 12's python3 without obm, so each
# must pass under obm, and regrtest must exit with 0: a module that fails
# is a failure, run once more without obm to say whose (obm's, or the
# environment's when it fails there too).
. "${top_srcdir:-.}/tests/real/common.sh"
require_program python3 "$PYTHON3"
require_dropin
modules="test_dict test_list test_set test_threading test_json test_gc test_weakref
test_bytes test_unicode test_re test_tuple test_sort test_deque test_pickle"
if ! "$PYTHON3" -c 'import test.test_dict' 2>/dev/null; then
    ver=$("$PYTHON3" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    echo "1..0 # SKIP CPython's test suite is not installed (libpython$ver-testsuite)"
    exit 0
fi

set -- $modules
echo "1..$(($# + 2))"
PYTHONMALLOC=malloc timeout 60 env LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c \
    'import ctypes, sys
owns = ctypes.CDLL(None).obm_owns
owns.argtypes = [ctypes.c_void_p]
sys.exit(0 if owns(id([])) else 1)' \
    >"$tmp/probe" 2>&1
ok $? "obm serves the python process's objects" || diag "$tmp/probe"

PYTHONMALLOC=malloc timeout 900 env LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -m test -j2 $modules \
    >"$tmp/obm.out" 2>&1
rc=$?
ok $rc "regrtest exits with 0 under obm" || sed -n '/^== Tests result/,$s/^/# /p' "$tmp/obm.out"
for m in $modules; do
    if grep -Eq "\] $m passed" "$tmp/obm.out"; then
        ok 0 "$m passes under obm"
    elif PYTHONMALLOC=malloc timeout 300 "$PYTHON3" -m test "$m" >"$tmp/glibc.out" 2>&1; then
        ok 1 "$m fails under obm, passes without it" || diag "$tmp/obm.out"
    else
        ok 1 "$m fails under obm, and without it too: this python3 cannot judge obm" ||
            diag "$tmp/glibc.out"
    fi
done
exit 0
