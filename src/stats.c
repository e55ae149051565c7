/* Statistics: a walk over every arena and pool under the arena manager's
 * lock (as CPython's sys._debugmallocstats walks its arenas), plus the
 * heaps' own event counts. Nothing here runs on the fast path.
 *
 * The walk reads pool headers that their owning threads write without a
 * lock: each value read is one the owner wrote, so every sum holds by
 * construction (each pool's blocks are split into in use and free from one
 * read of its count, each arena's 64 pools into serving and empty), while
 * the values themselves are exact only when no other thread runs. The lock
 * keeps arenas mapped and arena free lists still while the walk reads
 * them; pools never touched since their arena was mapped are not read, so
 * the walk faults in no page. */
#include <errno.h>
#include <stddef.h>

#include "internal.h"

/* ---- the walk ---- */

/* A read of a word its owner writes with plain stores, without a lock: a
 * plain load (an atomic builtin would be tracked by ThreadSanitizer even
 * where it does not instrument), in functions marked not to be
 * instrumented. state and carved are written atomically (remote freers
 * read them too), so their own readers serve. */
#define READ_RACY(x) (*(volatile __typeof__(x) *)&(x))
#define RACY         __attribute__((no_sanitize("thread")))

/* Blocks on a pool's remote list: freed by another thread, still counted
 * in ref_count until the owner takes them in. The owner may take the list
 * and reuse its blocks at any moment, so every link is checked to be a
 * block start in this pool before it is followed, and the count is
 * bounded: while threads run it is an estimate, never a wild read. */
OBMI_RACY static uint32_t remote_count(const obmi_pool *pool, const obmi_class_info *ci,
                                       uint32_t limit)
{
    uintptr_t head = atomic_load_explicit(&pool->remote, memory_order_acquire);
    const obmi_block *b = (const obmi_block *)(head & ~OBMI_REMOTE_FLAGS);
    uint32_t n = 0;
    while (b != NULL && n < limit && obmi_pool_is_block_start_of(pool, b, ci)) {
        n++;
        b = obmi_block_next_racy(b);
    }
    return n;
}

/* Pool i of ao. Free pools are known from the arena's masks: a purged
 * pool's header is not read (it is not resident). */
RACY static void pool_region(const obmi_arena *ao, unsigned i, obm_region_t *r)
{
    const obmi_pool *pool = (const obmi_pool *)(ao->base + (uintptr_t)i * OBMI_POOL_SIZE);
    *r = (obm_region_t){.kind = OBM_REGION_POOL,
                        .address = pool,
                        .size = OBMI_POOL_SIZE,
                        .arena_serial = ao->serial,
                        .size_class = -1};
    if ((ao->untouched >> i) & 1) {
        r->state = OBM_POOL_UNTOUCHED;
        return;
    }
    if ((ao->purged >> i) & 1) {
        r->state = OBM_POOL_PURGED;
        return;
    }
    if ((ao->dirty >> i) & 1) {
        r->state = OBM_POOL_EMPTY;
        return;
    }
    unsigned state = obmi_pool_state(pool);
    if (state != OBMI_POOL_USED && state != OBMI_POOL_FULL) {
        r->state = OBM_POOL_CACHED; /* taken from the arena, serving no class */
        return;
    }
    unsigned c = obmi_class_bounded(READ_RACY(pool->szidx));
    const obmi_class_info *ci = &obmi_classes[c];
    uint32_t ref = READ_RACY(pool->ref_count);
    if (ref > ci->nblocks)
        ref = ci->nblocks;
    uint32_t remote = remote_count(pool, ci, ref); /* ci: from the class read once above */
    r->size_class = (int)c;
    r->size = ci->pool_bytes;
    r->block_size = ci->size;
    r->capacity = ci->nblocks;
    r->used = ref - remote;
    r->remote = remote;
    r->state = r->used == r->capacity ? OBM_POOL_FULL : OBM_POOL_USED;
}

