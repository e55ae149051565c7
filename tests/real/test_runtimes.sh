#!/bin/sh
# Runtimes that link obm as their own allocator (bench/runtimes): the
# CPython host (obm in PyMem_SetAllocator's MEM and OBJ domains) and the
# Lua host (obm as lua_Alloc) run the benchmark workloads (the CPython
# host also bench/runtimes/shapes.py) at a small scale with output
# identical to the stock python3 and lua5.4, and obm's report
# at exit proves obm served them. A host that was not built (its headers
# were missing at configure time) is reported as skipped.
. "${top_srcdir:-.}/tests/real/common.sh"
b=$top_builddir/bench
w=${top_srcdir:-.}/bench/runtimes
echo "1..9"

skip() { # count, reason
    i=0
    while [ "$i" -lt "$1" ]; do
        tap_n=$((tap_n + 1))
        echo "ok $tap_n # SKIP $2"
        i=$((i + 1))
    done
}

# served REPORT: the text report at exit counts over 10,000 small mallocs.
served() {
    awk '/^ +[0-9]+ +[0-9]+ / { m += $(NF - 1) } END { exit !(m > 10000) }' "$1"
}

# check NAME STOCK HOST SCRIPT FLAGS: the stock interpreter and the host
# (with FLAGS, before the script) run SCRIPT at scale 0.05, three checks.
check() {
    timeout 120 "$2" $5 "$4" 0.05 >"$tmp/$1.plain" 2>&1
    ok $? "$(basename "$2") $(basename "$4")" || diag "$tmp/$1.plain"
    OBM_SHOW_STATS=1 OBM_STATS_FILE="$tmp/$1.stats" timeout 120 "$3" $5 "$4" 0.05 \
        >"$tmp/$1.obm" 2>&1
    ok $? "$(basename "$3") $(basename "$4")" || diag "$tmp/$1.obm"
    cmp -s "$tmp/$1.plain" "$tmp/$1.obm" && served "$tmp/$1.stats"
    ok $? "same output as $(basename "$2"), and obm served it" ||
        { diff "$tmp/$1.plain" "$tmp/$1.obm" >"$tmp/diff"; diag "$tmp/diff" "$tmp/$1.stats"; }
}

export PYTHONHASHSEED=0
if [ -x "$b/obm-python" ] && [ -x "${PYTHON3:-}" ]; then
    check python "$PYTHON3" "$b/obm-python" "$w/workload.py" -s
    check python-shapes "$PYTHON3" "$b/obm-python" "$w/shapes.py" -s
else
    skip 6 "CPython host not built (python3-dev) or python3 missing"
fi
if [ -x "$b/obm-lua" ] && [ -x "${LUA54:-}" ]; then
    check lua "$LUA54" "$b/obm-lua" "$w/workload.lua" ""
else
    skip 3 "Lua host not built (liblua5.4-dev) or lua5.4 missing"
fi
exit 0
