#!/bin/bash
# The whole test suite: installs what it needs, then builds and runs
# `make check` in five configurations:
#   build/          the release build (every test that applies to it)
#   build-debug/    --enable-debug --enable-valgrind --enable-secure: assertions,
#                   invariant walkers, memcheck client requests (tests/dropin/memcheck.sh)
#                   and the secure options (tests/api/secure.c, with them on)
#   build-sanitize/ clang with AddressSanitizer + UndefinedBehaviorSanitizer
#                   (unit and obm_* API tests, and tests/api/asan_uaf; the
#                   drop-in cannot be preloaded under ASan, which brings its
#                   own malloc)
#   build-tsan/     clang with ThreadSanitizer (every obm_* API test that
#                   starts threads: `make print-thread-tests`)
#   build-fuzz/     clang with libFuzzer, ASan and UBSan: tests/fuzz for 60 s
# and the unit and API tests once more under valgrind memcheck, in
# build-debug/, where memcheck sees obm's blocks (their exec'd children too).
#
# Nothing is left out silently. A skipped result prints its test and
# reason; a stage that cannot run (no clang, no valgrind, an empty test
# list, something configure did not find) prints "== STAGE: not run
# (REASON)". With CI set (not empty, "false" or "0"), as .ci/run is run in
# CI, each of these is a failure; otherwise each counts as skipped and is
# named in the last line, which is "N passed, N failed, N skipped" and,
# after it, in parentheses, what was skipped or why it failed.
set -u
cd "$(dirname "$0")"
top=$PWD
./bootstrap.sh || exit 1

case ${CI:-} in
'' | false | 0) ci= ;;
*) ci=yes ;;
esac
jobs=$(nproc 2>/dev/null || echo 2)
status=0
suites=()  # each run_check's output, for the counts
skips=()   # "DIR/TEST N,...: REASON" for the skipped results
not_run=() # "STAGE: REASON" for each stage that could not run
broken=()  # "STAGE: ..." for each make check that failed with no failed result

configure_build() { # dir, configure arguments...
    local dir=$1
    shift
    mkdir -p "$dir" && cd "$dir" || return 1
    # Again when the arguments changed: configure.args holds the last ones.
    if [ ! -f Makefile ] || [ "$(cat configure.args 2>/dev/null)" != "$*" ]; then
        "$top/configure" -q "$@" && echo "$*" >configure.args || return 1
    fi
    make -s -j"$jobs" >/dev/null || make -j1 || return 1
    cd "$top"
}

stage_not_run() { # stage, reason
    echo "== $1: not run ($2)"
    not_run+=("$1: $2")
}

# What configure did not find that takes tests out of the build's list
# without a result of their own (`make print-missing`, one per line; PATTERN
# picks those that matter to the stage).
check_missing() { # dir, stage, pattern
    local m
    while IFS= read -r m; do
        stage_not_run "$2" "configure did not find ${m#missing: }"
    done < <(cd "$1" && make -s print-missing | grep -E -- "^missing: ($3)")
}

run_check() { # dir, label, make arguments... ($check_out: output file, check.out)
    local dir=$1 label=$2 out="$top/$1/${check_out:-check.out}"
    shift 2
    echo "== $label"
    (cd "$dir" && make -s -j"$jobs" check "$@" >"$out" 2>&1)
    local rc=$?
    grep -E '^(FAIL|ERROR|XPASS|SKIP)' "$out" || true
    grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR)' "$out" | tr '\n' ' '
    echo
    suites+=("$out")
    # automake prints "SKIP: TEST [N [- DESCRIPTION]] # SKIP REASON" for
    # each skipped result: one entry per test and reason, with the numbers.
    local line
    while IFS= read -r line; do
        skips+=("$line")
    done < <(awk -v dir="$dir" '/^SKIP: / {
            n = ($3 ~ /^[0-9]+$/) ? " " $3 : ""
            why = $0
            if (!sub(/.*# SKIP */, "", why) || why == "") why = "no reason given"
            k = dir "/" $2 ": " why
            if (!(k in nums)) order[++count] = k
            nums[k] = nums[k] (nums[k] != "" && n != "" ? "," : "") n
        }
        END {
            for (i = 1; i <= count; i++) {
                k = order[i]
                split(k, part, ": ")
                print part[1] nums[k] substr(k, length(part[1]) + 1)
            }
        }' "$out")
    if [ $rc -ne 0 ]; then
        status=1
        grep -Eq '^# (FAIL|ERROR|XPASS): +[1-9]' "$out" ||
            broken+=("$label: make check exited with $rc and no failed result (see $out)")
    fi
}

configure_build build || exit 1
check_missing build "release build" .
run_check build "release build: make check"

configure_build build-debug --enable-debug --enable-valgrind --enable-secure || exit 1
check_missing build-debug "debug build" .
run_check build-debug "debug build (--enable-debug --enable-valgrind --enable-secure): make check"

if ! command -v clang >/dev/null; then
    stage_not_run "ASan+UBSan (clang)" "clang not found"
else
    san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    configure_build build-sanitize CC=clang CXX=clang++ CFLAGS="-O1 -g $san" \
        CXXFLAGS="-O1 -g $san" LDFLAGS="$san" --disable-shared || exit 1
    check_missing build-sanitize "ASan+UBSan (clang)" cmocka
    san_tests=$(cd build-sanitize && make -s print-sanitize-tests)
    if [ -z "$san_tests" ]; then
        stage_not_run "ASan+UBSan (clang)" "make print-sanitize-tests lists no test"
    else
        # Build only what runs: the preloaded programs and shared test
        # modules cannot be built without shared libraries.
        run_check build-sanitize "ASan+UBSan (clang): unit and obm_* API tests" TESTS="$san_tests" \
            check_PROGRAMS="$san_tests" check_LTLIBRARIES=libobminternal.la
    fi
fi

if ! command -v clang >/dev/null; then
    stage_not_run "ThreadSanitizer (clang)" "clang not found"
else
    tsan="-fsanitize=thread -fno-omit-frame-pointer"
    configure_build build-tsan CC=clang CXX=clang++ CFLAGS="-O1 -g $tsan" \
        CXXFLAGS="-O1 -g $tsan" LDFLAGS="$tsan" --disable-shared || exit 1
    check_missing build-tsan "ThreadSanitizer (clang)" cmocka
    tsan_tests=$(cd build-tsan && make -s print-thread-tests)
    if [ -z "$tsan_tests" ]; then
        stage_not_run "ThreadSanitizer (clang)" "make print-thread-tests lists no test"
    else
        # abort_on_error: a free TSan's allocator cannot take (hardening.c's
        # free_stack_var) aborts, as glibc's does, instead of exiting with 66.
        TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}abort_on_error=1" run_check build-tsan \
            "ThreadSanitizer (clang): every threaded obm_* API test" \
            TESTS="$tsan_tests" check_PROGRAMS="$tsan_tests" check_LTLIBRARIES=libobminternal.la
    fi
