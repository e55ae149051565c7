/* CHECKLIST group H, the hardening death tests (invalid.c has the invalid
 * pointers of case 45): a second free of a block, in any thread and however
 * deep in its free list, aborts with
 *   obm: free(): double free detected (ptr=0x.., class N of S bytes, pool 0x..)
 * realloc and malloc_usable_size of a freed block with
 *   obm: <func>(): pointer already freed (...)
 * and a malloc that meets an overwritten free-list link with
 *   obm: malloc(): corrupted free list (pool 0x.., class N of S bytes)...
 * A second free after the block's whole pool went back to the OS (by
 * obm_trim, or at once with OBM_PURGE_DELAY_MS=0) is an invalid pointer,
 *   obm: free(): invalid pointer 0x..
 * while the bytes of a freed block copied into a live one are no false
 * alarm. With OBM_ON_ERROR=report the same lines are printed and the
 * process goes on: the bad call changes nothing, and the statistics count
 * each detection. Built twice (api.h); each case runs in a child (death.h).
 */
#include "api.h"
#include "death.h"

#include <pthread.h>
#include <time.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define HAVE_VALGRIND_H 1
#endif
#endif

/* Freed blocks are off limits to ASan and to memcheck (obm tells them so);
 * the two helpers below touch them on purpose. */
#ifdef HAVE_VALGRIND_H
#define QUIET_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define QUIET_END()   VALGRIND_ENABLE_ERROR_REPORTING
#else
#define QUIET_BEGIN() ((void)0)
#define QUIET_END()   ((void)0)
#endif

/* Byte by byte through volatile, so that no memcpy (which ASan checks
 * whatever the caller) stands in for the loop. */
__attribute__((no_sanitize("address"))) static void copy_freed(char *dst, const char *freed,
                                                               size_t n)
{
    QUIET_BEGIN();
    const volatile char *s = freed;
    volatile char *d = dst;
    for (size_t i = 0; i < n; i++)
        d[i] = s[i];
    QUIET_END();
}

/* Flips the bits of `delta` in byte `pos` of a freed block. */
__attribute__((no_sanitize("address"))) static void poke_freed(char *freed, unsigned pos,
                                                               unsigned char delta)
{
    QUIET_BEGIN();
    volatile unsigned char *b = (volatile unsigned char *)freed;
    b[pos] = (unsigned char)(b[pos] ^ delta);
    QUIET_END();
}

/* ---- helpers for the children ---- */

/* The block size of n-byte requests (n <= OBM_MEDIUM_MAX). */
static size_t block_bytes(size_t n)
{
    return class_bytes(class_of(n));
}

/* p is where a block of n-byte requests starts (in a small pool's page, or
 * in any page of a medium pool). */
static int is_block_start(const char *p, size_t n)
{
    size_t off = (size_t)(p - block_pool(p, n)), s = block_bytes(n);
    return off >= POOL_HEADER && (off - POOL_HEADER) % s == 0 &&
           off + s <= class_pool_bytes(class_of(n));
}

/* k consecutive n-byte blocks in one pool (blocks met on the way stay
 * live): that pool heads its class's ring, so the blocks freed into it are
 * the next ones handed out, last freed first. */
static void blocks_in_one_pool(size_t n, char **out, size_t k)
{
    for (size_t i = 0; i < k; i++)
        out[i] = small_block(n);
    for (int tries = 0; tries < 2000; tries++) {
        size_t same = 1;
        while (same < k && block_pool(out[same], n) == block_pool(out[0], n))
            same++;
        if (same == k)
            return;
        memmove(out, out + 1, (k - 1) * sizeof *out);
        out[k - 1] = small_block(n);
    }
    death_fail("no %zu consecutive blocks of %zu bytes in one pool", k, n);
}

static void run_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, arg) != 0 || pthread_join(t, NULL) != 0)
        death_fail("pthread_create or pthread_join failed");
}

static void *thread_free(void *p)
{
    T_FREE(p);
    return NULL;
}

/* A block and its request size, for threads. */
struct blk {
    char *p;
    size_t n;
};

static void *thread_double_free(void *arg)
{
    struct blk *b = arg;
    expect_double_free(b->p, b->n);
    T_FREE(OPQP(b->p));
    return NULL;
}

/* The error counters of obm_stats_t (OBM_STATS_VERSION 3). */
struct errors {
    size_t invalid, double_free, corrupted;
};

static void errors_now(struct errors *e)
{
#if OBM_STATS_VERSION >= 3
    obm_stats_t s = death_stats();
    *e = (struct errors){s.errors_invalid_pointer, s.errors_double_free, s.errors_corrupted_list};
#else
    (void)e;
    death_fail("obm_stats_t has no error counters (OBM_STATS_VERSION %d < 3)", OBM_STATS_VERSION);
#endif
}

/* The counters grew by exactly these since `before`. */
static void errors_grew(const struct errors *before, size_t invalid, size_t double_free,
                        size_t corrupted)
{
    struct errors now;
    errors_now(&now);
    size_t di = now.invalid - before->invalid, dd = now.double_free - before->double_free,
           dc = now.corrupted - before->corrupted;
    if (di != invalid || dd != double_free || dc != corrupted)
        death_fail("errors counted: invalid pointer +%zu, double free +%zu, corrupted list +%zu; "
                   "want +%zu, +%zu, +%zu",
                   di, dd, dc, invalid, double_free, corrupted);
}

