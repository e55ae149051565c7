/* obm-mem-skewed: skewed random sizes at a steady state of about 1M live.
 *
 * Sizes: 75% uniform in 1..16 bytes, the other 25% in 17..512 with a
 * falling tail (17 + 495 u^3, u uniform in [0, 1)): most requests are tiny
 * and a few are large. 1,000,000 objects (--quick: 100,000) are allocated
 * first; then each step frees a random live object and allocates a new one
 * of a fresh size in its slot, 4,000,000 steps (--quick: 400,000;
 * --steps N). Every byte allocated is written with its slot's tag (a byte
 * that changes with every replacement); before a free the first, middle
 * and last bytes are checked, so an allocator that hands out overlapping
 * blocks stops the program (exit 1) instead of being timed.
 *
 *   obm-mem-skewed [--quick] [--seed N] [--steps N]
 *
 * Prints one JSON object on one line; sizes in KiB are from /proc/self/status
 * (VmRSS, VmHWM), bytes are the sizes asked of malloc:
 *   objects, steps        the live set's size, the steps run
 *   fill_seconds          the first allocation of the live set
 *   seconds               wall time of the steps (the fill not included)
 *   ns_per_pair           seconds * 1e9 / steps (a step: one free, one malloc)
 *   ops_per_sec           steps / seconds
 *   small_share           share of the requests (fill and steps) of 16 B or less
 *   live_bytes            requested bytes live after the last step
 *   rss_baseline_kib      VmRSS at start, before anything is allocated
 *   rss_after_fill_kib    VmRSS once the live set is allocated
 *   rss_steady_kib        VmRSS after the last step
 *   rss_per_live          rss_steady_kib * 1024 / live_bytes
 *   rss_per_live_net      the same with rss_baseline_kib and harness_kib
 *                         taken off rss_steady_kib first
 *   rss_peak_kib          VmHWM after the last step (or the largest VmRSS
 *                         read, if higher: memutil.h)
 *   rss_all_freed_kib     VmRSS after everything is freed at the end
 * and, in every bench/mem program (memutil.h):
 *   quick, seed, harness_kib (the harness's own mmap'd arrays, resident all
 *   along and included in every RSS figure), ru_maxrss_kib (getrusage),
 *   wall_seconds, allocator (1 obm, 2 jemalloc, 3 mimalloc, 4 tcmalloc,
 *   5 TBB, 0 none of these: glibc).
 */
#include "memutil.h"

static size_t skewed_size(struct mem_rng *r, uint64_t *small)
{
    if (mem_rng_below(r, 4) != 0) {
        (*small)++;
        return mem_rng_range(r, 1, 16);
    }
    double u = (double)(mem_rng_next(r) >> 11) * 0x1p-53;
    return 17 + (size_t)(495.0 * u * u * u);
}

/* Write tag into all n bytes of the new block p. */
static void *skewed_alloc(size_t n, unsigned char tag)
{
    unsigned char *p = malloc(n);
    if (p == NULL)
        mem_die("malloc(%zu) failed", n);
    memset(p, tag, n);
    return p;
}

static void skewed_check(const unsigned char *p, size_t n, unsigned char tag, size_t slot)
{
    if (p[0] != tag || p[n / 2] != tag || p[n - 1] != tag)
        mem_die("obm-mem-skewed: the %zu-byte block of slot %zu was overwritten", n, slot);
}

int main(int argc, char **argv)
{
    double t0 = mem_now();
    struct mem_args args = mem_parse_args(argc, argv, MEM_OPT_STEPS);
    long rss_baseline = mem_rss_kib();

    size_t n = args.quick ? 100000 : 1000000;
    long steps = args.steps ? args.steps : args.quick ? 400000 : 4000000;
    struct mem_rng rng;
    mem_rng_seed(&rng, args.seed);

    unsigned char **ptrs = mem_harness_alloc(n * sizeof *ptrs);
    uint16_t *sizes = mem_harness_alloc(n * sizeof *sizes);
    unsigned char *tags = mem_harness_alloc(n);

    uint64_t small = 0, live_bytes = 0;
    double t = mem_now();
    for (size_t i = 0; i < n; i++) {
        sizes[i] = (uint16_t)skewed_size(&rng, &small);
        tags[i] = (unsigned char)(i * 131 + 1);
        ptrs[i] = skewed_alloc(sizes[i], tags[i]);
        live_bytes += sizes[i];
    }
    double fill_seconds = mem_now() - t;
    long rss_after_fill = mem_rss_kib();

    t = mem_now();
    for (long s = 0; s < steps; s++) {
        size_t i = (size_t)mem_rng_below(&rng, n);
        skewed_check(ptrs[i], sizes[i], tags[i], i);
        free(ptrs[i]);
        live_bytes -= sizes[i];
        sizes[i] = (uint16_t)skewed_size(&rng, &small);
        tags[i] = (unsigned char)(tags[i] + 1);
        ptrs[i] = skewed_alloc(sizes[i], tags[i]);
        live_bytes += sizes[i];
    }
    double seconds = mem_now() - t;
    long rss_steady = mem_rss_kib();
    long rss_peak = mem_hwm_kib();

    for (size_t i = 0; i < n; i++) {
        skewed_check(ptrs[i], sizes[i], tags[i], i);
        free(ptrs[i]);
    }
    long rss_all_freed = mem_rss_kib();

    mem_json_begin();
    mem_json_int("objects", (long long)n);
    mem_json_int("steps", steps);
    mem_json_num("fill_seconds", fill_seconds, 4);
    mem_json_num("seconds", seconds, 4);
    mem_json_num("ns_per_pair", mem_ratio(seconds * 1e9, (double)steps), 2);
    mem_json_num("ops_per_sec", mem_ratio((double)steps, seconds), 0);
    mem_json_num("small_share", mem_ratio((double)small, (double)n + (double)steps), 4);
    mem_json_u64("live_bytes", live_bytes);
    mem_json_int("rss_baseline_kib", rss_baseline);
    mem_json_int("rss_after_fill_kib", rss_after_fill);
    mem_json_int("rss_steady_kib", rss_steady);
    mem_json_num("rss_per_live", mem_ratio(rss_steady * 1024.0, (double)live_bytes), 4);
    mem_json_num(
        "rss_per_live_net",
        mem_ratio((rss_steady - rss_baseline - mem_harness_kib()) * 1024.0, (double)live_bytes), 4);
    mem_json_int("rss_peak_kib", rss_peak);
    mem_json_int("rss_all_freed_kib", rss_all_freed);
    mem_json_end(&args, t0);
    return 0;
}
