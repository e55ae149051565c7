#!/bin/sh
# Real program: the sqlite3 shell on a generated workload (sqlite_workload.awk:
# 100,000 rows of random text loaded in transactions, indexes, joins,
# GROUP BY, updates, deletes, VACUUM, integrity check). Run without and with
# the drop-in: both succeed, print the same bytes, the integrity check says
# ok, and a probe preloaded beside obm (obmprobe.c) shows that obm served
# sqlite3's malloc from start-up to exit.
. "${top_srcdir:-.}/tests/real/common.sh"
require_program sqlite3 "$SQLITE3"
require_dropin
probe="${top_builddir:-.}/tests/real/.libs/obmprobe.so"
if [ ! -f "$probe" ]; then
    echo "Bail out! probe library not built: $probe"
    exit 1
fi

echo "1..5"
awk -f "${top_srcdir:-.}/tests/real/sqlite_workload.awk" >"$tmp/workload.sql" || {
    echo "Bail out! could not generate the workload"
    exit 1
}

timeout 120 "$SQLITE3" -batch -bail "$tmp/plain.db" <"$tmp/workload.sql" \
    >"$tmp/plain.out" 2>"$tmp/plain.err"
ok $? "sqlite3 without obm" || diag "$tmp/plain.err"

timeout 120 env LD_PRELOAD="$OBM_DROPIN $probe" "$SQLITE3" -batch -bail "$tmp/obm.db" \
    <"$tmp/workload.sql" >"$tmp/obm.out" 2>"$tmp/obm.err"
ok $? "sqlite3 with obm preloaded" || diag "$tmp/obm.err"

cmp -s "$tmp/plain.out" "$tmp/obm.out"
ok $? "same output with and without obm" ||
    { diff "$tmp/plain.out" "$tmp/obm.out" >"$tmp/diff"; diag "$tmp/diff"; }

[ "$(tail -n 1 "$tmp/obm.out")" = "integrity_check: ok" ]
ok $? "integrity_check says ok" || { tail -n 5 "$tmp/obm.out" >"$tmp/tail"; diag "$tmp/tail"; }

grep -qx 'obm-probe: start active' "$tmp/obm.err" && grep -qx 'obm-probe: exit active' "$tmp/obm.err"
ok $? "obm served sqlite3's malloc at start-up and at exit" || diag "$tmp/obm.err"

exit 0
