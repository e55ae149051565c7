/* The arena manager: pools in and out, fullest-first ordering with
 * nfp2lasta, release of empty arenas and the one spare. With no decay, so
 * a spare beyond the keep goes at once (test_purge.c follows the decay). */
#include <stdlib.h>

#include "unit.h"

static obmi_pool *take(obmi_arenas *a)
{
    obmi_pool *pool = obmi_arenas_take_pool(a);
    assert_non_null(pool);
    obmi_pool_init(pool, 0, NULL); /* a valid pool in service, for the walkers */
    assert_true(obmi_arenas_check(a));
    return pool;
}

static void manager_init(obmi_arenas *a)
{
    obmi_arenas_init(a);
    a->purge_delay_ms = -1;
}

static void give(obmi_arenas *a, obmi_pool *pool)
{
    obmi_arenas_return_pool(a, pool);
    assert_true(obmi_arenas_check(a));
}

static void test_pools_fill_an_arena_first(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a);
    obmi_pool *pools[OBMI_POOLS_PER_ARENA + 1];
    for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++) {
        pools[i] = take(&a);
        assert_int_equal(a.narenas_current, 1);
        assert_ptr_equal(pools[i], (char *)pools[0] + (size_t)i * OBMI_POOL_SIZE);
    }
    assert_int_equal((uintptr_t)pools[0] & (OBMI_ARENA_SIZE - 1), 0); /* aligned */
    assert_null(a.usable);                                            /* full arena */
    pools[OBMI_POOLS_PER_ARENA] = take(&a);
    assert_int_equal(a.narenas_current, 2);
    assert_ptr_not_equal(obmi_pool_arena(pools[OBMI_POOLS_PER_ARENA]), obmi_pool_arena(pools[0]));
    for (int i = 0; i <= OBMI_POOLS_PER_ARENA; i++)
        give(&a, pools[i]);
    /* Both arenas empty: one is released, one kept as the spare. */
    assert_int_equal(a.narenas_current, 1);
    assert_int_equal(a.narenas_released_total, 1);
    assert_int_equal(a.narenas_allocated_total, 2);
    assert_int_equal(a.narenas_highwater, 2);
}

/* Three arenas with 5, 20 and 54 free pools: the list is sorted that way
 * and new pools come from the fullest. */
static void test_fullest_first(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a);
    obmi_pool *p[3][OBMI_POOLS_PER_ARENA];
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++)
            p[k][i] = take(&a);
    const int nfree[3] = {5, 20, 54};
    /* Return in interleaved order so every re-sort path runs. */
    for (int i = 0; i < 54; i++)
        for (int k = 2; k >= 0; k--)
            if (i < nfree[k])
                give(&a, p[k][i]);
    obmi_arena *ao[3] = {obmi_pool_arena(p[0][0]), obmi_pool_arena(p[1][0]),
                         obmi_pool_arena(p[2][0])};
    assert_ptr_equal(a.usable, ao[0]);
    assert_ptr_equal(ao[0]->nextarena, ao[1]);
    assert_ptr_equal(ao[1]->nextarena, ao[2]);
    assert_ptr_equal(a.nfp2lasta[5], ao[0]);
    assert_ptr_equal(a.nfp2lasta[20], ao[1]);
    assert_ptr_equal(a.nfp2lasta[54], ao[2]);
    obmi_pool *q = take(&a);
    assert_ptr_equal(obmi_pool_arena(q), ao[0]);
    assert_int_equal(ao[0]->nfreepools, 4);
}

/* Equal counts: the arena that reaches a count joins the front of its
 * group and nfp2lasta keeps pointing at the group's last member. */
static void test_ties(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a);
    obmi_pool *p[4][OBMI_POOLS_PER_ARENA];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++)
            p[k][i] = take(&a);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 3; i++)
            give(&a, p[k][i]);
    give(&a, p[2][3]); /* arena 2 now has 4 free: it moves behind the group of 3 */
    assert_int_equal(a.nfp2lasta[4], obmi_pool_arena(p[2][0]));
    assert_ptr_equal(a.nfp2lasta[4]->nextarena, NULL);
    give(&a, p[0][3]); /* arena 0 joins the group of 4 at its front */
    assert_ptr_equal(a.nfp2lasta[4], obmi_pool_arena(p[2][0]));
    assert_int_equal(obmi_arenas_count_usable(&a), 4);
}

