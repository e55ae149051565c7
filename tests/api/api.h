/* The API tests are written once and built twice, so that each item of
 * tests/CHECKLIST.md they cover is held once through the prefixed API and
 * once through malloc with the library preloaded:
 *
 *   *_obm     linked against libobm; T_MALLOC is obm_malloc and so on.
 *   *_plain   built with -DOBM_API_PRELOAD and not linked to obm at all;
 *             T_MALLOC is malloc, and *_preload.sh runs it with
 *             LD_PRELOAD=$OBM_DROPIN. test_obm_active proves the drop-in
 *             really serves malloc there, or every other case is moot.
 *
 * Sizes go through OPQ() so the compiler cannot fold a call such as
 * malloc(SIZE_MAX) to NULL or warn about it at compile time.
 */
#ifndef OBM_TESTS_API_H
#define OBM_TESTS_API_H

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "obm.h"
#include "testutil.h"

#ifdef OBM_API_PRELOAD
#define T_MALLOC         malloc
#define T_CALLOC         calloc
#define T_REALLOC        realloc
#define T_REALLOCARRAY   reallocarray
#define T_FREE           free
#define T_POSIX_MEMALIGN posix_memalign
#define T_ALIGNED_ALLOC  aligned_alloc
#define T_MEMALIGN       memalign
#define T_USABLE_SIZE(p) malloc_usable_size(p)
#define T_OWNS(p)        api_owns(p)
#define T_HAVE_VALLOC    1 /* libobm has no valloc or pvalloc */
#define T_VALLOC         valloc
#define T_PVALLOC        pvalloc
#else
#define T_MALLOC         obm_malloc
#define T_CALLOC         obm_calloc
#define T_REALLOC        obm_realloc
#define T_REALLOCARRAY   obm_reallocarray
#define T_FREE           obm_free
#define T_POSIX_MEMALIGN obm_posix_memalign
#define T_ALIGNED_ALLOC  obm_aligned_alloc
#define T_MEMALIGN       obm_memalign
#define T_USABLE_SIZE(p) obm_usable_size(p)
#define T_OWNS(p)        obm_owns(p)
#endif

#define KiB ((size_t)1024)
#define MiB (1024 * KiB)

static inline size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* /proc/self/statm's resident and shared (file-backed) pages, read
 * without allocating (open, read, strtoul); false when it cannot be read. */
static inline bool statm_pages(unsigned long *resident, unsigned long *shared)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY);
    ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (fd >= 0)
        close(fd);
    if (len <= 0)
        return false;
    buf[len] = '\0';
    char *end;
    strtoul(buf, &end, 10); /* size */
    *resident = strtoul(end, &end, 10);
    *shared = strtoul(end, &end, 10);
    return *end == ' ';
}

/* Resident bytes; 0 when they cannot be read. */
static inline size_t rss_bytes(void)
{
    unsigned long resident, shared;
    return statm_pages(&resident, &shared) ? resident * page_size() : 0;
}

/* The value of x, hidden from the optimiser. */
static inline size_t OPQ(size_t x)
{
    __asm__ volatile("" : "+r"(x));
    return x;
}

/* A pointer the compiler cannot follow: for calls that must fail and leave
 * the block live, which gcc's -Wuse-after-free cannot know. */
