/* Size classes: the request -> class map, the class table, and the
 * divisor constant that replaces a division when checking block starts. */
#include "unit.h"

static void test_request_to_class(void **state)
{
    (void)state;
    for (size_t n = 1; n <= OBMI_SMALL_MAX; n++) {
        unsigned c = obmi_size_class(n);
        assert_true(c < OBMI_NSMALL);
        assert_int_equal(obmi_class_of(n), c);
        assert_int_equal(obmi_class_size(c), (n + 15) / 16 * 16); /* smallest fit */
        assert_true(obmi_class_size(c) >= n);
        assert_true(c == 0 || obmi_class_size(c - 1) < n);
    }
    assert_int_equal(obmi_size_class(OBMI_SMALL_MAX), OBMI_NSMALL - 1);
    assert_int_equal(obmi_class_of(0), 0);
    /* Medium: the smallest class that fits, four per doubling. */
    for (size_t n = OBMI_SMALL_MAX + 1; n <= OBMI_MEDIUM_MAX; n++) {
        unsigned c = obmi_medium_class(n);
        assert_true(c >= OBMI_NSMALL && c < OBMI_NCLASSES);
        assert_int_equal(obmi_class_of(n), c);
        assert_true(obmi_class_size(c) >= n);
        assert_true(obmi_class_size(c - 1) < n);
        assert_true(obmi_class_size(c) - n <
                    obmi_class_size(c) / 4 + 1); /* at most a quarter lost */
    }
    assert_int_equal(obmi_medium_class(513), OBMI_NSMALL);
    assert_int_equal(obmi_class_size(OBMI_NSMALL), 640);
    assert_int_equal(obmi_medium_class(OBMI_MEDIUM_MAX), OBMI_NCLASSES - 1);
    assert_int_equal(obmi_class_size(OBMI_NCLASSES - 1), OBMI_MEDIUM_MAX);
}

static void test_class_table(void **state)
{
    (void)state;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        const obmi_class_info *ci = &obmi_classes[c];
        uint32_t bytes = ci->pool_bytes;
        assert_int_equal(ci->size, obmi_class_size(c));
        assert_int_equal(ci->size % OBMI_ALIGNMENT, 0);
        /* Small: a page; medium: 4 to 64 pages, a power of two. */
        if (c < OBMI_NSMALL)
            assert_int_equal(bytes, OBMI_POOL_SIZE);
        else
            assert_true(bytes >= 4 * OBMI_POOL_SIZE && bytes <= OBMI_ARENA_SIZE &&
                        (bytes & (bytes - 1)) == 0);
        assert_int_equal(ci->nblocks, (bytes - OBMI_POOL_HEADER) / ci->size);
        assert_true(OBMI_POOL_HEADER + ci->nblocks * ci->size <= bytes);
        assert_true(OBMI_POOL_HEADER + (ci->nblocks + 1) * ci->size > bytes);
        /* At least 15 blocks a pool, but for the last classes, where a whole
         * arena holds fewer; never more than an eighth of a pool lost. */
        assert_true(c < OBMI_NSMALL || ci->nblocks >= 15 || bytes == OBMI_ARENA_SIZE);
        assert_true(bytes - ci->nblocks * ci->size <= bytes / 8 + OBMI_POOL_HEADER);
    }
    assert_int_equal(obmi_classes[0].nblocks, 252);
    assert_int_equal(obmi_classes[3].nblocks, 63);
    assert_int_equal(obmi_classes[31].nblocks, 7);
    assert_int_equal(obmi_classes[OBMI_NCLASSES - 1].nblocks, 7);
}

/* rel * divc mod 2^64 < divc exactly when size divides rel, for every
 * offset in a pool and far beyond (the test is exact for 32-bit rel). */
static void test_divisor_constant_is_exact(void **state)
{
    (void)state;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        const obmi_class_info *ci = &obmi_classes[c];
        for (uint32_t rel = 0; rel < 2 * OBMI_ARENA_SIZE; rel++)
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
