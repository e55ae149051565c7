/* CHECKLIST group C, contents preserved: 24 (realloc_matrix), 25
 * (realloc_grow_shrink_chain), 26 (realloc_many_blocks), blocks moving
 * between obm and the backing allocator, and where a shrinking realloc
 * leaves a block (in place or moved, exactly as README.md's rule says).
 * Built twice; see api.h. */
#include "api.h"

#include <stdio.h>

/* realloc(p, n) where p holds bytes [0, keep) of the reference at `shift`
 * (api.h): they survive, and the result has at least n usable bytes. */
static void *realloc_checked(void *p, size_t n, size_t keep, size_t shift)
{
    void *q = T_REALLOC(p, OPQ(n));
    if (q == NULL)
        fail_msg("realloc(%p, %zu) failed", p, n);
    size_t bad = ref_check(q, 0, keep, shift);
    if (bad != keep)
        fail_msg("realloc(%p, %zu) = %p: byte %zu of %zu changed", p, n, q, bad, keep);
    if (T_USABLE_SIZE(q) < n)
        fail_msg("realloc(%p, %zu) = %p: usable size %zu", p, n, q, T_USABLE_SIZE(q));
    return q;
}

/* Whether realloc of a block with `usable` bytes to n <= 512 bytes keeps
 * it in place: when n fits and the shrink would save less than a quarter
 * of the block, or (for obm's blocks) n is in the block's own class
 * (README.md, "Semantics"). A block of the backing allocator that shrinks
 * to a small size follows the same quarter rule (src/api.c). */
static int shrink_stays(size_t usable, int owned, size_t n)
{
    return n <= usable && (usable - n < usable / 4 || (owned && class_size(n) == usable));
}

/* The usable size of the block a small block of `usable` bytes moves to
 * when realloc'd to n <= 512 bytes: n's class, or, when it grows, the
 * class of a quarter more than it had, up to 512 (README.md, "Semantics";
 * src/api.c, realloc_grown). */
static size_t moved_class(size_t usable, size_t n)
{
    size_t want = n;
    if (n > usable) {
        size_t headroom = usable + usable / 4;
        if (headroom > OBM_SMALL_MAX)
            headroom = OBM_SMALL_MAX;
        if (headroom > n)
            want = headroom;
    }
    return class_size(want);
}

/* ---- 24. realloc_matrix ---- */

static size_t matrix_sizes(size_t *sizes)
{
    size_t n = 0;
    for (size_t i = 0; i <= 100; i++)
        sizes[n++] = i;
    /* 2^k - 1, 2^k, 2^k + 1 up to 100,000: this includes the small limit
     * (512) and the pool size (4096). */
    for (size_t k = 7; ((size_t)1 << k) <= 100000; k++) {
        sizes[n++] = ((size_t)1 << k) - 1;
        sizes[n++] = (size_t)1 << k;
        sizes[n++] = ((size_t)1 << k) + 1;
    }
    sizes[n++] = OBM_ARENA_SIZE - 1;
    sizes[n++] = OBM_ARENA_SIZE;
    sizes[n++] = OBM_ARENA_SIZE + 1;
    return n;
}

static void test_realloc_matrix(void **state)
{
    size_t sizes[160];
    size_t nsizes = matrix_sizes(sizes);
    for (size_t i = 0; i < nsizes; i++) {
        for (size_t j = 0; j < nsizes; j++) {
            size_t src = sizes[i], dst = sizes[j], shift = i * nsizes + j;
            char *p = T_MALLOC(OPQ(src));
            assert_non_null(p);
            ref_fill(p, 0, src, shift);
            int src_owned = T_OWNS(p);
            size_t src_usable = T_USABLE_SIZE(p);
            uintptr_t was = (uintptr_t)p;
            if (dst == 0) {
                assert_null(T_REALLOC(p, OPQ(0)));
                continue;
            }
            char *q = realloc_checked(p, dst, src < dst ? src : dst, shift);
            /* Large results are the backing allocator's. A small one stays
             * where it was exactly when shrink_stays says so, and is
             * otherwise a new block of obm's of moved_class. */
            int owned = T_OWNS(q);
            if (dst > OBM_SMALL_MAX) {
                if (owned)
                    fail_msg("realloc(malloc(%zu), %zu) = %p is obm's", src, dst, (void *)q);
            } else if (shrink_stays(src_usable, src_owned, dst)) {
                if ((uintptr_t)q != was)
                    fail_msg("realloc(malloc(%zu), %zu) moved (usable %zu)", src, dst, src_usable);
            } else if ((uintptr_t)q == was || !owned ||
                       T_USABLE_SIZE(q) != moved_class(src_usable, dst)) {
                fail_msg("realloc(malloc(%zu), %zu) = %p (was %p): owned %d, usable %zu; want a "
                         "new block of %zu",
                         src, dst, (void *)q, (void *)was, owned, T_USABLE_SIZE(q),
                         moved_class(src_usable, dst));
            }
            T_FREE(q);
        }
    }
}

