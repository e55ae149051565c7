/* The heap: every pool transition (empty->used, used->full, full->used,
 * used->empty, retire), ring order, the cache of medium runs, and a
 * randomised run against a shadow model with content checks, with the
 * walkers after every step. */
#include <stdlib.h>

#include "unit.h"

static void test_first_malloc_takes_a_pool(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        assert_ptr_equal(u.heap.usedpools[c], &obmi_pool_empty);
    char *p = unit_malloc(&u, 100); /* class 6, 112-byte blocks */
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    obmi_pool *pool = obmi_pool_of(p);
    assert_ptr_equal(u.heap.usedpools[6], pool);
    assert_int_equal(pool->state, OBMI_POOL_USED);
    assert_int_equal(pool->ref_count, 1);
    assert_ptr_equal(p, (char *)pool + OBMI_POOL_HEADER);
    assert_int_equal(u.heap.counts.pools_taken, 1);
    unit_check(&u);
    unit_free(&u, p);
    unit_check(&u);
}

/* Fill a pool exactly: it leaves the ring (full) on the next malloc of its
 * class, and comes back behind the ring's head on the first free; the head
 * serves until it runs out, then the pool's freed block is reused. */
static void test_used_full_used(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    const unsigned c = 31; /* 512-byte blocks, 7 per pool */
    void *b[8];
    for (int i = 0; i < 7; i++) {
        b[i] = unit_malloc(&u, 512);
        unit_check(&u);
    }
    obmi_pool *first = obmi_pool_of(b[0]);
    assert_int_equal(first->ref_count, 7);
    assert_int_equal(first->state, OBMI_POOL_USED); /* exhaustion not seen yet */
    b[7] = unit_malloc(&u, 500);
    obmi_pool *second = obmi_pool_of(b[7]);
    assert_ptr_not_equal(first, second);
    assert_int_equal(first->state, OBMI_POOL_FULL);
    assert_ptr_equal(u.heap.usedpools[c], second);
    assert_null(second->nextpool);
    unit_check(&u);

    unit_free(&u, b[3]); /* full -> used, behind the head */
    assert_int_equal(first->state, OBMI_POOL_USED);
    assert_ptr_equal(u.heap.usedpools[c], second);
    assert_ptr_equal(second->nextpool, first);
    assert_ptr_equal(first->prevpool, second);
    assert_null(first->nextpool);
    unit_check(&u);
    for (int i = 0; i < 6; i++) { /* the head's other six blocks */
        void *q = unit_malloc(&u, 512);
        assert_ptr_equal(obmi_pool_of(q), second);
        unit_check(&u);
    }
    assert_ptr_equal(unit_malloc(&u, 512), b[3]); /* then the freed block, LIFO */
    assert_int_equal(second->state, OBMI_POOL_FULL);
    assert_ptr_equal(u.heap.usedpools[c], first);
    unit_check(&u);
}

/* A pool that empties while another pool is on its ring goes back to its
 * arena; the last one on its ring is retired in place. */
static void test_used_to_empty_and_retire(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    void *b[14];
    for (int i = 0; i < 14; i++)
        b[i] = unit_malloc(&u, 512); /* two full pools */
    obmi_pool *p0 = obmi_pool_of(b[0]), *p1 = obmi_pool_of(b[7]);
    unit_free(&u, b[7]); /* p1 has a free block: it stays on the ring */
    unit_check(&u);
    for (int i = 0; i < 7; i++) {
        unit_free(&u, b[i]);
        unit_check(&u);
    }
    assert_int_equal(p0->state, OBMI_POOL_EMPTY); /* returned: p1 still serves */
    assert_int_equal(u.heap.counts.pools_returned, 1);
    for (int i = 8; i < 14; i++) {
        unit_free(&u, b[i]);
        unit_check(&u);
    }
    assert_int_equal(p1->state, OBMI_POOL_USED); /* retired: the last of class 31 */
    assert_int_equal(p1->ref_count, 0);
    assert_ptr_equal(u.heap.usedpools[31], p1);
    assert_int_equal(u.heap.counts.pools_returned, 1);

    /* A malloc/free loop on the retired pool takes no pool. */
    for (int i = 0; i < 1000; i++)
        unit_free(&u, unit_malloc(&u, 512));
    assert_int_equal(u.heap.counts.pools_taken, 2);
    assert_int_equal(u.heap.counts.pools_returned, 1);

    obmi_heap_release_retired(&u.heap);
    assert_int_equal(p1->state, OBMI_POOL_EMPTY);
    assert_ptr_equal(u.heap.usedpools[31], &obmi_pool_empty);
    unit_check(&u);
}

