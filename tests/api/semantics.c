/* CHECKLIST group A, API semantics (glibc-compatible): items 1-17, 19, the
 * run-time half of 20 (tests/checks/symbols.sh reads the symbol tables;
 * the statistics calls are a later issue), and obm_owns. Item 21 is in
 * tests/dropin/libc.c. Built twice; see api.h. */
#include "api.h"

#include <limits.h>

#define ERRNO_SENTINEL 0x5eed /* no real errno value */

static void expect_enomem(void *p, size_t a, size_t b)
{
    if (p != NULL || errno != ENOMEM)
        fail_msg("(%#zx, %#zx): got %p, errno %d; want NULL, ENOMEM", a, b, p, errno);
}

/* The first n bytes of p are zero. */
static void expect_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            fail_msg("byte %zu of %zu at %p is %#x, not 0", i, n, p, b[i]);
}

/* ---- 1. malloc_zero ---- */

static void test_malloc_zero(void **state)
{
    enum { N = 100 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = T_MALLOC(OPQ(0));
        assert_non_null(p[i]);
        assert_true(T_OWNS(p[i]));
        assert_int_equal(T_USABLE_SIZE(p[i]), 16); /* a unique 16-byte block */
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(p[i], p[j]);
    }
    for (int i = 0; i < N; i++)
        T_FREE(p[i]);
}

/* ---- 2. free_null ---- */

static void test_free_null(void **state)
{
    static const int values[] = {0, EINVAL, ENOMEM, ERRNO_SENTINEL};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        errno = values[i];
        T_FREE(NULL);
        assert_int_equal(errno, values[i]);
    }
}

/* ---- 3. free_keeps_errno ----
 * Here the owner's frees; remote frees, frees into abandoned heaps, frees
 * that purge, and failing releases are in free_errno.c. */

static void free_keeps_errno(void *p)
{
    assert_non_null(p);
    errno = ERRNO_SENTINEL;
    T_FREE(p);
    assert_int_equal(errno, ERRNO_SENTINEL);
}

static void test_free_keeps_errno(void **state)
{
    free_keeps_errno(T_MALLOC(OPQ(1)));
    free_keeps_errno(T_MALLOC(OPQ(512)));
    free_keeps_errno(T_MALLOC(OPQ(513)));            /* medium */
    free_keeps_errno(T_MALLOC(OPQ(OBM_MEDIUM_MAX))); /* medium, a whole-arena pool */
    free_keeps_errno(T_MALLOC(OPQ(100000)));         /* backing heap */
    free_keeps_errno(T_MALLOC(OPQ(4 * MiB)));        /* backing mmap */
    free_keeps_errno(T_CALLOC(OPQ(1), OPQ(8 * MiB)));
    free_keeps_errno(T_MEMALIGN(OPQ(4096), OPQ(MiB)));

    /* Four arenas of 512-byte blocks (7 a pool, 64 pools an arena), then
     * free them all: pools go back to their arenas and emptied arenas are
     * unmapped inside these frees. */
    enum { N = 4 * 64 * 7 };
    void **p = malloc(N * sizeof *p);
    assert_non_null(p);
    for (int i = 0; i < N; i++) {
        p[i] = T_MALLOC(OPQ(512));
        assert_non_null(p[i]);
    }
    for (int i = 0; i < N; i++)
        free_keeps_errno(p[i]);
    free(p);

    /* The same with medium pools: four arenas of 32 KiB blocks (7 a pool,
     * a pool an arena) and as many of 1000 bytes (15 a 16 KiB pool). */
    enum { M = 4 * 7 };
    void *m[2 * M];
    for (int i = 0; i < 2 * M; i++) {
        m[i] = T_MALLOC(OPQ(i < M ? OBM_MEDIUM_MAX : 1000));
        assert_non_null(m[i]);
        assert_true(T_OWNS(m[i]));
    }
    for (int i = 0; i < 2 * M; i++)
        free_keeps_errno(m[i]);
}

/* ---- 4. malloc_too_large ---- */

static void check_malloc_too_large(void)
{
    /* The last two pass obm's own checks and fail in the backing allocator. */
    static const size_t sizes[] = {
        SIZE_MAX,     (size_t)PTRDIFF_MAX + 1, SIZE_MAX - 4095,
        -(512 * KiB), (size_t)PTRDIFF_MAX,     (size_t)1 << 62,
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        errno = 0;
        expect_enomem(T_MALLOC(OPQ(sizes[i])), sizes[i], 0);
    }
}

static void test_malloc_too_large(void **state)
{
    check_malloc_too_large();
    void *p = T_MALLOC(OPQ(16));
    T_FREE(p);
    check_malloc_too_large();
    p = T_MALLOC(OPQ(16));
    check_malloc_too_large();
    T_FREE(p);
}