/* Under the manager lock: the arena's region, then its pools' (pools must
 * hold OBMI_POOLS_PER_ARENA). */
static void arena_regions(const obmi_arena *ao, obm_region_t *r, obm_region_t *pools)
{
    size_t serving = 0;
    for (unsigned i = 0; i < OBMI_POOLS_PER_ARENA; i++) {
        unsigned start = atomic_load_explicit(&ao->pool_start[i], memory_order_relaxed);
        if (start < i) {
            /* A later page of the medium pool at start: as its first page
             * says, at its own address. A pool just taken and not yet put
             * into service (its header not yet written) is cached, page
             * by page. */
            bool covered =
                pools[start].size_class >= 0 && start + pools[start].size / OBMI_POOL_SIZE > i;
            pools[i] = covered ? pools[start]
                               : (obm_region_t){.kind = OBM_REGION_POOL,
                                                .state = OBM_POOL_CACHED,
                                                .arena_serial = ao->serial,
                                                .size_class = -1};
            pools[i].state = covered ? OBM_POOL_CONTINUED : OBM_POOL_CACHED;
            pools[i].address = (const void *)(ao->base + (uintptr_t)i * OBMI_POOL_SIZE);
            pools[i].size = OBMI_POOL_SIZE;
            continue;
        }
        pool_region(ao, i, &pools[i]);
        serving += pools[i].size_class >= 0;
    }
    *r = (obm_region_t){.kind = OBM_REGION_ARENA,
                        .address = (const void *)ao->base,
                        .size = OBMI_ARENA_SIZE,
                        .arena_serial = ao->serial,
                        .size_class = -1,
                        .used = serving,
                        .capacity = OBMI_POOLS_PER_ARENA};
    r->state = serving > 0                              ? OBM_ARENA_USED
               : ao->nfreepools == OBMI_POOLS_PER_ARENA ? OBM_ARENA_SPARE
                                                        : OBM_ARENA_EMPTY;
}

/* Under the manager lock: fn for every arena and pool, oldest arena first. */
static void walk_locked(const obmi_arenas *arenas, void (*fn)(const obm_region_t *, void *),
                        void *arg)
{
    const obmi_arena *oldest = arenas->all;
    while (oldest != NULL && oldest->allnext != NULL)
        oldest = oldest->allnext;
    for (const obmi_arena *ao = oldest; ao != NULL; ao = ao->allprev) {
        obm_region_t arena, pools[OBMI_POOLS_PER_ARENA];
        arena_regions(ao, &arena, pools);
        fn(&arena, arg);
        for (unsigned i = 0; i < OBMI_POOLS_PER_ARENA; i++)
            fn(&pools[i], arg);
    }
}

/* ---- obm_stats_get ---- */

static void stats_add_region(const obm_region_t *r, void *arg)
{
    obm_stats_t *s = arg;
    if (r->kind != OBM_REGION_POOL || r->state == OBM_POOL_CONTINUED)
        return; /* a medium pool is counted at its first page */
    if (r->size_class < 0) {
        s->pools_empty++;
        s->pools_cached += r->state == OBM_POOL_CACHED;
        s->pools_untouched += r->state == OBM_POOL_UNTOUCHED;
        s->pools_purged += r->state == OBM_POOL_PURGED;
        s->bytes_empty_pools += OBMI_POOL_SIZE;
        return;
    }
    obm_class_stats_t *k = &s->classes[r->size_class];
    size_t nfree = r->capacity - r->used;
    k->pools++;
    k->blocks_in_use += r->used;
    k->blocks_free += nfree;
    k->blocks_remote += r->remote;
    s->pools_in_use++;
    s->pages_in_use += r->size / OBMI_POOL_SIZE;
    s->pools_full += r->state == OBM_POOL_FULL;
    s->bytes_in_use += r->used * r->block_size;
    s->bytes_free_blocks += nfree * r->block_size;
    s->bytes_pool_headers += OBMI_POOL_HEADER;
    s->bytes_quantization += r->size - OBMI_POOL_HEADER - r->capacity * r->block_size;
}

