#!/bin/sh
# memcheck sees a program's bugs in obm's blocks: uaf_preload (uaf.c), not
# linked to obm, runs under valgrind with the drop-in preloaded, once per
# bug and once clean, and each report must say exactly what went wrong.
# Only a build configured with --enable-valgrind tells memcheck about obm's
# blocks (src/track.h); elsewhere memcheck sees arenas of defined bytes,
# so only that build lists this test, and anything it needs that is
# missing is a failure.
prog="${top_builddir:-.}/tests/dropin/uaf_preload"
vg=${VALGRIND:-valgrind}
if [ "${TESTS_MEMCHECK_HOOKS:-}" != yes ]; then
    echo "Bail out! obm built without --enable-valgrind: memcheck cannot see its blocks"
    exit 1
fi
if ! command -v "$vg" >/dev/null 2>&1; then
    echo "Bail out! valgrind not found ('$vg')"
    exit 1
fi
if [ -z "${OBM_DROPIN:-}" ] || [ ! -f "$OBM_DROPIN" ]; then
    echo "Bail out! drop-in library not found: OBM_DROPIN='${OBM_DROPIN:-}'"
    exit 1
fi
if [ ! -x "$prog" ]; then
    echo "Bail out! test program not built: $prog"
    exit 1
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
echo 1..5
n=0

# run MODE: uaf_preload MODE under memcheck; its stdout in $tmp/MODE.out,
# valgrind's report in $tmp/MODE.vg (without the "==pid==" prefixes and
# the indentation after them), its exit status in $rc. Errors exit with
# 99, leaks counted as errors.
run() {
    timeout -s KILL 300 env LD_PRELOAD="$OBM_DROPIN" "$vg" \
        --soname-synonyms=somalloc=nouserintercepts --leak-check=full \
        --errors-for-leak-kinds=definite,possible --error-exitcode=99 \
        --log-file="$tmp/$1.raw" "$prog" "$1" >"$tmp/$1.out" 2>&1
    rc=$?
    sed 's/^==[0-9]*== *//' "$tmp/$1.raw" >"$tmp/$1.vg"
}

# result MODE DESCRIPTION FAILURE: "ok", or "not ok" with the failure, the
# program's output and valgrind's report as diagnostics.
result() {
    n=$((n + 1))
    if [ -z "$3" ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        echo "# $3"
        sed 's/^/# out: /' "$tmp/$1.out"
        sed 's/^/# vg: /' "$tmp/$1.vg"
    fi
}

# has MODE LINE: valgrind's report has exactly this line.
has() {
    grep -qxF -- "$2" "$tmp/$1.vg"
}

# frames MODE FROM: the stack frames after the line FROM.
frames() {
    awk -v from="$2" '
        on && $0 !~ /^(at|by) 0x/ { exit }
        on { print }
        $0 == from { on = 1 }' "$tmp/$1.vg"
}

# The address the program printed ("block 0x... usable N"), plus an offset.
address() {
    addr=$(sed -n 's/^block \(0x[0-9a-f]*\) usable .*/\1/p' "$tmp/$1.out")
    [ -n "$addr" ] && printf '0x%x' $((addr + $2))
}

# An obm frame: its malloc or free, in api.c, or in the drop-in without
# debug information.
obm_frame() { # NAME
    grep -Eq ": [a-z_]*$1 \((api\.c:[0-9]+|in .*libobmalloc[^ ]*)\)\$"
}

# (a) A read 3 bytes into a freed 40-byte request: its block has 48 bytes,
# and both stacks go through obm.
run uaf
why=
at=$(address uaf 3)
freed="Address $at is 3 bytes inside a block of size 48 free'd"
if [ "$rc" -ne 99 ]; then
    why="exit status $rc, want 99"
elif [ -z "$at" ]; then
    why="the program printed no block address"
elif ! has uaf "Invalid read of size 1"; then
    why="no \"Invalid read of size 1\""
elif ! has uaf "$freed"; then
    why="no \"$freed\""
elif ! frames uaf "$freed" | obm_frame free; then
    why="the free stack does not go through obm's free"
elif ! frames uaf "$freed" | grep -Eq ': (mode_uaf|main) \((uaf\.c:[0-9]+|in .*uaf_preload)\)$'; then
    why="the free stack does not reach the program"
elif ! frames uaf "Block was alloc'd at" | obm_frame malloc; then
    why="the alloc stack does not go through obm's malloc"
elif ! has uaf "ERROR SUMMARY: 1 errors from 1 contexts (suppressed: 0 from 0)"; then
    why="not exactly one error"
fi
result uaf "use after free of a 48-byte obm block: invalid read inside the freed block" "$why"

# (b) A leaked 24-byte request: its 32-byte block, definitely lost, from
# obm's malloc.
run leak
why=
lost="32 bytes in 1 blocks are definitely lost in loss record 1 of 1"
if [ "$rc" -ne 99 ]; then
    why="exit status $rc, want 99"
elif ! grep -qx 'leaked block usable 32' "$tmp/leak.out"; then
    why="the program's block is not a 32-byte block"
elif ! has leak "$lost"; then
    why="no \"$lost\""
elif ! frames leak "$lost" | obm_frame malloc; then
    why="the loss record's stack does not go through obm's malloc"
elif ! has leak "definitely lost: 32 bytes in 1 blocks"; then
    why="the leak summary is not \"definitely lost: 32 bytes in 1 blocks\""
elif ! has leak "ERROR SUMMARY: 1 errors from 1 contexts (suppressed: 0 from 0)"; then
    why="not exactly one error"
fi
result leak "a leaked 32-byte obm block: definitely lost, 32 bytes" "$why"

# (c) One byte past the usable size: into the next block, never handed
# out (496-byte class), and into a pool's tail (512-byte class).
for mode in overflow-next:496 overflow-tail:512; do
    size=${mode#*:}
    mode=${mode%:*}
    run "$mode"
    why=
    at=$(address "$mode" "$size")
    after="Address $at is 0 bytes after a block of size $size alloc'd"
    if [ "$rc" -ne 99 ]; then
        why="exit status $rc, want 99"
    elif [ -z "$at" ]; then
        why="the program printed no block address"
    elif ! grep -qx "block .* usable $size" "$tmp/$mode.out"; then
        why="the block's usable size is not $size"
    elif ! has "$mode" "Invalid write of size 1"; then
        why="no \"Invalid write of size 1\""
    elif ! has "$mode" "$after"; then
        why="no \"$after\""
    elif ! frames "$mode" "$after" | obm_frame malloc; then
        why="the alloc stack does not go through obm's malloc"
    elif ! has "$mode" "ERROR SUMMARY: 1 errors from 1 contexts (suppressed: 0 from 0)"; then
        why="not exactly one error"
    fi
    result "$mode" "$mode: a write one byte past a $size-byte obm block is invalid" "$why"
done

# (d) Thousands of blocks of obm and of the backing allocator, used
# correctly: no error, nothing left.
run clean
why=
if [ "$rc" -ne 0 ]; then
    why="exit status $rc, want 0"
elif ! grep -Eq '^clean: [0-9]+ mallocs \([1-9][0-9]* from obm\)' "$tmp/clean.out"; then
    why="the program did not finish, or obm served none of it"
elif ! has clean "All heap blocks were freed -- no leaks are possible"; then
    why="blocks left at exit"
elif ! has clean "ERROR SUMMARY: 0 errors from 0 contexts (suppressed: 0 from 0)"; then
    why="errors in a correct program"
fi
result clean "a correct program: 0 errors, no leak" "$why"