/* After a bad call was reported and ignored: a few hundred more n-byte
 * blocks are distinct, writable blocks of obm's; none is in never[] (live
 * or leaked), and `once` (a free block) is among them at most once. */
static void later_mallocs_sane(size_t n, char *const *never, size_t nnever, const char *once)
{
    enum { MORE = 300 };
    char *got[MORE];
    size_t s = block_bytes(n), seen_once = 0;
    for (size_t i = 0; i < MORE; i++) {
        char *p = got[i] = small_block(n);
        if (!is_block_start(p, n))
            death_fail("malloc(%zu) gave %p, not a block start", n, (void *)p);
        for (size_t j = 0; j < nnever; j++)
            if (p == never[j])
                death_fail("malloc(%zu) gave %p, a block that must never come back", n, (void *)p);
        seen_once += p == once;
        pattern_fill(p, s, (uintptr_t)p);
    }
    if (seen_once > 1)
        death_fail("malloc(%zu) gave the freed block %p %zu times", n, (void *)once, seen_once);
    for (size_t i = 0; i < MORE; i++) {
        if (pattern_check(got[i], s, (uintptr_t)got[i]) != s)
            death_fail("block %p was overwritten: handed out twice", (void *)got[i]);
        T_FREE(got[i]);
    }
}

/* ---- 42 double_free_small ---- */

static void double_free_small(void)
{
    char *p = small_block(32);
    T_FREE(p);
    expect_double_free(p, 32);
    T_FREE(OPQP(p));
}

/* Every class, small and medium, at its smallest request (death_arg is
 * the class). */
static void double_free_every_class(void)
{
    size_t n = class_first((unsigned)death_arg);
    char *p = small_block(n);
    T_FREE(p);
    expect_double_free(p, n);
    T_FREE(OPQP(p));
}

static void test_double_free_every_class(void **state)
{
    const struct death_case *c = *state;
    for (uint64_t cls = 0; cls < OBM_NCLASSES; cls++) {
        struct death_outcome o;
        death_run(c, cls, &o);
        death_check(c, cls, &o);
    }
}

/* ---- 43 double_free_deep ---- */

/* The block freed first is last in its list. */
static void double_free_deep(void)
{
    char *p[20];
    for (int i = 0; i < 20; i++)
        p[i] = small_block(20);
    for (int i = 0; i < 20; i++)
        T_FREE(p[i]);
    expect_double_free(p[0], 20);
    T_FREE(OPQP(p[0]));
}

static uint64_t new_seed(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec << 30 ^ (uint64_t)getpid() << 45;
    return (s * 0x9e3779b97f4a7c15ull) >> 5 | 1; /* 59 bits: corruption tries add 4 */
}

/* 100 blocks, 50 freed in random order (death_arg is the seed), and one of
 * them freed again: one with blocks of its own pool freed before and after
 * it, so it is inside its free list. */
static void double_free_mid_list(void)
{
    enum { N = 100, FREED = 50, SIZE = 64 };
    char *p[N];
    size_t order[N];
    uint64_t s = death_arg | 1;
    for (size_t i = 0; i < N; i++) {
        p[i] = small_block(SIZE);
        order[i] = i;
    }
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = rng_next(&s) % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t k = 0; k < FREED; k++)
        T_FREE(p[order[k]]);
    for (size_t d = 0; d < FREED / 2; d++) {
        for (int side = -1; side <= 1; side += 2) {
            size_t k = FREED / 2 + (size_t)side * d;
            char *x = p[order[k]];
            int before = 0, after = 0;
            for (size_t j = 0; j < FREED; j++)
                if (j != k && pool_of(p[order[j]]) == pool_of(x))
                    *(j < k ? &before : &after) = 1;
            if (before && after) {
                expect_double_free(x, SIZE);
                T_FREE(OPQP(x));
                return;
            }
        }
    }
    death_fail("no freed block inside its pool's free list");
}

static void test_death_seeded(void **state)
{
    const struct death_case *c = *state;
    uint64_t seed = new_seed();
    struct death_outcome o;
    death_run(c, seed, &o);
    death_check(c, seed, &o);
}

/* ---- 44 no_false_double_free ---- */

/* a, b, c in one pool; a and b freed (b's link leads to a); b's bytes,
 * whatever obm keeps in them, copied into c; then c freed: no alarm, and
 * the list is intact: the next mallocs give c, b, a. */
static void no_false_double_free(void)
{
    enum { SIZE = 96 };
    char *b[3];
    blocks_in_one_pool(SIZE, b, 3);
    T_FREE(b[0]);
    T_FREE(b[1]);
    copy_freed(b[2], b[1], block_bytes(SIZE));
    T_FREE(b[2]);
    for (int i = 2; i >= 0; i--) {
        char *q = T_MALLOC(OPQ(SIZE));
        if (q != b[i])
            death_fail("malloc gave %p, want %p (block %d)", (void *)q, (void *)b[i], i);
    }
    for (int i = 0; i < 3; i++)
        T_FREE(b[i]);
}

/* Four freed blocks copied into four live ones of the same pool, which are
 * then freed: the next eight mallocs give exactly those eight blocks. */
