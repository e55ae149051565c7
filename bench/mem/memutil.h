/* Shared helpers for the memory and fragmentation benchmarks in bench/mem/:
 * RSS from /proc/self/status and getrusage, a deterministic RNG, the common
 * command line, harness memory, timing, and the one-line JSON result.
 *
 * Each program is run unchanged under every allocator (LD_PRELOAD), so the
 * workload itself uses only malloc and free, built with -fno-builtin so the
 * compiler cannot fold or elide a call. The harness's own bookkeeping (the
 * arrays of pointers, sizes and permutations) is mapped with mmap, not
 * malloc'd, so it is the same memory under every allocator and never mixes
 * with the objects being measured; it is touched and so counts in RSS, and
 * each program reports its size as "harness_kib".
 *
 * Nothing here allocates through malloc while a program measures: RSS is
 * read with open/read into a static buffer and the JSON is formatted into a
 * static buffer and written with write(2).
 */
#ifndef OBM_BENCH_MEMUTIL_H
#define OBM_BENCH_MEMUTIL_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MEM_DEFAULT_SEED 20240601u

/* ---- diagnostics (stderr) ---- */

static inline void mem_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---- RSS ---- */

/* The value in KiB of one "Key:  123 kB" line of /proc/self/status. */
static inline long mem_status_kib(const char *key)
{
    static char buf[16384];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        mem_die("cannot open /proc/self/status: %s", strerror(errno));
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    size_t klen = strlen(key);
    for (char *line = buf; *line != '\0';) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':')
            return strtol(line + klen + 1, NULL, 10);
        char *nl = strchr(line, '\n');
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    mem_die("no %s in /proc/self/status", key);
    return -1;
}

static long mem_rss_seen; /* the largest VmRSS read so far */

/* Resident set now, in KiB. */
static inline long mem_rss_kib(void)
{
    long kib = mem_status_kib("VmRSS");
    if (kib > mem_rss_seen)
        mem_rss_seen = kib;
    return kib;
}

/* Peak resident set since the start, in KiB: VmHWM, or the largest VmRSS
 * read if that is higher (the kernel updates the high-water mark lazily, so
 * it can lag a VmRSS reading by a few pages). */
static inline long mem_hwm_kib(void)
{
    long kib = mem_status_kib("VmHWM");
    return kib > mem_rss_seen ? kib : mem_rss_seen;
}

/* getrusage's peak resident set (KiB on Linux). */
static inline long mem_maxrss_kib(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return ru.ru_maxrss;
}

/* ---- time ---- */

static inline double mem_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds (user + system) used by the process so far. */
static inline double mem_cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

static inline void mem_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- RNG: xorshift64*, seeded through splitmix64 ---- */

struct mem_rng {
    uint64_t s;
};

static inline void mem_rng_seed(struct mem_rng *r, uint64_t seed)
{
    uint64_t z = seed + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    r->s = z ? z : 0x2545f4914f6cdd1dull;
}

static inline uint64_t mem_rng_next(struct mem_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n), n > 0 (multiply-high; the bias is below 2^-40 here). */
static inline uint64_t mem_rng_below(struct mem_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)mem_rng_next(r) * n) >> 64);
}

/* Uniform in [lo, hi], inclusive. */
static inline size_t mem_rng_range(struct mem_rng *r, size_t lo, size_t hi)
{
    return lo + (size_t)mem_rng_below(r, (uint64_t)(hi - lo) + 1);
}

/* Fisher-Yates shuffle of idx[0..n). */
static inline void mem_shuffle_u32(uint32_t *idx, size_t n, struct mem_rng *r)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)mem_rng_below(r, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

/* ---- harness memory (mmap, never the allocator under test) ---- */

static size_t mem_harness_bytes;

/* n bytes of zeroed memory, touched so that it is resident from the start
 * and counts the same in every measurement. */
static inline void *mem_harness_alloc(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        mem_die("mmap(%zu): %s", n, strerror(errno));
    memset(p, 0, n);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    mem_harness_bytes += (n + page - 1) / page * page;
    return p;
}

static inline long mem_harness_kib(void)
{
    return (long)(mem_harness_bytes / 1024);
}

/* ---- the workload's allocations ---- */

/* malloc n bytes and touch every one of them once. */
static inline void *mem_alloc_touch(size_t n)
{
    void *p = malloc(n);
    if (p == NULL)
        mem_die("malloc(%zu) failed", n);
    memset(p, 0x5a, n);
    return p;
}

/* A little allocator activity after an idle pause: MEM_WAKE_OBJECTS mallocs
 * of sizes uniform in 8..512 (about 2.6 MB, touched), then their frees, in
 * order. Allocators without a background thread (Debian's jemalloc and
 * mimalloc) return memory on a time decay only when the program calls them
 * again: a pure sleep shows nothing of it, this shows what the next burst
 * of work would find. slots: MEM_WAKE_OBJECTS harness pointers. */
#define MEM_WAKE_OBJECTS 10000

/* Allocate and touch sizes[i] bytes for every i < n into ptrs; returns the
 * bytes asked for, and the seconds it took in *seconds. */
static inline uint64_t mem_fill(void **ptrs, const uint16_t *sizes, size_t n, double *seconds)
{
    uint64_t bytes = 0;
    double t = mem_now();
    for (size_t i = 0; i < n; i++) {
        ptrs[i] = mem_alloc_touch(sizes[i]);
        bytes += sizes[i];
    }
    *seconds = mem_now() - t;
    return bytes;
}

/* Free ptrs[order[k]] for k < count, in that order, and clear the slots;
 * returns the seconds it took. */
static inline double mem_free_listed(void **ptrs, const uint32_t *order, size_t count)
{
    double t = mem_now();
    for (size_t k = 0; k < count; k++) {
        free(ptrs[order[k]]);
        ptrs[order[k]] = NULL;
    }
    return mem_now() - t;
}

static inline void mem_wake(void **slots, struct mem_rng *r)
{
    for (size_t i = 0; i < MEM_WAKE_OBJECTS; i++)
        slots[i] = mem_alloc_touch(mem_rng_range(r, 8, 512));
    for (size_t i = 0; i < MEM_WAKE_OBJECTS; i++)
        free(slots[i]);
}

/* ---- command line ---- */

struct mem_args {
    int quick;          /* --quick: about 10x smaller */
    uint64_t seed;      /* --seed N */
    long idle_ms;       /* --idle-ms N: the idle pause (1000 ms) */
    long steps;         /* --steps N: the step count (0: the program's default) */
    const char *series; /* --series FILE: churn's CSV of samples */
};

#define MEM_OPT_SERIES 1 /* the program takes --series and --steps */
#define MEM_OPT_IDLE   2 /* the program takes --idle-ms */
#define MEM_OPT_STEPS  4 /* the program takes --steps */

static inline void mem_usage(const char *prog, unsigned opts)
{
    fprintf(stderr, "usage: %s [--quick] [--seed N]%s%s\n", prog,
            (opts & MEM_OPT_IDLE) ? " [--idle-ms N]" : "",
            (opts & MEM_OPT_SERIES)  ? " [--steps N] [--series FILE]"
            : (opts & MEM_OPT_STEPS) ? " [--steps N]"
                                     : "");
    exit(2);
}

static inline uint64_t mem_parse_u64(const char *prog, unsigned opts, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || end == s || *end != '\0' || *s == '-')
        mem_usage(prog, opts);
    return (uint64_t)v;
}

