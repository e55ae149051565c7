/* Arenas: mapping, the fullest-first `usable` list, free pools, and release.
 *
 * Invariants (checked by obmi_arenas_check):
 *  - `usable` holds exactly the arenas with nfreepools >= 1, sorted by
 *    nfreepools ascending; new pools come from its head, the fullest arena,
 *    so lightly used arenas drain and can be unmapped.
 *  - nfp2lasta[n] is the last arena in `usable` with nfreepools == n, or
 *    NULL; with it one pool moving in or out re-sorts in O(1).
 *  - the arenas with all 64 pools free (the spares) are at the tail;
 *    nspare counts them; more than arena_keep (at most
 *    OBMI_SPARES_WAITING more) only while the decay runs: they wait for a
 *    tick (purge.c); spare_old only on a spare.
 *  - an arena's free pages are dirty | purged | untouched, disjoint;
 *    dirty_old is a subset of dirty; an arena is on the `dirty` list
 *    (purge.c) exactly when its dirty mask is not zero.
 * A small pool maps a new arena only when `usable` is empty; a medium pool
 * when the first arenas it looks at have no free run of its size and
 * there is no spare (obmi_arenas_take_run).
 * The caller holds the manager's lock (obmi_arenas_lock).
 */
#include <errno.h>

#include "internal.h"

/* ---- arena objects: mmap'd slabs, recycled, never unmapped ---- */

#define ARENA_OBJECT_SLAB 65536

static obmi_arena *arena_objects_free;
static uint64_t arena_serial;

static obmi_arena *arena_object_new(void)
{
    if (arena_objects_free == NULL) {
        obmi_arena *slab = obmi_os_map(ARENA_OBJECT_SLAB);
        if (slab == NULL)
            return NULL;
        size_t n = ARENA_OBJECT_SLAB / sizeof(obmi_arena);
        for (size_t i = 0; i < n; i++) {
            slab[i].nextarena = arena_objects_free;
            arena_objects_free = &slab[i];
        }
    }
    obmi_arena *ao = arena_objects_free;
    arena_objects_free = ao->nextarena;
    *ao = (obmi_arena){.base = 0};
    return ao;
}

static void arena_object_free(obmi_arena *ao)
{
    *ao = (obmi_arena){.nextarena = arena_objects_free};
    arena_objects_free = ao;
}

void obmi_arenas_init(obmi_arenas *arenas)
{
    *arenas = (obmi_arenas)OBMI_ARENAS_DEFAULTS;
    pthread_mutex_init(&arenas->lock, NULL);
}

/* ---- the usable list ---- */

/* Remove ao from `usable`, keeping nfp2lasta right. */
static void arena_unlink_usable(obmi_arenas *arenas, obmi_arena *ao)
{
    uint32_t nf = ao->nfreepools;
    obmi_arena *prev = ao->prevarena;
    if (arenas->nfp2lasta[nf] == ao)
        arenas->nfp2lasta[nf] = (prev != NULL && prev->nfreepools == nf) ? prev : NULL;
    if (prev != NULL)
        prev->nextarena = ao->nextarena;
    else
        arenas->usable = ao->nextarena;
    if (ao->nextarena != NULL)
        ao->nextarena->prevarena = prev;
    ao->nextarena = ao->prevarena = NULL;
}

static void arena_link_after(obmi_arenas *arenas, obmi_arena *ao, obmi_arena *after)
{
    ao->prevarena = after;
    ao->nextarena = after != NULL ? after->nextarena : arenas->usable;
    if (ao->nextarena != NULL)
        ao->nextarena->prevarena = ao;
    if (after != NULL)
        after->nextarena = ao;
    else
        arenas->usable = ao;
}

/* ---- transitions ---- */

static void arena_resort(obmi_arenas *arenas, obmi_arena *ao, uint32_t old_nf, uint32_t nf);

/* Map a fresh arena: a spare, at the tail of `usable`. */
static obmi_arena *arena_new(obmi_arenas *arenas)
{
    obmi_secret_init(); /* the first arena: no block exists yet */
    void *base = obmi_os_map_aligned(OBMI_ARENA_SIZE, OBMI_ARENA_SIZE);
    if (base == NULL)
        return NULL;
    obmi_arena *ao = arena_object_new();
    if (ao == NULL || obmi_arena_map_set((uintptr_t)base, ao) != 0) {
        if (ao != NULL)
            arena_object_free(ao);
        obmi_os_unmap(base, OBMI_ARENA_SIZE);
        errno = ENOMEM;
        return NULL;
    }
    ao->base = (uintptr_t)base;
    ao->untouched = ~UINT64_C(0);
    for (unsigned i = 0; i < OBMI_POOLS_PER_ARENA; i++)
        atomic_init(&ao->pool_start[i], (uint8_t)i);
    ao->owner = arenas;
    ao->serial = ++arena_serial;
    ao->allnext = arenas->all;
    if (arenas->all != NULL)
        arenas->all->allprev = ao;
    arenas->all = ao;
    arena_resort(arenas, ao, 0, OBMI_POOLS_PER_ARENA);
    arenas->narenas_current++;
    arenas->narenas_allocated_total++;
    if (arenas->narenas_current > arenas->narenas_highwater)
        arenas->narenas_highwater = arenas->narenas_current;
    return ao;
}

