/* free's ownership test (api.c): a pointer whose page header holds the
 * calling thread's heap, XORed with the page's address, is taken as a block
 * of one of its pools without an arena-map lookup. A page that is not a pool
 * must not pass, even when it holds the heap's plain address where a pool
 * keeps its tag (a pointer obm spilled onto a stack, say) and a header that
 * would pass the block-start check. */
#include <stdlib.h>

#include "unit.h"

/* A backing-allocator block that starts a page, its first bytes dressed
 * as a header of a 64-byte pool that carved the whole page. */
static void *fake_header_block(uintptr_t heap_word)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, OBMI_POOL_SIZE, 2 * OBMI_POOL_SIZE), 0);
    obmi_pool *h = p;
    memset(h, 0, sizeof *h);
    h->carved = OBMI_POOL_SIZE - 1; /* every offset passes the bound */
    h->szidx = 3;
    h->state = OBMI_POOL_USED;
    h->divc = obmi_classes[3].divc;
    h->heap_tag = heap_word;
    /* p itself, at offset 0, is a 64-byte block start of such a pool. */
    assert_true(obmi_pool_is_block_start(h, (char *)p + OBMI_POOL_HEADER));
    return p;
}

static size_t large_frees(void)
{
    return obmi_tls_heap->counts.large[OBMI_LARGE_FREE];
}

static size_t small_frees(void)
{
    size_t n = 0;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        n += obmi_tls_heap->counts.frees[c];
    return n;
}

static void test_plain_heap_address_is_not_ownership(void **state)
{
    (void)state;
    void *mine = obmi_malloc(64); /* the thread has a heap now */
    assert_non_null(mine);
    assert_ptr_not_equal(obmi_tls_heap, &obmi_heap_empty);
    void *p = fake_header_block((uintptr_t)obmi_tls_heap);
    size_t large = large_frees(), small = small_frees();
    obmi_free(p); /* the backing allocator's block: back to it */
    assert_int_equal(large_frees(), large + 1);
    assert_int_equal(small_frees(), small);
    obmi_free(mine);
    assert_int_equal(small_frees(), small + 1);
}

/* The same page holding another heap's tag for its own address: still not
 * this thread's, and not obm's (the arena map says so). */
static void test_other_heaps_tag_is_not_ownership(void **state)
{
    (void)state;
    void *mine = obmi_malloc(64);
    assert_non_null(mine);
    static obmi_heap other;
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, OBMI_POOL_SIZE, 2 * OBMI_POOL_SIZE), 0);
    obmi_free(p);
    p = fake_header_block((uintptr_t)&other ^ (uintptr_t)p);
    size_t large = large_frees(), small = small_frees();
    obmi_free(p);
    assert_int_equal(large_frees(), large + 1);
    assert_int_equal(small_frees(), small);
    obmi_free(mine);
}

/* A block of the thread's own pool, freed at its first and last offsets. */
static void test_own_blocks_take_the_owner_path(void **state)
{
    (void)state;
    void *b[4];
    for (int i = 0; i < 4; i++) {
        b[i] = obmi_malloc(512);
        assert_non_null(b[i]);
    }
    obmi_pool *pool = obmi_pool_of(b[0]);
    assert_ptr_equal(obmi_pool_heap(pool), obmi_tls_heap);
    size_t large = large_frees(), small = small_frees();
    for (int i = 0; i < 4; i++)
        obmi_free(b[i]);
    assert_int_equal(small_frees(), small + 4);
    assert_int_equal(large_frees(), large);
    obmi_free(NULL);
    assert_int_equal(small_frees(), small + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_heap_address_is_not_ownership),
        cmocka_unit_test(test_other_heaps_tag_is_not_ownership),
        cmocka_unit_test(test_own_blocks_take_the_owner_path),
    };
    return RUN_TAP_TESTS(tests);
}