/* Random takes and returns against the walkers, with a shadow model. */
static void test_random_walk(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a);
    enum { N = 600 };
    obmi_pool *live[N];
    size_t nlive = 0;
    unsigned seed = 12345;
    for (int step = 0; step < 6000; step++) {
        seed = seed * 1103515245u + 12345u;
        bool grow = nlive == 0 || (nlive < N && ((seed >> 16) % 100) < (step < 3000 ? 60 : 40));
        if (grow) {
            live[nlive++] = take(&a);
        } else {
            size_t i = (seed >> 8) % nlive;
            obmi_pool *pool = live[i];
            live[i] = live[--nlive];
            give(&a, pool);
        }
        size_t in_use = 0;
        for (const obmi_arena *ao = a.all; ao != NULL; ao = ao->allnext)
            in_use += OBMI_POOLS_PER_ARENA - ao->nfreepools;
        assert_int_equal(in_use, nlive);
    }
    while (nlive > 0)
        give(&a, live[--nlive]);
    assert_int_equal(a.narenas_current, 1); /* only the spare is left */
    assert_int_equal(a.usable->nfreepools, OBMI_POOLS_PER_ARENA);
}

/* One pool in and out at an arena boundary must not map and unmap an arena
 * each time (the spare absorbs it). */
static void test_no_thrash_at_boundary(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a);
    obmi_pool *p[OBMI_POOLS_PER_ARENA];
    for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++)
        p[i] = take(&a);
    for (int i = 0; i < 1000; i++) {
        obmi_pool *q = take(&a); /* needs a second arena */
        give(&a, q);
    }
    assert_int_equal(a.narenas_allocated_total, 2);
    assert_int_equal(a.narenas_released_total, 0);
    for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++)
        give(&a, p[i]);
    assert_int_equal(a.narenas_current, 1);
}

/* A reused pool comes from the arena's free list before fresh pools. */
static void test_reuse_before_fresh(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a);
    obmi_pool *x = take(&a), *y = take(&a);
    give(&a, x);
    assert_ptr_equal(take(&a), x);
    assert_int_equal(obmi_pool_arena(x)->untouched, ~UINT64_C(0) << 2); /* pages 0 and 1 taken */
    (void)y;
}

/* ---- medium pools: runs of pages ---- */

/* A medium pool of class c in service, carved `blocks` blocks deep. */
static obmi_pool *take_medium(obmi_arenas *a, unsigned c, unsigned blocks)
{
    unsigned npages = obmi_classes[c].pool_bytes >> OBMI_POOL_SHIFT;
    obmi_pool *pool = obmi_arenas_take_run(a, npages);
    assert_non_null(pool);
    obmi_pool_init(pool, c, NULL);
    obmi_pool_set_carved(pool, blocks * obmi_classes[c].size);
    pool->ref_count = (uint16_t)blocks; /* every carved block in use */
    assert_true(obmi_arenas_check(a));
    return pool;
}

static void give_medium(obmi_arenas *a, obmi_pool *pool)
{
    pool->ref_count = 0;
    obmi_arenas_return_run(a, pool);
    assert_true(obmi_arenas_check(a));
}

static unsigned page_of(const obmi_pool *pool)
{
    return (unsigned)(((uintptr_t)pool - obmi_pool_arena(pool)->base) >> OBMI_POOL_SHIFT);
}

/* Runs are aligned to their size, lowest first, past pages already
 * taken; the arena's page table names each page's first page. */
