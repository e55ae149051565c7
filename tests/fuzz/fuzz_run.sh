#!/bin/sh
# The libFuzzer harness (fuzz_ops.c) for FUZZ_SECONDS (default 60) over a
# copy of the seed corpus; a crash, leak, timeout or out-of-memory report
# fails it, and its input is kept under tests/fuzz/fuzz-run.*/ in the build
# directory. Listed in TESTS only where configure found libFuzzer, so a
# missing fuzzer is a failure.
fuzzer=${top_builddir:-.}/tests/fuzz/fuzz_ops
seconds=${FUZZ_SECONDS:-60}
if [ ! -x "$fuzzer" ]; then
    echo "Bail out! the fuzzer is not built: $fuzzer"
    exit 1
fi
echo "1..1"
work=$(mktemp -d "${top_builddir:-.}/tests/fuzz/fuzz-run.XXXXXX") || {
    echo "Bail out! mktemp failed"
    exit 1
}
mkdir "$work/corpus" "$work/artifacts" &&
    cp "${top_srcdir:-.}"/tests/fuzz/corpus/* "$work/corpus/" &&
    chmod -R u+w "$work/corpus" || {
    echo "Bail out! cannot copy the seed corpus"
    exit 1
}
"$fuzzer" -max_total_time="$seconds" -timeout=30 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
cov=$(grep -E '^#[0-9]+.*cov: ' "$work/log" | tail -n 1 | sed 's/.*cov: \([0-9]*\).*/\1/')
if [ $rc -eq 0 ] && [ -z "$(ls "$work/artifacts")" ] && [ -n "$runs" ]; then
    echo "ok 1 - ${runs} inputs in ${seconds} s (${speed}/s), coverage ${cov:-?}, no crash or leak"
    rm -rf "$work"
else
    grep -E 'ERROR|fuzz_ops:|SUMMARY|Test unit written|^ *#[0-9]+ ' "$work/log" | head -40 | sed 's/^/# /'
    for a in "$work"/artifacts/*; do
        [ -e "$a" ] && echo "# input kept: $a (rerun: $fuzzer $a)"
    done
    echo "not ok 1 - libFuzzer exited with $rc; log: $work/log"
fi