/* An arena whose pools are all free, and not kept: unmap it. */
static void arena_empty_to_released(obmi_arenas *arenas, obmi_arena *ao)
{
    if (ao->dirty != 0)
        obmi_purge_list_remove(arenas, ao);
    arenas->pools_purged -= (size_t)__builtin_popcountll(ao->purged);
    if (ao->allprev != NULL)
        ao->allprev->allnext = ao->allnext;
    else
        arenas->all = ao->allnext;
    if (ao->allnext != NULL)
        ao->allnext->allprev = ao->allprev;
    obmi_arena_map_clear(ao->base);
    obmi_track_unmap((void *)ao->base, OBMI_ARENA_SIZE);
    obmi_os_unmap((void *)ao->base, OBMI_ARENA_SIZE);
    arena_object_free(ao);
    arenas->narenas_current--;
    arenas->narenas_released_total++;
}

/* Take one free pool of ao: a dirty one (still resident) first, then a
 * purged one, then an untouched one, lowest address first. */
static obmi_pool *arena_take_free(obmi_arenas *arenas, obmi_arena *ao)
{
    unsigned i;
    if (ao->dirty != 0) {
        i = (unsigned)__builtin_ctzll(ao->dirty);
        ao->dirty &= ~(UINT64_C(1) << i);
        ao->dirty_old &= ~(UINT64_C(1) << i);
        if (ao->dirty == 0)
            obmi_purge_list_remove(arenas, ao);
    } else if (ao->purged != 0) {
        i = (unsigned)__builtin_ctzll(ao->purged);
        ao->purged &= ~(UINT64_C(1) << i);
        arenas->pools_purged--;
    } else {
        OBMI_ASSERT(ao->untouched != 0);
        i = (unsigned)__builtin_ctzll(ao->untouched);
        ao->untouched &= ~(UINT64_C(1) << i);
    }
    obmi_pool *pool = (obmi_pool *)(ao->base + (uintptr_t)i * OBMI_POOL_SIZE);
    return pool; /* a purged or untouched header reads as zero, or stale */
}

obmi_pool *obmi_arenas_take_pool(obmi_arenas *arenas)
{
    obmi_arena *ao = arenas->usable;
    if (ao == NULL) {
        ao = arena_new(arenas);
        if (ao == NULL)
            return NULL;
        arenas->nspare++;
    }
    obmi_pool *pool = arena_take_free(arenas, ao);

    /* ao is the head, so it has the fewest free pools: it stays the head
     * with one fewer, and no other arena shares its new count. */
    uint32_t nf = ao->nfreepools;
    if (nf == OBMI_POOLS_PER_ARENA) {
        arenas->nspare--;
        ao->spare_old = false;
    }
    if (arenas->nfp2lasta[nf] == ao)
        arenas->nfp2lasta[nf] = NULL;
    ao->nfreepools = nf - 1;
    if (nf - 1 == 0) {
        arenas->usable = ao->nextarena;
        if (ao->nextarena != NULL)
            ao->nextarena->prevarena = NULL;
        ao->nextarena = NULL;
    } else {
        OBMI_ASSERT(arenas->nfp2lasta[nf - 1] == NULL);
        arenas->nfp2lasta[nf - 1] = ao;
    }
    return pool;
}

static size_t release_spares(obmi_arenas *arenas, size_t keep);

/* ---- medium pools: aligned runs of pages ---- */

/* Give ao, whose count of free pages goes from old_nf to nf, its place in
 * `usable` (ao is on it when old_nf > 0): first of the arenas with nf free
 * pages, behind the last with fewer, as a pool's return puts it (so the
 * spares stay oldest last). O(64) at worst. */