/* ---- 5. calloc_overflow ---- */

static void test_calloc_overflow(void **state)
{
    static const size_t args[][2] = {
        {SIZE_MAX / 2, 3},
        {(size_t)1 << 33, (size_t)1 << 32},
        {(size_t)LONG_MAX + 1, 2},
        {SIZE_MAX, SIZE_MAX},
        {(size_t)PTRDIFF_MAX + 1, 1}, /* no overflow, but more than PTRDIFF_MAX */
        {65537, SIZE_MAX / 65537 + 1},
    };
    for (size_t i = 0; i < sizeof args / sizeof args[0]; i++) {
        errno = 0;
        expect_enomem(T_CALLOC(OPQ(args[i][0]), OPQ(args[i][1])), args[i][0], args[i][1]);
        errno = 0;
        expect_enomem(T_CALLOC(OPQ(args[i][1]), OPQ(args[i][0])), args[i][1], args[i][0]);
    }
}

/* ---- 6. calloc_zero_args ---- */

static void test_calloc_zero_args(void **state)
{
    static const size_t n[] = {0, 1, 100, 100000, SIZE_MAX};
    enum { N = sizeof n / sizeof n[0] };
    void *seen[2 * N];
    int k = 0;
    for (size_t i = 0; i < N; i++) {
        void *a = T_CALLOC(OPQ(0), OPQ(n[i]));
        void *b = T_CALLOC(OPQ(n[i]), OPQ(0));
        assert_non_null(a);
        assert_non_null(b);
        assert_true(T_OWNS(a));
        assert_true(T_OWNS(b));
        seen[k++] = a;
        seen[k++] = b;
    }
    for (int i = 0; i < k; i++) {
        for (int j = 0; j < i; j++)
            assert_ptr_not_equal(seen[i], seen[j]);
    }
    for (int i = 0; i < k; i++)
        T_FREE(seen[i]);
}

/* ---- 7. calloc_zeroes_reused_memory ---- */

enum { CALLOC_BATCH = 16, CALLOC_ITERS = 50000 };

/* Dirty a batch of blocks of count * size bytes, free them, calloc the
 * same amount back (the recycled blocks, LIFO) and check every byte. */
static void calloc_round(size_t count, size_t size)
{
    void *p[CALLOC_BATCH];
    size_t n = count * size;
    for (int i = 0; i < CALLOC_BATCH; i++) {
        p[i] = T_MALLOC(OPQ(n));
        assert_non_null(p[i]);
        memset(p[i], 0xff, T_USABLE_SIZE(p[i]));
    }
    for (int i = 0; i < CALLOC_BATCH; i++)
        T_FREE(p[i]);
    for (int i = 0; i < CALLOC_BATCH; i++) {
        p[i] = T_CALLOC(OPQ(count), OPQ(size));
        assert_non_null(p[i]);
        expect_zero(p[i], n);
    }
    for (int i = 0; i < CALLOC_BATCH; i++)
        T_FREE(p[i]);
}

static void test_calloc_zeroes_reused_memory(void **state)
{
    static const size_t sizes[] = {5, 6, 15, 17, 31, 96};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int r = 0; r < CALLOC_ITERS / CALLOC_BATCH; r++) {
            if (r & 1)
                calloc_round(sizes[s], 1);
            else
                calloc_round(1, sizes[s]);
        }
    }
    uint64_t rng = 0x0b5ca11c;
    for (int r = 0; r < CALLOC_ITERS / CALLOC_BATCH; r++) {
        size_t count = 1 + rng_next(&rng) % 1000;
        size_t size = 1 + rng_next(&rng) % (1000 / count);
        calloc_round(count, size);
    }
}

/* The whole usable size of a recycled block of obm's is zeroed, not only
 * the bytes asked for (docs/semantics.md): every class, small and
 * medium, at its smallest request, through calloc(n, 1) and calloc(1, n). */
static void test_calloc_zeroes_whole_block(void **state)
{
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        size_t usable = class_bytes(c);
        for (int split = 0; split < 2; split++) {
            size_t n = class_first(c);
            unsigned char *p = T_MALLOC(OPQ(usable));
            assert_non_null(p);
            assert_int_equal(T_USABLE_SIZE(p), usable);
            memset(p, 0xff, usable);
            T_FREE(p);
            unsigned char *q = split ? T_CALLOC(OPQ(1), OPQ(n)) : T_CALLOC(OPQ(n), OPQ(1));
            assert_true(T_OWNS(q));
            if (q != p)
                fail_msg("calloc(%zu) gave %p, not the block of %zu just freed (%p)", n, (void *)q,
                         usable, (void *)p);
            assert_int_equal(T_USABLE_SIZE(q), usable);
            expect_zero(q, usable);
            T_FREE(q);
        }
    }
}

/* ---- 8. realloc_null ---- */