/* An empty pool returned by one class is reused by another, re-initialised. */
static void test_pool_reused_for_other_class(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    void *keep = unit_malloc(&u, 16); /* keeps the arena alive */
    void *b[7], *x[7];
    for (int i = 0; i < 7; i++)
        b[i] = unit_malloc(&u, 512);
    for (int i = 0; i < 7; i++)
        x[i] = unit_malloc(&u, 512); /* second pool of class 31 */
    obmi_pool *p0 = obmi_pool_of(b[0]);
    unit_free(&u, x[0]); /* the second pool stays on the ring */
    for (int i = 0; i < 7; i++)
        unit_free(&u, b[i]);
    assert_int_equal(p0->state, OBMI_POOL_EMPTY);
    /* Class 2's first pool comes from the arena's free list: p0 again. */
    void *y[85];
    for (int i = 0; i < 85; i++)
        y[i] = unit_malloc(&u, 48);
    assert_ptr_equal(obmi_pool_of(y[0]), p0);
    assert_ptr_equal(y[0], (char *)p0 + OBMI_POOL_HEADER);
    assert_int_equal(p0->szidx, 2);
    assert_int_equal(p0->state, OBMI_POOL_FULL); /* 84 blocks of 48 */
    assert_ptr_not_equal(obmi_pool_of(y[84]), p0);
    unit_check(&u);
    for (int i = 0; i < 85; i++)
        unit_free(&u, y[i]);
    for (int i = 1; i < 7; i++)
        unit_free(&u, x[i]);
    unit_free(&u, keep);
    unit_check(&u);
}

/* Randomised: mixed classes, every block filled with a pattern tied to its
 * address and checked before it is freed; walkers every 64 steps. */
static void test_random_against_model(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    enum { N = 20000 };
    static struct {
        char *p;
        size_t n;
    } live[N];
    size_t nlive = 0;
    unsigned seed = 7;
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        bool grow = nlive == 0 || (nlive < N && r % 100 < (step % 50000 < 30000 ? 60 : 35));
        if (grow) {
            size_t n = r % (OBMI_SMALL_MAX + 1);
            char *p = unit_malloc(&u, n);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % 16, 0);
            assert_true(obmi_arena_map_lookup(p) != NULL);
            pattern_fill(p, n, (uintptr_t)p);
            live[nlive].p = p;
            live[nlive].n = n;
            nlive++;
        } else {
            size_t i = (r / 128) % nlive;
            assert_int_equal(pattern_check(live[i].p, live[i].n, (uintptr_t)live[i].p), live[i].n);
            unit_free(&u, live[i].p);
            live[i] = live[--nlive];
        }
        if (step % 64 == 0)
            unit_check(&u);
    }
    while (nlive > 0) {
        nlive--;
        assert_int_equal(pattern_check(live[nlive].p, live[nlive].n, (uintptr_t)live[nlive].p),
                         live[nlive].n);
        unit_free(&u, live[nlive].p);
    }
    obmi_heap_release_retired(&u.heap);
    unit_check(&u);
    /* Every arena left is a spare (they wait for the decay), and trim
     * unmaps them all. */
    assert_true(u.arenas.narenas_current >= 1);
    assert_int_equal(u.arenas.nspare, u.arenas.narenas_current);
    assert_int_equal(u.heap.counts.pools_taken, u.heap.counts.pools_returned);
    assert_true(obmi_arenas_trim(&u.arenas));
    assert_int_equal(u.arenas.narenas_current, 0);
}

