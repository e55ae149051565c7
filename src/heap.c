/* The heap: usedpools rings, taking pools from arenas and giving them back,
 * and the slow halves of malloc and free. The fast halves are inline in
 * internal.h. Pool moves are named after the states in types.h.
 *
 * Ring: usedpools[c] points at the first pool of class c in service with
 * blocks to give, or at obmi_pool_empty (a pool with no free block) when
 * there is none, so the fast path needs no NULL test. Rings are doubly
 * linked through nextpool/prevpool and end in NULL.
 */
#include "internal.h"

obmi_pool obmi_pool_empty; /* freeblock == NULL: the fast path falls through */

void obmi_heap_init(obmi_heap *heap, obmi_arenas *arenas)
{
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        heap->usedpools[c] = &obmi_pool_empty;
    heap->arenas = arenas;
    heap->pools_taken = 0;
    heap->pools_returned = 0;
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

/* ---- pool moves ---- */

/* No free block and nothing left to carve. */
static bool pool_exhausted(const obmi_pool *pool)
{
    return pool->freeblock == NULL && pool->nextoffset > pool->maxnextoffset;
}

static obmi_pool *pool_empty_to_used(obmi_heap *heap, unsigned c)
{
    /* Before obm hands out its first block: see init.c. */
    obmi_register_fork_handlers();
    obmi_pool *pool = obmi_arenas_take_pool(heap->arenas);
    if (pool == NULL)
        return NULL;
    obmi_pool_init(pool, c, heap);
    ring_push_front(heap, pool);
    heap->pools_taken++;
    return pool;
}

static void pool_used_to_full(obmi_heap *heap, obmi_pool *pool)
{
    ring_remove(heap, pool);
    pool->state = OBMI_POOL_FULL;
}

/* Before it goes to the front, retire an exhausted head (only a head may be
 * exhausted, and only until the next malloc sees it). */
static void pool_full_to_used(obmi_heap *heap, obmi_pool *pool)
{
    obmi_pool *head = heap->usedpools[pool->szidx];
    if (head != &obmi_pool_empty && pool_exhausted(head))
        pool_used_to_full(heap, head);
    pool->state = OBMI_POOL_USED;
    ring_push_front(heap, pool);
}

static void pool_used_to_empty(obmi_heap *heap, obmi_pool *pool)
{
    ring_remove(heap, pool);
    obmi_arenas_return_pool(heap->arenas, pool);
    heap->pools_returned++;
}

/* ---- slow paths ---- */

/* The first pool of class c had no free block: carve more, retire it as
 * full, or take a new pool. NULL (errno ENOMEM) when no memory is left. */
void *obmi_heap_malloc_slow(obmi_heap *heap, unsigned c)
{
    obmi_pool *pool = heap->usedpools[c];
    for (;;) {
        if (pool == &obmi_pool_empty) {
            pool = pool_empty_to_used(heap, c);
            if (pool == NULL)
                return NULL;
        }
        if (pool->freeblock != NULL || obmi_pool_carve(pool) != NULL)
            break;
        pool_used_to_full(heap, pool);
        pool = heap->usedpools[c];
    }
    obmi_block *b = pool->freeblock;
    pool->freeblock = b->next;
    pool->ref_count++;
    OBMI_ASSERT(obmi_pool_check(pool));
    return b;
}

/* A free found the pool's list empty (the pool was full) or left the pool
 * with no block in use. */
void obmi_heap_free_slow(obmi_heap *heap, obmi_pool *pool)
{
    if (pool->state == OBMI_POOL_FULL)
        pool_full_to_used(heap, pool);
    if (pool->ref_count == 0) {
        /* Retire: the only pool of its class stays, so a loop of one malloc
         * and one free does not take and return a pool every time. */
        if (obmi_heap_sole_pool(heap, pool))
            return;
        pool_used_to_empty(heap, pool);
        return;
    }
    OBMI_ASSERT(obmi_pool_check(pool));
}

void obmi_heap_release_retired(obmi_heap *heap)
{
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        obmi_pool *pool = heap->usedpools[c];
        if (pool != &obmi_pool_empty && pool->ref_count == 0 && obmi_heap_sole_pool(heap, pool))
            pool_used_to_empty(heap, pool);
    }
}

/* Invariant walker: every ring pool is USED, of its ring's class and owned
 * by this heap; links are consistent; pools behind the head have a block to
 * give (the head may be exhausted until the next malloc notices). */
bool obmi_heap_check(const obmi_heap *heap)
{
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        const obmi_pool *head = heap->usedpools[c];
        if (head == &obmi_pool_empty)
            continue;
        if (head == NULL || head->prevpool != NULL)
            return false;
        for (const obmi_pool *p = head; p != NULL; p = p->nextpool) {
            if (p->state != OBMI_POOL_USED || p->szidx != c || p->heap != heap)
                return false;
            if (p->nextpool != NULL && p->nextpool->prevpool != p)
                return false;
            if (!obmi_pool_check(p))
                return false;
            if (p != head && pool_exhausted(p))
                return false;
        }
    }
    return true;
}
