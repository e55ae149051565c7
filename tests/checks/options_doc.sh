#!/bin/sh
# The README's option table is the code's option table.
echo 1..1
want=$("$top_builddir/tests/checks/options_table") || { echo "not ok 1 - options_table failed"; exit 0; }
got=$(sed -n '/<!-- options:begin -->/,/<!-- options:end -->/p' "$top_srcdir/README.md" | grep '^| `')
if [ "$got" = "$want" ]; then
    echo "ok 1 - README option table matches src/options.c"
else
    echo "# README.md should list, between the options markers:"
    echo "$want" | sed 's/^/#   /'
    echo "not ok 1 - README option table differs from src/options.c"
fi
