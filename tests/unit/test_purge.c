/* Purge (purge.c): the two-generation decay on an injected clock, its idle
 * rule, delay 0 (at once) and -1 (never), obmi_arenas_trim, one madvise per
 * run of adjacent pools, pages that really leave memory (mincore) and come
 * back zeroed, the take order dirty, purged, untouched, reuse of a purged
 * pool for another class through the heap, arena_keep (OBM_ARENA_KEEP),
 * MADV_FREE, and random walks showing that purging never touches a pool in
 * service nor the fullest-first order. Every test has its own manager and
 * starts the fake clock afresh, so counts and times are exact; the walkers
 * run after every step. */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "unit.h"

/* ---- the clock and small helpers ---- */

static uint64_t fake_now;
static unsigned clock_reads;

static uint64_t fake_clock(void)
{
    clock_reads++;
    return fake_now;
}

static void manager_init(obmi_arenas *a, long delay)
{
    obmi_arenas_init(a);
    a->clock = fake_clock;
    a->purge_delay_ms = delay;
    fake_now = 1000;
    clock_reads = 0;
}

static uint64_t bit(unsigned i)
{
    return UINT64_C(1) << i;
}

/* Bits lo..hi inclusive. */
static uint64_t bits(unsigned lo, unsigned hi)
{
    uint64_t upto = hi == 63 ? ~UINT64_C(0) : bit(hi + 1) - 1;
    return upto & ~(bit(lo) - 1);
}

static unsigned index_in_arena(const obmi_pool *pool)
{
    return (unsigned)(((uintptr_t)pool - obmi_pool_arena(pool)->base) >> OBMI_POOL_SHIFT);
}

static void check(const obmi_arenas *a)
{
    assert_true(obmi_arenas_check(a));
}

/* A pool from the manager, put in service for class c (the walkers read
 * the header of every pool that is neither free nor purged). */
static obmi_pool *take(obmi_arenas *a, unsigned c)
{
    obmi_pool *pool = obmi_arenas_take_pool(a);
    assert_non_null(pool);
    assert_int_equal((uintptr_t)pool & (OBMI_POOL_SIZE - 1), 0);
    assert_true((uintptr_t)pool >= obmi_pool_arena(pool)->base &&
                (uintptr_t)pool < obmi_pool_arena(pool)->base + OBMI_ARENA_SIZE);
    obmi_pool_init(pool, c, NULL);
    check(a);
    return pool;
}

/* n pools in service (class 0), from one fresh arena: its object. */
static obmi_arena *take_n(obmi_arenas *a, obmi_pool **p, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = take(a, 0);
    return obmi_pool_arena(p[0]);
}

static void give(obmi_arenas *a, obmi_pool *pool)
{
    obmi_arenas_return_pool(a, pool);
    check(a);
}

/* The end of a slow path at time t. */
static void decay_at(obmi_arenas *a, uint64_t t)
{
    fake_now = t;
    obmi_arenas_decay(a);
    check(a);
}

static void expect_counts(const obmi_arenas *a, size_t now, size_t total, size_t calls)
{
    assert_int_equal(a->pools_purged, now);
    assert_int_equal(a->pools_purged_total, total);
    assert_int_equal(a->purges_total, calls);
}

static void expect_masks(const obmi_arena *ao, uint64_t dirty, uint64_t old, uint64_t purged)
{
    assert_int_equal(ao->dirty, dirty);
    assert_int_equal(ao->dirty_old, old);
    assert_int_equal(ao->purged, purged);
}

/* The page's bytes after the header, tied to the pool's address. */
static void fill_body(obmi_pool *pool)
{
    unit_open((char *)pool + OBMI_POOL_HEADER, OBMI_POOL_SIZE - OBMI_POOL_HEADER);
    pattern_fill((char *)pool + OBMI_POOL_HEADER, OBMI_POOL_SIZE - OBMI_POOL_HEADER,
                 (uintptr_t)pool);
}

static bool body_intact(const obmi_pool *pool)
{
    return pattern_check((const char *)pool + OBMI_POOL_HEADER, OBMI_POOL_SIZE - OBMI_POOL_HEADER,
                         (uintptr_t)pool) == OBMI_POOL_SIZE - OBMI_POOL_HEADER;
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static bool resident(const void *page)
{
    unsigned char vec = 0;
    assert_int_equal(mincore((void *)page, OBMI_POOL_SIZE, &vec), 0);
    return (vec & 1) != 0;
}

/* ---- 1. the decay on the injected clock ---- */

/* Delay 50 ms. p0 goes free at 1000, and that decay is the first tick: p0
 * is old at once and purged by the tick at 1050. p2 and p3 go free at
 * 1001, just after it: they are not purged at 1049 nor at 1050 (they were
 * not old yet), only by the tick at 1100, within two delays. p5, free at
 * 1060, is not purged with them. Activity stays within a delay, so only
 * the generations decide. */
static void test_decay_two_generations(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 50);
    obmi_pool *p[8];
    obmi_arena *ao = take_n(&a, p, 8);
    decay_at(&a, 1000);
    assert_int_equal(clock_reads, 0); /* nothing dirty: the clock is not read */

    give(&a, p[0]);
    decay_at(&a, 1000);
    assert_int_equal(clock_reads, 1);
    expect_masks(ao, bit(0), bit(0), 0);
    assert_ptr_equal(a.dirty, ao);
    expect_counts(&a, 0, 0, 0);

    give(&a, p[2]);
    give(&a, p[3]);
    decay_at(&a, 1001);
    expect_masks(ao, bit(0) | bits(2, 3), bit(0), 0);
    decay_at(&a, 1049);
    expect_masks(ao, bit(0) | bits(2, 3), bit(0), 0);
    expect_counts(&a, 0, 0, 0);
    assert_int_equal(clock_reads, 3); /* one read per decay with a dirty pool */

    decay_at(&a, 1050); /* tick: the old generation (p0) goes */
    expect_masks(ao, bits(2, 3), bits(2, 3), bit(0));
    expect_counts(&a, 1, 1, 1);

    give(&a, p[5]);
    decay_at(&a, 1060);
    expect_masks(ao, bits(2, 3) | bit(5), bits(2, 3), bit(0));
    decay_at(&a, 1099);
    expect_masks(ao, bits(2, 3) | bit(5), bits(2, 3), bit(0));
    expect_counts(&a, 1, 1, 1);

    decay_at(&a, 1100); /* tick: p2 and p3, adjacent, in one call; p5 stays */
    expect_masks(ao, bit(5), bit(5), bit(0) | bits(2, 3));
    expect_counts(&a, 3, 3, 2);
    decay_at(&a, 1149);
    expect_counts(&a, 3, 3, 2);

    decay_at(&a, 1150); /* tick: p5 */
    expect_masks(ao, 0, 0, bit(0) | bits(2, 3) | bit(5));
    expect_counts(&a, 4, 4, 3);
    assert_null(a.dirty);
    assert_null(a.dirtylast);
    unsigned reads = clock_reads;
    decay_at(&a, 5000);
    assert_int_equal(clock_reads, reads); /* no dirty pool: no clock read */
    expect_counts(&a, 4, 4, 3);
    assert_int_equal(ao->nfreepools, OBMI_POOLS_PER_ARENA - 8 + 4);
}

