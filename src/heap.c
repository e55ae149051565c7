/* The heap: usedpools rings, the pool cache, the remote-free protocol, and
 * the slow halves of malloc and free. The fast halves are inline in
 * internal.h. Pool moves are named after the states in types.h.
 *
 * Ring: usedpools[c] points at the first pool of class c in service with
 * blocks to give, or at obmi_pool_empty (a pool with no free block) when
 * there is none, so the fast path needs no NULL test. Rings are doubly
 * linked through nextpool/prevpool and end in NULL.
 *
 * REMOTE FREES
 *
 * A thread that frees a block of a pool it does not own touches one word,
 * pool->remote: the head of the pool's remote-free list in the high bits,
 * two flags in the low ones, changed together by one CAS:
 *
 *   push      b->next = list; remote = b | flags
 *             and, if NOTIFY is set and QUEUED is not, | QUEUED as well.
 *   queue     only the freer whose CAS set QUEUED: pool->nextqueued = head
 *             of obmi_pool_heap(pool)->pending, CAS pending = pool; then, if the heap
 *             is abandoned, collect it (thread.c).
 *
 * The owner, with plain stores everywhere else:
 *
 *   collect   when a pool's own free list runs dry (malloc's slow path),
 *             take its remote list (one CAS, flags kept), append it to the
 *             free list and subtract its length from ref_count.
 *   full      a pool leaving its ring for FULL sets NOTIFY (fetch_or, the
 *             first time in its service). A full pool is on no ring, so
 *             without NOTIFY the owner would never look at it again; and as
 *             blocks pushed before NOTIFY went up queued nothing, the old
 *             value is checked: a non-empty list means the pool is not full
 *             after all. NOTIFY then stays until the pool is given back, so
 *             the next times it fills cost no atomic operation (a remote
 *             free into it while on its ring just queues it once more).
 *   drain     every slow path empties `pending`: for each pool, read
 *             nextqueued, then clear QUEUED and take the list in one CAS,
 *             then move the pool (FULL -> USED, or back to the arenas when
 *             nothing is in use).
 *
 * Invariant: a QUEUED pool is never returned to the arenas nor reused.
 * The race it closes: a freer sets QUEUED in its push and only afterwards
 * writes pool->nextqueued and the heap's pending list. Were the owner to
 * collect that block (from a malloc) and return the now empty pool in
 * between, the pool could be re-initialised for another heap, and the
 * freer's late writes would link a foreign pool, or a pool of the wrong
 * class, onto this heap's pending list. So an empty pool that is QUEUED
 * stays where it is, and the drain, which runs after the freer's push to
 * pending, settles it. An empty pool that is not QUEUED can be returned at
 * once: ref_count counts uncollected remote frees, so at 0 no thread holds
 * a block of it and no push can come.
 */
#include <errno.h>

#include "internal.h"

obmi_pool obmi_pool_empty; /* freeblock == NULL: the fast path falls through */

void obmi_heap_init(obmi_heap *heap, obmi_arenas *arenas)
{
    *heap = (obmi_heap){.arenas = arenas, .owner = OBMI_HEAP_OWNED};
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        heap->usedpools[c] = &obmi_pool_empty;
}

static void ring_push_front(obmi_heap *heap, obmi_pool *pool)
{
    obmi_pool *head = heap->usedpools[pool->szidx];
    pool->prevpool = NULL;
    pool->nextpool = head == &obmi_pool_empty ? NULL : head;
    if (pool->nextpool != NULL)
        pool->nextpool->prevpool = pool;
    heap->usedpools[pool->szidx] = pool;
}

/* Behind the head: the head goes on serving until it runs out. */
static void ring_insert_second(obmi_heap *heap, obmi_pool *pool)
{
    obmi_pool *head = heap->usedpools[pool->szidx];
    if (head == &obmi_pool_empty) {
        ring_push_front(heap, pool);
        return;
    }
    pool->prevpool = head;
    pool->nextpool = head->nextpool;
    if (head->nextpool != NULL)
        head->nextpool->prevpool = pool;
    head->nextpool = pool;
}

