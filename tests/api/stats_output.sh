#!/bin/sh
# The reports as files (`stats_obm --dump DIR`: report.json, struct.json,
# map.svg, all of one quiet moment):
#   1  the JSON report is valid JSON (python3 -m json.tool)
#   2  it holds a header ("report": obm's version as in obm.h, the pid,
#      the program, the time) and then exactly the struct's fields, in its
#      order and with its values; struct.json is written by stats_obm from
#      its own list of the field names, not from the library's table
#   3  the SVG map is well-formed (xmllint --noout)
#   4  it has one <g class="arena"> per arena and 64 pool cells in each
#   5  its cells' classes agree with the struct: "pool used" + "pool full"
#      = pools_in_use, "pool full" = pools_full, "pool c" = pools_cached,
#      "pool u" = pools_untouched
#   6  its palette: in the legend, neighbouring size classes differ by at
#      least 100 in RGB (euclidean), and a pool 10% full by at least 40
#      from every look of a free pool
# python3 ($PYTHON3, from configure) and xmllint are optional: without them
# their checks are skipped (a failure under test.sh with CI set).
dir=$(mktemp -d "${TMPDIR:-/tmp}/obm-stats.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
echo 1..6
if ! "$top_builddir/tests/api/stats_obm" --dump "$dir"; then
    echo "Bail out! stats_obm --dump failed"
    exit 1
fi

if [ -n "$PYTHON3" ]; then
    if "$PYTHON3" -m json.tool "$dir/report.json" >/dev/null; then
        echo "ok 1 - the JSON report parses"
    else
        echo "not ok 1 - python3 -m json.tool rejects the JSON report"
    fi
    if "$PYTHON3" - "$dir/report.json" "$dir/struct.json" "$top_srcdir/include/obm.h" <<'PY'; then
import json, sys
import time
report, struct = (json.load(open(p)) for p in sys.argv[1:3])
problems = []
if list(report) != ["report"] + list(struct):
    problems.append("top-level keys %s, struct's %s" % (list(report), list(struct)))
head = report.get("report", {})
version = open(sys.argv[3]).read().split('#define OBM_VERSION_STRING "')[1].split('"')[0]
if (list(head) != ["obm_version", "pid", "program", "time_unix_ms"] or
        head["obm_version"] != version or not isinstance(head["pid"], int) or head["pid"] <= 1 or
        head["program"] != "stats_obm" or abs(head["time_unix_ms"] / 1000 - time.time()) > 600):
    problems.append("the report header %r (obm %s)" % (head, version))
for k in struct:
    if k != "classes" and report.get(k) != struct[k]:
        problems.append("%s: %r, struct %r" % (k, report.get(k), struct[k]))
rc, sc = report.get("classes", []), struct["classes"]
if len(rc) != 56 or len(sc) != 56:
    problems.append("%d classes, struct %d" % (len(rc), len(sc)))
for c, (r, s) in enumerate(zip(rc, sc)):
    if list(r) != list(s):
        problems.append("class %d keys %s, struct's %s" % (c, list(r), list(s)))
    for k in s:
        if r.get(k) != s[k]:
            problems.append("class %d %s: %r, struct %r" % (c, k, r.get(k), s[k]))
if 0 in (sum(s["mallocs"] for s in sc), sum(s["remote_frees"] for s in sc),
         struct["heaps_abandoned"], struct["pools_full"], struct["pools_cached"],
         struct["large_allocs_current"]):
    problems.append("the dump left fields at zero that it should have moved")
for p in problems:
    print("# " + p)
sys.exit(1 if problems else 0)
PY
        echo "ok 2 - the JSON report equals the struct, field by field"
    else
        echo "not ok 2 - the JSON report differs from the struct"
    fi
else
    echo "ok 1 # SKIP python3 not found"
    echo "ok 2 # SKIP python3 not found"
fi

# A number from struct.json (one line of JSON; top-level fields come first).
field() {
    sed -n "s/^{.*\"$1\": \([0-9]*\).*/\1/p" "$dir/struct.json"
}
xcount() {
    xmllint --xpath "count($1)" "$dir/map.svg" 2>/dev/null
}
if command -v xmllint >/dev/null; then
    if xmllint --noout "$dir/map.svg"; then
        echo "ok 3 - the map is well-formed XML"
    else
        echo "not ok 3 - xmllint rejects the map"
    fi
    arenas=$(field arenas_current)
    cell="//*[local-name()='rect'][contains(concat(' ', @class, ' '), ' pool ')]"
    groups=$(xcount "//*[local-name()='g'][@class='arena']")
    cells=$(xcount "$cell")
    per_row=$(xcount "//*[local-name()='g'][@class='arena'][count(*[local-name()='rect'][contains(concat(' ', @class, ' '), ' pool ')]) = 64]")
    if [ -n "$arenas" ] && [ "$arenas" -gt 0 ] && [ "$groups" = "$arenas" ] &&
        [ "$cells" = "$((64 * arenas))" ] && [ "$per_row" = "$arenas" ]; then
        echo "ok 4 - the map has $groups arena rows of 64 cells ($cells pool cells)"
    else
        echo "not ok 4 - the map has $groups arena rows ($per_row of 64 cells) and $cells pool cells for $arenas arenas"
    fi
    state() {
        xcount "$cell[contains(concat(' ', @class, ' '), ' $1 ')]"
    }
    used=$(state used) full=$(state full) cached=$(state c) untouched=$(state u)
    if [ "$((used + full))" = "$(field pools_in_use)" ] && [ "$full" = "$(field pools_full)" ] &&
        [ "$cached" = "$(field pools_cached)" ] && [ "$untouched" = "$(field pools_untouched)" ]; then
        echo "ok 5 - the map's cells agree with the pool counts ($used used, $full full, $cached cached, $untouched untouched)"
    else
        echo "# cells: $used used, $full full, $cached cached, $untouched untouched; struct: pools_in_use $(field pools_in_use), pools_full $(field pools_full), pools_cached $(field pools_cached), pools_untouched $(field pools_untouched)"
        echo "not ok 5 - the map's cells disagree with the pool counts"
    fi
else
    echo "ok 3 # SKIP xmllint not found (libxml2-utils)"
    echo "ok 4 # SKIP xmllint not found (libxml2-utils)"
    echo "ok 5 # SKIP xmllint not found (libxml2-utils)"
fi

if [ -n "$PYTHON3" ]; then
    if "$PYTHON3" - "$dir/map.svg" <<'PY'; then
import re, sys
svg = open(sys.argv[1]).read()
legend = svg[svg.index('<g class="legend">'):]
fills = re.findall(r'<rect x="[0-9]+" y="[0-9]+" width="[0-9]+" height="[0-9]+" fill="(#[0-9a-f]{6})"', legend)
rgb = lambda h: tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))
dist = lambda a, b: sum((x - y) ** 2 for x, y in zip(rgb(a), rgb(b))) ** 0.5
n = 56  # OBM_NCLASSES: 32 small and 24 medium classes
classes, ramp, free = fills[:n], fills[n:n + 30], fills[n + 30:n + 34]
problems = ["classes %d and %d: %s %s, %.0f apart" % (c, c + 1, classes[c], classes[c + 1],
                                                       dist(classes[c], classes[c + 1]))
            for c in range(n - 1) if dist(classes[c], classes[c + 1]) < 100]
for tenth in (ramp[0], ramp[10], ramp[20]):
    for f in free:
        if dist(tenth, f) < 40:
            problems.append("a pool 10%% full %s is %.0f from the free look %s" % (tenth, dist(tenth, f), f))
if len(fills) < n + 34:
    problems.append("%d legend swatches" % len(fills))
for p in problems:
    print("# " + p)
sys.exit(1 if problems else 0)
PY
        echo "ok 6 - the palette: neighbouring classes differ, a nearly empty pool is not a free one"
    else
        echo "not ok 6 - the palette"
    fi
else
    echo "ok 6 # SKIP python3 not found"
fi
