/* Size classes: the request -> class map, the class table, and the
 * divisor constant that replaces a division when checking block starts. */
#include "unit.h"

static void test_request_to_class(void **state)
{
    (void)state;
    for (size_t n = 1; n <= OBMI_SMALL_MAX; n++) {
        unsigned c = obmi_size_class(n);
        assert_true(c < OBMI_NCLASSES);
        assert_int_equal(obmi_class_size(c), (n + 15) / 16 * 16); /* smallest fit */
        assert_true(obmi_class_size(c) >= n);
        assert_true(c == 0 || obmi_class_size(c - 1) < n);
    }
    assert_int_equal(obmi_size_class(OBMI_SMALL_MAX), OBMI_NCLASSES - 1);
}

static void test_class_table(void **state)
{
    (void)state;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        const obmi_class_info *ci = &obmi_classes[c];
        assert_int_equal(ci->size, obmi_class_size(c));
        assert_int_equal(ci->size % OBMI_ALIGNMENT, 0);
        assert_int_equal(ci->nblocks, (OBMI_POOL_SIZE - OBMI_POOL_HEADER) / ci->size);
        assert_true(OBMI_POOL_HEADER + ci->nblocks * ci->size <= OBMI_POOL_SIZE);
        assert_true(OBMI_POOL_HEADER + (ci->nblocks + 1) * ci->size > OBMI_POOL_SIZE);
    }
    assert_int_equal(obmi_classes[0].nblocks, 252);
    assert_int_equal(obmi_classes[3].nblocks, 63);
    assert_int_equal(obmi_classes[31].nblocks, 7);
}

/* rel * divc mod 2^64 < divc exactly when size divides rel, for every
 * offset in a pool and far beyond (the test is exact for 32-bit rel). */
static void test_divisor_constant_is_exact(void **state)
{
    (void)state;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        const obmi_class_info *ci = &obmi_classes[c];
        for (uint32_t rel = 0; rel < 16 * OBMI_POOL_SIZE; rel++)
            assert_int_equal((uint64_t)rel * ci->divc < ci->divc, rel % ci->size == 0);
        for (uint32_t rel = UINT32_MAX - 70000; rel != 0; rel++) /* wrapped: the header */
            assert_int_equal((uint64_t)rel * ci->divc < ci->divc, rel % ci->size == 0);
    }
}

static void test_header_is_one_cache_line(void **state)
{
    (void)state;
    assert_int_equal(sizeof(obmi_pool), OBMI_POOL_HEADER);
    assert_int_equal(OBMI_POOLS_PER_ARENA, 64);
    assert_int_equal(1u << OBMI_POOL_SHIFT, OBMI_POOL_SIZE);
    assert_int_equal(1u << OBMI_ARENA_SHIFT, OBMI_ARENA_SIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_to_class),
        cmocka_unit_test(test_class_table),
        cmocka_unit_test(test_divisor_constant_is_exact),
        cmocka_unit_test(test_header_is_one_cache_line),
    };
    return RUN_TAP_TESTS(tests);
}
