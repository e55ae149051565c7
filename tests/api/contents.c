/* CHECKLIST group C, contents preserved: 24 (realloc_matrix), 25
 * (realloc_grow_shrink_chain), 26 (realloc_many_blocks), blocks moving
 * between obm and the backing allocator, and where a shrinking realloc
 * leaves a block (in place or moved, exactly as docs/semantics.md's rule says).
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

/* Whether realloc of a block with `usable` bytes to n <= OBM_MEDIUM_MAX
 * bytes (a size obm serves) keeps it in place: when n fits and the shrink
 * would save less than a quarter of the block, or (for obm's blocks) n is
 * in the block's own class (docs/semantics.md). A block of the
 * backing allocator that shrinks to a size obm serves follows the same
 * quarter rule (src/api.c). */
static int shrink_stays(size_t usable, int owned, size_t n)
{
    return n <= usable && (usable - n < usable / 4 || (owned && block_size(n) == usable));
}

/* The usable size of the block a block of `usable` bytes moves to when
 * realloc'd to n <= OBM_MEDIUM_MAX bytes: n's class (small or medium), or,
 * when it grows, the class of a quarter more than it had, that headroom
 * capped at OBM_MEDIUM_MAX, or the largest class below it that requests
 * from n up stay in (shrink_stays) (docs/semantics.md; src/api.c,
 * realloc_grown). */
static size_t moved_class(size_t usable, size_t n)
{
    size_t headroom = usable + usable / 4;
    if (n <= usable || headroom <= n)
        return block_size(n);
    if (headroom > OBM_MEDIUM_MAX)
        headroom = OBM_MEDIUM_MAX;
    unsigned c = class_index(headroom);
    while (c > class_index(n) && !shrink_stays(class_bytes(c), 1, n))
        c--;
    return class_bytes(c);
}

/* ---- 24. realloc_matrix ---- */

