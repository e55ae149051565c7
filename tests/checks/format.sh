#!/bin/sh
# Every C/C++ source follows .clang-format.
echo 1..1
if [ -z "$CLANG_FORMAT" ]; then
    echo "ok 1 # SKIP clang-format not found"
    exit 0
fi
cd "$top_srcdir" || exit 1
files=$(git ls-files '*.c' '*.h' '*.cc' '*.cpp' 2>/dev/null || find src include tests bench -name '*.[ch]' -o -name '*.cc')
if out=$("$CLANG_FORMAT" --dry-run -Werror $files 2>&1); then
    echo "ok 1 - clang-format clean ($(echo "$files" | wc -w) files)"
else
    echo "$out" | head -40 | sed 's/^/# /'
    echo "not ok 1 - clang-format: run 'clang-format -i' on the files above"
fi
