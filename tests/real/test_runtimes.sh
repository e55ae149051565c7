#!/bin/sh
# Runtimes that link obm as their own allocator (bench/runtimes): the
# CPython host (obm in PyMem_SetAllocator's MEM and OBJ domains) and the
# Lua host (obm as lua_Alloc) run the benchmark workloads at a small scale
# with output identical to the stock python3 and lua5.4, and obm's report
# at exit proves obm served them. A host that was not built (its headers
# were missing at configure time) is reported as skipped.
. "${top_srcdir:-.}/tests/real/common.sh"
b=$top_builddir/bench
w=${top_srcdir:-.}/bench/runtimes
echo "1..6"

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

if [ -x "$b/obm-python" ] && [ -x "${PYTHON3:-}" ]; then
    PYTHONHASHSEED=0 timeout 120 "$PYTHON3" -s "$w/workload.py" 0.05 >"$tmp/py.plain" 2>&1
    ok $? "python3 workload.py" || diag "$tmp/py.plain"
    PYTHONHASHSEED=0 OBM_SHOW_STATS=1 OBM_STATS_FILE="$tmp/py.stats" timeout 120 \
        "$b/obm-python" -s "$w/workload.py" 0.05 >"$tmp/py.obm" 2>&1
    ok $? "obm-python workload.py" || diag "$tmp/py.obm"
    cmp -s "$tmp/py.plain" "$tmp/py.obm" && served "$tmp/py.stats"
    ok $? "same output as python3, and obm served the objects" ||
        { diff "$tmp/py.plain" "$tmp/py.obm" >"$tmp/diff"; diag "$tmp/diff" "$tmp/py.stats"; }
else
    skip 3 "CPython host not built (python3-dev) or python3 missing"
fi

if [ -x "$b/obm-lua" ] && [ -x "${LUA54:-}" ]; then
    timeout 120 "$LUA54" "$w/workload.lua" 0.05 >"$tmp/lua.plain" 2>&1
    ok $? "lua5.4 workload.lua" || diag "$tmp/lua.plain"
    OBM_SHOW_STATS=1 OBM_STATS_FILE="$tmp/lua.stats" timeout 120 \
        "$b/obm-lua" "$w/workload.lua" 0.05 >"$tmp/lua.obm" 2>&1
    ok $? "obm-lua workload.lua" || diag "$tmp/lua.obm"
    cmp -s "$tmp/lua.plain" "$tmp/lua.obm" && served "$tmp/lua.stats"
    ok $? "same output as lua5.4, and obm served the state" ||
        { diff "$tmp/lua.plain" "$tmp/lua.obm" >"$tmp/diff"; diag "$tmp/diff" "$tmp/lua.stats"; }
else
    skip 3 "Lua host not built (liblua5.4-dev) or lua5.4 missing"
fi
exit 0
