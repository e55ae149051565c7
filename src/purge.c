/* Purge: free pools' pages back to the OS with madvise, on a decay (see
 * types.h, PURGE), and all at once for obm_trim.
 *
 * The manager's `dirty` list holds the arenas with a dirty pool in the
 * order they got their first one. A tick walks it; arenas with no dirty
 * pool cost nothing. Everything here runs under the manager's lock: at the
 * end of a slow path that took it anyway (obmi_arenas_decay), or taken by
 * a malloc slow path that found a tick due (obmi_arenas_decay_due, the
 * only reader without the lock, of due_ms). The madvise calls are made
 * with the lock held: a purge round is bounded by the pools that went free
 * in the two delays before it. */
#include "internal.h"

void obmi_purge_list_add(obmi_arenas *arenas, obmi_arena *ao)
{
    ao->dirtynext = NULL;
    ao->dirtyprev = arenas->dirtylast;
    if (arenas->dirtylast != NULL)
        arenas->dirtylast->dirtynext = ao;
    else
        arenas->dirty = ao;
    arenas->dirtylast = ao;
}

void obmi_purge_list_remove(obmi_arenas *arenas, obmi_arena *ao)
{
    if (ao->dirtyprev != NULL)
        ao->dirtyprev->dirtynext = ao->dirtynext;
    else
        arenas->dirty = ao->dirtynext;
    if (ao->dirtynext != NULL)
        ao->dirtynext->dirtyprev = ao->dirtyprev;
    else
        arenas->dirtylast = ao->dirtyprev;
    ao->dirtynext = ao->dirtyprev = NULL;
}

/* The run of set bits of mask that starts at its lowest set bit. */
static uint64_t lowest_run(uint64_t mask)
{
    unsigned start = (unsigned)__builtin_ctzll(mask);
    uint64_t shifted = ~(mask >> start);
    unsigned len = shifted == 0 ? 64 - start : (unsigned)__builtin_ctzll(shifted);
    uint64_t ones = len == 64 ? ~UINT64_C(0) : (UINT64_C(1) << len) - 1;
    return ones << start;
}

/* Purge the dirty pools of ao in mask (a subset of ao->dirty), one madvise
 * per run of adjacent pools. Returns how many were purged. */
static size_t arena_purge(obmi_arenas *arenas, obmi_arena *ao, uint64_t mask)
{
    size_t n = 0;
    while (mask != 0) {
        uint64_t run = lowest_run(mask);
        mask &= ~run;
        unsigned start = (unsigned)__builtin_ctzll(run);
        size_t count = (size_t)__builtin_popcountll(run);
        void *addr = (void *)(ao->base + (uintptr_t)start * OBMI_POOL_SIZE);
        if (obmi_os_purge(addr, count * OBMI_POOL_SIZE, arenas->purge_advice) != 0)
            continue; /* they stay dirty, to be tried again */
        arenas->purges_total++;
        ao->dirty &= ~run;
        ao->dirty_old &= ~run;
        ao->purged |= run;
        n += count;
    }
    arenas->pools_purged += n;
    arenas->pools_purged_total += n;
    if (ao->dirty == 0)
        obmi_purge_list_remove(arenas, ao);
    return n;
}

/* Something waits for a tick: a dirty pool, a spare arena beyond
 * arena_keep, or a heap's expiry. */
static bool tick_wanted(const obmi_arenas *arenas)
{
    return arenas->dirty != NULL || arenas->expiring || arenas->nspare > arenas->arena_keep;
}

/* Publishes when the next tick is due, for obmi_arenas_decay_due. */
static void set_due(obmi_arenas *arenas)
{
    bool idle = !tick_wanted(arenas) || arenas->purge_delay_ms <= 0;
    atomic_store_explicit(&arenas->due_ms, idle ? UINT64_MAX : arenas->next_tick_ms,
                          memory_order_relaxed);
}

size_t obmi_arenas_purge_all(obmi_arenas *arenas)
{
    size_t n = 0;
    obmi_arena *ao = arenas->dirty;
    while (ao != NULL) {
        obmi_arena *next = ao->dirtynext; /* ao may leave the list */
        n += arena_purge(arenas, ao, ao->dirty);
        ao = next;
    }
    arenas->dirtied = false;
    set_due(arenas);
    return n;
}

static uint64_t clock_now(const obmi_arenas *arenas)
{
    return arenas->clock != NULL ? arenas->clock() : obmi_os_clock_ms();
}

/* One decay step: unmap the spares beyond arena_keep that were spares at
 * the last tick too (their pools need no madvise then); purge the pools
 * that were dirty at the last tick too (or every dirty pool, when nothing
 * went dirty for a whole delay); what is left becomes the old generation. */
static void decay_tick(obmi_arenas *arenas, uint64_t now)
{
    uint64_t delay = (uint64_t)arenas->purge_delay_ms;
    obmi_arenas_decay_spares(arenas);
    bool all = now - arenas->last_dirtied_ms >= delay;
    obmi_arena *ao = arenas->dirty;
    while (ao != NULL) {
        obmi_arena *next = ao->dirtynext;
        uint64_t mask = all ? ao->dirty : ao->dirty_old;
        if (mask != 0)
            arena_purge(arenas, ao, mask);
        ao->dirty_old = ao->dirty;
        ao = next;
    }
    arenas->next_tick_ms = now + delay;
    atomic_store_explicit(&arenas->ticks, arenas->ticks + 1, memory_order_relaxed);
    arenas->expiring = false; /* the heaps that asked see this tick */
}

/* Under the lock; now is the time read by the caller, or 0 to read it
 * here if needed. */
static void decay_locked(obmi_arenas *arenas, uint64_t now)
{
    long delay = arenas->purge_delay_ms;
    if (arenas->dirty != NULL && delay == 0) {
        obmi_arenas_purge_all(arenas);
    } else if (tick_wanted(arenas) && delay > 0) {
        if (now == 0)
            now = clock_now(arenas);
        if (arenas->dirtied)
            arenas->last_dirtied_ms = now;
        if (now >= arenas->next_tick_ms)
            decay_tick(arenas, now);
    }
    arenas->dirtied = false;
    set_due(arenas);
}

/* At the end of a slow path, under the lock: one clock read at most, and
 * none while no pool is dirty. */
void obmi_arenas_decay(obmi_arenas *arenas)
{
    decay_locked(arenas, 0);
}

/* A slow path that holds no lock: one atomic load while nothing is dirty;
 * else one clock read, and the lock only when a tick is due. */
void obmi_arenas_decay_due(obmi_arenas *arenas)
{
    uint64_t due = atomic_load_explicit(&arenas->due_ms, memory_order_relaxed);
    if (OBMI_LIKELY(due == UINT64_MAX))
        return;
    uint64_t now = clock_now(arenas);
    if (now < due)
        return;
    obmi_arenas_lock(arenas);
    decay_locked(arenas, now);
    obmi_arenas_unlock(arenas);
}

/* A heap armed its expiry (heap.c): tick again after a delay even if no
 * pool is dirty by then. Under the lock. */
void obmi_arenas_want_tick(obmi_arenas *arenas)
{
    arenas->expiring = true;
    set_due(arenas);
}

bool obmi_arenas_trim(obmi_arenas *arenas)
{
    size_t released = obmi_arenas_release_empty(arenas);
    released += obmi_arenas_purge_all(arenas);
    return released != 0;
}