static void test_realloc_null(void **state)
{
    static const size_t sizes[] = {
        0, 1, 32, 512, 513, 4096, OBM_MEDIUM_MAX, OBM_MEDIUM_MAX + 1, 100000,
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        void *p = T_REALLOC(NULL, OPQ(n));
        assert_non_null(p);
        assert_true(T_USABLE_SIZE(p) >= n);
        assert_int_equal(!!T_OWNS(p), obm_serves(n));
        if (obm_serves(n))
            assert_int_equal(T_USABLE_SIZE(p), block_size(n));
        pattern_fill(p, n, (uintptr_t)p);
        assert_int_equal(pattern_check(p, n, (uintptr_t)p), n);
        T_FREE(p);
    }
    errno = 0;
    expect_enomem(T_REALLOC(NULL, OPQ(SIZE_MAX)), SIZE_MAX, 0);
}

/* ---- 9. realloc_zero_frees ----
 * glibc (and scudo) free p and return NULL; mimalloc returns a new block
 * instead, and C23 makes the call undefined. obm follows glibc. */

static void test_realloc_zero_frees(void **state)
{
    static const size_t sizes[] = {1, 32, 512, 513, 4096, OBM_MEDIUM_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = T_MALLOC(OPQ(sizes[i]));
        uintptr_t addr = (uintptr_t)p;
        assert_non_null(p);
        assert_null(T_REALLOC(p, OPQ(0)));
        assert_small_freed(addr, sizes[i]);

        p = T_MALLOC(OPQ(sizes[i]));
        addr = (uintptr_t)p;
        assert_null(T_REALLOCARRAY(p, OPQ(0), OPQ(8)));
        assert_small_freed(addr, sizes[i]);
    }
    void *p = T_MALLOC(OPQ(100000));
    assert_non_null(p);
    assert_null(T_REALLOC(p, OPQ(0)));
    p = T_MALLOC(OPQ(4 * MiB));
    assert_non_null(p);
    assert_null(T_REALLOC(p, OPQ(0)));
}

/* ---- 10. realloc_failure_preserves ---- */

static void test_realloc_failure_preserves(void **state)
{
    static const size_t sizes[] = {1, 32, 512, 513, 4096, OBM_MEDIUM_MAX, 100000, MiB};
    static const size_t bad[] = {
        SIZE_MAX,
        SIZE_MAX - 4095,
        (size_t)PTRDIFF_MAX + 1,
        (size_t)PTRDIFF_MAX, /* passes the size checks, fails in the allocator */
        (size_t)1 << 62,
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = T_MALLOC(OPQ(sizes[i]));
        assert_non_null(p);
        size_t usable = T_USABLE_SIZE(p);
        int owned = T_OWNS(p);
        pattern_fill(p, usable, (uintptr_t)p);
        for (size_t j = 0; j < sizeof bad / sizeof bad[0]; j++) {
            errno = 0;
            expect_enomem(T_REALLOC(OPQP(p), OPQ(bad[j])), sizes[i], bad[j]);
            errno = 0;
            expect_enomem(T_REALLOCARRAY(OPQP(p), OPQ(bad[j]), OPQ(1)), sizes[i], bad[j]);
        }
        assert_int_equal(T_USABLE_SIZE(p), usable);
        assert_int_equal(T_OWNS(p), owned);
        assert_int_equal(pattern_check(p, usable, (uintptr_t)p), usable);

        /* Still a live block: it grows normally and keeps its bytes. */
        void *q = T_REALLOC(p, OPQ(2 * usable + 1));
        assert_non_null(q);
        assert_int_equal(pattern_check(q, usable, (uintptr_t)p), usable);
        T_FREE(q);
    }
}

/* ---- 11. realloc_to_usable_in_place ---- */

/* Whether the backing allocator's realloc(p, malloc_usable_size(p)) keeps
 * its own block of n bytes in place: glibc's does (the drop-in's backing);
 * valgrind's and ASan's never do, and libobm's backing is the process's
 * malloc, whichever that is. */
static int backing_keeps_in_place(size_t n)
{
#ifdef OBM_API_PRELOAD
    (void)n;
    return 1;
#else
    void *p = malloc(OPQ(n));
    uintptr_t addr = (uintptr_t)p;
    void *q = realloc(p, malloc_usable_size(p));
    assert_non_null(q);
    free(q);
    return (uintptr_t)q == addr;
#endif
}

static void expect_realloc_usable_in_place(void *p)
{
    assert_non_null(p);
    size_t usable = T_USABLE_SIZE(p);
    int in_place = T_OWNS(p) || backing_keeps_in_place(usable);
    void *q = T_REALLOC(p, OPQ(usable));
    assert_non_null(q);
    if (in_place)
        assert_ptr_equal(q, p);
    assert_int_equal(T_USABLE_SIZE(q), usable);
    T_FREE(q);
}

