/* The remote-free protocol (heap.c) and the pool cache, driven step by step
 * on private heaps: what a remote free touches, when a pool is queued, what
 * the owner's drain does, the QUEUED invariant, abandoned heaps, and the
 * cache shrinking with its heap. Remote frees are made by calling
 * obmi_pool_free_remote directly, as a thread that does not own the pool
 * would. */
#include "unit.h"

static uintptr_t remote_word(const obmi_pool *pool)
{
    return atomic_load(&pool->remote);
}

static obmi_block *remote_head(const obmi_pool *pool)
{
    return (obmi_block *)(remote_word(pool) & ~OBMI_REMOTE_FLAGS);
}

static size_t arena_free_pools(const unit_heap *u)
{
    size_t n = 0;
    for (const obmi_arena *ao = u->arenas.all; ao != NULL; ao = ao->allnext)
        n += ao->nfreepools;
    return n;
}

/* A remote free into a pool on its ring pushes and touches nothing else;
 * the owner takes the list when the pool's own free list runs dry. */
static void test_remote_free_into_used_pool(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    void *b[7];
    for (int i = 0; i < 6; i++)
        b[i] = unit_malloc(&u, 512); /* 6 of 7 blocks: the pool stays on its ring */
    obmi_pool *pool = obmi_pool_of(b[0]);
    obmi_block *freeblock = pool->freeblock;
    obmi_pool_free_remote(pool, b[2]);
    obmi_pool_free_remote(pool, b[4]);
    assert_ptr_equal(remote_head(pool), b[4]);
    assert_ptr_equal(obmi_block_next(b[4]), b[2]);
    assert_int_equal(remote_word(pool) & OBMI_REMOTE_FLAGS, 0); /* nothing queued */
    assert_null(atomic_load(&u.heap.pending));
    assert_int_equal(pool->ref_count, 6); /* counted until collected */
    assert_ptr_equal(pool->freeblock, freeblock);
    unit_check(&u);

    /* The last never-used block, then the two remote ones, then a new pool. */
    b[6] = unit_malloc(&u, 512);
    assert_ptr_equal(obmi_pool_of(b[6]), pool);
    void *again1 = unit_malloc(&u, 512), *again2 = unit_malloc(&u, 512);
    assert_true((again1 == b[4] && again2 == b[2]) || (again1 == b[2] && again2 == b[4]));
    assert_null(remote_head(pool));
    assert_int_equal(pool->ref_count, 7);
    assert_int_equal(u.heap.counts.remote_frees[31], 2);
    assert_int_equal(u.heap.counts.frees[31], 2);
    assert_int_equal(u.heap.counts.mallocs[31], 9);
    unit_check(&u);
}

/* A full pool is on no ring: it carries NOTIFY, the first remote free
 * queues it on the heap's pending list, later ones only push, and the
 * owner's next slow path puts it back on its ring (here in front: the
 * exhausted head is retired first). */
static void test_remote_free_into_full_pool(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    void *b[8];
    obmi_pool *full = unit_fill_one_pool(&u, b), *other = obmi_pool_of(b[7]);
    assert_ptr_not_equal(full, other);
    assert_int_equal(full->state, OBMI_POOL_FULL);
    assert_int_equal(remote_word(full), OBMI_REMOTE_NOTIFY);
    unit_check(&u);

    obmi_pool_free_remote(full, b[1]);
    assert_int_equal(remote_word(full) & OBMI_REMOTE_FLAGS,
                     OBMI_REMOTE_NOTIFY | OBMI_REMOTE_QUEUED);
    assert_ptr_equal(atomic_load(&u.heap.pending), full);
    assert_null(full->nextqueued);
    obmi_pool_free_remote(full, b[3]);
    assert_ptr_equal(atomic_load(&u.heap.pending), full); /* queued once */
    assert_int_equal(full->state, OBMI_POOL_FULL);        /* the freer moved nothing */

    /* The owner drains on its slow path: exhaust `other` to get there. */
    for (int i = 0; i < 6; i++)
        unit_malloc(&u, 512);
    assert_ptr_equal(atomic_load(&u.heap.pending), full); /* no slow path yet */
    void *next = unit_malloc(&u, 512);
    assert_ptr_equal(obmi_pool_of(next), full);
    assert_null(atomic_load(&u.heap.pending));
    assert_int_equal(full->state, OBMI_POOL_USED);
    assert_int_equal(remote_word(full), OBMI_REMOTE_NOTIFY); /* kept while in service */
    assert_ptr_equal(u.heap.usedpools[31], full);
    assert_int_equal(other->state, OBMI_POOL_FULL); /* the exhausted head retired */
    assert_int_equal(full->ref_count, 6);
    assert_int_equal(u.heap.counts.remote_frees[31], 2);
    unit_check(&u);
}

/* A pool queued by a remote free is not given back when it empties, even
 * by the owner's own free: the freer may still be linking it onto the
 * pending list. The drain gives it back. */