static void ring_remove(obmi_heap *heap, obmi_pool *pool)
{
    if (pool->prevpool != NULL)
        pool->prevpool->nextpool = pool->nextpool;
    else
        heap->usedpools[pool->szidx] = pool->nextpool != NULL ? pool->nextpool : &obmi_pool_empty;
    if (pool->nextpool != NULL)
        pool->nextpool->prevpool = pool->prevpool;
    pool->nextpool = pool->prevpool = NULL;
}

/* ---- remote frees ---- */

static inline obmi_block *remote_list(uintptr_t remote)
{
    return (obmi_block *)(remote & ~OBMI_REMOTE_FLAGS);
}

void obmi_pool_free_remote(obmi_pool *pool, void *p)
{
    obmi_block *b = (obmi_block *)p;
    obmi_heap *heap = obmi_pool_heap(pool); /* stable: p is live, so the pool stays in service */
    uintptr_t old = atomic_load_explicit(&pool->remote, memory_order_relaxed);
    uintptr_t new;
    do {
        obmi_block_set_free(b, remote_list(old));
        new = (uintptr_t)b | (old & OBMI_REMOTE_FLAGS);
        if ((old & OBMI_REMOTE_FLAGS) == OBMI_REMOTE_NOTIFY)
            new |= OBMI_REMOTE_QUEUED;
    } while (!atomic_compare_exchange_weak_explicit(&pool->remote, &old, new, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (((old ^ new) & OBMI_REMOTE_QUEUED) == 0)
        return;
    /* This push queued the pool: it cannot be released until drained. */
    obmi_pool *head = atomic_load_explicit(&heap->pending, memory_order_relaxed);
    do
        pool->nextqueued = head;
    while (!atomic_compare_exchange_weak_explicit(&heap->pending, &head, pool, memory_order_seq_cst,
                                                  memory_order_relaxed));
    if (atomic_load_explicit(&heap->owner, memory_order_seq_cst) == OBMI_HEAP_ABANDONED)
        obmi_thread_collect_abandoned(heap);
}

/* Move the pool's remote list onto its free list, clearing the flags in
 * `clear` in the same step. Returns how many blocks came back. Every link
 * is checked, and the list may hold no more blocks than are in use: a
 * corrupted list is reported (and, when the process goes on, leaked). */
static uint32_t pool_collect(obmi_heap *heap, obmi_pool *pool, uintptr_t clear)
{
    uintptr_t old = atomic_load_explicit(&pool->remote, memory_order_relaxed);
    if (remote_list(old) == NULL && (old & clear) == 0)
        return 0;
    while (!atomic_compare_exchange_weak_explicit(&pool->remote, &old,
                                                  old & OBMI_REMOTE_FLAGS & ~clear,
                                                  memory_order_acq_rel, memory_order_relaxed))
        ; /* acq_rel: the drain's read of nextqueued happens before a re-queue's write */
    obmi_block *list = remote_list(old);
    if (list == NULL)
        return 0;
    uint32_t n = 1;
    obmi_block *tail = list;
    for (obmi_block *next; (next = obmi_block_next(tail)) != NULL; tail = next) {
        if (++n > pool->ref_count || !obmi_link_valid(pool, next)) {
            obmi_report_corrupted("malloc", pool);
            return 0; /* the blocks stay counted in use */
        }
    }
    obmi_block_set_next(tail, pool->freeblock);
    pool->freeblock = list;
    pool->ref_count -= n;
    heap->counts.remote_collects++;
    heap->counts.frees[pool->szidx] += n;
    heap->counts.remote_frees[pool->szidx] += n;
    return n;
}

static bool pool_queued(const obmi_pool *pool)
{
    return atomic_load_explicit(&pool->remote, memory_order_acquire) & OBMI_REMOTE_QUEUED;
}

/* ---- the double-free check ----
 *
 * A block carrying the freed key is free or holds that value by chance
 * (or by a copy of a freed block: glibc's tst-tcfree3). Which one is
 * told by looking for it on its pool's lists, at most a pool's worth of
 * links, each checked before it is followed. */

/* Is p on the list from b? Reads words other threads may be writing. */
OBMI_RACY static bool list_holds(const obmi_pool *pool, const obmi_class_info *ci,
                                 const obmi_block *b, const void *p)
{
    for (uint32_t n = 0; b != NULL && n < ci->nblocks; n++) {
        if (!obmi_pool_is_block_start_of(pool, b, ci))
            return false;
        if (b == p)
            return true;
        b = obmi_block_next_racy(b);
    }
    return false;
}

/* Another thread's pool: its owner may be changing the free list while we
 * read it, so this is a bounded check, exact when the owner is quiet. */
OBMI_RACY static bool foreign_pool_holds(const obmi_pool *pool, const void *p)
{
    const obmi_class_info *ci =
        &obmi_classes[obmi_class_bounded(__atomic_load_n(&pool->szidx, __ATOMIC_RELAXED))];
    uintptr_t remote = atomic_load_explicit(&pool->remote, memory_order_acquire);
    if (list_holds(pool, ci, remote_list(remote), p))
        return true;
    return list_holds(pool, ci, *(obmi_block *const volatile *)&pool->freeblock, p);
}

static void pool_full_to_used(obmi_heap *heap, obmi_pool *pool);

bool obmi_pool_holds_free(obmi_heap *heap, obmi_pool *pool, const void *p)
{
    if (obmi_pool_heap(pool) != heap)
        return foreign_pool_holds(pool, p);
    /* The owner takes in the remote frees first, then its list is exact. */
    if (pool_collect(heap, pool, 0) != 0 && obmi_pool_state(pool) == OBMI_POOL_FULL)
        pool_full_to_used(heap, pool);
    return list_holds(pool, &obmi_classes[pool->szidx], pool->freeblock, p);
}

/* ---- taking and giving back pools ---- */

/* Which list of run_cache holds the pools of medium class c: by their
 * pages, 4 << i. */
static unsigned run_size_index(unsigned c)
{
    return (unsigned)__builtin_ctz(obmi_class_pages(c)) - 2;
}

/* A pool for class c: from the heap's cache (a small pool, or a medium one
 * of the same size), else from the arenas. */
static obmi_pool *heap_take_pool(obmi_heap *heap, unsigned c)
{
    obmi_pool **cache = c < OBMI_NSMALL ? &heap->cache : &heap->run_cache[run_size_index(c)];
    obmi_pool *pool = *cache;
    if (pool != NULL) {
        *cache = pool->nextpool;
        if (c < OBMI_NSMALL)
            heap->ncached--;
        else
            heap->run_cache_pages -= obmi_class_pages(c);
        return pool;
    }
    obmi_arenas_lock(heap->arenas);
    if (c < OBMI_NSMALL)
        pool = obmi_arenas_take_pool(heap->arenas);
    else
        pool = obmi_arenas_take_run(heap->arenas, obmi_class_pages(c));
    obmi_arenas_decay(heap->arenas);
    obmi_arenas_unlock(heap->arenas);
    heap->counts.pools_from_arenas += pool != NULL;
    return pool;
}

/* How many empty small pools the heap may keep: a quarter of what it has
 * in service, up to cache_max. */
static uint32_t heap_cache_limit(const obmi_heap *heap)
{
    if (heap->abandoned)
        return 0;
    size_t quarter = heap->npools / 4;
    return quarter < heap->cache_max ? (uint32_t)quarter : heap->cache_max;
}

/* The same rule for medium pools, in pages: a quarter of the pages of the
 * medium pools in service, up to OBMI_HEAP_RUN_CACHE_PAGES (none when
 * cache_max is 0). */
static uint32_t heap_run_cache_limit(const obmi_heap *heap)
{
    if (heap->abandoned || heap->cache_max == 0)
        return 0;
    size_t quarter = heap->run_pages / 4;
    return quarter < OBMI_HEAP_RUN_CACHE_PAGES ? (uint32_t)quarter : OBMI_HEAP_RUN_CACHE_PAGES;
}

/* Keep pool, out of service, in the heap's cache if there is room. */
static bool heap_cache_pool(obmi_heap *heap, obmi_pool *pool)
{
    if (pool->szidx < OBMI_NSMALL) {
        if (heap->ncached >= heap_cache_limit(heap))
            return false;
        obmi_pool_set_empty(pool);
        pool->nextpool = heap->cache;
        heap->cache = pool;
        heap->ncached++;
        return true;
    }
    uint32_t pages = obmi_class_pages(pool->szidx);
    if (heap->run_cache_pages + pages > heap_run_cache_limit(heap))
        return false;
    obmi_pool **cache = &heap->run_cache[run_size_index(pool->szidx)];
    obmi_pool_cache_run(pool);
    pool->nextpool = *cache;
    *cache = pool;
    heap->run_cache_pages += pages;
    return true;
}

/* Under the manager's lock: a pool out of service back to its arena. */
static void heap_return_pool(obmi_heap *heap, obmi_pool *pool)
{
    if (pool->szidx < OBMI_NSMALL)
        obmi_arenas_return_pool(heap->arenas, pool);
    else
        obmi_arenas_return_run(heap->arenas, pool);
    heap->counts.pools_to_arenas++;
}

/* Under the manager's lock: the cache down to `pools` small pools and
 * `pages` pages of medium ones, the largest runs first. */
static void heap_shrink_cache(obmi_heap *heap, uint32_t pools, uint32_t pages)
{
    for (; heap->ncached > pools; heap->ncached--) {
        obmi_pool *pool = heap->cache;
        heap->cache = pool->nextpool;
        heap_return_pool(heap, pool);
    }
    for (unsigned i = OBMI_RUN_SIZES; i-- > 0 && heap->run_cache_pages > pages;) {
        while (heap->run_cache[i] != NULL && heap->run_cache_pages > pages) {
            obmi_pool *pool = heap->run_cache[i];
            heap->run_cache[i] = pool->nextpool;
            heap->run_cache_pages -= obmi_class_pages(pool->szidx);
            heap_return_pool(heap, pool);
        }
    }
}

/* pool is on no list, has nothing in use and is not QUEUED: it goes to the
 * heap's cache, or back to its arena with whatever the cache holds past
 * its limits (they fall as the heap shrinks: a heap that shrinks gives its
 * cache back with it, so cached pools do not keep emptied arenas mapped). */
static void heap_give_back_pool(obmi_heap *heap, obmi_pool *pool)
{
    OBMI_ASSERT(pool->ref_count == 0 && !pool_queued(pool));
    heap->counts.pools_returned++;
    heap->npools--;
    if (pool->szidx >= OBMI_NSMALL)
        heap->run_pages -= obmi_class_pages(pool->szidx);
    if (heap_cache_pool(heap, pool))
        return;
    obmi_arenas_lock(heap->arenas);
    heap_return_pool(heap, pool);
    heap_shrink_cache(heap, heap_cache_limit(heap), heap_run_cache_limit(heap));
    obmi_arenas_decay(heap->arenas);
    obmi_arenas_unlock(heap->arenas);
}

static bool heap_caches_pools(const obmi_heap *heap)
{
    return heap->cache != NULL || heap->run_cache_pages != 0;
}

/* The whole cache back to the arenas. */
void obmi_heap_flush_cache(obmi_heap *heap)
{
    if (!heap_caches_pools(heap))
        return;
    obmi_arenas_lock(heap->arenas);
    heap_shrink_cache(heap, 0, 0);
    obmi_arenas_decay(heap->arenas);
    obmi_arenas_unlock(heap->arenas);
}

/* For obm_trim: the heap's retired pools (emptied, kept on their rings)
 * and cached pools go back to their arenas, every free pool's page back to
 * the OS and every entirely free arena unmapped. True when anything was
 * given back. */
bool obmi_heap_trim(obmi_heap *heap)
{
    size_t npools = heap->npools;
    obmi_heap_release_retired(heap);
    bool released = heap->npools != npools || heap_caches_pools(heap);
    obmi_heap_flush_cache(heap);
    obmi_arenas_lock(heap->arenas);
    released |= obmi_arenas_trim(heap->arenas);
    obmi_arenas_unlock(heap->arenas);
    return released;
}

/* ---- pool moves ---- */

/* No free block and nothing left to carve. */
static bool pool_exhausted(const obmi_pool *pool)
{
    return pool->freeblock == NULL &&
           obmi_pool_nextoffset(pool) > obmi_pool_max_offset(pool->szidx);
}

static obmi_pool *pool_empty_to_used(obmi_heap *heap, unsigned c)
{
    obmi_pool *pool = heap_take_pool(heap, c);
    if (pool == NULL)
        return NULL;
    obmi_pool_init(pool, c, heap);
    ring_push_front(heap, pool);
    heap->npools++;
    if (c >= OBMI_NSMALL)
        heap->run_pages += obmi_class_pages(c);
    heap->counts.pools_taken++;
    return pool;
}

static void pool_full_to_used(obmi_heap *heap, obmi_pool *pool);

static void pool_used_to_full(obmi_heap *heap, obmi_pool *pool)
{
    heap->counts.used_to_full++;
    ring_remove(heap, pool);
    obmi_pool_set_state(pool, OBMI_POOL_FULL);
    uintptr_t old = atomic_load_explicit(&pool->remote, memory_order_relaxed);
    if (!(old & OBMI_REMOTE_NOTIFY))
        old = atomic_fetch_or_explicit(&pool->remote, OBMI_REMOTE_NOTIFY, memory_order_acq_rel);
    if (remote_list(old) != NULL) {
        /* Frees came in before NOTIFY was up: not full after all. */
        pool_collect(heap, pool, 0);
        pool_full_to_used(heap, pool);
    }
}

/* A full pool got a block back: it goes in behind the head, so the head
 * serves on and the pool gathers more free blocks before it is used again
 * (in front, as obmalloc does, it would serve the one block and be full
 * again: python3's allocation-heavy script made twice as many FULL <->
 * USED moves that way, 2.24 M against 1.10 M). An exhausted head (only a
 * head may be exhausted, and only until the next malloc sees it) is
 * retired first, and the pool takes its place. */
static void pool_full_to_used(obmi_heap *heap, obmi_pool *pool)
{
    heap->counts.full_to_used++;
    obmi_pool *head = heap->usedpools[pool->szidx];
    if (head != &obmi_pool_empty && pool_exhausted(head))
        pool_used_to_full(heap, head);
    obmi_pool_set_state(pool, OBMI_POOL_USED);
    ring_insert_second(heap, pool);
}

static void pool_used_to_empty(obmi_heap *heap, obmi_pool *pool)
{
    ring_remove(heap, pool);
    heap_give_back_pool(heap, pool);
}

/* A pool on its ring has nothing in use. */
static void pool_emptied(obmi_heap *heap, obmi_pool *pool)
{
    heap->counts.emptied++;
    /* Retire: the only pool of its class stays, so a loop of one malloc and
     * one free does not take and return a pool every time. */
    if (!heap->abandoned && obmi_heap_sole_pool(heap, pool, pool->szidx))
        return;
    if (pool_queued(pool))
        return; /* the drain settles it (the invariant above) */
    pool_used_to_empty(heap, pool);
}

/* A drained pool: put it where its blocks say. */
static void pool_settle(obmi_heap *heap, obmi_pool *pool)
{
    if (obmi_pool_state(pool) == OBMI_POOL_FULL) {
        if (pool->freeblock == NULL)
            return; /* nothing came back after all */
        pool_full_to_used(heap, pool);
    }
    if (pool->ref_count == 0)
        pool_emptied(heap, pool);
}

static void heap_drain_pending(obmi_heap *heap)
{
    obmi_pool *pool = atomic_exchange_explicit(&heap->pending, NULL, memory_order_acquire);
    while (pool != NULL) {
        obmi_pool *next = pool->nextqueued; /* before QUEUED clears: then it may change */
        pool_collect(heap, pool, OBMI_REMOTE_QUEUED);
        pool_settle(heap, pool);
        pool = next;
    }
}

void obmi_heap_collect(obmi_heap *heap)
{
    if (atomic_load_explicit(&heap->pending, memory_order_relaxed) != NULL)
        heap_drain_pending(heap);
}

/* ---- slow paths ---- */

/* A retired pool: its class's only pool, kept in place with no block in
 * use (pool_emptied), and not queued for a drain. */
static bool pool_retired(const obmi_heap *heap, const obmi_pool *pool)
{
    return pool != &obmi_pool_empty && pool->ref_count == 0 &&
           obmi_heap_sole_pool(heap, pool, pool->szidx) && !pool_queued(pool);
}

static bool heap_keeps_pools(const obmi_heap *heap)
{
    if (heap_caches_pools(heap))
        return true;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        if (pool_retired(heap, heap->usedpools[c]))
            return true;
    return false;
}

/* Retired and cached pools expire on the decay clock, in two generations
 * as purging does: the heap's first slow malloc after a decay tick (any
 * thread's) arms when the heap keeps any, the first after the next tick
 * gives them back to the arenas. So a heap gone quiet does not keep their
 * arenas mapped, and what it kept a moment ago is not given back in the
 * same breath. A loop that still uses its retired pool takes one again:
 * one pool move per two ticks. A heap that keeps nothing asks for no tick. */
static void heap_expire_due(obmi_heap *heap)
{
    uint64_t ticks = atomic_load_explicit(&heap->arenas->ticks, memory_order_relaxed);
    if (OBMI_LIKELY(ticks == heap->ticks_seen))
        return;
    heap->ticks_seen = ticks;
    if (!heap->expire_armed) {
        if (!heap_keeps_pools(heap))
            return;
        heap->expire_armed = true; /* and the clock must run until the next tick */
        obmi_arenas_lock(heap->arenas);
        obmi_arenas_want_tick(heap->arenas);
        obmi_arenas_unlock(heap->arenas);
        return;
    }
    heap->expire_armed = false;
    obmi_heap_release_retired(heap);
    obmi_heap_flush_cache(heap);
}

/* The first pool of class c had no free block: take remote frees, carve
 * more, retire it as full, or take a new pool. NULL (errno ENOMEM) when no
 * memory is left. */
void *obmi_heap_malloc_slow(obmi_heap *heap, unsigned c)
{
    if (OBMI_UNLIKELY(heap == &obmi_heap_empty))
        return obmi_thread_malloc_first(c);
    heap->counts.slow_mallocs++;
    obmi_heap_collect(heap);
    obmi_pool *pool = heap->usedpools[c];
    /* Taking a pool from the arenas checks the decay under their lock;
     * every other way here checks it below. */
    size_t from_arenas = heap->counts.pools_from_arenas;
    for (;;) {
        if (pool == &obmi_pool_empty) {
            pool = pool_empty_to_used(heap, c);
            if (pool == NULL)
                return NULL;
        }
        if (pool->freeblock != NULL || pool_collect(heap, pool, 0) != 0)
            break;
        if (obmi_pool_carve(pool) != NULL) {
            heap->counts.carves++;
            break;
        }
        pool_used_to_full(heap, pool);
        pool = heap->usedpools[c];
    }
    if (heap->counts.pools_from_arenas == from_arenas)
        obmi_arenas_decay_due(heap->arenas);
    obmi_block *b = pool->freeblock, *next = NULL;
    if (OBMI_UNLIKELY(!obmi_link_valid(pool, b) ||
                      !obmi_link_valid(pool, next = obmi_block_next(b)))) {
        obmi_report_corrupted("malloc", pool);
        obmi_pool_drop_free_list(pool); /* the process goes on without these blocks */
        return obmi_heap_malloc_slow(heap, c);
    }
    pool->freeblock = next;
    obmi_word_poke(&b->key, 0);
    pool->ref_count++;
    heap->counts.mallocs[c]++;
    heap_expire_due(heap); /* after the count: pool has a block in use, it stays */
    OBMI_ASSERT(obmi_pool_check(pool));
    return b;
}

/* An owner's free found the pool FULL or left it with no block in use. */
void obmi_heap_free_slow(obmi_heap *heap, obmi_pool *pool)
{
    heap->counts.slow_frees++;
    if (obmi_pool_state(pool) == OBMI_POOL_FULL)
        pool_full_to_used(heap, pool);
    if (pool->ref_count == 0) {
        pool_emptied(heap, pool); /* its arena may be gone after this */
        return;
    }
    OBMI_ASSERT(obmi_pool_check(pool));
}

void obmi_heap_release_retired(obmi_heap *heap)
{
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        if (pool_retired(heap, heap->usedpools[c]))
            pool_used_to_empty(heap, heap->usedpools[c]);
}

/* The owner is leaving: take in what other threads freed, give back every
 * pool with nothing in use and the cache, and flag every pool still in
 * service NOTIFY, so the next remote free into any of them queues it for
 * whoever collects the abandoned heap (thread.c). Full pools are flagged
 * already. */
void obmi_heap_abandon_pools(obmi_heap *heap)
{
    heap->abandoned = true;
    heap_drain_pending(heap);
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        obmi_pool *pool = heap->usedpools[c];
        while (pool != &obmi_pool_empty && pool != NULL) {
            obmi_pool *next = pool->nextpool;
            atomic_fetch_or_explicit(&pool->remote, OBMI_REMOTE_NOTIFY, memory_order_acq_rel);
            pool_collect(heap, pool, 0);
            if (pool->ref_count == 0)
                pool_emptied(heap, pool);
            pool = next;
        }
    }
    obmi_heap_flush_cache(heap);
}

/* Invariant walker, for the heap's holder: every ring pool is USED, of its
 * ring's class and owned by this heap; links are consistent; pools behind
 * the head have a block to give (the head may be exhausted until the next
 * malloc notices); cached pools are EMPTY. */
bool obmi_heap_check(const obmi_heap *heap)
{
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        const obmi_pool *head = heap->usedpools[c];
        if (head == &obmi_pool_empty)
            continue;
        if (head == NULL || head->prevpool != NULL)
            return false;
        for (const obmi_pool *p = head; p != NULL; p = p->nextpool) {
            if (p->state != OBMI_POOL_USED || p->szidx != c || obmi_pool_heap(p) != heap)
                return false;
            if (p->nextpool != NULL && p->nextpool->prevpool != p)
                return false;
            if (!obmi_pool_check(p))
                return false;
            if (p != head && pool_exhausted(p))
                return false;
        }
    }
    uint32_t n = 0;
    for (const obmi_pool *p = heap->cache; p != NULL; p = p->nextpool)
        if (++n > heap->ncached || p->state != OBMI_POOL_EMPTY || !obmi_pool_check(p))
            return false;
    if (n != heap->ncached || n > heap->cache_max)
        return false;
    uint32_t pages = 0;
    for (unsigned i = 0; i < OBMI_RUN_SIZES; i++) {
        for (const obmi_pool *p = heap->run_cache[i]; p != NULL; p = p->nextpool) {
            if (p->szidx < OBMI_NSMALL || p->szidx >= OBMI_NCLASSES ||
                run_size_index(p->szidx) != i)
                return false;
            pages += obmi_class_pages(p->szidx);
            if (pages > heap->run_cache_pages || p->state != OBMI_POOL_EMPTY || !obmi_pool_check(p))
                return false;
        }
    }
    return pages == heap->run_cache_pages && pages <= OBMI_HEAP_RUN_CACHE_PAGES;
}