static void test_realloc_to_usable_in_place(void **state)
{
    for (size_t n = 0; n <= 600; n++)
        expect_realloc_usable_in_place(T_MALLOC(OPQ(n)));
    static const size_t larger[] = {1000, 4096, OBM_MEDIUM_MAX, OBM_MEDIUM_MAX + 1, 100000, MiB};
    for (size_t i = 0; i < sizeof larger / sizeof larger[0]; i++)
        expect_realloc_usable_in_place(T_MALLOC(OPQ(larger[i])));
    expect_realloc_usable_in_place(T_CALLOC(OPQ(3), OPQ(7)));
    expect_realloc_usable_in_place(T_MEMALIGN(OPQ(64), OPQ(100)));
    expect_realloc_usable_in_place(T_ALIGNED_ALLOC(OPQ(16), OPQ(48)));
    void *p = NULL;
    assert_int_equal(T_POSIX_MEMALIGN(&p, OPQ(4096), OPQ(5000)), 0);
    expect_realloc_usable_in_place(p);

    /* Any size of the block's own class stays in place, too. */
    for (size_t n = 1; n <= OBM_SMALL_MAX; n++) {
        void *b = T_MALLOC(OPQ(n));
        for (size_t m = class_size(n) - 15; m <= class_size(n); m++)
            assert_ptr_equal(T_REALLOC(b, OPQ(m)), b);
        T_FREE(b);
    }
    /* And for each medium class, every size of it. */
    for (unsigned c = OBM_NSMALL; c < OBM_NCLASSES; c++) {
        void *b = T_MALLOC(OPQ(class_first(c)));
        assert_true(T_OWNS(b));
        for (size_t m = class_first(c); m <= class_bytes(c); m++)
            assert_ptr_equal(T_REALLOC(b, OPQ(m)), b);
        assert_int_equal(T_USABLE_SIZE(b), class_bytes(c));
        T_FREE(b);
    }
}

/* ---- 50. realloc_growth ----
 *
 * A block grown in 16-byte steps from 16 to 512 bytes moves only when it
 * has outgrown a quarter more than it had (src/api.c, realloc_grown): 12
 * moves, to blocks of 32 48 64 80 112 144 192 240 304 384 480 bytes and,
 * at 496 (headroom 600), to the first medium class, 640, where moving at
 * every class would make 31. Grown on to 32768 bytes it moves 16 times
 * more, each time up: a headroom whose class the next step would cut by a
 * quarter takes the class below. Its bytes survive each move, and every
 * step fits the size asked for. */
static void test_realloc_growth(void **state)
{
    (void)state;
    static const size_t want[] = {32, 48, 64, 80, 112, 144, 192, 240, 304, 384, 480, 640};
    enum { MOVES = sizeof want / sizeof want[0] };
    unsigned char *p = T_MALLOC(OPQ(16));
    assert_non_null(p);
    memset(p, 1, 16);
    unsigned moves = 0;
    for (size_t n = 32; n <= OBM_SMALL_MAX; n += 16) {
        unsigned char *q = T_REALLOC(p, OPQ(n));
        assert_non_null(q);
        assert_true(T_USABLE_SIZE(q) >= n);
        for (size_t i = 0; i < n - 16; i++)
            if (q[i] != (unsigned char)(1 + i / 16))
                fail_msg("byte %zu of %zu lost in a realloc", i, n);
        memset(q + n - 16, (int)(n / 16), 16);
        if (q != p) {
            if (moves >= MOVES || T_USABLE_SIZE(q) != want[moves])
                fail_msg("move %u, at %zu bytes, to a block of %zu", moves + 1, n,
                         T_USABLE_SIZE(q));
            moves++;
        }
        p = q;
    }
    assert_int_equal(moves, MOVES);
    assert_true(T_OWNS(p));
    assert_int_equal(T_USABLE_SIZE(p), 640);
    /* Growing on to a medium size: a quarter more than it had, 800 bytes,
     * would be the 896-byte class, from which the next step, 672, would
     * move down again (a cut of a quarter): the 768-byte class. */
    unsigned char *q = T_REALLOC(p, OPQ(656));
    assert_non_null(q);
    assert_true(q != p && T_OWNS(q));
    assert_int_equal(T_USABLE_SIZE(q), 768);
    /* On in 16-byte steps to OBM_MEDIUM_MAX: 16 moves, each to a larger
     * block, never back down a class. */
    static const size_t medium[] = {1024, 1280, 1536,  2048,  2560,  3072,  4096,  5120,
                                    6144, 8192, 10240, 12288, 16384, 20480, 24576, 32768};
    moves = 0;
    for (size_t n = 672; n <= OBM_MEDIUM_MAX; n += 16) {
        unsigned char *r = T_REALLOC(q, OPQ(n));
        assert_non_null(r);
        if (r != q) {
            if (moves >= sizeof medium / sizeof medium[0] || T_USABLE_SIZE(r) != medium[moves])
                fail_msg("move %u, at %zu bytes, to a block of %zu", moves + 1, n,
                         T_USABLE_SIZE(r));
            moves++;
        }
        for (size_t i = 0; i < 100; i++)
            if (r[i] != (unsigned char)(1 + i / 16))
                fail_msg("byte %zu lost in a realloc to %zu", i, n);
        q = r;
    }
    assert_int_equal(moves, sizeof medium / sizeof medium[0]);
    /* Shrinking takes no headroom: down to 100 moves to a 112-byte block. */
    q = T_REALLOC(q, OPQ(100));
    assert_non_null(q);
    assert_true(T_OWNS(q));
    assert_int_equal(T_USABLE_SIZE(q), 112);
    for (size_t i = 0; i < 100; i++)
        if (q[i] != (unsigned char)(1 + i / 16))
            fail_msg("byte %zu of 100 lost in a realloc", i);
    T_FREE(q);
}