/* A pool taken again leaves the old generation: given back once more, its
 * time starts over, and the next tick does not purge it. */
static void test_decay_retaken_pool_starts_over(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 50);
    obmi_pool *p[4];
    obmi_arena *ao = take_n(&a, p, 4);
    give(&a, p[1]);
    decay_at(&a, 1000); /* first tick: p1 old */
    expect_masks(ao, bit(1), bit(1), 0);

    fake_now = 1040;
    assert_ptr_equal(take(&a, 3), p[1]); /* dirty pools first */
    expect_masks(ao, 0, 0, 0);
    assert_null(a.dirty);
    decay_at(&a, 1040);

    give(&a, p[1]);
    decay_at(&a, 1045);
    expect_masks(ao, bit(1), 0, 0);
    decay_at(&a, 1050); /* tick: no old generation, nor idle: nothing */
    expect_masks(ao, bit(1), bit(1), 0);
    expect_counts(&a, 0, 0, 0);
    decay_at(&a, 1099);
    expect_counts(&a, 0, 0, 0);
    decay_at(&a, 1100);
    expect_masks(ao, 0, 0, bit(1));
    expect_counts(&a, 1, 1, 1);
}

/* Nothing dirtied for a whole delay: the first decay after it purges every
 * dirty pool, old or not. p1 goes free at 1010, after the tick at 1000, and
 * no slow path runs until 1060: both p0 (old) and p1 (not old) go. One
 * millisecond less (1059) and only p0 goes. */
static void test_decay_idle_rule(void **state)
{
    (void)state;
    for (int idle = 1; idle >= 0; idle--) {
        obmi_arenas a;
        manager_init(&a, 50);
        obmi_pool *p[4];
        obmi_arena *ao = take_n(&a, p, 4);
        give(&a, p[0]);
        decay_at(&a, 1000);
        give(&a, p[1]);
        decay_at(&a, 1010);
        expect_masks(ao, bits(0, 1), bit(0), 0);
        if (idle) {
            decay_at(&a, 1060);
            expect_masks(ao, 0, 0, bits(0, 1));
            expect_counts(&a, 2, 2, 1); /* adjacent: one call */
            assert_null(a.dirty);
        } else {
            decay_at(&a, 1059);
            expect_masks(ao, bit(1), bit(1), bit(0));
            expect_counts(&a, 1, 1, 1);
            decay_at(&a, 1060); /* the next tick is due at 1109 */
            expect_counts(&a, 1, 1, 1);
            decay_at(&a, 1109);
            expect_masks(ao, 0, 0, bits(0, 1));
            expect_counts(&a, 2, 2, 2);
        }
    }
}

/* ---- 2. delay 0, delay -1, trim ---- */

static void test_delay_zero_purges_at_once(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 0);
    obmi_pool *p[4];
    obmi_arena *ao = take_n(&a, p, 4);
    give(&a, p[1]);
    expect_masks(ao, bit(1), 0, 0); /* not before the decay */
    expect_counts(&a, 0, 0, 0);
    obmi_arenas_decay(&a);
    check(&a);
    expect_masks(ao, 0, 0, bit(1));
    expect_counts(&a, 1, 1, 1);
    assert_null(a.dirty);
    give(&a, p[3]);
    give(&a, p[2]);
    obmi_arenas_decay(&a);
    check(&a);
    expect_masks(ao, 0, 0, bits(1, 3));
    expect_counts(&a, 3, 3, 2); /* p2 and p3 in one call */
    assert_int_equal(clock_reads, 0);
    assert_false(obmi_arenas_trim(&a)); /* nothing left to do */
    expect_counts(&a, 3, 3, 2);
    assert_int_equal(a.narenas_current, 1);
}