static void test_queued_pool_is_not_returned(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    void *b[14];
    for (int i = 0; i < 14; i++)
        b[i] = unit_malloc(&u, 512); /* pools A (full) and B (its exhausted head) */
    obmi_pool *pool = obmi_pool_of(b[0]);
    unit_free(&u, b[7]); /* B has a free block */
    for (int i = 0; i < 6; i++)
        unit_free(&u, b[i]); /* A back on the ring, behind B */
    obmi_pool *second = obmi_pool_of(b[7]);
    assert_ptr_equal(u.heap.usedpools[31], second);
    assert_ptr_equal(second->nextpool, pool);
    /* As if a remote free had set QUEUED and not yet pushed to pending. */
    atomic_store(&pool->remote, OBMI_REMOTE_QUEUED);
    unit_free(&u, b[6]);
    assert_int_equal(pool->ref_count, 0);
    assert_int_equal(pool->state, OBMI_POOL_USED); /* stays, though not alone */
    assert_ptr_equal(pool->prevpool, second);
    assert_int_equal(u.heap.counts.pools_returned, 0);

    pool->nextqueued = NULL;
    atomic_store(&u.heap.pending, pool); /* the freer's late push */
    obmi_heap_collect(&u.heap);
    assert_int_equal(pool->state, OBMI_POOL_EMPTY);
    assert_int_equal(u.heap.counts.pools_returned, 1);
    unit_check(&u);
    for (int i = 8; i < 14; i++)
        unit_free(&u, b[i]);
    unit_check(&u);
}

/* An abandoned heap: every pool left flagged NOTIFY, so each remote free
 * queues its pool and the freer collects it on the spot, giving back every
 * pool emptied that way, retired ones included. */
static void test_abandoned_heap_is_collected_by_freers(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    enum { N = 300 };
    void *b[N];
    for (int i = 0; i < N; i++)
        b[i] = unit_malloc(&u, 16 * (size_t)(1 + i % 32));
    size_t in_service = u.heap.npools;
    assert_true(in_service >= 32);

    obmi_heap_abandon_pools(&u.heap);
    atomic_store(&u.heap.owner, OBMI_HEAP_ABANDONED);
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        for (obmi_pool *p = u.heap.usedpools[c]; p != &obmi_pool_empty; p = p->nextpool) {
            assert_true(remote_word(p) & OBMI_REMOTE_NOTIFY);
            if (p->nextpool == NULL)
                break;
        }

    for (int i = 0; i < N; i++) {
        obmi_pool_free_remote(obmi_pool_of(b[i]), b[i]);
        assert_int_equal(atomic_load(&u.heap.owner), OBMI_HEAP_ABANDONED);
        assert_null(atomic_load(&u.heap.pending));
    }
    assert_int_equal(u.heap.npools, 0);
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        assert_ptr_equal(u.heap.usedpools[c], &obmi_pool_empty);
    assert_int_equal(u.heap.counts.pools_returned, u.heap.counts.pools_taken);
    assert_int_equal(u.arenas.narenas_current, 1); /* the spare */
    assert_true(obmi_arenas_check(&u.arenas));
}

/* Remote frees into a heap whose owner runs (OWNED) leave the queued pool
 * to the owner, who takes it in on its next slow path. */
static void test_owned_heap_is_left_to_its_owner(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    void *b[8];
    obmi_pool *full = unit_fill_one_pool(&u, b);
    for (int i = 0; i < 7; i++)
        obmi_pool_free_remote(full, b[i]);
    assert_ptr_equal(atomic_load(&u.heap.pending), full);
    assert_int_equal(full->ref_count, 7);
    obmi_heap_collect(&u.heap);
    assert_int_equal(full->state, OBMI_POOL_EMPTY); /* not alone on its ring */
    unit_check(&u);
    unit_free(&u, b[7]);
    unit_check(&u);
}

/* The pool cache: empty pools stay with the heap (up to a quarter of what
 * it has in service, at most cache_max) and are taken again without the
 * arenas; when the heap shrinks, the cache goes back with it. */
static void test_cache_follows_the_heap(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init_cached(&u);
    enum { POOLS = 64, N = POOLS * 7 };
    static void *b[N];
    for (int i = 0; i < N; i++)
        b[i] = unit_malloc(&u, 512);
    assert_int_equal(u.heap.npools, POOLS);
    /* Empty 9 pools out of 64: the first stays, retired (the only one on
     * its ring then); the cache takes the next 8 (63 / 4 > 8). */
    size_t before = arena_free_pools(&u);
    for (int i = 0; i < 9 * 7; i++)
        unit_free(&u, b[i]);
    assert_int_equal(u.heap.ncached, 8);
    assert_int_equal(arena_free_pools(&u), before);
    unit_check(&u);
    /* Refill them: the pools come from the cache. */
    for (int i = 0; i < 9 * 7; i++)
        b[i] = unit_malloc(&u, 512);
    assert_int_equal(u.heap.ncached, 0);
    assert_int_equal(arena_free_pools(&u), before);
    unit_check(&u);
    /* Free everything: the cache ends empty, all but the retired pool
     * back in the arenas. */
    for (int i = 0; i < N; i++)
        unit_free(&u, b[i]);
    assert_int_equal(u.heap.ncached, 0);
    assert_int_equal(u.heap.npools, 1);
    unit_check(&u);
    obmi_heap_release_retired(&u.heap);
    assert_int_equal(u.arenas.narenas_current, 1);
    unit_check(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_free_into_used_pool),
        cmocka_unit_test(test_remote_free_into_full_pool),
        cmocka_unit_test(test_queued_pool_is_not_returned),
        cmocka_unit_test(test_abandoned_heap_is_collected_by_freers),
        cmocka_unit_test(test_owned_heap_is_left_to_its_owner),
        cmocka_unit_test(test_cache_follows_the_heap),
    };
    return RUN_TAP_TESTS(tests);
}
