#!/bin/sh
# Real program: CPython with PYTHONMALLOC=malloc, so every object comes from
# malloc, on an allocation-heavy deterministic script (alloc_heavy.py). Run
# without and with the drop-in: both succeed, print the same bytes, and the
# obm run proves obm served Python's objects (alloc_heavy.py --obm-probe).
. "${top_srcdir:-.}/tests/real/common.sh"
require_program python3 "$PYTHON3"
require_dropin
script="${top_srcdir:-.}/tests/real/alloc_heavy.py"

echo "1..4"
PYTHONMALLOC=malloc PYTHONHASHSEED=0 timeout 120 "$PYTHON3" -s "$script" \
    >"$tmp/plain.out" 2>"$tmp/plain.err"
ok $? "python3 alloc_heavy.py without obm" || diag "$tmp/plain.err"

PYTHONMALLOC=malloc PYTHONHASHSEED=0 timeout 120 env LD_PRELOAD="$OBM_DROPIN" \
    "$PYTHON3" -s "$script" --obm-probe >"$tmp/obm.out" 2>"$tmp/obm.err"
ok $? "python3 alloc_heavy.py with obm preloaded" || diag "$tmp/obm.err"

cmp -s "$tmp/plain.out" "$tmp/obm.out"
ok $? "same output with and without obm" ||
    { diff "$tmp/plain.out" "$tmp/obm.out" >"$tmp/diff"; diag "$tmp/diff"; }

grep -q '^obm-probe: malloc(32) owned 1, 2000/2000 objects in obm arenas$' "$tmp/obm.err"
ok $? "obm served the python process's malloc and objects" || diag "$tmp/obm.err"

exit 0
