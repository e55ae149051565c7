#!/usr/bin/env python3
"""obm's benchmark runner: the same programs under every allocator, side by side.

Each benchmark binary is run once per allocator with LD_PRELOAD (glibc: no
preload), allocators interleaved (A B C D E F, A B C D E F, ...) for several
repetitions, so slow drifts of a shared machine hit every allocator alike.
Medians are reported with their min-max spread, as ratios to glibc and to
the best peer. Output, in --out:

obm runs twice in a full run: as built ("obm") and with purging turned off
("obm-nopurge", OBM_PURGE_DELAY_MS=-1), so the table shows what giving
memory back costs in time and saves in memory.

  raw.json      every sample, plus the machine and allocator versions
  results.csv   item, metric, allocator, median, min, max, samples
  table.md      the Markdown table docs/benchmarks.md quotes, and obm's slow paths
                per 1,000 operations of each speed benchmark (a second table)
  *.png         bar charts and the churn run's RSS over time (gnuplot)

Usage: run.py --build BUILD_DIR --out DIR [--quick] [--reps N] [--only GROUPS]
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

LIBDIR = "/usr/lib/x86_64-linux-gnu"
PEERS = [  # name, preload path (None: glibc itself), Debian package
    ("glibc", None, "libc6"),
    ("jemalloc", LIBDIR + "/libjemalloc.so.2", "libjemalloc2"),
    ("mimalloc", LIBDIR + "/libmimalloc.so.2", "libmimalloc2.0"),
    ("tcmalloc", LIBDIR + "/libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
    ("tbbmalloc", LIBDIR + "/libtbbmalloc_proxy.so.2", "libtbbmalloc2"),
]

# Who a program must find serving malloc under each allocator (obm's
# variants: obm): the "allocator" code of bench/mem's JSON (memutil.h,
# mem_detect_allocator) and the start of obm-speed's "allocator" context
# (speed.cc, allocator_name). A preload that did not take fails the run.
SERVED_BY = {"glibc": (0, "glibc "), "jemalloc": (2, "jemalloc "), "mimalloc": (3, "mimalloc "),
             "tcmalloc": (4, "gperftools "), "tbbmalloc": (5, "tbbmalloc"), "obm": (1, "obm")}

# obm with an option changed, run beside obm in full runs: name -> environment.
VARIANTS = {"obm-nopurge": {"OBM_PURGE_DELAY_MS": "-1"}}

# obm's slow paths, counted by bench/speed.cc (SlowPaths) under obm as
# counters obm_<kind>: kind -> column of the slow-path table.
SLOW_KINDS = [("slow_mallocs", "slow mallocs"), ("slow_frees", "slow frees"),
              ("carves", "carves"), ("remote_collects", "remote lists taken in"),
              ("pools_used_to_full", "pools used -> full"),
              ("pools_full_to_used", "pools full -> used"), ("pools_emptied", "pools emptied"),
              ("pools_from_arenas", "pools from arenas"), ("pools_to_arenas", "pools to arenas"),
              ("arenas_mapped", "arenas mapped"), ("arenas_unmapped", "arenas unmapped")]

# The script shapes of bench/runtimes/shapes.py, run in the CPython host.
PYTHON_SHAPES = ["classes", "cycles", "text", "tuples"]

# glibc's simple-bench shape in bench/speed.cc: (order, size, batch length).
SIMPLE = [(o, s, n) for o in ("fifo", "lifo") for s in (16, 32, 64) for n in (25, 100, 400, 1600)]

# Speed benchmarks (bench/speed.cc) shown in the table: name -> label.
SPEED_FULL = [
    ("BM_pair_live/16", "malloc/free pair, 16 B, 10k live"),
    ("BM_pair_live/64", "malloc/free pair, 64 B, 10k live"),
    ("BM_pair_live/256", "malloc/free pair, 256 B, 10k live"),
    ("BM_pair_live/512", "malloc/free pair, 512 B, 10k live"),
    ("BM_pair_alone/16", "malloc/free pair, 16 B, nothing live"),
    ("BM_pair_alone/64", "malloc/free pair, 64 B, nothing live"),
    ("BM_pair_alone/256", "malloc/free pair, 256 B, nothing live"),
    ("BM_pair_alone/512", "malloc/free pair, 512 B, nothing live"),
    ("BM_batch_random/10000", "10k random 8..512, freed at random (per op)"),
    ("BM_batch_random/1000000", "1M random 8..512, freed at random (per op)"),
    ("BM_realloc_chain", "realloc chain 16 B -> 4 KiB (per realloc)"),
    ("BM_calloc/64", "calloc/free pair, 64 B"),
    ("BM_calloc/512", "calloc/free pair, 512 B"),
    ("BM_calloc/4096", "calloc/free pair, 4 KiB"),
    ("BM_mixed_large_tail", "pairs 8..4096, 10% above 512 B"),
    ("BM_bignum", "bignum-like: 4096 numbers of 16..64 B, temporaries (per call)"),
] + [
    (f"BM_simple_{o}/{s}/{n}",
     f"glibc simple-bench: batches of {n} x {s} B, freed {o.upper()} (per malloc+free)")
    for o, s, n in SIMPLE
] + [
    ("BM_churn_private/real_time/threads:1", "private churn, 1 thread (per pair)"),
    ("BM_churn_private/real_time/threads:2", "private churn, 2 threads (per pair, total)"),
    ("BM_churn_private/real_time/threads:4", "private churn, 4 threads (per pair, total)"),
    ("BM_churn_linear/real_time/threads:1", "churn 8..16000 B, linear drop-off, 1 thread (per pair)"),
    ("BM_churn_linear/real_time/threads:2",
     "churn 8..16000 B, linear drop-off, 2 threads (per pair, total)"),
    ("BM_churn_invsq/real_time/threads:1", "churn 4..32768 B, 1/size^2, 1 thread (per pair)"),
    ("BM_churn_invsq/real_time/threads:2",
     "churn 4..32768 B, 1/size^2, 2 threads (per pair, total)"),
    ("BM_producer_consumer/iterations:5/manual_time",
     "producer -> consumer, every free remote (per object)"),
    ("BM_handoff/2/iterations:5/manual_time",
     "8..1000 B handed between 2 threads in a ring (per object)"),
    ("BM_handoff/4/iterations:5/manual_time",
     "8..1000 B handed between 4 threads in a ring (per object)"),
    ("BM_mpmc/iterations:5/manual_time",
     "2 producers -> one queue -> 2 consumers, 8..512 B (per object)"),
]
# Rows timed over threads that hand objects over: also shown in objects/s.
SPEED_TRANSFER = ("BM_producer_consumer", "BM_handoff", "BM_mpmc")
# The shapes with sizes above 512 B: their peak RSS too, each run in a
# process of its own (what an allocator kept from the benchmarks before it
# does not count), in full runs.
SPEED_PEAK_RSS = ("BM_churn_linear/real_time/threads:1", "BM_churn_invsq/real_time/threads:1",
                  "BM_handoff/2/iterations:5/manual_time")
SPEED_QUICK = [
    "BM_pair_live/64",
    "BM_pair_alone/64",
    "BM_batch_random/10000",
    "BM_bignum",
    "BM_simple_fifo/32/400",
    "BM_simple_lifo/32/400",
    "BM_churn_private/real_time/threads:1",
    "BM_churn_private/real_time/threads:2",
    "BM_churn_invsq/real_time/threads:1",
    "BM_handoff/2/iterations:5/manual_time",
    "BM_mpmc/iterations:5/manual_time",
]
PAIR_CONFIGS_FULL = [(s, m) for m in ("live", "alone") for s in (16, 64, 256, 512)]
PAIR_CONFIGS_QUICK = [(64, "live"), (64, "alone")]

# Memory workloads (bench/mem/*.c): program -> [(json key, label, unit, scale)].
MEM_METRICS = {
    "random90": [
        ("rss_per_live", "random sizes 8..512, 90% freed at random: RSS / live bytes", "x", 1),
        ("rss_per_live_woken", "same, after 1 s idle and a little activity: RSS / live bytes",
         "x", 1),
        ("rss_all_freed_kib", "same, everything freed: RSS kept", "MiB", 1 / 1024),
        # jemalloc and mimalloc (as packaged) purge on a time decay when
        # called, not while the program sleeps: 1 s idle, then 10k
        # malloc/free calls, shows it.
        ("rss_all_freed_woken_kib", "same, then 1 s idle and a little activity", "MiB", 1 / 1024),
    ],
    "pinning": [
        ("rss_pinned_kib", "1% scattered survivors: RSS", "MiB", 1 / 1024),
        ("rss_per_live", "1% scattered survivors: RSS / live bytes", "x", 1),
        ("rss_pinned_woken_kib", "1% scattered survivors, after 1 s idle and a little activity: "
         "RSS", "MiB", 1 / 1024),
        ("rss_all_freed_woken_kib", "pinning, all freed, idle and a little activity: RSS",
         "MiB", 1 / 1024),
    ],
    "phased": [
        ("rss_peak_kib", "phased size mixes: peak RSS", "MiB", 1 / 1024),
    ],
    "churn": [
        ("ops_per_sec", "server-like churn: throughput", "Mops/s", 1e-6),
        ("rss_max_kib", "server-like churn: max RSS", "MiB", 1 / 1024),
        ("rss_growth_kib", "server-like churn: RSS drift after warm-up", "MiB", 1 / 1024),
    ],
    "skewed": [
        ("ns_per_pair", "skewed sizes (75% <= 16 B, tail to 512 B), steady live set: "
         "random free+malloc", "ns/op", 1),
        ("rss_steady_kib", "skewed sizes, steady live set: RSS", "MiB", 1 / 1024),
        ("rss_per_live_net", "skewed sizes, steady live set: RSS / live bytes, harness taken off",
         "x", 1),
    ],
}
COLORS = {"obm-linked": "#7a0f0f", "glibc": "#8c8c8c", "jemalloc": "#2a9d8f", "mimalloc": "#457b9d",
          "tcmalloc": "#e9c46a", "tbbmalloc": "#8d6e63", "obm": "#d62828", "obm-nopurge": "#f4a3a3",
          "pymalloc": "#6a4c93"}
HIGHER_IS_BETTER = {"items/s", "Mops/s", "M objects/s", "x scaling"}


def log(msg):
    if PROGRESS.tty and PROGRESS.pending:
        sys.stderr.write("\n")
        PROGRESS.pending = False
    print(msg, file=sys.stderr, flush=True)


class Progress:
    """Step k of n, the time so far and an estimate of what is left: one
    line that updates in a terminal, plain lines in a log."""

    def __init__(self):
        self.total, self.done, self.t0 = 0, 0, time.time()
        self.tty = sys.stderr.isatty()
        self.pending = False

    def step(self, msg):
        self.done += 1
        spent = time.time() - self.t0
        left = spent / self.done * max(self.total - self.done, 0)
        line = (f"[{self.done}/{self.total}, {clock(spent)} so far, about {clock(left)} left] "
                + msg.strip())
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
            sys.stderr.flush()
            self.pending = True
        else:
            print(line, file=sys.stderr, flush=True)


def clock(seconds):
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m}m{s:02d}s"


PROGRESS = Progress()


def run(cmd, env=None, timeout=1800, stdout=subprocess.PIPE):
    full_env = dict(os.environ)
    full_env.pop("LD_PRELOAD", None)
    full_env.update(env or {})
    proc = subprocess.run(cmd, env=full_env, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=timeout)
    if proc.returncode != 0:  # a workload that found its blocks wrong says so on stderr
        preload = full_env.get("LD_PRELOAD", "")
        sys.exit(f"run.py: {' '.join(cmd)} (LD_PRELOAD={preload}): exit status {proc.returncode}\n"
                 + proc.stderr.strip())
    check_preloaded(cmd, proc.stderr)
    return proc


def check_preloaded(cmd, stderr):
    """ld.so goes on without a preload it cannot load, saying so on stderr."""
    if "from LD_PRELOAD cannot be preloaded" in stderr:
        sys.exit(f"run.py: {cmd[0]}: {stderr.strip().splitlines()[0]}")


def served_by(name):
    return SERVED_BY["obm" if name in VARIANTS else name]


def check_served(prog, name, seen):
    """seen: the allocator code (bench/mem) or name (obm-speed) a program reported."""
    code, prefix = served_by(name)
    if seen != code and not (isinstance(seen, str) and seen.startswith(prefix)):
        sys.exit(f"run.py: {prog} under {name} was served by {seen!r}, not {name}: "
                 "did the preload take?")


def preload_env(path, name=None):
    return {**({"LD_PRELOAD": path} if path else {}), **VARIANTS.get(name, {})}


class Samples:
    """(item, metric, allocator) -> list of values, plus labels and units."""

    def __init__(self):
        self.values = {}
        self.meta = {}  # (item, metric) -> (label, unit)

    def add(self, item, metric, label, unit, alloc, value):
        self.meta[(item, metric)] = (label, unit)
        self.values.setdefault((item, metric, alloc), []).append(value)

    def keys(self):
        return list(self.meta.keys())

    def get(self, item, metric, alloc):
        return self.values.get((item, metric, alloc), [])


# ---- the groups ----

def run_speed(build, allocs, quick, rep, samples):
    binary = os.path.join(build, "bench", "obm-speed")
    if not os.path.exists(binary):
        log("speed: skipped: bench/obm-speed was not built "
            "(google-benchmark not found: apt-get install libbenchmark-dev, then re-run configure)")
        return
    names = SPEED_QUICK if quick else [n for n, _ in SPEED_FULL]
    labels = dict(SPEED_FULL)
    pattern = "^(" + "|".join(re.escape(n) for n in names) + ")$"
    for name, path in allocs:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            run([binary, "--benchmark_filter=" + pattern, "--benchmark_format=json",
                 "--benchmark_min_time=" + ("0.05" if quick else "0.2"),
                 "--benchmark_out=" + out.name, "--benchmark_out_format=json"],
                env=preload_env(path, name), stdout=subprocess.DEVNULL)
            data = json.load(open(out.name))
        check_served("obm-speed", name, data["context"].get("allocator"))
        for b in data["benchmarks"]:
            if b.get("error_occurred"):  # a workload that found its results wrong
                sys.exit(f"run.py: obm-speed {b['name']} under {name}: {b.get('error_message')}")
            if b.get("run_type") == "aggregate" or "items_per_second" not in b:
                continue
            ips = b["items_per_second"]
            label = labels.get(b["name"], b["name"])
            if b["name"].startswith(SPEED_TRANSFER):
                samples.add("speed", b["name"], label, "M objects/s", name, ips / 1e6)
            samples.add("speed", b["name"] + ":ns", label, "ns/op", name, 1e9 / ips)
            if name == "obm":
                for kind, _ in SLOW_KINDS:
                    if "obm_" + kind in b:
                        samples.add("slowpaths", b["name"] + ":" + kind, label,
                                    "per 1,000 ops", name, b["obm_" + kind])
        if not quick:
            for bench in SPEED_PEAK_RSS:
                _, kib, _ = timed([binary, "--benchmark_filter=^" + re.escape(bench) + "$",
                                   "--benchmark_min_time=0.2"], preload_env(path, name))
                samples.add("speed", bench + ":peak_rss", labels[bench] + ": peak RSS, alone",
                            "MiB", name, kib / 1024)
        PROGRESS.step(f"  speed under {name}: {len(data['benchmarks'])} benchmarks")


def derive_scaling(samples, allocs):
    """2 threads / 1 thread throughput of the private churn benchmark."""
    one = "BM_churn_private/real_time/threads:1:ns"
    two = "BM_churn_private/real_time/threads:2:ns"
    for name, _ in allocs:
        a, b = samples.get("speed", one, name), samples.get("speed", two, name)
        for x, y in zip(a, b):
            samples.add("speed", "scaling_2_1", "private churn: 2 threads / 1 thread throughput",
                        "x scaling", name, x / y)


def run_instructions(build, allocs, quick, samples):
    binary = os.path.join(build, "bench", "obm-pairs")
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callgrind-pairs.sh")
    if not os.path.exists(binary) or not shutil.which("valgrind"):
        log("instructions: skipped (bench/obm-pairs or valgrind missing)")
        return
    for size, mode in (PAIR_CONFIGS_QUICK if quick else PAIR_CONFIGS_FULL):
        for name, path in allocs:
            if name in VARIANTS:
                continue  # same instructions: a pair loop never reaches a slow path
            out = run(["bash", script, binary, path or "", str(size), mode]).stdout.split()
            samples.add("instructions", f"pair_{mode}/{size}",
                        f"instructions per malloc/free pair, {size} B, "
                        + ("10k live" if mode == "live" else "nothing live"),
                        "instructions", name, float(out[-1]))
        PROGRESS.step(f"  instructions {size} B {mode}: done")


def run_mem(build, allocs, quick, rep, samples, series_dir):
    for prog, metrics in MEM_METRICS.items():
        binary = os.path.join(build, "bench", "obm-mem-" + prog)
        if not os.path.exists(binary):
            log(f"mem {prog}: skipped (not built)")
            PROGRESS.step(f"mem {prog}: skipped")
            continue
        for name, path in allocs:
            cmd = [binary] + (["--quick"] if quick else [])
            if prog == "churn":
                cmd += ["--series", os.path.join(series_dir, f"churn-{name}.csv")]
            data = json.loads(run(cmd, env=preload_env(path, name)).stdout.strip().splitlines()[-1])
            check_served("obm-mem-" + prog, name, data["allocator"])
            for key, label, unit, scale in metrics:
                samples.add("mem/" + prog, key, label, unit, name, data[key] * scale)
        PROGRESS.step(f"  mem {prog}: done")


def timed(cmd, env, stdin=None):
    """Wall seconds, peak RSS in KiB, and stdout of one run under GNU time."""
    with tempfile.NamedTemporaryFile("r") as t:
        proc = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", t.name] + cmd,
                              env={**{k: v for k, v in os.environ.items() if k != "LD_PRELOAD"},
                                   **env},
                              stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, check=True, timeout=1800)
        check_preloaded(cmd, proc.stderr)
        secs, kib = t.read().split()[-2:]
    return float(secs), int(kib), proc.stdout


def run_real(srcdir, allocs, quick, rep, samples, outputs):
    python = "/usr/bin/python3"
    script = os.path.join(srcdir, "tests", "real", "alloc_heavy.py")
    if os.path.exists(python) and os.path.exists(script):
        rows = [(n, {"PYTHONMALLOC": "malloc", **preload_env(p, n)}) for n, p in allocs]
        rows.append(("pymalloc", {}))  # CPython's own obmalloc, the reference
        for name, env in rows:
            env = {"PYTHONHASHSEED": "0", **env}
            secs, kib, out = timed([python, "-s", script], env)
            samples.add("real", "python_s", "python3 allocation-heavy script, PYTHONMALLOC=malloc",
                        "s", name, secs)
            samples.add("real", "python_rss", "python3 script: peak RSS", "MiB", name, kib / 1024)
            outputs.setdefault("python", {})[name] = out
        PROGRESS.step("  python3: done")
    sqlite = shutil.which("sqlite3")
    awk = os.path.join(srcdir, "tests", "real", "sqlite_workload.awk")
    if sqlite and os.path.exists(awk) and not quick:
        with tempfile.TemporaryDirectory() as d:
            sql = os.path.join(d, "work.sql")
            with open(sql, "w") as f:
                subprocess.run(["awk", "-f", awk], stdout=f, check=True)
            for name, path in allocs:
                db = os.path.join(d, f"{name}.db")
                with open(sql) as f:
                    secs, kib, out = timed([sqlite, db], preload_env(path, name), stdin=f)
                os.unlink(db)
                samples.add("real", "sqlite_s", "sqlite3 workload (100k rows, indexes, VACUUM)",
                            "s", name, secs)
                samples.add("real", "sqlite_rss", "sqlite3 workload: peak RSS", "MiB", name,
                            kib / 1024)
                outputs.setdefault("sqlite", {})[name] = out
        PROGRESS.step("  sqlite3: done")


def run_runtimes(build, srcdir, allocs, quick, rep, samples, outputs, out_dir):
    """The runtimes of bench/runtimes: CPython embedded (bench/obm-python)
    with pymalloc, with PYTHONMALLOC=malloc under every allocator, and with
    obm as its object allocator ("obm-linked"), on workload.py and the four
    shapes of shapes.py; Lua 5.4 (bench/obm-lua)
    with its default allocator under every allocator, and with obm as its
    lua_Alloc. obm-linked runs write obm's report at exit into out_dir."""
    scale = "0.3" if quick else "1"
    wdir = os.path.join(srcdir, "bench", "runtimes")
    host = os.path.join(build, "bench", "obm-python")
    if os.path.exists(host):
        rows = [(n, {"PYTHONMALLOC": "malloc", "OBM_PYTHON_ALLOCATOR": "python",
                     **preload_env(p, n)}) for n, p in allocs if n not in VARIANTS]
        rows += [("pymalloc", {"OBM_PYTHON_ALLOCATOR": "python"}),
                 ("obm-linked", {"OBM_PYTHON_ALLOCATOR": "obm"})]
        for name, env in rows:
            env = {"PYTHONHASHSEED": "0", **env}
            if name == "obm-linked" and rep == 0:
                env.update(OBM_SHOW_STATS="1",
                           OBM_STATS_FILE=os.path.join(out_dir, "runtime-python-obm-stats.txt"))
            secs, kib, out = timed([host, "-s", os.path.join(wdir, "workload.py"), scale], env)
            samples.add("runtimes", "python_s", "CPython embedded (libpython), workload.py", "s",
                        name, secs)
            samples.add("runtimes", "python_rss", "CPython embedded: peak RSS", "MiB", name,
                        kib / 1024)
            outputs.setdefault("runtime-python", {})[name] = out
            for shape in PYTHON_SHAPES:
                env.pop("OBM_SHOW_STATS", None)
                env.pop("OBM_STATS_FILE", None)
                secs, _, out = timed([host, "-s", os.path.join(wdir, "shapes.py"), scale, shape],
                                     env)
                samples.add("runtimes", "python_" + shape + "_s",
                            f"CPython embedded (libpython), shapes.py {shape}", "s", name, secs)
                outputs.setdefault("runtime-python-" + shape, {})[name] = out
        PROGRESS.step("  CPython host: done")
    else:
        log("runtimes: CPython host not built (apt-get install python3-dev, then re-run configure)")
    host = os.path.join(build, "bench", "obm-lua")
    if os.path.exists(host):
        script = os.path.join(wdir, "workload.lua")
        rows = [(n, ["--default-alloc"], preload_env(p, n)) for n, p in allocs
                if n not in VARIANTS]
        rows.append(("obm-linked", [], {}))
        for name, flags, env in rows:
            if name == "obm-linked" and rep == 0:
                env = dict(OBM_SHOW_STATS="1",
                           OBM_STATS_FILE=os.path.join(out_dir, "runtime-lua-obm-stats.txt"))
            secs, kib, out = timed([host] + flags + [script, scale], env)
            samples.add("runtimes", "lua_s", "Lua 5.4, workload.lua (default: realloc-based)",
                        "s", name, secs)
            samples.add("runtimes", "lua_rss", "Lua 5.4: peak RSS", "MiB", name, kib / 1024)
            outputs.setdefault("runtime-lua", {})[name] = out
        PROGRESS.step("  Lua host: done")
    else:
        log("runtimes: Lua host not built (apt-get install liblua5.4-dev, then re-run configure)")