/* ---- 12. reallocarray_overflow ---- */

static void test_reallocarray_overflow(void **state)
{
    static const size_t args[][2] = {
        {SIZE_MAX, 2},
        {2, SIZE_MAX},
        {65537, SIZE_MAX / 65537 + 1},
        {SIZE_MAX / 65537 + 1, 65537},
    };
    enum { N = sizeof args / sizeof args[0] };
    for (size_t i = 0; i < N; i++) {
        errno = 0;
        expect_enomem(T_REALLOCARRAY(NULL, OPQ(args[i][0]), OPQ(args[i][1])), args[i][0],
                      args[i][1]);
    }

    /* On a live buffer: the overflow fails and leaves it intact. */
    size_t *p = T_REALLOCARRAY(NULL, OPQ(10), OPQ(sizeof(size_t)));
    assert_non_null(p);
    for (size_t i = 0; i < 10; i++)
        p[i] = i * 0x0101010101010101u;
    for (size_t i = 0; i < N; i++) {
        errno = 0;
        expect_enomem(T_REALLOCARRAY(OPQP(p), OPQ(args[i][0]), OPQ(args[i][1])), args[i][0],
                      args[i][1]);
        for (size_t j = 0; j < 10; j++)
            assert_int_equal(p[j], j * 0x0101010101010101u);
    }

    /* Normal growth, small to large, keeps the contents. */
    static const size_t counts[] = {20, 64, 65, 1000, 100000};
    size_t have = 10;
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        p = T_REALLOCARRAY(p, OPQ(counts[i]), OPQ(sizeof(size_t)));
        assert_non_null(p);
        for (size_t j = 0; j < have; j++)
            assert_int_equal(p[j], j * 0x0101010101010101u);
        for (size_t j = have; j < counts[i]; j++)
            p[j] = j * 0x0101010101010101u;
        have = counts[i];
    }
    T_FREE(p);
}

/* ---- 13. posix_memalign_einval ---- */

#define MEMPTR_SENTINEL ((void *)(uintptr_t)0x5eed5eed)

/* posix_memalign fails with rc_want, leaving *memptr and errno alone. */
static void expect_posix_memalign_fails(size_t alignment, size_t size, int rc_want)
{
    void *p = MEMPTR_SENTINEL;
    errno = ERRNO_SENTINEL;
    int rc = T_POSIX_MEMALIGN(&p, OPQ(alignment), OPQ(size));
    if (rc != rc_want || p != MEMPTR_SENTINEL || errno != ERRNO_SENTINEL)
        fail_msg("posix_memalign(%#zx, %#zx): rc %d, *memptr %p, errno %d; want %d, untouched",
                 alignment, size, rc, p, errno, rc_want);
}

static void test_posix_memalign_einval(void **state)
{
    static const size_t sizes[] = {0, 1, 32, 4096, SIZE_MAX};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t a = 0; a < 8; a++)
            expect_posix_memalign_fails(a, sizes[s], EINVAL);
        expect_posix_memalign_fails(24, sizes[s], EINVAL);
        expect_posix_memalign_fails(0x300, sizes[s], EINVAL);
        expect_posix_memalign_fails(3 * sizeof(void *), sizes[s], EINVAL);
        for (int k = 0; k < 64; k++)
            expect_posix_memalign_fails(((size_t)1 << k) + 1, sizes[s], EINVAL);
        expect_posix_memalign_fails(SIZE_MAX, sizes[s], EINVAL);
    }
}

/* ---- 14. posix_memalign_enomem ---- */

