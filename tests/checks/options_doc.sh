#!/bin/sh
# The documentation's tables are the code's tables: the options
# (src/options.c) in README.md and the statistics fields (src/stats.c) in
# docs/statistics.md, each between its markers.
echo 1..3
check() { # number, what, marker, source, document
    want=$("$top_builddir/tests/checks/options_table" "$2") || { echo "not ok $1 - options_table $2 failed"; return; }
    got=$(sed -n "/<!-- $3:begin -->/,/<!-- $3:end -->/p" "$top_srcdir/$5" | grep '^| `')
    if [ "$got" = "$want" ]; then
        echo "ok $1 - $5 $2 table matches $4"
    else
        echo "# $5 should list, between the $3 markers:"
        echo "$want" | sed 's/^/#   /'
        echo "not ok $1 - $5 $2 table differs from $4"
    fi
}
check 1 options options src/options.c README.md
check 2 fields stats-fields src/stats.c docs/statistics.md
# The text report's labels: every `# label` line that src/stats_print.c
# prints with out_line, and the field it prints, as docs/statistics.md's
# table of labels and field names lists them, in the same order.
want=$(sed -n 's/.*out_line(o, "\(# [^"]*\)", s->\([a-z_]*\)).*/| `\1` | `\2` |/p' "$top_srcdir/src/stats_print.c")
got=$(grep '^| `# ' "$top_srcdir/docs/statistics.md")
if [ -n "$want" ] && [ "$got" = "$want" ]; then
    echo "ok 3 - docs/statistics.md labels table matches src/stats_print.c"
else
    echo "# docs/statistics.md should list, in its table of text report labels:"
    echo "$want" | sed 's/^/#   /'
    echo "not ok 3 - docs/statistics.md labels table differs from src/stats_print.c"
fi
