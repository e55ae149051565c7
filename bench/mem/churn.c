/* obm-mem-churn: a server-like steady state, run long, watched for drift.
 *
 * A live set of 200,000 objects with a skewed size mix (80% uniform in
 * 16..128 bytes, 18% in 129..512, 2% in 513..8192) is filled first. Then
 * each step frees a random live object and allocates a new one, its size
 * drawn from the same mix, in its place. Every 10,000 steps a burst
 * allocates 20,000 extra objects (same mix), which are freed all at once,
 * in allocation order, 50,000 steps later (so up to five bursts, 100,000
 * objects, are live beside the live set). Every byte allocated is touched.
 * 20,000,000 steps (--quick: 2,000,000; --steps N). The full run takes
 * about 13 s under glibc on a 2-core machine (up to 22 s while the machine
 * is busy with other work) and 3.5..7 s under obm, jemalloc, mimalloc and
 * tcmalloc, so the step count was not scaled down. VmRSS is sampled with the elapsed seconds and
 * the live bytes after the fill (step 0), every 100,000 steps, and after the last step; --series
 * FILE writes those samples as CSV with the header "step,seconds,rss_kib,live_bytes".
 *
 *   obm-mem-churn [--quick] [--seed N] [--steps N] [--series FILE]
 *
 * Prints one JSON object on one line; sizes in KiB are from /proc/self/status
 * (VmRSS, VmHWM), bytes are the sizes asked of malloc:
 *   steps                 steps run
 *   seconds               wall time of the steps (the fill not included)
 *   ops_per_sec           steps / seconds (a step: one free and one malloc,
 *                         plus its share of the bursts)
 *   cpu_seconds           user + system CPU time of the steps (getrusage):
 *                         a check on "seconds" on a busy machine
 *   mallocs, mallocs_per_sec   every malloc of the steps and bursts (each
 *                         matched by a free, sooner or later)
 *   rss_final_kib         the last sample
 *   rss_max_kib           the largest sample
 *   rss_growth_kib        the last sample minus the sample at 10% of the run
 *                         (the last one at or before step steps/10): drift
 *   rss_at_10pct_kib      that sample
 *   live_bytes_final      requested bytes live at the end
 *   live_bytes_max        the largest live byte count of any sample
 *   rss_final_per_live    rss_final_kib * 1024 / live_bytes_final
 *   rss_baseline_kib      VmRSS at start, before anything is allocated
 *   rss_after_fill_kib    VmRSS once the live set is filled (step 0)
 *   fill_seconds          the fill
 *   rss_peak_kib          VmHWM after the last step (or the largest VmRSS
 *                         read, if higher: memutil.h)
 *   rss_all_freed_kib     VmRSS after everything is freed at the end
 *   live_objects, samples the live set's size, the number of samples
 * and, in every bench/mem program (memutil.h):
 *   quick, seed, harness_kib (the harness's own mmap'd arrays, resident all
 *   along and included in every RSS figure), ru_maxrss_kib (getrusage),
 *   wall_seconds, allocator (1 obm, 2 jemalloc, 3 mimalloc, 4 tcmalloc,
 *   5 TBB, 0 none of these: glibc).
 */
#include "memutil.h"

#define LIVE_OBJECTS 200000
#define BURST_EVERY  10000
#define BURST_COUNT  20000
#define BURST_LIFE   50000
#define BURST_SLOTS  (BURST_LIFE / BURST_EVERY)
#define SAMPLE_EVERY 100000

struct sample {
    long step;
    double seconds;
    long rss_kib;
    uint64_t live_bytes;
};

/* 80% 16..128, 18% 129..512, 2% 513..8192. */
static size_t draw_size(struct mem_rng *rng)
{
    uint64_t band = mem_rng_below(rng, 100);
    if (band < 80)
        return mem_rng_range(rng, 16, 128);
    if (band < 98)
        return mem_rng_range(rng, 129, 512);
    return mem_rng_range(rng, 513, 8192);
}

static void write_series(const char *path, const struct sample *s, size_t n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        mem_die("cannot write %s: %s", path, strerror(errno));
    fprintf(f, "step,seconds,rss_kib,live_bytes\n");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%ld,%.4f,%ld,%" PRIu64 "\n", s[i].step, s[i].seconds, s[i].rss_kib,
                s[i].live_bytes);
    if (fclose(f) != 0)
        mem_die("cannot write %s: %s", path, strerror(errno));
}