static void no_false_double_free_each(void)
{
    enum { SIZE = 160 };
    char *b[8];
    blocks_in_one_pool(SIZE, b, 8);
    for (int i = 0; i < 8; i += 2)
        T_FREE(b[i]);
    for (int i = 0; i < 8; i += 2)
        copy_freed(b[i + 1], b[i], block_bytes(SIZE));
    for (int i = 1; i < 8; i += 2)
        T_FREE(b[i]);
    char *q[8];
    for (int i = 0; i < 8; i++) {
        q[i] = small_block(SIZE);
        int found = 0;
        for (int j = 0; j < 8; j++)
            found += q[i] == b[j];
        for (int j = 0; j < i; j++)
            found += q[i] == q[j] ? 8 : 0;
        if (found != 1)
            death_fail("malloc %d gave %p: not one of the freed eight, or twice", i, (void *)q[i]);
    }
    for (int i = 0; i < 8; i++)
        T_FREE(q[i]);
}

/* The copy lands in a live block of another pool (512-byte blocks, 7 a
 * pool), and the block is freed by another thread. */
static void no_false_double_free_other_pool(void)
{
    enum { SIZE = 512 };
    char *b[16];
    for (int i = 0; i < 16; i++)
        b[i] = small_block(SIZE);
    int other = -1;
    for (int i = 1; i < 16 && other < 0; i++)
        if (pool_of(b[i]) != pool_of(b[0]))
            other = i;
    if (other < 0)
        death_fail("16 blocks of 512 bytes in one pool");
    T_FREE(b[0]);
    copy_freed(b[other], b[0], SIZE);
    run_thread(thread_free, b[other]);
    later_mallocs_sane(SIZE, NULL, 0, NULL);
}

/* ---- 45 invalid_free (the cases invalid.c does not have) ---- */

/* Not obm's: the backing allocator (glibc, or ASan with abort_on_error)
 * gets it and aborts with its own message. The int lies 4 bytes past a
 * 16-byte boundary, so glibc's free rejects it before it follows the word
 * in front, which holds a large number (as stack words often do) that
 * glibc takes for a block size. */
static void free_stack_var(void)
{
    uint32_t frame[4] __attribute__((aligned(16))) = {0, 0, 0x100, 1};
    T_FREE(OPQP(&frame[3]));
}

/* ---- 49 large_invalid_free ----
 *
 * Blocks above the small sizes, freed twice or at an interior address:
 * whoever serves them aborts with its own message, never a crash. Up to
 * OBM_MEDIUM_MAX (600, 4000 and 20000 bytes here) they are obm's medium
 * blocks: obm's own line, in every build, ThreadSanitizer's included.
 * Above it (100000 bytes) they are the backing allocator's: glibc's
 * message, through the drop-in's large path, which hands the pointer over
 * unread. The block is filled with 0x41 first, so the word in front of an
 * interior pointer, which glibc takes for a chunk size, is absurd: glibc
 * rejects it, where anything that follows it first runs off. A guard
 * block keeps the double-freed block off the top of glibc's heap (and an
 * obm block's pool in service); the _top cases leave it there. */
static char *large_block(size_t n)
{
    char *p = T_MALLOC(OPQ(n));
    if (p == NULL || (T_OWNS(p) != 0) != obm_serves(n))
        death_fail("malloc(%zu) gave %p, owned %d", n, (void *)p, p ? T_OWNS(p) : 0);
    return p;
}

static void large_double_free(size_t n, bool guarded)
{
    char *p = large_block(n);
    char *guard = guarded ? large_block(n) : NULL;
    memset(p, 0, n);
    T_FREE(p);
    if (obm_serves(n))
        expect_double_free(p, n);
    T_FREE(OPQP(p));
    T_FREE(guard);
}

static void large_interior_free(size_t n)
{
    char *p = large_block(n);
    memset(p, 0x41, n);
    if (obm_serves(n))
        expect_invalid("free", p + 32);
    T_FREE(OPQP(p + 32));
}

#define LARGE_CASES(n)                                                                             \
    static void large_double_free_##n(void)                                                        \
    {                                                                                              \
        large_double_free(n, true);                                                                \
    }                                                                                              \
    static void large_double_free_top_##n(void)                                                    \
    {                                                                                              \
        large_double_free(n, false);                                                               \
    }                                                                                              \
    static void large_interior_free_##n(void)                                                      \
    {                                                                                              \
        large_interior_free(n);                                                                    \
    }
LARGE_CASES(600)
LARGE_CASES(4000)
LARGE_CASES(20000)
LARGE_CASES(100000)

/* ---- medium blocks past their pool's first page ----
 *
 * A medium pool spans several pages and keeps its header in the first:
 * a free of a block further in finds the pool through its arena's page
 * table (a free by another thread always does). Each case takes such a
 * block, the blocks of its pool before it kept live, so the pool stays in
 * service. */

/* A block of n bytes (a medium size) past the first page of its pool. */
static char *far_block(size_t n)
{
    for (int i = 0; i < 64; i++) {
        char *p = small_block(n);
        if ((size_t)(p - block_pool(p, n)) >= OBM_POOL_SIZE)
            return p;
    }
    death_fail("no block of %zu bytes past the first page of its pool", n);
}

static void double_free_far(void)
{
    char *p = far_block(1000);
    T_FREE(p);
    expect_double_free(p, 1000);
    T_FREE(OPQP(p));
}

static void interior_free_far(void)
{
    char *p = far_block(3000);
    expect_invalid("free", p + 16);
    T_FREE(OPQP(p + 16));
}