static inline void *OPQP(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* The block size obm gives a small request: its 16-byte class. */
static inline size_t class_size(size_t n)
{
    return n == 0 ? 16 : (n + 15) & ~(size_t)15;
}

/* Whether obm serves a request of n bytes itself (alignment up to 16): the
 * small classes up to OBM_SMALL_MAX, the medium ones up to OBM_MEDIUM_MAX.
 * A larger request is the backing allocator's. */
static inline bool obm_serves(size_t n)
{
    return n <= OBM_MEDIUM_MAX;
}

/* The block size obm gives a medium request, OBM_SMALL_MAX < n <=
 * OBM_MEDIUM_MAX: four classes per doubling, those of the doubling from
 * 2^k (2^k < n <= 2^(k+1)) at 2^k + j 2^(k-2), j = 1..4 (640, 768, 896,
 * 1024, 1280, ..., 28672, 32768). Written from that rule, not from obm's
 * code. */
static inline size_t medium_class_size(size_t n)
{
    unsigned k = 9;
    while (((size_t)2 << k) < n)
        k++;
    size_t step = (size_t)1 << (k - 2);
    return (n + step - 1) / step * step;
}

/* The usable size obm gives a request of n <= OBM_MEDIUM_MAX bytes: its
 * class's block size, small or medium. */
static inline size_t block_size(size_t n)
{
    return n <= OBM_SMALL_MAX ? class_size(n) : medium_class_size(n);
}

/* The size class of a request of n <= OBM_MEDIUM_MAX bytes, as obm's
 * messages and statistics number them: 0..OBM_NSMALL - 1 the small ones,
 * 16 (c + 1) bytes; then the medium ones, four per doubling. */
static inline unsigned class_index(size_t n)
{
    if (n <= OBM_SMALL_MAX)
        return n == 0 ? 0 : (unsigned)((n - 1) / 16);
    size_t size = medium_class_size(n);
    unsigned k = 9;
    while (((size_t)2 << k) < size)
        k++;
    unsigned j = (unsigned)((size - ((size_t)1 << k)) >> (k - 2)); /* 1..4 */
    return OBM_NSMALL + 4 * (k - 9) + j - 1;
}

/* The block size of class c, 0 <= c < OBM_NCLASSES. */
static inline size_t class_bytes(unsigned c)
{
    if (c < OBM_NSMALL)
        return 16 * ((size_t)c + 1);
    unsigned k = 9 + (c - OBM_NSMALL) / 4, j = (c - OBM_NSMALL) % 4 + 1;
    return ((size_t)1 << k) + ((size_t)j << (k - 2));
}

/* The smallest request of class c. */
static inline size_t class_first(unsigned c)
{
    return c == 0 ? 1 : class_bytes(c - 1) + 1;
}

/* The bytes of a pool of class c: a page for a small class; for a medium
 * one 4 pages for the doubling from 512, twice as many for each later
 * one, at most a whole arena (src/types.h). A pool is aligned to its
 * size. */
static inline size_t class_pool_bytes(unsigned c)
{
    if (c < OBM_NSMALL)
        return OBM_POOL_SIZE;
    size_t pages = (size_t)4 << ((c - OBM_NSMALL) / 4);
    return pages < OBM_ARENA_SIZE / OBM_POOL_SIZE ? pages * OBM_POOL_SIZE : OBM_ARENA_SIZE;
}

/* The pool (its first page, where its header is) of p, a block of a
 * request of n <= OBM_MEDIUM_MAX bytes. */
static inline char *block_pool(const void *p, size_t n)
{
    return (char *)((uintptr_t)p & ~(uintptr_t)(class_pool_bytes(class_index(n)) - 1));
}

/* Blocks per pool of class c, after the pool's 64-byte header. */
static inline size_t class_blocks(unsigned c)
{
    return (class_pool_bytes(c) - 64) / class_bytes(c);
}

#ifndef OBM_API_PRELOAD
/* Under AddressSanitizer (test.sh), the backing allocator is ASan's: let it
 * fail a huge request with NULL, as glibc does, instead of reporting it.
 * (Defined here once per program: each includes this header once.) */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

#ifdef OBM_API_PRELOAD
/* The plain program is not linked to obm: find obm_owns in the drop-in. */
static inline int api_owns(const void *p)
{
    static int (*owns)(const void *);
    if (owns == NULL) {
        owns = (int (*)(const void *))dlsym(RTLD_DEFAULT, "obm_owns");
        if (owns == NULL)
            fail_msg("obm_owns not found: is the drop-in preloaded (OBM_DROPIN)?");
    }
    return owns(p);
}

/* The drop-in's definition of `name`, or a failure. */
static inline void *dropin_symbol(const char *name)
{
    void *sym = dlsym(RTLD_DEFAULT, name);
    Dl_info info;
    if (sym == NULL || !dladdr(sym, &info) || info.dli_fname == NULL ||
        strstr(info.dli_fname, "libobmalloc") == NULL)
        fail_msg("%s does not come from the drop-in (%s)", name,
                 sym == NULL ? "not found" : info.dli_fname);
    return sym;
}
#endif

/* Every API binary starts with this: small requests are obm's, large ones
 * (above OBM_MEDIUM_MAX) the backing allocator's, and (preloaded) malloc
 * is the drop-in's. */
static inline void test_obm_active(void **state)
{
    (void)state;
#ifdef OBM_API_PRELOAD
    dropin_symbol("malloc");
    dropin_symbol("free");
    dropin_symbol("realloc");
#endif
    void *small = T_MALLOC(OPQ(32));
    void *large = T_MALLOC(OPQ(100000));
    assert_non_null(small);
    assert_non_null(large);
    assert_true(T_OWNS(small));
    assert_false(T_OWNS(large));
    T_FREE(small);
    T_FREE(large);
}

/* Just-freed block p of n <= OBM_MEDIUM_MAX bytes (small or medium) really
 * went back: obm's free lists are LIFO, so the next request of its class,
 * in this single thread, returns it. */
static inline void assert_small_freed(uintptr_t p, size_t n)
{
    void *q = T_MALLOC(OPQ(n));
    assert_ptr_equal(q, (void *)p);
    T_FREE(q);
}

/* Expected contents for big blocks: one long pattern (testutil.h), made
 * once; a block copies bytes [from, to) of its own window of it, starting
 * at `shift`, and is compared with memcmp, so checking every byte costs
 * memcmp's time rather than pattern_check's (it counts under valgrind).
 * Giving each block its own shift keeps a reused block that still holds a
 * stale copy of the pattern from passing. */
#define REF_MAX   (16 * MiB)
#define REF_SHIFT 4093 /* shifts are taken modulo this prime */

static inline const unsigned char *reference(void)
{
    static unsigned char ref[REF_MAX + REF_SHIFT];
    static int made;
    if (!made) {
        pattern_fill(ref, sizeof ref, 0x0b3);
        made = 1;
    }
    return ref;
}

static inline void ref_fill(void *p, size_t from, size_t to, size_t shift)
{
    assert_true(to <= REF_MAX);
    memcpy((char *)p + from, reference() + shift % REF_SHIFT + from, to - from);
}

/* The offset of the first of p's bytes [from, to) that differs from what
 * ref_fill put there, or `to`. */
static inline size_t ref_check(const void *p, size_t from, size_t to, size_t shift)
{
    const unsigned char *want = reference() + shift % REF_SHIFT, *got = p;
    assert_true(to <= REF_MAX);
    if (from >= to || memcmp(got + from, want + from, to - from) == 0)
        return to;
    while (got[from] == want[from])
        from++;
    return from;
}

/* A small deterministic PRNG (xorshift64*). */
static inline uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

#endif /* OBM_TESTS_API_H */