/* ---- 25. realloc_grow_shrink_chain ---- */

enum { CHAIN_CYCLES = 3, CHAIN_MAX_STEPS = 200 };
#define CHAIN_MAX (12 * MiB)

/* The next size up: every small class (usable + 1), then about 25% more a
 * step (jemalloc's size classes) up to CHAIN_MAX. */
static size_t chain_next(size_t usable)
{
    if (usable < OBM_SMALL_MAX)
        return usable + 1;
    return usable + usable / 4;
}

/* Small sizes stay obm's (a grown block may have room to spare: moved_class). */
static void check_chain_block(char *p, size_t n)
{
    size_t usable = T_USABLE_SIZE(p);
    if (n <= OBM_SMALL_MAX ? usable < class_size(n) || usable > OBM_SMALL_MAX || !T_OWNS(p)
                           : usable < n || T_OWNS(p))
        fail_msg("%zu bytes at %p: usable %zu, owned %d", n, (void *)p, usable, T_OWNS(p));
}

static void test_realloc_grow_shrink_chain(void **state)
{
    size_t sizes[CHAIN_MAX_STEPS];
    char *p = T_MALLOC(OPQ(1));
    assert_non_null(p);
    size_t usable = T_USABLE_SIZE(p);
    for (size_t cycle = 0; cycle < CHAIN_CYCLES; cycle++) {
        /* Each cycle its own pattern, so no copy left over from the last
         * cycle can pass for this one's. */
        size_t shift = 1000 * cycle;
        ref_fill(p, 0, usable, shift);

        /* Grow from 1 byte to usable + 1, again and again: each step keeps
         * all the bytes of the last (obm and glibc copy the usable area). */
        size_t nsteps = 0;
        sizes[nsteps++] = 1;
        while (usable <= CHAIN_MAX) {
            size_t n = chain_next(usable);
            assert_true(nsteps < CHAIN_MAX_STEPS);
            sizes[nsteps++] = n;
            p = realloc_checked(p, n, usable, shift);
            check_chain_block(p, n);
            size_t grown = T_USABLE_SIZE(p);
            ref_fill(p, usable, grown, shift);
            usable = grown;
        }
        /* Shrink back through the same sizes: the first n bytes survive. */
        for (size_t i = nsteps - 1; i-- > 0;) {
            size_t n = sizes[i];
            p = realloc_checked(p, n, n, shift);
            usable = T_USABLE_SIZE(p);
            ref_fill(p, n, usable, shift);
        }
        /* Back to one byte: the block is obm's again. */
        check_chain_block(p, 1);
    }
    T_FREE(p);
}

/* ---- 26. realloc_many_blocks ---- */

static void test_realloc_many_blocks(void **state)
{
    enum { NBLOCKS = 16384, OLD = 8192, NEW = 9000, WORD = 1000 };
    size_t **p = T_MALLOC(OPQ(NBLOCKS * sizeof *p));
    assert_non_null(p);
    for (size_t i = 0; i < NBLOCKS; i++) {
        p[i] = T_MALLOC(OPQ(OLD));
        assert_non_null(p[i]);
        p[i][0] = i;
        p[i][WORD] = i * 0x9e3779b97f4a7c15u;
    }
    for (size_t i = 0; i < NBLOCKS; i++) {
        p[i] = T_REALLOC(p[i], OPQ(NEW));
        assert_non_null(p[i]);
        if (p[i][0] != i || p[i][WORD] != i * 0x9e3779b97f4a7c15u)
            fail_msg("block %zu lost its words after realloc", i);
    }
    for (size_t i = 0; i < NBLOCKS; i++) {
        if (p[i][0] != i || p[i][WORD] != i * 0x9e3779b97f4a7c15u)
            fail_msg("block %zu lost its words later", i);
        T_FREE(p[i]);
    }
    T_FREE(p);
}

/* ---- the small-block shrink rule, on both sides of its boundary ---- */

/* realloc(malloc(usable), n): whether it stayed. Contents are kept either
 * way; a moved block is a new one of moved_class. */
static int realloc_stayed(size_t usable, size_t n)
{
    char *p = T_MALLOC(OPQ(usable));
    assert_non_null(p);
    assert_int_equal(T_USABLE_SIZE(p), usable);
    ref_fill(p, 0, usable, usable + n);
    uintptr_t was = (uintptr_t)p;
    char *q = realloc_checked(p, n, n < usable ? n : usable, usable + n);
    int stayed = (uintptr_t)q == was;
    if (!stayed && (!T_OWNS(q) || T_USABLE_SIZE(q) != moved_class(usable, n)))
        fail_msg("realloc(malloc(%zu), %zu) = %p: owned %d, usable %zu", usable, n, (void *)q,
                 T_OWNS(q), T_USABLE_SIZE(q));
    T_FREE(q);
    return stayed;
}