static void test_delay_never_but_trim(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, -1);
    obmi_pool *p[4];
    obmi_arena *ao = take_n(&a, p, 4);
    give(&a, p[1]);
    give(&a, p[2]);
    for (int i = 0; i < 1000; i++) {
        fake_now += UINT64_C(1) << 40;
        obmi_arenas_decay(&a);
    }
    decay_at(&a, UINT64_MAX);
    check(&a);
    expect_masks(ao, bits(1, 2), 0, 0);
    expect_counts(&a, 0, 0, 0);
    assert_int_equal(clock_reads, 0);

    assert_true(obmi_arenas_trim(&a));
    check(&a);
    expect_masks(ao, 0, 0, bits(1, 2));
    expect_counts(&a, 2, 2, 1);
    assert_null(a.dirty);
    assert_false(obmi_arenas_trim(&a));
    expect_counts(&a, 2, 2, 1);
    assert_int_equal(a.narenas_current, 1);

    /* All free: the arena is the spare (arena_keep 1), with two dirty and
     * two purged pools. Trim unmaps it; its dirty pools need no madvise. */
    give(&a, p[0]);
    give(&a, p[3]);
    decay_at(&a, fake_now);
    assert_int_equal(a.narenas_current, 1);
    assert_int_equal(a.nspare, 1);
    expect_masks(ao, bit(0) | bit(3), 0, bits(1, 2));
    assert_true(obmi_arenas_trim(&a));
    check(&a);
    assert_int_equal(a.narenas_current, 0);
    assert_int_equal(a.narenas_released_total, 1);
    assert_int_equal(a.nspare, 0);
    assert_null(a.usable);
    assert_null(a.dirty);
    expect_counts(&a, 0, 2, 1);
    assert_false(obmi_arenas_trim(&a));
}

/* ---- 3. one madvise per run ---- */

static void test_adjacent_pools_one_madvise(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 0);
    obmi_pool *p[16];
    obmi_arena *ao = take_n(&a, p, 16);
    const int order[] = {5, 3, 1, 4, 2};
    for (int i = 0; i < 5; i++)
        give(&a, p[order[i]]);
    obmi_arenas_decay(&a);
    check(&a);
    expect_masks(ao, 0, 0, bits(1, 5));
    expect_counts(&a, 5, 5, 1);

    give(&a, p[10]);
    give(&a, p[8]);
    obmi_arenas_decay(&a);
    check(&a);
    expect_counts(&a, 7, 7, 3); /* two runs, two calls */

    give(&a, p[6]); /* next to purged pools: they are not dirty, it goes alone */
    obmi_arenas_decay(&a);
    check(&a);
    expect_counts(&a, 8, 8, 4);
    give(&a, p[9]);
    give(&a, p[7]);
    obmi_arenas_decay(&a);
    check(&a);
    expect_masks(ao, 0, 0, bits(1, 10));
    expect_counts(&a, 10, 10, 6);

    /* Runs that end at the last pool, and the whole arena in one call. */
    obmi_arenas b;
    manager_init(&b, 0);
    obmi_pool *q[OBMI_POOLS_PER_ARENA];
    for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++)
        q[i] = take(&b, 0);
    ao = obmi_pool_arena(q[0]);
    for (int i = 63; i >= 40; i--)
        give(&b, q[i]);
    obmi_arenas_decay(&b);
    check(&b);
    expect_masks(ao, 0, 0, bits(40, 63));
    expect_counts(&b, 24, 24, 1);
    for (int i = 40; i < OBMI_POOLS_PER_ARENA; i++) {
        obmi_pool *again = take(&b, 1); /* the purged ones, lowest first */
        assert_ptr_equal(again, q[i]);
    }
    expect_counts(&b, 0, 24, 1);
    for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++)
        give(&b, q[i]);
    assert_int_equal(b.nspare, 1); /* kept as the spare */
    obmi_arenas_decay(&b);
    check(&b);
    expect_masks(ao, 0, 0, ~UINT64_C(0));
    expect_counts(&b, 64, 88, 2);
}

/* ---- 4. the pages leave memory ---- */

static void test_purged_page_not_resident(void **state)
{
    (void)state;
    if (sysconf(_SC_PAGESIZE) != OBMI_POOL_SIZE)
        skip();
    obmi_arenas a;
    manager_init(&a, 50);
    obmi_pool *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = take(&a, 0);
        fill_body(p[i]);
        assert_true(resident(p[i]));
    }
    obmi_arena *ao = obmi_pool_arena(p[0]);
    give(&a, p[1]);
    give(&a, p[2]);
    decay_at(&a, 1000);
    give(&a, p[3]);
    decay_at(&a, 1010);
    decay_at(&a, 1049);
    for (int i = 0; i < 4; i++) {
        assert_true(resident(p[i])); /* dirty or in service */
        assert_true(body_intact(p[i]));
    }
    decay_at(&a, 1050);
    expect_masks(ao, bit(3), bit(3), bits(1, 2));
    assert_false(resident(p[1]));
    assert_false(resident(p[2]));
    assert_true(resident(p[0]));
    assert_true(resident(p[3]));
    assert_true(body_intact(p[0]));
    assert_true(body_intact(p[3]));
    assert_true(all_zero(p[1], 2 * OBMI_POOL_SIZE)); /* header too */

    assert_ptr_equal(obmi_arenas_take_pool(&a), p[3]); /* resident first */
    assert_true(body_intact(p[3]));
    obmi_pool_init(p[3], 5, NULL);
    check(&a);
}

/* ---- 5. reuse ---- */

/* Take order within the arena: dirty, then purged, then untouched, lowest
 * address first. A purged pool comes back as a zero page but for the arena
 * field that the take writes, and serves another class. */
