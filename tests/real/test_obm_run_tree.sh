#!/bin/sh
# obm-run on a tree of processes: python3 (PYTHONMALLOC=malloc) starts a
# child with subprocess, which forks and execs a grandchild. Each process
# records its pid, its obm settings and whether obm serves its malloc.
#   1-3  --json -o FILE.%p: every process ran under the drop-in with
#        obm-run's settings, and left one JSON report named by its own pid
#        that parses, adds up and counts its own mallocs
#   4    --stats (to stderr): one text report per process, naming its pid
#   5    OBM_VERBOSE=1 from the environment, --no-stats: every process
#        prints the start-up line once, and nothing else
. "${top_srcdir:-.}/tests/real/common.sh"
require_program python3 "$PYTHON3"
require_dropin
run="${top_builddir:-.}/obm-run"
[ -x "$run" ] || { echo "Bail out! obm-run not built at $run"; exit 1; }
unset OBM_VERBOSE OBM_SHOW_STATS OBM_STATS_FILE OBM_MAP

# argv: level, the directory for procs.
cat >"$tmp/tree.py" <<'PY'
import ctypes, os, subprocess, sys

level, out = int(sys.argv[1]), sys.argv[2]
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
p = libc.malloc(32)
try:
    owns = libc.obm_owns
    owns.argtypes = [ctypes.c_void_p]
    served = owns(p) != 0
except AttributeError:
    served = False
libc.free(p)
# Work of its own: tens of thousands of mallocs in every process.
d = {str(i): [i] * (i % 7) for i in range(20000)}
env = [os.environ.get(k, "-") for k in ("LD_PRELOAD", "OBM_SHOW_STATS", "OBM_STATS_FILE")]
with open(os.path.join(out, "procs"), "a") as f:
    f.write("%d|%d|%d|%s\n" % (level, os.getpid(), served, "|".join(env)))
if level == 0:
    sys.exit(subprocess.run([sys.executable, sys.argv[0], "1", out]).returncode)
if level == 1:
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, sys.argv[0], "2", out])
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
PY

echo "1..5"
PYTHONMALLOC=malloc "$run" --json -o "$tmp/r.%p.json" -- "$PYTHON3" "$tmp/tree.py" 0 "$tmp" \
    >"$tmp/out" 2>"$tmp/err"
[ $? -eq 0 ] && [ ! -s "$tmp/out" ] && [ ! -s "$tmp/err" ] && [ "$(wc -l <"$tmp/procs")" -eq 3 ]
ok $? "obm-run --json -o FILE.%p on a process, its child and its grandchild" ||
    diag "$tmp/out" "$tmp/err" "$tmp/procs"

# Each of the three: obm is its malloc, and it has obm-run's settings.
awk -F'|' -v lib="$OBM_DROPIN" -v file="$tmp/r.%p.json" '
    { levels = levels $1 }
    !($3 == 1 && index($4 " ", lib " ") == 1 && $5 == "json" && $6 == file) { bad = 1 }
    END { exit !(levels == "012" && NR == 3 && !bad) }
' "$tmp/procs"
ok $? "the child and the grandchild run under the drop-in with obm-run's settings" ||
    diag "$tmp/procs"

"$PYTHON3" - "$tmp" <<'PY'
import glob, json, os, sys

tmp = sys.argv[1]
pids = sorted(int(line.split("|")[1]) for line in open(os.path.join(tmp, "procs")))
files = sorted(glob.glob(os.path.join(tmp, "r.*.json")))
named = sorted(int(os.path.basename(f)[2:-5]) for f in files)
assert len(set(pids)) == 3 and named == pids, (pids, files)
ledger = ("bytes_in_use", "bytes_free_blocks", "bytes_empty_pools", "bytes_pool_headers",
          "bytes_quantization")
for f in files:
    s = json.load(open(f))
    assert sum(s[k] for k in ledger) == s["bytes_mapped"] == s["arenas_current"] * 262144, f
    mallocs = sum(c["mallocs"] for c in s["classes"])
    assert mallocs > 20000, (f, mallocs)
PY
ok $? "three JSON reports, one per process, named by its pid, that parse, add up and count its mallocs" ||
    diag "$tmp/procs"

rm -f "$tmp/procs"
PYTHONMALLOC=malloc "$run" -- "$PYTHON3" "$tmp/tree.py" 0 "$tmp" >"$tmp/out" 2>"$tmp/err"
rc=$?
pids=$(awk -F'|' '{print $2}' "$tmp/procs" | sort -n | tr '\n' ' ')
reported=$(sed -n 's/^obm [0-9.]* statistics, pid \([0-9]*\) (python3)$/\1/p' "$tmp/err" |
    sort -n | tr '\n' ' ')
[ $rc -eq 0 ] && [ -n "$pids" ] && [ "$pids" = "$reported" ] &&
    [ "$(grep -c 'statistics, pid' "$tmp/err")" -eq 3 ]
ok $? "obm-run --stats: one text report per process on stderr, each naming its pid" ||
    diag "$tmp/procs" "$tmp/err"

rm -f "$tmp/procs"
version=$(sed -n 's/^#define OBM_VERSION_STRING "\(.*\)"$/\1/p' "${top_srcdir:-.}/include/obm.h")
debug=
grep -q '^#define OBM_DEBUG 1$' "${top_builddir:-.}/config.h" && debug=", debug build"
line="obm: version $version, classes 32 x 16..512 B in pools of 4096 B, 24 x 640..32768 B in pools of 16..256 KiB, arena 256 KiB$debug"
OBM_VERBOSE=1 PYTHONMALLOC=malloc "$run" --no-stats -- "$PYTHON3" "$tmp/tree.py" 0 "$tmp" \
    >"$tmp/out" 2>"$tmp/err"
[ $? -eq 0 ] && [ -n "$version" ] && [ "$(grep -cv '^obm: option ' "$tmp/err")" -eq 3 ] &&
    [ "$(grep -cxF "$line" "$tmp/err")" -eq 3 ] && [ "$(wc -l <"$tmp/procs")" -eq 3 ] &&
    [ "$(grep -cx 'obm: option OBM_VERBOSE=1 (environment)' "$tmp/err")" -eq 3 ]
ok $? "OBM_VERBOSE=1 through obm-run: each of the three processes prints \"$line\"" ||
    diag "$tmp/err" "$tmp/procs"
exit 0
