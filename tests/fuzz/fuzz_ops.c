/* libFuzzer harness: the obm_* API driven by the input, every block's
 * contents, size, alignment and owner checked, and the invariant walkers
 * (obmi_heap_check, obmi_arenas_check) run every CHECK_EVERY operations and
 * at the end of each input, when every block is freed again.
 *
 * Input: operations, one after the other, until the input ends; each is an
 * opcode byte (modulo OP_COUNT) and its arguments; bytes past the end read
 * as 0. Blocks live in a table of NSLOTS slots; an allocation into a slot
 * that holds a block frees that block first.
 *
 *   op  what              arguments
 *    0  malloc            slot size
 *    1  calloc            slot c size        count c % 9, size split over it
 *    2  realloc           slot m size        m >= 0xc0: reallocarray, count m % 8 + 1
 *    3  realloc to 0      slot               an empty slot: realloc(NULL, 0)
 *    4  free              slot
 *    5  memalign          slot align size
 *    6  posix_memalign    slot align size
 *    7  aligned_alloc     slot align size
 *    8  usable size       slot               contents and obm_usable_size
 *    9  failing requests  slot k b           k % 8 picks one, b varies it
 *   10  burst             slot16 n size      n + 1 mallocs into consecutive slots
 *   11  free range        slot16 n s         n + 1 frees, stride s % 8 + 1
 *   12  remote free       slot               freed by the helper thread
 *   13  remote malloc     slot size          allocated by the helper thread
 *   14  trim, options     b                  b % 4: 0 obm_trim; 1, 2 the purge options
 *                                            from b >> 2 (delay, keep, advice); 3 the
 *                                            helper thread ends and a new one starts
 *   15  check                                the invariant walkers now
 *
 *   slot    one byte: slots 0..255
 *   slot16  two bytes, little-endian, modulo NSLOTS
 *   size    a selector byte s, then a little-endian 16-bit v:
 *           s < 0xa0: v % 601; s < 0xc0: a small class edge 16 * (v % 34) - 1 + s % 3;
 *           s < 0xd0: a medium class edge m - 1 + s % 3, m the v % 25-th of 512
 *           (the small limit) and the medium class sizes 640, 768, ..., 32768;
 *           s < 0xf8: v % 4097; else v * 70 KiB / 64 KiB
 *   align   one byte a: a < 0xe8: 1 << (a % 13), 1..4096; else one of 0, 3, 24,
 *           48, 4097, 6000, 2^63, SIZE_MAX (invalid, or rounded up by memalign)
 *
 * tests/fuzz/make_corpus.py writes the seed corpus in this format.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NSLOTS      4096
#define CHECK_EVERY 64
#define K_STEP      0x9e3779b97f4a7c15u

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    OP_MALLOC,
    OP_CALLOC,
    OP_REALLOC,
    OP_REALLOC0,
    OP_FREE,
    OP_MEMALIGN,
    OP_POSIX_MEMALIGN,
    OP_ALIGNED_ALLOC,
    OP_USABLE,
    OP_FAILING,
    OP_BURST,
    OP_FREE_RANGE,
    OP_REMOTE_FREE,
    OP_REMOTE_MALLOC,
    OP_TRIM_OPTIONS,
    OP_CHECK,
    OP_COUNT
};

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fuzz_ops: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---- the input ---- */

typedef struct input {
    const uint8_t *data;
    size_t size, pos;
} input_t;