static void arena_resort(obmi_arenas *arenas, obmi_arena *ao, uint32_t old_nf, uint32_t nf)
{
    if (old_nf > 0)
        arena_unlink_usable(arenas, ao);
    ao->nfreepools = nf;
    if (nf == 0)
        return;
    obmi_arena *after = NULL;
    for (uint32_t n = nf; n-- > 0 && after == NULL;)
        after = arenas->nfp2lasta[n];
    arena_link_after(arenas, ao, after);
    if (arenas->nfp2lasta[nf] == NULL)
        arenas->nfp2lasta[nf] = ao;
}

static uint64_t run_mask(unsigned at, unsigned npages)
{
    return (npages == 64 ? ~UINT64_C(0) : (UINT64_C(1) << npages) - 1) << at;
}

/* The lowest free run of npages in ao aligned to npages; -1 if none. */
static int arena_find_run(const obmi_arena *ao, unsigned npages)
{
    uint64_t free = ao->dirty | ao->purged | ao->untouched;
    for (unsigned at = 0; at < OBMI_POOLS_PER_ARENA; at += npages)
        if ((free & run_mask(at, npages)) == run_mask(at, npages))
            return (int)at;
    return -1;
}

/* How many arenas with enough free pages a medium pool's search looks at,
 * fullest first, before it takes a spare or maps an arena. */
#define RUN_SEARCH 16

obmi_pool *obmi_arenas_take_run(obmi_arenas *arenas, unsigned npages)
{
    obmi_arena *ao = arenas->usable;
    int at = -1;
    for (unsigned looked = 0; ao != NULL && looked < RUN_SEARCH; ao = ao->nextarena) {
        if (ao->nfreepools < npages)
            continue;
        looked++;
        if ((at = arena_find_run(ao, npages)) >= 0)
            break;
    }
    if (at < 0) {
        ao = arenas->nfp2lasta[OBMI_POOLS_PER_ARENA]; /* a spare: every run of it is free */
        if (ao == NULL && (ao = arena_new(arenas)) != NULL)
            arenas->nspare++;
        if (ao == NULL)
            return NULL;
        at = 0;
    }
    uint32_t nf = ao->nfreepools;
    if (nf == OBMI_POOLS_PER_ARENA) {
        arenas->nspare--;
        ao->spare_old = false;
    }
    uint64_t run = run_mask((unsigned)at, npages);
    arenas->pools_purged -= (size_t)__builtin_popcountll(ao->purged & run);
    ao->lent_untouched |= ao->untouched & run;
    ao->lent_purged |= ao->purged & run;
    ao->purged &= ~run;
    ao->untouched &= ~run;
    if ((ao->dirty & run) != 0) {
        ao->dirty &= ~run;
        ao->dirty_old &= ~run;
        if (ao->dirty == 0)
            obmi_purge_list_remove(arenas, ao);
    }
    for (unsigned i = (unsigned)at + 1; i < (unsigned)at + npages; i++)
        atomic_store_explicit(&ao->pool_start[i], (uint8_t)at, memory_order_relaxed);
    arena_resort(arenas, ao, nf, nf - npages);
    return (obmi_pool *)(ao->base + ((uintptr_t)at << OBMI_POOL_SHIFT));
}

/* ao got pages back, nf free before, nf + n now: it becomes a spare, is
 * unmapped, or moves up `usable`. */
static void arena_pages_returned(obmi_arenas *arenas, obmi_arena *ao, uint32_t nf, uint32_t n)
{
    if (nf + n == OBMI_POOLS_PER_ARENA) {
        if (arenas->nspare >= arenas->arena_keep && arenas->purge_delay_ms <= 0) {
            /* Enough spares are kept already, and no decay: unmap it now. */
            if (nf > 0)
                arena_unlink_usable(arenas, ao);
            arena_empty_to_released(arenas, ao);
            return;
        }
        if (arenas->nspare >= arenas->arena_keep + OBMI_SPARES_WAITING)
            release_spares(arenas, arenas->nspare - 1); /* the oldest goes now */
        arenas->nspare++;
    }
    arena_resort(arenas, ao, nf, nf + n);
}

/* The pages it carved into go back dirty (they hold the program's bytes,
 * and now EMPTY headers); the pages past them were not written while it
 * served, and go back as they were taken: untouched, purged or dirty. */