fi

if ! command -v clang >/dev/null; then
    stage_not_run "libFuzzer (clang)" "clang not found"
else
    fz="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    configure_build build-fuzz CC=clang CXX=clang++ CFLAGS="-O1 -g $fz" \
        CXXFLAGS="-O1 -g $fz" LDFLAGS="$fz" --disable-shared || exit 1
    # Both empty where configure found no libFuzzer (HAVE_LIBFUZZER).
    fuzzers=$(cd build-fuzz && make -s print-fuzzers)
    fuzz_tests=$(cd build-fuzz && make -s print-fuzz-tests)
    if [ -z "$fuzzers" ] || [ -z "$fuzz_tests" ]; then
        stage_not_run "libFuzzer (clang)" "configure found no libFuzzer (libclang-rt-14-dev)"
    else
        run_check build-fuzz "libFuzzer (clang, ASan+UBSan): tests/fuzz for 60 s" \
            TESTS="$fuzz_tests" check_PROGRAMS="$fuzzers" check_LTLIBRARIES= FUZZ_SECONDS=60
    fi
fi

if ! command -v valgrind >/dev/null; then
    stage_not_run "valgrind memcheck" "valgrind not found"
else
    vg_tests=$(cd build-debug && make -s print-internal-tests)
    if [ -z "$vg_tests" ]; then
        stage_not_run "valgrind memcheck" "make print-internal-tests lists no test"
    else
        check_out=valgrind.out run_check build-debug \
            "valgrind memcheck (debug build, obm's blocks tracked): unit and obm_* API tests" \
            TESTS="$vg_tests" LOG_COMPILER="$top/tests/valgrind.sh" TEST_SUITE_LOG=valgrind-suite.log
    fi
fi

# One line for CI: every TAP result of every suite above (an expected
# failure counts as passed, an unexpected pass or an error as failed),
# each stage not run, and each make check that failed without a result.
passed=0 failed=0 skipped=0
for f in "${suites[@]}"; do
    read -r p x s < <(awk '/^# (PASS|XFAIL):/ {p += $3} /^# (FAIL|ERROR|XPASS):/ {x += $3}
                          /^# SKIP:/ {s += $3} END {print p + 0, x + 0, s + 0}' "$f")
    passed=$((passed + p)) failed=$((failed + x)) skipped=$((skipped + s))
done
failed=$((failed + ${#broken[@]}))
skipped=$((skipped + ${#not_run[@]}))
named=("${broken[@]}")
if [ "$skipped" -gt 0 ] && [ -n "$ci" ]; then
    for s in "${skips[@]}" "${not_run[@]}"; do
        echo "== CI: a skip is a failure: $s"
    done
    failed=$((failed + skipped)) skipped=0
    named+=("${skips[@]/#/skipped under CI: }" "${not_run[@]/#/not run under CI: }")
else
    named+=("${skips[@]}" "${not_run[@]/#/not run: }")
fi
[ "$failed" -eq 0 ] || status=1
list=
for s in "${named[@]}"; do
    list="${list:+$list; }$s"
done
echo "$passed passed, $failed failed, $skipped skipped${list:+ ($list)}"
exit $status
