/* CHECKLIST 18 (alignment_sweep) and group B, alignment: 22 (min_align_16)
 * and 23 (max_align_t_use). Built twice; see api.h. */
#include "api.h"

#include <stddef.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

_Static_assert(_Alignof(max_align_t) == OBM_ALIGNMENT, "obm aligns every block to max_align_t");

typedef void *(*aligned_fn)(size_t alignment, size_t size);

static void *via_posix_memalign(size_t alignment, size_t size)
{
    void *p = NULL;
    int rc = T_POSIX_MEMALIGN(&p, OPQ(alignment), OPQ(size));
    if (rc != 0)
        fail_msg("posix_memalign(%zu, %zu): %d", alignment, size, rc);
    return p;
}

static void *via_aligned_alloc(size_t alignment, size_t size)
{
    return T_ALIGNED_ALLOC(OPQ(alignment), OPQ(size));
}

static void *via_memalign(size_t alignment, size_t size)
{
    return T_MEMALIGN(OPQ(alignment), OPQ(size));
}

static const struct {
    const char *name;
    aligned_fn fn;
    size_t min_alignment;
} aligned_apis[] = {
    {"posix_memalign", via_posix_memalign, sizeof(void *)},
    {"aligned_alloc", via_aligned_alloc, 1},
    {"memalign", via_memalign, 1},
};

/* p is aligned, has the size, can be written at both ends, and is obm's
 * exactly when obm serves the size (small or medium) and it needs no more
 * than obm's 16; then its usable size is the size's class. */
static void check_aligned_block(const char *api, char *p, size_t alignment, size_t size)
{
    if (p == NULL || (uintptr_t)p % alignment != 0 || T_USABLE_SIZE(p) < size)
        fail_msg("%s(%zu, %zu): %p, usable %zu", api, alignment, size, (void *)p,
                 p == NULL ? 0 : T_USABLE_SIZE(p));
    int served = alignment <= OBM_ALIGNMENT && obm_serves(size);
    if (!!T_OWNS(p) != served)
        fail_msg("%s(%zu, %zu): owned %d, want %d", api, alignment, size, T_OWNS(p), served);
    if (served && T_USABLE_SIZE(p) != block_size(size))
        fail_msg("%s(%zu, %zu): usable %zu, want its class's %zu", api, alignment, size,
                 T_USABLE_SIZE(p), block_size(size));
    if (size > 0) {
        p[0] = 'a';
        p[size - 1] = 'z';
    }
}

/* `live` blocks of size bytes aligned to alignment, all live at once, from
 * aligned_apis[api]; each is checked, then all are freed. */
static void aligned_batch(size_t api, size_t alignment, size_t size, int live)
{
    char *p[4];
    assert_true(live <= 4);
    for (int i = 0; i < live; i++) {
        p[i] = aligned_apis[api].fn(alignment, size);
        check_aligned_block(aligned_apis[api].name, p[i], alignment, size);
    }
    for (int i = 0; i < live; i++)
        T_FREE(p[i]);
}

enum { NAPIS = sizeof aligned_apis / sizeof aligned_apis[0] };

/* ---- 18. alignment_sweep ---- */

/* jemalloc's test_alignment_and_size: alignments 8..4 MiB, sizes below
 * 3 * alignment with its step, 4 blocks live at a time. */
static void test_alignment_sweep(void **state)
{
    for (size_t api = 0; api < NAPIS; api++)
        for (size_t a = 8; a <= 4 * MiB; a <<= 1)
            for (size_t n = 0; n < 3 * a; n += (a >> 2) - 1)
                aligned_batch(api, a, n, 4);
}

/* scudo's SmallAlign matrix: sizes and alignments 1..64 KiB, three times;
 * and the sizes on both sides of obm's limits (the small classes', the
 * medium ones') and of a medium class. */
static void test_alignment_matrix(void **state)
{
    static const size_t edges[] = {
        OBM_SMALL_MAX,  OBM_SMALL_MAX + 1,  640, 641, 1025, 4097, 16384, 28673, OBM_MEDIUM_MAX - 1,
        OBM_MEDIUM_MAX, OBM_MEDIUM_MAX + 1,
    };
    for (size_t api = 0; api < NAPIS; api++) {
        for (size_t n = 1; n <= 64 * KiB; n <<= 1)
            for (size_t a = aligned_apis[api].min_alignment; a <= 64 * KiB; a <<= 1)
                aligned_batch(api, a, n, 3);
        for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
            for (size_t a = aligned_apis[api].min_alignment; a <= 64 * KiB; a <<= 1)
                aligned_batch(api, a, edges[i], 3);
    }
}

/* ---- 22. min_align_16 ---- */

static void check_min_align(void *p, size_t n)
{
    if (p == NULL || (uintptr_t)p % 16 != 0)
        fail_msg("%zu bytes at %p: not 16-aligned", n, p);
}