static unsigned next8(input_t *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static unsigned next16(input_t *in)
{
    unsigned lo = next8(in);
    return lo | next8(in) << 8;
}

static size_t next_size(input_t *in)
{
    unsigned s = next8(in), v = next16(in);
    if (s < 0xa0)
        return v % 601;
    if (s < 0xc0) {
        unsigned e = 16 * (v % 34) + s % 3;
        return e ? e - 1 : 0;
    }
    if (s < 0xd0) {
        /* 512, then the medium classes: four per doubling, 2^k + j 2^(k-2) */
        unsigned c = v % 25;
        if (c == 0)
            return OBM_SMALL_MAX - 1 + s % 3;
        unsigned k = 9 + (c - 1) / 4, j = (c - 1) % 4 + 1;
        return ((size_t)1 << k) + ((size_t)j << (k - 2)) - 1 + s % 3;
    }
    if (s < 0xf8)
        return v % 4097;
    return (size_t)v * 70 / 64;
}

static size_t next_align(input_t *in)
{
    static const size_t odd[8] = {0, 3, 24, 48, 4097, 6000, (size_t)1 << 63, SIZE_MAX};
    unsigned a = next8(in);
    return a < 0xe8 ? (size_t)1 << (a % 13) : odd[a % 8];
}

/* ---- blocks and their patterns ---- */

typedef struct slot {
    unsigned char *p;
    size_t size;   /* asked for */
    size_t usable; /* obm_usable_size when allocated; the pattern covers it all */
    uint64_t seed;
} slot_t;

static slot_t slots[NSLOTS];
static uint64_t serial; /* blocks allocated in this input: a new seed each */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* The loops over block contents carry no coverage feedback (they have
 * nothing to teach the fuzzer) and would otherwise take much of its time;
 * not inlined, since the caller's instrumentation would come along. */
#if defined(__clang__)
#define NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else
#define NO_COVERAGE __attribute__((noinline))
#endif

/* Byte i of the pattern is byte i % 8 (little-endian) of seed + (i & ~7) * K_STEP. */
NO_COVERAGE static void pattern_write(unsigned char *p, size_t n, uint64_t seed)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = seed + i * K_STEP;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] = (unsigned char)((seed + (i & ~(size_t)7) * K_STEP) >> (i & 7) * 8);
}

/* The first offset below n where the pattern differs, or n. */
NO_COVERAGE static size_t pattern_bad(const unsigned char *p, size_t n, uint64_t seed)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != seed + i * K_STEP)
            break;
    }
    for (; i < n; i++)
        if (p[i] != (unsigned char)((seed + (i & ~(size_t)7) * K_STEP) >> (i & 7) * 8))
            return i;
    return n;
}

static void fill(unsigned i)
{
    slot_t *s = &slots[i];
    s->seed = mix((uint64_t)i << 40 ^ ++serial);
    pattern_write(s->p, s->usable, s->seed);
}

/* The whole pattern, and a usable size that has not changed. */
static void verify(unsigned i, const char *before)
{
    slot_t *s = &slots[i];
    size_t bad = pattern_bad(s->p, s->usable, s->seed);
    if (bad != s->usable)
        fail("slot %u: block %p (%zu bytes asked, %zu usable) corrupted at offset %zu before %s", i,
             (void *)s->p, s->size, s->usable, bad, before);
    size_t u = obm_usable_size(s->p);
    if (u != s->usable)
        fail("slot %u: block %p usable size changed from %zu to %zu before %s", i, (void *)s->p,
             s->usable, u, before);
}

/* The first offset below n of a byte that is not 0, or n. */
NO_COVERAGE static size_t nonzero_at(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n && p[i] == 0)
        i++;
    return i;
}

