#!/bin/bash
# Memory of a real server, redis-server, under each allocator.
#
#   bench/redis-rss.sh [--keys N] [--csv FILE] [OBM_LIB]
#
# For each of glibc, jemalloc, mimalloc, tcmalloc and obm (OBM_LIB, default
# build/.libs/libobmalloc.so), starts one redis-server on a free loopback
# port with the allocator preloaded, loads the same data set (N keys,
# default 20000, whose values are 100..20000 B, sizes drawn uniformly with a
# fixed seed), and reads the server's RSS (VmRSS) twice: after the load, and
# after FLUSHALL, 1 s idle and one PING. The first shows what the live set
# costs, the second how much of it the allocator gives back once it is all
# free. Both are printed in MiB, with redis's own count of live bytes
# (used_memory) and the idle RSS as a ratio to jemalloc's, the allocator
# redis is built for. This is the acceptance check for a medium tier in
# obm: values of 100..20000 B are above obm's small classes.
#
# What redis allocates with, on Debian 12 (redis 7.0.15): redis-server is
# built with USE_JEMALLOC (`redis-server --version` says malloc=jemalloc-5.3.0)
# but against the system's shared libjemalloc.so.2, not a bundled copy. It
# calls the plain names malloc, calloc, realloc, free and malloc_usable_size,
# so they bind to the first library that defines them: libjemalloc.so.2,
# which comes before libc in its list of needed libraries, and a preloaded
# library before both. So:
#   - without a preload, redis runs on jemalloc, not glibc; glibc is
#     measured by preloading libc.so.6 itself, which moves glibc's malloc
#     ahead of jemalloc's;
#   - a preloaded mimalloc, tcmalloc or obm does serve redis's values; the
#     check below (jemalloc's own count of allocated bytes, which redis
#     reports as allocator_allocated, stays near zero) confirms it each run;
#   - the jemalloc-only calls (mallctl for INFO's allocator_* fields, the
#     purge that FLUSHALL asks for, background_thread; nallocx as a size
#     hint) still reach libjemalloc. Under another allocator jemalloc is
#     thus set up but nearly empty, a small fixed cost in that allocator's
#     RSS, and only jemalloc gets FLUSHALL's explicit purge: that is what
#     this build of redis does, and part of what is measured.
set -euo pipefail

usage() {
    echo "usage: $0 [--keys N] [--csv FILE] [OBM_LIB]" >&2
    exit 2
}

# Relative paths given are the caller's, not the repository root's.
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

keys=20000 csv='' obm=''
while [ $# -gt 0 ]; do
    case $1 in
    --keys) [ $# -ge 2 ] || usage; keys=$2; shift 2 ;;
    --csv) [ $# -ge 2 ] || usage; csv=$(abs "$2"); shift 2 ;;
    -*) usage ;;
    *) [ -z "$obm" ] || usage; obm=$(abs "$1"); shift ;;
    esac
done
case $keys in '' | *[!0-9]*) usage ;; esac

cd "$(dirname "$0")/.."
obm=${obm:-$PWD/build/.libs/libobmalloc.so}
[ -f "$obm" ] || { echo "$0: obm drop-in $obm not found (build it first)" >&2; exit 1; }

# redis-server and redis-cli, installed if missing and we are root.
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    if [ "$(id -u)" != 0 ]; then
        echo "$0: redis-server/redis-cli missing; install redis-server and redis-tools (as root)" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null; } ||
        { echo "$0: apt-get install redis-server redis-tools failed" >&2; exit 1; }
fi
command -v python3 >/dev/null || { echo "$0: python3 is needed to generate the data set" >&2; exit 1; }

lib=/usr/lib/x86_64-linux-gnu
allocators="glibc jemalloc mimalloc tcmalloc obm"
preload_of() {
    case $1 in
    glibc) echo /lib/x86_64-linux-gnu/libc.so.6 ;;
    jemalloc) echo $lib/libjemalloc.so.2 ;;
    mimalloc) echo $lib/libmimalloc.so.2 ;;
    tcmalloc) echo $lib/libtcmalloc_minimal.so.4 ;;
    obm) echo "$obm" ;;
    esac
}

