/* Pools: header set-up, lazy carving, block-start checks and the pool
 * invariant walker, on pages of our own (no arena needed). */
#include <stdlib.h>

#include "unit.h"

/* Room for a pool of class c: a page, or a medium pool's pages. */
static obmi_pool *new_pool(unsigned c)
{
    size_t bytes = obmi_classes[c].pool_bytes;
    obmi_pool *pool = aligned_alloc(bytes, bytes);
    assert_non_null(pool);
    memset(pool, 0, bytes);
    return pool;
}

static obmi_pool *new_page(void)
{
    return new_pool(0);
}

/* Blocks a carve links at most: 16, and no more than 16 KiB of them. */
static uint32_t carve_batch(const obmi_class_info *ci)
{
    uint32_t batch = ci->size * OBMI_CARVE_BATCH <= 16384 ? OBMI_CARVE_BATCH : 16384 / ci->size;
    batch = batch != 0 ? batch : 1;
    return ci->nblocks < batch ? ci->nblocks : batch;
}

static obmi_block *pop(obmi_pool *pool)
{
    obmi_block *b = pool->freeblock;
    if (b == NULL)
        b = obmi_pool_carve(pool);
    if (b != NULL) {
        pool->freeblock = obmi_block_next(b);
        obmi_word_poke(&b->key, 0);
        pool->ref_count++;
    }
    return b;
}

static void test_init_carves_nothing(void **state)
{
    (void)state;
    obmi_pool *pool = new_page();
    obmi_pool_init(pool, 5, NULL);
    assert_int_equal(pool->state, OBMI_POOL_USED);
    assert_int_equal(pool->szidx, 5);
    assert_null(pool->freeblock);
    assert_int_equal(pool->ref_count, 0);
    assert_int_equal(pool->carved, 0);
    assert_int_equal(obmi_pool_max_offset(5),
                     OBMI_POOL_HEADER + (obmi_classes[5].nblocks - 1) * obmi_classes[5].size);
    assert_int_equal(atomic_load(&pool->remote), 0);
    assert_true(obmi_pool_check(pool));
    /* Nothing carved: no address is a block yet. */
    for (uint32_t off = 0; off < OBMI_POOL_SIZE; off++)
        assert_false(obmi_pool_is_block_start(pool, (char *)pool + off));
    free(pool);
}

static void test_carve_batches_in_order(void **state)
{
    (void)state;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        obmi_pool *pool = new_pool(c);
        obmi_pool_init(pool, c, NULL);
        const obmi_class_info *ci = &obmi_classes[c];
        obmi_block *head = obmi_pool_carve(pool);
        uint32_t batch = carve_batch(ci);
        assert_ptr_equal(head, (char *)pool + OBMI_POOL_HEADER);
        uint32_t n = 0;
        for (obmi_block *b = head; b != NULL; b = obmi_block_next(b), n++)
            assert_ptr_equal(b, (char *)pool + OBMI_POOL_HEADER + n * ci->size);
        assert_int_equal(n, batch);
        assert_int_equal(obmi_pool_nextoffset(pool), OBMI_POOL_HEADER + batch * ci->size);
        assert_true(obmi_pool_check(pool));
        free(pool);
    }
}

/* Popping until exhaustion hands out every block exactly once, in address
 * order, and the pool then carves nothing more. */
static void test_exhaust_every_class(void **state)
{
    (void)state;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        obmi_pool *pool = new_pool(c);
        obmi_pool_init(pool, c, NULL);
        const obmi_class_info *ci = &obmi_classes[c];
        for (uint32_t i = 0; i < ci->nblocks; i++) {
            obmi_block *b = pop(pool);
            assert_ptr_equal(b, (char *)pool + OBMI_POOL_HEADER + i * ci->size);
            assert_true(obmi_pool_check(pool));
        }
        assert_null(pop(pool));
        assert_null(obmi_pool_carve(pool));
        assert_int_equal(pool->ref_count, ci->nblocks);
        pool->state = OBMI_POOL_FULL;
        assert_false(obmi_pool_check(pool)); /* a full pool must ask for remote frees */
        atomic_store(&pool->remote, OBMI_REMOTE_NOTIFY);
        assert_true(obmi_pool_check(pool));
        free(pool);
    }
}