/* Two heaps on one arena manager take pools independently. */
static void test_two_heaps_share_arenas(void **state)
{
    (void)state;
    obmi_arenas a;
    obmi_heap h1, h2;
    obmi_arenas_init(&a);
    obmi_heap_init(&h1, &a);
    obmi_heap_init(&h2, &a);
    void *p = obmi_heap_malloc_small(&h1, 3);
    void *q = obmi_heap_malloc_small(&h2, 3);
    assert_ptr_not_equal(obmi_pool_of(p), obmi_pool_of(q));
    assert_ptr_equal(obmi_pool_arena(obmi_pool_of(p)), obmi_pool_arena(obmi_pool_of(q)));
    assert_ptr_equal(obmi_pool_heap(obmi_pool_of(q)), &h2);
    assert_true(obmi_heap_check(&h1) && obmi_heap_check(&h2) && obmi_arenas_check(&a));
    obmi_heap_free_small(&h1, obmi_pool_of(p), p);
    obmi_heap_free_small(&h2, obmi_pool_of(q), q);
    obmi_heap_release_retired(&h1);
    obmi_heap_release_retired(&h2);
    assert_true(obmi_arenas_check(&a));
    assert_int_equal(a.narenas_current, 1);
}

/* ---- the cache of medium runs ---- */

static void *medium_malloc(unit_heap *u, unsigned c)
{
    void *p = obmi_heap_malloc_medium(&u->heap, c);
    assert_non_null(p);
    obmi_track_malloc(p, obmi_class_size(c));
    return p;
}

static obmi_pool *medium_pool(const void *p)
{
    return obmi_pool_containing(obmi_arena_map_lookup(p), p);
}

static void medium_free(unit_heap *u, void *p)
{
    obmi_pool *pool = medium_pool(p);
    assert_true(obmi_pool_is_block_start_in(pool, p));
    assert_ptr_equal(obmi_pool_heap(pool), &u->heap);
    obmi_track_free(p, obmi_class_size(pool->szidx));
    obmi_heap_free_small(&u->heap, pool, p);
}

/* Fill `npools` pools of medium class c and put one block in the next,
 * their blocks into b (in order): the ring's head then has blocks to
 * give, and a pool emptied later is never its class's only one. */
static size_t medium_fill(unit_heap *u, unsigned c, size_t npools, void **b)
{
    size_t n = npools * obmi_classes[c].nblocks + 1;
    for (size_t i = 0; i < n; i++)
        b[i] = medium_malloc(u, c);
    return n;
}

/* A medium pool emptied while the heap has four times its pages in
 * service stays with the heap, whole, and serves the next class of the
 * same pool size without the arenas: no pool move under the lock. */
static void test_run_cache_reuse(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init_cached(&u);
    const unsigned c = OBMI_NSMALL + 4; /* 1280 B, 25 to a pool of 32 KiB (8 pages) */
    static void *b[8 * 25 + 1];
    size_t n = medium_fill(&u, c, 8, b);
    assert_int_equal(n, 8 * 25 + 1);
    assert_int_equal(u.heap.run_pages, 72);
    obmi_pool *first = medium_pool(b[0]);
    size_t to_arenas = u.heap.counts.pools_to_arenas;
    for (size_t i = 0; i < 25; i++)
        medium_free(&u, b[i]); /* the first pool's blocks */
    assert_int_equal(first->state, OBMI_POOL_EMPTY);
    assert_int_equal(u.heap.run_cache_pages, 8);
    assert_ptr_equal(u.heap.run_cache[1], first);
    assert_int_equal(u.heap.counts.pools_to_arenas, to_arenas);
    unit_check(&u);

    /* 1536 B: the same pool size; its first pool is the cached run. */
    size_t from_arenas = u.heap.counts.pools_from_arenas;
    void *q = medium_malloc(&u, c + 1);
    assert_ptr_equal(medium_pool(q), first);
    assert_ptr_equal(q, (char *)first + OBMI_POOL_HEADER);
    assert_int_equal(first->szidx, c + 1);
    assert_int_equal(u.heap.run_cache_pages, 0);
    assert_int_equal(u.heap.counts.pools_from_arenas, from_arenas);
    unit_check(&u);

    /* Everything freed: the cache shrinks with the heap, and only each
     * class's retired pool is left; then those go too. */
    medium_free(&u, q);
    for (size_t i = 25; i < n; i++)
        medium_free(&u, b[i]);
    assert_int_equal(u.heap.run_cache_pages, 0);
    assert_int_equal(u.heap.npools, 2); /* the retired pools of c and c + 1 */
    unit_check(&u);
    obmi_heap_release_retired(&u.heap);
    assert_int_equal(u.heap.run_pages, 0);
    assert_int_equal(u.heap.run_cache_pages, 0);
    unit_check(&u);
}