static void test_take_order(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 0);
    obmi_pool *p[11];
    for (int i = 0; i < 10; i++) {
        p[i] = take(&a, 31);
        fill_body(p[i]);
    }
    obmi_arena *ao = obmi_pool_arena(p[0]);
    give(&a, p[5]);
    give(&a, p[2]);
    obmi_arenas_decay(&a);
    check(&a);
    expect_counts(&a, 2, 2, 2);
    give(&a, p[7]);
    give(&a, p[3]);
    expect_masks(ao, bit(3) | bit(7), 0, bit(2) | bit(5));
    assert_int_equal(ao->nfreepools, OBMI_POOLS_PER_ARENA - 10 + 4);

    const int expect[5] = {3, 7, 2, 5, 10};
    const uint64_t dirty_after[5] = {bit(7), 0, 0, 0, 0};
    const uint64_t purged_after[5] = {bit(2) | bit(5), bit(2) | bit(5), bit(5), 0, 0};
    for (int k = 0; k < 5; k++) {
        obmi_pool *q = obmi_arenas_take_pool(&a);
        assert_ptr_equal(q, (char *)p[0] + (size_t)expect[k] * OBMI_POOL_SIZE);
        assert_ptr_equal(obmi_pool_arena(q), ao);
        expect_masks(ao, dirty_after[k], 0, purged_after[k]);
        assert_int_equal(a.pools_purged, __builtin_popcountll(purged_after[k]));
        assert_int_equal(ao->untouched, ~UINT64_C(0) << (k < 4 ? 10 : 11));
        assert_int_equal(ao->nfreepools, OBMI_POOLS_PER_ARENA - 10 + 3 - k);
        if (k < 2) {
            assert_int_equal(q->state, OBMI_POOL_EMPTY); /* resident, as left */
            assert_true(body_intact(q));
        } else {
            /* purged or untouched: all zero, header included (taking it writes nothing) */
            assert_true(all_zero(q, OBMI_POOL_SIZE));
        }
        obmi_pool_init(q, (unsigned)k, NULL);
        check(&a);
        if (k >= 1)
            assert_null(a.dirty);
    }
    expect_counts(&a, 0, 2, 2);
}

/* Through the heap (cache_max 0: every emptied pool goes straight back to
 * its arena, and the slow path runs the decay). Five pools of 512-byte
 * blocks go back and are purged; 16-byte blocks then reuse the first two,
 * with exact contents, a working free list and nothing stale. */
static void reuse_through_heap(int advice)
{
    unit_heap u;
    unit_heap_init(&u);
    u.arenas.clock = fake_clock;
    u.arenas.purge_delay_ms = 0;
    u.arenas.purge_advice = (uint8_t)advice;
    enum { NBIG = 29, NSMALL = 260 };
    void *big[NBIG];
    for (int i = 0; i < NBIG; i++) {
        big[i] = unit_malloc(&u, 512);
        assert_non_null(big[i]);
        pattern_fill(big[i], 512, (uintptr_t)big[i]);
        unit_check(&u);
    }
    obmi_pool *p[5];
    for (int k = 0; k < 5; k++)
        p[k] = obmi_pool_of(big[7 * k]);
    obmi_arena *ao = obmi_pool_arena(p[0]);
    for (int k = 0; k < 5; k++)
        assert_ptr_equal(p[k], (char *)ao->base + (size_t)k * OBMI_POOL_SIZE);
    assert_int_equal(ao->untouched, ~UINT64_C(0) << 5);
    for (int i = 0; i < NBIG; i++) {
        assert_int_equal(pattern_check(big[i], 512, (uintptr_t)big[i]), 512);
        unit_free(&u, big[i]);
        unit_check(&u);
    }
    /* p0..p3 went back and were purged one by one; p4, the only pool of
     * its class, is retired in place. */
    expect_masks(ao, 0, 0, bits(0, 3));
    expect_counts(&u.arenas, 4, 4, 4);
    assert_ptr_equal(u.heap.usedpools[31], p[4]);
    assert_int_equal(p[4]->ref_count, 0);
    obmi_heap_release_retired(&u.heap);
    unit_check(&u);
    expect_masks(ao, 0, 0, bits(0, 4));
    expect_counts(&u.arenas, 5, 5, 5);
    assert_int_equal(ao->nfreepools, OBMI_POOLS_PER_ARENA);
    assert_int_equal(u.arenas.narenas_current, 1); /* the spare */
    if (advice == OBMI_PURGE_DONTNEED && sysconf(_SC_PAGESIZE) == OBMI_POOL_SIZE)
        for (int k = 0; k < 5; k++)
            assert_false(resident(p[k]));

    char *s[NSMALL];
    for (int i = 0; i < NSMALL; i++) {
        s[i] = unit_malloc(&u, 16);
        assert_non_null(s[i]);
        obmi_pool *pool = obmi_pool_of(s[i]);
        assert_ptr_equal(pool, i < 252 ? p[0] : p[1]); /* 252 blocks to a pool */
        assert_int_equal(pool->szidx, 0);
        if (advice == OBMI_PURGE_DONTNEED) { /* the old 512-byte contents are gone */
            unit_inspect(s[i] + sizeof(void *), 16 - sizeof(void *));
            assert_true(all_zero(s[i] + sizeof(void *), 16 - sizeof(void *)));
        }
        pattern_fill(s[i], 16, (uintptr_t)s[i]);
        unit_check(&u);
        if (i == 0) {
            expect_masks(ao, 0, 0, bits(1, 4));
            assert_int_equal(u.arenas.pools_purged, 4);
        }
    }
    expect_masks(ao, 0, 0, bits(2, 4));
    expect_counts(&u.arenas, 3, 5, 5);
    for (int i = 0; i < NSMALL; i++)
        assert_int_equal(pattern_check(s[i], 16, (uintptr_t)s[i]), 16);

    /* Free every other block of p0, which goes back on the ring behind p1;
     * once p1 is used up, take as many back: the same blocks, last freed
     * first. */
    for (int i = 0; i < 252; i += 2) {
        unit_free(&u, s[i]);
        unit_check(&u);
    }
    assert_int_equal(p[0]->ref_count, 126);
    char *rest[252 - (NSMALL - 252)];
    for (size_t i = 0; i < sizeof rest / sizeof *rest; i++) {
        rest[i] = unit_malloc(&u, 16);
        assert_ptr_equal(obmi_pool_of(rest[i]), p[1]);
    }
    for (int i = 250; i >= 0; i -= 2) {
        char *b = unit_malloc(&u, 16);
        assert_ptr_equal(b, s[i]);
        pattern_fill(b, 16, (uintptr_t)b ^ 1);
        unit_check(&u);
    }
    for (int i = 0; i < NSMALL; i++)
        assert_int_equal(pattern_check(s[i], 16, (uintptr_t)s[i] ^ (i < 252 && i % 2 == 0)), 16);

    for (size_t i = 0; i < sizeof rest / sizeof *rest; i++)
        unit_free(&u, rest[i]);
    for (int i = 0; i < NSMALL; i++) {
        unit_free(&u, s[i]);
        unit_check(&u);
    }
    obmi_heap_release_retired(&u.heap);
    unit_check(&u);
    expect_masks(ao, 0, 0, bits(0, 4));
    expect_counts(&u.arenas, 5, 7, 7);
    assert_true(obmi_heap_trim(&u.heap));
    unit_check(&u);
    assert_int_equal(u.arenas.narenas_current, 0);
    assert_int_equal(u.arenas.pools_purged, 0);
}