static bool is_pow2(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* Whether a new block of size bytes, aligned to align, must be obm's: up
 * to OBM_MEDIUM_MAX (small and medium classes), aligned to at most 16. */
static int owner_expected(size_t size, size_t align)
{
    return size <= OBM_MEDIUM_MAX && align <= OBM_ALIGNMENT;
}

/* The block size of obm's class for a request of n <= OBM_MEDIUM_MAX
 * bytes: 16-byte classes up to OBM_SMALL_MAX, then four per doubling, the
 * doubling from 2^k (2^k < n <= 2^(k+1)) at 2^k + j 2^(k-2), j = 1..4. */
static size_t class_bytes(size_t n)
{
    if (n <= OBM_SMALL_MAX)
        return n == 0 ? OBM_ALIGNMENT : (n + OBM_ALIGNMENT - 1) & ~(size_t)(OBM_ALIGNMENT - 1);
    unsigned k = 9;
    while (((size_t)2 << k) < n)
        k++;
    size_t step = (size_t)1 << (k - 2);
    return (n + step - 1) / step * step;
}

/* What a realloc that moves a block of `old` usable bytes to hold n bytes
 * asks for (docs/semantics.md): a block that grows gets a quarter
 * more than it had, no more than OBM_MEDIUM_MAX when n is at most that,
 * and no larger a class than requests from n up stay in (a cut of less
 * than a quarter). */
static size_t realloc_request(size_t old, size_t n)
{
    size_t headroom = old + old / 4;
    if (n <= old || headroom <= n)
        return n;
    if (n > OBM_MEDIUM_MAX)
        return headroom;
    if (headroom > OBM_MEDIUM_MAX)
        headroom = OBM_MEDIUM_MAX;
    size_t u = class_bytes(headroom);
    while (u > class_bytes(n) && u - n >= u / 4) {
        size_t below = u - 16; /* the next smaller class */
        while (class_bytes(below) == u)
            below -= 16;
        u = class_bytes(below);
    }
    return u;
}

static void record_as(unsigned i, void *p, size_t size, size_t align, int owned, size_t request,
                      const char *what);

/* p was just returned for size bytes aligned to align: check it and put it
 * in slot i (not yet filled). owned: 1 or 0 when it must be obm's or not,
 * -1 when either is right (a block realloc left where it was). */
static void record(unsigned i, void *p, size_t size, size_t align, int owned, const char *what)
{
    record_as(i, p, size, align, owned, size, what);
}

/* The same for a block that obm gave the class of `request` bytes, not
 * of size (a realloc's headroom). */
static void record_as(unsigned i, void *p, size_t size, size_t align, int owned, size_t request,
                      const char *what)
{
    if (p == NULL)
        fail("%s(%zu bytes, alignment %zu) failed: errno %d", what, size, align, errno);
    if ((uintptr_t)p % align != 0)
        fail("%s(%zu bytes) returned %p, not aligned to %zu", what, size, p, align);
    bool ours = obm_owns(p);
    if (owned >= 0 && ours != (owned != 0))
        fail("%s(%zu bytes, alignment %zu) returned %p, %s obm's", what, size, align, p,
             ours ? "wrongly" : "not");
    size_t u = obm_usable_size(p);
    if (u < size)
        fail("%s(%zu bytes) returned %p with usable size %zu", what, size, p, u);
    if (ours) {
        if ((uintptr_t)p % OBM_ALIGNMENT != 0 || u % OBM_ALIGNMENT != 0 || u > OBM_MEDIUM_MAX)
            fail("%s(%zu bytes): obm block %p, usable size %zu", what, size, p, u);
        size_t cls = class_bytes(request);
        if (owned == 1 && u != cls)
            fail("%s(%zu bytes): obm block %p of %zu bytes, not %zu", what, size, p, u, cls);
    }
    slots[i] = (slot_t){.p = p, .size = size, .usable = u};
}

static void drop(unsigned i)
{
    slot_t *s = &slots[i];
    if (s->p == NULL)
        return;
    verify(i, "free");
    errno = EDOM;
    obm_free(s->p);
    if (errno != EDOM)
        fail("obm_free(%p) changed errno to %d", (void *)s->p, errno);
    *s = (slot_t){0};
}

/* ---- the helper thread: frees and mallocs from a heap of its own ---- */

enum { REQ_NONE, REQ_FREE, REQ_MALLOC, REQ_EXIT, REQ_DONE };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int req;
    void *p;
    size_t size;
    obmi_heap *heap; /* the helper's obmi_tls_heap after its last request */
    pthread_t thread;
} helper = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* The helper's heap is checked from this thread while the helper waits
 * for its next request, touching nothing. */
static void check_heap(const obmi_heap *heap, const char *who)
{
    if (heap != NULL && heap != &obmi_heap_empty && !obmi_heap_check(heap))
        fail("obmi_heap_check failed on the %s thread's heap", who);
}

static void *helper_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&helper.mu);
    for (;;) {
        while (helper.req == REQ_NONE || helper.req == REQ_DONE)
            pthread_cond_wait(&helper.cv, &helper.mu);
        int req = helper.req;
        if (req == REQ_FREE) {
            errno = EDOM;
            obm_free(helper.p);
            if (errno != EDOM)
                fail("obm_free(%p) on the helper thread changed errno", helper.p);
        } else if (req == REQ_MALLOC) {
            helper.p = obm_malloc(helper.size);
        }
        helper.heap = req == REQ_EXIT ? NULL : obmi_tls_heap;
        helper.req = REQ_DONE;
        pthread_cond_broadcast(&helper.cv);
        if (req == REQ_EXIT)
            break;
    }
    pthread_mutex_unlock(&helper.mu);
    return NULL; /* obm abandons this thread's heap; the next helper adopts it */
}

static void helper_start(void)
{
    if (pthread_create(&helper.thread, NULL, helper_main, NULL) != 0)
        fail("pthread_create failed");
}

/* Runs one request on the helper thread while this one waits, so the
 * order of events is the input's. */
static void *helper_call(int req, void *p, size_t size)
{
    pthread_mutex_lock(&helper.mu);
    helper.req = req;
    helper.p = p;
    helper.size = size;
    pthread_cond_broadcast(&helper.cv);
    while (helper.req != REQ_DONE)
        pthread_cond_wait(&helper.cv, &helper.mu);
    p = helper.p;
    helper.req = REQ_NONE;
    pthread_mutex_unlock(&helper.mu);
    return p;
}