/* The cache holds at most a quarter of the pages in service: of 8 pools
 * emptied, 2 stay. */
static void test_run_cache_quarter(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init_cached(&u);
    const unsigned c = OBMI_NSMALL + 4;
    static void *b[16 * 25 + 1];
    size_t n = medium_fill(&u, c, 16, b);
    size_t to_arenas = u.heap.counts.pools_to_arenas;
    for (size_t i = 0; i < 8 * 25; i++)
        medium_free(&u, b[i]);
    /* 9 pools (72 pages) left in service: room for 18 pages, 2 runs. */
    assert_int_equal(u.heap.run_pages, 72);
    assert_int_equal(u.heap.run_cache_pages, 16);
    assert_int_equal(u.heap.counts.pools_to_arenas, to_arenas + 6);
    unit_check(&u);
    /* cache_max 0 keeps nothing: the next pool emptied takes the cache
     * back with it. */
    u.heap.cache_max = 0;
    for (size_t i = 8 * 25; i < 9 * 25; i++)
        medium_free(&u, b[i]);
    assert_int_equal(u.heap.run_cache_pages, 0);
    assert_int_equal(u.heap.counts.pools_to_arenas, to_arenas + 9);
    unit_check(&u);
    for (size_t i = 9 * 25; i < n; i++)
        medium_free(&u, b[i]);
    obmi_heap_release_retired(&u.heap);
    assert_int_equal(u.heap.npools, 0);
    unit_check(&u);
}

/* A run carved deep, cached, then carved shallow for another class, goes
 * back with every page it ever carved into dirty, each with an EMPTY
 * header: the pages its earlier service wrote are not taken for
 * untouched ones. */
static void test_run_cache_keeps_carved_pages(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init_cached(&u);
    const unsigned c = OBMI_NSMALL + 8; /* 2560 B, 25 to a pool of 64 KiB (16 pages) */
    static void *b[5 * 25 + 1];
    size_t n = medium_fill(&u, c, 5, b);
    obmi_pool *run = medium_pool(b[0]);
    obmi_arena *ao = obmi_pool_arena(run);
    unsigned at = (unsigned)(((uintptr_t)run - ao->base) >> OBMI_POOL_SHIFT);
    for (size_t i = 0; i < 25; i++)
        medium_free(&u, b[i]); /* 16 pages carved into, now cached */
    assert_ptr_equal(u.heap.run_cache[2], run);
    assert_int_equal(ao->run_carved[at], 16);
    unit_check(&u);

    void *q = medium_malloc(&u, c + 1); /* 3072 B: one block, the first page only */
    assert_ptr_equal(medium_pool(q), run);
    medium_free(&u, q); /* retired: its class's only pool */
    obmi_heap_release_retired(&u.heap);
    obmi_heap_flush_cache(&u.heap);
    assert_int_equal(ao->run_carved[at], 0);
    for (unsigned i = at; i < at + 16; i++) {
        assert_true((ao->dirty >> i) & 1);
        assert_false(((ao->untouched | ao->purged) >> i) & 1);
        const obmi_pool *page = (const obmi_pool *)(ao->base + ((uintptr_t)i << OBMI_POOL_SHIFT));
        assert_int_equal(page->state, OBMI_POOL_EMPTY);
    }
    unit_check(&u);
    for (size_t i = 25; i < n; i++)
        medium_free(&u, b[i]);
    obmi_heap_release_retired(&u.heap);
    unit_check(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_malloc_takes_a_pool),
        cmocka_unit_test(test_used_full_used),
        cmocka_unit_test(test_used_to_empty_and_retire),
        cmocka_unit_test(test_pool_reused_for_other_class),
        cmocka_unit_test(test_random_against_model),
        cmocka_unit_test(test_two_heaps_share_arenas),
        cmocka_unit_test(test_run_cache_reuse),
        cmocka_unit_test(test_run_cache_quarter),
        cmocka_unit_test(test_run_cache_keeps_carved_pages),
    };
    return RUN_TAP_TESTS(tests);
}