# ---- reporting ----

def summarise(samples, allocs):
    rows = []
    for item, metric in samples.keys():
        label, unit = samples.meta[(item, metric)]
        for name in allocs:
            v = samples.get(item, metric, name)
            if v:
                med = statistics.median(v)
                rows.append({"item": item, "metric": metric, "label": label, "unit": unit,
                             "allocator": name, "median": med, "min": min(v), "max": max(v),
                             "n": len(v),
                             "spread_pct": 100 * (max(v) - min(v)) / med if med else 0.0})
    return rows


def fmt(x):
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def write_table(rows, names, path, machine, quick):
    by = {}
    for r in rows:
        if r["item"] != "slowpaths":
            by.setdefault((r["item"], r["metric"]), {})[r["allocator"]] = r
    peers = [n for n in names if n not in ("obm", "pymalloc", "obm-linked") and n not in VARIANTS]
    lines = [f"Medians of {machine['reps']} interleaved runs{' (quick subset)' if quick else ''}, "
             f"{machine['date']}, {machine['cpu']} ({machine['cores']} cores), "
             f"{machine['os']}. Lower is better unless the unit says otherwise "
             "(M objects/s, Mops/s, x scaling: higher is better).", ""]
    variants = [n for n in names if n in VARIANTS]
    linked = "obm-linked" in names  # runtimes: obm linked in, against the runtime's own
    header = ("| benchmark | unit | " + " | ".join(names) + " | obm / glibc | obm / best peer |"
              + "".join(f" obm / {v} |" for v in variants)
              + (" obm-linked / runtime's own |" if linked else ""))
    lines += [header, "|" + "---|" * (len(names) + 4 + len(variants) + linked)]
    for (item, metric), per in by.items():
        any_row = next(iter(per.values()))
        unit = any_row["unit"]
        cells = [fmt(per[n]["median"]) if n in per else "" for n in names]
        higher = unit in HIGHER_IS_BETTER
        ratio_glibc = ratio_best = ""
        if "obm" in per and "glibc" in per and per["glibc"]["median"]:
            ratio_glibc = f"{per['obm']['median'] / per['glibc']['median']:.2f}"
        peer_vals = [per[n]["median"] for n in peers if n in per]
        if "obm" in per and peer_vals:
            best = max(peer_vals) if higher else min(peer_vals)
            if best:
                ratio_best = f"{per['obm']['median'] / best:.2f}"
        ratio_variants = ""
        for v in variants:
            ok = "obm" in per and v in per and per[v]["median"]
            ratio_variants += f" {per['obm']['median'] / per[v]['median']:.2f} |" if ok else "  |"
        ratio_linked = ""
        if linked:
            own = per.get("pymalloc") or per.get("glibc")  # CPython's pymalloc; Lua's default
            ok = "obm-linked" in per and own and own["median"]
            ratio_linked = f" {per['obm-linked']['median'] / own['median']:.2f} |" if ok else "  |"
        lines.append(f"| {any_row['label']} | {unit} | " + " | ".join(cells)
                     + f" | {ratio_glibc} | {ratio_best} |" + ratio_variants + ratio_linked)
    lines += slow_path_table(rows)
    noisy = sorted((r for r in rows if r["n"] > 1 and r["item"] != "slowpaths"),
                   key=lambda r: -r["spread_pct"])[:5]
    if noisy:
        lines += ["", "Noisiest (min-max spread over the runs, % of the median): "
                  + "; ".join(f"{r['label']} under {r['allocator']}: {r['spread_pct']:.0f}%"
                              for r in noisy) + "."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def slow_path_table(rows):
    """obm's slow paths per 1,000 operations: one row per speed benchmark."""
    bench = {}
    for r in rows:
        if r["item"] == "slowpaths" and r["allocator"] == "obm":
            name, kind = r["metric"].rsplit(":", 1)
            bench.setdefault(name, {"label": r["label"]})[kind] = r["median"]
    if not bench:
        return []
    lines = ["", "obm's slow paths per 1,000 operations of each speed benchmark (medians; the "
             "counts of `obm_stats_get` before and after, set-up included; threaded rows "
             "of google-benchmark's own threads are not counted):", "",
             "| benchmark | " + " | ".join(col for _, col in SLOW_KINDS) + " |",
             "|" + "---|" * (len(SLOW_KINDS) + 1)]
    for counts in bench.values():
        lines.append(f"| {counts['label']} | "
                     + " | ".join(f"{counts[k]:.3g}" if k in counts else "" for k, _ in SLOW_KINDS)
                     + " |")
    return lines


CSV_FIELDS = ["item", "metric", "allocator", "median", "min", "max", "n", "spread_pct", "unit",
              "label"]


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, **{k: f"{r[k]:.6g}" for k in ("median", "min", "max")},
                        "spread_pct": f"{r['spread_pct']:.1f}"})


