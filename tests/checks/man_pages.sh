#!/bin/sh
# The manual pages (man/): they render, and they hold what the code has.
#   1  obm(3), obmalloc(7) and obm-run(1) render with no warning (man -l)
#   2  obmalloc(7)'s OPTIONS section is the option table of src/options.c,
#      as tests/checks/man_options.awk writes it
#   3  obm(3)'s synopsis declares every obm_* function libobm.so exports
#   4  obm-run(1) describes every option obm-run --help lists
man_dir="$top_srcdir/man"
echo 1..4

bad=""
for page in obm.3 obmalloc.7 obm-run.1; do
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$man_dir/$page" 2>&1 >/dev/null)
    [ -z "$out" ] && [ -s "$man_dir/$page" ] || { bad="$bad $page"; echo "$out" | sed 's/^/# /'; }
done
[ -z "$bad" ] && echo "ok 1 - the three pages render with no warning" ||
    echo "not ok 1 - warnings or no page:$bad"

want=$("$top_builddir/tests/checks/options_table" options | awk -f "$top_srcdir/tests/checks/man_options.awk")
got=$(sed -n '/^\.\\" options:begin/,/^\.\\" options:end/p' "$man_dir/obmalloc.7" | sed '1d;$d')
if [ -n "$want" ] && [ "$got" = "$want" ]; then
    echo "ok 2 - obmalloc(7) lists every option as src/options.c has it"
else
    echo "# obmalloc.7 should hold, between its options markers:"
    echo "$want" | sed 's/^/#   /'
    echo "not ok 2 - obmalloc(7)'s options differ from src/options.c"
fi

missing=""
for f in $(nm -D --defined-only "$top_builddir/.libs/libobm.so" | awk '$3 ~ /^obm_/ { print $3 }'); do
    grep -q "^\.BI\{0,1\} \"[^\"]*$f(" "$man_dir/obm.3" || missing="$missing $f"
done
[ -z "$missing" ] && echo "ok 3 - obm(3) declares every function libobm exports" ||
    echo "not ok 3 - obm(3) lacks:$missing"

missing=""
for o in $("$top_builddir/obm-run" --help | grep -o -- '--[a-z-]*' | sort -u); do
    [ "$o" = "--" ] && continue
    grep -q -- "$(echo "$o" | sed 's/-/\\\\-/g')" "$man_dir/obm-run.1" || missing="$missing $o"
done
[ -z "$missing" ] && echo "ok 4 - obm-run(1) describes every option of obm-run --help" ||
    echo "not ok 4 - obm-run(1) lacks:$missing"
