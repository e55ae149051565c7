/* obm-mem-pinning: how much memory 1% scattered survivors pin.
 *
 * Allocates 2,000,000 objects (--quick: 200,000) of sizes uniform in 8..512
 * bytes, touching every byte; frees 99% of them, in a random order, keeping
 * every 100th object by allocation order (objects 0, 100, 200, ...), so the
 * survivors are spread evenly over all the memory the heap took: each one
 * can hold a page, a pool, a slab or an arena alive. Sleeps (1 s; --idle-ms
 * N) and does a little allocation work, for the allocators that return
 * memory on a time decay (obm, jemalloc, mimalloc), which act on it only
 * when called. Then frees the survivors too, and sleeps and works again.
 *
 *   obm-mem-pinning [--quick] [--seed N] [--idle-ms N]
 *
 * Prints one JSON object on one line; sizes in KiB are from /proc/self/status
 * (VmRSS, VmHWM), bytes are the sizes asked of malloc:
 *   rss_baseline_kib        VmRSS at start, before anything is allocated
 *   rss_after_alloc_kib     VmRSS when all the objects are live
 *   rss_peak_kib            VmHWM after the 99% free (or the largest VmRSS
 *                           read, if higher: memutil.h)
 *   live_bytes              sum of the requested sizes of the survivors
 *   rss_pinned_kib          VmRSS right after the 99% free
 *   rss_per_live            rss_pinned_kib * 1024 / live_bytes
 *   rss_per_live_net        the same with rss_baseline_kib and harness_kib
 *                           taken off rss_pinned_kib first
 *   rss_pinned_frac         rss_pinned_kib / rss_after_alloc_kib: the share
 *                           of the full heap's footprint still resident
 *   rss_pinned_woken_kib    VmRSS after the idle pause and a little activity
 *                           (mem_wake) that follow the 99% free
 *   rss_per_live_woken      rss_pinned_woken_kib * 1024 / live_bytes
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
 *   alloc_seconds, free_seconds   the allocation loop, the 99% free loop
 * and, in every bench/mem program (memutil.h):
 *   quick, seed, harness_kib (the harness's own mmap'd arrays, resident all
 *   along and included in every RSS figure), ru_maxrss_kib (getrusage),
 *   wall_seconds, allocator (1 obm, 2 jemalloc, 3 mimalloc, 4 tcmalloc,
 *   5 TBB, 0 none of these: glibc).
 */
#include "memutil.h"

#define KEEP_EVERY 100

int main(int argc, char **argv)
{
    double t0 = mem_now();
    struct mem_args args = mem_parse_args(argc, argv, MEM_OPT_IDLE);
    long rss_baseline = mem_rss_kib();

    size_t n = args.quick ? 200000 : 2000000;
    size_t nkeep = (n + KEEP_EVERY - 1) / KEEP_EVERY;
    size_t nfree = n - nkeep;
    struct mem_rng rng;
    mem_rng_seed(&rng, args.seed);

    void **ptrs = mem_harness_alloc(n * sizeof *ptrs);
    uint16_t *sizes = mem_harness_alloc(n * sizeof *sizes);
    void **wake = mem_harness_alloc(MEM_WAKE_OBJECTS * sizeof *wake);
    uint32_t *order = mem_harness_alloc(nfree * sizeof *order);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        sizes[i] = (uint16_t)mem_rng_range(&rng, 8, 512);
        if (i % KEEP_EVERY != 0)
            order[k++] = (uint32_t)i;
    }
    mem_shuffle_u32(order, nfree, &rng);

    double alloc_seconds;
    uint64_t peak_bytes = mem_fill(ptrs, sizes, n, &alloc_seconds);
    long rss_after_alloc = mem_rss_kib();

    double free_seconds = mem_free_listed(ptrs, order, nfree);
    long rss_pinned = mem_rss_kib();
    long rss_peak = mem_hwm_kib();

    uint64_t live_bytes = 0;
    for (size_t i = 0; i < n; i += KEEP_EVERY)
        live_bytes += sizes[i];
    mem_sleep_ms(args.idle_ms);
    mem_wake(wake, &rng);
    long rss_pinned_woken = mem_rss_kib();

    for (size_t i = 0; i < n; i += KEEP_EVERY)
        free(ptrs[i]);
    long rss_all_freed = mem_rss_kib();
    mem_sleep_ms(args.idle_ms);
    long rss_all_freed_idle = mem_rss_kib();
    mem_wake(wake, &rng);
    long rss_all_freed_woken = mem_rss_kib();

    mem_json_begin();
    mem_json_int("objects", (long long)n);
    mem_json_int("survivors", (long long)nkeep);
    mem_json_u64("peak_bytes", peak_bytes);
    mem_json_u64("live_bytes", live_bytes);
    mem_json_int("rss_baseline_kib", rss_baseline);
    mem_json_int("rss_after_alloc_kib", rss_after_alloc);
    mem_json_int("rss_peak_kib", rss_peak);
    mem_json_int("rss_pinned_kib", rss_pinned);
    mem_json_num("rss_per_live", mem_ratio(rss_pinned * 1024.0, (double)live_bytes), 4);
    mem_json_num(
        "rss_per_live_net",
        mem_ratio((rss_pinned - rss_baseline - mem_harness_kib()) * 1024.0, (double)live_bytes), 4);
    mem_json_num("rss_pinned_frac", mem_ratio((double)rss_pinned, (double)rss_after_alloc), 4);
    mem_json_int("rss_pinned_woken_kib", rss_pinned_woken);
    mem_json_num("rss_per_live_woken", mem_ratio(rss_pinned_woken * 1024.0, (double)live_bytes), 4);
    mem_json_int("rss_all_freed_kib", rss_all_freed);
    mem_json_int("rss_all_freed_idle_kib", rss_all_freed_idle);
    mem_json_int("rss_all_freed_woken_kib", rss_all_freed_woken);
    mem_json_int("idle_ms", args.idle_ms);
    mem_json_num("alloc_seconds", alloc_seconds, 4);
    mem_json_num("free_seconds", free_seconds, 4);
    mem_json_end(&args, t0);
    return 0;
}
