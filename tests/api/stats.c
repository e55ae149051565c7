/* The statistics API: obm_stats_get, obm_stats_diff, obm_stats_print and
 * obm_visit, through libobm's obm_* functions.
 *
 *   stats_exact          a fresh thread's heap allocates 1008 x 16 B (4
 *                        pools, filled exactly), 300 x 64 B (5 pools),
 *                        301 x 80 B (7 pools, the last holding one block)
 *                        and 500 x 512 B (72 pools, more than an arena); for
 *                        each class: pools, blocks in use, free and remote,
 *                        mallocs, frees, remote frees, block size; totals:
 *                        pools in use, full, cached, taken, returned, the
 *                        five bytes_* fields (in use, free blocks, empty
 *                        pools, 64 B per pool header, the per-class tail per
 *                        pool), arenas mapped (from the pools the arenas had
 *                        free). Then a known subset is freed (half of the
 *                        16 B, all the 80 B: six pools go to the heap's
 *                        cache, the last stays as the class's only pool),
 *                        main frees 10 of the 64 B blocks (remote: counted
 *                        in blocks_remote, not yet in frees), then the rest;
 *                        once the thread has ended (its heap abandoned: the
 *                        remote blocks collected, cache and kept pools given
 *                        back), every level is back to the baseline, the
 *                        arenas included. Every snapshot is also checked for
 *                        the sums that always hold (below).
 *   partial_free_keeps_only_used_arenas   CHECKLIST 38: a thread's heap makes
 *                        10,000 blocks of 1 B..16 KiB (3 in 4 small) and frees
 *                        all but every 13th. obm_visit then accounts for every
 *                        arena: its blocks in use are exactly the live blocks
 *                        inside it, and one without a live block is the spare
 *                        (at most one) or is kept only by an empty pool the
 *                        heap still holds (in its cache, at most min(8, a
 *                        quarter of its pools in service), or the one pool a
 *                        class keeps); arenas_released_total grew by what
 *                        arenas_current fell. Once the thread has ended (no
 *                        cache, no kept pools), every arena but the spare
 *                        holds a live block; once main has freed the rest,
 *                        the arenas are back to the baseline. Σ class
 *                        blocks_in_use x block_size = bytes_in_use throughout.
 *   large_blocks         malloc, calloc, posix_memalign, aligned_alloc and
 *                        memalign beyond 512 B or 16-byte alignment move
 *                        large_allocs_current and large_allocs_total, and
 *                        large_bytes_current is the backing allocator's own
 *                        count (expect_backing_count); aligned_alloc(16, 100) does not;
 *                        realloc large -> large keeps the current count (and
 *                        counts one request), large -> small and small ->
 *                        large move both sides; freeing returns every level.
 *   errors               obm_stats_get(NULL) and a wrong .size give EINVAL and
 *                        leave the struct alone; obm_stats_print with opts
 *                        other than "", "J", "M" gives EINVAL without
 *                        writing; obm_visit(NULL, ...) gives EINVAL.
 *   diff                 obm_stats_diff over every word of two made-up
 *                        structs: after - before (a level that fell wraps and
 *                        reads back negative as ptrdiff_t), block_size,
 *                        version, arenas_highwater (and size) copied from
 *                        after; delta may be before, after or both; and over
 *                        two real snapshots around 3 mallocs.
 *   visit                records come as an arena then its 64 pools, in
 *                        mapping order, pool i at arena + i x 4096, every
 *                        field consistent with the record's kind and state;
 *                        one arena record per arena mapped; per class, the
 *                        pools' used sum to blocks_in_use (and pools, free,
 *                        remote, full, cached, untouched agree with
 *                        obm_stats_get); a live block's pool is found with
 *                        its class. A non-zero return stops the walk and is
 *                        returned; a callback that allocates (until a new
 *                        arena is mapped), prints a report and visits again
 *                        neither deadlocks nor changes the outer snapshot.
 *   text_report          the "" report through a writer that appends into a
 *                        static buffer: the banner, every class row against
 *                        obm_stats_get (and the right pools and blocks for
 *                        100 blocks of 224 B), the arena lines, the byte
 *                        ledger whose Total is bytes_mapped, numbers grouped
 *                        with commas; a writer that allocates through obm;
 *                        write == NULL goes to stderr (captured in a file).
 *   report_formats       "J" holds every field of obm_stats_get's snapshot
 *                        once, with its value (names from a list kept here,
 *                        which covers the struct word for word); "M" is an
 *                        SVG document with one <g class="arena"> per arena,
 *                        64 class="pool ..." cells in each, and as many
 *                        "pool used"/"full"/"c"/"u"/"e" cells as there are
 *                        pools in use, full, cached, untouched and free.
 *                        `stats_obm --dump DIR` writes both reports and the
 *                        struct as JSON for tests/api/stats_output.sh, which
 *                        checks them with python3 and xmllint.
 *   thread_exit_live_blocks   CHECKLIST 29: sequential threads each return a
 *                        live 32 B block that main frees: in-use bytes, pools
 *                        and arenas do not grow, at most one heap is made.
 *   stats_under_threads  CHECKLIST 41: 8 threads allocate and free random
 *                        blocks (1 in 16 large, some of them 64-aligned), a
 *                        quarter of their steps swapping a block through a
 *                        shared mailbox and freeing the one that comes back,
 *                        another thread's, while main takes snapshots for
 *                        1.5 s: each one's sums hold (below) and no total
 *                        goes back; every 4th snapshot main also walks with
 *                        obm_visit (records well-formed), every other 4th it
 *                        prints one of the three reports in turn (each
 *                        consistent in itself). Once
 *                        the threads have ended, every count is exact again:
 *                        the mallocs are the threads' small requests, the
 *                        large requests theirs, nothing is left in use, and
 *                        no remote block is left uncollected.
 *   fork_and_cancel      CHECKLIST 41: with 4 threads allocating, children
 *                        forked by main take a snapshot, walk, print and
 *                        allocate (no lock left held over fork); a thread
 *                        cancelled inside obm_stats_print's writer leaves no
 *                        lock held either (not under ASan: see there).
 *
 * Sums that hold for every snapshot, threads running or not: the five
 * bytes_* fields add up to bytes_mapped = 256 KiB x arenas_current; pools in
 * use + empty = 64 x arenas_current; per class blocks in use + free = pools x
 * blocks per pool ((4096 - 64) / size) and remote <= free; the class sums
 * give pools_in_use and the bytes fields; full <= in use; cached +
 * untouched <= empty; arenas_current = allocated - released <= high-water.
 * And in a quiet process: per class mallocs - frees = in use + remote,
 * pools taken - returned = pools in use, and obm_visit agrees with
 * obm_stats_get record for record.
 *
 * Only through libobm, with no preloaded twin: the cases count every block,
 * pool and arena exactly, and a preloaded program's own mallocs (stdio,
 * cmocka, the dynamic loader) would move those counts between any two
 * snapshots; the drop-in shares this code (libobmcore). The work of the
 * threaded cases shrinks under valgrind (found by its preload library in
 * LD_PRELOAD), ThreadSanitizer and AddressSanitizer; TESTS_SCALE (a
 * factor, 1 = full size) overrides. Threads never call cmocka (its asserts
 * longjmp): the first failure is recorded, every thread stops, and main
 * reports it. */
#include "api.h"
#define VALGRIND_SCALE 0.25
#include "threaded.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>

/* ---- geometry, computed here rather than taken from the library ---- */

#define POOL_HEADER     64
#define POOLS_PER_ARENA (OBM_ARENA_SIZE / OBM_POOL_SIZE)
#define CACHE_MAX       8   /* empty small pools a heap may keep */
#define RUN_CACHE_PAGES 256 /* and pages of empty medium pools */

/* Small classes: 16 (c + 1) bytes in a page. Medium classes 32..55: four
 * per doubling from 512, 2^k + j 2^(k-2) for j = 1..4, in pools of 4
 * pages for k = 9, twice as many each doubling up to 64 (an arena). */
static size_t bsize(unsigned c)
{
    if (c < OBM_NSMALL)
        return 16 * ((size_t)c + 1);
    unsigned k = 9 + (c - OBM_NSMALL) / 4, j = 1 + (c - OBM_NSMALL) % 4;
    return ((size_t)1 << k) + j * ((size_t)1 << (k - 2));
}

static size_t pool_bytes(unsigned c)
{
    if (c < OBM_NSMALL)
        return OBM_POOL_SIZE;
    size_t pages = (size_t)4 << ((c - OBM_NSMALL) / 4);
    return (pages < POOLS_PER_ARENA ? pages : POOLS_PER_ARENA) * OBM_POOL_SIZE;
}

/* Blocks per pool of class c. */
static size_t bpp(unsigned c)
{
    return (pool_bytes(c) - POOL_HEADER) / bsize(c);
}

/* The tail of a pool of class c too small for one more block. */
static size_t tail(unsigned c)
{
    return pool_bytes(c) - POOL_HEADER - bpp(c) * bsize(c);
}

static unsigned class_of(size_t n)
{
    if (n <= OBM_SMALL_MAX)
        return n == 0 ? 0 : (unsigned)((n - 1) / 16);
    unsigned c = OBM_NSMALL;
    while (bsize(c) < n)
        c++;
    return c;
}

static size_t ceil_div(size_t a, size_t b)
{
    return (a + b - 1) / b;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* ---- checks on one snapshot ---- */

#define EXPECT_EQ(got, want)                                                                       \
    do {                                                                                           \
        size_t got_ = (size_t)(got), want_ = (size_t)(want);                                       \
        if (got_ != want_)                                                                         \
            fail_msg("%s = %zu, expected %s = %zu", #got, got_, #want, want_);                     \
    } while (0)

/* large_bytes_current is the backing allocator's own count, read when the
 * statistics are taken: here the process's malloc, through glibc's
 * mallinfo2 (in use and mmapped bytes; a malloc that replaces glibc's, as
 * ASan's or memcheck's, answers for itself). Called right after the
 * statistics were taken, with no malloc in between. */
static void expect_backing_count(const obm_stats_t *s)
{
    struct mallinfo2 m = mallinfo2();
    EXPECT_EQ(s->large_bytes_current, m.uordblks + m.hblkhd);
}

/* In a function with `char *err, size_t len`: describe and return false. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(err, len, __VA_ARGS__);                                                       \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

/* The sums every snapshot satisfies, threads running or not. */
static bool stats_consistent(const obm_stats_t *s, char *err, size_t len)
{
    REQUIRE(s->size == sizeof *s, "size %zu", s->size);
    REQUIRE(s->version == OBM_STATS_VERSION, "version %zu", s->version);
    REQUIRE(s->bytes_mapped == s->arenas_current * OBM_ARENA_SIZE,
            "bytes_mapped %zu, arenas_current %zu", s->bytes_mapped, s->arenas_current);
    size_t ledger = s->bytes_in_use + s->bytes_free_blocks + s->bytes_empty_pools +
                    s->bytes_pool_headers + s->bytes_quantization;
    REQUIRE(
        ledger == s->bytes_mapped,
        "in use %zu + free blocks %zu + empty pools %zu + headers %zu + quantization %zu = %zu, "
        "not bytes_mapped %zu",
        s->bytes_in_use, s->bytes_free_blocks, s->bytes_empty_pools, s->bytes_pool_headers,
        s->bytes_quantization, ledger, s->bytes_mapped);
    REQUIRE(s->pages_in_use + s->pools_empty == POOLS_PER_ARENA * s->arenas_current,
            "pages in use %zu + empty pools %zu != 64 x %zu arenas", s->pages_in_use,
            s->pools_empty, s->arenas_current);
    REQUIRE(s->pools_in_use <= s->pages_in_use, "pools_in_use %zu > pages_in_use %zu",
            s->pools_in_use, s->pages_in_use);
    REQUIRE(s->pools_full <= s->pools_in_use, "pools_full %zu > pools_in_use %zu", s->pools_full,
            s->pools_in_use);
    REQUIRE(s->pools_cached + s->pools_untouched + s->pools_purged <= s->pools_empty,
            "pools cached %zu + untouched %zu + purged %zu > empty %zu", s->pools_cached,
            s->pools_untouched, s->pools_purged, s->pools_empty);
    REQUIRE(s->bytes_purged == OBM_POOL_SIZE * s->pools_purged, "bytes_purged %zu",
            s->bytes_purged);
    REQUIRE(s->bytes_resident ==
                s->bytes_mapped - OBM_POOL_SIZE * (s->pools_purged + s->pools_untouched),
            "bytes_resident %zu", s->bytes_resident);
    REQUIRE(s->pools_purged <= s->pools_purged_total, "pools_purged %zu > ever purged %zu",
            s->pools_purged, s->pools_purged_total);
    REQUIRE(s->purges_total >= (s->pools_purged_total + POOLS_PER_ARENA - 1) / POOLS_PER_ARENA,
            "%zu purge calls for %zu pools", s->purges_total, s->pools_purged_total);
    REQUIRE(s->bytes_empty_pools == OBM_POOL_SIZE * s->pools_empty, "bytes_empty_pools %zu",
            s->bytes_empty_pools);
    REQUIRE(s->bytes_pool_headers == POOL_HEADER * s->pools_in_use, "bytes_pool_headers %zu",
            s->bytes_pool_headers);
    REQUIRE(s->arenas_current <= s->arenas_highwater, "arenas_current %zu > high-water %zu",
            s->arenas_current, s->arenas_highwater);
    REQUIRE(s->arenas_highwater <= s->arenas_allocated_total,
            "arenas high-water %zu > allocated total %zu", s->arenas_highwater,
            s->arenas_allocated_total);
    REQUIRE(s->arenas_allocated_total - s->arenas_released_total == s->arenas_current,
            "arenas allocated %zu - released %zu != current %zu", s->arenas_allocated_total,
            s->arenas_released_total, s->arenas_current);
    REQUIRE(s->large_allocs_current <= s->large_allocs_total, "large current %zu > total %zu",
            s->large_allocs_current, s->large_allocs_total);
    REQUIRE(s->heaps_live + s->heaps_abandoned <= s->heaps_created,
            "heaps live %zu + abandoned %zu > created %zu", s->heaps_live, s->heaps_abandoned,
            s->heaps_created);
    size_t pools = 0, pages = 0, in_use = 0, free_bytes = 0, quant = 0;
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        const obm_class_stats_t *k = &s->classes[c];
        pages += k->pools * pool_bytes(c) / OBM_POOL_SIZE;
        REQUIRE(k->block_size == bsize(c), "class %u: block_size %zu", c, k->block_size);
        REQUIRE(k->blocks_in_use + k->blocks_free == k->pools * bpp(c),
                "class %u: in use %zu + free %zu != %zu pools x %zu", c, k->blocks_in_use,
                k->blocks_free, k->pools, bpp(c));
        REQUIRE(k->blocks_remote <= k->blocks_free, "class %u: remote %zu > free %zu", c,
                k->blocks_remote, k->blocks_free);
        pools += k->pools;
        in_use += k->blocks_in_use * bsize(c);
        free_bytes += k->blocks_free * bsize(c);
        quant += k->pools * tail(c);
    }
    REQUIRE(pools == s->pools_in_use, "class pools sum to %zu, pools_in_use %zu", pools,
            s->pools_in_use);
    REQUIRE(pages == s->pages_in_use, "class pools' pages sum to %zu, pages_in_use %zu", pages,
            s->pages_in_use);
    REQUIRE(in_use == s->bytes_in_use, "class blocks in use sum to %zu bytes, bytes_in_use %zu",
            in_use, s->bytes_in_use);
    REQUIRE(free_bytes == s->bytes_free_blocks,
            "class free blocks sum to %zu bytes, bytes_free_blocks %zu", free_bytes,
            s->bytes_free_blocks);
    REQUIRE(quant == s->bytes_quantization, "class tails sum to %zu bytes, bytes_quantization %zu",
            quant, s->bytes_quantization);
    return true;
}

/* What holds as well when no other thread runs. */
static bool stats_quiet(const obm_stats_t *s, char *err, size_t len)
{
    if (!stats_consistent(s, err, len))
        return false;
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        const obm_class_stats_t *k = &s->classes[c];
        REQUIRE(k->frees <= k->mallocs && k->remote_frees <= k->frees,
                "class %u: mallocs %zu, frees %zu, remote frees %zu", c, k->mallocs, k->frees,
                k->remote_frees);
        REQUIRE(k->mallocs - k->frees == k->blocks_in_use + k->blocks_remote,
                "class %u: mallocs %zu - frees %zu != in use %zu + remote %zu", c, k->mallocs,
                k->frees, k->blocks_in_use, k->blocks_remote);
    }
    REQUIRE(s->pools_taken_total - s->pools_returned_total == s->pools_in_use,
            "pools taken %zu - returned %zu != in use %zu", s->pools_taken_total,
            s->pools_returned_total, s->pools_in_use);
    return true;
}