static void test_malloc_reuses_purged_pool(void **state)
{
    (void)state;
    reuse_through_heap(OBMI_PURGE_DONTNEED);
}

/* ---- 6. arena_keep ---- */

static bool is_mapped(const obmi_arenas *a, uintptr_t base)
{
    for (const obmi_arena *ao = a->all; ao != NULL; ao = ao->allnext)
        if (ao->base == base)
            return true;
    return false;
}

static void test_arena_keep_zero(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 50);
    a.arena_keep = 0;
    obmi_pool *p[3];
    for (int i = 0; i < 3; i++)
        p[i] = take(&a, 0);
    assert_int_equal(a.nspare, 0);
    give(&a, p[1]);
    decay_at(&a, 1000);
    decay_at(&a, 1050);
    expect_counts(&a, 1, 1, 1);
    give(&a, p[0]);
    decay_at(&a, 1050);
    give(&a, p[2]); /* the last one: a spare beyond the keep, waiting for a tick */
    assert_int_equal(a.nspare, 1);
    assert_int_equal(a.narenas_current, 1);
    decay_at(&a, 1099);
    assert_int_equal(a.narenas_current, 1);
    decay_at(&a, 1100); /* the first tick that sees it: old; its pools are young */
    assert_int_equal(a.narenas_current, 1);
    assert_true(a.usable->spare_old);
    expect_counts(&a, 1, 1, 1);
    assert_int_not_equal(atomic_load(&a.due_ms), UINT64_MAX); /* it waits for a tick */
    decay_at(&a, 1149);
    assert_int_equal(a.narenas_current, 1);
    decay_at(&a, 1150); /* a spare at two ticks: unmapped, with no madvise first */
    assert_int_equal(a.narenas_current, 0);
    assert_int_equal(a.narenas_released_total, 1);
    assert_int_equal(a.nspare, 0);
    assert_null(a.usable);
    assert_null(a.all);
    assert_null(a.dirty);
    expect_counts(&a, 0, 1, 1);
    assert_int_equal(atomic_load(&a.due_ms), UINT64_MAX);
    unsigned reads = clock_reads;
    decay_at(&a, 2000);
    assert_int_equal(clock_reads, reads);

    /* A spare taken again before its second tick is not unmapped. */
    obmi_pool *q = take(&a, 0);
    give(&a, q);
    decay_at(&a, 2000); /* a tick: the spare is old */
    assert_true(a.usable->spare_old);
    q = take(&a, 0);
    assert_false(obmi_pool_arena(q)->spare_old);
    decay_at(&a, 2050); /* nothing waits: no tick */
    assert_int_equal(a.narenas_current, 1);
    give(&a, q);
    decay_at(&a, 2050); /* a tick: the spare again, old at once */
    assert_true(a.usable->spare_old);
    decay_at(&a, 2099);
    assert_int_equal(a.narenas_current, 1);
    decay_at(&a, 2100); /* one delay after it emptied */
    assert_int_equal(a.narenas_current, 0);
    assert_int_equal(a.narenas_allocated_total, 2);
    assert_int_equal(a.narenas_released_total, 2);
    assert_false(obmi_arenas_trim(&a));
}

/* n arenas' worth of pools in service, p[k] the pools of arena k, whose
 * base is base[k]. */
static void fill_arenas(obmi_arenas *a, int n, obmi_pool *p[][OBMI_POOLS_PER_ARENA],
                        uintptr_t *base)
{
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++)
            p[k][i] = take(a, 0);
        base[k] = obmi_pool_arena(p[k][0])->base;
    }
}

/* At most OBMI_SPARES_WAITING spares beyond the keep wait for the decay:
 * as a sixth arena empties, the oldest spare is unmapped at once. */
