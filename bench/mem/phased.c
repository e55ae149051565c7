/* obm-mem-phased: does memory freed by one phase serve the next phase's
 * different sizes?
 *
 *   phase A  fills 1,000,000 objects of sizes uniform in 8..64, frees them all
 *   phase B  fills   250,000 objects of sizes uniform in 256..512, frees them all
 *   phase C  fills phase A's mix again (1,000,000 of 8..64), frees them all
 * (--quick: a tenth of each count). Every byte is touched; each phase frees
 * its objects in allocation order. An allocator that keeps phase A's memory
 * for A's size classes (or in caches) and cannot give it to B grows past
 * the largest phase; one that returns it, or reuses it across classes,
 * stays near the largest phase.
 *
 *   obm-mem-phased [--quick] [--seed N]
 *
 * Prints one JSON object on one line; sizes in KiB are from /proc/self/status
 * (VmRSS, VmHWM), bytes are the sizes asked of malloc:
 *   rss_baseline_kib      VmRSS at start, before anything is allocated
 *   rss_after_a_kib       VmRSS at the end of phase A's fill, before its free
 *   rss_freed_a_kib       VmRSS after phase A's free
 *   rss_after_b_kib       VmRSS at the end of phase B's fill, before its free
 *   rss_freed_b_kib       VmRSS after phase B's free
 *   rss_after_c_kib       VmRSS at the end of phase C's fill, before its free
 *   rss_end_kib           VmRSS after phase C's free (everything freed)
 *   rss_peak_kib          VmHWM at the end (or the largest VmRSS read, if
 *                         higher: memutil.h)
 *   live_bytes_a, live_bytes_b, live_bytes_c   requested bytes of each phase
 *   live_bytes_peak       the largest of the three
 *   rss_peak_per_live     rss_peak_kib * 1024 / live_bytes_peak
 *   seconds_a, seconds_b, seconds_c            each phase, fill and free
 * and, in every bench/mem program (memutil.h):
 *   quick, seed, harness_kib (the harness's own mmap'd arrays, resident all
 *   along and included in every RSS figure), ru_maxrss_kib (getrusage),
 *   wall_seconds, allocator (1 obm, 2 jemalloc, 3 mimalloc, 4 tcmalloc,
 *   5 TBB, 0 none of these: glibc).
 */
#include "memutil.h"

struct phase {
    long rss_filled, rss_freed;
    uint64_t live_bytes;
    double seconds;
};

static struct phase run_phase(void **ptrs, size_t n, size_t lo, size_t hi, struct mem_rng *rng)
{
    struct phase ph = {0, 0, 0, 0};
    double t = mem_now();
    for (size_t i = 0; i < n; i++) {
        size_t size = mem_rng_range(rng, lo, hi);
        ptrs[i] = mem_alloc_touch(size);
        ph.live_bytes += size;
    }
    double filled = mem_now();
    ph.rss_filled = mem_rss_kib();
    double t2 = mem_now();
    for (size_t i = 0; i < n; i++)
        free(ptrs[i]);
    ph.seconds = (filled - t) + (mem_now() - t2);
    ph.rss_freed = mem_rss_kib();
    return ph;
}

int main(int argc, char **argv)
{
    double t0 = mem_now();
    struct mem_args args = mem_parse_args(argc, argv, 0);
    long rss_baseline = mem_rss_kib();

    size_t n_small = args.quick ? 100000 : 1000000;
    size_t n_large = args.quick ? 25000 : 250000;
    struct mem_rng rng;
    mem_rng_seed(&rng, args.seed);
    void **ptrs = mem_harness_alloc((n_small > n_large ? n_small : n_large) * sizeof *ptrs);

    struct phase a = run_phase(ptrs, n_small, 8, 64, &rng);
    struct phase b = run_phase(ptrs, n_large, 256, 512, &rng);
    struct phase c = run_phase(ptrs, n_small, 8, 64, &rng);
    long rss_peak = mem_hwm_kib();

    uint64_t live_peak = a.live_bytes;
    if (b.live_bytes > live_peak)
        live_peak = b.live_bytes;
    if (c.live_bytes > live_peak)
        live_peak = c.live_bytes;

    mem_json_begin();
    mem_json_int("rss_baseline_kib", rss_baseline);
    mem_json_int("rss_after_a_kib", a.rss_filled);
    mem_json_int("rss_freed_a_kib", a.rss_freed);
    mem_json_int("rss_after_b_kib", b.rss_filled);
    mem_json_int("rss_freed_b_kib", b.rss_freed);
    mem_json_int("rss_after_c_kib", c.rss_filled);
    mem_json_int("rss_end_kib", c.rss_freed);
    mem_json_int("rss_peak_kib", rss_peak);
    mem_json_u64("live_bytes_a", a.live_bytes);
    mem_json_u64("live_bytes_b", b.live_bytes);
    mem_json_u64("live_bytes_c", c.live_bytes);
    mem_json_u64("live_bytes_peak", live_peak);
    mem_json_num("rss_peak_per_live", mem_ratio(rss_peak * 1024.0, (double)live_peak), 4);
    mem_json_num("seconds_a", a.seconds, 4);
    mem_json_num("seconds_b", b.seconds, 4);
    mem_json_num("seconds_c", c.seconds, 4);
    mem_json_end(&args, t0);
    return 0;
}