/* The totals of `later` are none below those of `earlier`. */
static bool stats_monotonic(const obm_stats_t *earlier, const obm_stats_t *later, char *err,
                            size_t len)
{
#define MONO(f)                                                                                    \
    REQUIRE(later->f >= earlier->f, #f " went back from %zu to %zu", earlier->f, later->f)
    MONO(arenas_highwater);
    MONO(arenas_allocated_total);
    MONO(arenas_released_total);
    MONO(large_allocs_total);
    MONO(heaps_created);
    MONO(heaps_adopted);
    MONO(pools_taken_total);
    MONO(pools_returned_total);
    MONO(slow_mallocs_total);
    MONO(slow_frees_total);
    MONO(carves_total);
    MONO(remote_collects_total);
    MONO(pools_used_to_full_total);
    MONO(pools_full_to_used_total);
    MONO(pools_emptied_total);
    MONO(pools_from_arenas_total);
    MONO(pools_to_arenas_total);
    MONO(errors_invalid_pointer);
    MONO(errors_double_free);
    MONO(errors_corrupted_list);
    MONO(errors_write_after_free);
    MONO(errors_overflow);
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        MONO(classes[c].mallocs);
        MONO(classes[c].frees);
        MONO(classes[c].remote_frees);
    }
#undef MONO
    return true;
}

/* A snapshot in a quiet process, checked. */
static obm_stats_t stats(void)
{
    obm_stats_t s = {.size = sizeof s};
    assert_int_equal(obm_stats_get(&s), 0);
    char err[512];
    if (!stats_quiet(&s, err, sizeof err))
        fail_msg("inconsistent snapshot: %s", err);
    return s;
}

static size_t sum_remote(const obm_stats_t *s)
{
    size_t n = 0;
    for (unsigned c = 0; c < OBM_NCLASSES; c++)
        n += s->classes[c].blocks_remote;
    return n;
}

/* ---- obm_visit: records into a static array (no allocation, so the
 * process stays quiet and a forked child can use it too) ---- */

#define REGIONS_MAX ((size_t)(POOLS_PER_ARENA + 1) * 1024)

struct regions {
    obm_region_t r[REGIONS_MAX];
    size_t n;
    bool overflow;
};

static struct regions regions;

static int collect_region(const obm_region_t *r, void *arg)
{
    struct regions *v = arg;
    if (v->n == REGIONS_MAX) {
        v->overflow = true;
        return 0;
    }
    v->r[v->n++] = *r;
    return 0;
}

static bool visit_all(struct regions *v, char *err, size_t len)
{
    v->n = 0;
    v->overflow = false;
    int rc = obm_visit(collect_region, v);
    REQUIRE(rc == 0, "obm_visit returned %d", rc);
    REQUIRE(!v->overflow, "more than %zu regions", REGIONS_MAX);
    return true;
}

static bool is_serving(const obm_region_t *p)
{
    return p->state == OBM_POOL_USED || p->state == OBM_POOL_FULL;
}

/* The records, on their own: groups of an arena and its 64 pools, every
 * field as its kind and state say. Holds while threads run. */
static bool regions_well_formed(const struct regions *v, char *err, size_t len)
{
    REQUIRE(v->n % (POOLS_PER_ARENA + 1) == 0, "%zu records: not groups of 65", v->n);
    size_t spares = 0;
    for (size_t a = 0; a < v->n; a += POOLS_PER_ARENA + 1) {
        const obm_region_t *ar = &v->r[a];
        uintptr_t base = (uintptr_t)ar->address;
        REQUIRE(ar->kind == OBM_REGION_ARENA, "record %zu: kind %d, expected an arena", a,
                ar->kind);
        REQUIRE(ar->size == OBM_ARENA_SIZE && base % OBM_ARENA_SIZE == 0 && base != 0,
                "arena %#" PRIxPTR ": size %zu", base, ar->size);
        REQUIRE(ar->capacity == POOLS_PER_ARENA && ar->size_class == -1 && ar->block_size == 0 &&
                    ar->remote == 0,
                "arena %#" PRIxPTR ": capacity %zu, class %d, block size %zu, remote %zu", base,
                ar->capacity, ar->size_class, ar->block_size, ar->remote);
        if (a > 0)
            REQUIRE(ar->arena_serial > v->r[a - POOLS_PER_ARENA - 1].arena_serial,
                    "arena %#" PRIxPTR ": serial %zu after %zu (not in mapping order)", base,
                    ar->arena_serial, v->r[a - POOLS_PER_ARENA - 1].arena_serial);
        size_t serving = 0, cached = 0;
        const obm_region_t *medium = NULL; /* the medium pool whose pages these are */
        size_t medium_end = 0;
        for (size_t i = 0; i < POOLS_PER_ARENA; i++) {
            const obm_region_t *p = &v->r[a + 1 + i];
            REQUIRE(p->kind == OBM_REGION_POOL, "record %zu: kind %d, expected a pool", a + 1 + i,
                    p->kind);
            size_t want_size = OBM_POOL_SIZE;
            if (is_serving(p) && p->size_class >= 0 && p->size_class < OBM_NCLASSES)
                want_size = pool_bytes((unsigned)p->size_class);
            REQUIRE(p->address == (const void *)(base + i * OBM_POOL_SIZE) &&
                        p->size == want_size && p->arena_serial == ar->arena_serial,
                    "pool %zu of arena %#" PRIxPTR ": at %p, size %zu, serial %zu", i, base,
                    p->address, p->size, p->arena_serial);
            /* A medium pool's later pages repeat its numbers, and nothing else is there. */
            REQUIRE((i < medium_end) == (p->state == OBM_POOL_CONTINUED),
                    "pool %p: state %d, %s a medium pool's pages", p->address, p->state,
                    i < medium_end ? "within" : "outside");
            if (p->state == OBM_POOL_CONTINUED) {
                REQUIRE(p->size_class == medium->size_class &&
                            p->block_size == medium->block_size && p->used == medium->used &&
                            p->capacity == medium->capacity && p->remote == medium->remote,
                        "page %p of the medium pool at %p: class %d, used %zu/%zu", p->address,
                        medium->address, p->size_class, p->used, p->capacity);
                continue;
            }
            if (is_serving(p)) {
                REQUIRE(p->size_class >= 0 && p->size_class < OBM_NCLASSES, "pool %p: class %d",
                        p->address, p->size_class);
                unsigned c = (unsigned)p->size_class;
                REQUIRE(p->block_size == bsize(c) && p->capacity == bpp(c),
                        "pool %p of class %u: block size %zu, capacity %zu", p->address, c,
                        p->block_size, p->capacity);
                REQUIRE(p->used <= p->capacity && p->remote <= p->capacity - p->used,
                        "pool %p: used %zu, remote %zu of %zu", p->address, p->used, p->remote,
                        p->capacity);
                REQUIRE((p->state == OBM_POOL_FULL) == (p->used == p->capacity),
                        "pool %p: state %d with %zu of %zu used", p->address, p->state, p->used,
                        p->capacity);
                size_t pages = p->size / OBM_POOL_SIZE;
                REQUIRE(i % pages == 0 && i + pages <= POOLS_PER_ARENA,
                        "pool %p of %zu pages: not aligned to its size in its arena", p->address,
                        pages);
                if (pages > 1) {
                    medium = p;
                    medium_end = i + pages;
                }
                serving++;
            } else {
                REQUIRE(p->state == OBM_POOL_EMPTY || p->state == OBM_POOL_CACHED ||
                            p->state == OBM_POOL_UNTOUCHED,
                        "pool %p: state %d", p->address, p->state);
                REQUIRE(p->size_class == -1 && p->block_size == 0 && p->capacity == 0 &&
                            p->used == 0 && p->remote == 0,
                        "pool %p (state %d): class %d, block size %zu, used %zu/%zu, remote %zu",
                        p->address, p->state, p->size_class, p->block_size, p->used, p->capacity,
                        p->remote);
                cached += p->state == OBM_POOL_CACHED;
            }
        }
        REQUIRE(ar->used == serving, "arena %#" PRIxPTR ": used %zu, %zu pools serving", base,
                ar->used, serving);
        int want = serving > 0 ? OBM_ARENA_USED : cached > 0 ? OBM_ARENA_EMPTY : OBM_ARENA_SPARE;
        REQUIRE(ar->state == want,
                "arena %#" PRIxPTR ": state %d with %zu pools serving, %zu cached (expected %d)",
                base, ar->state, serving, cached, want);
        spares += ar->state == OBM_ARENA_SPARE;
    }
    /* Every other entirely free arena has been unmapped. */
    REQUIRE(spares <= 1, "%zu arenas with every pool free (at most one spare)", spares);
    return true;
}