static void test_spares_waiting_bounded(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 50);
    a.arena_keep = 1;
    enum { K = OBMI_SPARES_WAITING + 2 };
    obmi_pool *p[K][OBMI_POOLS_PER_ARENA];
    uintptr_t base[K];
    fill_arenas(&a, K, p, base);
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++)
            give(&a, p[k][i]);
        assert_int_equal(a.nspare, k < K - 1 ? (size_t)k + 1 : (size_t)K - 1);
    }
    assert_int_equal(a.narenas_current, K - 1);
    assert_int_equal(a.narenas_released_total, 1);
    assert_false(is_mapped(&a, base[0])); /* the oldest */
    for (int k = 1; k < K; k++)
        assert_true(is_mapped(&a, base[k]));
    decay_at(&a, 1000);
    decay_at(&a, 1050);
    assert_int_equal(a.narenas_current, 1);
    assert_true(is_mapped(&a, base[K - 1])); /* the newest is the one kept */
    assert_int_equal(a.nspare, 1);
}

/* With no decay (delay 0: purge at once) a spare beyond the keep goes at
 * once, in the same call that returns its last pool. */
static void test_arena_keep_zero_no_decay(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 0);
    a.arena_keep = 0;
    for (int i = 0; i < 3; i++) {
        obmi_pool *q = take(&a, 0);
        give(&a, q);
        assert_int_equal(a.narenas_current, 0);
        assert_int_equal(a.nspare, 0);
    }
    assert_int_equal(a.narenas_allocated_total, 3);
    assert_int_equal(a.narenas_released_total, 3);
}

static void test_arena_keep_three(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 50);
    a.arena_keep = 3;
    enum { K = 4 };
    obmi_pool *p[K][OBMI_POOLS_PER_ARENA];
    uintptr_t base[K];
    fill_arenas(&a, K, p, base);
    assert_int_equal(a.narenas_current, K);
    /* Interleaved: arena 3 is the fourth to become entirely free. */
    for (int i = 0; i < OBMI_POOLS_PER_ARENA; i++)
        for (int k = 0; k < K; k++) {
            give(&a, p[k][i]);
            decay_at(&a, 1000);
            if (i == OBMI_POOLS_PER_ARENA - 1)
                assert_int_equal(a.nspare, (size_t)k + 1);
        }
    /* Four spares, one beyond the keep: it waits for the decay. */
    assert_int_equal(a.narenas_current, K);
    assert_ptr_equal(a.nfp2lasta[OBMI_POOLS_PER_ARENA]->nextarena, NULL);
    assert_int_equal(obmi_arenas_count_usable(&a), K);

    /* Their pools decay like any others: one call per arena. */
    decay_at(&a, 1049);
    expect_counts(&a, 0, 0, 0);
    decay_at(&a, 1050);
    expect_counts(&a, 256, 256, 4);
    assert_int_equal(a.narenas_current, K);
    /* At the next tick the oldest spare, arena 0, is unmapped. */
    decay_at(&a, 1100);
    assert_int_equal(a.narenas_current, 3);
    assert_int_equal(a.narenas_released_total, 1);
    assert_int_equal(a.nspare, 3);
    assert_false(is_mapped(&a, base[0]));
    for (int k = 1; k < K; k++)
        assert_true(is_mapped(&a, base[k]));
    expect_counts(&a, 192, 256, 4);
    assert_null(a.dirty);
    for (const obmi_arena *ao = a.all; ao != NULL; ao = ao->allnext)
        expect_masks(ao, 0, 0, ~UINT64_C(0));
    assert_int_equal(atomic_load(&a.due_ms), UINT64_MAX); /* the keep: nothing waits */

    /* A kept, purged arena serves again: its lowest purged pool. */
    obmi_arena *head = a.usable;
    obmi_pool *q = take(&a, 7);
    assert_ptr_equal(q, (obmi_pool *)head->base);
    assert_int_equal(a.pools_purged, 191);
    assert_int_equal(a.nspare, 2);
    give(&a, q);
    decay_at(&a, 1050);
    assert_int_equal(a.nspare, 3);

    assert_true(obmi_arenas_trim(&a));
    check(&a);
    assert_int_equal(a.narenas_current, 0);
    assert_int_equal(a.narenas_released_total, 4);
    assert_int_equal(a.nspare, 0);
    assert_null(a.usable);
    expect_counts(&a, 0, 256, 4);
    assert_false(obmi_arenas_trim(&a));
}

/* ---- 7. random walks ---- */

/* When each pool address last went free, and whether it was seen purged
 * since: open addressing on the page number. */
enum { FREED_SLOTS = 1 << 14 };
typedef struct freed {
    uintptr_t addr;
    uint64_t when;
    bool purged;
} freed;

static freed *freed_slot(freed *t, uintptr_t addr)
{
    size_t h = (size_t)((addr >> OBMI_POOL_SHIFT) * 0x9e3779b97f4a7c15ull >> 50);
    while (t[h].addr != 0 && t[h].addr != addr)
        h = (h + 1) & (FREED_SLOTS - 1);
    return &t[h];
}

/* Random takes and returns, a decay after each, the clock advancing by
 * 0..maxstep ms a step. Every take comes from the head of `usable` (the
 * fullest arena), dirty pool first, then purged, then untouched, lowest
 * address first, and is distinct from every live pool; live pools keep
 * their contents (no purge hits a pool in service); a pool is purged only
 * after a whole delay free and is never dirty two delays (plus the clock's
 * granularity) after it went free. */
