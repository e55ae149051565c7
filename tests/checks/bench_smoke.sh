#!/bin/sh
# The benchmark programs still build, run under the drop-in and exit 0,
# obm serves their mallocs (its JSON report at exit, OBM_SHOW_STATS, counts
# them), and they print what bench/run.py parses (the numbers themselves
# are for `make bench`). Every program `make` builds is in the plan:
# obm-speed is built only when configure found google-benchmark, and is
# skipped, saying so, only then; any other one missing fails.
b=$top_builddir/bench
if [ ! -f "$OBM_DROPIN" ]; then
    echo "Bail out! drop-in library not found: OBM_DROPIN='$OBM_DROPIN'"
    exit 1
fi
if [ -z "$PYTHON3" ]; then
    echo "Bail out! python3 not found (configure's PYTHON3): it reads the programs' JSON"
    exit 1
fi
# "" when configure enabled google-benchmark, "#" when not.
if ! have_benchmark=$(printf '@HAVE_BENCHMARK_TRUE@' | "$top_builddir/config.status" -q --file=-) ||
    { [ "$have_benchmark" != "" ] && [ "$have_benchmark" != "#" ]; }; then
    echo "Bail out! config.status does not say whether obm-speed is built"
    exit 1
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/obm-bench-smoke.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
echo 1..9
i=0

# run PROGRAM ARGS...: PROGRAM under the drop-in with its stdout in
# $dir/out; false, with the reason in $why, when it is not built, exits
# non-zero, or obm did not serve it: one report at exit (one process), with
# at least 10,000 small mallocs.
run() {
    p=$1
    shift
    rm -f "$dir"/out "$dir"/err "$dir"/stats.*
    if [ ! -x "$b/$p" ]; then
        why="$b/$p was not built"
        return 1
    fi
    env LD_PRELOAD="$OBM_DROPIN" OBM_SHOW_STATS=json OBM_STATS_FILE="$dir/stats.%p.json" \
        "$b/$p" "$@" >"$dir/out" 2>"$dir/err"
    rc=$?
    if [ $rc -ne 0 ]; then
        tail -5 "$dir/err" | sed 's/^/# /'
        why="exit status $rc"
        return 1
    fi
    if ! why=$("$PYTHON3" - "$dir"/stats.* 2>&1 <<'PY'
import json, sys
files = [f for f in sys.argv[1:] if not f.endswith("*")]
if len(files) != 1:
    sys.exit("%d reports from obm at exit, expected 1: was the drop-in preloaded?" % len(files))
s = json.load(open(files[0]))
mallocs = sum(c["mallocs"] for c in s["classes"])
if mallocs < 10000:
    sys.exit("obm served %d small mallocs, expected at least 10,000" % mallocs)
PY
    ); then
        return 1
    fi
}
# The last line of $dir/out is a JSON object naming obm as the allocator
# (bench/mem/memutil.h: "allocator" 1 is obm).
mem_json_ok() {
    why=$("$PYTHON3" -c 'import json, sys
lines = open(sys.argv[1]).read().strip().splitlines()
if not lines:
    sys.exit("no output")
r = json.loads(lines[-1])
if r.get("allocator") != 1:
    sys.exit("the program saw allocator %r, not obm (1)" % r.get("allocator"))' "$dir/out" 2>&1)
}
result() { # ok?, description
    i=$((i + 1))
    if [ "$1" = 0 ]; then
        echo "ok $i - $2"
    else
        # A reason of several lines (a traceback): its last on the TAP line.
        printf '%s\n' "$why" | sed '$d; s/^/# /'
        echo "not ok $i - $2: $(printf '%s\n' "$why" | tail -1)"
    fi
}

for p in obm-mem-random90 obm-mem-pinning; do
    run "$p" --quick --idle-ms 0 && mem_json_ok
    result $? "$p --quick prints its JSON, served by obm"
done
run obm-mem-phased --quick && mem_json_ok
result $? "obm-mem-phased --quick prints its JSON, served by obm"

run obm-mem-churn --quick --steps 300000 --series "$dir/series" && mem_json_ok &&
    { head -1 "$dir/series" | grep -q '^step,seconds,rss_kib,live_bytes$' ||
        { why="its series has no header line"; false; }; }
result $? "obm-mem-churn prints its JSON and writes its series, served by obm"

run obm-mem-skewed --quick && mem_json_ok &&
    why=$("$PYTHON3" -c 'import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
if not 0.74 <= r["small_share"] <= 0.76 or r["objects"] != 100000:
    sys.exit("not the skewed shape: %r of the requests <= 16 B, %r live" %
             (r["small_share"], r["objects"]))' "$dir/out" 2>&1)
result $? "obm-mem-skewed --quick prints its JSON (75% of requests <= 16 B), served by obm"

run obm-pairs 1000 64 live
result $? "obm-pairs runs, served by obm"

if [ "$have_benchmark" = "#" ]; then
    for t in "obm-speed" "obm-speed's public shapes"; do
        i=$((i + 1))
        echo "ok $i # SKIP $t: configure found no google-benchmark (libbenchmark-dev)"
    done
else
    run obm-speed --benchmark_filter='BM_pair_live/64$' --benchmark_min_time=0.01 \
        --benchmark_format=json &&
        why=$("$PYTHON3" -c 'import json, sys
b = json.load(open(sys.argv[1]))["benchmarks"]
if not b or not b[0]["items_per_second"] > 0:
    sys.exit("no benchmark with items/s in its JSON")' "$dir/out" 2>&1)
    result $? "obm-speed runs a benchmark and reports items/s, served by obm"

    # The rows that check their own blocks: an error of theirs is in the JSON.
    shapes='BM_bignum BM_simple_fifo/32/400 BM_simple_lifo/32/400
        BM_churn_linear/real_time/threads:2 BM_churn_invsq/real_time/threads:2
        BM_handoff/2/iterations:5/manual_time BM_mpmc/iterations:5/manual_time'
    run obm-speed --benchmark_filter='^(BM_bignum|BM_simple_(fifo|lifo)/32/400|BM_churn_(linear|invsq)/real_time/threads:2|BM_handoff/2/.*|BM_mpmc/.*)$' \
        --benchmark_min_time=0.01 --benchmark_format=json &&
        why=$("$PYTHON3" -c 'import json, sys
b = {r["name"]: r for r in json.load(open(sys.argv[1]))["benchmarks"]}
for name in sys.argv[2].split():
    r = b.get(name)
    if r is None:
        sys.exit(name + " did not run")
    if r.get("error_occurred"):
        sys.exit(name + ": " + r["error_message"])
    if not r["items_per_second"] > 0:
        sys.exit(name + " reports no items/s")' "$dir/out" "$shapes" 2>&1)
    result $? "obm-speed's rows that check their blocks (bignum, simple-bench, wide churn, handoff, mpmc) pass, served by obm"
fi

why=$("$PYTHON3" -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' \
    "$top_srcdir/bench/run.py" 2>&1)
result $? "bench/run.py compiles"