static void helper_restart(void)
{
    helper_call(REQ_EXIT, NULL, 0);
    pthread_join(helper.thread, NULL);
    helper_start();
}

/* ---- the walkers ---- */

static void run_checks(void)
{
    check_heap(obmi_tls_heap, "main");
    check_heap(helper.heap, "helper");
    obmi_arenas_lock(&obmi_main_arenas);
    bool ok = obmi_arenas_check(&obmi_main_arenas);
    obmi_arenas_unlock(&obmi_main_arenas);
    if (!ok)
        fail("obmi_arenas_check failed");
}

/* ---- operations ---- */

static void op_malloc(unsigned i, size_t size)
{
    drop(i);
    record(i, obm_malloc(size), size, 1, owner_expected(size, 1), "obm_malloc");
    fill(i);
}

static void op_calloc(unsigned i, unsigned count, size_t size)
{
    drop(i);
    size_t each = count ? size / count : size, n = count * each;
    record(i, obm_calloc(count, each), n, 1, owner_expected(n, 1), "obm_calloc");
    /* obm zeroes its blocks whole; the backing allocator only what was asked */
    slot_t *s = &slots[i];
    size_t zeroed = obm_owns(s->p) ? s->usable : n;
    size_t k = nonzero_at(s->p, zeroed);
    if (k != zeroed)
        fail("obm_calloc(%u, %zu) = %p: byte %zu of %zu is %#x, not 0", count, each, (void *)s->p,
             k, zeroed, s->p[k]);
    fill(i);
}

static void op_realloc(unsigned i, unsigned mode, size_t size)
{
    slot_t old = slots[i];
    if (old.p != NULL)
        verify(i, "realloc");
    unsigned count = mode >= 0xc0 ? mode % 8 + 1 : 0;
    size_t n = count ? count * (size / count) : size;
    errno = 0;
    void *q = count ? obm_reallocarray(old.p, count, size / count) : obm_realloc(old.p, size);
    const char *what = count ? "obm_reallocarray" : "obm_realloc";
    if (old.p != NULL && n == 0) {
        if (q != NULL)
            fail("%s(%p, 0) returned %p, not NULL", what, (void *)old.p, q);
        slots[i] = (slot_t){0};
        return;
    }
    int owned = old.p == NULL || q != old.p ? owner_expected(n, 1) : -1;
    /* A block that moved into obm got the class of realloc_request. */
    record_as(i, q, n, 1, owned, old.p == NULL ? n : realloc_request(old.usable, n), what);
    slot_t *s = &slots[i];
    if (old.p != NULL) {
        if (q == old.p && obm_owns(q) && s->usable != old.usable)
            fail("%s(%p, %zu) in place changed the usable size from %zu to %zu", what, q, n,
                 old.usable, s->usable);
        size_t kept = old.size < n ? old.size : n;
        size_t bad = pattern_bad(s->p, kept, old.seed);
        if (bad != kept)
            fail("%s(%p, %zu) -> %p: byte %zu of the %zu kept differs", what, (void *)old.p, n, q,
                 bad, kept);
    }
    fill(i);
}

static void op_realloc0(unsigned i)
{
    if (slots[i].p == NULL) {
        record(i, obm_realloc(NULL, 0), 0, 1, 1, "obm_realloc(NULL, 0)");
        fill(i);
        return;
    }
    verify(i, "realloc to 0");
    void *q = obm_realloc(slots[i].p, 0);
    if (q != NULL)
        fail("obm_realloc(%p, 0) returned %p, not NULL", (void *)slots[i].p, q);
    slots[i] = (slot_t){0};
}

static size_t next_pow2(size_t a)
{
    return a <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzl(a - 1));
}