int main(int argc, char **argv)
{
    double t0 = mem_now();
    struct mem_args args = mem_parse_args(argc, argv, MEM_OPT_SERIES);
    long rss_baseline = mem_rss_kib();

    long steps = args.steps > 0 ? args.steps : args.quick ? 2000000 : 20000000;
    struct mem_rng rng;
    mem_rng_seed(&rng, args.seed);

    void **live = mem_harness_alloc(LIVE_OBJECTS * sizeof *live);
    uint16_t *live_size = mem_harness_alloc(LIVE_OBJECTS * sizeof *live_size);
    void **burst = mem_harness_alloc(BURST_SLOTS * BURST_COUNT * sizeof *burst);
    uint64_t burst_bytes[BURST_SLOTS] = {0};
    size_t max_samples = (size_t)(steps / SAMPLE_EVERY) + 2;
    struct sample *samples = mem_harness_alloc(max_samples * sizeof *samples);
    size_t nsamples = 0;

    uint64_t live_bytes = 0;
    double t = mem_now();
    for (size_t i = 0; i < LIVE_OBJECTS; i++) {
        size_t size = draw_size(&rng);
        live[i] = mem_alloc_touch(size);
        live_size[i] = (uint16_t)size;
        live_bytes += size;
    }
    double fill_seconds = mem_now() - t;
    long rss_after_fill = mem_rss_kib();

    uint64_t mallocs = 0;
    double start = mem_now();
    double cpu_start = mem_cpu_seconds();
    samples[nsamples++] = (struct sample){0, 0.0, rss_after_fill, live_bytes};
    for (long s = 1; s <= steps; s++) {
        size_t i = (size_t)mem_rng_below(&rng, LIVE_OBJECTS);
        free(live[i]);
        live_bytes -= live_size[i];
        size_t size = draw_size(&rng);
        live[i] = mem_alloc_touch(size);
        live_size[i] = (uint16_t)size;
        live_bytes += size;
        mallocs++;

        if (s % BURST_EVERY == 0) {
            /* This slot's burst, if any, was allocated BURST_LIFE steps ago. */
            void **b = burst + (size_t)(s / BURST_EVERY % BURST_SLOTS) * BURST_COUNT;
            uint64_t *bytes = &burst_bytes[s / BURST_EVERY % BURST_SLOTS];
            if (b[0] != NULL)
                for (size_t k = 0; k < BURST_COUNT; k++)
                    free(b[k]);
            live_bytes -= *bytes;
            *bytes = 0;
            for (size_t k = 0; k < BURST_COUNT; k++) {
                size = draw_size(&rng);
                b[k] = mem_alloc_touch(size);
                *bytes += size;
            }
            live_bytes += *bytes;
            mallocs += BURST_COUNT;
        }
        if (s % SAMPLE_EVERY == 0 || s == steps)
            samples[nsamples++] = (struct sample){s, mem_now() - start, mem_rss_kib(), live_bytes};
    }
    double seconds = mem_now() - start;
    double cpu_seconds = mem_cpu_seconds() - cpu_start;
    long rss_peak = mem_hwm_kib();

    const struct sample *last = &samples[nsamples - 1];
    const struct sample *at10 = &samples[0];
    long rss_max = 0;
    uint64_t live_max = 0;
    for (size_t k = 0; k < nsamples; k++) {
        if (samples[k].step <= steps / 10)
            at10 = &samples[k];
        if (samples[k].rss_kib > rss_max)
            rss_max = samples[k].rss_kib;
        if (samples[k].live_bytes > live_max)
            live_max = samples[k].live_bytes;
    }

    for (size_t i = 0; i < LIVE_OBJECTS; i++)
        free(live[i]);
    for (size_t slot = 0; slot < BURST_SLOTS; slot++)
        if (burst[slot * BURST_COUNT] != NULL)
            for (size_t k = 0; k < BURST_COUNT; k++)
                free(burst[slot * BURST_COUNT + k]);
    long rss_all_freed = mem_rss_kib();

    if (args.series != NULL)
        write_series(args.series, samples, nsamples);

    mem_json_begin();
    mem_json_int("steps", steps);
    mem_json_num("seconds", seconds, 4);
    mem_json_num("ops_per_sec", mem_ratio((double)steps, seconds), 1);
    mem_json_num("cpu_seconds", cpu_seconds, 4);
    mem_json_u64("mallocs", mallocs);
    mem_json_num("mallocs_per_sec", mem_ratio((double)mallocs, seconds), 1);
    mem_json_int("rss_final_kib", last->rss_kib);
    mem_json_int("rss_max_kib", rss_max);
    mem_json_int("rss_growth_kib", last->rss_kib - at10->rss_kib);
    mem_json_int("rss_at_10pct_kib", at10->rss_kib);
    mem_json_u64("live_bytes_final", last->live_bytes);
    mem_json_u64("live_bytes_max", live_max);
    mem_json_num("rss_final_per_live", mem_ratio(last->rss_kib * 1024.0, (double)last->live_bytes),
                 4);
    mem_json_int("rss_baseline_kib", rss_baseline);
    mem_json_int("rss_after_fill_kib", rss_after_fill);
    mem_json_num("fill_seconds", fill_seconds, 4);
    mem_json_int("rss_peak_kib", rss_peak);
    mem_json_int("rss_all_freed_kib", rss_all_freed);
    mem_json_int("live_objects", LIVE_OBJECTS);
    mem_json_int("samples", (long long)nsamples);
    mem_json_end(&args, t0);
    return 0;
}