static inline struct mem_args mem_parse_args(int argc, char **argv, unsigned opts)
{
    struct mem_args a = {0, MEM_DEFAULT_SEED, 1000, 0, NULL};
    const char *prog = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        int more = i + 1 < argc;
        if (strcmp(o, "--quick") == 0)
            a.quick = 1;
        else if (strcmp(o, "--seed") == 0 && more)
            a.seed = mem_parse_u64(prog, opts, argv[++i]);
        else if ((opts & MEM_OPT_IDLE) && strcmp(o, "--idle-ms") == 0 && more)
            a.idle_ms = (long)mem_parse_u64(prog, opts, argv[++i]);
        else if ((opts & (MEM_OPT_SERIES | MEM_OPT_STEPS)) && strcmp(o, "--steps") == 0 && more)
            a.steps = (long)mem_parse_u64(prog, opts, argv[++i]);
        else if ((opts & MEM_OPT_SERIES) && strcmp(o, "--series") == 0 && more)
            a.series = argv[++i];
        else
            mem_usage(prog, opts);
    }
    return a;
}

/* ---- which allocator is serving malloc (for the runner's sanity check) ---- */

/* 1 obm, 2 jemalloc, 3 mimalloc, 4 tcmalloc, 5 TBB's malloc proxy, 0 none
 * of those (glibc). Call it only after measuring: a failed dlsym allocates
 * its error message. */
static inline int mem_detect_allocator(void)
{
    static const char *const syms[] = {"obm_owns", "mallctl", "mi_version", "tc_malloc",
                                       "__TBB_malloc_proxy"};
    for (int i = 0; i < 5; i++)
        if (dlsym(RTLD_DEFAULT, syms[i]) != NULL)
            return i + 1;
    return 0;
}

/* ---- the result: one JSON object on one line ---- */

static char mem_json_buf[8192];
static size_t mem_json_len;

static inline void mem_json_put(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(mem_json_buf + mem_json_len, sizeof mem_json_buf - mem_json_len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof mem_json_buf - mem_json_len)
        mem_die("JSON result too long");
    mem_json_len += (size_t)n;
}

static inline void mem_json_key(const char *key)
{
    mem_json_put("%s\"%s\":", mem_json_len > 1 ? "," : "", key);
}

static inline void mem_json_begin(void)
{
    mem_json_len = 0;
    mem_json_put("{");
}

static inline void mem_json_int(const char *key, long long v)
{
    mem_json_key(key);
    mem_json_put("%lld", v);
}

static inline void mem_json_u64(const char *key, uint64_t v)
{
    mem_json_key(key);
    mem_json_put("%" PRIu64, v);
}

/* A real number; non-finite values (never expected) become 0 to keep the
 * output valid JSON. */
static inline void mem_json_num(const char *key, double v, int decimals)
{
    mem_json_key(key);
    if (v != v || v > 1e300 || v < -1e300)
        v = 0;
    mem_json_put("%.*f", decimals, v);
}

/* The fields every program reports, then the closing brace and newline,
 * written to stdout in one write. */
static inline void mem_json_end(const struct mem_args *a, double t0)
{
    mem_json_int("quick", a->quick);
    mem_json_u64("seed", a->seed);
    mem_json_int("harness_kib", mem_harness_kib());
    mem_json_int("ru_maxrss_kib", mem_maxrss_kib());
    mem_json_num("wall_seconds", mem_now() - t0, 3);
    mem_json_int("allocator", mem_detect_allocator());
    mem_json_put("}\n");
    size_t off = 0;
    while (off < mem_json_len) {
        ssize_t n = write(STDOUT_FILENO, mem_json_buf + off, mem_json_len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            mem_die("cannot write the result: %s", strerror(errno));
        off += (size_t)n;
    }
}

static inline double mem_ratio(double num, double den)
{
    return den > 0 ? num / den : 0;
}

#endif /* OBM_BENCH_MEMUTIL_H */
