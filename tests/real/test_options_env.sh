#!/bin/sh
# OBM_* variables that are no option, and values with stray characters,
# are told at start, one line each, and change nothing (src/options.c):
#   1    OBM_SHOW_STAT=1 and OBM_SHOWSTATS=1: "no such option", with the
#        nearest option's name
#   2    OBM_XYZZY=1: "no such option", no suggestion
#   3    the variables of obm's own tools (OBM_DROPIN,
#        OBM_PYTHON_ALLOCATOR) and the options: nothing
#   4    OBM_PURGE_DELAY_MS=' 100' and '+100': refused as numbers, the
#        default kept
#   5    with OBM_VERBOSE=1, obm_option_set prints the option it changed,
#        from obm_option_set
. "${top_srcdir:-.}/tests/real/common.sh"
require_program python3 "$PYTHON3"
require_dropin
unset OBM_VERBOSE OBM_SHOW_STATS OBM_STATS_FILE OBM_MAP OBM_PURGE_DELAY_MS

# run VAR=VALUE...: python3 under the drop-in with those variables.
run()
{
    env "$@" LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c 'print("out")' >"$tmp/out" 2>"$tmp/err" &&
        [ "$(cat "$tmp/out")" = out ]
}

echo "1..5"
cat >"$tmp/want" <<'WANT'
obm: ignoring OBM_SHOW_STAT: no such option (did you mean OBM_SHOW_STATS?)
obm: ignoring OBM_SHOWSTATS: no such option (did you mean OBM_SHOW_STATS?)
WANT
run OBM_SHOW_STAT=1 OBM_SHOWSTATS=1 && sort "$tmp/err" >"$tmp/got" && sort "$tmp/want" | cmp -s - "$tmp/got"
ok $? "misspelt OBM_SHOW_STATS: told, with the nearest name, and no report" || diag "$tmp/err"

run OBM_XYZZY=1 && [ "$(cat "$tmp/err")" = "obm: ignoring OBM_XYZZY: no such option" ]
ok $? "OBM_XYZZY: told, with no suggestion" || diag "$tmp/err"

run OBM_DROPIN=x OBM_PYTHON_ALLOCATOR=obm OBM_ARENA_KEEP=2 OBM_ON_ERROR=abort &&
    [ ! -s "$tmp/err" ]
ok $? "the tools' OBM_* variables and the options are not told" || diag "$tmp/err"

fails=0
for v in ' 100' '+100' '100 '; do
    env OBM_PURGE_DELAY_MS="$v" OBM_VERBOSE=1 LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c pass 2>"$tmp/err"
    grep -qxF "obm: ignoring OBM_PURGE_DELAY_MS=$v (expected -1..3600000)" "$tmp/err" &&
        grep -qx 'obm: option OBM_PURGE_DELAY_MS=100 (default)' "$tmp/err" ||
        { fails=$((fails + 1)); diag "$tmp/err"; }
done
ok $fails "OBM_PURGE_DELAY_MS=' 100', '+100' and '100 ' are refused and the default kept"
OBM_VERBOSE=1 LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c '
import ctypes
set_option = ctypes.CDLL(None).obm_option_set
assert set_option(b"OBM_PURGE_DELAY_MS", b"0") == 0
assert set_option(b"OBM_PURGE_DELAY_MS", b"x") != 0' 2>"$tmp/err" &&
    [ "$(grep -c 'OBM_PURGE_DELAY_MS' "$tmp/err")" -eq 2 ] &&
    grep -qx 'obm: option OBM_PURGE_DELAY_MS=100 (default)' "$tmp/err" &&
    [ "$(tail -1 "$tmp/err")" = "obm: option OBM_PURGE_DELAY_MS=0 (obm_option_set)" ]
ok $? "OBM_VERBOSE=1: obm_option_set prints the option it changed, and nothing for a refused value" ||
    diag "$tmp/err"
exit 0