static void op_aligned(int op, unsigned i, size_t align, size_t size)
{
    drop(i);
    void *p = NULL;
    size_t eff = align;
    const char *what;
    if (op == OP_MEMALIGN) {
        what = "obm_memalign";
        errno = 0;
        p = obm_memalign(align, size);
        if (align > PTRDIFF_MAX) {
            if (p != NULL || errno != EINVAL)
                fail("obm_memalign(%#zx, %zu) = %p, errno %d: not EINVAL", align, size, p, errno);
            return;
        }
        eff = next_pow2(align);
    } else if (op == OP_POSIX_MEMALIGN) {
        what = "obm_posix_memalign";
        int want = !is_pow2(align) || align % sizeof(void *) ? EINVAL
                   : align > PTRDIFF_MAX                     ? ENOMEM
                                                             : 0;
        void *untouched = &slots[i];
        p = untouched;
        errno = EDOM;
        int rc = obm_posix_memalign(&p, align, size);
        if (rc != want || errno != EDOM)
            fail("obm_posix_memalign(%#zx, %zu) returned %d (errno %d), not %d", align, size, rc,
                 errno, want);
        if (rc != 0) {
            if (p != untouched)
                fail("obm_posix_memalign(%#zx, %zu) failed but wrote *memptr", align, size);
            return;
        }
    } else {
        what = "obm_aligned_alloc";
        errno = 0;
        p = obm_aligned_alloc(align, size);
        if (!is_pow2(align) || align > PTRDIFF_MAX) {
            if (p != NULL || errno != EINVAL)
                fail("obm_aligned_alloc(%#zx, %zu) = %p, errno %d: not EINVAL", align, size, p,
                     errno);
            return;
        }
    }
    record(i, p, size, eff, owner_expected(size, eff), what);
    fill(i);
}

static void expect_enomem(void *p, const char *call)
{
    if (p != NULL || errno != ENOMEM)
        fail("%s = %p, errno %d: not NULL and ENOMEM", call, p, errno);
}

/* Requests that must fail and leave everything as it was. */
static void op_failing(unsigned i, unsigned kind, unsigned b)
{
    size_t huge = b & 1 ? SIZE_MAX - b : (size_t)PTRDIFF_MAX + 1 + b;
    slot_t *s = &slots[i];
    errno = 0;
    switch (kind % 8) {
    case 0:
        expect_enomem(obm_malloc(huge), "obm_malloc(huge)");
        break;
    case 1:
        expect_enomem(obm_calloc(2 + b, SIZE_MAX / 2), "obm_calloc(too large)");
        errno = 0;
        expect_enomem(obm_calloc(1, huge), "obm_calloc(1, huge)");
        break;
    case 2:
    case 3:
        if (s->p != NULL)
            verify(i, "a failing realloc");
        if (kind % 8 == 2)
            expect_enomem(obm_realloc(s->p, huge), "obm_realloc(p, huge)");
        else
            expect_enomem(obm_reallocarray(s->p, 2 + b, SIZE_MAX / 2),
                          "obm_reallocarray(p, too large)");
        if (s->p != NULL)
            verify(i, "the next use after a failed realloc");
        break;
    case 4:
        expect_enomem(obm_aligned_alloc((size_t)8 << b % 10, huge), "obm_aligned_alloc(a, huge)");
        break;
    case 5: {
        void *untouched = s, *p = untouched;
        errno = EDOM;
        int rc = obm_posix_memalign(&p, (size_t)8 << b % 10, huge);
        if (rc != ENOMEM || errno != EDOM || p != untouched)
            fail("obm_posix_memalign(a, huge) returned %d, errno %d, *memptr %s", rc, errno,
                 p == untouched ? "untouched" : "written");
        break;
    }
    case 6:
        expect_enomem(obm_memalign((size_t)1 << b % 13, huge), "obm_memalign(a, huge)");
        break;
    default:
        errno = EDOM;
        obm_free(NULL);
        if (errno != EDOM || obm_usable_size(NULL) != 0 || obm_owns(NULL))
            fail("obm_free(NULL), obm_usable_size(NULL) or obm_owns(NULL) misbehaved");
        break;
    }
}

static bool options_changed;

static void set_option(const char *name, const char *value)
{
    int rc = obm_option_set(name, value);
    if (rc != 0)
        fail("obm_option_set(%s, %s) returned %d", name, value, rc);
}

static void op_trim_options(unsigned b)
{
    static const char *const delay[4] = {"-1", "0", "1", "100"};
    static const char *const keep[4] = {"0", "1", "2", "3"};
    switch (b % 4) {
    case 0: {
        int r = obm_trim();
        if (r != 0 && r != 1)
            fail("obm_trim returned %d", r);
        break;
    }
    case 1:
    case 2:
        set_option("OBM_PURGE_DELAY_MS", delay[b >> 2 & 3]);
        set_option("OBM_ARENA_KEEP", keep[b >> 4 & 3]);
        set_option("OBM_PURGE_ADVICE", b & 0x40 ? "free" : "dontneed");
        if (obm_option_set("OBM_PURGE_DELAY_MS", "soon") != EINVAL)
            fail("obm_option_set accepted a bad value");
        options_changed = true;
        break;
    default:
        helper_restart();
        break;
    }
}

