/* The arena map: address -> arena, set and cleared by the arena manager. */
#include "unit.h"

static void test_unknown_addresses(void **state)
{
    (void)state;
    int local;
    assert_null(obmi_arena_map_lookup(NULL));
    assert_null(obmi_arena_map_lookup(&local));
    assert_null(obmi_arena_map_lookup((void *)test_unknown_addresses));
    assert_null(obmi_arena_map_lookup((void *)~(uintptr_t)0));
    assert_null(obmi_arena_map_lookup((void *)((uintptr_t)1 << OBMI_ADDRESS_BITS)));
}

static void test_set_lookup_clear(void **state)
{
    (void)state;
    static obmi_arena fake_a, fake_b;
    /* Addresses never mapped by anyone: the map only records, it does not
     * touch the memory. */
    uintptr_t a = (uintptr_t)0x12340000000ull;
    uintptr_t b = a + OBMI_ARENA_SIZE;
    assert_int_equal(obmi_arena_map_set(a, &fake_a), 0);
    assert_int_equal(obmi_arena_map_set(b, &fake_b), 0);
    assert_ptr_equal(obmi_arena_map_lookup((void *)a), &fake_a);
    assert_ptr_equal(obmi_arena_map_lookup((void *)(a + OBMI_ARENA_SIZE - 1)), &fake_a);
    assert_ptr_equal(obmi_arena_map_lookup((void *)(a + 12345)), &fake_a);
    assert_ptr_equal(obmi_arena_map_lookup((void *)b), &fake_b);
    assert_null(obmi_arena_map_lookup((void *)(a - 1)));
    assert_null(obmi_arena_map_lookup((void *)(b + OBMI_ARENA_SIZE)));
    obmi_arena_map_clear(a);
    assert_null(obmi_arena_map_lookup((void *)a));
    assert_ptr_equal(obmi_arena_map_lookup((void *)b), &fake_b);
    obmi_arena_map_clear(b);
    assert_null(obmi_arena_map_lookup((void *)b));
}

/* Arenas on both sides of a leaf boundary (2^33 bytes) use two leaves. */
static void test_leaf_boundary(void **state)
{
    (void)state;
    static obmi_arena fake_a, fake_b;
    uintptr_t edge = (uintptr_t)0x5a6000000000ull; /* a multiple of 2^33 */
    assert_int_equal(edge & (((uintptr_t)1 << 33) - 1), 0);
    assert_int_equal(obmi_arena_map_set(edge - OBMI_ARENA_SIZE, &fake_a), 0);
    assert_int_equal(obmi_arena_map_set(edge, &fake_b), 0);
    assert_ptr_equal(obmi_arena_map_lookup((void *)(edge - 1)), &fake_a);
    assert_ptr_equal(obmi_arena_map_lookup((void *)edge), &fake_b);
    obmi_arena_map_clear(edge - OBMI_ARENA_SIZE);
    obmi_arena_map_clear(edge);
    assert_null(obmi_arena_map_lookup((void *)(edge - 1)));
    assert_null(obmi_arena_map_lookup((void *)edge));
}

static void test_real_arena_registered(void **state)
{
    (void)state;
    unit_heap u;
    unit_heap_init(&u);
    void *p = unit_malloc(&u, 40);
    obmi_arena *ao = obmi_arena_map_lookup(p);
    assert_non_null(ao);
    assert_int_equal(ao->base, (uintptr_t)p & ~(uintptr_t)(OBMI_ARENA_SIZE - 1));
    assert_ptr_equal(obmi_pool_arena(obmi_pool_of(p)), ao);
    unit_free(&u, p);
    obmi_heap_release_retired(&u.heap); /* the arena is now the spare */
    assert_int_equal(u.arenas.narenas_current, 1);
    unit_check(&u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_addresses),
        cmocka_unit_test(test_set_lookup_clear),
        cmocka_unit_test(test_leaf_boundary),
        cmocka_unit_test(test_real_arena_registered),
    };
    return RUN_TAP_TESTS(tests);
}