static void test_block_start_every_offset(void **state)
{
    (void)state;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        obmi_pool *pool = new_pool(c);
        obmi_pool_init(pool, c, NULL);
        const obmi_class_info *ci = &obmi_classes[c];
        while (pop(pool) != NULL)
            ;
        /* The page test (a free's fast path) in the first page, the pool
         * test in all of them and past the pool. */
        for (uint32_t off = 0; off < ci->pool_bytes + OBMI_POOL_SIZE; off++) {
            bool expect = off >= OBMI_POOL_HEADER && (off - OBMI_POOL_HEADER) % ci->size == 0 &&
                          (off - OBMI_POOL_HEADER) / ci->size < ci->nblocks;
            if (off < OBMI_POOL_SIZE)
                assert_int_equal(obmi_pool_is_block_start(pool, (char *)pool + off), expect);
            assert_int_equal(obmi_pool_is_block_start_in(pool, (char *)pool + off), expect);
        }
        /* An UNUSED pool (all-zero header) has no blocks. */
        memset(pool, 0, OBMI_POOL_HEADER);
        assert_false(obmi_pool_is_block_start(pool, (char *)pool + OBMI_POOL_HEADER));
        free(pool);
    }
}

/* A pool given back to its arena has no blocks, though its memory still
 * holds the old ones. */
static void test_block_start_empty_pool(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    void *b[8];
    obmi_pool *pool = unit_fill_one_pool(&u, b);
    for (int i = 0; i < 7; i++)
        assert_true(obmi_pool_is_block_start(pool, b[i]));
    for (int i = 0; i < 7; i++)
        unit_free(&u, b[i]);
    assert_int_equal(pool->state, OBMI_POOL_EMPTY);
    for (int i = 0; i < 7; i++)
        assert_false(obmi_pool_is_block_start(pool, b[i]));
    unit_check(&u);
    unit_free(&u, b[7]);
}

/* Carved blocks only: a partly carved pool rejects the uncarved tail. */
static void test_block_start_partial(void **state)
{
    (void)state;
    obmi_pool *pool = new_page();
    obmi_pool_init(pool, 0, NULL);
    pop(pool);
    uint32_t carved_end = obmi_pool_nextoffset(pool);
    assert_true(obmi_pool_is_block_start(pool, (char *)pool + carved_end - 16));
    assert_false(obmi_pool_is_block_start(pool, (char *)pool + carved_end));
    free(pool);
}

/* The walker must notice each kind of damage. */
static void test_check_catches_damage(void **state)
{
    (void)state;
    obmi_pool *pool = new_page();
    obmi_pool_init(pool, 1, NULL); /* 32-byte blocks */
    obmi_block *a = pop(pool), *b = pop(pool), *c = pop(pool);
    (void)c;
    /* free a and b by hand: list b -> a -> rest of batch */
    obmi_block_set_free(a, pool->freeblock);
    obmi_block_set_free(b, a);
    pool->freeblock = b;
    pool->ref_count -= 2;
    assert_true(obmi_pool_check(pool));

    obmi_block *saved = obmi_block_next(a);
    obmi_block_set_next(a, b); /* cycle */
    assert_false(obmi_pool_check(pool));
    obmi_block_set_next(a, (obmi_block *)((char *)pool + OBMI_POOL_SIZE + 64)); /* outside */
    assert_false(obmi_pool_check(pool));
    obmi_block_set_next(a, (obmi_block *)((char *)b + 8)); /* not a block start */
    assert_false(obmi_pool_check(pool));
    obmi_block_set_next(a, saved);
    assert_true(obmi_pool_check(pool));
    obmi_word_poke(&a->key, 0); /* a free block without the freed key */
    assert_false(obmi_pool_check(pool));
    obmi_word_poke(&a->key, obmi_free_key);
    assert_true(obmi_pool_check(pool));

    pool->ref_count++; /* count disagrees with the list */
    assert_false(obmi_pool_check(pool));
    pool->ref_count--;
    pool->state = OBMI_POOL_FULL; /* full with free blocks */
    assert_false(obmi_pool_check(pool));
    pool->state = OBMI_POOL_USED;
    pool->szidx = 40; /* no such class */
    assert_false(obmi_pool_check(pool));
    pool->szidx = 1;
    assert_true(obmi_pool_check(pool));
    free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_carves_nothing),
        cmocka_unit_test(test_carve_batches_in_order),
        cmocka_unit_test(test_exhaust_every_class),
        cmocka_unit_test(test_block_start_every_offset),
        cmocka_unit_test(test_block_start_empty_pool),
        cmocka_unit_test(test_block_start_partial),
        cmocka_unit_test(test_check_catches_damage),
    };
    return RUN_TAP_TESTS(tests);
}
