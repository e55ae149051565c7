#!/bin/sh
# obm-run and the exit reports on a real program: CPython (PYTHONMALLOC=
# malloc, so its objects come from malloc) under the drop-in.
#   1-2  OBM_SHOW_STATS=1 under LD_PRELOAD: the program's output is intact
#        and stderr holds the text report, whose byte ledger adds up
#   3-5  obm-run --json -o FILE.%p --map FILE.svg: one JSON file per pid
#        that parses, whose five byte fields sum to bytes_mapped and whose
#        counts are the program's (tens of thousands of mallocs); an SVG
#        map that xmllint accepts, with one cell per pool of that report
#   6    a bad OBM_SHOW_STATS value is reported and ignored
. "${top_srcdir:-.}/tests/real/common.sh"
require_program python3 "$PYTHON3"
require_dropin
run="${top_builddir:-.}/obm-run"
[ -x "$run" ] || { echo "Bail out! obm-run not built at $run"; exit 1; }
prog='import json; d = {str(i): [i] * (i % 7) for i in range(20000)}; print(len(json.dumps(d)))'
want=$(PYTHONMALLOC=malloc "$PYTHON3" -c "$prog")

echo "1..6"
PYTHONMALLOC=malloc OBM_SHOW_STATS=1 LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c "$prog" \
    >"$tmp/out" 2>"$tmp/err"
[ $? -eq 0 ] && [ "$(cat "$tmp/out")" = "$want" ]
ok $? "python3 under OBM_SHOW_STATS=1 prints its own output" || diag "$tmp/out" "$tmp/err"

# The ledger: the five byte lines add up to "Total", which is the mapped
# bytes; the report names the process.
awk -F= '
    function num(s) { gsub(/[ ,]/, "", s); return s + 0 }
    /^obm .* statistics, pid [0-9]+ \(python3/ { named = 1 }
    / arenas \* 262144 bytes\/arena/ { mapped = num($2) }
    /^# bytes in allocated blocks|^# bytes in available blocks|unused pools \* 4096 bytes|^# bytes lost to/ { sum += num($2); n++ }
    /^Total/ { total = num($2) }
    /^# arenas allocated current/ { arenas = num($2) }
    END { exit !(named && n == 5 && arenas > 0 && mapped == arenas * 262144 && sum == mapped && total == mapped) }
' "$tmp/err"
ok $? "the text report names python3 and its byte ledger adds up to the mapped bytes" || diag "$tmp/err"

PYTHONMALLOC=malloc "$run" --json -o "$tmp/stats.%p.json" --map "$tmp/map.svg" -- \
    "$PYTHON3" -c "$prog" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 0 ] && [ "$(cat "$tmp/out")" = "$want" ] && [ ! -s "$tmp/err" ]
ok $? "obm-run --json -o FILE --map FILE: same output, nothing on stderr" || diag "$tmp/out" "$tmp/err"

set -- "$tmp"/stats.*.json
[ $# -eq 1 ] && [ -f "$1" ] && "$PYTHON3" - "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
ledger = ("bytes_in_use", "bytes_free_blocks", "bytes_empty_pools", "bytes_pool_headers",
          "bytes_quantization")
assert sum(s[k] for k in ledger) == s["bytes_mapped"] == s["arenas_current"] * 262144, s
assert len(s["classes"]) == 56
mallocs = sum(c["mallocs"] for c in s["classes"])
assert mallocs > 20000, mallocs
assert sum(c["blocks_in_use"] * c["block_size"] for c in s["classes"]) == s["bytes_in_use"]
print(s["arenas_current"])
PY
ok $? "one JSON report, named by pid, that parses and adds up" || diag "$tmp/err"
arenas=$("$PYTHON3" -c 'import json, sys; print(json.load(open(sys.argv[1]))["arenas_current"])' "$1" 2>/dev/null)

if command -v xmllint >/dev/null; then
    cells=$(xmllint --xpath "count(//*[local-name()='rect'][contains(concat(' ', @class, ' '), ' pool ')])" \
        "$tmp/map.svg" 2>"$tmp/xml.err")
    [ -n "$arenas" ] && [ "$cells" = "$((arenas * 64))" ]
    ok $? "the map is well-formed SVG with 64 cells for each of the $arenas arenas (found $cells)" ||
        diag "$tmp/xml.err"
else
    echo "ok 5 # SKIP xmllint not found (libxml2-utils)"
    tap_n=5
fi

OBM_SHOW_STATS=yes LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c 'pass' >"$tmp/out" 2>"$tmp/err"
[ $? -eq 0 ] && grep -qx 'obm: ignoring OBM_SHOW_STATS=yes (expected 0, 1, json)' "$tmp/err" &&
    ! grep -q 'statistics' "$tmp/err"
ok $? "OBM_SHOW_STATS=yes is reported and ignored" || diag "$tmp/err"
exit 0