/* Record for record, the walk and the snapshot agree (quiet process). */
static bool regions_match_stats(const struct regions *v, const obm_stats_t *s, char *err,
                                size_t len)
{
    if (!regions_well_formed(v, err, len))
        return false;
    REQUIRE(v->n == (POOLS_PER_ARENA + 1) * s->arenas_current,
            "%zu records for %zu arenas (expected 65 each)", v->n, s->arenas_current);
    obm_class_stats_t k[OBM_NCLASSES];
    memset(k, 0, sizeof k);
    size_t full = 0, empty = 0, cached = 0, untouched = 0, purged = 0;
    for (size_t i = 0; i < v->n; i++) {
        const obm_region_t *p = &v->r[i];
        if (p->kind != OBM_REGION_POOL || p->state == OBM_POOL_CONTINUED)
            continue; /* a medium pool is counted at its first page */
        if (is_serving(p)) {
            obm_class_stats_t *kc = &k[p->size_class];
            kc->pools++;
            kc->blocks_in_use += p->used;
            kc->blocks_free += p->capacity - p->used;
            kc->blocks_remote += p->remote;
            full += p->state == OBM_POOL_FULL;
        } else {
            empty++;
            cached += p->state == OBM_POOL_CACHED;
            untouched += p->state == OBM_POOL_UNTOUCHED;
            purged += p->state == OBM_POOL_PURGED;
        }
    }
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        const obm_class_stats_t *sc = &s->classes[c];
        REQUIRE(k[c].pools == sc->pools && k[c].blocks_in_use == sc->blocks_in_use &&
                    k[c].blocks_free == sc->blocks_free && k[c].blocks_remote == sc->blocks_remote,
                "class %u: visit counts %zu pools, %zu used, %zu free, %zu remote; stats %zu, %zu, "
                "%zu, %zu",
                c, k[c].pools, k[c].blocks_in_use, k[c].blocks_free, k[c].blocks_remote, sc->pools,
                sc->blocks_in_use, sc->blocks_free, sc->blocks_remote);
    }
    REQUIRE(full == s->pools_full && empty == s->pools_empty && cached == s->pools_cached &&
                untouched == s->pools_untouched && purged == s->pools_purged,
            "visit counts %zu full, %zu empty, %zu cached, %zu untouched, %zu purged; stats %zu, "
            "%zu, %zu, %zu, %zu",
            full, empty, cached, untouched, purged, s->pools_full, s->pools_empty, s->pools_cached,
            s->pools_untouched, s->pools_purged);
    return true;
}

/* A snapshot and a walk of the same quiet moment, checked against each
 * other; the records are left in `regions`. */
static obm_stats_t stats_and_regions(void)
{
    char err[512];
    obm_stats_t s = stats();
    if (!visit_all(&regions, err, sizeof err) ||
        !regions_match_stats(&regions, &s, err, sizeof err))
        fail_msg("obm_visit: %s", err);
    return s;
}

static size_t count_arenas(const struct regions *v, int state)
{
    size_t n = 0;
    for (size_t i = 0; i < v->n; i += POOLS_PER_ARENA + 1)
        n += v->r[i].state == state;
    return n;
}

/* ---- report capture: a writer into a static buffer (no allocation) ---- */

struct capture {
    char buf[4 << 20];
    size_t len, calls;
    bool overflow, empty_piece;
};

static struct capture cap;

static void capture_write(void *opaque, const char *text)
{
    struct capture *c = opaque;
    size_t n = strlen(text);
    c->calls++;
    if (n == 0)
        c->empty_piece = true;
    if (c->len + n >= sizeof c->buf) {
        c->overflow = true;
        return;
    }
    memcpy(c->buf + c->len, text, n + 1);
    c->len += n;
}

static int capture_report(struct capture *c, const char *opts)
{
    c->len = c->calls = 0;
    c->overflow = c->empty_piece = false;
    c->buf[0] = '\0';
    return obm_stats_print(capture_write, c, opts);
}

/* The line of `report` that starts with `label` followed by the padding
 * and "=", or NULL. */
static const char *report_line(const char *report, const char *label)
{
    size_t n = strlen(label);
    for (const char *line = report; line != NULL && *line != '\0';) {
        if (strncmp(line, label, n) == 0) {
            const char *q = line + n;
            while (*q == ' ')
                q++;
            if (*q == '=')
                return line;
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return NULL;
}

/* The value of a "label = 1,234" line, its digits as printed in raw. */
static bool report_value(const char *report, const char *label, size_t *value, char *raw,
                         size_t rawlen)
{
    const char *line = report_line(report, label);
    if (line == NULL)
        return false;
    const char *q = strchr(line, '=') + 1;
    while (*q == ' ')
        q++;
    size_t v = 0, n = 0;
    for (; (*q >= '0' && *q <= '9') || *q == ','; q++) {
        if (n + 1 < rawlen)
            raw[n++] = *q;
        if (*q != ',')
            v = v * 10 + (size_t)(*q - '0');
    }
    raw[n] = '\0';
    *value = v;
    return n > 0 && (*q == '\n' || *q == '\0');
}

/* v with a comma every three digits, as the text report prints it. */
static void grouped(size_t v, char *out, size_t len)
{
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%zu", v), k = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0 && (size_t)k + 1 < len)
            out[k++] = ',';
        if ((size_t)k + 1 < len)
            out[k++] = digits[i];
    }
    out[k] = '\0';
}

static size_t count_substr(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + len, needle))
        n++;
    return n;
}

/* A text report's own sums: Total is the N arenas x 262144 line. */
static bool text_consistent(const char *report, char *err, size_t len)
{
    char raw[64];
    size_t total, current;
    REQUIRE(strstr(report, "Small block threshold = 512, in 32 size classes; medium blocks up "
                           "to 32768, in 24 more.\n") != NULL,
            "no banner");
    REQUIRE(report_value(report, "Total", &total, raw, sizeof raw), "no Total line");
    REQUIRE(report_value(report, "# arenas allocated current", &current, raw, sizeof raw),
            "no arenas line");
    const char *m = strstr(report, " arenas * 262144 bytes/arena");
    REQUIRE(m != NULL, "no bytes/arena line");
    const char *start = m;
    while (start > report && start[-1] != '\n')
        start--;
    size_t label_n = strtoul(start, NULL, 10), mapped;
    char label[64];
    snprintf(label, sizeof label, "%zu arenas * 262144 bytes/arena", label_n);
    REQUIRE(report_value(report, label, &mapped, raw, sizeof raw), "no value for '%s'", label);
    REQUIRE(label_n == current && mapped == current * OBM_ARENA_SIZE && total == mapped,
            "%zu arenas current, '%zu arenas' mapping %zu bytes, Total %zu", current, label_n,
            mapped, total);
    return true;
}

/* A JSON report's value for "name" (the first one: top-level fields come
 * before "classes"). */
static bool json_value(const char *report, const char *name, size_t *value)
{
    char key[64];
    snprintf(key, sizeof key, "\"%s\": ", name);
    const char *p = strstr(report, key);
    if (p == NULL)
        return false;
    char *end;
    *value = strtoull(p + strlen(key), &end, 10);
    return end != p + strlen(key);
}

static bool json_consistent(const char *report, char *err, size_t len)
{
    size_t arenas, mapped, n = strlen(report);
    REQUIRE(n > 4 && report[0] == '{' && strcmp(report + n - 2, "}\n") == 0, "not one JSON object");
    REQUIRE(json_value(report, "arenas_current", &arenas) &&
                json_value(report, "bytes_mapped", &mapped) && mapped == arenas * OBM_ARENA_SIZE,
            "arenas_current and bytes_mapped missing or inconsistent");
    REQUIRE(count_substr(report, "\"block_size\": ") == OBM_NCLASSES, "not %d classes",
            OBM_NCLASSES);
    return true;
}

/* The map's cells: 64 per arena group. Returns the arenas counted. */
static bool map_consistent(const char *report, size_t *arenas, char *err, size_t len)
{
    size_t n = strlen(report);
    REQUIRE(strstr(report, "<svg") != NULL && n > 7 && strcmp(report + n - 7, "</svg>\n") == 0,
            "not an SVG document");
    *arenas = count_substr(report, "<g class=\"arena\"");
    size_t cells = count_substr(report, "class=\"pool ") + count_substr(report, "class=\"pool\"");
    REQUIRE(cells == POOLS_PER_ARENA * *arenas, "%zu pool cells for %zu arena groups", cells,
            *arenas);
    return true;
}

/* ---- a worker thread that runs steps on main's behalf, so that its heap
 * can be abandoned (ended) while main keeps its own ---- */

typedef void (*job_fn)(void);

static struct {
    pthread_t thread;
    sem_t go, done;
    job_fn job;
} worker;

static void *worker_main(void *arg)
{
    (void)arg;
    for (;;) {
        while (sem_wait(&worker.go) != 0)
            ;
        job_fn job = worker.job;
        if (job == NULL)
            return NULL;
        job();
        sem_post(&worker.done);
    }
}

static void worker_start(void)
{
    assert_int_equal(sem_init(&worker.go, 0, 0), 0);
    assert_int_equal(sem_init(&worker.done, 0, 0), 0);
    assert_int_equal(pthread_create(&worker.thread, NULL, worker_main, NULL), 0);
}

/* Runs job in the worker and waits for it. */
static void worker_run(job_fn job)
{
    worker.job = job;
    sem_post(&worker.go);
    while (sem_wait(&worker.done) != 0)
        ;
    report_failure();
}

/* The worker's thread ends: its heap is abandoned. */
static void worker_stop(void)
{
    worker.job = NULL;
    sem_post(&worker.go);
    assert_int_equal(pthread_join(worker.thread, NULL), 0);
    sem_destroy(&worker.go);
    sem_destroy(&worker.done);
}

/* Run in its own thread: make and free 65 pools' worth of 512 B blocks,
 * then end. The arena that needed leaves a spare behind (one entirely free
 * arena stays mapped), so the arenas a later case frees all go back to a
 * known count. */
static void *warm_up_thread(void *arg)
{
    (void)arg;
    enum { N = 7 * (POOLS_PER_ARENA + 1) };
    static void *p[N];
    for (size_t i = 0; i < N; i++)
        if ((p[i] = obm_malloc(OPQ(512))) == NULL)
            record_failure("warm-up: malloc(512) failed");
    for (size_t i = 0; i < N; i++)
        obm_free(p[i]);
    return NULL;
}

static void ensure_spare(void)
{
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, warm_up_thread, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    report_failure();
    stats_and_regions();
    assert_int_equal(count_arenas(&regions, OBM_ARENA_SPARE), 1);
}

/* ---- stats_exact ---- */

enum { EX_CLASSES = 4, EX_MAX = 1008, EX_REMOTE = 10 };
static const struct {
    unsigned c;
    size_t n;
} ex[EX_CLASSES] = {
    {0, 1008}, /* 252 per pool: 4 pools, filled exactly */
    {3, 300},  /* 63 per pool: 5 pools, the last with 48 */
    {4, 301},  /* 50 per pool (a 32 B tail): 7 pools, the last with 1 */
    {31, 500}, /* 7 per pool (a 448 B tail): 72 pools, more than an arena */
};
static void *ex_blocks[EX_CLASSES][EX_MAX];

/* Request i of ex[k]: every size of the class, and 0 in class 0. */
static size_t ex_request(unsigned k, size_t i)
{
    unsigned c = ex[k].c;
    if (c == 0 && i % 17 == 0)
        return 0;
    return 16 * c + 1 + i % 16;
}

static void ex_alloc(void)
{
    for (unsigned k = 0; k < EX_CLASSES; k++)
        for (size_t i = 0; i < ex[k].n; i++) {
            size_t n = ex_request(k, i);
            void *p = obm_malloc(OPQ(n));
            if (p == NULL || !obm_owns(p) || obm_usable_size(p) != bsize(ex[k].c)) {
                record_failure("malloc(%zu) = %p, usable %zu", n, p, obm_usable_size(p));
                return;
            }
            ex_blocks[k][i] = p;
        }
}

/* Every other 16 B block, and every 80 B block. */
static void ex_free_some(void)
{
    for (size_t i = 1; i < ex[0].n; i += 2)
        obm_free(ex_blocks[0][i]);
    for (size_t i = 0; i < ex[2].n; i++)
        obm_free(ex_blocks[2][i]);
}

/* The rest but the 64 B blocks main freed. */
static void ex_free_rest(void)
{
    for (size_t i = 0; i < ex[0].n; i += 2)
        obm_free(ex_blocks[0][i]);
    for (size_t i = EX_REMOTE; i < ex[1].n; i++)
        obm_free(ex_blocks[1][i]);
    for (size_t i = 0; i < ex[3].n; i++)
        obm_free(ex_blocks[3][i]);
}

/* One class against the baseline: the worker's own pools (a new heap
 * takes pools of its own) hold `in_use` blocks and `remote` freed by main. */
struct class_delta {
    size_t pools, in_use, remote, mallocs, frees, remote_frees;
};

static void check_class(const obm_stats_t *base, const obm_stats_t *s, unsigned c,
                        struct class_delta d)
{
    const obm_class_stats_t *b = &base->classes[c], *k = &s->classes[c];
    if (k->block_size != bsize(c) || k->pools != b->pools + d.pools ||
        k->blocks_in_use != b->blocks_in_use + d.in_use ||
        k->blocks_free != b->blocks_free + d.pools * bpp(c) - d.in_use ||
        k->blocks_remote != b->blocks_remote + d.remote || k->mallocs != b->mallocs + d.mallocs ||
        k->frees != b->frees + d.frees || k->remote_frees != b->remote_frees + d.remote_frees)
        fail_msg(
            "class %u (%zu B): block size %zu, pools +%zu, in use +%zu, free +%zu, remote +%zu, "
            "mallocs +%zu, frees +%zu, remote frees +%zu; expected %zu, +%zu, +%zu, +%zu, "
            "+%zu, +%zu, +%zu, +%zu",
            c, bsize(c), k->block_size, k->pools - b->pools, k->blocks_in_use - b->blocks_in_use,
            k->blocks_free - b->blocks_free, k->blocks_remote - b->blocks_remote,
            k->mallocs - b->mallocs, k->frees - b->frees, k->remote_frees - b->remote_frees,
            bsize(c), d.pools, d.in_use, d.pools * bpp(c) - d.in_use, d.remote, d.mallocs, d.frees,
            d.remote_frees);
}