/* Counts only grow, but two reads while threads run can see a free
 * counted before its malloc: a level never goes below zero. */
static size_t level(size_t in, size_t out)
{
    return in > out ? in - out : 0;
}

/* A struct ready for the walk to add to: zero, but the version and the
 * block sizes. */
static void stats_start(obm_stats_t *s)
{
    size_t size = s->size;
    *s = (obm_stats_t){.size = size, .version = OBM_STATS_VERSION};
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        s->classes[c].block_size = obmi_classes[c].size;
}

/* Under the manager lock, after the walk: the arena counts and the heaps'
 * event counts. */
static void stats_finish_locked(const obmi_arenas *arenas, obm_stats_t *s)
{
    obmi_heaps_sum heaps;
    obmi_heaps_sum_locked(&heaps);
    s->arenas_current = arenas->narenas_current;
    s->arenas_highwater = arenas->narenas_highwater;
    s->arenas_allocated_total = arenas->narenas_allocated_total;
    s->arenas_released_total = arenas->narenas_released_total;
    s->bytes_mapped = s->arenas_current * OBMI_ARENA_SIZE;
    s->bytes_purged = s->pools_purged * OBMI_POOL_SIZE;
    s->bytes_resident = s->bytes_mapped - s->bytes_purged - s->pools_untouched * OBMI_POOL_SIZE;
    s->purges_total = arenas->purges_total;
    s->pools_purged_total = arenas->pools_purged_total;
    const struct obmi_heap_counts *k = &heaps.counts;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        s->classes[c].mallocs = k->mallocs[c];
        s->classes[c].frees = k->frees[c];
        s->classes[c].remote_frees = k->remote_frees[c];
    }
    s->large_allocs_current = level(k->large[OBMI_LARGE_ALLOC], k->large[OBMI_LARGE_FREE]);
    s->large_allocs_total = k->large[OBMI_LARGE_ALLOC];
    s->heaps_live = heaps.live;
    s->heaps_abandoned = heaps.abandoned;
    s->heaps_created = heaps.created;
    s->heaps_adopted = k->adoptions;
    s->pools_taken_total = k->pools_taken;
    s->pools_returned_total = k->pools_returned;
    s->slow_mallocs_total = k->slow_mallocs;
    s->slow_frees_total = k->slow_frees;
    s->carves_total = k->carves;
    s->remote_collects_total = k->remote_collects;
    s->pools_used_to_full_total = k->used_to_full;
    s->pools_full_to_used_total = k->full_to_used;
    s->pools_emptied_total = k->emptied;
    s->pools_from_arenas_total = k->pools_from_arenas;
    s->pools_to_arenas_total = k->pools_to_arenas;
    s->errors_invalid_pointer = obmi_error_count(OBMI_ERROR_INVALID_POINTER);
    s->errors_double_free = obmi_error_count(OBMI_ERROR_DOUBLE_FREE);
    s->errors_corrupted_list = obmi_error_count(OBMI_ERROR_CORRUPTED_LIST);
    s->errors_write_after_free = obmi_error_count(OBMI_ERROR_WRITE_AFTER_FREE);
    s->errors_overflow = obmi_error_count(OBMI_ERROR_OVERFLOW);
}

/* After the manager lock: what the backing allocator holds, asked of it
 * (it takes its own locks, never under ours). */
static void stats_finish_backing(obm_stats_t *s)
{
    s->large_bytes_current = obmi_backing_bytes_in_use();
}

OBMI_EXPORT int obm_stats_get(obm_stats_t *out)
{
    if (out == NULL || out->size != sizeof(obm_stats_t))
        return EINVAL;
    obmi_arenas *arenas = &obmi_main_arenas;
    stats_start(out);
    obmi_arenas_lock(arenas);
    walk_locked(arenas, stats_add_region, out);
    stats_finish_locked(arenas, out);
    obmi_arenas_unlock(arenas);
    stats_finish_backing(out);
    return 0;
}

