/* Pools: the size-class table, header set-up, lazy carving and the pool
 * invariant walker. Which list a pool is on is the heap's and the arena's
 * business (heap.c, arena.c); see types.h for the state machine. */
#include <string.h>

#include "internal.h"

#define CLASS_OF(bytes, pool)                                                                      \
    {                                                                                              \
        .size = (bytes), .divc = UINT64_MAX / (bytes) + 1, .pool_bytes = (pool),                   \
        .nblocks = ((pool)-OBMI_POOL_HEADER) / (bytes)                                             \
    }
/* Small: 16 * k bytes in a page. */
#define CLASS(k) CLASS_OF(16u * (k), OBMI_POOL_SIZE)
/* Medium, the four of the doubling from 2^k: pools of 4 pages for k = 9,
 * twice as many for each doubling up to 64 (a whole arena): at least 15
 * blocks a pool up to 16 KiB, 7 of 32 KiB, at most 6.2 % of a pool lost
 * but for the last class's 12.5 % (types.h, SIZE CLASSES). */
#define MEDIUM_POOL(k) ((4u << ((k)-9)) < 64 ? (4u << ((k)-9)) * OBMI_POOL_SIZE : OBMI_ARENA_SIZE)
#define MEDIUM(k)                                                                                  \
    CLASS_OF((1u << (k)) + (1u << ((k)-2)), MEDIUM_POOL(k)),                                       \
        CLASS_OF((1u << (k)) + (2u << ((k)-2)), MEDIUM_POOL(k)),                                   \
        CLASS_OF((1u << (k)) + (3u << ((k)-2)), MEDIUM_POOL(k)),                                   \
        CLASS_OF((1u << (k)) + (4u << ((k)-2)), MEDIUM_POOL(k))

const obmi_class_info obmi_classes[OBMI_NCLASSES] = {
    CLASS(1),  CLASS(2),   CLASS(3),   CLASS(4),   CLASS(5),   CLASS(6),   CLASS(7),  CLASS(8),
    CLASS(9),  CLASS(10),  CLASS(11),  CLASS(12),  CLASS(13),  CLASS(14),  CLASS(15), CLASS(16),
    CLASS(17), CLASS(18),  CLASS(19),  CLASS(20),  CLASS(21),  CLASS(22),  CLASS(23), CLASS(24),
    CLASS(25), CLASS(26),  CLASS(27),  CLASS(28),  CLASS(29),  CLASS(30),  CLASS(31), CLASS(32),
    MEDIUM(9), MEDIUM(10), MEDIUM(11), MEDIUM(12), MEDIUM(13), MEDIUM(14),
};

/* Put a pool taken from an arena into service for class c. Nothing is carved
 * yet: blocks are carved on demand, so a pool that serves few blocks touches
 * little of its page (obmalloc's nextoffset; here `carved`). */
void obmi_pool_init(obmi_pool *pool, unsigned c, obmi_heap *heap)
{
    pool->freeblock = NULL;
    pool->ref_count = 0;
    pool->szidx = (uint8_t)c;
    __atomic_store_n(&pool->divc, obmi_classes[c].divc, __ATOMIC_RELAXED);
    obmi_pool_set_state(pool, OBMI_POOL_USED);
    obmi_pool_set_carved(pool, 0);
    pool->nextpool = NULL;
    pool->prevpool = NULL;
    obmi_pool_set_heap(pool, heap);
    atomic_store_explicit(&pool->remote, 0, memory_order_relaxed);
    pool->nextqueued = NULL;
    obmi_track_noaccess((char *)pool + OBMI_POOL_HEADER,
                        obmi_classes[c].pool_bytes - OBMI_POOL_HEADER);
}

/* The pages of a medium pool that its carved blocks reach into, the first
 * one included. */
static unsigned pages_carved(const obmi_pool *pool)
{
    return (obmi_pool_nextoffset(pool) + OBMI_POOL_SIZE - 1) >> OBMI_POOL_SHIFT;
}

/* A medium pool leaves service for its heap's cache: set EMPTY as a small
 * pool is, its run kept whole. Its arena remembers how far it was carved
 * into, for the run's return. */
void obmi_pool_cache_run(obmi_pool *pool)
{
    obmi_arena *ao = obmi_pool_arena(pool);
    unsigned at = obmi_arena_page(ao, pool);
    unsigned touched = pages_carved(pool);
    if (touched > ao->run_carved[at])
        ao->run_carved[at] = (uint8_t)touched;
    obmi_pool_set_empty(pool);
}

/* A medium run goes back to its arena (from service or from a heap's
 * cache): its first page's header is set EMPTY as a small pool's
 * (obmi_pool_set_empty), and each later page it ever carved into gets an
 * EMPTY header too, so that every free page reads as an EMPTY or an UNUSED
 * header (a page past the carved blocks was not written while the run was
 * out: it still reads as it did when taken). Returns the pages carved
 * into, the first one included. */