void obmi_arenas_return_run(obmi_arenas *arenas, obmi_pool *pool)
{
    obmi_arena *ao = obmi_pool_arena(pool);
    unsigned npages = obmi_class_pages(pool->szidx);
    unsigned at = obmi_arena_page(ao, pool);
    unsigned touched = obmi_pool_clear_pages(pool);
    for (unsigned i = at + 1; i < at + npages; i++)
        atomic_store_explicit(&ao->pool_start[i], (uint8_t)i, memory_order_relaxed);
    uint64_t run = run_mask(at, npages), past = run & ~run_mask(at, touched);
    uint64_t untouched = past & ao->lent_untouched, purged = past & ao->lent_purged;
    uint64_t dirty = run & ~untouched & ~purged;
    ao->lent_untouched &= ~run;
    ao->lent_purged &= ~run;
    ao->untouched |= untouched;
    ao->purged |= purged;
    arenas->pools_purged += (size_t)__builtin_popcountll(purged);
    if (ao->dirty == 0)
        obmi_purge_list_add(arenas, ao);
    ao->dirty |= dirty;
    arenas->dirtied = true;
    arena_pages_returned(arenas, ao, ao->nfreepools, npages);
}

void obmi_arenas_return_pool(obmi_arenas *arenas, obmi_pool *pool)
{
    obmi_arena *ao = obmi_pool_arena(pool);
    uint32_t nf = ao->nfreepools;
    obmi_pool_set_empty(pool);
    if (ao->dirty == 0)
        obmi_purge_list_add(arenas, ao);
    ao->dirty |= UINT64_C(1) << obmi_arena_page(ao, pool);
    arenas->dirtied = true;

    if (nf + 1 == OBMI_POOLS_PER_ARENA) {
        arena_pages_returned(arenas, ao, nf, 1); /* a spare now */
        return;
    }
    if (nf == 0) {
        /* It was full, so it was on no list: it becomes the fullest usable. */
        ao->nfreepools = 1;
        arena_link_after(arenas, ao, NULL);
        if (arenas->nfp2lasta[1] == NULL)
            arenas->nfp2lasta[1] = ao;
        return;
    }
    /* Move ao behind the last arena that still has nf free pools: it then
     * leads the group with nf + 1. */
    obmi_arena *last = arenas->nfp2lasta[nf];
    if (last == ao) {
        obmi_arena *prev = ao->prevarena;
        arenas->nfp2lasta[nf] = (prev != NULL && prev->nfreepools == nf) ? prev : NULL;
    } else {
        arena_unlink_usable(arenas, ao);
        arena_link_after(arenas, ao, last);
    }
    ao->nfreepools = nf + 1;
    if (arenas->nfp2lasta[nf + 1] == NULL)
        arenas->nfp2lasta[nf + 1] = ao;
}

/* Unmap entirely free arenas (spares, at the tail of `usable`) until at
 * most keep are left: how many went. */
static void release_spare(obmi_arenas *arenas, obmi_arena *spare)
{
    arena_unlink_usable(arenas, spare);
    arena_empty_to_released(arenas, spare);
    arenas->nspare--;
}

static size_t release_spares(obmi_arenas *arenas, size_t keep)
{
    size_t n = 0;
    obmi_arena *spare;
    while (arenas->nspare > keep && (spare = arenas->nfp2lasta[OBMI_POOLS_PER_ARENA]) != NULL) {
        release_spare(arenas, spare);
        n++;
    }
    return n;
}

/* Unmap every arena whose pools are all free (the spares): how many. */
size_t obmi_arenas_release_empty(obmi_arenas *arenas)
{
    return release_spares(arenas, 0);
}

/* At a decay tick: unmap, oldest first, the spares beyond arena_keep that
 * were spares at the last tick too; the spares left become old. */
void obmi_arenas_decay_spares(obmi_arenas *arenas)
{
    obmi_arena *ao = arenas->nfp2lasta[OBMI_POOLS_PER_ARENA];
    while (ao != NULL && ao->nfreepools == OBMI_POOLS_PER_ARENA) {
        obmi_arena *prev = ao->prevarena;
        if (ao->spare_old && arenas->nspare > arenas->arena_keep)
            release_spare(arenas, ao);
        else
            ao->spare_old = true;
        ao = prev;
    }
}

/* The purge policy, from the options: arenas may exist already (malloc can
 * run before the constructor), so spares beyond the new keep go now. */
void obmi_arenas_configure(obmi_arenas *arenas, long purge_delay_ms, unsigned advice, uint32_t keep)
{
    arenas->purge_delay_ms = purge_delay_ms;
    arenas->purge_advice = (uint8_t)advice;
    arenas->arena_keep = keep;
    release_spares(arenas, keep);
    obmi_arenas_decay(arenas);
}

/* ---- invariant walkers ---- */

