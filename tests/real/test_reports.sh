#!/bin/sh
# Reports at exit arrive whatever the program does (src/report.c):
#   1    cat, sort and grep under obm-run: each report reaches stderr,
#        though the coreutils close stdout and stderr before they exit
#   2    obm-run -o FILE.%p sh -c '...': a report file per process that
#        reports (dash itself leaves by _exit: its two cats report)
#   3    obm-run -o FILE without %p: bash and its two python3 children
#        append 3 reports to one file, which obm-run emptied first
#   4    a relative OBM_STATS_FILE is resolved at start, in a process that
#        then changes directory
#   5    an unwritable OBM_STATS_FILE is told at start: the report, the
#        expanded name, the reason and the pid
#   6    OBM_MAP naming a directory: told likewise, for the map
#   7    OBM_STATS_FILE alone asks for the text report; with
#        OBM_SHOW_STATS=0 there is none
. "${top_srcdir:-.}/tests/real/common.sh"
require_program python3 "$PYTHON3"
require_dropin
run="${top_builddir:-.}/obm-run"
[ -x "$run" ] || { echo "Bail out! obm-run not built at $run"; exit 1; }
bash=$(command -v bash)
require_program bash "$bash"
printf 'b\na\nc\n' >"$tmp/in"

# reports FILE PROG: how many text reports FILE holds from PROG.
reports()
{
    grep -c "^obm .* statistics, pid [0-9]* ($2)" "$1"
}

echo "1..7"
fails=0
for prog in "cat $tmp/in" "sort $tmp/in" "grep a $tmp/in"; do
    # shellcheck disable=SC2086
    "$run" $prog >"$tmp/out" 2>"$tmp/err" && [ "$(reports "$tmp/err" "${prog%% *}")" -eq 1 ] ||
        { fails=$((fails + 1)); diag "$tmp/err"; }
done
ok $fails "cat, sort and grep under obm-run each write their report to stderr"

"$run" -o "$tmp/tree.%p.txt" sh -c "cat $tmp/in; cat $tmp/in >/dev/null; true" >"$tmp/out" 2>"$tmp/err"
n=0
for f in "$tmp"/tree.*.txt; do
    [ -f "$f" ] && [ "$(reports "$f" cat)" -eq 1 ] && n=$((n + 1))
done
[ "$n" -eq 2 ] && [ ! -s "$tmp/err" ]
ok $? "obm-run -o FILE.%p sh -c: one report file for each of the two cats (found $n)" ||
    diag "$tmp/err" "$tmp"/tree.*.txt

echo "an old report" >"$tmp/one.txt"
"$run" -o "$tmp/one.txt" "$bash" -c "$PYTHON3 -c pass; $PYTHON3 -c pass; true" 2>"$tmp/err"
[ "$(reports "$tmp/one.txt" python3)" -eq 2 ] && [ "$(reports "$tmp/one.txt" bash)" -eq 1 ] &&
    ! grep -q 'an old report' "$tmp/one.txt"
ok $? "obm-run -o FILE: bash and its two python3 children append 3 reports to the emptied file" ||
    diag "$tmp/err" "$tmp/one.txt"

mkdir "$tmp/start"
(cd "$tmp/start" && OBM_SHOW_STATS=1 OBM_STATS_FILE=rel.txt LD_PRELOAD="$OBM_DROPIN" \
    "$PYTHON3" -c 'import os; os.chdir("/")') 2>"$tmp/err"
[ -f "$tmp/start/rel.txt" ] && [ "$(reports "$tmp/start/rel.txt" python3)" -eq 1 ] && [ ! -e /rel.txt ]
ok $? "a relative OBM_STATS_FILE is resolved in the directory the process started in" ||
    diag "$tmp/err"

OBM_SHOW_STATS=1 OBM_STATS_FILE=/nonexistent/obm.%p LD_PRELOAD="$OBM_DROPIN" \
    "$PYTHON3" -c 'import os; print(os.getpid())' >"$tmp/out" 2>"$tmp/err"
pid=$(cat "$tmp/out")
grep -qx "obm: cannot write the statistics report to /nonexistent/obm.$pid: No such file or directory (pid $pid)" \
    "$tmp/err" && [ "$(grep -c 'cannot write' "$tmp/err")" -eq 1 ]
ok $? "an unwritable OBM_STATS_FILE is told once, with the expanded name, the reason and the pid" ||
    diag "$tmp/err"

OBM_MAP="$tmp" LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c 'import os; print(os.getpid())' \
    >"$tmp/out" 2>"$tmp/err"
pid=$(cat "$tmp/out")
grep -qx "obm: cannot write the map report to $tmp: Is a directory (pid $pid)" "$tmp/err"
ok $? "OBM_MAP naming a directory is told, for the map" || diag "$tmp/err"

OBM_STATS_FILE="$tmp/alone.txt" LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c pass 2>"$tmp/err" &&
    OBM_SHOW_STATS=0 OBM_STATS_FILE="$tmp/off.txt" LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c pass &&
    [ "$(reports "$tmp/alone.txt" python3)" -eq 1 ] && [ ! -s "$tmp/off.txt" ]
ok $? "OBM_STATS_FILE alone writes the text report; OBM_SHOW_STATS=0 turns it off" ||
    diag "$tmp/err" "$tmp/alone.txt"
exit 0
