#!/bin/sh
# The README's tables are the code's tables: the options (src/options.c)
# and the statistics fields (src/stats.c), each between its markers.
echo 1..2
check() { # number, what, marker, source
    want=$("$top_builddir/tests/checks/options_table" "$2") || { echo "not ok $1 - options_table $2 failed"; return; }
    got=$(sed -n "/<!-- $3:begin -->/,/<!-- $3:end -->/p" "$top_srcdir/README.md" | grep '^| `')
    if [ "$got" = "$want" ]; then
        echo "ok $1 - README $2 table matches $4"
    else
        echo "# README.md should list, between the $3 markers:"
        echo "$want" | sed 's/^/#   /'
        echo "not ok $1 - README $2 table differs from $4"
    fi
}
check 1 options options src/options.c
check 2 fields stats-fields src/stats.c