/* Classes not in ex[] did not move. */
static void check_other_classes(const obm_stats_t *base, const obm_stats_t *s)
{
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        bool ours = false;
        for (unsigned k = 0; k < EX_CLASSES; k++)
            ours |= ex[k].c == c;
        if (!ours)
            check_class(base, s, c, (struct class_delta){0});
    }
}

static void test_stats_exact(void **state)
{
    (void)state;
    watchdog("stats_exact", 120);
    ensure_spare();
    worker_start();
    const obm_stats_t base = stats_and_regions();

    /* 1. Everything allocated. */
    worker_run(ex_alloc);
    obm_stats_t s = stats_and_regions();
    size_t pools = 0, full = 0, bytes = 0, quant = 0;
    for (unsigned k = 0; k < EX_CLASSES; k++) {
        unsigned c = ex[k].c;
        size_t p = ceil_div(ex[k].n, bpp(c));
        check_class(&base, &s, c,
                    (struct class_delta){.pools = p, .in_use = ex[k].n, .mallocs = ex[k].n});
        pools += p;
        full += ex[k].n / bpp(c);
        bytes += ex[k].n * bsize(c);
        quant += p * tail(c);
    }
    check_other_classes(&base, &s);
    assert_int_equal(pools, 4 + 5 + 7 + 72);
    EXPECT_EQ(s.pools_in_use, base.pools_in_use + pools);
    EXPECT_EQ(s.pools_full, base.pools_full + full);
    EXPECT_EQ(s.pools_cached, base.pools_cached);
    EXPECT_EQ(s.pools_taken_total, base.pools_taken_total + pools);
    EXPECT_EQ(s.pools_returned_total, base.pools_returned_total);
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use + bytes);
    EXPECT_EQ(s.bytes_pool_headers, base.bytes_pool_headers + POOL_HEADER * pools);
    EXPECT_EQ(s.bytes_quantization, base.bytes_quantization + quant);
    /* New pools come from the arenas' free ones first, then new arenas. */
    size_t arena_free = base.pools_empty - base.pools_cached;
    size_t new_arenas = pools > arena_free ? ceil_div(pools - arena_free, POOLS_PER_ARENA) : 0;
    EXPECT_EQ(s.arenas_current, base.arenas_current + new_arenas);
    EXPECT_EQ(s.arenas_allocated_total, base.arenas_allocated_total + new_arenas);
    EXPECT_EQ(s.bytes_mapped, OBM_ARENA_SIZE * s.arenas_current);
    EXPECT_EQ(s.arenas_highwater,
              s.arenas_current > base.arenas_highwater ? s.arenas_current : base.arenas_highwater);
    EXPECT_EQ(s.large_allocs_current, base.large_allocs_current);
    EXPECT_EQ(s.large_allocs_total, base.large_allocs_total);
    EXPECT_EQ(s.heaps_live, base.heaps_live + 1);
    /* The worker's heap is new or an abandoned one taken over. */
    EXPECT_EQ(s.heaps_created - base.heaps_created + s.heaps_adopted - base.heaps_adopted, 1);
    EXPECT_EQ(s.heaps_abandoned, base.heaps_abandoned - (s.heaps_adopted - base.heaps_adopted));

    /* 2. Half the 16 B blocks and all the 80 B ones freed by the worker:
     * six 80 B pools emptied go to its cache (room for 8, and a quarter of
     * 82 pools), the seventh, emptied last, stays as the class's only
     * pool. Then main frees the first 10 blocks of 64 B, all in the first
     * (full) pool: remote, not counted as frees until the owner collects. */
    worker_run(ex_free_some);
    for (size_t i = 0; i < EX_REMOTE; i++)
        obm_free(ex_blocks[1][i]);
    s = stats_and_regions();
    size_t n0 = ex[0].n, n1 = ex[1].n, n2 = ex[2].n, n3 = ex[3].n;
    check_class(&base, &s, 0,
                (struct class_delta){.pools = 4, .in_use = n0 / 2, .mallocs = n0, .frees = n0 / 2});
    check_class(&base, &s, 3,
                (struct class_delta){
                    .pools = 5, .in_use = n1 - EX_REMOTE, .remote = EX_REMOTE, .mallocs = n1});
    check_class(&base, &s, 4, (struct class_delta){.pools = 1, .mallocs = n2, .frees = n2});
    check_class(&base, &s, 31, (struct class_delta){.pools = 72, .in_use = n3, .mallocs = n3});
    check_other_classes(&base, &s);
    EXPECT_EQ(s.pools_in_use, base.pools_in_use + pools - 6);
    EXPECT_EQ(s.pools_cached, base.pools_cached + 6);
    /* Full: none of 16 B, 3 of 5 of 64 B, none of 80 B, 71 of 512 B. */
    EXPECT_EQ(s.pools_full, base.pools_full + 3 + 71);
    EXPECT_EQ(s.pools_returned_total, base.pools_returned_total + 6);
    EXPECT_EQ(s.arenas_current, base.arenas_current + new_arenas);
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use + n0 / 2 * 16 + (n1 - EX_REMOTE) * 64 + n3 * 512);

    /* 3. The worker frees the rest. Each class keeps its last pool, empty
     * (the 64 B one still counts the 10 remote blocks in its free ones);
     * the cache holds at most a quarter of the 4 pools left in service. */
    worker_run(ex_free_rest);
    s = stats_and_regions();
    check_class(&base, &s, 0, (struct class_delta){.pools = 1, .mallocs = n0, .frees = n0});
    check_class(&base, &s, 3,
                (struct class_delta){
                    .pools = 1, .remote = EX_REMOTE, .mallocs = n1, .frees = n1 - EX_REMOTE});
    check_class(&base, &s, 4, (struct class_delta){.pools = 1, .mallocs = n2, .frees = n2});
    check_class(&base, &s, 31, (struct class_delta){.pools = 1, .mallocs = n3, .frees = n3});
    check_other_classes(&base, &s);
    EXPECT_EQ(s.pools_in_use, base.pools_in_use + EX_CLASSES);
    assert_true(s.pools_cached <= base.pools_cached + EX_CLASSES / 4);
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use);

    /* 4. The worker ends: its heap, abandoned, takes in the remote blocks
     * and gives every pool back; the arenas it needed are unmapped. */
    worker_stop();
    s = stats_and_regions();
    for (unsigned k = 0; k < EX_CLASSES; k++)
        check_class(&base, &s, ex[k].c,
                    (struct class_delta){.mallocs = ex[k].n,
                                         .frees = ex[k].n,
                                         .remote_frees = k == 1 ? EX_REMOTE : 0});
    check_other_classes(&base, &s);
#define SAME(f) EXPECT_EQ(s.f, base.f)
    SAME(arenas_current);
    SAME(bytes_mapped);
    SAME(pools_in_use);
    SAME(pools_full);
    SAME(pools_empty);
    SAME(pools_cached);
    SAME(bytes_in_use);
    SAME(bytes_free_blocks);
    SAME(bytes_empty_pools);
    SAME(bytes_pool_headers);
    SAME(bytes_quantization);
    SAME(large_allocs_current);
    SAME(heaps_live);
#undef SAME
    expect_backing_count(&s);
    EXPECT_EQ(s.arenas_released_total - base.arenas_released_total, new_arenas);
    EXPECT_EQ(s.pools_taken_total - base.pools_taken_total, pools);
    EXPECT_EQ(s.pools_returned_total - base.pools_returned_total, pools);
    EXPECT_EQ(count_arenas(&regions, OBM_ARENA_SPARE), 1);
    printf("# stats_exact: %zu pools in %zu new arenas, all given back\n", pools, new_arenas);
    alarm(0);
}

/* ---- partial_free_keeps_only_used_arenas (CHECKLIST 38) ---- */

enum { PF_BLOCKS = 10000, PF_KEEP = 13 };
static void *pf_blocks[PF_BLOCKS];
static size_t pf_sizes[PF_BLOCKS];

static void pf_alloc(void)
{
    uint64_t rng = 0x38;
    for (size_t i = 0; i < PF_BLOCKS; i++) {
        uint64_t r = rng_next(&rng);
        size_t n = r % 4 != 0 ? 1 + (size_t)(r >> 8) % 512 : 513 + (size_t)(r >> 8) % (16384 - 512);
        pf_sizes[i] = n;
        if ((pf_blocks[i] = obm_malloc(OPQ(n))) == NULL) {
            record_failure("malloc(%zu) failed", n);
            return;
        }
        memset(pf_blocks[i], 0x38, n);
    }
}

static void pf_free(void)
{
    for (size_t i = 0; i < PF_BLOCKS; i++)
        if (i % PF_KEEP != 0)
            obm_free(pf_blocks[i]);
}

/* Blocks in use per arena, by address, from a walk. */
struct arena_use {
    uintptr_t base;
    size_t used;
};

static size_t arena_uses(const struct regions *v, struct arena_use *out, size_t max)
{
    size_t n = 0;
    for (size_t a = 0; a < v->n && n < max; a += POOLS_PER_ARENA + 1) {
        out[n] = (struct arena_use){.base = (uintptr_t)v->r[a].address};
        for (size_t i = 1; i <= POOLS_PER_ARENA; i++)
            if (v->r[a + i].state != OBM_POOL_CONTINUED) /* a medium pool: at its first page */
                out[n].used += v->r[a + i].used;
        n++;
    }
    return n;
}

static size_t use_at(const struct arena_use *u, size_t n, uintptr_t base)
{
    for (size_t i = 0; i < n; i++)
        if (u[i].base == base)
            return u[i].used;
    return 0;
}

/* Empty pools main's heap held at the baseline (cached, or kept as a
 * class's only pool): main does not allocate during the case, so they stay. */
static uintptr_t pf_main_pools[OBM_NCLASSES + CACHE_MAX + 8];
static size_t pf_nmain;

static bool pf_main_pool(uintptr_t p)
{
    for (size_t i = 0; i < pf_nmain; i++)
        if (pf_main_pools[i] == p)
            return true;
    return false;
}

/* Every arena of `regions` is accounted for. Blocks in use in it: exactly
 * the live ones of ours inside it plus those of the baseline. One holding
 * no live block is the spare or is kept mapped by empty pools a heap still
 * holds: with the worker alive (`worker_alive`), by its cache and the one
 * pool each class keeps (at most one empty pool per class); otherwise only
 * by main's, as at the baseline. Returns the arenas kept that way. */
static size_t pf_check_arenas(const struct arena_use *base_use, size_t nbase, bool worker_alive)
{
    size_t idle = 0, kept_empty[OBM_NCLASSES] = {0};
    for (size_t a = 0; a < regions.n; a += POOLS_PER_ARENA + 1) {
        const obm_region_t *ar = &regions.r[a];
        uintptr_t base = (uintptr_t)ar->address;
        size_t ours = 0, used = 0;
        for (size_t i = 0; i < PF_BLOCKS; i++)
            ours += i % PF_KEEP == 0 && pf_sizes[i] <= OBM_MEDIUM_MAX &&
                    ((uintptr_t)pf_blocks[i] & ~(uintptr_t)(OBM_ARENA_SIZE - 1)) == base;
        for (size_t i = 1; i <= POOLS_PER_ARENA; i++) {
            const obm_region_t *p = &regions.r[a + i];
            if (p->state == OBM_POOL_CONTINUED)
                continue; /* counted at the medium pool's first page */
            used += p->used;
            if (is_serving(p) && p->used == 0 && !pf_main_pool((uintptr_t)p->address))
                kept_empty[p->size_class]++;
        }
        size_t was = use_at(base_use, nbase, base);
        if (used != ours + was)
            fail_msg("arena %#" PRIxPTR ": %zu blocks in use, %zu live blocks of the test and %zu "
                     "of the baseline in it",
                     base, used, ours, was);
        if (used > 0 || ar->state == OBM_ARENA_SPARE)
            continue;
        /* No live block: what keeps it? */
        size_t holders = 0;
        for (size_t i = 1; i <= POOLS_PER_ARENA; i++) {
            const obm_region_t *p = &regions.r[a + i];
            bool held = p->state == OBM_POOL_CACHED || is_serving(p);
            if (held && !pf_main_pool((uintptr_t)p->address) && !worker_alive)
                fail_msg("arena %#" PRIxPTR " holds no live block, and pool %p (state %d) is "
                         "held by a heap that has ended",
                         base, p->address, p->state);
            holders += held;
        }
        if (holders == 0)
            fail_msg("arena %#" PRIxPTR " is entirely free and not the spare", base);
        idle++;
    }
    for (unsigned c = 0; c < OBM_NCLASSES; c++)
        if (kept_empty[c] > (worker_alive ? 1 : 0))
            fail_msg("class %u: %zu empty pools in service", c, kept_empty[c]);
    return idle;
}