static void run_op(input_t *in)
{
    unsigned op = next8(in) % OP_COUNT;
    switch (op) {
    case OP_MALLOC: {
        unsigned i = next8(in);
        op_malloc(i, next_size(in));
        break;
    }
    case OP_CALLOC: {
        unsigned i = next8(in), c = next8(in) % 9;
        op_calloc(i, c, next_size(in));
        break;
    }
    case OP_REALLOC: {
        unsigned i = next8(in), m = next8(in);
        op_realloc(i, m, next_size(in));
        break;
    }
    case OP_REALLOC0:
        op_realloc0(next8(in));
        break;
    case OP_FREE:
        drop(next8(in));
        break;
    case OP_MEMALIGN:
    case OP_POSIX_MEMALIGN:
    case OP_ALIGNED_ALLOC: {
        unsigned i = next8(in);
        size_t align = next_align(in);
        op_aligned((int)op, i, align, next_size(in));
        break;
    }
    case OP_USABLE: {
        unsigned i = next8(in);
        if (slots[i].p != NULL)
            verify(i, "nothing");
        break;
    }
    case OP_FAILING: {
        unsigned i = next8(in), k = next8(in);
        op_failing(i, k, next8(in));
        break;
    }
    case OP_BURST: {
        unsigned start = next16(in) % NSLOTS, n = next8(in) + 1;
        size_t size = next_size(in);
        if (size > 4096 && n > 16)
            n = 16; /* a few large blocks are enough; many only cost time */
        for (unsigned k = 0; k < n; k++)
            op_malloc((start + k) % NSLOTS, size);
        break;
    }
    case OP_FREE_RANGE: {
        unsigned start = next16(in) % NSLOTS, n = next8(in) + 1, stride = next8(in) % 8 + 1;
        for (unsigned k = 0; k < n; k++)
            drop((start + k * stride) % NSLOTS);
        break;
    }
    case OP_REMOTE_FREE: {
        unsigned i = next8(in);
        if (slots[i].p != NULL) {
            verify(i, "a free by another thread");
            helper_call(REQ_FREE, slots[i].p, 0);
            slots[i] = (slot_t){0};
        }
        break;
    }
    case OP_REMOTE_MALLOC: {
        unsigned i = next8(in);
        size_t size = next_size(in);
        drop(i);
        record(i, helper_call(REQ_MALLOC, NULL, size), size, 1, owner_expected(size, 1),
               "obm_malloc on the helper thread");
        fill(i);
        break;
    }
    case OP_TRIM_OPTIONS:
        op_trim_options(next8(in));
        break;
    default:
        run_checks();
        break;
    }
}

/* The statistics, whose five byte fields must add up to the mapped bytes. */
static void stats_get(obm_stats_t *s)
{
    *s = (obm_stats_t){.size = sizeof *s};
    if (obm_stats_get(s) != 0)
        fail("obm_stats_get failed");
    if (s->bytes_in_use + s->bytes_free_blocks + s->bytes_empty_pools + s->bytes_pool_headers +
            s->bytes_quantization !=
        s->bytes_mapped)
        fail("the statistics' byte ledger does not add up to bytes_mapped (%zu)", s->bytes_mapped);
}

NO_COVERAGE static void free_all(void)
{
    for (unsigned i = 0; i < NSLOTS; i++)
        if (slots[i].p != NULL)
            drop(i);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    helper_start();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input_t in = {.data = data, .size = size};
    obm_stats_t before, after;
    stats_get(&before);
    serial = 0;
    for (unsigned n = 1; in.pos < in.size; n++) {
        run_op(&in);
        if (n % CHECK_EVERY == 0)
            run_checks();
    }
    free_all();
    if (options_changed) {
        set_option("OBM_PURGE_DELAY_MS", "100");
        set_option("OBM_ARENA_KEEP", "1");
        set_option("OBM_PURGE_ADVICE", "dontneed");
        options_changed = false;
    }
    run_checks();
    /* Nothing else tracks obm's blocks (to ASan's leak check they are
     * arena bytes): with every slot freed, what obm counts in use must be
     * what it counted before the input. */
    stats_get(&after);
    if (after.bytes_in_use != before.bytes_in_use ||
        after.large_allocs_current != before.large_allocs_current)
        fail("every block freed, yet obm counts %zu bytes and %zu large blocks in use (%zu and %zu "
             "before the input)",
             after.bytes_in_use, after.large_allocs_current, before.bytes_in_use,
             before.large_allocs_current);
    return 0;
}