def read_csv(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for k in ("median", "min", "max", "spread_pct"):
                r[k] = float(r[k])
            r["n"] = int(r["n"])
            rows.append(r)
    return rows


def plot_bars(rows, names, metrics, title, ylabel, path, log_y=False):
    """A clustered bar chart: one cluster per metric, one bar per allocator."""
    by = {(r["item"], r["metric"], r["allocator"]): r["median"] for r in rows}
    present = [m for m in metrics if any((m[0], m[1], n) in by for n in names)]
    if not present or not shutil.which("gnuplot"):
        return
    dat = path + ".dat"
    with open(dat, "w") as f:
        for item, metric, short in present:
            f.write(f'"{short}" ' + " ".join(f"{by.get((item, metric, n), 0):.6g}"
                                             for n in names) + "\n")
    cols = " , ".join(f"'{dat}' using {i + 2}:xtic(1) title '{n}' linecolor rgb '{COLORS.get(n, 'black')}'"
                      for i, n in enumerate(names))
    script = f"""
set terminal pngcairo noenhanced size 1100,520 font 'DejaVu Sans,10'
set output '{path}'
set title '{title}'
set ylabel '{ylabel}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside top center horizontal
set grid ytics
set xtics rotate by -20
set xrange [-0.6:{len(present) - 0.4}]
{"set logscale y" if log_y else "set yrange [0:*]"}
plot {cols}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.unlink(dat)


def plot_churn(series_dir, names, path):
    files = [(n, os.path.join(series_dir, f"churn-{n}.csv")) for n in names]
    files = [(n, f) for n, f in files if os.path.exists(f)]
    if not files or not shutil.which("gnuplot"):
        return
    lines = " , ".join(f"'{f}' every ::1 using 2:($3/1024) with lines lw 2 "
                       f"linecolor rgb '{COLORS.get(n, 'black')}' title '{n}'" for n, f in files)
    script = f"""
set terminal pngcairo noenhanced size 1100,480 font 'DejaVu Sans,10'
set output '{path}'
set datafile separator ','
set title 'Server-like churn: RSS over time (steady live set, periodic bursts)'
set xlabel 'seconds'
set ylabel 'RSS (MiB)'
set grid
set key bottom right
plot {lines}
"""
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def make_plots(rows, alloc_names, out):
    plot_bars(rows, alloc_names,
              [("speed", n + ":ns", n.replace("BM_", "").replace("/real_time", ""))
               for n, _ in SPEED_FULL if "threads" not in n and "manual_time" not in n
               and "simple" not in n],
              "Speed: ns per operation (lower is better; log scale)", "ns/op",
              os.path.join(out, "speed.png"), log_y=True)
    plot_bars(rows, alloc_names,
              [("speed", n + ":ns", n.replace("BM_", "").replace("/real_time", "")
                .replace("/iterations:5/manual_time", "").replace("threads:", "t"))
               for n, _ in SPEED_FULL if "threads" in n or "manual_time" in n],
              "Threads: ns per pair or object, all threads together (lower is better; log scale)",
              "ns/op", os.path.join(out, "threads.png"), log_y=True)
    plot_bars(rows, alloc_names,
              [("speed", f"BM_simple_{o}/{s}/{n}:ns", f"{o.upper()} {s} B x {n}")
               for o, s, n in SIMPLE],
              "glibc simple-bench shape: ns per malloc+free (order, size, batch; lower is better)",
              "ns/op", os.path.join(out, "simple.png"))
    plot_bars(rows, alloc_names,
              [("instructions", f"pair_{m}/{s}", f"{s} B {m}") for s, m in PAIR_CONFIGS_FULL],
              "Instructions per malloc/free pair (callgrind; lower is better)", "instructions",
              os.path.join(out, "instructions.png"))
    plot_bars(rows, alloc_names,
              [("mem/random90", "rss_after_free_woken_kib", "random90: 10% live, idle, woken"),
               ("mem/random90", "rss_all_freed_kib", "random90: all freed"),
               ("mem/random90", "rss_all_freed_woken_kib", "random90: freed, idle, woken"),
               ("mem/pinning", "rss_pinned_kib", "pinning: 1% survivors"),
               ("mem/pinning", "rss_pinned_woken_kib", "pinning: idle, woken"),
               ("mem/phased", "rss_peak_kib", "phased: peak"),
               ("mem/churn", "rss_max_kib", "churn: max"),
               ("mem/skewed", "rss_steady_kib", "skewed: steady")],
              "Memory: RSS in MiB (lower is better)", "MiB", os.path.join(out, "memory.png"))
    plot_churn(out, alloc_names, os.path.join(out, "churn.png"))


def machine_description(reps, allocs, build):
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    versions = {}
    for name, _, pkg in PEERS:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True,
                           text=True)
        versions[name] = r.stdout.strip() or "not installed"
    commit = subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse",
                             "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    versions["obm"] = commit or "unknown"
    os_name = platform.platform()
    if os.path.exists("/etc/debian_version"):
        os_name = "Debian " + open("/etc/debian_version").read().strip()
    return {"date": datetime.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(),
            "memory_gib": round(mem_kib / 1024 / 1024, 1), "os": os_name,
            "kernel": platform.release(), "reps": reps, "versions": versions,
            "allocators": [n for n, _ in allocs]}


def plan_steps(groups, allocs, reps, quick):
    """How many PROGRESS steps the run makes (a group that finds its
    program missing makes fewer)."""
    n = len(PAIR_CONFIGS_QUICK if quick else PAIR_CONFIGS_FULL) if "instructions" in groups else 0
    for rep in range(reps):
        n += len(allocs) if "speed" in groups else 0
        n += len(MEM_METRICS) if "mem" in groups else 0
        if not quick or rep == 0:
            n += (1 if quick else 2) if "real" in groups else 0
            n += 2 if "runtimes" in groups else 0
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="obm build directory")
    ap.add_argument("--out", required=True, help="results directory (created)")
    ap.add_argument("--quick", action="store_true", help="a small subset, under 2 minutes")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5, quick 3)")
    ap.add_argument("--only", default="speed,instructions,mem,real,runtimes",
                    help="comma-separated groups to run")
    ap.add_argument("--replot", action="store_true",
                    help="only redraw the table and charts from --out's results.csv")
    args = ap.parse_args()
    if args.replot:
        rows = read_csv(os.path.join(args.out, "results.csv"))
        raw = json.load(open(os.path.join(args.out, "raw.json")))
        names = list(dict.fromkeys(r["allocator"] for r in rows))
        if all(r.get("label") for r in rows):  # older results.csv files have none
            write_table(rows, names, os.path.join(args.out, "table.md"), raw["machine"],
                        raw["quick"])
        make_plots(rows, [n for n in names if n not in ("pymalloc", "obm-linked")], args.out)
        return
    build = os.path.abspath(args.build)
    srcdir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    reps = args.reps or (3 if args.quick else 5)
    groups = set(args.only.split(","))

    obm = os.path.join(build, ".libs", "libobmalloc.so")
    if not os.path.exists(obm):
        sys.exit(f"run.py: {obm} not found: build obm first")
    allocs = []
    for name, path, pkg in PEERS:
        if path and not os.path.exists(path):
            if not args.quick:  # a full run's tables have every peer
                sys.exit(f"run.py: {name}: {path} not found (apt-get install {pkg})")
            log(f"{name}: {path} not found (apt-get install {pkg}); left out of this quick run")
            continue
        allocs.append((name, path))
    allocs.append(("obm", obm))
    if not args.quick:
        allocs += [(name, obm) for name in VARIANTS]

    os.makedirs(args.out, exist_ok=True)
    series_dir = args.out
    samples = Samples()
    outputs = {}
    t0 = time.time()
    machine = machine_description(reps, allocs, build)
    PROGRESS.total = plan_steps(groups, allocs, reps, args.quick)
    if "instructions" in groups:  # deterministic: one run is enough
        run_instructions(build, allocs, args.quick, samples)
    for rep in range(reps):
        log(f"repetition {rep + 1}/{reps} ({time.time() - t0:.0f} s so far)")
        if "speed" in groups:
            run_speed(build, allocs, args.quick, rep, samples)
        if "mem" in groups:
            run_mem(build, allocs, args.quick, rep, samples, series_dir)
        if "real" in groups and (not args.quick or rep == 0):
            run_real(srcdir, allocs, args.quick, rep, samples, outputs)
        if "runtimes" in groups and (not args.quick or rep == 0):
            run_runtimes(build, srcdir, allocs, args.quick, rep, samples, outputs, args.out)
    derive_scaling(samples, allocs)

    # Real programs must print the same under every allocator.
    for prog, outs in outputs.items():
        ref = outs.get("glibc")
        bad = [n for n, o in outs.items() if o != ref]
        if bad:
            sys.exit(f"run.py: {prog} output differs from glibc's under: {', '.join(bad)}")

    names = ([n for n, _ in allocs]
             + (["pymalloc"] if "python" in outputs or "runtime-python" in outputs else [])
             + (["obm-linked"] if any(k.startswith("runtime-") for k in outputs) else []))
    rows = summarise(samples, names)
    json.dump({"machine": machine, "quick": args.quick,
               "samples": [{"item": i, "metric": m, "allocator": a, "values": v}
                           for (i, m, a), v in samples.values.items()]},
              open(os.path.join(args.out, "raw.json"), "w"), indent=1)
    write_csv(rows, os.path.join(args.out, "results.csv"))
    write_table(rows, names, os.path.join(args.out, "table.md"), machine, args.quick)
    make_plots(rows, [n for n, _ in allocs], args.out)
    log(f"done in {time.time() - t0:.0f} s: {args.out}/table.md")
    sys.stdout.write(open(os.path.join(args.out, "table.md")).read())


if __name__ == "__main__":
    main()