static void test_posix_memalign_enomem(void **state)
{
    size_t page = page_size();
    expect_posix_memalign_fails(8, SIZE_MAX, ENOMEM);
    expect_posix_memalign_fails(16, SIZE_MAX, ENOMEM);
    expect_posix_memalign_fails(64, SIZE_MAX, ENOMEM);
    expect_posix_memalign_fails(page, SIZE_MAX, ENOMEM);
    expect_posix_memalign_fails(page, -page, ENOMEM); /* glibc BZ#15857 */
    expect_posix_memalign_fails((size_t)1 << 63, (size_t)1 << 63, ENOMEM);
    expect_posix_memalign_fails((size_t)1 << 62, 0xc000000000000001u, ENOMEM);
    expect_posix_memalign_fails(64, (size_t)PTRDIFF_MAX, ENOMEM);

    void *p = MEMPTR_SENTINEL;
    assert_int_equal(T_POSIX_MEMALIGN(&p, OPQ(8), OPQ(0)), 0);
    assert_non_null(p);
    assert_ptr_not_equal(p, MEMPTR_SENTINEL);
    T_FREE(p);
}

/* ---- 15. aligned_alloc_rules ---- */

static void expect_aligned(void *p, size_t alignment, size_t size)
{
    if (p == NULL || (uintptr_t)p % alignment != 0 || T_USABLE_SIZE(p) < size)
        fail_msg("(%zu, %zu): got %p (usable %zu)", alignment, size, p,
                 p == NULL ? 0 : T_USABLE_SIZE(p));
    if (size > 0) {
        ((volatile char *)p)[0] = 1;
        ((volatile char *)p)[size - 1] = 1;
    }
}

static void expect_einval(void *p, size_t alignment, size_t size)
{
    if (p != NULL || errno != EINVAL)
        fail_msg("(%#zx, %#zx): got %p, errno %d; want NULL, EINVAL", alignment, size, p, errno);
}

static void test_aligned_alloc_rules(void **state)
{
    /* Alignment 1 is a power of two; sizes need not be multiples. */
    static const size_t ok[][2] = {{1, 64},   {64, 64}, {8, 0},       {16, 17},
                                   {64, 100}, {256, 1}, {4096, 5000}, {32, 512}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        void *p = T_ALIGNED_ALLOC(OPQ(ok[i][0]), OPQ(ok[i][1]));
        expect_aligned(p, ok[i][0], ok[i][1]);
        assert_true(T_USABLE_SIZE(p) > 0);
        T_FREE(p);
    }
    static const size_t bad[] = {0, 3, 24, 65, SIZE_MAX / 2 + 1, SIZE_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        expect_einval(T_ALIGNED_ALLOC(OPQ(bad[i]), OPQ(64)), bad[i], 64);
    }
    errno = 0;
    expect_enomem(T_ALIGNED_ALLOC(OPQ(16), OPQ(SIZE_MAX)), 16, SIZE_MAX);
    errno = 0;
    expect_enomem(T_ALIGNED_ALLOC(OPQ(64), OPQ(SIZE_MAX)), 64, SIZE_MAX);
}

/* ---- 16. memalign_rules ----
 * An alignment that is not a power of two is rounded up to the next one,
 * as glibc does; 0 and 1 mean no alignment beyond obm's 16. */

static void test_memalign_rules(void **state)
{
    size_t page = page_size();
    errno = 0;
    expect_einval(T_MEMALIGN(OPQ(SIZE_MAX), OPQ(page)), SIZE_MAX, page);
    errno = 0;
    expect_einval(T_MEMALIGN(OPQ((size_t)PTRDIFF_MAX + 2), OPQ(page)), (size_t)PTRDIFF_MAX + 2,
                  page);
    errno = 0;
    expect_enomem(T_MEMALIGN(OPQ(page), OPQ(-page)), page, -page);
    errno = 0;
    expect_enomem(T_MEMALIGN(OPQ(64), OPQ(SIZE_MAX)), 64, SIZE_MAX);

    void *p = T_MEMALIGN(OPQ(256), OPQ(10));
    expect_aligned(p, 256, 10);
    T_FREE(p);
    p = T_MEMALIGN(OPQ(16), OPQ(0));
    assert_non_null(p);
    T_FREE(p);

    static const size_t round[][2] = {{0, 16},    {1, 16},    {2, 16},      {3, 16},     {24, 32},
                                      {100, 128}, {257, 512}, {3000, 4096}, {4097, 8192}};
    for (size_t i = 0; i < sizeof round / sizeof round[0]; i++) {
        p = T_MEMALIGN(OPQ(round[i][0]), OPQ(40));
        expect_aligned(p, round[i][1], 40);
        T_FREE(p);
    }
}

/* ---- 17. valloc_pvalloc (the drop-in only: libobm has neither) ---- */

