#!/bin/sh
# Instructions per malloc/free pair, counted with callgrind.
#
#   bench/callgrind-pairs.sh PAIRS_BINARY PRELOAD_OR_EMPTY SIZE live|alone
#
# Runs PAIRS_BINARY (bench/obm-pairs) under valgrind --tool=callgrind at two
# pair counts N1 and N2, with LD_PRELOAD=PRELOAD (an empty PRELOAD: the
# process's own malloc, glibc's), and prints (I2 - I1) / (N2 - N1): the
# instructions of one pair, start-up and the live set cancelled. The counts
# are the whole process's, read from the summary line of callgrind's output
# file. Environment: CALLGRIND_PAIRS_N1 (default 100000), CALLGRIND_PAIRS_N2
# (default 200000), CALLGRIND_PAIRS_VERBOSE=1 to show the raw counts on
# stderr, VALGRIND (default valgrind).
set -eu

usage() {
    echo "usage: $0 PAIRS_BINARY PRELOAD_OR_EMPTY SIZE live|alone" >&2
    exit 2
}
[ $# -eq 4 ] || usage
bin=$1 preload=$2 size=$3 mode=$4
case $mode in live | alone) ;; *) usage ;; esac
n1=${CALLGRIND_PAIRS_N1:-100000}
n2=${CALLGRIND_PAIRS_N2:-200000}
valgrind=${VALGRIND:-valgrind}
[ -x "$bin" ] || { echo "$0: $bin: not an executable" >&2; exit 1; }
[ -z "$preload" ] || [ -f "$preload" ] || { echo "$0: $preload: no such file" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# count N: total instructions of one run of N pairs
count() {
    out=$tmp/callgrind.$1
    # LD_PRELOAD reaches the client through valgrind, which keeps it and
    # adds its own preloads.
    if ! env ${preload:+LD_PRELOAD="$preload"} "$valgrind" --tool=callgrind -q \
        --callgrind-out-file="$out" "$bin" "$1" "$size" "$mode" >"$tmp/log" 2>&1; then
        echo "$0: $bin $1 $size $mode failed under callgrind:" >&2
        cat "$tmp/log" >&2
        exit 1
    fi
    # ld.so goes on without a preload it cannot load: the glibc count would pass for it.
    if grep -q 'from LD_PRELOAD cannot be preloaded' "$tmp/log"; then
        echo "$0: $(grep -m1 'cannot be preloaded' "$tmp/log")" >&2
        exit 1
    fi
    awk '/^summary:/ {print $2; found = 1} END {exit !found}' "$out" || {
        echo "$0: no summary line in $out" >&2
        exit 1
    }
}

i1=$(count "$n1")
i2=$(count "$n2")
if [ "${CALLGRIND_PAIRS_VERBOSE:-0}" = 1 ]; then
    echo "callgrind-pairs: ${preload:-glibc} size $size $mode: N1=$n1 I1=$i1 N2=$n2 I2=$i2" >&2
fi
awk -v i1="$i1" -v i2="$i2" -v n1="$n1" -v n2="$n2" 'BEGIN {printf "%.2f\n", (i2 - i1) / (n2 - n1)}'
