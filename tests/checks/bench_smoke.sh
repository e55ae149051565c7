#!/bin/sh
# The benchmark programs still build, run under the drop-in, and print what
# bench/run.py parses (the numbers themselves are for `make bench`).
b=$top_builddir/bench
progs="obm-mem-random90 obm-mem-pinning obm-mem-phased obm-mem-churn obm-pairs obm-speed"
n=0
for p in $progs; do [ -x "$b/$p" ] && n=$((n + 1)); done
echo "1..$((n + 1))"
i=0
json_ok() { "$PYTHON3" -c 'import json, sys; json.loads(sys.stdin.read().strip().splitlines()[-1])'; }
for p in obm-mem-random90 obm-mem-pinning; do
    [ -x "$b/$p" ] || continue
    i=$((i + 1))
    if env LD_PRELOAD="$OBM_DROPIN" "$b/$p" --quick --idle-ms 0 | json_ok; then
        echo "ok $i - $p --quick prints JSON under obm"
    else
        echo "not ok $i - $p --quick under obm"
    fi
done
for p in obm-mem-phased; do
    [ -x "$b/$p" ] || continue
    i=$((i + 1))
    if env LD_PRELOAD="$OBM_DROPIN" "$b/$p" --quick | json_ok; then
        echo "ok $i - $p --quick prints JSON under obm"
    else
        echo "not ok $i - $p --quick under obm"
    fi
done
if [ -x "$b/obm-mem-churn" ]; then
    i=$((i + 1))
    series=$(mktemp)
    if env LD_PRELOAD="$OBM_DROPIN" "$b/obm-mem-churn" --quick --steps 300000 --series "$series" |
        json_ok && head -1 "$series" | grep -q '^step,seconds,rss_kib,live_bytes$'; then
        echo "ok $i - obm-mem-churn prints JSON and writes its series under obm"
    else
        echo "not ok $i - obm-mem-churn under obm"
    fi
    rm -f "$series"
fi
if [ -x "$b/obm-pairs" ]; then
    i=$((i + 1))
    if env LD_PRELOAD="$OBM_DROPIN" "$b/obm-pairs" 1000 64 live; then
        echo "ok $i - obm-pairs runs under obm"
    else
        echo "not ok $i - obm-pairs under obm"
    fi
fi
if [ -x "$b/obm-speed" ]; then
    i=$((i + 1))
    out=$(env LD_PRELOAD="$OBM_DROPIN" "$b/obm-speed" --benchmark_filter='BM_pair_live/64$' \
        --benchmark_min_time=0.01 --benchmark_format=json 2>/dev/null)
    if echo "$out" | "$PYTHON3" -c 'import json, sys
b = json.load(sys.stdin)["benchmarks"]
assert b and b[0]["items_per_second"] > 0'; then
        echo "ok $i - obm-speed runs a benchmark under obm and reports items/s"
    else
        echo "not ok $i - obm-speed under obm"
    fi
fi
i=$((i + 1))
if "$PYTHON3" -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' "$top_srcdir/bench/run.py"; then
    echo "ok $i - bench/run.py compiles"
else
    echo "not ok $i - bench/run.py does not compile"
fi