static void test_partial_free(void **state)
{
    (void)state;
    watchdog("partial_free_keeps_only_used_arenas", 120);
    ensure_spare();
    worker_start();
    const obm_stats_t base = stats_and_regions();
    static struct arena_use base_use[1024];
    size_t nbase = arena_uses(&regions, base_use, 1024);
    pf_nmain = 0;
    for (size_t i = 0; i < regions.n; i++) {
        const obm_region_t *p = &regions.r[i];
        if (p->kind == OBM_REGION_POOL &&
            (p->state == OBM_POOL_CACHED || (is_serving(p) && p->used == 0)) &&
            pf_nmain < sizeof pf_main_pools / sizeof *pf_main_pools)
            pf_main_pools[pf_nmain++] = (uintptr_t)p->address;
    }

    worker_run(pf_alloc);
    const obm_stats_t peak = stats_and_regions();
    worker_run(pf_free);
    obm_stats_t s = stats_and_regions();

    /* What is live: per class, and the large blocks. */
    size_t live[OBM_NCLASSES] = {0}, nlarge = 0, bytes = 0;
    for (size_t i = 0; i < PF_BLOCKS; i += PF_KEEP) {
        if (pf_sizes[i] <= OBM_MEDIUM_MAX) {
            live[class_of(pf_sizes[i])]++;
        } else {
            nlarge++;
            assert_true(obm_usable_size(pf_blocks[i]) >= pf_sizes[i]);
        }
    }
    size_t sum = 0;
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        EXPECT_EQ(s.classes[c].blocks_in_use, base.classes[c].blocks_in_use + live[c]);
        sum += s.classes[c].blocks_in_use * s.classes[c].block_size;
        bytes += live[c] * bsize(c);
    }
    EXPECT_EQ(sum, s.bytes_in_use);
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use + bytes);
    EXPECT_EQ(s.large_allocs_current, base.large_allocs_current + nlarge);
    expect_backing_count(&s);
    /* Freeing maps nothing; what it unmapped is what arenas_current lost. */
    EXPECT_EQ(s.arenas_allocated_total, peak.arenas_allocated_total);
    EXPECT_EQ(s.arenas_released_total - peak.arenas_released_total,
              peak.arenas_current - s.arenas_current);
    /* The worker's cache: at most 8 small pools and a quarter of those it
     * has in service, and at most 256 pages of medium pools and a quarter
     * of the pages of those it has in service (all the pools in service
     * but the baseline's). */
    size_t cached = s.pools_cached - base.pools_cached, small = 0, medium_pages = 0;
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        size_t pools = s.classes[c].pools - base.classes[c].pools;
        if (c < OBM_NSMALL)
            small += pools;
        else
            medium_pages += pools * pool_bytes(c) / OBM_POOL_SIZE;
    }
    assert_true(cached <=
                min_size(CACHE_MAX, small / 4) + min_size(RUN_CACHE_PAGES, medium_pages / 4));
    size_t idle = pf_check_arenas(base_use, nbase, true);
    printf(
        "# partial_free: %zu arenas at the peak, %zu after the frees (%zu released), %zu of them "
        "kept only by empty pools of a heap, %zu pools cached\n",
        peak.arenas_current, s.arenas_current, s.arenas_released_total - peak.arenas_released_total,
        idle, cached);

    /* The worker ends: no cache, no kept pools. Every arena but the spare
     * now holds a live block (or main's pools, as at the baseline). */
    worker_stop();
    s = stats_and_regions();
    EXPECT_EQ(s.pools_cached, base.pools_cached);
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use + bytes);
    pf_check_arenas(base_use, nbase, false);

    /* Main frees the rest (into an ended thread's heap): back to the
     * baseline, the arenas included (it had a spare). */
    for (size_t i = 0; i < PF_BLOCKS; i += PF_KEEP)
        obm_free(pf_blocks[i]);
    s = stats_and_regions();
    for (unsigned c = 0; c < OBM_NCLASSES; c++)
        EXPECT_EQ(s.classes[c].blocks_in_use, base.classes[c].blocks_in_use);
    EXPECT_EQ(s.pools_in_use, base.pools_in_use);
    EXPECT_EQ(s.arenas_current, base.arenas_current);
    EXPECT_EQ(s.large_allocs_current, base.large_allocs_current);
    expect_backing_count(&s);
    EXPECT_EQ(s.arenas_released_total - base.arenas_released_total,
              s.arenas_allocated_total - base.arenas_allocated_total);
    printf("# partial_free: once all is freed, %zu arenas mapped for it are released\n",
           s.arenas_released_total - base.arenas_released_total);
    alarm(0);
}

/* ---- large_blocks ---- */

static void test_large_blocks(void **state)
{
    (void)state;
    obm_stats_t base = stats(), s;
    enum { N = 6 };
    void *p[N];
    size_t want[N] = {100000, 40000, 36000, 40, 100, 8};
    p[0] = obm_malloc(OPQ(100000));
    p[1] = obm_malloc(OPQ(40000));
    p[2] = obm_calloc(OPQ(3), OPQ(12000));
    assert_int_equal(obm_posix_memalign(&p[3], OPQ(32), OPQ(40)), 0);
    p[4] = obm_aligned_alloc(OPQ(64), OPQ(100));
    p[5] = obm_memalign(OPQ(128), OPQ(8));
    for (unsigned i = 0; i < N; i++) {
        assert_non_null(p[i]);
        assert_false(obm_owns(p[i]));
        assert_true(obm_usable_size(p[i]) >= want[i]);
    }
    /* Aligned to 16 (or less), a small request stays small; 513 and
     * 3 x 1000 bytes are obm's medium blocks of 640 and 3072 bytes. */
    void *small = obm_aligned_alloc(OPQ(16), OPQ(100));
    void *m640 = obm_malloc(OPQ(513)), *m3072 = obm_calloc(OPQ(3), OPQ(1000));
    assert_non_null(small);
    assert_true(obm_owns(small) && obm_owns(m640) && obm_owns(m3072));
    assert_int_equal(obm_usable_size(m640), 640);
    assert_int_equal(obm_usable_size(m3072), 3072);
    unsigned c640 = class_of(513), c3072 = class_of(3000);
    assert_int_equal(bsize(c640), 640);
    assert_int_equal(bsize(c3072), 3072);
    s = stats();
    EXPECT_EQ(s.large_allocs_current, base.large_allocs_current + N);
    expect_backing_count(&s);
    EXPECT_EQ(s.large_allocs_total, base.large_allocs_total + N);
    EXPECT_EQ(s.classes[6].blocks_in_use, base.classes[6].blocks_in_use + 1);
    EXPECT_EQ(s.classes[6].mallocs, base.classes[6].mallocs + 1);
    EXPECT_EQ(s.classes[c640].blocks_in_use, base.classes[c640].blocks_in_use + 1);
    EXPECT_EQ(s.classes[c3072].mallocs, base.classes[c3072].mallocs + 1);
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use + 112 + 640 + 3072);
    obm_free(m640);
    obm_free(m3072);
    s = stats();

    /* Large to large: still one block, one more request. */
    p[0] = obm_realloc(p[0], OPQ(200000));
    assert_non_null(p[0]);
    obm_stats_t r = stats();
    EXPECT_EQ(r.large_allocs_current, s.large_allocs_current);
    expect_backing_count(&r);
    EXPECT_EQ(r.large_allocs_total, s.large_allocs_total + 1);

    /* Large to small (40000 -> 100: out of the backing allocator), and
     * small to large. */
    p[1] = obm_realloc(p[1], OPQ(100));
    assert_non_null(p[1]);
    assert_true(obm_owns(p[1]));
    small = obm_realloc(small, OPQ(40000));
    assert_non_null(small);
    assert_false(obm_owns(small));
    obm_stats_t t = stats();
    EXPECT_EQ(t.large_allocs_current, r.large_allocs_current); /* one out, one in */
    expect_backing_count(&t);
    EXPECT_EQ(t.large_allocs_total, r.large_allocs_total + 1);
    EXPECT_EQ(t.classes[6].blocks_in_use,
              base.classes[6].blocks_in_use + 1); /* p[1] in, small out */
    EXPECT_EQ(t.classes[6].mallocs, base.classes[6].mallocs + 2);
    EXPECT_EQ(t.classes[6].frees, base.classes[6].frees + 1);

    for (unsigned i = 0; i < N; i++)
        obm_free(p[i]);
    obm_free(small);
    s = stats();
    EXPECT_EQ(s.large_allocs_current, base.large_allocs_current);
    expect_backing_count(&s);
    EXPECT_EQ(s.large_allocs_total, base.large_allocs_total + N + 2);
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use);
}

/* ---- errors ---- */

static void test_errors(void **state)
{
    (void)state;
    assert_int_equal(obm_stats_get(NULL), EINVAL);
    static const size_t sizes[] = {0, sizeof(obm_stats_t) - 1, sizeof(obm_stats_t) + 8,
                                   sizeof(obm_counters_t)};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        obm_stats_t s, copy;
        memset(&s, 0xa5, sizeof s);
        s.size = sizes[i];
        copy = s;
        assert_int_equal(obm_stats_get(&s), EINVAL);
        assert_memory_equal(&s, &copy, sizeof s); /* nothing written */
    }
    static const char *const bad[] = {"X", "JJ", "j", "m", "M ", " ", "JM", "\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(capture_report(&cap, bad[i]), EINVAL);
        assert_int_equal(cap.calls, 0);
    }
    int calls = 0;
    assert_int_equal(obm_visit(NULL, &calls), EINVAL);
    assert_int_equal(obm_visit(NULL, NULL), EINVAL);
    assert_int_equal(calls, 0);
}

/* ---- diff ---- */

#define NWORDS (sizeof(obm_stats_t) / sizeof(size_t))
_Static_assert(sizeof(obm_stats_t) % sizeof(size_t) == 0, "obm_stats_t is made of size_t");

/* Words of obm_stats_t that obm_stats_diff copies from after. */
static bool fixed_word(size_t i)
{
    size_t off = i * sizeof(size_t);
    if (off == offsetof(obm_stats_t, size) || off == offsetof(obm_stats_t, version) ||
        off == offsetof(obm_stats_t, arenas_highwater))
        return true;
    for (unsigned c = 0; c < OBM_NCLASSES; c++)
        if (off == offsetof(obm_stats_t, classes) + c * sizeof(obm_class_stats_t) +
                       offsetof(obm_class_stats_t, block_size))
            return true;
    return false;
}

static void test_diff(void **state)
{
    (void)state;
    size_t b[NWORDS], a[NWORDS], want[NWORDS], got[NWORDS];
    for (size_t i = 0; i < NWORDS; i++) {
        b[i] = 1000003 * (i + 1);
        a[i] = i % 3 == 0 ? b[i] - (i + 1) : b[i] + (i + 2) * (i + 5); /* some levels fall */
    }
    b[0] = a[0] = sizeof(obm_stats_t);
    for (size_t i = 0; i < NWORDS; i++)
        want[i] = fixed_word(i) ? a[i] : a[i] - b[i];

    obm_stats_t before, after, delta;
    memcpy(&before, b, sizeof before);
    memcpy(&after, a, sizeof after);
    memset(&delta, 0x5a, sizeof delta);
    obm_stats_diff(&before, &after, &delta);
    memcpy(got, &delta, sizeof got);
    for (size_t i = 0; i < NWORDS; i++)
        if (got[i] != want[i])
            fail_msg("word %zu (offset %zu): %zu, expected %zu (%s)", i, i * sizeof(size_t), got[i],
                     want[i], fixed_word(i) ? "after's" : "after - before");
    /* A level that fell reads back negative (pools_in_use, word 6, fell
     * by 7). */
    size_t fell = offsetof(obm_stats_t, pools_in_use) / sizeof(size_t);
    assert_int_equal(fell % 3, 0);
    assert_true((ptrdiff_t)got[fell] == -(ptrdiff_t)(fell + 1));
    /* The fixed words, against the inputs rather than fixed_word(): before's
     * values are not 0, so a subtraction cannot pass for a copy. */
    EXPECT_EQ(delta.size, sizeof(obm_stats_t));
    assert_true(before.version != 0 && before.arenas_highwater != 0);
    EXPECT_EQ(delta.version, after.version);
    EXPECT_EQ(delta.arenas_highwater, after.arenas_highwater);
    EXPECT_EQ(delta.classes[5].block_size, after.classes[5].block_size);
    EXPECT_EQ(delta.arenas_current, after.arenas_current - before.arenas_current);

    /* delta may be before, after, or both. */
    obm_stats_t x = before;
    obm_stats_diff(&x, &after, &x);
    assert_memory_equal(&x, &delta, sizeof x);
    x = after;
    obm_stats_diff(&before, &x, &x);
    assert_memory_equal(&x, &delta, sizeof x);
    x = after;
    obm_stats_diff(&x, &x, &x);
    memcpy(got, &x, sizeof got);
    for (size_t i = 0; i < NWORDS; i++)
        assert_int_equal(got[i], fixed_word(i) ? a[i] : 0);

    /* Two real snapshots around 3 mallocs of 32 B. */
    obm_stats_t s0 = stats();
    void *p[3];
    for (int i = 0; i < 3; i++)
        assert_non_null(p[i] = obm_malloc(OPQ(17 + 7 * (size_t)i)));
    obm_stats_t s1 = stats(), d;
    obm_stats_diff(&s0, &s1, &d);
    for (int i = 0; i < 3; i++)
        obm_free(p[i]);
    EXPECT_EQ(d.version, OBM_STATS_VERSION);
    EXPECT_EQ(d.arenas_highwater, s1.arenas_highwater);
    EXPECT_EQ(d.classes[1].mallocs, 3);
    EXPECT_EQ(d.classes[1].blocks_in_use, 3);
    EXPECT_EQ(d.classes[1].frees, 0);
    EXPECT_EQ(d.bytes_in_use, 96);
    EXPECT_EQ(d.large_allocs_total, 0);
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        EXPECT_EQ(d.classes[c].block_size, bsize(c));
        if (c != 1)
            EXPECT_EQ(d.classes[c].mallocs, 0);
    }
    /* The ledger of a delta still adds up. */
    EXPECT_EQ(d.bytes_in_use + d.bytes_free_blocks + d.bytes_empty_pools + d.bytes_pool_headers +
                  d.bytes_quantization,
              d.bytes_mapped);
}