/* The first byte of a 1024-byte class pool's second page: inside its
 * fourth block (64 + 3 * 1024 = 3136 up to 4160), in use, so no block
 * start. */
static void free_second_page(void)
{
    char *p = far_block(1000), *q = block_pool(p, 1000) + OBM_POOL_SIZE;
    expect_invalid("free", q);
    T_FREE(q);
}

static void realloc_freed_far(void)
{
    char *p = far_block(2000);
    T_FREE(p);
    expect_freed("realloc", p, 2000);
    void *volatile q = T_REALLOC(OPQP(p), OPQ(100));
    (void)q;
}

/* A thread's far block, freed by it; the thread ends (its heap is
 * abandoned, the pool kept in service by the blocks before the far one). */
static void *thread_alloc_free_far(void *arg)
{
    struct blk *b = arg;
    b->p = far_block(b->n);
    T_FREE(b->p);
    return NULL;
}

static void double_free_cross_thread_far(void)
{
    struct blk b = {NULL, 5000};
    run_thread(thread_alloc_free_far, &b);
    run_thread(thread_double_free, &b);
}

/* Main's far block, freed by a thread (on the pool's remote list, not yet
 * collected); main frees it again, and so does another thread. */
static void double_free_owner_after_remote_far(void)
{
    char *p = far_block(3000);
    run_thread(thread_free, p);
    expect_double_free(p, 3000);
    T_FREE(OPQP(p));
}

static void double_free_thread_after_remote_far(void)
{
    struct blk b = {far_block(20000), 20000};
    run_thread(thread_free, b.p);
    run_thread(thread_double_free, &b);
}

/* The arena's first byte: pool 0's header. */
static void free_arena_start(void)
{
    char *p = arena_of(small_block(32));
    expect_invalid("free", p);
    T_FREE(p);
}

struct pool_state {
    const void *pool;
    int state; /* enum obm_region_state; 0 until found */
};

static int find_pool_state(const obm_region_t *r, void *arg)
{
    struct pool_state *ps = arg;
    if (r->kind != OBM_REGION_POOL || r->address != ps->pool)
        return 0;
    ps->state = r->state;
    return 1;
}

/* obm_visit's state of the pool holding p; 0 when its arena is unmapped. */
static int pool_state_of(const void *p)
{
#ifdef OBM_API_PRELOAD
    int (*visit)(obm_visit_fn, void *) =
        (int (*)(obm_visit_fn, void *))dlsym(RTLD_DEFAULT, "obm_visit");
    if (visit == NULL)
        death_fail("the drop-in does not export obm_visit");
#else
    int (*visit)(obm_visit_fn, void *) = obm_visit;
#endif
    struct pool_state ps = {pool_of(p), 0};
    visit(find_pool_state, &ps);
    return ps.state;
}

/* p + 16 KiB: in a fresh process, four pools past the first pool of a
 * class nobody has used, so never used (obm_visit says so first). */
static void free_p_plus_16k(void)
{
    char *p = small_block(448), *q = p + 16 * KiB;
    if (arena_of(q) != arena_of(p))
        death_fail("p + 16 KiB (%p) is in another arena", (void *)q);
    int state = pool_state_of(q);
    if (state != OBM_POOL_UNTOUCHED)
        death_fail("the pool at %p is not untouched (state %d)", (void *)pool_of(q), state);
    expect_invalid("free", q);
    T_FREE(q);
}

/* ---- a double free after the pool's page went back to the OS ---- */

static void *thread_alloc_free_sole(void *arg);

/* The pool, wholly free, is PURGED (its header is gone with the page),
 * so the second free sees no pool in service there and reports an
 * invalid pointer (docs/hardening.md, Limits). `keep`, a block of
 * another class in the same arena, keeps the arena mapped. */
static void double_free_purged(char *p, const char *keep)
{
    if (arena_of(keep) != arena_of(p))
        death_fail("%p and %p are in two arenas", (void *)keep, (void *)p);
    int state = pool_state_of(p);
    if (state != OBM_POOL_PURGED)
        death_fail("the pool of the freed block %p is not PURGED (state %d)", (void *)p, state);
    expect_invalid("free", p);
    T_FREE(OPQP(p));
}

/* Freed, then obm_trim gives its pool's page back. */
static void double_free_after_trim(void)
{
#ifdef OBM_API_PRELOAD
    int (*trim)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "obm_trim");
    if (trim == NULL)
        death_fail("the drop-in does not export obm_trim");
#else
    int (*trim)(void) = obm_trim;
#endif
    char *keep = small_block(32), *p = small_block(464);
    T_FREE(p);
    if (trim() != 1)
        death_fail("obm_trim gave nothing back");
    double_free_purged(p, keep);
}

/* With OBM_PURGE_DELAY_MS=0: a thread's only block, freed; its emptied
 * pool goes back to its arena when the thread ends, and at once to the
 * OS. */
static void double_free_after_purge_delay(void)
{
    char *keep = small_block(32);
    struct blk b = {NULL, 464};
    run_thread(thread_alloc_free_sole, &b);
    double_free_purged(b.p, keep);
}

/* ---- 46 freelist_corruption ---- */

enum { CORRUPT_SIZE = 48, CORRUPT_TRIES = 16, CORRUPT_LEAST = 12 };

