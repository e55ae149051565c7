#!/bin/bash
# The whole test suite: installs what it needs, then builds and runs
# `make check` in five configurations:
#   build/          the release build (every test)
#   build-debug/    --enable-debug --enable-valgrind --enable-secure: assertions,
#                   invariant walkers, memcheck client requests (tests/dropin/memcheck.sh)
#                   and the secure options (tests/api/secure.c, with them on)
#   build-sanitize/ clang with AddressSanitizer + UndefinedBehaviorSanitizer
#                   (unit and obm_* API tests; the drop-in cannot be preloaded
#                   under ASan, which brings its own malloc)
#   build-tsan/     clang with ThreadSanitizer (the threaded obm_* API tests)
#   build-fuzz/     clang with libFuzzer, ASan and UBSan: tests/fuzz for 60 s
# and the unit and API tests once more under valgrind memcheck, in
# build-debug/, where memcheck sees obm's blocks.
# Ends with one line: "N passed, N failed".
set -u
cd "$(dirname "$0")"
top=$PWD
./bootstrap.sh || exit 1

jobs=$(nproc 2>/dev/null || echo 2)
status=0
suites=()

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

run_check() { # dir, label, make arguments... ($check_out: output file, check.out)
    local dir=$1 label=$2 out="$top/$1/${check_out:-check.out}"
    shift 2
    echo "== $label"
    (cd "$dir" && make -s -j"$jobs" check "$@" >"$out" 2>&1)
    local rc=$?
    grep -E '^(FAIL|ERROR|XPASS)' "$out" || true
    grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR)' "$out" | tr '\n' ' '
    echo
    suites+=("$out")
    [ $rc -eq 0 ] || status=1
}

configure_build build || exit 1
run_check build "release build: make check"

configure_build build-debug --enable-debug --enable-valgrind --enable-secure || exit 1
run_check build-debug "debug build (--enable-debug --enable-valgrind --enable-secure): make check"

if command -v clang >/dev/null; then
    san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    configure_build build-sanitize CC=clang CXX=clang++ CFLAGS="-O1 -g $san" \
        CXXFLAGS="-O1 -g $san" LDFLAGS="$san" --disable-shared || exit 1
    san_tests=$(cd build-sanitize && make -s print-sanitize-tests)
    # Build only what runs: the preloaded programs and shared test modules
    # cannot be built without shared libraries.
    run_check build-sanitize "ASan+UBSan (clang): unit and obm_* API tests" TESTS="$san_tests" \
        check_PROGRAMS="$san_tests" check_LTLIBRARIES=libobminternal.la
fi

if command -v clang >/dev/null; then
    tsan="-fsanitize=thread -fno-omit-frame-pointer"
    configure_build build-tsan CC=clang CXX=clang++ CFLAGS="-O1 -g $tsan" \
        CXXFLAGS="-O1 -g $tsan" LDFLAGS="$tsan" --disable-shared || exit 1
    tsan_tests=$(cd build-tsan && make -s print-thread-tests)
    if [ -n "$tsan_tests" ]; then
        run_check build-tsan "ThreadSanitizer (clang): threaded obm_* API tests" \
            TESTS="$tsan_tests" check_PROGRAMS="$tsan_tests" check_LTLIBRARIES=libobminternal.la
    fi
fi

if command -v clang >/dev/null; then
    fz="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    configure_build build-fuzz CC=clang CXX=clang++ CFLAGS="-O1 -g $fz" \
        CXXFLAGS="-O1 -g $fz" LDFLAGS="$fz" --disable-shared || exit 1
    # Empty where clang has no libFuzzer: the test then says SKIP.
    fuzzers=$(cd build-fuzz && make -s print-fuzzers)
    run_check build-fuzz "libFuzzer (clang, ASan+UBSan): tests/fuzz for 60 s" \
        TESTS=tests/fuzz/fuzz_run.sh check_PROGRAMS="$fuzzers" check_LTLIBRARIES= FUZZ_SECONDS=60
fi

if command -v valgrind >/dev/null; then
    vg_tests=$(cd build-debug && make -s print-internal-tests)
    check_out=valgrind.out run_check build-debug \
        "valgrind memcheck (debug build, obm's blocks tracked): unit and obm_* API tests" \
        TESTS="$vg_tests" LOG_COMPILER="$top/tests/valgrind.sh" TEST_SUITE_LOG=valgrind-suite.log
fi

# One line for CI: every TAP result of every suite above (an expected
# failure counts as passed, an unexpected pass or an error as failed).
passed=0 failed=0 skipped=0
for f in "${suites[@]}"; do
    read -r p x s < <(awk '/^# (PASS|XFAIL):/ {p += $3} /^# (FAIL|ERROR|XPASS):/ {x += $3}
                          /^# SKIP:/ {s += $3} END {print p + 0, x + 0, s + 0}' "$f")
    passed=$((passed + p)) failed=$((failed + x)) skipped=$((skipped + s))
done
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed, $skipped skipped"
exit $status