/* ---- visit ---- */

struct stop_arg {
    int calls, stop_at, value;
};

static int stop_after(const obm_region_t *r, void *arg)
{
    (void)r;
    struct stop_arg *a = arg;
    return ++a->calls == a->stop_at ? a->value : 0;
}

/* The callback of the outer walk: allocates until an arena is mapped,
 * prints a report and walks again, then counts the records. */
enum { VA_MAX = 8 * 7 * POOLS_PER_ARENA };
static void *va_blocks[VA_MAX];

struct alloc_arg {
    size_t records, changed, arenas_before, nblocks, inner_records, inner_arenas;
    int print_rc;
    bool grew;
};

static bool region_equal(const obm_region_t *x, const obm_region_t *y)
{
    return x->kind == y->kind && x->state == y->state && x->address == y->address &&
           x->size == y->size && x->arena_serial == y->arena_serial &&
           x->size_class == y->size_class && x->block_size == y->block_size && x->used == y->used &&
           x->capacity == y->capacity && x->remote == y->remote;
}

static int count_records(const obm_region_t *r, void *arg)
{
    size_t *n = arg;
    (*n)++;
    return r->kind == OBM_REGION_ARENA || r->kind == OBM_REGION_POOL ? 0 : -1;
}

static int alloc_in_visit(const obm_region_t *r, void *arg)
{
    (void)r;
    struct alloc_arg *a = arg;
    /* The same records as the walk just before, whatever this allocates. */
    if (a->records >= regions.n || !region_equal(r, &regions.r[a->records]))
        a->changed++;
    if (a->records++ != 0)
        return 0;
    obm_stats_t s = {.size = sizeof s};
    while (a->nblocks + 7 * POOLS_PER_ARENA <= VA_MAX) {
        for (size_t i = 0; i < 7 * POOLS_PER_ARENA; i++)
            if ((va_blocks[a->nblocks++] = obm_malloc(OPQ(500))) == NULL)
                return -2;
        if (obm_stats_get(&s) != 0)
            return -3;
        if (s.arenas_current > a->arenas_before) {
            a->grew = true;
            break;
        }
    }
    a->print_rc = capture_report(&cap, "");
    if (obm_visit(count_records, &a->inner_records) != 0)
        return -4;
    if (obm_stats_get(&s) != 0)
        return -3;
    a->inner_arenas = s.arenas_current;
    return 0;
}

static void test_visit(void **state)
{
    (void)state;
    watchdog("visit", 60);
    obm_stats_t base = stats();
    enum { N = 200 };
    void *p[N];
    for (size_t i = 0; i < N; i++)
        assert_non_null(p[i] = obm_malloc(OPQ(81 + i % 16))); /* class 5, 96 B */
    void *big = obm_malloc(OPQ(70000));
    assert_non_null(big);
    obm_stats_t s = stats_and_regions(); /* every structural and per-class check */
    EXPECT_EQ(s.classes[5].blocks_in_use, base.classes[5].blocks_in_use + N);
    EXPECT_EQ(regions.n / (POOLS_PER_ARENA + 1), s.arenas_current);
    /* Each block's pool is in the walk, with its class and a block in use. */
    for (size_t i = 0; i < N; i++) {
        uintptr_t pool = (uintptr_t)p[i] & ~(uintptr_t)(OBM_POOL_SIZE - 1);
        const obm_region_t *found = NULL;
        for (size_t j = 0; j < regions.n && found == NULL; j++)
            if (regions.r[j].kind == OBM_REGION_POOL && (uintptr_t)regions.r[j].address == pool)
                found = &regions.r[j];
        assert_non_null(found);
        assert_int_equal(found->size_class, 5);
        assert_true(found->used >= 1);
        assert_true(is_serving(found));
    }
    /* No pool of the large block. */
    for (size_t j = 0; j < regions.n; j++) {
        uintptr_t at = (uintptr_t)regions.r[j].address;
        assert_false((uintptr_t)big >= at && (uintptr_t)big < at + regions.r[j].size);
    }

    /* A non-zero return stops the walk and is returned. */
    struct stop_arg st = {.stop_at = 3, .value = 7};
    assert_int_equal(obm_visit(stop_after, &st), 7);
    assert_int_equal(st.calls, 3);
    st = (struct stop_arg){.stop_at = 1, .value = -1};
    assert_int_equal(obm_visit(stop_after, &st), -1);
    assert_int_equal(st.calls, 1);
    st = (struct stop_arg){.stop_at = (int)regions.n, .value = 42}; /* the very last record */
    assert_int_equal(obm_visit(stop_after, &st), 42);
    assert_int_equal(st.calls, (int)regions.n);

    /* The callback allocates (until a new arena is mapped), prints and
     * walks again: the outer walk still reports its snapshot. */
    s = stats_and_regions();
    struct alloc_arg a = {.arenas_before = s.arenas_current};
    assert_int_equal(obm_visit(alloc_in_visit, &a), 0);
    assert_true(a.grew);
    EXPECT_EQ(a.records, (POOLS_PER_ARENA + 1) * s.arenas_current);
    EXPECT_EQ(a.changed, 0);
    EXPECT_EQ(a.inner_records, (POOLS_PER_ARENA + 1) * a.inner_arenas);
    assert_true(a.inner_arenas > s.arenas_current);
    assert_int_equal(a.print_rc, 0);
    char err[512];
    if (!text_consistent(cap.buf, err, sizeof err))
        fail_msg("report printed inside obm_visit: %s", err);
    for (size_t i = 0; i < a.nblocks; i++)
        obm_free(va_blocks[i]);
    for (size_t i = 0; i < N; i++)
        obm_free(p[i]);
    obm_free(big);
    s = stats_and_regions();
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use);
    alarm(0);
}

/* ---- text_report ---- */

/* A writer that allocates through obm for every piece. */
static void allocating_write(void *opaque, const char *text)
{
    size_t n = strlen(text);
    char *copy = obm_malloc(n + 1);
    if (copy != NULL) {
        memcpy(copy, text, n + 1);
        *(size_t *)opaque += strlen(copy);
        obm_free(copy);
    }
}

static void check_line(const char *report, const char *label, size_t want)
{
    size_t got;
    char raw[64], expect[64];
    if (!report_value(report, label, &got, raw, sizeof raw))
        fail_msg("no line '%s = ...' in the report", label);
    grouped(want, expect, sizeof expect);
    if (got != want || strcmp(raw, expect) != 0)
        fail_msg("'%s' is %s, expected %s", label, raw, expect);
}

/* Class rows: "class size pools in-use avail remote mallocs frees". */
static size_t check_class_rows(const char *report, const obm_stats_t *s, unsigned must_have)
{
    const char *p = strstr(report, "\n-----");
    if (p == NULL)
        fail_msg("no class table");
    p = strchr(p + 1, '\n') + 1;
    size_t rows = 0;
    bool seen = false;
    long prev = -1;
    while (*p != '\n' && *p != '\0') {
        unsigned long long v[8];
        char *end = (char *)p;
        for (int i = 0; i < 8; i++) {
            const char *from = end;
            v[i] = strtoull(from, &end, 10);
            if (end == from)
                fail_msg("class row %zu: field %d unreadable", rows, i);
        }
        if (*end != '\n')
            fail_msg("class row %zu: trailing text", rows);
        if (v[0] >= OBM_NCLASSES || (long)v[0] <= prev)
            fail_msg("class row %zu: class %llu out of order", rows, v[0]);
        prev = (long)v[0];
        const obm_class_stats_t *k = &s->classes[v[0]];
        if (v[1] != k->block_size || v[2] != k->pools || v[3] != k->blocks_in_use ||
            v[4] != k->blocks_free || v[5] != k->blocks_remote || v[6] != k->mallocs ||
            v[7] != k->frees)
            fail_msg(
                "class %llu row: %llu %llu %llu %llu %llu %llu %llu; stats %zu %zu %zu %zu %zu "
                "%zu %zu",
                v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], k->block_size, k->pools,
                k->blocks_in_use, k->blocks_free, k->blocks_remote, k->mallocs, k->frees);
        seen |= v[0] == must_have;
        rows++;
        p = end + 1;
    }
    /* Every class with a pool has its row. */
    size_t with_pools = 0;
    for (unsigned c = 0; c < OBM_NCLASSES; c++)
        with_pools += s->classes[c].pools > 0;
    assert_true(rows >= with_pools);
    if (!seen)
        fail_msg("no row for class %u", must_have);
    return rows;
}

static void test_text_report(void **state)
{
    (void)state;
    obm_stats_t base = stats();
    enum { C = 13, N = 100 }; /* 224 B: 18 per pool, a 0 B tail */
    void *p[N];
    for (size_t i = 0; i < N; i++)
        assert_non_null(p[i] = obm_malloc(OPQ(209 + i % 16)));
    obm_stats_t s = stats();
    assert_int_equal(capture_report(&cap, ""), 0); /* nothing allocated in between */
    const char *r = cap.buf;
    assert_false(cap.overflow);
    assert_false(cap.empty_piece);
    assert_true(cap.calls >= 1);
    assert_non_null(strstr(r, "Small block threshold = 512, in 32 size classes; medium blocks "
                              "up to 32768, in 24 more.\n"));
    assert_non_null(strstr(r, "obm " OBM_VERSION_STRING " statistics, pid "));

    /* Class 13: main's heap fills its own free blocks first (every pool of
     * the class is main's), then takes new pools. */
    const obm_class_stats_t *b = &base.classes[C], *k = &s.classes[C];
    size_t new_pools = N > b->blocks_free ? ceil_div(N - b->blocks_free, bpp(C)) : 0;
    EXPECT_EQ(k->pools, b->pools + new_pools);
    EXPECT_EQ(k->blocks_in_use, b->blocks_in_use + N);
    EXPECT_EQ(k->blocks_free, k->pools * 18 - k->blocks_in_use);
    EXPECT_EQ(k->mallocs, b->mallocs + N);
    size_t rows = check_class_rows(r, &s, C);

    check_line(r, "# arenas allocated total", s.arenas_allocated_total);
    check_line(r, "# arenas reclaimed", s.arenas_released_total);
    check_line(r, "# arenas highwater mark", s.arenas_highwater);
    check_line(r, "# arenas allocated current", s.arenas_current);
    char label[64];
    snprintf(label, sizeof label, "%zu arenas * 262144 bytes/arena", s.arenas_current);
    check_line(r, label, s.bytes_mapped);
    check_line(r, "# bytes in allocated blocks", s.bytes_in_use);
    check_line(r, "# bytes in available blocks", s.bytes_free_blocks);
    snprintf(label, sizeof label, "%zu unused pools * 4096 bytes", s.pools_empty);
    check_line(r, label, s.bytes_empty_pools);
    check_line(r, "# bytes lost to pool headers", s.bytes_pool_headers);
    check_line(r, "# bytes lost to quantization", s.bytes_quantization);
    check_line(r, "Total", s.bytes_mapped);
    check_line(r, "# pools in use", s.pools_in_use);
    check_line(r, "# pools full", s.pools_full);
    check_line(r, "# unused pools cached by heaps", s.pools_cached);
    check_line(r, "# unused pools never touched", s.pools_untouched);
    check_line(r, "# unused pools purged", s.pools_purged);
    check_line(r, "# bytes resident at most", s.bytes_resident);
    check_line(r, "# pools purged total", s.pools_purged_total);
    check_line(r, "# purge calls (madvise)", s.purges_total);
    check_line(r, "# large blocks (backing allocator)", s.large_allocs_current);
    check_line(r, "# bytes in large blocks", s.large_bytes_current);
    check_line(r, "# large requests total", s.large_allocs_total);
    check_line(r, "# heaps live", s.heaps_live);
    check_line(r, "# heaps created", s.heaps_created);
    char err[512];
    if (!text_consistent(r, err, sizeof err))
        fail_msg("%s", err);
    printf("# text report: %zu bytes in %zu pieces, %zu class rows\n", cap.len, cap.calls, rows);

    /* A writer may allocate: it is called with no lock held. It gets the
     * same report (nothing has changed since). */
    size_t written = 0;
    assert_int_equal(obm_stats_print(allocating_write, &written, ""), 0);
    EXPECT_EQ(written, cap.len);

    /* write == NULL: to stderr, here a file. */
    fflush(stderr);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(tmp), 2) == 2);
    int rc = obm_stats_print(NULL, NULL, "");
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, 0);
    static char text[1 << 16];
    rewind(tmp);
    size_t n = fread(text, 1, sizeof text - 1, tmp);
    fclose(tmp);
    text[n] = '\0';
    assert_non_null(strstr(text, "Small block threshold = 512, in 32 size classes; medium "
                                 "blocks up to 32768, in 24 more.\n"));
    if (!text_consistent(text, err, sizeof err))
        fail_msg("report on stderr: %s", err);

    for (size_t i = 0; i < N; i++)
        obm_free(p[i]);
}

/* ---- report_formats ---- */

/* The struct as JSON from a list of names kept here, apart from the
 * library's own table (src/stats.c). */