/* Three blocks freed, the bits of `delta` flipped in byte `pos` of the
 * head's stored link, two mallocs. The first gives the head back; the
 * second must abort, or, where the changed link still passes the fast
 * path's check (docs/hardening.md: in the pool, past the header,
 * 16-byte aligned; the block boundary is not tested there), give an
 * address that does: even q1 again, when the change points the link at
 * it, a block in use, which no check of the link alone can tell. */
static void corrupt_and_malloc(unsigned pos, unsigned char delta)
{
    char *b[3];
    blocks_in_one_pool(CORRUPT_SIZE, b, 3);
    for (int k = 0; k < 3; k++)
        T_FREE(b[k]);
    poke_freed(b[2], pos, delta);
    char *q1 = T_MALLOC(OPQ(CORRUPT_SIZE));
    if (q1 != b[2])
        death_fail("the first malloc gave %p, not the head %p", (void *)q1, (void *)b[2]);
    expect_corrupted(b[2], CORRUPT_SIZE);
    char *q2 = T_MALLOC(OPQ(CORRUPT_SIZE));
    uintptr_t rel = (uintptr_t)(q2 - pool_of(q1));
    if (q2 == NULL || pool_of(q2) != pool_of(q1) || rel < POOL_HEADER || rel % 16 != 0)
        death_fail("byte %u ^ 0x%02x: the second malloc gave %p, not a block of pool %p", pos,
                   delta, (void *)q2, (void *)pool_of(q1));
    memset(q1, 0x11, CORRUPT_SIZE);
    memset(q2, 0x22, CORRUPT_SIZE);
}

/* One try (death_arg: seed << 4 | try): byte try % 8, a random change. */
static void freelist_corruption(void)
{
    unsigned i = (unsigned)(death_arg & 15);
    uint64_t s = (death_arg >> 4) * 0x9e3779b97f4a7c15ull + i + 1;
    corrupt_and_malloc(i % 8, (unsigned char)(1 + rng_next(&s) % 255));
}

/* The link moved by 2^29 bytes (byte 3): out of the pool. */
static void freelist_corruption_out_of_pool(void)
{
    corrupt_and_malloc(3, 0x20);
}

static void test_freelist_corruption(void **state)
{
    const struct death_case *c = *state;
    uint64_t seed = new_seed();
    int aborted = 0, unnoticed = 0;
    for (uint64_t i = 0; i < CORRUPT_TRIES; i++) {
        uint64_t arg = seed << 4 | i;
        struct death_outcome o;
        death_run(c, arg, &o);
        const char *why = death_setup_failure(&o);
        if (why != NULL)
            fail_msg("%s, try %" PRIu64 " (arg %" PRIu64 "): %s", c->name, i, arg, why);
        if (death_aborted(&o) && death_lines_match(&o)) {
            aborted++;
        } else if (death_exited_cleanly(&o) && o.err[0] == '\0') {
            unnoticed++;
        } else {
            char how[32];
            death_describe(&o, how, sizeof how);
            fail_msg("%s, try %" PRIu64 " (arg %" PRIu64
                     "): %s, stderr \"%s\"; want SIGABRT and \"%s\"",
                     c->name, i, arg, how, o.err, o.rep);
        }
    }
    printf("# freelist_corruption: %d of %d tries aborted, %d unnoticed (seed %" PRIu64 ")\n",
           aborted, CORRUPT_TRIES, unnoticed, seed);
    if (aborted < CORRUPT_LEAST)
        fail_msg("only %d of %d corrupted links were caught", aborted, CORRUPT_TRIES);
}

/* ---- 47 double_free_cross_thread ---- */

/* Two blocks of one pool: the first freed here, the second kept, so the
 * pool stays in service after the thread ends. */
static void *thread_alloc_free_one(void *arg)
{
    struct blk *b = arg;
    char *two[2];
    blocks_in_one_pool(b->n, two, 2);
    T_FREE(two[0]);
    b->p = two[0];
    return NULL;
}

static void double_free_cross_thread(void)
{
    struct blk b = {NULL, 96};
    run_thread(thread_alloc_free_one, &b);
    run_thread(thread_double_free, &b);
}

/* The thread's only block: its pool is empty when the thread ends, and
 * its page must stay (OBM_PURGE_DELAY_MS=-1) for the free to say so. */
static void *thread_alloc_free_sole(void *arg)
{
    struct blk *b = arg;
    b->p = small_block(b->n);
    T_FREE(b->p);
    return NULL;
}

static void double_free_cross_thread_sole(void)
{
    struct blk b = {NULL, 464};
    run_thread(thread_alloc_free_sole, &b);
    run_thread(thread_double_free, &b);
}

/* Main's x and y, freed by thread A (x first, so x is not the head of the
 * pool's remote list); thread B frees x again. */
static void *thread_free_two(void *arg)
{
    char **xy = arg;
    T_FREE(xy[0]);
    T_FREE(xy[1]);
    return NULL;
}

static void double_free_main_alloc_two_threads(void)
{
    char *b[3];
    blocks_in_one_pool(80, b, 3);
    run_thread(thread_free_two, b);
    struct blk x = {b[0], 80};
    run_thread(thread_double_free, &x);
}

/* Freed by main (x, then y on top of it); a thread frees x again. */
static void double_free_thread_after_main(void)
{
    char *b[3];
    blocks_in_one_pool(80, b, 3);
    T_FREE(b[0]);
    T_FREE(b[1]);
    struct blk x = {b[0], 80};
    run_thread(thread_double_free, &x);
}

/* Freed by a thread into main's pool, not yet collected; main frees it
 * again. */