static void random_walk(long delay, unsigned maxstep, unsigned seed)
{
    obmi_arenas a;
    manager_init(&a, delay);
    enum { N = 600 };
    obmi_pool *live[N];
    size_t nlive = 0;
    freed *table = calloc(FREED_SLOTS, sizeof *table);
    assert_non_null(table);
    size_t nfreed = 0;
    for (int step = 0; step < 6000; step++) {
        seed = seed * 1103515245u + 12345u;
        fake_now += (seed >> 4) % (maxstep + 1);
        seed = seed * 1103515245u + 12345u;
        bool grow = nlive == 0 || (nlive < N && ((seed >> 16) % 100) < (step < 3000 ? 60 : 40));
        if (grow) {
            obmi_arena *head = a.usable;
            unsigned want = 0;
            if (head != NULL)
                want = head->dirty    ? (unsigned)__builtin_ctzll(head->dirty)
                       : head->purged ? (unsigned)__builtin_ctzll(head->purged)
                                      : (unsigned)__builtin_ctzll(head->untouched);
            obmi_pool *pool = take(&a, (unsigned)step % OBMI_NSMALL);
            if (head != NULL) {
                assert_ptr_equal(obmi_pool_arena(pool), head);
                assert_int_equal(index_in_arena(pool), want);
            }
            for (size_t i = 0; i < nlive; i++)
                assert_ptr_not_equal(live[i], pool);
            fill_body(pool);
            live[nlive++] = pool;
        } else {
            size_t i = (seed >> 8) % nlive;
            obmi_pool *pool = live[i];
            live[i] = live[--nlive];
            assert_true(body_intact(pool));
            freed *f = freed_slot(table, (uintptr_t)pool);
            if (f->addr == 0)
                assert_true(++nfreed < FREED_SLOTS / 2);
            *f = (freed){.addr = (uintptr_t)pool, .when = fake_now};
            give(&a, pool);
        }
        obmi_arenas_decay(&a);
        check(&a);
        if (delay == 0)
            assert_null(a.dirty);
        size_t in_use = 0;
        for (const obmi_arena *ao = a.all; ao != NULL; ao = ao->allnext) {
            in_use += OBMI_POOLS_PER_ARENA - ao->nfreepools;
            for (uint64_t m = ao->dirty | ao->purged; m != 0; m &= m - 1) {
                unsigned i = (unsigned)__builtin_ctzll(m);
                freed *f = freed_slot(table, ao->base + (uintptr_t)i * OBMI_POOL_SIZE);
                assert_int_not_equal(f->addr, 0);
                uint64_t age = fake_now - f->when;
                if ((ao->dirty >> i) & 1) {
                    assert_false(f->purged);
                    assert_true(age < 2 * (uint64_t)delay + 2 * maxstep);
                } else if (!f->purged) {
                    assert_true(age >= (uint64_t)delay);
                    f->purged = true;
                }
            }
        }
        assert_int_equal(in_use, nlive);
    }
    while (nlive > 0) {
        obmi_pool *pool = live[--nlive];
        assert_true(body_intact(pool));
        give(&a, pool);
        decay_at(&a, fake_now);
    }
    assert_int_equal(a.narenas_current, 1); /* only the spare is left */
    assert_true(a.pools_purged_total > 0);
    assert_true(obmi_arenas_trim(&a));
    check(&a);
    assert_int_equal(a.narenas_current, 0);
    free(table);
}

static void test_random_walk_delay_zero(void **state)
{
    (void)state;
    random_walk(0, 3, 12345);
}

static void test_random_walk_decay(void **state)
{
    (void)state;
    random_walk(20, 7, 777);
    random_walk(3, 2, 4242);
}

/* ---- 8. MADV_FREE ---- */

static void test_madv_free(void **state)
{
    (void)state;
    obmi_arenas a;
    manager_init(&a, 0);
    a.purge_advice = OBMI_PURGE_FREE;
    obmi_pool *p[6];
    for (int i = 0; i < 6; i++) {
        p[i] = take(&a, 0);
        fill_body(p[i]);
    }
    obmi_arena *ao = obmi_pool_arena(p[0]);
    give(&a, p[3]);
    give(&a, p[1]);
    give(&a, p[5]);
    give(&a, p[2]);
    obmi_arenas_decay(&a);
    check(&a);
    expect_masks(ao, 0, 0, bits(1, 3) | bit(5));
    expect_counts(&a, 4, 4, 2);
    assert_true(body_intact(p[0]));
    assert_true(body_intact(p[4]));
    obmi_pool *q = take(&a, 9);
    assert_ptr_equal(q, p[1]);
    expect_masks(ao, 0, 0, bits(2, 3) | bit(5));
    expect_counts(&a, 3, 4, 2);
    assert_false(obmi_arenas_trim(&a));

    /* And through the heap, as with MADV_DONTNEED. */
    reuse_through_heap(OBMI_PURGE_FREE);
}

/* ---- 7. retired and cached pools expire on the decay clock ---- */

