#!/bin/sh
# The threaded stress programs under the hardest purging:
# OBM_PURGE_DELAY_MS=0 gives every pool that goes back to its arena to the
# OS at the end of the slow path that returned it, so pools are purged and
# taken again all the time, by many threads at once. stress_obm and
# threads_obm run linked to libobm; stress_plain and threads_plain run with
# the drop-in preloaded, as stress_preload.sh and threads_preload.sh run
# them. Each program's TAP is passed through renumbered, one stream with
# its plan at the end, every description prefixed with the program; a
# program that dies, or exits non-zero with no failure of its own, or
# reports another number of results than it planned adds a failure, and so
# does a missing drop-in.
# The threads programs do half their work (TESTS_SCALE, unless set):
# every pool move costing a madvise, the full work takes twice as long.
set -u
api=$top_builddir/tests/api
out=$(mktemp "${TMPDIR:-/tmp}/purge_stress.XXXXXX") || exit 1
trap 'rm -f "$out" "$out.n"' EXIT
n=0
scale=${TESTS_SCALE:-0.5}

# run LABEL COMMAND...
run() {
    label=$1
    shift
    OBM_PURGE_DELAY_MS=0 "$@" >"$out"
    rc=$?
    awk -v base="$n" -v label="$label" -v counts="$out.n" '
        /^1\.\.[0-9]+/ { planned = substr($1, 4) + 0; next }
        /^(not )?ok [0-9]+/ {
            neg = $1 == "not"
            head = neg ? "not ok " : "ok "
            rest = substr($0, length(head) + 1)
            sub(/^[0-9]+/, "", rest)
            if (substr(rest, 1, 3) == " - ")
                rest = " - " label ": " substr(rest, 4)
            else
                rest = " - " label rest
            seen++
            failed += neg
            print head (base + seen) rest
            next
        }
        { print }
        END { print seen + 0, planned + 0, failed + 0 > counts }
    ' "$out"
    read -r seen planned failed <"$out.n"
    n=$((n + seen))
    if [ "$seen" -ne "$planned" ] || { [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; }; then
        n=$((n + 1))
        echo "not ok $n - $label: exit status $rc after $seen of $planned results"
    fi
}

run stress_obm "$api/stress_obm"
run threads_obm env TESTS_SCALE="$scale" "$api/threads_obm"
for prog in stress_plain threads_plain; do
    if [ -f "$OBM_DROPIN" ]; then
        run "$prog" env LD_PRELOAD="$OBM_DROPIN" TESTS_SCALE="$scale" "$api/$prog"
    else
        n=$((n + 1))
        echo "not ok $n - $prog: drop-in library not found: OBM_DROPIN='$OBM_DROPIN'"
    fi
done
echo "1..$n"