static void double_free_owner_after_remote(void)
{
    char *b[3];
    blocks_in_one_pool(80, b, 3);
    run_thread(thread_free_two, b);
    expect_double_free(b[0], 80);
    T_FREE(OPQP(b[0]));
}

/* ---- 48 realloc_or_usable_of_freed ---- */

static void realloc_freed(char *p, size_t n, size_t to)
{
    expect_freed("realloc", p, n);
    void *volatile q = T_REALLOC(OPQP(p), OPQ(to));
    (void)q;
}

static void usable_size_freed(char *p, size_t n)
{
    expect_freed("malloc_usable_size", p, n);
    volatile size_t u = T_USABLE_SIZE(OPQP(p));
    (void)u;
}

/* A freed block and a live one of its pool. */
static char *freed_block(size_t n)
{
    char *b[2];
    blocks_in_one_pool(n, b, 2);
    T_FREE(b[0]);
    return b[0];
}

/* The first of 20 freed blocks: last in its list. */
static char *freed_deep(void)
{
    char *p[20];
    for (int i = 0; i < 20; i++)
        p[i] = small_block(20);
    for (int i = 0; i < 20; i++)
        T_FREE(p[i]);
    return p[0];
}

static void realloc_freed_deep(void)
{
    realloc_freed(freed_deep(), 20, 100);
}

static void realloc_freed_to_large(void)
{
    realloc_freed(freed_block(112), 112, 1000);
}

static void realloc_freed_to_zero(void)
{
    realloc_freed(freed_block(112), 112, 0);
}

static void usable_size_freed_deep(void)
{
    usable_size_freed(freed_deep(), 20);
}

static void *thread_realloc_freed(void *arg)
{
    struct blk *b = arg;
    realloc_freed(b->p, b->n, 50);
    return NULL;
}

static void realloc_freed_by_thread(void)
{
    struct blk b = {freed_block(112), 112};
    run_thread(thread_realloc_freed, &b);
}

/* Freed by another thread, not yet collected by main, its owner. */
static void usable_size_remote_freed(void)
{
    char *b[3];
    blocks_in_one_pool(112, b, 3);
    run_thread(thread_free_two, b);
    usable_size_freed(b[0], 112);
}

/* ---- OBM_ON_ERROR ---- */

static void report_double_free(void)
{
    enum { SIZE = 208 };
    char *b[3];
    blocks_in_one_pool(SIZE, b, 3);
    struct errors before;
    errors_now(&before);
    T_FREE(b[0]);
    for (int i = 0; i < 2; i++) {
        expect_double_free(b[0], SIZE);
        T_FREE(OPQP(b[0]));
    }
    errors_grew(&before, 0, 2, 0);
    later_mallocs_sane(SIZE, b + 1, 2, b[0]);
}

/* The same with a medium block past its pool's first page. */
static void report_double_free_far(void)
{
    enum { SIZE = 3000 };
    char *p = far_block(SIZE);
    struct errors before;
    errors_now(&before);
    T_FREE(p);
    for (int i = 0; i < 2; i++) {
        expect_double_free(p, SIZE);
        T_FREE(OPQP(p));
    }
    errors_grew(&before, 0, 2, 0);
    later_mallocs_sane(SIZE, NULL, 0, p);
}

static void report_double_free_cross_thread(void)
{
    enum { SIZE = 208 };
    char *b[2];
    blocks_in_one_pool(SIZE, b, 2);
    struct errors before;
    errors_now(&before);
    T_FREE(b[0]);
    struct blk x = {b[0], SIZE};
    run_thread(thread_double_free, &x);
    errors_grew(&before, 0, 1, 0);
    later_mallocs_sane(SIZE, b + 1, 1, b[0]);
}

/* Interior pointers: free and realloc leave the block alone, realloc
 * fails with EINVAL, malloc_usable_size says 0. */
static void report_invalid_pointer(void)
{
    enum { SIZE = 64 };
    char *p = small_block(SIZE);
    pattern_fill(p, SIZE, (uintptr_t)p);
    struct errors before;
    errors_now(&before);
    expect_invalid("free", p + 8);
    T_FREE(OPQP(p + 8));
    expect_invalid("realloc", p + 16);
    errno = 0;
    void *q = T_REALLOC(OPQP(p + 16), OPQ(100));
    if (q != NULL || errno != EINVAL)
        death_fail("realloc(p + 16) gave %p, errno %d; want NULL, EINVAL", q, errno);
    expect_invalid("malloc_usable_size", p + 1);
    size_t u = T_USABLE_SIZE(OPQP(p + 1));
    if (u != 0)
        death_fail("malloc_usable_size(p + 1) gave %zu, want 0", u);
    errors_grew(&before, 3, 0, 0);
    if (pattern_check(p, SIZE, (uintptr_t)p) != SIZE)
        death_fail("the block changed");
    later_mallocs_sane(SIZE, &p, 1, NULL);
    T_FREE(p);
}

