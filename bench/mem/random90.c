/* obm-mem-random90: how much memory a heap keeps for a sparse survivor set.
 *
 * Allocates 2,000,000 objects (--quick: 200,000) of sizes uniform in 8..512
 * bytes, touching every byte; frees 90% of them, chosen by a shuffled index
 * (a random permutation of all the objects: the first 90% are freed, in that
 * order); keeps the other 10%, sleeps (1 s; --idle-ms N) and does a little
 * allocation work, for the allocators that return memory on a time decay
 * (obm, jemalloc, mimalloc), which act on it only when called. Then frees
 * the survivors too, and sleeps and works again.
 *
 *   obm-mem-random90 [--quick] [--seed N] [--idle-ms N]
 *
 * Prints one JSON object on one line; sizes in KiB are from /proc/self/status
 * (VmRSS, VmHWM), bytes are the sizes asked of malloc:
 *   rss_baseline_kib        VmRSS at start, before anything is allocated
 *   rss_after_alloc_kib     VmRSS when all the objects are live
 *   rss_peak_kib            VmHWM after the 90% free (or the largest VmRSS
 *                           read, if higher: memutil.h)
 *   live_bytes              sum of the requested sizes of the survivors
 *   rss_after_free_kib      VmRSS right after the 90% free
 *   rss_per_live            rss_after_free_kib * 1024 / live_bytes
 *   rss_per_live_net        the same with rss_baseline_kib and harness_kib
 *                           taken off rss_after_free_kib first
 *   rss_after_free_woken_kib  VmRSS after the idle pause and a little
 *                           activity (mem_wake) that follow the 90% free
 *   rss_per_live_woken      rss_after_free_woken_kib * 1024 / live_bytes
 *   rss_all_freed_kib       VmRSS right after the survivors are freed too
 *   rss_all_freed_idle_kib  VmRSS after the idle pause that follows
 *   rss_all_freed_woken_kib VmRSS after a little activity that follows the
 *                           pause (memutil.h, mem_wake: 10,000 mallocs of
 *                           8..512 bytes, then their frees), so that an
 *                           allocator that purges lazily on its next call
 *                           (jemalloc's decay, mimalloc's delayed decommit)
 *                           gets to act on the idle time
 *   idle_ms                 the idle pause, ms
 *   objects, survivors      counts; peak_bytes: requested bytes of all objects
 *   alloc_seconds, free_seconds   the allocation loop, the 90% free loop
 * and, in every bench/mem program (memutil.h):
 *   quick, seed, harness_kib (the harness's own mmap'd arrays, resident all
 *   along and included in every RSS figure), ru_maxrss_kib (getrusage),
 *   wall_seconds, allocator (1 obm, 2 jemalloc, 3 mimalloc, 4 tcmalloc,
 *   5 TBB, 0 none of these: glibc).
 */
#include "memutil.h"

int main(int argc, char **argv)
{
    double t0 = mem_now();
    struct mem_args args = mem_parse_args(argc, argv, MEM_OPT_IDLE);
    long rss_baseline = mem_rss_kib();

    size_t n = args.quick ? 200000 : 2000000;
    size_t nfree = n / 10 * 9;
    struct mem_rng rng;
    mem_rng_seed(&rng, args.seed);

    void **ptrs = mem_harness_alloc(n * sizeof *ptrs);
    uint16_t *sizes = mem_harness_alloc(n * sizeof *sizes);
    void **wake = mem_harness_alloc(MEM_WAKE_OBJECTS * sizeof *wake);
    uint32_t *order = mem_harness_alloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) {
        sizes[i] = (uint16_t)mem_rng_range(&rng, 8, 512);
        order[i] = (uint32_t)i;
    }
    mem_shuffle_u32(order, n, &rng);

    double alloc_seconds;
    uint64_t peak_bytes = mem_fill(ptrs, sizes, n, &alloc_seconds);
    long rss_after_alloc = mem_rss_kib();

    double free_seconds = mem_free_listed(ptrs, order, nfree);
    long rss_after_free = mem_rss_kib();
    long rss_peak = mem_hwm_kib();

    uint64_t live_bytes = 0;
    for (size_t k = nfree; k < n; k++)
        live_bytes += sizes[order[k]];
    mem_sleep_ms(args.idle_ms);
    mem_wake(wake, &rng);
    long rss_after_free_woken = mem_rss_kib();

    for (size_t k = nfree; k < n; k++)
        free(ptrs[order[k]]);
    long rss_all_freed = mem_rss_kib();
    mem_sleep_ms(args.idle_ms);
    long rss_all_freed_idle = mem_rss_kib();
    mem_wake(wake, &rng);
    long rss_all_freed_woken = mem_rss_kib();

    mem_json_begin();
    mem_json_int("objects", (long long)n);
    mem_json_int("survivors", (long long)(n - nfree));
    mem_json_u64("peak_bytes", peak_bytes);
    mem_json_u64("live_bytes", live_bytes);
    mem_json_int("rss_baseline_kib", rss_baseline);
    mem_json_int("rss_after_alloc_kib", rss_after_alloc);
    mem_json_int("rss_peak_kib", rss_peak);
    mem_json_int("rss_after_free_kib", rss_after_free);
    mem_json_num("rss_per_live", mem_ratio(rss_after_free * 1024.0, (double)live_bytes), 4);
    mem_json_num(
        "rss_per_live_net",
        mem_ratio((rss_after_free - rss_baseline - mem_harness_kib()) * 1024.0, (double)live_bytes),
        4);
    mem_json_int("rss_after_free_woken_kib", rss_after_free_woken);
    mem_json_num("rss_per_live_woken", mem_ratio(rss_after_free_woken * 1024.0, (double)live_bytes),
                 4);
    mem_json_int("rss_all_freed_kib", rss_all_freed);
    mem_json_int("rss_all_freed_idle_kib", rss_all_freed_idle);
    mem_json_int("rss_all_freed_woken_kib", rss_all_freed_woken);
    mem_json_int("idle_ms", args.idle_ms);
    mem_json_num("alloc_seconds", alloc_seconds, 4);
    mem_json_num("free_seconds", free_seconds, 4);
    mem_json_end(&args, t0);
    return 0;
}
