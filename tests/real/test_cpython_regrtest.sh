#!/bin/sh
# Real program: CPython's own regression tests for the object types and
# modules that allocate most, with PYTHONMALLOC=malloc so every object comes
# from obm (worker processes inherit the preload). Each module must pass
# under obm; a module that also fails without obm is reported as skipped.
. "${top_srcdir:-.}/tests/real/common.sh"
require_program python3 "$PYTHON3"
require_dropin
modules="test_dict test_list test_set test_threading test_json test_gc test_weakref
test_bytes test_unicode test_re test_tuple test_sort test_deque test_pickle"
if ! "$PYTHON3" -c 'import test.test_dict' 2>/dev/null; then
    echo "1..0 # SKIP CPython's test suite is not installed (libpython3.X-testsuite)"
    exit 0
fi

set -- $modules
echo "1..$(($# + 1))"
PYTHONMALLOC=malloc timeout 60 env LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c \
    'import ctypes, sys
owns = ctypes.CDLL(None).obm_owns
owns.argtypes = [ctypes.c_void_p]
sys.exit(0 if owns(id([])) else 1)' \
    >"$tmp/probe" 2>&1
ok $? "obm serves the python process's objects" || diag "$tmp/probe"

PYTHONMALLOC=malloc timeout 900 env LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -m test -j2 $modules \
    >"$tmp/obm.out" 2>&1
for m in $modules; do
    if grep -Eq "\] $m passed" "$tmp/obm.out"; then
        ok 0 "$m passes under obm"
    elif PYTHONMALLOC=malloc timeout 300 "$PYTHON3" -m test "$m" >"$tmp/glibc.out" 2>&1; then
        ok 1 "$m fails under obm, passes without it" || diag "$tmp/obm.out"
    else
        tap_n=$((tap_n + 1))
        echo "ok $tap_n - $m # SKIP fails without obm too"
    fi
done
exit 0