static void report_realloc_freed(void)
{
    enum { SIZE = 224 };
    char *b[3];
    blocks_in_one_pool(SIZE, b, 3);
    T_FREE(b[0]);
    struct errors before;
    errors_now(&before);
    static const size_t to[] = {100, 1000};
    for (int i = 0; i < 2; i++) {
        expect_freed("realloc", b[0], SIZE);
        errno = 0;
        void *q = T_REALLOC(OPQP(b[0]), OPQ(to[i]));
        if (q != NULL || errno != EINVAL)
            death_fail("realloc(freed, %zu) gave %p, errno %d; want NULL, EINVAL", to[i], q, errno);
    }
    expect_freed("malloc_usable_size", b[0], SIZE);
    size_t u = T_USABLE_SIZE(OPQP(b[0]));
    if (u != 0)
        death_fail("malloc_usable_size(freed) gave %zu, want 0", u);
    errors_grew(&before, 0, 3, 0);
    later_mallocs_sane(SIZE, b + 1, 2, b[0]);
}

/* A link changed so that it leaves the pool and misses a block boundary
 * (bytes 0, 4 and 5): always caught. The list behind it is dropped, and
 * malloc still gives a good block. */
static void report_corrupted_list(void)
{
    enum { SIZE = CORRUPT_SIZE };
    char *b[3];
    blocks_in_one_pool(SIZE, b, 3);
    struct errors before;
    errors_now(&before);
    for (int k = 0; k < 3; k++)
        T_FREE(b[k]);
    poke_freed(b[2], 0, 0x08);
    poke_freed(b[2], 4, 0x5a);
    poke_freed(b[2], 5, 0x5a);
    char *q1 = T_MALLOC(OPQ(SIZE));
    if (q1 != b[2])
        death_fail("the first malloc gave %p, not the head %p", (void *)q1, (void *)b[2]);
    expect_corrupted(b[2], SIZE);
    char *q2 = small_block(SIZE);
    if (q2 == q1 || q2 == b[0] || q2 == b[1] || !is_block_start(q2, SIZE))
        death_fail("after the corrupted list, malloc gave %p", (void *)q2);
    memset(q2, 0x33, SIZE);
    errors_grew(&before, 0, 0, 1);
    char *never[4] = {b[0], b[1], q1, q2};
    later_mallocs_sane(SIZE, never, 4, NULL);
}

static void on_error_bad_value(void)
{
    expect_line("obm: ignoring OBM_ON_ERROR=bogus (expected abort, report)");
    double_free_small();
}

/* ---- the control: valid use raises no alarm and counts no error ---- */

static void *thread_free_list(void *arg)
{
    char **p = arg;
    for (; *p != NULL; p++)
        T_FREE(*p);
    return NULL;
}

/* Random mallocs, reallocs and frees of every class, small and medium
 * (one size in 8), contents checked, and a thread that frees a share of
 * the live blocks midway. */
static void valid_churn(void)
{
    enum { SLOTS = 512, OPS = 20000 };
    static char *slot[SLOTS], *remote[SLOTS + 1];
    static size_t size[SLOTS];
    struct errors before;
    errors_now(&before);
    uint64_t s = 0x0b3c0ffee;
    for (int op = 0; op < OPS; op++) {
        size_t i = rng_next(&s) % SLOTS, r = rng_next(&s);
        size_t n = r % 8 == 0 ? 1 + (r >> 3) % OBM_MEDIUM_MAX : 1 + (r >> 3) % OBM_SMALL_MAX;
        if (op == OPS / 2) {
            size_t k = 0;
            for (size_t j = 0; j < SLOTS; j += 3)
                if (slot[j] != NULL) {
                    remote[k++] = slot[j];
                    slot[j] = NULL;
                }
            remote[k] = NULL;
            run_thread(thread_free_list, remote);
        }
        if (slot[i] != NULL && pattern_check(slot[i], size[i], (uintptr_t)i) != size[i])
            death_fail("block %p (slot %zu) changed", (void *)slot[i], i);
        if (slot[i] == NULL) {
            slot[i] = small_block(n);
        } else if (rng_next(&s) % 2) {
            size_t keep = n < size[i] ? n : size[i];
            char *q = T_REALLOC(slot[i], OPQ(n));
            if (q == NULL || pattern_check(q, keep, (uintptr_t)i) != keep)
                death_fail("realloc of slot %zu to %zu lost its contents", i, n);
            slot[i] = q;
        } else {
            T_FREE(slot[i]);
            slot[i] = NULL;
            continue;
        }
        if (T_USABLE_SIZE(slot[i]) < n)
            death_fail("usable size %zu < %zu", T_USABLE_SIZE(slot[i]), n);
        size[i] = n;
        pattern_fill(slot[i], n, (uintptr_t)i);
    }
    for (size_t i = 0; i < SLOTS; i++)
        T_FREE(slot[i]);
    errors_grew(&before, 0, 0, 0);
}

#define REPORT        "OBM_ON_ERROR=report"
#define KEEP_PAGES    "OBM_PURGE_DELAY_MS=-1"
#define PURGE_AT_ONCE "OBM_PURGE_DELAY_MS=0"
#define ASAN_ABORTS   "ASAN_OPTIONS=abort_on_error=1:allocator_may_return_null=1"
/* How a bad free of a block above OBM_MEDIUM_MAX ends: as its server,
 * the backing allocator, says. ThreadSanitizer's allocator, the backing
 * allocator of the TSan build, takes a double or interior free without a
 * word: the process must then go on unharmed. (A medium block is obm's:
 * obm's line and SIGABRT there too.) */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define LARGE_END DEATH_EXIT
#else
#define LARGE_END DEATH_ABORT_ANY
#endif

/* A case named after its function; NAMED when it shares another's; OWN for
 * one with its own cmocka test (several children, or a seed). */
