/* Shared helpers for obm's C tests: cmocka with TAP output, and content
 * patterns that tie every byte of a block to its address and size, so a
 * block that is moved, overlapped or recycled while live is caught. */
#ifndef OBM_TESTUTIL_H
#define OBM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* Run a cmocka group with TAP output (automake's tap-driver reads it). */
#define RUN_TAP_TESTS(tests)                                                                       \
    (cmocka_set_message_output(CM_OUTPUT_TAP), cmocka_run_group_tests(tests, NULL, NULL))

/* The byte at offset i of a block tagged with `tag` (often its address). */
static inline unsigned char pattern_byte(uintptr_t tag, size_t i)
{
    uint64_t x = (uint64_t)tag * 0x9e3779b97f4a7c15ull + i;
    x ^= x >> 29;
    return (unsigned char)(x * 0xbf58476d1ce4e5b9ull >> 56);
}

static inline void pattern_fill(void *p, size_t n, uintptr_t tag)
{
    unsigned char *b = (unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        b[i] = pattern_byte(tag, i);
}

/* Offset of the first byte that differs from the pattern, or n. */
static inline size_t pattern_check(const void *p, size_t n, uintptr_t tag)
{
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != pattern_byte(tag, i))
            return i;
    return n;
}

#endif /* OBM_TESTUTIL_H */