OBMI_EXPORT int obm_counters_get(obm_counters_t *out)
{
    if (out == NULL || out->size != sizeof(obm_counters_t))
        return EINVAL;
    obmi_arenas *arenas = &obmi_main_arenas;
    obmi_heaps_sum heaps;
    obmi_arenas_lock(arenas);
    obmi_heaps_sum_locked(&heaps);
    *out = (obm_counters_t){.size = sizeof(obm_counters_t),
                            .pools_taken = heaps.counts.pools_taken,
                            .pools_returned = heaps.counts.pools_returned,
                            .heaps_created = heaps.created,
                            .heaps_adopted = heaps.counts.adoptions,
                            .heaps_live = heaps.live,
                            .heaps_abandoned = heaps.abandoned,
                            .arenas_current = arenas->narenas_current,
                            .arenas_highwater = arenas->narenas_highwater};
    obmi_arenas_unlock(arenas);
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        out->mallocs += heaps.counts.mallocs[c];
        out->frees += heaps.counts.frees[c];
        out->remote_frees += heaps.counts.remote_frees[c];
    }
    return 0;
}

/* ---- the field tables: obm_stats_diff, the JSON report, docs/statistics.md ---- */

#define FIELD(name, kind, doc)                                                                     \
    {                                                                                              \
#name, offsetof(obm_stats_t, name), OBMI_FIELD_##kind, doc                                 \
    }
#define CLASS_FIELD(name, kind, doc)                                                               \
    {                                                                                              \
#name, offsetof(obm_class_stats_t, name), OBMI_FIELD_##kind, doc                           \
    }