unsigned obmi_pool_clear_pages(obmi_pool *pool)
{
    obmi_arena *ao = obmi_pool_arena(pool);
    unsigned at = obmi_arena_page(ao, pool);
    unsigned touched = pages_carved(pool); /* before set_empty clears carved */
    if (ao->run_carved[at] > touched)
        touched = ao->run_carved[at];
    ao->run_carved[at] = 0;
    unsigned npages = obmi_class_pages(pool->szidx);
    for (unsigned i = 1; i < npages; i++) {
        obmi_pool *page = (obmi_pool *)((char *)pool + ((uintptr_t)i << OBMI_POOL_SHIFT));
        obmi_track_open(page, sizeof *page); /* a page's header is always accessible */
        if (i < touched) {
            memset(page, 0, sizeof *page);
            obmi_pool_set_state(page, OBMI_POOL_EMPTY);
        }
    }
    obmi_pool_set_empty(pool);
    return touched;
}

/* Take a pool out of service (to a heap's cache or its arena): no block,
 * no owner, nothing carved, so the block-start check rejects every address
 * in it. */
void obmi_pool_set_empty(obmi_pool *pool)
{
    obmi_pool_set_state(pool, OBMI_POOL_EMPTY);
    obmi_pool_set_carved(pool, 0);
    obmi_pool_set_heap(pool, NULL);
    pool->ref_count = 0;
    atomic_store_explicit(&pool->remote, 0, memory_order_relaxed);
}

/* The pool's free list is empty: link up to OBMI_CARVE_BATCH never-used
 * blocks into it. Returns the new head, NULL when every block is carved. */
obmi_block *obmi_pool_carve(obmi_pool *pool)
{
    OBMI_ASSERT(pool->freeblock == NULL);
    uint32_t size = obmi_classes[pool->szidx].size;
    uint32_t off = obmi_pool_nextoffset(pool);
    uint32_t max = obmi_pool_max_offset(pool->szidx);
    if (off > max)
        return NULL;
    /* Up to OBMI_CARVE_BATCH blocks, and no more than 16 KiB of them (one
     * block at least): a medium pool's pages are touched as it fills. */
    uint32_t batch = size * OBMI_CARVE_BATCH <= 16384 ? OBMI_CARVE_BATCH : 16384 / size;
    uint32_t end = off + (batch != 0 ? batch : 1) * size;
    if (end > max + size)
        end = max + size;
    if (obmi_secure && obmi_secure_flags != 0) {
        obmi_secure_carve(pool, off, end);
        obmi_pool_set_carved(pool, end - OBMI_POOL_HEADER);
        return pool->freeblock;
    }
    char *base = (char *)pool;
    obmi_block *head = (obmi_block *)(base + off);
    for (; off + size < end; off += size)
        obmi_block_set_free((obmi_block *)(base + off), (obmi_block *)(base + off + size));
    obmi_block_set_free((obmi_block *)(base + off), NULL);
    obmi_pool_set_carved(pool, end - OBMI_POOL_HEADER);
    pool->freeblock = head;
    return head;
}

/* OBM_ON_ERROR=report after a corrupted link: the free list is given up.
 * Its blocks count as in use for good, so the pool never empties and the
 * counts still add up (in use + free == carved). */
void obmi_pool_drop_free_list(obmi_pool *pool)
{
    pool->freeblock = NULL;
    pool->ref_count = pool->carved / obmi_classes[pool->szidx].size;
}

/* Invariant walker for a pool in service: class and offsets in range, the
 * free list inside the carved blocks, on block starts and acyclic, and
 * in-use + free == carved, and the remote list inside the in-use blocks. */
bool obmi_pool_check(const obmi_pool *pool)
{
    if (pool->state != OBMI_POOL_USED && pool->state != OBMI_POOL_FULL)
        return pool->state == OBMI_POOL_EMPTY && pool->ref_count == 0 && pool->carved == 0 &&
               atomic_load_explicit(&pool->remote, memory_order_relaxed) == 0;
    if (pool->szidx >= OBMI_NCLASSES)
        return false;
    const obmi_class_info *ci = &obmi_classes[pool->szidx];
    if (obmi_pool_nextoffset(pool) > obmi_pool_max_offset(pool->szidx) + ci->size)
        return false;
    if (pool->carved % ci->size != 0)
        return false;
    uint32_t carved = pool->carved / ci->size;
    uint32_t nfree = 0;
    for (const obmi_block *b = pool->freeblock; b != NULL; b = obmi_block_next(b)) {
        if (++nfree > carved)
            return false; /* a cycle, or more free blocks than exist */
        if (!obmi_link_valid(pool, b) || !obmi_block_keyed(b))
            return false;
    }
    /* Blocks on the remote list are still counted in ref_count; the walker
     * runs where no other thread frees into the pool. */
    uintptr_t remote = atomic_load_explicit(&pool->remote, memory_order_acquire);
    uint32_t nremote = 0;
    for (const obmi_block *b = (const obmi_block *)(remote & ~OBMI_REMOTE_FLAGS); b != NULL;
         b = obmi_block_next(b)) {
        if (++nremote > pool->ref_count || !obmi_link_valid(pool, b) || !obmi_block_keyed(b))
            return false;
    }
    if (pool->ref_count + nfree != carved)
        return false;
    if (pool->state == OBMI_POOL_FULL)
        return nfree == 0 && carved == ci->nblocks && (remote & OBMI_REMOTE_NOTIFY) != 0;
    return true;
}