bool obmi_arena_check(const obmi_arena *ao)
{
    if (ao->base == 0 || (ao->base & (OBMI_ARENA_SIZE - 1)) != 0)
        return false;
    if (obmi_arena_map_lookup((const void *)ao->base) != ao ||
        obmi_arena_map_lookup((const void *)(ao->base + OBMI_ARENA_SIZE - 1)) != ao)
        return false;
    uint64_t free = ao->dirty | ao->purged | ao->untouched;
    if ((ao->dirty & ao->purged) != 0 || ((ao->dirty | ao->purged) & ao->untouched) != 0 ||
        (ao->dirty_old & ~ao->dirty) != 0 || ((ao->lent_untouched | ao->lent_purged) & free) != 0 ||
        (ao->lent_untouched & ao->lent_purged) != 0)
        return false;
    uint32_t nfree = (uint32_t)__builtin_popcountll(ao->dirty | ao->purged | ao->untouched);
    if (ao->nfreepools != nfree)
        return false;
    for (uint32_t i = 0; i < OBMI_POOLS_PER_ARENA; i++) {
        const obmi_pool *p = (const obmi_pool *)(ao->base + (uintptr_t)i * OBMI_POOL_SIZE);
        unsigned start = atomic_load_explicit(&ao->pool_start[i], memory_order_relaxed);
        if (start != i) {
            /* A later page of a medium pool in service that covers it. */
            const obmi_pool *head =
                (const obmi_pool *)(ao->base + (uintptr_t)start * OBMI_POOL_SIZE);
            if (start > i || ((ao->dirty | ao->purged | ao->untouched) >> i) & 1 ||
                head->szidx < OBMI_NSMALL || head->szidx >= OBMI_NCLASSES ||
                start + obmi_class_pages(head->szidx) <= i)
                return false;
            continue;
        }
        if (((ao->dirty | ao->purged | ao->untouched) >> i) & 1 && ao->run_carved[i] != 0)
            return false; /* a free page starts no run */
        if ((ao->untouched >> i) & 1) {
            if (p->state != OBMI_POOL_UNUSED)
                return false;
            continue;
        }
        if ((ao->purged >> i) & 1)
            continue; /* not resident: its header is not read */
        if (p->state == OBMI_POOL_UNUSED || !obmi_pool_check(p))
            return false;
        if (((ao->dirty >> i) & 1) && p->state != OBMI_POOL_EMPTY)
            return false;
    }
    return true;
}

bool obmi_arenas_check(const obmi_arenas *arenas)
{
    const obmi_arena *last[OBMI_POOLS_PER_ARENA + 1] = {NULL};
    size_t nusable = 0, nall = 0, nspare = 0, npurged = 0, ndirty = 0;
    uint32_t prevnf = 1;
    for (const obmi_arena *ao = arenas->usable; ao != NULL; ao = ao->nextarena) {
        if (ao->nfreepools < prevnf || ao->nfreepools > OBMI_POOLS_PER_ARENA)
            return false; /* unsorted, or a full arena on the list */
        if (ao->nextarena != NULL && ao->nextarena->prevarena != ao)
            return false;
        if (ao == arenas->usable && ao->prevarena != NULL)
            return false;
        prevnf = ao->nfreepools;
        last[ao->nfreepools] = ao;
        nspare += ao->nfreepools == OBMI_POOLS_PER_ARENA;
        if (ao->spare_old && ao->nfreepools != OBMI_POOLS_PER_ARENA)
            return false;
        nusable++;
    }
    for (size_t n = 0; n <= OBMI_POOLS_PER_ARENA; n++)
        if (arenas->nfp2lasta[n] != last[n])
            return false;
    for (const obmi_arena *ao = arenas->all; ao != NULL; ao = ao->allnext) {
        if (ao->owner != arenas || !obmi_arena_check(ao))
            return false;
        if (ao->allnext != NULL && ao->allnext->allprev != ao)
            return false;
        nall++;
        nusable -= ao->nfreepools > 0; /* every arena with a free pool is usable */
        npurged += (size_t)__builtin_popcountll(ao->purged);
        ndirty += ao->dirty != 0;
    }
    const obmi_arena *prev = NULL;
    for (const obmi_arena *ao = arenas->dirty; ao != NULL; ao = ao->dirtynext) {
        if (ao->dirty == 0 || ao->dirtyprev != prev || ndirty-- == 0)
            return false;
        prev = ao;
    }
    return prev == arenas->dirtylast && ndirty == 0 && nspare == arenas->nspare &&
           nspare <= arenas->arena_keep + (arenas->purge_delay_ms > 0 ? OBMI_SPARES_WAITING : 0) &&
           nusable == 0 && nall == arenas->narenas_current && npurged == arenas->pools_purged;
}

size_t obmi_arenas_count_usable(const obmi_arenas *arenas)
{
    size_t n = 0;
    for (const obmi_arena *ao = arenas->usable; ao != NULL; ao = ao->nextarena)
        n++;
    return n;
}