const obmi_stats_field obmi_stats_fields[] = {
    FIELD(size, FIXED, "set by the caller to `sizeof(obm_stats_t)`"),
    FIELD(version, FIXED, "`OBM_STATS_VERSION`: the layout of this struct"),
    FIELD(arenas_current, LEVEL, "arenas mapped now"),
    FIELD(arenas_highwater, FIXED, "most arenas mapped at once"),
    FIELD(arenas_allocated_total, COUNT, "arenas mapped, ever"),
    FIELD(arenas_released_total, COUNT, "arenas unmapped, ever"),
    FIELD(pools_in_use, LEVEL, "pools serving a size class"),
    FIELD(pools_full, LEVEL, "of those, pools with every block handed out"),
    FIELD(pages_in_use, LEVEL,
          "the pages of the pools serving a class: one a small pool, 4 to 64 a medium one"),
    FIELD(pools_empty, LEVEL,
          "free pages, each a pool serving no class: free in their arena, cached by a heap, or "
          "untouched"),
    FIELD(pools_cached, LEVEL,
          "of those, pages of the empty pools a thread's heap keeps for reuse (a medium pool's "
          "run counts all its pages)"),
    FIELD(pools_untouched, LEVEL,
          "of those, pools never used since their arena was mapped (not resident)"),
    FIELD(pools_purged, LEVEL,
          "of those, free pools whose page went back to the OS (not resident; reused in place)"),
    FIELD(bytes_mapped, LEVEL, "`arenas_current` × 256 KiB; the next five add up to it"),
    FIELD(bytes_in_use, LEVEL, "bytes of blocks handed out (block sizes, not requested sizes)"),
    FIELD(bytes_free_blocks, LEVEL, "bytes of free blocks in pools serving a class"),
    FIELD(bytes_empty_pools, LEVEL, "`pools_empty` × 4096"),
    FIELD(bytes_pool_headers, LEVEL, "64 bytes per pool serving a class"),
    FIELD(bytes_quantization, LEVEL,
          "the tail of each pool serving a class too small for one more block"),
    FIELD(bytes_purged, LEVEL, "`pools_purged` × 4096 (part of `bytes_empty_pools`)"),
    FIELD(bytes_resident, LEVEL,
          "`bytes_mapped` less purged and untouched pools: the most obm's arenas hold resident"),
    FIELD(purges_total, COUNT,
          "`madvise` calls that gave pages back, ever (a run of adjacent "
          "pools is one call)"),
    FIELD(pools_purged_total, COUNT, "pools given back to the OS, ever"),
    FIELD(large_allocs_current, LEVEL,
          "blocks held from the backing allocator (requests over 32768 bytes or aligned over 16)"),
    FIELD(large_bytes_current, LEVEL,
          "bytes the backing allocator has in use, its own count when the statistics are "
          "taken (glibc: `mallinfo2` `uordblks + hblkhd`, its thread cache included)"),
    FIELD(large_allocs_total, COUNT, "requests served by the backing allocator, ever"),
    FIELD(heaps_live, LEVEL, "thread heaps owned by a running thread"),
    FIELD(heaps_abandoned, LEVEL, "heaps whose thread ended, waiting to be adopted"),
    FIELD(heaps_created, COUNT, "thread heaps made, ever"),
    FIELD(heaps_adopted, COUNT, "abandoned heaps taken over by a new thread, ever"),
    FIELD(pools_taken_total, COUNT, "pools heaps took from arenas or their cache, ever"),
    FIELD(pools_returned_total, COUNT, "pools heaps gave back, ever"),
    FIELD(slow_mallocs_total, COUNT,
          "mallocs that left the fast path (the class's first pool had no free block), ever"),
    FIELD(slow_frees_total, COUNT,
          "owner's frees that left the fast path (the pool was full or became empty), ever"),
    FIELD(carves_total, COUNT, "slow mallocs that carved never-used blocks (16 at most), ever"),
    FIELD(remote_collects_total, COUNT,
          "remote-free lists an owner took in (one per pool per take), ever"),
    FIELD(pools_used_to_full_total, COUNT,
          "pools found with every block handed out, taken off their class's list, ever"),
    FIELD(pools_full_to_used_total, COUNT, "full pools put back on their list by a free, ever"),
    FIELD(pools_emptied_total, COUNT,
          "pools a slow path found with no block in use (then cached or given back, or kept "
          "as their class's last; a last pool the fast path empties stays without a count), ever"),
    FIELD(pools_from_arenas_total, COUNT,
          "of `pools_taken_total`, pools taken from the arenas under the manager lock, ever"),
    FIELD(pools_to_arenas_total, COUNT,
          "pools given back to the arenas under the manager lock (cached ones included), ever"),
    FIELD(errors_invalid_pointer, COUNT,
          "`free`, `realloc` or `malloc_usable_size` of a pointer into an arena that is no "
          "block start, ever (counted when `OBM_ON_ERROR=report` lets the process go on)"),
    FIELD(errors_double_free, COUNT,
          "the same of a block that was already free (a double free), ever"),
    FIELD(errors_corrupted_list, COUNT, "free lists found with an overwritten link, ever"),
    FIELD(errors_write_after_free, COUNT,
          "freed blocks found written to when handed out again (`OBM_JUNK`), ever"),
    FIELD(errors_overflow, COUNT,
          "blocks found with their canary overwritten (`OBM_CANARY`), ever"),
};
const size_t obmi_stats_nfields = sizeof obmi_stats_fields / sizeof obmi_stats_fields[0];

