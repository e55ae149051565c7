#!/bin/sh
# The reports as files (stats_obm --dump): the JSON report parses and holds
# exactly the struct's fields and values (stats_obm writes the struct as
# JSON from its own list of names), and the SVG map is well-formed with one
# arena group per arena and one pool cell per pool.
dir=$(mktemp -d "${TMPDIR:-/tmp}/obm-stats.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
echo 1..3
if ! "$top_builddir/tests/api/stats_obm" --dump "$dir"; then
    echo "Bail out! stats_obm --dump failed"
    exit 1
fi
if [ -n "$PYTHON3" ]; then
    if "$PYTHON3" -m json.tool "$dir/report.json" >/dev/null &&
        "$PYTHON3" - "$dir/report.json" "$dir/struct.json" <<'PY'
import json, sys
report, struct = (json.load(open(p)) for p in sys.argv[1:3])
assert list(report) == list(struct), (list(report), list(struct))
assert report == struct, [k for k in report if report[k] != struct[k]]
assert len(report["classes"]) == 32
PY
    then
        echo "ok 1 - the JSON report parses and equals the struct, field by field"
    else
        echo "not ok 1 - the JSON report differs from the struct"
    fi
else
    echo "ok 1 # SKIP python3 not found"
fi
arenas=$(sed -n 's/.*"arenas_current": \([0-9]*\).*/\1/p' "$dir/struct.json")
if command -v xmllint >/dev/null; then
    xmllint --noout "$dir/map.svg" && echo "ok 2 - the map is well-formed XML" ||
        echo "not ok 2 - xmllint rejects the map"
    groups=$(xmllint --xpath "count(//*[local-name()='g'][@class='arena'])" "$dir/map.svg")
    cells=$(xmllint --xpath "count(//*[local-name()='rect'][contains(concat(' ', @class, ' '), ' pool ')])" "$dir/map.svg")
    if [ -n "$arenas" ] && [ "$arenas" -gt 0 ] && [ "$groups" = "$arenas" ] && [ "$cells" = "$((64 * arenas))" ]; then
        echo "ok 3 - the map has $groups arena rows and $cells pool cells"
    else
        echo "not ok 3 - the map has $groups arena rows and $cells pool cells for $arenas arenas"
    fi
else
    echo "ok 2 # SKIP xmllint not found"
    echo "ok 3 # SKIP xmllint not found"
fi