static size_t matrix_sizes(size_t *sizes)
{
    size_t n = 0;
    for (size_t i = 0; i <= 100; i++)
        sizes[n++] = i;
    /* 2^k - 1, 2^k, 2^k + 1 up to 100,000: this includes the small limit
     * (512), the page size (4096) and the medium limit (32768). */
    for (size_t k = 7; ((size_t)1 << k) <= 100000; k++) {
        sizes[n++] = ((size_t)1 << k) - 1;
        sizes[n++] = (size_t)1 << k;
        sizes[n++] = ((size_t)1 << k) + 1;
    }
    /* Medium classes between the powers of two, and one byte past them:
     * the first (640), a pool of 32 KiB (1280, 1536), the last below a
     * whole-arena pool (7168) and the last but one (28672). */
    static const size_t medium[] = {640, 641, 768, 1280, 1281, 1536, 7168, 7169, 28672, 28673};
    for (size_t i = 0; i < sizeof medium / sizeof medium[0]; i++)
        sizes[n++] = medium[i];
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
            /* Large results (above OBM_MEDIUM_MAX) are the backing
             * allocator's. A small or medium one stays where it was
             * exactly when shrink_stays says so, and is otherwise a new
             * block of obm's of moved_class. */
            int owned = T_OWNS(q);
            if (!obm_serves(dst)) {
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

/* The next size up: one byte past the block, through every class obm
 * serves (a medium block grows into its headroom: moved_class), then
 * about 25% more a step (jemalloc's size classes) up to CHAIN_MAX. */
static size_t chain_next(size_t usable)
{
    if (usable < OBM_MEDIUM_MAX)
        return usable + 1;
    return usable + usable / 4;
}

/* Sizes obm serves stay obm's (a grown block may have room to spare:
 * moved_class), larger ones are the backing allocator's. */
static void check_chain_block(char *p, size_t n)
{
    size_t usable = T_USABLE_SIZE(p);
    if (obm_serves(n) ? usable < block_size(n) || usable > OBM_MEDIUM_MAX || !T_OWNS(p)
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
            /* A block of obm's that grows moves, to exactly moved_class. */
            if (obm_serves(n) && grown != moved_class(usable, n))
                fail_msg("realloc of a %zu-byte block to %zu: usable %zu, want %zu", usable, n,
                         grown, moved_class(usable, n));
            ref_fill(p, usable, grown, shift);
            usable = grown;
        }
        /* Shrink back through the same sizes: the first n bytes survive,
         * and a block that shrinks to a size obm serves stays exactly
         * when shrink_stays says so (a block of the backing allocator
         * too), else moves to n's class. */
        for (size_t i = nsteps - 1; i-- > 0;) {
            size_t n = sizes[i];
            uintptr_t was = (uintptr_t)p;
            int owned = T_OWNS(p);
            p = realloc_checked(p, n, n, shift);
            if (obm_serves(n) &&
                (shrink_stays(usable, owned, n) ? (uintptr_t)p != was
                                                : !T_OWNS(p) || T_USABLE_SIZE(p) != block_size(n)))
                fail_msg("realloc of a %zu-byte block (owned %d) to %zu = %p (was %p): owned "
                         "%d, usable %zu",
                         usable, owned, n, (void *)p, (void *)was, T_OWNS(p), T_USABLE_SIZE(p));
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

/* ---- the shrink rule of obm's blocks, on both sides of its boundary ---- */

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
        {32, 16},     {48, 32},     {64, 48},       {80, 60},       {128, 96},   {208, 156},
        {400, 300},   {512, 384},   {640, 480},     {896, 672},     {1024, 768}, {1280, 960},
        {4096, 3072}, {7168, 5376}, {20480, 15360}, {32768, 24576},
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

    /* Every medium class against sizes around its own, around the sizes
     * that save a quarter, the small limit, and the next class: a class
     * is 2^(k-2) bytes wide, less than a quarter of its blocks, so the
     * quarter rule decides alone. */
    moved = 0;
    size_t tried = 0;
    for (unsigned c = OBM_NSMALL; c < OBM_NCLASSES; c++) {
        size_t usable = class_bytes(c), quarter = usable - usable / 4;
        const size_t n[] = {1,
                            16,
                            OBM_SMALL_MAX,
                            OBM_SMALL_MAX + 1,
                            quarter - 1,
                            quarter,
                            quarter + 1,
                            class_first(c) - 1,
                            class_first(c),
                            usable - 1,
                            usable,
                            usable + 1,
                            usable + usable / 8,
                            c + 1 < OBM_NCLASSES ? class_bytes(c + 1) : usable + 2};
        for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
            if (!obm_serves(n[i]))
                continue;
            int stayed = realloc_stayed(usable, n[i]);
            if (stayed != shrink_stays(usable, 1, n[i]))
                fail_msg("realloc(malloc(%zu), %zu) %s", usable, n[i], stayed ? "stayed" : "moved");
            moved += !stayed;
            tried++;
        }
    }
    printf("# every medium class against %zu sizes near its own: %zu moved\n", tried, moved);
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

    p = realloc_checked(p, 513, 50, shift); /* one past the small limit: a medium block */
    assert_true(T_OWNS(p));
    assert_int_equal(T_USABLE_SIZE(p), 640);
    ref_fill(p, 50, 640, shift);

    p = realloc_checked(p, OBM_MEDIUM_MAX, 640, shift); /* the largest medium class */
    assert_true(T_OWNS(p));
    assert_int_equal(T_USABLE_SIZE(p), OBM_MEDIUM_MAX);
    ref_fill(p, 640, OBM_MEDIUM_MAX, shift);

    p = realloc_checked(p, OBM_MEDIUM_MAX + 1, OBM_MEDIUM_MAX, shift); /* one past the limit */
    assert_false(T_OWNS(p));
    ref_fill(p, OBM_MEDIUM_MAX, OBM_MEDIUM_MAX + 1, shift);

    p = realloc_checked(p, 4000, 4000, shift); /* back, to a medium class */
    assert_true(T_OWNS(p));
    assert_int_equal(T_USABLE_SIZE(p), 4096);

    p = realloc_checked(p, 300, 300, shift); /* down to a small one */
    assert_true(T_OWNS(p));
    assert_int_equal(T_USABLE_SIZE(p), 304);
    T_FREE(p);
}

static void test_realloc_large_to_small(void **state)
{
    /* Blocks of the backing allocator (above OBM_MEDIUM_MAX), cut to sizes
     * obm serves: small ones, and medium ones on both sides of a class. */
    static const size_t from[] = {OBM_MEDIUM_MAX + 1, 40000, 100000, 4 * MiB};
    static const size_t to[] = {1,     16,    100,   255,   256,   511,           512,
                                513,   640,   641,   1024,  1025,  4096,          16384,
                                24576, 24577, 28672, 30000, 32767, OBM_MEDIUM_MAX};
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
            /* Up to the medium limit: obm's, unless the cut saves less
             * than a quarter of the block, which then stays where it is. */
            if (shrink_stays(usable, 0, to[j])) {
                if ((uintptr_t)p != was)
                    fail_msg("realloc(malloc(%zu), %zu) moved (usable %zu)", from[i], to[j],
                             usable);
            } else if (!T_OWNS(p) || T_USABLE_SIZE(p) != block_size(to[j])) {
                fail_msg("realloc(malloc(%zu), %zu) = %p: owned %d, usable %zu; want obm's block "
                         "of %zu (the old one had %zu)",
                         from[i], to[j], (void *)p, T_OWNS(p), T_USABLE_SIZE(p), block_size(to[j]),
                         usable);
            }
            T_FREE(p);
        }
    }

    /* Over-aligned blocks are the backing allocator's; cut or grown to a
     * size obm serves they move to obm, by the same rules (a grown one
     * gets a quarter more than it had); grown past OBM_MEDIUM_MAX they stay
     * the backing allocator's. */
    static const size_t alignments[] = {32, 64, 4096};
    for (size_t i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
        size_t a = alignments[i];
        char *p = T_MEMALIGN(OPQ(a), OPQ(300));
        assert_non_null(p);
        assert_false(T_OWNS(p));
        ref_fill(p, 0, 300, a);
        p = realloc_checked(p, 40, 40, a);
        assert_true(T_OWNS(p));
        assert_int_equal(T_USABLE_SIZE(p), 48);
        T_FREE(p);

        p = T_MEMALIGN(OPQ(a), OPQ(3000));
        assert_non_null(p);
        assert_false(T_OWNS(p));
        size_t usable = T_USABLE_SIZE(p);
        ref_fill(p, 0, 3000, a);
        p = realloc_checked(p, 1000, 1000, a); /* saves more than a quarter */
        assert_true(T_OWNS(p));
        assert_int_equal(T_USABLE_SIZE(p), 1024);
        T_FREE(p);

        p = T_MEMALIGN(OPQ(a), OPQ(3000));
        assert_non_null(p);
        usable = T_USABLE_SIZE(p);
        ref_fill(p, 0, 3000, a);
        p = realloc_checked(p, usable + 1, 3000, a);
        assert_true(T_OWNS(p));
        assert_int_equal(T_USABLE_SIZE(p), moved_class(usable, usable + 1));
        T_FREE(p);

        p = T_MEMALIGN(OPQ(a), OPQ(300));
        assert_non_null(p);
        ref_fill(p, 0, 300, a);
        p = realloc_checked(p, 40000, 300, a);
        assert_false(T_OWNS(p));
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