#ifdef T_HAVE_VALLOC
static void test_valloc_pvalloc(void **state)
{
    size_t page = page_size();
    void *v = T_VALLOC(OPQ(32));
    void *pv = T_PVALLOC(OPQ(32));
    expect_aligned(v, page, 32);
    expect_aligned(pv, page, page); /* pvalloc rounds up to whole pages */
    T_FREE(v);
    T_FREE(pv);

    v = T_VALLOC(OPQ(0));
    pv = T_PVALLOC(OPQ(0));
    expect_aligned(v, page, 0);
    expect_aligned(pv, page, page); /* 0 is one page */
    T_FREE(v);
    T_FREE(pv);

    pv = T_PVALLOC(OPQ(page + 1));
    expect_aligned(pv, page, 2 * page);
    T_FREE(pv);

    const size_t bad[] = {SIZE_MAX, -page, SIZE_MAX - 100};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        expect_enomem(T_VALLOC(OPQ(bad[i])), bad[i], 0);
        errno = 0;
        expect_enomem(T_PVALLOC(OPQ(bad[i])), bad[i], 0);
    }
}
#endif

/* ---- 19. usable_size ---- */

static void test_usable_size(void **state)
{
    assert_int_equal(T_USABLE_SIZE(NULL), 0);
    for (size_t n = 1; n <= 70000; n += n < 1100 ? 1 : 97) {
        unsigned char *p = T_MALLOC(OPQ(n));
        assert_non_null(p);
        size_t usable = T_USABLE_SIZE(p);
        if (usable < n)
            fail_msg("malloc(%zu): usable size %zu", n, usable);
        if (obm_serves(n) && (usable != block_size(n) || !T_OWNS(p)))
            fail_msg("malloc(%zu): usable size %zu, owned %d; want its class, %zu", n, usable,
                     T_OWNS(p), block_size(n));
        if (!obm_serves(n) && T_OWNS(p))
            fail_msg("malloc(%zu): owned by obm, above OBM_MEDIUM_MAX", n);
        /* The whole usable area is the caller's: write it all, read it back. */
        ref_fill(p, 0, usable, n);
        assert_int_equal(ref_check(p, 0, usable, n), usable);
        T_FREE(p);
    }
}

/* Blocks from every allocating function have a usable size: at least what
 * was asked, all of it writable. */
static void expect_usable(void *p, size_t size)
{
    assert_non_null(p);
    size_t usable = T_USABLE_SIZE(p);
    if (usable < size)
        fail_msg("%p: usable size %zu < %zu", p, usable, size);
    memset(p, 0xa5, usable);
    T_FREE(p);
}

static void test_usable_size_every_api(void **state)
{
    static const size_t sizes[] = {
        0, 1, 17, 100, 512, 513, 5000, OBM_MEDIUM_MAX, OBM_MEDIUM_MAX + 1, 200000,
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        expect_usable(T_MALLOC(OPQ(n)), n);
        expect_usable(T_CALLOC(OPQ(1), OPQ(n)), n);
        expect_usable(T_REALLOC(NULL, OPQ(n)), n);
        expect_usable(T_REALLOC(T_MALLOC(OPQ(300)), OPQ(n + 1)), n + 1);
        expect_usable(T_REALLOCARRAY(NULL, OPQ(n), OPQ(1)), n);
        for (size_t a = 1; a <= 8192; a *= 2) {
            void *p = NULL;
            if (a >= sizeof(void *)) {
                assert_int_equal(T_POSIX_MEMALIGN(&p, OPQ(a), OPQ(n)), 0);
                expect_usable(p, n);
            }
            expect_usable(T_ALIGNED_ALLOC(OPQ(a), OPQ(n)), n);
            expect_usable(T_MEMALIGN(OPQ(a), OPQ(n)), n);
        }
#ifdef T_HAVE_VALLOC
        expect_usable(T_VALLOC(OPQ(n)), n);
        expect_usable(T_PVALLOC(OPQ(n)), n > 0 ? n : page_size());
#endif
    }
}

/* ---- obm_owns ---- */

static int some_global;