/* clang-format off */
#define TOP(f)   {#f, offsetof(obm_stats_t, f)}
#define CLASS(f) {#f, offsetof(obm_class_stats_t, f)}
/* clang-format on */
static const struct {
    const char *name;
    size_t offset;
} top_fields[] = {TOP(size),
                  TOP(version),
                  TOP(arenas_current),
                  TOP(arenas_highwater),
                  TOP(arenas_allocated_total),
                  TOP(arenas_released_total),
                  TOP(pools_in_use),
                  TOP(pools_full),
                  TOP(pages_in_use),
                  TOP(pools_empty),
                  TOP(pools_cached),
                  TOP(pools_untouched),
                  TOP(pools_purged),
                  TOP(bytes_mapped),
                  TOP(bytes_in_use),
                  TOP(bytes_free_blocks),
                  TOP(bytes_empty_pools),
                  TOP(bytes_pool_headers),
                  TOP(bytes_quantization),
                  TOP(bytes_purged),
                  TOP(bytes_resident),
                  TOP(purges_total),
                  TOP(pools_purged_total),
                  TOP(large_allocs_current),
                  TOP(large_bytes_current),
                  TOP(large_allocs_total),
                  TOP(heaps_live),
                  TOP(heaps_abandoned),
                  TOP(heaps_created),
                  TOP(heaps_adopted),
                  TOP(pools_taken_total),
                  TOP(pools_returned_total),
                  TOP(slow_mallocs_total),
                  TOP(slow_frees_total),
                  TOP(carves_total),
                  TOP(remote_collects_total),
                  TOP(pools_used_to_full_total),
                  TOP(pools_full_to_used_total),
                  TOP(pools_emptied_total),
                  TOP(pools_from_arenas_total),
                  TOP(pools_to_arenas_total),
                  TOP(errors_invalid_pointer),
                  TOP(errors_double_free),
                  TOP(errors_corrupted_list),
                  TOP(errors_write_after_free),
                  TOP(errors_overflow)},
  class_fields[] = {CLASS(block_size),  CLASS(pools),         CLASS(blocks_in_use),
                    CLASS(blocks_free), CLASS(blocks_remote), CLASS(mallocs),
                    CLASS(frees),       CLASS(remote_frees)};
#undef TOP
#undef CLASS
#define NTOP   (sizeof top_fields / sizeof top_fields[0])
#define NCLASS (sizeof class_fields / sizeof class_fields[0])
/* Every field is listed: the lists cover the structs word for word. */
_Static_assert(NTOP * sizeof(size_t) == offsetof(obm_stats_t, classes), "a field is missing");
_Static_assert(NCLASS * sizeof(size_t) == sizeof(obm_class_stats_t), "a class field is missing");

static size_t field_value(const void *base, size_t offset)
{
    size_t v;
    memcpy(&v, (const char *)base + offset, sizeof v);
    return v;
}

static bool write_struct_json(FILE *f, const obm_stats_t *s)
{
    fprintf(f, "{");
    for (size_t i = 0; i < NTOP; i++)
        fprintf(f, "\"%s\": %zu, ", top_fields[i].name, field_value(s, top_fields[i].offset));
    fprintf(f, "\"classes\": [");
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        fprintf(f, "%s{", c > 0 ? ", " : "");
        for (size_t i = 0; i < NCLASS; i++)
            fprintf(f, "%s\"%s\": %zu", i > 0 ? ", " : "", class_fields[i].name,
                    field_value(&s->classes[c], class_fields[i].offset));
        fprintf(f, "}");
    }
    fprintf(f, "]}\n");
    return !ferror(f);
}

static void test_report_formats(void **state)
{
    (void)state;
    void *p[50];
    for (size_t i = 0; i < 50; i++)
        assert_non_null(p[i] = obm_malloc(OPQ(1 + i * 10)));
    obm_stats_t s = stats();
    assert_int_equal(capture_report(&cap, "J"), 0);
    assert_false(cap.overflow);
    char err[512];
    if (!json_consistent(cap.buf, err, sizeof err))
        fail_msg("JSON report: %s", err);
    /* Every field once, with the value obm_stats_get saw. */
    char want[128];
    for (size_t i = 0; i < NTOP; i++) {
        snprintf(want, sizeof want, "\"%s\": %zu,", top_fields[i].name,
                 field_value(&s, top_fields[i].offset));
        if (count_substr(cap.buf, want) != 1)
            fail_msg("JSON: %s is not there once", want);
    }
    /* The fixed fields against obm.h, not against the struct the printer
     * read: a printer and a struct that agree on a wrong version fail. */
    snprintf(want, sizeof want, "\"size\": %zu,", sizeof(obm_stats_t));
    if (count_substr(cap.buf, want) != 1)
        fail_msg("JSON: %s is not there once", want);
    snprintf(want, sizeof want, "\"version\": %d,", OBM_STATS_VERSION);
    if (count_substr(cap.buf, want) != 1)
        fail_msg("JSON: %s is not there once", want);
    for (size_t i = 0; i < NCLASS; i++) {
        snprintf(want, sizeof want, "\"%s\": ", class_fields[i].name);
        EXPECT_EQ(count_substr(cap.buf, want), OBM_NCLASSES);
    }
    /* Each class as one object in order: its block_size and mallocs. */
    const char *q = strstr(cap.buf, "\"classes\": [");
    assert_non_null(q);
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        q = strstr(q, "\"block_size\": ");
        assert_non_null(q);
        assert_int_equal(strtoull(q + 14, NULL, 10), bsize(c));
        const char *m = strstr(q, "\"mallocs\": ");
        assert_non_null(m);
        assert_int_equal(strtoull(m + 11, NULL, 10), s.classes[c].mallocs);
        q++;
    }

    int rc = capture_report(&cap, "M");
    assert_int_equal(rc, 0);
    assert_false(cap.overflow);
    size_t arenas = 0;
    if (!map_consistent(cap.buf, &arenas, err, sizeof err))
        fail_msg("map: %s", err);
    EXPECT_EQ(arenas, s.arenas_current);
    /* Each cell's class names its pool's state. */
    EXPECT_EQ(count_substr(cap.buf, "class=\"pool used\"") +
                  count_substr(cap.buf, "class=\"pool full\""),
              s.pools_in_use);
    EXPECT_EQ(count_substr(cap.buf, "class=\"pool full\""), s.pools_full);
    EXPECT_EQ(count_substr(cap.buf, "class=\"pool c\""), s.pools_cached);
    EXPECT_EQ(count_substr(cap.buf, "class=\"pool u\""), s.pools_untouched);
    EXPECT_EQ(count_substr(cap.buf, "class=\"pool p\""), s.pools_purged);
    EXPECT_EQ(count_substr(cap.buf, "class=\"pool e\""),
              s.pools_empty - s.pools_cached - s.pools_untouched - s.pools_purged);
    for (size_t i = 0; i < 50; i++)
        obm_free(p[i]);
}

/* ---- thread_exit_live_blocks (CHECKLIST 29) ---- */

static void *te_thread(void *arg)
{
    (void)arg;
    void *p = obm_malloc(OPQ(32));
    if (p != NULL)
        memset(p, 0x29, 32);
    return p;
}

static void test_thread_exit_live_blocks(void **state)
{
    (void)state;
    size_t n = scaled(5000, 200);
    watchdog("thread_exit_live_blocks", 300);
    obm_stats_t base = stats(), early = base;
    for (size_t i = 0; i < n; i++) {
        pthread_t t;
        void *p;
        assert_int_equal(pthread_create(&t, NULL, te_thread, NULL), 0);
        assert_int_equal(pthread_join(t, &p), 0);
        assert_non_null(p);
        obm_free(p);
        if (i == n / 10)
            early = stats();
    }
    obm_stats_t s = stats();
    /* Nothing grows with the number of threads. */
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use);
    EXPECT_EQ(s.classes[1].blocks_in_use, base.classes[1].blocks_in_use);
    EXPECT_EQ(s.classes[1].mallocs, base.classes[1].mallocs + n);
    EXPECT_EQ(s.pools_in_use, base.pools_in_use);
    EXPECT_EQ(s.pools_in_use, early.pools_in_use);
    EXPECT_EQ(s.arenas_current, early.arenas_current);
    assert_true(s.arenas_current <= base.arenas_current + 1);
    EXPECT_EQ(s.heaps_live, base.heaps_live);
    assert_true(s.heaps_created <= base.heaps_created + 1); /* then adopted, again and again */
    EXPECT_EQ(s.heaps_created - base.heaps_created + s.heaps_adopted - base.heaps_adopted, n);
    printf("# thread_exit_live_blocks: %zu threads, %zu heap(s) made, %zu adoptions\n", n,
           s.heaps_created - base.heaps_created, s.heaps_adopted - base.heaps_adopted);
    alarm(0);
}

/* ---- stats_under_threads (CHECKLIST 41) ---- */

enum { ST_THREADS = 8, ST_SLOTS = 128, ST_MAILBOX = 64 };

static _Atomic(void *) st_mailbox[ST_MAILBOX];
static atomic_int st_stop;

struct st_worker {
    pthread_t thread;
    uint64_t rng;
    unsigned long small, large, ops, cross; /* small: from obm's pools, small or medium */
};

static void *st_thread(void *arg)
{
    struct st_worker *w = arg;
    void *slot[ST_SLOTS] = {0};
    while (!atomic_load_explicit(&st_stop, memory_order_relaxed) && !stopped()) {
        uint64_t r = rng_next(&w->rng);
        unsigned i = (unsigned)(r % ST_SLOTS);
        switch ((r >> 8) % 4) {
        case 0:
        case 1: { /* a new block in the slot */
            obm_free(slot[i]);
            void *p;
            unsigned kind = (unsigned)(r >> 16) % 64;
            if (kind < 2) { /* medium: obm's pools */
                size_t n = 600 + (size_t)(r >> 24) % 20000;
                p = obm_malloc(OPQ(n));
                w->small++;
            } else if (kind == 2) {
                p = obm_malloc(OPQ(OBM_MEDIUM_MAX + 1 + (size_t)(r >> 24) % 20000));
                w->large++;
            } else if (kind == 3) {
                p = obm_aligned_alloc(OPQ(64), OPQ(1 + (size_t)(r >> 24) % 512));
                w->large++;
            } else {
                p = obm_malloc(OPQ(1 + (size_t)(r >> 24) % OBM_SMALL_MAX));
                w->small++;
            }
            if (p == NULL)
                record_failure("malloc failed");
            slot[i] = p;
            break;
        }
        case 2:
            obm_free(slot[i]);
            slot[i] = NULL;
            break;
        default: { /* into the mailbox; what comes back is another thread's */
            void *old = atomic_exchange(&st_mailbox[(r >> 16) % ST_MAILBOX], slot[i]);
            slot[i] = NULL;
            if (old != NULL)
                w->cross++;
            obm_free(old);
            break;
        }
        }
        /* Under valgrind, which runs one thread at a time, main gets its
         * turns too. */
        if (++w->ops % 1024 == 0)
            sched_yield();
    }
    for (unsigned i = 0; i < ST_SLOTS; i++)
        obm_free(slot[i]);
    return NULL;
}

static void st_start(struct st_worker *w, unsigned n, uint64_t seed)
{
    atomic_store(&st_stop, 0);
    for (unsigned i = 0; i < n; i++) {
        w[i] = (struct st_worker){.rng = seed + 0x9e3779b97f4a7c15ull * (i + 1)};
        if (pthread_create(&w[i].thread, NULL, st_thread, &w[i]) != 0)
            fail_msg("pthread_create failed");
    }
}

static void st_stop_all(struct st_worker *w, unsigned n)
{
    atomic_store(&st_stop, 1);
    for (unsigned i = 0; i < n; i++)
        assert_int_equal(pthread_join(w[i].thread, NULL), 0);
    for (unsigned i = 0; i < ST_MAILBOX; i++)
        obm_free(atomic_exchange(&st_mailbox[i], NULL));
}

/* One report while threads run, checked for its own consistency. */
static bool st_report(unsigned which, char *err, size_t len)
{
    static const char *const opts[] = {"", "J", "M"};
    int rc = capture_report(&cap, opts[which % 3]);
    REQUIRE(rc == 0, "obm_stats_print(\"%s\") returned %d", opts[which % 3], rc);
    REQUIRE(!cap.overflow && !cap.empty_piece,
            "report overflowed the buffer or had an empty piece");
    size_t arenas;
    switch (which % 3) {
    case 0:
        return text_consistent(cap.buf, err, len);
    case 1:
        return json_consistent(cap.buf, err, len);
    default:
        return map_consistent(cap.buf, &arenas, err, len);
    }
}

