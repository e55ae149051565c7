#!/bin/sh
# The programs of examples/ build and do what their comments say:
#   1  examples/linked: 100,000 nodes through obm_*, all checked and freed
#   2  examples/stats_diff: the phase's difference, then the text report
#   3  examples/dropin under the drop-in: its output, and malloc_stats()
#      printing obm's report
ex="$top_builddir/examples"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/obm-examples.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
echo 1..3

"$ex/linked" >"$tmp/out" 2>"$tmp/err" &&
    grep -Eq '^100000 nodes checked; obm [0-9]+: [0-9]+ mallocs, [0-9]+ frees' "$tmp/out"
if [ $? -eq 0 ]; then echo "ok 1 - examples/linked"; else
    sed 's/^/# /' "$tmp/out" "$tmp/err"; echo "not ok 1 - examples/linked"; fi

"$ex/stats_diff" >"$tmp/out" 2>"$tmp/err" &&
    grep -Eq '^the phase: [1-9][0-9]* arenas more, [0-9]+ bytes in use' "$tmp/out" &&
    grep -q '^48-byte class: 0 blocks in use; 208-byte class: 25000$' "$tmp/out" &&
    grep -q '^obm .* statistics, pid [0-9]* (stats_diff)$' "$tmp/err"
if [ $? -eq 0 ]; then echo "ok 2 - examples/stats_diff"; else
    sed 's/^/# /' "$tmp/out" "$tmp/err"; echo "not ok 2 - examples/stats_diff"; fi

LD_PRELOAD="$OBM_DROPIN" "$ex/dropin" >"$tmp/out" 2>"$tmp/err" &&
    grep -Eqx '20000 words, [0-9]+ bytes' "$tmp/out" &&
    grep -q '^obm .* statistics, pid [0-9]* (dropin)$' "$tmp/err"
if [ $? -eq 0 ]; then echo "ok 3 - examples/dropin under the drop-in"; else
    sed 's/^/# /' "$tmp/out" "$tmp/err"; echo "not ok 3 - examples/dropin under the drop-in"; fi
