#!/bin/bash
# The main job: installs what it needs, builds obm (release), then runs a
# real allocation-heavy workload -- CPython with PYTHONMALLOC=malloc, so
# every object goes through malloc -- under glibc's malloc and under obm's
# drop-in, interleaved, and prints a side-by-side comparison: median wall
# time, peak RSS, and whether the outputs are identical. Then one more run
# under obm-run shows obm's statistics report at the workload's exit and
# draws its fragmentation map into build/map.svg.
#   ./run.sh [runs]     (default 5 runs per allocator)
set -u
cd "$(dirname "$0")"
top=$PWD
runs=${1:-5}
./bootstrap.sh || exit 1
mkdir -p build && cd build || exit 1
if [ ! -f Makefile ]; then
    # Once, when it configures: the summary of what was found.
    ../configure >configure.out 2>&1 || { cat configure.out; exit 1; }
    sed -n 's/^configure: //; /^obm .* configured$/,$p' configure.out
fi
make -s -j"$(nproc)" >/dev/null || exit 1
cd "$top"

dropin=$top/build/.libs/libobmalloc.so
python=/usr/bin/python3
script=$top/tests/real/alloc_heavy.py
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "workload: PYTHONMALLOC=malloc PYTHONHASHSEED=0 $python $(basename "$script")  ($runs runs each, interleaved)"
OBM_VERBOSE=1 LD_PRELOAD=$dropin $python -c 'import ctypes; assert ctypes.CDLL(None).obm_owns' ||
    { echo "run.sh: obm is not active under LD_PRELOAD" >&2; exit 1; }

# One run: "<seconds> <peak RSS KiB>" from GNU time, output kept for comparison.
one_run() { # allocator name, preload
    env PYTHONMALLOC=malloc PYTHONHASHSEED=0 ${2:+LD_PRELOAD=$2} /usr/bin/time -f '%e %M' -o "$out/time" \
        "$python" "$script" >"$out/$1.out"
    cat "$out/time"
}
for i in $(seq "$runs"); do
    one_run glibc "" >>"$out/glibc.times"
    one_run obm "$dropin" >>"$out/obm.times"
done

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
printf '\n%-8s %14s %16s\n' allocator "median time s" "median peak RSS"
for a in glibc obm; do
    t=$(awk '{print $1}' "$out/$a.times" | median)
    m=$(awk '{print $2}' "$out/$a.times" | median)
    printf '%-8s %14.2f %12.1f MiB\n' "$a" "$t" "$(awk -v m="$m" 'BEGIN {print m / 1024}')"
    eval "t_$a=$t m_$a=$m"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo "obm / glibc: time $(ratio "$t_obm" "$t_glibc")x, peak RSS $(ratio "$m_obm" "$m_glibc")x"
if cmp -s "$out/glibc.out" "$out/obm.out"; then
    echo "outputs: identical ($(wc -l <"$out/obm.out") lines)"
else
    echo "outputs: DIFFERENT" >&2
    exit 1
fi

echo
echo "obm's statistics at the workload's exit (obm-run --map build/map.svg):"
PYTHONMALLOC=malloc PYTHONHASHSEED=0 OBM_DROPIN=$dropin build/obm-run --stats --map build/map.svg -- \
    "$python" "$script" 2>&1 >/dev/null || exit 1
echo "fragmentation map: build/map.svg"