tmp=$(mktemp -d)
pid=
stop_server() {
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    # SIGTERM makes redis exit within a moment; SIGKILL after 5 s.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
}
trap 'stop_server; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# The data set, once for all runs: SET commands in RESP, for redis-cli --pipe.
python3 - "$keys" >"$tmp/data.resp" <<'EOF'
import random, sys
n = int(sys.argv[1])
rng = random.Random(20000)
out = sys.stdout.buffer
for i in range(n):
    key = b"key:%d" % i
    val = b"%c" % (97 + i % 26) * rng.randint(100, 20000)
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(val), val))
EOF

# free_port: a port above 20000 that nothing listens on (the kernel's pick).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
info_field() { tr -d '\r' <"$tmp/info" | awk -F: -v f="$1" '$1 == f { print $2 }'; }
cli() { timeout 10 redis-cli -p "$port" "$@"; }

: >"$tmp/rows"
for a in $allocators; do
    so=$(preload_of "$a")
    if [ ! -f "$so" ]; then
        echo "$a: skipped, $so not found"
        continue
    fi
    port=$(free_port)
    [ "$port" -gt 20000 ] || port=$((20000 + RANDOM))
    env LD_PRELOAD="$so" redis-server --port "$port" --bind 127.0.0.1 --save '' \
        --appendonly no --daemonize no >"$tmp/$a.log" 2>&1 &
    pid=$!

    # Up within 10 s, or its log and exit 1.
    up=
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$(cli ping 2>/dev/null)" = PONG ] && { up=1; break; }
        sleep 0.1
    done
    [ -n "$up" ] || { echo "$0: redis-server under $a did not answer in 10 s:" >&2; cat "$tmp/$a.log" >&2; exit 1; }

    # The preload must be mapped, or the run measures something else.
    grep -qF "$(readlink -f "$so")" "/proc/$pid/maps" ||
        { echo "$0: $so is not mapped in redis-server under $a" >&2; exit 1; }

    timeout 60 redis-cli -p "$port" --pipe <"$tmp/data.resp" >"$tmp/$a.pipe" ||
        { echo "$0: loading the data under $a failed:" >&2; cat "$tmp/$a.pipe" >&2; exit 1; }
    # INFO's allocator_* fields are refreshed by redis's timer, every 100 ms.
    sleep 0.3
    load=$(rss_kib "$pid")
    cli info memory >"$tmp/info"
    [ "$(cli dbsize)" = "$keys" ] || { echo "$0: under $a, not all $keys keys were stored" >&2; exit 1; }
    used=$(info_field used_memory)
    # Who holds the values: jemalloc under jemalloc, next to nothing else.
    je=$(info_field allocator_allocated)
    if { [ "$a" = jemalloc ] && [ "$je" -lt $((used / 2)) ]; } ||
        { [ "$a" != jemalloc ] && [ "$je" -gt $((used / 2)) ]; }; then
        echo "$0: under $a, jemalloc holds $je of $used bytes: the preload did not take" >&2
        exit 1
    fi

    cli flushall >/dev/null
    sleep 1
    cli ping >/dev/null
    idle=$(rss_kib "$pid")
    stop_server

    echo "$a $((used / 1024)) $load $idle" >>"$tmp/rows"
done

# The table, and the CSV if asked; ratios to jemalloc's idle RSS.
awk -v csv="$csv" '
    { name[NR] = $1; used[NR] = $2; load[NR] = $3; idle[NR] = $4; if ($1 == "jemalloc") je = $4 }
    END {
        printf "%-10s %14s %14s %14s %14s\n", "allocator", "used_mem MiB", "RSS load MiB", "RSS idle MiB", "idle / jemalloc"
        if (csv != "") print "allocator,used_memory_mib,rss_load_mib,rss_idle_mib,idle_vs_jemalloc" >csv
        for (i = 1; i <= NR; i++) {
            r = je ? sprintf("%.2f", idle[i] / je) : "-"
            printf "%-10s %14.1f %14.1f %14.1f %14s\n", name[i], used[i] / 1024, load[i] / 1024, idle[i] / 1024, r
            if (csv != "") printf "%s,%.1f,%.1f,%.1f,%s\n", name[i], used[i] / 1024, load[i] / 1024, idle[i] / 1024, r >csv
        }
    }' "$tmp/rows"