static void min_align_batch(size_t n)
{
    enum { NITER = 100 };
    void *p[NITER];
    for (int i = 0; i < NITER; i++) {
        switch (i % 3) {
        case 0:
            p[i] = T_MALLOC(OPQ(n));
            break;
        case 1:
            p[i] = T_CALLOC(OPQ(n), OPQ(1));
            break;
        default:
            p[i] = T_REALLOC(NULL, OPQ(n));
            break;
        }
        check_min_align(p[i], n);
    }
    for (int i = 0; i < NITER; i++)
        T_FREE(p[i]);
}

static void test_min_align_16(void **state)
{
    for (int lg = 0; lg <= 15; lg++) {
        size_t n = (size_t)1 << lg;
        min_align_batch(n - 1);
        min_align_batch(n);
        min_align_batch(n + 1);
    }
    static const size_t glibc_sizes[] = {2, 8, 13, 16, 23, 43, 123};
    for (size_t i = 0; i < sizeof glibc_sizes / sizeof glibc_sizes[0]; i++)
        min_align_batch(glibc_sizes[i]);

    /* A block that moves between classes stays aligned, small, medium and
     * past obm's limit. */
    void *p = NULL;
    for (size_t n = 1; n <= OBM_MEDIUM_MAX + 2000; n += n < 2000 ? 7 : 257) {
        p = T_REALLOC(p, OPQ(n));
        check_min_align(p, n);
    }
    T_FREE(p);
}

/* ---- 23. max_align_t_use ---- */

/* Natural alignment, up to max_align_t: an object of n bytes may be of a
 * type whose alignment is n's largest power-of-two divisor. */
static void test_natural_alignment(void **state)
{
    for (size_t n = 1; n <= 4096; n++) {
        size_t natural = n & -n;
        if (natural > _Alignof(max_align_t))
            natural = _Alignof(max_align_t);
        void *p = T_MALLOC(OPQ(n));
        assert_non_null(p);
        if ((uintptr_t)p % natural != 0)
            fail_msg("malloc(%zu) = %p: not %zu-aligned", n, p, natural);
        T_FREE(p);
    }
}

/* Store and read back long double, __int128 and (movaps) SSE values in
 * every 16-byte slot of the block. */
static void store_max_aligned(char *p, size_t usable)
{
    for (size_t off = 0; off + 16 <= usable; off += 16) {
        char *slot = p + off;
        volatile long double *ld = (volatile long double *)slot;
        *ld = (long double)off + 0.25L;
        assert_true(*ld == (long double)off + 0.25L);
        volatile __int128 *i128 = (volatile __int128 *)slot;
        __int128 v = ((__int128)off << 64) | (unsigned)~off;
        *i128 = v;
        assert_true(*i128 == v);
#ifdef __SSE2__
        __m128 f = _mm_set_ps(1.0f, 2.0f, 3.0f, (float)off);
        _mm_store_ps((float *)slot, f); /* movaps: faults unless 16-aligned */
        __m128 g = _mm_load_ps((const float *)slot);
        assert_int_equal(_mm_movemask_ps(_mm_cmpeq_ps(f, g)), 0xf);
#endif
    }
}

static void test_max_align_t_use(void **state)
{
    enum { NBLOCKS = 8 };
    /* Every class obm has, small and medium. */
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        size_t size = class_bytes(c);
        /* the smallest and the largest request of the class */
        const size_t requests[] = {class_first(c), size};
        for (size_t r = 0; r < 2; r++) {
            char *p[NBLOCKS];
            for (int i = 0; i < NBLOCKS; i++) {
                p[i] = i % 2 ? T_MALLOC(OPQ(requests[r])) : T_CALLOC(OPQ(1), OPQ(requests[r]));
                assert_non_null(p[i]);
                assert_true(T_OWNS(p[i]));
                assert_int_equal(T_USABLE_SIZE(p[i]), size);
                store_max_aligned(p[i], size);
            }
            for (int i = 0; i < NBLOCKS; i++)
                T_FREE(p[i]);
        }
    }
    /* The backing allocator's. */
    static const size_t large[] = {OBM_MEDIUM_MAX + 1, 40000, 100000};
    for (size_t i = 0; i < sizeof large / sizeof large[0]; i++) {
        char *p = T_MALLOC(OPQ(large[i]));
        assert_non_null(p);
        assert_false(T_OWNS(p));
        store_max_aligned(p, large[i]);
        T_FREE(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obm_active),        cmocka_unit_test(test_alignment_sweep),
        cmocka_unit_test(test_alignment_matrix),  cmocka_unit_test(test_min_align_16),
        cmocka_unit_test(test_natural_alignment), cmocka_unit_test(test_max_align_t_use),
    };
    return RUN_TAP_TESTS(tests);
}