static void test_kept_pools_expire_on_tick(void **state)
{
    (void)state;
    unit_heap u;
    manager_init(&u.arenas, 100);
    obmi_heap_init(&u.heap, &u.arenas);
    u.heap.cache_max = OBMI_HEAP_CACHE;
    enum { N = 7 * 40 }; /* 40 pools of class 31 (512 B) */
    static void *b[N];
    for (int i = 0; i < N; i++)
        b[i] = unit_malloc(&u, 512);
    for (int i = 0; i < N; i++)
        unit_free(&u, b[i]);
    /* The first return to the arenas ticked (the clock started at 1000);
     * this slow malloc sees that tick, with the retired pool of class 31
     * and the cache kept: the heap arms and asks for the next tick. */
    unit_free(&u, unit_malloc(&u, 16));
    assert_true(u.heap.expire_armed);
    assert_true(u.arenas.expiring);
    unit_check(&u);

    /* Kept now: the retired pools of classes 31 and 0, and the cache (8
     * pools of 480 B blocks in service let the heap cache 2 or more). */
    static void *live[64];
    for (int i = 0; i < 64; i++)
        live[i] = unit_malloc(&u, 480);
    void *x = unit_malloc(&u, 512), *y = unit_malloc(&u, 16);
    for (int i = 0; i < 7 * 16; i++)
        b[i] = unit_malloc(&u, 512);
    for (int i = 0; i < 7 * 16; i++)
        unit_free(&u, b[i]);
    unit_free(&u, x);
    unit_free(&u, y);
    obmi_pool *r31 = u.heap.usedpools[31], *r0 = u.heap.usedpools[0];
    assert_ptr_not_equal(r31, &obmi_pool_empty);
    assert_ptr_not_equal(r0, &obmi_pool_empty);
    assert_int_equal(r31->ref_count, 0);
    assert_int_equal(r0->ref_count, 0);
    uint32_t ncached = u.heap.ncached;
    assert_true(ncached > 0);

    /* No tick: a slow malloc of another class expires nothing. */
    uint64_t ticks = u.arenas.ticks;
    void *z = unit_malloc(&u, 64);
    assert_int_equal(u.arenas.ticks, ticks);
    assert_ptr_equal(u.heap.usedpools[31], r31);
    assert_ptr_equal(u.heap.usedpools[0], r0);
    assert_int_equal(u.heap.ncached, ncached - 1); /* class 3 took one from the cache */

    /* A delay later the next slow malloc sees the tick the armed heap
     * asked for, and gives back every pool with nothing in use; the pools
     * in use stay. The 480 B pools go back first, dirty. */
    for (int i = 0; i < 64; i++)
        unit_free(&u, live[i]);
    fake_now += 200;
    void *w = unit_malloc(&u, 128);
    assert_int_equal(u.arenas.ticks, ticks + 1);
    assert_false(u.heap.expire_armed);
    assert_false(u.arenas.expiring);
    assert_ptr_equal(u.heap.usedpools[31], &obmi_pool_empty);
    assert_ptr_equal(u.heap.usedpools[0], &obmi_pool_empty);
    assert_int_equal(u.heap.ncached, 0);
    assert_int_equal(u.heap.npools, 2); /* classes 3 and 7, one block each */
    assert_int_equal(r31->state, OBMI_POOL_EMPTY);
    unit_check(&u);
    check(&u.arenas);

    /* The next tick (the pools just given back are dirty): the heap keeps
     * nothing, so it neither arms nor asks for another tick. */
    fake_now += 200;
    void *v = unit_malloc(&u, 256);
    assert_int_equal(u.arenas.ticks, ticks + 2);
    assert_false(u.heap.expire_armed);
    assert_false(u.arenas.expiring);

    /* Class 31 comes back from the arenas and is retired again. The next
     * tick (pools are still dirty) arms; then nothing is dirty, yet the
     * armed heap keeps the clock running, and the tick after gives the
     * pool back. */
    size_t from_arenas = u.heap.counts.pools_from_arenas;
    unit_free(&u, unit_malloc(&u, 512));
    assert_int_equal(u.heap.counts.pools_from_arenas, from_arenas + 1);
    r31 = u.heap.usedpools[31];
    for (int i = 0; i < 64; i++) /* pools back to the arenas, dirty */
        live[i] = unit_malloc(&u, 480);
    for (int i = 0; i < 64; i++)
        unit_free(&u, live[i]);
    assert_ptr_not_equal(u.arenas.dirty, NULL);
    fake_now += 200;
    unit_free(&u, unit_malloc(&u, 32));
    assert_int_equal(u.arenas.ticks, ticks + 3);
    assert_true(u.heap.expire_armed);
    assert_true(u.arenas.expiring);
    assert_ptr_equal(u.heap.usedpools[31], r31);
    obmi_arenas_purge_all(&u.arenas);
    assert_ptr_equal(u.arenas.dirty, NULL);
    assert_int_not_equal(u.arenas.due_ms, UINT64_MAX);
    fake_now += 200;
    unit_free(&u, unit_malloc(&u, 48));
    assert_int_equal(u.arenas.ticks, ticks + 4);
    assert_false(u.heap.expire_armed);
    assert_ptr_equal(u.heap.usedpools[31], &obmi_pool_empty);
    unit_check(&u);
    check(&u.arenas);

    unit_free(&u, z);
    unit_free(&u, w);
    unit_free(&u, v);
    assert_true(obmi_heap_trim(&u.heap));
    assert_int_equal(u.arenas.narenas_current, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decay_two_generations),
        cmocka_unit_test(test_decay_retaken_pool_starts_over),
        cmocka_unit_test(test_decay_idle_rule),
        cmocka_unit_test(test_delay_zero_purges_at_once),
        cmocka_unit_test(test_delay_never_but_trim),
        cmocka_unit_test(test_adjacent_pools_one_madvise),
        cmocka_unit_test(test_purged_page_not_resident),
        cmocka_unit_test(test_take_order),
        cmocka_unit_test(test_malloc_reuses_purged_pool),
        cmocka_unit_test(test_arena_keep_zero),
        cmocka_unit_test(test_arena_keep_zero_no_decay),
        cmocka_unit_test(test_spares_waiting_bounded),
        cmocka_unit_test(test_arena_keep_three),
        cmocka_unit_test(test_random_walk_delay_zero),
        cmocka_unit_test(test_random_walk_decay),
        cmocka_unit_test(test_madv_free),
        cmocka_unit_test(test_kept_pools_expire_on_tick),
    };
    return RUN_TAP_TESTS(tests);
}
