#!/bin/bash
# The whole test suite: installs what it needs, then builds and runs
# `make check` in three configurations:
#   build/          the release build (every test)
#   build-debug/    --enable-debug: assertions and invariant walkers
#   build-sanitize/ clang with AddressSanitizer + UndefinedBehaviorSanitizer
#                   (unit and obm_* API tests; the drop-in cannot be preloaded
#                   under ASan, which brings its own malloc)
#   build-tsan/     clang with ThreadSanitizer (the threaded obm_* API tests)
# and the unit and API tests once more under valgrind memcheck.
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
    [ -f Makefile ] || "$top/configure" -q "$@" || return 1
    make -s -j"$jobs" >/dev/null || make -j1 || return 1
    cd "$top"
}

run_check() { # dir, label, make arguments...
    local dir=$1 label=$2
    shift 2
    echo "== $label"
    (cd "$dir" && make -s -j"$jobs" check "$@" >"$top/$dir/check.out" 2>&1)
    local rc=$?
    grep -E '^(FAIL|ERROR|XPASS)' "$top/$dir/check.out" || true
    grep -E '^# (TOTAL|PASS|SKIP|FAIL|ERROR)' "$top/$dir/check.out" | tr '\n' ' '
    echo
    suites+=("$top/$dir/check.out")
    [ $rc -eq 0 ] || status=1
}

configure_build build || exit 1
run_check build "release build: make check"

configure_build build-debug --enable-debug || exit 1
run_check build-debug "debug build (--enable-debug): make check"

if command -v clang >/dev/null; then
    san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    configure_build build-sanitize CC=clang CXX=clang++ CFLAGS="-O1 -g $san" \
        CXXFLAGS="-O1 -g $san" LDFLAGS="$san" --disable-shared || exit 1
    san_tests=$(cd build-sanitize && make -s print-internal-tests)
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

if command -v valgrind >/dev/null; then
    vg_tests=$(cd build && make -s print-internal-tests)
    run_check build "valgrind memcheck: unit and obm_* API tests" TESTS="$vg_tests" \
        LOG_COMPILER="$top/tests/valgrind.sh" TEST_SUITE_LOG=valgrind-suite.log
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