const obmi_stats_field obmi_class_fields[] = {
    CLASS_FIELD(block_size, FIXED, "bytes per block: 16 × (class + 1)"),
    CLASS_FIELD(pools, LEVEL, "pools serving this class"),
    CLASS_FIELD(blocks_in_use, LEVEL, "blocks handed out and not freed"),
    CLASS_FIELD(blocks_free, LEVEL, "free blocks in those pools, carved or not"),
    CLASS_FIELD(blocks_remote, LEVEL,
                "of those, blocks freed by another thread that the owner has not taken back yet"),
    CLASS_FIELD(mallocs, COUNT, "blocks handed out, ever, summed over heaps"),
    CLASS_FIELD(frees, COUNT, "blocks taken back, ever (a remote free once its owner collects it)"),
    CLASS_FIELD(remote_frees, COUNT, "of those, frees by a thread other than the block's owner"),
};
const size_t obmi_class_nfields = sizeof obmi_class_fields / sizeof obmi_class_fields[0];

static inline size_t *field_at(void *base, const obmi_stats_field *f)
{
    return (size_t *)((char *)base + f->offset);
}

static void diff_fields(const obmi_stats_field *fields, size_t n, const void *before,
                        const void *after, void *delta)
{
    for (size_t i = 0; i < n; i++) {
        size_t b = *field_at((void *)before, &fields[i]);
        size_t a = *field_at((void *)after, &fields[i]);
        *field_at(delta, &fields[i]) = fields[i].kind == OBMI_FIELD_FIXED ? a : a - b;
    }
}

OBMI_EXPORT void obm_stats_diff(const obm_stats_t *before, const obm_stats_t *after,
                                obm_stats_t *delta)
{
    obm_stats_t d; /* before or after may be delta */
    diff_fields(obmi_stats_fields, obmi_stats_nfields, before, after, &d);
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        diff_fields(obmi_class_fields, obmi_class_nfields, &before->classes[c], &after->classes[c],
                    &d.classes[c]);
    *delta = d;
}

/* ---- obm_visit: a snapshot, then the calls ---- */

typedef struct snapshot {
    obm_region_t *regions;
    size_t n, cap;
    obm_stats_t *stats;
} snapshot;

static void snapshot_add(const obm_region_t *r, void *arg)
{
    snapshot *s = arg;
    if (s->n < s->cap)
        s->regions[s->n++] = *r;
    stats_add_region(r, s->stats);
}

/* Every region, copied under the lock into an mmap'd array (no malloc:
 * the caller may be inside the drop-in's report at exit), and *stats
 * (size set by the caller) from the same walk. */
int obmi_snapshot_take(obm_region_t **regions, size_t *n, size_t *mapped, obm_stats_t *stats)
{
    obmi_arenas *arenas = &obmi_main_arenas;
    for (;;) {
        obmi_arenas_lock(arenas);
        size_t want = arenas->narenas_current;
        obmi_arenas_unlock(arenas);
        size_t cap = (want + 4) * (OBMI_POOLS_PER_ARENA + 1);
        size_t bytes = cap * sizeof(obm_region_t);
        snapshot s = {.regions = obmi_os_map(bytes), .n = 0, .cap = cap, .stats = stats};
        if (s.regions == NULL)
            return ENOMEM;
        stats_start(stats);
        obmi_arenas_lock(arenas);
        bool fits = arenas->narenas_current * (OBMI_POOLS_PER_ARENA + 1) <= cap;
        if (fits) {
            walk_locked(arenas, snapshot_add, &s);
            stats_finish_locked(arenas, stats);
        }
        obmi_arenas_unlock(arenas);
        if (fits) {
            stats_finish_backing(stats);
            *regions = s.regions;
            *n = s.n;
            *mapped = bytes;
            return 0;
        }
        obmi_os_unmap(s.regions, bytes); /* arenas were added meanwhile: again */
    }
}

OBMI_EXPORT int obm_visit(obm_visit_fn fn, void *arg)
{
    if (fn == NULL)
        return EINVAL;
    obm_region_t *regions;
    size_t n, bytes;
    obm_stats_t stats = {.size = sizeof stats};
    int rc = obmi_snapshot_take(&regions, &n, &bytes, &stats);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = fn(&regions[i], arg);
    obmi_os_unmap(regions, bytes);
    return rc;
}
