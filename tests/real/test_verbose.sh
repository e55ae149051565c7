#!/bin/sh
# OBM_VERBOSE from the environment, read by the constructor of a fresh
# process: python3 with the drop-in preloaded, and python3 loading libobm
# with ctypes.
#   1    OBM_VERBOSE=1: the program's output intact, and stderr exactly the
#        start-up line (version and geometry; ", debug build" in debug builds)
#        and a line per option of the README's table, with its default
#   2-3  OBM_VERBOSE=0, and unset: nothing on stderr
#   4    OBM_VERBOSE=2: the one line saying it is ignored, and no start-up line
#   5    libobm loaded by a program with OBM_VERBOSE=1: the same start-up line
. "${top_srcdir:-.}/tests/real/common.sh"
require_program python3 "$PYTHON3"
require_dropin
libobm="${top_builddir:-.}/.libs/libobm.so"
[ -f "$libobm" ] || { echo "Bail out! libobm not built at $libobm"; exit 1; }
unset OBM_VERBOSE OBM_SHOW_STATS OBM_STATS_FILE OBM_MAP

version=$(sed -n 's/^#define OBM_VERSION_STRING "\(.*\)"$/\1/p' "${top_srcdir:-.}/include/obm.h")
debug=
grep -q '^#define OBM_DEBUG 1$' "${top_builddir:-.}/config.h" && debug=", debug build"
[ -n "$version" ] || { echo "Bail out! no OBM_VERSION_STRING in include/obm.h"; exit 1; }
printf 'obm: version %s, classes 32 x 16..512 B in pools of 4096 B, 24 x 640..32768 B in pools of 16..256 KiB, arena 256 KiB%s\n' \
    "$version" "$debug" >"$tmp/line"
# Then every option of the README's table, its default (OBM_VERBOSE: 1,
# from the environment).
sed -n 's/^| `\(OBM_[A-Z_]*\)` | \([^ |]*\) | .*/\1 \2/p' "${top_srcdir:-.}/README.md" |
    while read -r name def; do
        case $name in
        OBM_VERBOSE) echo "obm: option OBM_VERBOSE=1 (environment)" ;;
        *)
            def=$(printf '%s' "$def" | tr -d '`')
            [ "$def" = unset ] && def=
            echo "obm: option $name=$def (default)"
            ;;
        esac
    done >>"$tmp/line"
[ "$(wc -l <"$tmp/line")" -gt 5 ] || { echo "Bail out! no option table in README.md"; exit 1; }

# run VALUE|-: python3 under the drop-in, OBM_VERBOSE=VALUE (- leaves it unset).
run()
{
    if [ "$1" = - ]; then
        LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c 'print("out")' >"$tmp/out" 2>"$tmp/err"
    else
        OBM_VERBOSE="$1" LD_PRELOAD="$OBM_DROPIN" "$PYTHON3" -c 'print("out")' \
            >"$tmp/out" 2>"$tmp/err"
    fi
    [ $? -eq 0 ] && [ "$(cat "$tmp/out")" = out ]
}

echo "1..5"
run 1 && cmp -s "$tmp/err" "$tmp/line"
ok $? "OBM_VERBOSE=1: stderr is exactly \"$(head -1 "$tmp/line")\" and the option lines" ||
    diag "$tmp/line" "$tmp/err"

run 0 && [ ! -s "$tmp/err" ]
ok $? "OBM_VERBOSE=0: nothing on stderr" || diag "$tmp/err"

run - && [ ! -s "$tmp/err" ]
ok $? "OBM_VERBOSE unset: nothing on stderr" || diag "$tmp/err"

echo 'obm: ignoring OBM_VERBOSE=2 (expected 0..1)' >"$tmp/want"
run 2 && cmp -s "$tmp/err" "$tmp/want"
ok $? "OBM_VERBOSE=2: only \"$(cat "$tmp/want")\"" || diag "$tmp/err"

OBM_VERBOSE=1 "$PYTHON3" -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1]); print("out")' \
    "$libobm" >"$tmp/out" 2>"$tmp/err"
[ $? -eq 0 ] && [ "$(cat "$tmp/out")" = out ] && cmp -s "$tmp/err" "$tmp/line"
ok $? "libobm loaded with OBM_VERBOSE=1: the same lines, once" || diag "$tmp/err"
exit 0