static void test_stats_under_threads(void **state)
{
    (void)state;
    unsigned long duration = (unsigned long)scaled(1500, 200);
    watchdog("stats_under_threads", 300);
    const obm_stats_t base = stats();
    static struct st_worker w[ST_THREADS];
    st_start(w, ST_THREADS, 0x41);

    obm_stats_t prev = base, cur;
    unsigned long start = now_ms(), snapshots = 0, visits = 0, reports = 0;
    size_t max_arenas = 0, max_remote = 0;
    char err[512];
    for (;;) {
        unsigned long ms = now_ms() - start;
        if (stopped() || ms > 60000 ||
            (ms >= duration && snapshots >= 20 && visits >= 3 && reports >= 3))
            break;
        cur = (obm_stats_t){.size = sizeof cur};
        if (obm_stats_get(&cur) != 0) {
            record_failure("obm_stats_get failed");
            break;
        }
        if (!stats_consistent(&cur, err, sizeof err)) {
            record_failure("snapshot %lu: %s", snapshots, err);
            break;
        }
        if (!stats_monotonic(&prev, &cur, err, sizeof err)) {
            record_failure("snapshot %lu: %s", snapshots, err);
            break;
        }
        prev = cur;
        snapshots++;
        if (cur.arenas_current > max_arenas)
            max_arenas = cur.arenas_current;
        if (sum_remote(&cur) > max_remote)
            max_remote = sum_remote(&cur);
        if (snapshots % 4 == 0) {
            if (!visit_all(&regions, err, sizeof err) ||
                !regions_well_formed(&regions, err, sizeof err)) {
                record_failure("walk %lu: %s", visits, err);
                break;
            }
            visits++;
        }
        if (snapshots % 4 == 2) {
            if (!st_report((unsigned)reports, err, sizeof err)) {
                record_failure("report %lu: %s", reports, err);
                break;
            }
            reports++;
        }
    }
    st_stop_all(w, ST_THREADS);
    report_failure();
    unsigned long small = 0, large = 0, ops = 0, cross = 0;
    for (unsigned i = 0; i < ST_THREADS; i++) {
        small += w[i].small;
        large += w[i].large;
        ops += w[i].ops;
        cross += w[i].cross;
    }

    /* Quiet again: every count exact. */
    obm_stats_t s = stats_and_regions();
    char why[512];
    if (!stats_monotonic(&prev, &s, why, sizeof why))
        fail_msg("after the threads: %s", why);
    size_t mallocs = 0;
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        mallocs += s.classes[c].mallocs - base.classes[c].mallocs;
        EXPECT_EQ(s.classes[c].blocks_in_use, base.classes[c].blocks_in_use);
    }
    EXPECT_EQ(mallocs, small);
    EXPECT_EQ(s.large_allocs_total, base.large_allocs_total + large);
    EXPECT_EQ(s.large_allocs_current, base.large_allocs_current);
    expect_backing_count(&s);
    EXPECT_EQ(s.bytes_in_use, base.bytes_in_use);
    /* The threads have ended: what they freed into each other's pools has
     * been collected (by the owner, or when it ended, by the freer). */
    EXPECT_EQ(sum_remote(&s), sum_remote(&base));
    EXPECT_EQ(s.heaps_live, base.heaps_live);
    printf("# stats_under_threads: %lu ms, %lu snapshots, %lu walks, %lu reports; %lu operations "
           "(%lu small, %lu large, %lu cross-thread frees); up to %zu arenas, %zu remote blocks "
           "seen\n",
           now_ms() - start, snapshots, visits, reports, ops, small, large, cross, max_arenas,
           max_remote);
    assert_true(snapshots >= 20 && visits >= 3 && reports >= 3);
    assert_true(cross > 0);
    alarm(0);
}

/* ---- fork_and_cancel (CHECKLIST 41) ---- */

/* In a forked child (one thread): the stats calls take their locks, and
 * the walk and the snapshot agree. 0, or what failed. */
static int fork_child(void)
{
    char err[512];
    obm_stats_t s = {.size = sizeof s};
    if (obm_stats_get(&s) != 0)
        return 1;
    if (!stats_consistent(&s, err, sizeof err))
        goto fail;
    if (!visit_all(&regions, err, sizeof err) ||
        !regions_match_stats(&regions, &s, err, sizeof err))
        goto fail;
    if (capture_report(&cap, "") != 0 || !text_consistent(cap.buf, err, sizeof err))
        return 3;
    if (capture_report(&cap, "M") != 0)
        return 4;
    void *p = obm_malloc(OPQ(48));
    if (p == NULL)
        return 5;
    obm_free(p);
    if (obm_stats_get(&s) != 0 || !stats_consistent(&s, err, sizeof err))
        goto fail;
    return 0;
fail:
    (void)!write(2, err, strlen(err));
    (void)!write(2, "\n", 1);
    return 2;
}

static atomic_int cancel_pieces;

static void cancel_write(void *opaque, const char *text)
{
    (void)opaque;
    (void)text;
    atomic_fetch_add(&cancel_pieces, 1);
    pthread_testcancel();
}

static void *cancel_thread(void *arg)
{
    (void)arg;
    for (unsigned i = 0;; i++) {
        obm_stats_t s = {.size = sizeof s};
        obm_stats_get(&s);
        void *p = obm_malloc(OPQ(64));
        obm_free(p);
        obm_stats_print(cancel_write, NULL, i % 2 == 0 ? "" : "J");
    }
    return NULL;
}

static void *after_cancel_thread(void *arg)
{
    (void)arg;
    obm_stats_t s = {.size = sizeof s};
    void *p = obm_malloc(OPQ(64));
    obm_free(p);
    return (void *)(intptr_t)(obm_stats_get(&s) == 0 && p != NULL);
}

static void test_fork_and_cancel(void **state)
{
    (void)state;
    unsigned forks = (unsigned)scaled(12, 3);
    watchdog("fork_and_cancel", 300);
    static struct st_worker w[4];
    st_start(w, 4, 0xf0);
    for (unsigned i = 0; i < forks && !stopped(); i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS};
            for (size_t k = 0; k < sizeof sigs / sizeof *sigs; k++)
                signal(sigs[k], SIG_DFL);
            signal(SIGALRM, SIG_DFL);
            alarm(60);
            _exit(fork_child());
        }
        if (pid < 0) {
            record_failure("fork: %s", strerror(errno));
            break;
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            record_failure("fork %u: the child %s %d", i,
                           WIFEXITED(status) ? "exited with" : "was killed by signal",
                           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            break;
        }
        struct timespec pause = {.tv_nsec = 3000000};
        nanosleep(&pause, NULL);
    }
    st_stop_all(w, 4);
    report_failure();

    /* Cancelled inside the report's writer, a thread leaves no lock held.
     * Not under AddressSanitizer: the forced unwinding of a cancelled
     * thread leaves its frames' stack poisoned, and ASan then reports the
     * thread's own exit (a false positive of ASan's). */
#ifdef UNDER_ASAN
    const int rounds = 0;
#else
    const int rounds = 3;
#endif
    for (int round = 0; round < rounds; round++) {
        pthread_t t;
        atomic_store(&cancel_pieces, 0);
        assert_int_equal(pthread_create(&t, NULL, cancel_thread, NULL), 0);
        while (atomic_load(&cancel_pieces) < 50 * (round + 1))
            sched_yield();
        assert_int_equal(pthread_cancel(t), 0);
        void *ret;
        assert_int_equal(pthread_join(t, &ret), 0);
        assert_ptr_equal(ret, PTHREAD_CANCELED);
        stats_and_regions();
        assert_int_equal(capture_report(&cap, ""), 0);
        assert_int_equal(pthread_create(&t, NULL, after_cancel_thread, NULL), 0);
        assert_int_equal(pthread_join(t, &ret), 0);
        assert_ptr_equal(ret, (void *)1);
    }
    alarm(0);
}

/* ---- --dump DIR: the reports as files, for tests/api/stats_output.sh ---- */

static bool write_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return false;
    }
    return true;
}

/* A thread that leaves live blocks behind in its (then abandoned) heap. */
static void *dump_thread(void *arg)
{
    void **p = arg;
    for (size_t i = 0; i < 600; i++)
        p[i] = obm_malloc(OPQ(1 + (i * 37) % 300));
    return NULL;
}

/* Every field given a value worth comparing: several classes, pools full,
 * cached and untouched, remote frees, an abandoned heap, large blocks;
 * then the snapshot, the JSON report of the same quiet moment (nothing
 * allocates through obm in between: the writer appends into a static
 * buffer, stdio uses libc's malloc) and the map. */
static int dump(const char *dir)
{
    static void *p[5000], *q[600];
    for (size_t i = 0; i < 5000; i++)
        if ((p[i] = obm_malloc(OPQ(1 + (i * 7919) % 700))) == NULL)
            return 1;
    for (size_t i = 0; i < 5000; i += 3)
        obm_free(p[i]);
    /* 40 pools of 512 B, 10 of them emptied: full pools, cached ones. */
    static void *big[7 * 40];
    for (size_t i = 0; i < 7 * 40; i++)
        if ((big[i] = obm_malloc(OPQ(512))) == NULL)
            return 1;
    for (size_t i = 0; i < 7 * 10; i++)
        obm_free(big[i]);
    void *large = obm_malloc(OPQ(100000));
    pthread_t t;
    if (large == NULL || pthread_create(&t, NULL, dump_thread, q) != 0 ||
        pthread_join(t, NULL) != 0)
        return 1;
    for (size_t i = 0; i < 600; i += 2)
        obm_free(q[i]); /* into an ended thread's heap */
    obm_stats_t s = {.size = sizeof s};
    if (obm_stats_get(&s) != 0)
        return 1;
    int rc = capture_report(&cap, "J");
    if (rc != 0 || cap.overflow) {
        fprintf(stderr, "obm_stats_print(\"J\") returned %d\n", rc);
        return 1;
    }
    if (!write_file(dir, "report.json", cap.buf, cap.len))
        return 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/struct.json", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL || !write_struct_json(f, &s) || fclose(f) != 0)
        return 1;
    rc = capture_report(&cap, "M");
    if (rc != 0 || cap.overflow) {
        fprintf(stderr, "obm_stats_print(\"M\") returned %d\n", rc);
        return 1;
    }
    if (!write_file(dir, "map.svg", cap.buf, cap.len))
        return 1;
    for (size_t i = 0; i < 5000; i++)
        if (i % 3 != 0)
            obm_free(p[i]);
    for (size_t i = 1; i < 600; i += 2)
        obm_free(q[i]);
    for (size_t i = 7 * 10; i < 7 * 40; i++)
        obm_free(big[i]);
    obm_free(large);
    return 0;
}

/* A heap of more than 256 arenas gets the coarse map: one cell per arena,
 * no pool cells, the same totals, and a picture far smaller than 64 rows
 * of 64 cells per arena would make. */
static size_t count_of(const char *text, const char *word)
{
    size_t n = 0;
    for (const char *p = strstr(text, word); p != NULL; p = strstr(p + 1, word))
        n++;
    return n;
}

static void test_map_coarse(void **state)
{
    (void)state;
    enum { PER_POOL = 7, ARENAS = 300 }; /* 512-byte blocks, 7 to a pool */
    size_t n = (size_t)ARENAS * (OBM_ARENA_SIZE / OBM_POOL_SIZE) * PER_POOL;
    void **blocks =
        mmap(NULL, n * sizeof *blocks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(blocks != MAP_FAILED);
    for (size_t i = 0; i < n; i++)
        assert_non_null(blocks[i] = obm_malloc(OPQ(512)));
    obm_stats_t s = {.size = sizeof s};
    assert_int_equal(obm_stats_get(&s), 0);
    assert_true(s.arenas_current > 256);
    assert_int_equal(capture_report(&cap, "M"), 0);
    assert_false(cap.overflow);
    obm_stats_t t = {.size = sizeof t};
    assert_int_equal(obm_stats_get(&t), 0);
    assert_int_equal(t.arenas_current, s.arenas_current); /* the same heap drawn */
    assert_int_equal(count_of(cap.buf, "class=\"arena-cell\""), s.arenas_current);
    assert_int_equal(count_of(cap.buf, "class=\"pool"), 0);
    assert_non_null(strstr(cap.buf, "one cell per 256 KiB arena"));
    assert_true(cap.len < 400 * 1024);
    printf("# map_coarse: %zu arenas in %zu bytes of SVG\n", s.arenas_current, cap.len);
    for (size_t i = 0; i < n; i++)
        obm_free(blocks[i]);
    munmap(blocks, n * sizeof *blocks);
}

/* obm_version(): the library's version, as the header's version string
 * spells it. */
static void test_version(void **state)
{
    (void)state;
    int major, minor, patch;
    assert_int_equal(sscanf(OBM_VERSION_STRING, "%d.%d.%d", &major, &minor, &patch), 3);
    assert_int_equal(obm_version(), major * 10000 + minor * 100 + patch);
    assert_int_equal(obm_version(), OBM_VERSION);
}

int main(int argc, char **argv)
{
    /* Free pools go back to the OS on a clock, so two reads of a quiet
     * process can differ in which free pools are purged: these exact
     * comparisons run with purging off (tests/api/purge.c tests it). */
    if (obm_option_set("OBM_PURGE_DELAY_MS", "-1") != 0)
        return 99;
    if (argc == 3 && strcmp(argv[1], "--dump") == 0)
        return dump(argv[2]);
    const struct CMUnitTest tests[] = {
        /* First, while nothing else has allocated: the baselines are small. */
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_map_coarse),
        cmocka_unit_test(test_stats_exact),
        cmocka_unit_test(test_partial_free),
        cmocka_unit_test(test_large_blocks),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_diff),
        cmocka_unit_test(test_visit),
        cmocka_unit_test(test_text_report),
        cmocka_unit_test(test_report_formats),
        cmocka_unit_test(test_thread_exit_live_blocks),
        cmocka_unit_test(test_stats_under_threads),
        cmocka_unit_test(test_fork_and_cancel),
    };
    return RUN_TAP_TESTS(tests);
}