static void test_realloc_shrink_rule(void **state)
{
    /* The boundary, spelled out: the largest request that moves, and one
     * byte more stays. Up to 48 bytes the own-class rule decides (a
     * quarter is less than a class), from 64 on the quarter. */
    static const struct {
        size_t usable, moves;
    } edge[] = {
        {32, 16}, {48, 32}, {64, 48}, {80, 60}, {128, 96}, {208, 156}, {400, 300}, {512, 384},
    };
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        if (realloc_stayed(edge[i].usable, edge[i].moves))
            fail_msg("realloc(malloc(%zu), %zu) stayed: it saves a quarter or more", edge[i].usable,
                     edge[i].moves);
        if (!realloc_stayed(edge[i].usable, edge[i].moves + 1))
            fail_msg("realloc(malloc(%zu), %zu) moved: it saves less than a quarter",
                     edge[i].usable, edge[i].moves + 1);
    }
    /* Every class against every size up to one class above it. */
    size_t moved = 0;
    for (size_t usable = 16; usable <= OBM_SMALL_MAX; usable += 16) {
        for (size_t n = 1; n <= usable + 16 && n <= OBM_SMALL_MAX; n++) {
            int stayed = realloc_stayed(usable, n);
            if (stayed != shrink_stays(usable, 1, n))
                fail_msg("realloc(malloc(%zu), %zu) %s", usable, n, stayed ? "stayed" : "moved");
            moved += !stayed;
        }
    }
    printf("# every class against 1..its size + 16: %zu moved\n", moved);
}

/* ---- moves between obm and the backing allocator ---- */

static void test_realloc_small_large_small(void **state)
{
    const size_t shift = 1;
    char *p = T_MALLOC(OPQ(100));
    assert_true(T_OWNS(p));
    ref_fill(p, 0, 100, shift);

    p = realloc_checked(p, 100000, 100, shift); /* out to the backing allocator */
    assert_false(T_OWNS(p));
    ref_fill(p, 100, 100000, shift);

    p = realloc_checked(p, 200, 200, shift); /* and back */
    assert_true(T_OWNS(p));
    assert_int_equal(T_USABLE_SIZE(p), 208);

    p = realloc_checked(p, 50, 50, shift); /* a smaller class */
    assert_true(T_OWNS(p));
    assert_int_equal(T_USABLE_SIZE(p), 64);

    p = realloc_checked(p, 513, 50, shift); /* one past the small limit */
    assert_false(T_OWNS(p));
    T_FREE(p);
}

static void test_realloc_large_to_small(void **state)
{
    static const size_t from[] = {513, 600, 1000, 5000, 100000, 4 * MiB};
    static const size_t to[] = {1, 16, 100, 255, 256, 511, 512};
    enum { NTO = sizeof to / sizeof to[0] };
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
        for (size_t j = 0; j < NTO; j++) {
            size_t shift = i * NTO + j;
            char *p = T_MALLOC(OPQ(from[i]));
            assert_non_null(p);
            assert_false(T_OWNS(p));
            size_t usable = T_USABLE_SIZE(p);
            ref_fill(p, 0, usable, shift);
            uintptr_t was = (uintptr_t)p;
            p = realloc_checked(p, to[j], to[j], shift);
            /* Under the small limit: obm's, unless the cut saves less than
             * a quarter of the block, which then stays where it is. */
            if (shrink_stays(usable, 0, to[j])) {
                if ((uintptr_t)p != was)
                    fail_msg("realloc(malloc(%zu), %zu) moved (usable %zu)", from[i], to[j],
                             usable);
            } else if (!T_OWNS(p) || T_USABLE_SIZE(p) != class_size(to[j])) {
                fail_msg("realloc(malloc(%zu), %zu) stayed in the backing allocator (usable %zu)",
                         from[i], to[j], usable);
            }
            T_FREE(p);
        }
    }

    /* Over-aligned blocks are the backing allocator's; small again, obm's. */
    static const size_t alignments[] = {32, 64, 4096};
    for (size_t i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
        char *p = T_MEMALIGN(OPQ(alignments[i]), OPQ(300));
        assert_non_null(p);
        assert_false(T_OWNS(p));
        ref_fill(p, 0, 300, alignments[i]);
        p = realloc_checked(p, 40, 40, alignments[i]);
        assert_true(T_OWNS(p));
        T_FREE(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obm_active),
        cmocka_unit_test(test_realloc_matrix),
        cmocka_unit_test(test_realloc_grow_shrink_chain),
        cmocka_unit_test(test_realloc_many_blocks),
        cmocka_unit_test(test_realloc_shrink_rule),
        cmocka_unit_test(test_realloc_small_large_small),
        cmocka_unit_test(test_realloc_large_to_small),
    };
    return RUN_TAP_TESTS(tests);
}
