# The README's option rows (tests/checks/options_table options) as the
# roff of man/obmalloc.7's OPTIONS section: one .TP entry per option.
#   | `NAME` | default | values | meaning |
function roff(s) {
    gsub(/\\/, "\\e", s)
    while (match(s, /`[^`]*`/))
        s = substr(s, 1, RSTART - 1) "\\fB" substr(s, RSTART + 1, RLENGTH - 2) "\\fR" substr(s, RSTART + RLENGTH)
    return s
}
/^\| `OBM_/ {
    n = split($0, f, / \| /)
    name = f[1]; sub(/^\| `/, "", name); sub(/`$/, "", name)
    meaning = f[4]; sub(/ \|$/, "", meaning)
    print ".TP"
    print ".B " name
    print "Default " roff(f[2]) "; " roff(f[3]) ". " roff(meaning) "."
}