static void test_owns(void **state)
{
    int on_stack = 0;
    assert_false(T_OWNS(NULL));
    assert_false(T_OWNS(&on_stack));
    assert_false(T_OWNS(&some_global));
    assert_false(T_OWNS((const void *)(uintptr_t)-16)); /* above user space */

    char *small = T_MALLOC(OPQ(64));
    char *large = T_MALLOC(OPQ(100000));
    assert_true(T_OWNS(small));
    assert_true(T_OWNS(small + 1)); /* an address test: no block check */
    assert_false(T_OWNS(large));
    T_FREE(large);

    /* Medium requests are obm's, up to OBM_MEDIUM_MAX: every byte of the
     * block, in any page of its pool. */
    char *medium = T_MALLOC(OPQ(513));
    char *top = T_MALLOC(OPQ(OBM_MEDIUM_MAX));
    char *above = T_MALLOC(OPQ(OBM_MEDIUM_MAX + 1));
    assert_true(T_OWNS(medium));
    assert_true(T_OWNS(medium + 639));
    assert_true(T_OWNS(top));
    assert_true(T_OWNS(top + OBM_MEDIUM_MAX - 1));
    assert_false(T_OWNS(above));
    T_FREE(medium);
    T_FREE(top);
    T_FREE(above);

    /* Over-aligned requests go to the backing allocator, medium ones too. */
    void *a16 = T_ALIGNED_ALLOC(OPQ(16), OPQ(32));
    void *a64 = T_ALIGNED_ALLOC(OPQ(64), OPQ(32));
    void *m16 = T_ALIGNED_ALLOC(OPQ(16), OPQ(4096));
    void *m64 = T_ALIGNED_ALLOC(OPQ(64), OPQ(4096));
    assert_true(T_OWNS(a16));
    assert_false(T_OWNS(a64));
    assert_true(T_OWNS(m16));
    assert_false(T_OWNS(m64));
    T_FREE(a16);
    T_FREE(a64);
    T_FREE(m16);
    T_FREE(m64);

    /* Freed and handed out again: obm's block again. */
    uintptr_t addr = (uintptr_t)small;
    T_FREE(small);
    char *again = T_MALLOC(OPQ(64));
    assert_ptr_equal(again, (void *)addr);
    assert_true(T_OWNS(again));
    T_FREE(again);
}

#ifdef OBM_API_PRELOAD
/* ---- 20. symbol_set, at run time (tests/checks/symbols.sh reads the tables) ---- */

static void test_pvalloc_usable_free(void **state)
{
    void *p = T_PVALLOC(OPQ(10));
    assert_non_null(p);
    assert_true(T_USABLE_SIZE(p) >= page_size());
    T_FREE(p);
}

/* cfree, free_sized and free_aligned_sized are the drop-in's and free. */
static void test_other_frees(void **state)
{
    void (*cfree_fn)(void *) = (void (*)(void *))dropin_symbol("cfree");
    void (*free_sized_fn)(void *, size_t) = (void (*)(void *, size_t))dropin_symbol("free_sized");
    void (*free_aligned_sized_fn)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dropin_symbol("free_aligned_sized");

    void *p = T_MALLOC(OPQ(48));
    uintptr_t addr = (uintptr_t)p;
    cfree_fn(p);
    assert_small_freed(addr, 48);
    p = T_MALLOC(OPQ(48));
    addr = (uintptr_t)p;
    free_sized_fn(p, 48);
    assert_small_freed(addr, 48);
    p = T_ALIGNED_ALLOC(OPQ(16), OPQ(48));
    addr = (uintptr_t)p;
    free_aligned_sized_fn(p, 16, 48);
    assert_small_freed(addr, 48);

    errno = ERRNO_SENTINEL;
    cfree_fn(NULL);
    free_sized_fn(NULL, 0);
    free_aligned_sized_fn(NULL, 64, 0);
    free_sized_fn(T_MALLOC(OPQ(100000)), 100000);
    free_aligned_sized_fn(T_ALIGNED_ALLOC(OPQ(4096), OPQ(8192)), 4096, 8192);
    assert_int_equal(errno, ERRNO_SENTINEL);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obm_active),
        cmocka_unit_test(test_malloc_zero),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_free_keeps_errno),
        cmocka_unit_test(test_malloc_too_large),
        cmocka_unit_test(test_calloc_overflow),
        cmocka_unit_test(test_calloc_zero_args),
        cmocka_unit_test(test_calloc_zeroes_reused_memory),
        cmocka_unit_test(test_calloc_zeroes_whole_block),
        cmocka_unit_test(test_realloc_null),
        cmocka_unit_test(test_realloc_zero_frees),
        cmocka_unit_test(test_realloc_failure_preserves),
        cmocka_unit_test(test_realloc_to_usable_in_place),
        cmocka_unit_test(test_reallocarray_overflow),
        cmocka_unit_test(test_realloc_growth),
        cmocka_unit_test(test_posix_memalign_einval),
        cmocka_unit_test(test_posix_memalign_enomem),
        cmocka_unit_test(test_aligned_alloc_rules),
        cmocka_unit_test(test_memalign_rules),
#ifdef T_HAVE_VALLOC
        cmocka_unit_test(test_valloc_pvalloc),
#endif
        cmocka_unit_test(test_usable_size),
        cmocka_unit_test(test_usable_size_every_api),
        cmocka_unit_test(test_owns),
#ifdef OBM_API_PRELOAD
        cmocka_unit_test(test_pvalloc_usable_free),
        cmocka_unit_test(test_other_frees),
#endif
    };
    return RUN_TAP_TESTS(tests);
}