/* clang-format off */
#define CASE(fn, end, fresh, env)        {#fn, end, fresh, {env}, fn, NULL}
#define NAMED(name, fn, end, fresh, env) {name, end, fresh, {env}, fn, NULL}
#define OWN(fn, test)                    {#fn, DEATH_ABORT, 0, {NULL}, fn, test}
/* clang-format on */

static const struct death_case cases[] = {
    /* 42 */
    CASE(double_free_small, DEATH_ABORT, 0, NULL),
    NAMED("double_free_small_fresh", double_free_small, DEATH_ABORT, 1, NULL),
    OWN(double_free_every_class, test_double_free_every_class),
    /* 43 */
    CASE(double_free_deep, DEATH_ABORT, 0, NULL),
    OWN(double_free_mid_list, test_death_seeded),
    /* 44 */
    CASE(no_false_double_free, DEATH_EXIT, 0, NULL),
    CASE(no_false_double_free_each, DEATH_EXIT, 0, NULL),
    CASE(no_false_double_free_other_pool, DEATH_EXIT, 0, NULL),
    /* 45 */
    CASE(free_stack_var, DEATH_ABORT_ANY, 1, ASAN_ABORTS),
    CASE(free_arena_start, DEATH_ABORT, 0, NULL),
    CASE(free_p_plus_16k, DEATH_ABORT, 1, NULL),
    CASE(double_free_after_trim, DEATH_ABORT, 1, NULL),
    CASE(double_free_after_purge_delay, DEATH_ABORT, 1, PURGE_AT_ONCE),
    /* 46 */
    OWN(freelist_corruption, test_freelist_corruption),
    CASE(freelist_corruption_out_of_pool, DEATH_ABORT, 0, NULL),
    /* 47 */
    CASE(double_free_cross_thread, DEATH_ABORT, 0, NULL),
    CASE(double_free_cross_thread_sole, DEATH_ABORT, 1, KEEP_PAGES),
    CASE(double_free_main_alloc_two_threads, DEATH_ABORT, 0, NULL),
    CASE(double_free_thread_after_main, DEATH_ABORT, 0, NULL),
    CASE(double_free_owner_after_remote, DEATH_ABORT, 0, NULL),
    /* 48 */
    CASE(realloc_freed_deep, DEATH_ABORT, 0, NULL),
    CASE(realloc_freed_to_large, DEATH_ABORT, 0, NULL),
    CASE(realloc_freed_to_zero, DEATH_ABORT, 0, NULL),
    CASE(usable_size_freed_deep, DEATH_ABORT, 0, NULL),
    CASE(realloc_freed_by_thread, DEATH_ABORT, 0, NULL),
    CASE(usable_size_remote_freed, DEATH_ABORT, 0, NULL),
/* 49: fresh processes, where ASan aborts too (valgrind runs them natively):
 * obm's medium blocks with obm's line, everywhere; the backing allocator's
 * as it says */
#define MEDIUM(n)                                                                                  \
    CASE(large_double_free_##n, DEATH_ABORT, 1, ASAN_ABORTS),                                      \
        CASE(large_double_free_top_##n, DEATH_ABORT, 1, ASAN_ABORTS),                              \
        CASE(large_interior_free_##n, DEATH_ABORT, 1, ASAN_ABORTS)
#define LARGE(n)                                                                                   \
    CASE(large_double_free_##n, LARGE_END, 1, ASAN_ABORTS),                                        \
        CASE(large_double_free_top_##n, LARGE_END, 1, ASAN_ABORTS),                                \
        CASE(large_interior_free_##n, LARGE_END, 1, ASAN_ABORTS)
    MEDIUM(600),
    MEDIUM(4000),
    MEDIUM(20000),
    LARGE(100000),
#undef MEDIUM
#undef LARGE
    /* medium blocks past their pool's first page (42, 45, 47, 48) */
    CASE(double_free_far, DEATH_ABORT, 0, NULL),
    CASE(interior_free_far, DEATH_ABORT, 0, NULL),
    CASE(free_second_page, DEATH_ABORT, 0, NULL),
    CASE(realloc_freed_far, DEATH_ABORT, 0, NULL),
    CASE(double_free_cross_thread_far, DEATH_ABORT, 0, NULL),
    CASE(double_free_owner_after_remote_far, DEATH_ABORT, 0, NULL),
    CASE(double_free_thread_after_remote_far, DEATH_ABORT, 0, NULL),
    /* OBM_ON_ERROR */
    CASE(report_double_free, DEATH_EXIT, 1, REPORT),
    CASE(report_double_free_far, DEATH_EXIT, 1, REPORT),
    CASE(report_double_free_cross_thread, DEATH_EXIT, 1, REPORT),
    CASE(report_invalid_pointer, DEATH_EXIT, 1, REPORT),
    CASE(report_realloc_freed, DEATH_EXIT, 1, REPORT),
    CASE(report_corrupted_list, DEATH_EXIT, 1, REPORT),
    NAMED("on_error_abort", double_free_small, DEATH_ABORT, 1, "OBM_ON_ERROR=abort"),
    CASE(on_error_bad_value, DEATH_ABORT, 1, "OBM_ON_ERROR=bogus"),
    /* no false alarms */
    CASE(valid_churn, DEATH_EXIT, 0, NULL),
    NAMED("valid_churn_report", valid_churn, DEATH_EXIT, 1, REPORT),
};

DEATH_MAIN(cases)