static void test_runs_aligned(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a);
    obmi_pool *small = take(&a);                          /* page 0 */
    obmi_pool *m16 = take_medium(&a, OBMI_NSMALL, 1);     /* 4 pages: 4..7 */
    obmi_pool *m32 = take_medium(&a, OBMI_NSMALL + 4, 1); /* 8 pages: 8..15 */
    obmi_pool *m64 = take_medium(&a, OBMI_NSMALL + 8, 1); /* 16 pages: 16..31 */
    obmi_arena *ao = obmi_pool_arena(small);
    assert_int_equal(page_of(m16), 4);
    assert_int_equal(page_of(m32), 8);
    assert_int_equal(page_of(m64), 16);
    for (unsigned i = 0; i < 32; i++) {
        unsigned want = i < 4 ? i : i < 8 ? 4 : i < 16 ? 8 : 16;
        assert_int_equal(atomic_load(&ao->pool_start[i]), want);
        assert_ptr_equal(obmi_pool_containing(ao, (char *)ao->base + i * OBMI_POOL_SIZE + 100),
                         (char *)ao->base + want * OBMI_POOL_SIZE);
    }
    /* A small pool still takes the lowest free page. */
    assert_int_equal(page_of(take(&a)), 1);
    assert_int_equal(ao->nfreepools, 64 - 2 - 4 - 8 - 16);
    /* A whole-arena pool cannot fit: a new arena. */
    obmi_pool *whole = take_medium(&a, OBMI_NCLASSES - 1, 1);
    assert_ptr_not_equal(obmi_pool_arena(whole), ao);
    assert_int_equal(page_of(whole), 0);
    assert_int_equal(a.narenas_current, 2);
    give_medium(&a, m32);
    for (unsigned i = 8; i < 16; i++)
        assert_int_equal(atomic_load(&ao->pool_start[i]), i);
    give_medium(&a, whole); /* the second arena: all free, kept as the spare or released */
    give_medium(&a, m16);
    give_medium(&a, m64);
}

/* A pool's pages go back as it left them: those it carved into dirty, the
 * others as they were taken (untouched, purged or dirty). */
static void test_run_pages_back_as_taken(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a);
    unsigned c = OBMI_NSMALL + 8; /* 2560-byte blocks in 16 pages */
    obmi_pool *first = take_medium(&a, c, 25);
    obmi_arena *ao = obmi_pool_arena(first);
    give_medium(&a, first); /* a spare now, not released: nothing else is kept */
    assert_int_equal(ao->dirty, UINT64_C(0xffff));
    assert_int_equal(ao->untouched, ~UINT64_C(0xffff));
    /* Purge pages 8..15 by hand, as a decay tick would. */
    ao->dirty &= ~UINT64_C(0xff00);
    ao->purged |= UINT64_C(0xff00);
    a.pools_purged += 8;
    /* Carved 3 blocks deep: its first two pages written, the rest not. */
    obmi_pool *again = take_medium(&a, c, 3);
    assert_ptr_equal(again, first);
    assert_int_equal(ao->lent_purged, UINT64_C(0xff00));
    give_medium(&a, again);
    assert_int_equal(ao->dirty, UINT64_C(0x00ff)); /* 0..1 written, 2..7 were dirty */
    assert_int_equal(ao->purged, UINT64_C(0xff00));
    assert_int_equal(a.pools_purged, 8);
    /* Taken from untouched pages and left at one block: one page dirty. */
    obmi_pool *fresh = take_medium(&a, c, 0);
    obmi_pool *other = take_medium(&a, c, 1);
    assert_int_equal(page_of(other), 16);
    give_medium(&a, other);
    assert_int_equal(ao->untouched & UINT64_C(0xffff0000), UINT64_C(0xfffe0000));
    assert_int_equal(ao->dirty & UINT64_C(0xffff0000), UINT64_C(0x00010000));
    give_medium(&a, fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pools_fill_an_arena_first),
        cmocka_unit_test(test_fullest_first),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_random_walk),
        cmocka_unit_test(test_no_thrash_at_boundary),
        cmocka_unit_test(test_reuse_before_fresh),
        cmocka_unit_test(test_runs_aligned),
        cmocka_unit_test(test_run_pages_back_as_taken),
    };
    return RUN_TAP_TESTS(tests);
}
