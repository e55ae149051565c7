/* Purge (src/purge.c): free pools' pages go back to the OS, on the decay
 * (OBM_PURGE_DELAY_MS) or at once through obm_trim (malloc_trim in the
 * drop-in), and the program never sees the difference.
 *
 * Cases that measure nothing about residency (PURGE_BEHAVIOUR):
 *
 *   trim_return          obm_trim returns 0 with nothing to give back
 *                        (twice in a row, after mallocs only, after a free
 *                        that empties no pool) and 1 after frees that
 *                        emptied pools; the emptied pools are then PURGED
 *                        in obm_visit.
 *   trim_then_reuse      every other one of 48 pools of 512-byte blocks
 *                        is emptied and obm_trim leaves each PURGED (none
 *                        EMPTY or cached anywhere); calloc of 48 bytes then
 *                        takes some of the same pools again (address &
 *                        ~4095), serving class 2: every block reads zero,
 *                        and patterns written into every block, and the
 *                        512-byte blocks kept, read back exact.
 *   malloc_trim          (drop-in only) malloc_trim is the drop-in's, and
 *                        after frees that emptied pools it returns 1 and
 *                        leaves them PURGED, none dirty or cached.
 *   delay_zero           OBM_PURGE_DELAY_MS=0: every other one of 48 pools
 *                        of 512-byte blocks is emptied, inside arenas whose
 *                        other pools stay in use; with no obm_trim, each of
 *                        those pools is PURGED (non-resident, mincore) or
 *                        kept in the thread's cache (at most 8), no pool
 *                        anywhere is EMPTY (dirty), and the statistics
 *                        count them (pools_purged, pools_purged_total,
 *                        purges_total).
 *   delay_never          OBM_PURGE_DELAY_MS=-1: the same pools stay EMPTY
 *                        (or cached), pools_purged_total and purges_total
 *                        stay 0 through two sleeps of 150 ms each followed
 *                        by mallocs and frees that take and return pools;
 *                        obm_trim on a new thread returns 1 and purges
 *                        every EMPTY pool but leaves the main thread's
 *                        cached pools alone; the main thread's obm_trim
 *                        returns 1 and purges those too.
 *   delay_fifty          OBM_PURGE_DELAY_MS=50: right after the frees (a
 *                        phase shorter than 30 ms, or it is run again) none
 *                        of the pools is purged; after 120 ms of sleep, the
 *                        first mallocs that take pools from the arenas
 *                        purge every EMPTY pool (every pool freed then has
 *                        been free for more than a whole delay).
 *   delay_default        no OBM_PURGE_DELAY_MS: the same, against the
 *                        default of 100 ms: nothing purged right after
 *                        the frees nor at the slow paths 80 ms after the
 *                        first, every pool still EMPTY purged by those
 *                        125 ms after the last (a phase that misses its
 *                        time is run again).
 *   arena_keep           OBM_ARENA_KEEP unset, 0 and 3: after six arenas'
 *                        worth of 512-byte blocks are freed, exactly 1, 0
 *                        and 3 arenas are SPARE (obm_visit), and the
 *                        other emptied arenas but one are unmapped.
 *   reuse_after_purge    OBM_PURGE_DELAY_MS=0, and once more with
 *                        OBM_PURGE_ADVICE=free (MADV_FREE: the page may
 *                        keep its old bytes): 12 rounds, each freeing 24
 *                        pools' worth of one class (purged at once) and
 *                        allocating 24 pools' worth of another, malloc and
 *                        calloc in turn, which takes purged pools again;
 *                        calloc'ed blocks read zero, every block's pattern
 *                        reads back exact, and 40 pools of anchor blocks
 *                        live throughout are intact.
 *
 * The delay cases need the option in the environment when the library is
 * initialised, so each runs in a fresh process: this program again,
 * started with --child MODE FD and no OBM_ option but the case's own,
 * which reports through the pipe FD and exits 0 (passed), 1 (failed: its
 * last line says why) or 2 (too slow to judge: the case runs it again).
 *
 * The case that measures residency (PURGE_RESIDENCY):
 *
 *   purged_not_resident  in a forked child (nothing else allocates), 64 MiB
 *                        of blocks of 1..512 bytes, each filled with a
 *                        pattern of its address and index; all but every
 *                        97th are freed (their contents checked first) and
 *                        obm_trim returns 1. Then: obm_visit reports no
 *                        EMPTY or cached pool; every PURGED pool is not
 *                        resident and every pool serving a class is
 *                        (mincore); every survivor is in a pool serving a
 *                        class, resident, and exact; the survivors are
 *                        exactly the blocks in use (at least, in the
 *                        drop-in, which also serves what the process
 *                        allocated before); pools_purged,
 *                        bytes_purged, bytes_resident and pools_in_use
 *                        agree with the records; anonymous RSS (resident
 *                        less file-backed pages) fell by at least 99 % of
 *                        the pages of the pools that stopped serving.
 *                        Not for valgrind or ASan, which change RSS.
 *
 * purge_obm holds the first group (so it runs under valgrind and the
 * sanitizers too), purge_rss_obm the second; purge_plain, run only with the
 * drop-in preloaded (purge_preload.sh), holds both. Built as the other API
 * tests; see api.h. */
#include "api.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#define PURGE_BEHAVIOUR 1
#define PURGE_RESIDENCY 2
#ifndef PURGE_CASES
#define PURGE_CASES (PURGE_BEHAVIOUR | PURGE_RESIDENCY)
#endif

#define POOL_MASK (~(uintptr_t)(OBM_POOL_SIZE - 1))
#define STR(x)    STR_(x)
#define STR_(x)   #x

/* ---- the obm_* calls the plain program reaches through the drop-in ---- */

#ifdef OBM_API_PRELOAD
/* Not linked to obm: obm_trim, obm_stats_get and obm_visit come from the
 * drop-in, resolved by main before anything else. */
static int (*trim_fn)(void);
static int (*stats_get_fn)(obm_stats_t *);
static int (*visit_fn)(obm_visit_fn, void *);
static int (*option_set_fn)(const char *, const char *);
#define T_TRIM()           trim_fn()
#define T_OPTION_SET(n, v) option_set_fn(n, v)
#define T_STATS(s)         stats_get_fn(s)
#define T_VISIT(fn, a)     visit_fn(fn, a)

static bool resolve_obm_calls(void)
{
    trim_fn = (int (*)(void))dlsym(RTLD_DEFAULT, "obm_trim");
    stats_get_fn = (int (*)(obm_stats_t *))dlsym(RTLD_DEFAULT, "obm_stats_get");
    visit_fn = (int (*)(obm_visit_fn, void *))dlsym(RTLD_DEFAULT, "obm_visit");
    option_set_fn = (int (*)(const char *, const char *))dlsym(RTLD_DEFAULT, "obm_option_set");
    return trim_fn != NULL && stats_get_fn != NULL && visit_fn != NULL && option_set_fn != NULL;
}
#else
#define T_TRIM()           obm_trim()
#define T_OPTION_SET(n, v) obm_option_set(n, v)
#define T_STATS(s)         obm_stats_get(s)
#define T_VISIT(fn, a)     obm_visit(fn, a)

static bool resolve_obm_calls(void)
{
    return true;
}
#endif

/* ---- failures without cmocka ----
 *
 * The checks run in forked and exec'd children too, where cmocka's asserts
 * cannot report: a check that fails formats its reason into `why` and
 * returns false; the caller reports it (fail_msg in a case). */
static char why[1024];

#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(why, sizeof why, __VA_ARGS__);                                                \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

/* A cmocka case that runs name(), a bool function of the REQUIREs above. */
#define CASE(name)                                                                                 \
    static void test_##name(void **state)                                                          \
    {                                                                                              \
        (void)state;                                                                               \
        if (!name())                                                                               \
            fail_msg("%s", why);                                                                   \
    }

static obm_stats_t stats_now(void)
{
    obm_stats_t s = {.size = sizeof s};
    if (T_STATS(&s) != 0)
        s.version = 0; /* caught by the callers' version check */
    return s;
}

/* ---- block contents ---- */

/* Word w of a block at p made with serial number s: tied to both, so a
 * block moved, overlapped or handed out twice reads wrong. */
static uint64_t fill_word(uintptr_t p, uint64_t s, size_t w)
{
    uint64_t x = ((uint64_t)p ^ (s << 40) ^ (s >> 24)) * 0x9e3779b97f4a7c15ull + w;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    return x ^ (x >> 29);
}

/* Fill the n bytes (a multiple of 8) of the block at p. */
static void block_fill(void *p, size_t n, uint64_t s)
{
    uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++)
        w[i] = fill_word((uintptr_t)p, s, i);
}

/* The index of the first word of p's n bytes that is not its pattern, or
 * n / 8. */
static size_t block_check(const void *p, size_t n, uint64_t s)
{
    const uint64_t *w = p;
    for (size_t i = 0; i < n / 8; i++)
        if (w[i] != fill_word((uintptr_t)p, s, i))
            return i;
    return n / 8;
}

/* ---- obm_visit into a static table (no allocation) ---- */

#define MAX_ARENAS 1024
#define RECS       (OBM_ARENA_SIZE / OBM_POOL_SIZE + 1) /* an arena, then its pools */

struct rec {
    uintptr_t address;
    int kind, state, size_class;
    size_t used;
};

static struct {
    struct rec r[MAX_ARENAS * RECS];
    size_t n, arenas;
    size_t count[OBM_POOL_PURGED + 1]; /* pools by state */
    bool overflow;
} snap;

static int collect(const obm_region_t *r, void *arg)
{
    (void)arg;
    if (snap.n == sizeof snap.r / sizeof snap.r[0]) {
        snap.overflow = true;
        return 1;
    }
    snap.r[snap.n++] =
        (struct rec){(uintptr_t)r->address, r->kind, r->state, r->size_class, r->used};
    if (r->kind == OBM_REGION_ARENA)
        snap.arenas++;
    else if (r->state >= 0 && r->state <= OBM_POOL_PURGED)
        snap.count[r->state]++;
    return 0;
}

/* A snapshot of every arena and pool, in snap. */
static bool snapshot(void)
{
    snap.n = snap.arenas = 0;
    memset(snap.count, 0, sizeof snap.count);
    snap.overflow = false;
    int rc = T_VISIT(collect, NULL);
    REQUIRE(rc == 0 && !snap.overflow, "obm_visit returned %d%s", rc,
            snap.overflow ? " (more than " STR(MAX_ARENAS) " arenas)" : "");
    REQUIRE(snap.n == snap.arenas * RECS, "obm_visit: %zu records for %zu arenas", snap.n,
            snap.arenas);
    for (size_t a = 0; a < snap.n; a += RECS)
        REQUIRE(snap.r[a].kind == OBM_REGION_ARENA, "obm_visit: record %zu is not an arena", a);
    return true;
}

/* The record of the arena holding p in the snapshot, or NULL when that
 * arena is not mapped. */
static const struct rec *arena_rec(uintptr_t p)
{
    uintptr_t base = p & ~(uintptr_t)(OBM_ARENA_SIZE - 1);
    for (size_t a = 0; a < snap.n; a += RECS)
        if (snap.r[a].address == base)
            return &snap.r[a];
    return NULL;
}

/* The record of the pool holding p, or NULL when its arena is not mapped. */
static const struct rec *pool_rec(uintptr_t p)
{
    const struct rec *a = arena_rec(p);
    return a == NULL ? NULL : a + 1 + ((p - a->address) / OBM_POOL_SIZE);
}

/* The state of p's pool in the snapshot, 0 when its arena is not mapped. */
static int pool_state(uintptr_t p)
{
    const struct rec *r = pool_rec(p);
    return r == NULL ? 0 : r->state;
}

static bool serving(int state)
{
    return state == OBM_POOL_USED || state == OBM_POOL_FULL;
}

static const char *state_name(int state)
{
    switch (state) {
    case 0:
        return "unmapped";
    case OBM_POOL_USED:
        return "USED";
    case OBM_POOL_FULL:
        return "FULL";
    case OBM_POOL_EMPTY:
        return "EMPTY";
    case OBM_POOL_CACHED:
        return "CACHED";
    case OBM_POOL_UNTOUCHED:
        return "UNTOUCHED";
    case OBM_POOL_PURGED:
        return "PURGED";
    default:
        return "?";
    }
}

/* 1 when the page at p is resident, 0 when not, -1 when mincore fails. */
static int resident(uintptr_t p)
{
    unsigned char v = 0;
    if (mincore((void *)(p & POOL_MASK), OBM_POOL_SIZE, &v) != 0)
        return -1;
    return v & 1;
}

/* The statistics agree with the snapshot taken right after them (nothing
 * allocated in between). */
static bool stats_match_snapshot(const obm_stats_t *s)
{
    REQUIRE(s->version == OBM_STATS_VERSION, "obm_stats_get failed or has version %zu", s->version);
    size_t purged = snap.count[OBM_POOL_PURGED], untouched = snap.count[OBM_POOL_UNTOUCHED];
    REQUIRE(s->pools_purged == purged && s->bytes_purged == purged * OBM_POOL_SIZE,
            "pools_purged %zu, bytes_purged %zu; obm_visit has %zu PURGED pools", s->pools_purged,
            s->bytes_purged, purged);
    REQUIRE(s->arenas_current == snap.arenas, "arenas_current %zu; obm_visit has %zu arenas",
            s->arenas_current, snap.arenas);
    REQUIRE(s->bytes_resident == s->bytes_mapped - (purged + untouched) * OBM_POOL_SIZE,
            "bytes_resident %zu; bytes_mapped %zu less %zu PURGED and %zu UNTOUCHED pools is %zu",
            s->bytes_resident, s->bytes_mapped, purged, untouched,
            s->bytes_mapped - (purged + untouched) * OBM_POOL_SIZE);
    REQUIRE(s->pools_in_use == snap.count[OBM_POOL_USED] + snap.count[OBM_POOL_FULL],
            "pools_in_use %zu; obm_visit has %zu USED and %zu FULL", s->pools_in_use,
            snap.count[OBM_POOL_USED], snap.count[OBM_POOL_FULL]);
    REQUIRE(s->pools_purged_total >= s->pools_purged,
            "pools_purged_total %zu below pools_purged %zu", s->pools_purged_total,
            s->pools_purged);
    return true;
}

#if PURGE_CASES & PURGE_BEHAVIOUR

/* ---- pools of blocks ---- */

/* A set of blocks of one class, and the pools wholly theirs. */
#define SET_MAX   (24 * 252 + 512)
#define POOLS_MAX 512

struct blockset {
    size_t size; /* the class size */
    size_t n;
    void *p[SET_MAX];
    uint64_t serial[SET_MAX];
    size_t npools;             /* distinct pools, in order of first block */
    uintptr_t pool[POOLS_MAX]; /* pool addresses */
    size_t in_pool[POOLS_MAX]; /* of the set's blocks */
};

static uint64_t next_serial = 1;

/* Blocks per pool of a class size. */
static size_t per_pool(size_t size)
{
    return (OBM_POOL_SIZE - 64) / size;
}

static size_t pool_index(const struct blockset *b, uintptr_t pool)
{
    for (size_t k = 0; k < b->npools; k++)
        if (b->pool[k] == pool)
            return k;
    return b->npools;
}

/* Allocate n blocks of `size` (a class size) into b, zeroed by calloc
 * when asked (checked), and fill them. */
static bool set_alloc(struct blockset *b, size_t size, size_t n, bool zeroed)
{
    REQUIRE(n <= SET_MAX, "set of %zu blocks: at most %d", n, SET_MAX);
    b->size = size;
    b->n = b->npools = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = zeroed ? T_CALLOC(1, OPQ(size)) : T_MALLOC(OPQ(size));
        REQUIRE(p != NULL && T_OWNS(p), "%s(%zu) gave %p, not an obm block",
                zeroed ? "calloc" : "malloc", size, (void *)p);
        if (zeroed)
            for (size_t j = 0; j < size; j++)
                REQUIRE(p[j] == 0, "calloc(1, %zu) = %p: byte %zu is 0x%02x, not zero", size,
                        (void *)p, j, p[j]);
        b->p[b->n] = p;
        b->serial[b->n] = next_serial++;
        block_fill(p, size, b->serial[b->n]);
        b->n++;
        uintptr_t pool = (uintptr_t)p & POOL_MASK;
        size_t k = pool_index(b, pool);
        if (k == b->npools) {
            REQUIRE(k < POOLS_MAX, "more than %d pools in a set", POOLS_MAX);
            b->pool[b->npools] = pool;
            b->in_pool[b->npools++] = 0;
        }
        b->in_pool[k]++;
    }
    return true;
}

static bool block_ok(const struct blockset *b, size_t i, const char *when)
{
    size_t bad = block_check(b->p[i], b->size, b->serial[i]);
    REQUIRE(bad == b->size / 8, "%s: block %p of %zu bytes, word %zu is not its pattern", when,
            b->p[i], b->size, bad);
    return true;
}

static bool set_check(const struct blockset *b, const char *when)
{
    for (size_t i = 0; i < b->n; i++)
        if (!block_ok(b, i, when))
            return false;
    return true;
}

/* Check and free the blocks of b in pools for which pick(k) is true (k:
 * the pool's index in b), or every block when pick is NULL. */
static bool set_free(struct blockset *b, bool (*pick)(const struct blockset *, size_t))
{
    size_t kept = 0;
    for (size_t i = 0; i < b->n; i++) {
        size_t k = pool_index(b, (uintptr_t)b->p[i] & POOL_MASK);
        if (pick != NULL && !pick(b, k)) {
            b->p[kept] = b->p[i];
            b->serial[kept++] = b->serial[i];
            continue;
        }
        if (!block_ok(b, i, "before its free"))
            return false;
        T_FREE(b->p[i]);
    }
    b->n = kept;
    return true;
}

/* The pools wholly the set's: every block of the pool is one of its. */
static bool whole_pool(const struct blockset *b, size_t k)
{
    return b->in_pool[k] == per_pool(b->size);
}

/* ---- in-process cases ---- */

static struct blockset set_a, set_b;

/* 48 pools' worth of 512-byte blocks (7 to a pool), and one block more so
 * that a pool with free blocks stays on the class's ring: a pool emptied
 * while it is the only one there would stay in service (retired, heap.c).
 * The whole pools at odd indexes (24) are then emptied, each between two
 * that stay in use. */
#define W_POOLS 48

static uintptr_t w_freed[POOLS_MAX];
static size_t w_nfreed;

static bool odd_whole_pool(const struct blockset *b, size_t k)
{
    return k % 2 == 1 && k < W_POOLS && whole_pool(b, k);
}

static bool workload(void)
{
    if (!set_alloc(&set_a, 512, W_POOLS * 7 + 1, false))
        return false;
    w_nfreed = 0;
    for (size_t k = 1; k < W_POOLS && k < set_a.npools; k += 2)
        if (whole_pool(&set_a, k))
            w_freed[w_nfreed++] = set_a.pool[k];
    REQUIRE(w_nfreed >= W_POOLS / 2 - 1, "only %zu whole pools at odd indexes of %zu", w_nfreed,
            set_a.npools);
    return set_free(&set_a, odd_whole_pool);
}

static bool trim_return(void)
{
    T_TRIM(); /* start from nothing to give back */
    int rc = T_TRIM();
    REQUIRE(rc == 0, "obm_trim right after obm_trim returned %d, not 0", rc);

    /* 20 pools of 512-byte blocks: mallocs only give nothing back. */
    if (!set_alloc(&set_a, 512, 20 * 7, false))
        return false;
    rc = T_TRIM();
    REQUIRE(rc == 0, "obm_trim after mallocs only returned %d, not 0", rc);

    /* One block out of a pool that keeps others: no pool is emptied. */
    size_t one = 0;
    while (one < set_a.n &&
           !whole_pool(&set_a, pool_index(&set_a, (uintptr_t)set_a.p[one] & POOL_MASK)))
        one++;
    REQUIRE(one < set_a.n, "no pool holds only the test's blocks");
    if (!block_ok(&set_a, one, "before its free"))
        return false;
    T_FREE(set_a.p[one]);
    set_a.p[one] = set_a.p[--set_a.n];
    set_a.serial[one] = set_a.serial[set_a.n];
    rc = T_TRIM();
    REQUIRE(rc == 0, "obm_trim after a free that emptied no pool returned %d, not 0", rc);

    /* Empty the whole pools at odd indexes: 1, then 0. */
    uintptr_t emptied[POOLS_MAX];
    size_t nemptied = 0;
    for (size_t k = 1; k < set_a.npools; k += 2)
        if (whole_pool(&set_a, k))
            emptied[nemptied++] = set_a.pool[k];
    REQUIRE(nemptied >= 8, "only %zu whole pools at odd indexes of %zu", nemptied, set_a.npools);
    for (size_t i = 0; i < set_a.n;) {
        uintptr_t pool = (uintptr_t)set_a.p[i] & POOL_MASK;
        bool go = false;
        for (size_t e = 0; e < nemptied; e++)
            go |= emptied[e] == pool;
        if (!go) {
            i++;
            continue;
        }
        if (!block_ok(&set_a, i, "before its free"))
            return false;
        T_FREE(set_a.p[i]);
        set_a.p[i] = set_a.p[--set_a.n];
        set_a.serial[i] = set_a.serial[set_a.n];
    }
    rc = T_TRIM();
    REQUIRE(rc == 1, "obm_trim after emptying %zu pools returned %d, not 1", nemptied, rc);
    obm_stats_t s = stats_now();
    if (!snapshot() || !stats_match_snapshot(&s))
        return false;
    size_t purged = 0;
    for (size_t e = 0; e < nemptied; e++) {
        int st = pool_state(emptied[e]);
        REQUIRE(st == OBM_POOL_PURGED || st == 0, "emptied pool %p is %s after obm_trim",
                (void *)emptied[e], state_name(st));
        purged += st == OBM_POOL_PURGED;
    }
    REQUIRE(purged > 0, "none of the %zu emptied pools is PURGED after obm_trim", nemptied);
    REQUIRE(snap.count[OBM_POOL_EMPTY] == 0 && snap.count[OBM_POOL_CACHED] == 0,
            "after obm_trim: %zu EMPTY and %zu CACHED pools", snap.count[OBM_POOL_EMPTY],
            snap.count[OBM_POOL_CACHED]);
    rc = T_TRIM();
    REQUIRE(rc == 0, "obm_trim right after obm_trim returned %d, not 0", rc);

    /* The rest: the last pool of the class retires on its ring, and
     * obm_trim gives it back too. */
    if (!set_check(&set_a, "after obm_trim") || !set_free(&set_a, NULL))
        return false;
    rc = T_TRIM();
    REQUIRE(rc == 1, "obm_trim after freeing every block returned %d, not 1", rc);
    rc = T_TRIM();
    REQUIRE(rc == 0, "obm_trim right after obm_trim returned %d, not 0", rc);
    printf("# obm_trim: 0, 0 (mallocs only), 0 (a free), 1 (%zu pools emptied, %zu of them "
           "PURGED), 0, 1 (all freed), 0\n",
           nemptied, purged);
    return true;
}

CASE(trim_return)

/* Pools emptied by the first set that the second took again: how many of
 * the pools in was[] (count n) hold blocks of b. */
static size_t reused(const uintptr_t *was, size_t n, const struct blockset *b)
{
    size_t r = 0;
    for (size_t e = 0; e < n; e++)
        r += pool_index(b, was[e]) < b->npools;
    return r;
}

static bool trim_then_reuse(void)
{
    if (!workload())
        return false;
    int rc = T_TRIM();
    REQUIRE(rc == 1, "obm_trim after emptying %zu pools returned %d, not 1", w_nfreed, rc);
    if (!snapshot())
        return false;
    uintptr_t *purged = w_freed;
    size_t npurged = w_nfreed;
    for (size_t e = 0; e < w_nfreed; e++) {
        int st = pool_state(w_freed[e]);
        REQUIRE(st == OBM_POOL_PURGED, "emptied pool %p is %s after obm_trim", (void *)w_freed[e],
                state_name(st));
    }
    REQUIRE(snap.count[OBM_POOL_EMPTY] == 0 && snap.count[OBM_POOL_CACHED] == 0,
            "after obm_trim: %zu EMPTY and %zu CACHED pools", snap.count[OBM_POOL_EMPTY],
            snap.count[OBM_POOL_CACHED]);

    /* 48-byte blocks, calloc'ed: set_alloc checks each reads zero. */
    if (!set_alloc(&set_b, 48, 24 * per_pool(48), true) || !set_check(&set_b, "once all filled"))
        return false;
    size_t again = reused(purged, npurged, &set_b);
    REQUIRE(again > 0, "calloc took none of the %zu PURGED pools again", npurged);
    if (!snapshot())
        return false;
    for (size_t e = 0; e < npurged; e++) {
        if (pool_index(&set_b, purged[e]) == set_b.npools)
            continue;
        const struct rec *r = pool_rec(purged[e]);
        REQUIRE(r != NULL && serving(r->state) && r->size_class == 2,
                "pool %p, taken again by calloc(1, 48), is %s of class %d", (void *)purged[e],
                r == NULL ? "unmapped" : state_name(r->state), r == NULL ? -1 : r->size_class);
    }
    if (!set_check(&set_a, "after obm_trim") || !set_free(&set_b, NULL) || !set_free(&set_a, NULL))
        return false;
    T_TRIM();
    printf("# %zu pools of 512-byte blocks PURGED by obm_trim; calloc(1, 48) took %zu of them "
           "again, zeroed\n",
           npurged, again);
    return true;
}

CASE(trim_then_reuse)

#ifdef OBM_API_PRELOAD
static bool malloc_trim_purges(void)
{
    /* The odd whole pools emptied between pools in use (workload), so
     * their arenas stay mapped and malloc_trim has pages to purge. */
    if (!workload())
        return false;
    int rc = malloc_trim(0);
    REQUIRE(rc == 1, "malloc_trim(0) after emptying %zu pools returned %d, not 1", w_nfreed, rc);
    obm_stats_t s = stats_now();
    if (!snapshot() || !stats_match_snapshot(&s))
        return false;
    size_t purged = 0;
    for (size_t k = 0; k < w_nfreed; k++) {
        int st = pool_state(w_freed[k]);
        REQUIRE(st == OBM_POOL_PURGED, "emptied pool %p is %s after malloc_trim",
                (void *)w_freed[k], state_name(st));
        purged++;
    }
    REQUIRE(snap.count[OBM_POOL_EMPTY] == 0 && snap.count[OBM_POOL_CACHED] == 0,
            "after malloc_trim: %zu EMPTY and %zu CACHED pools", snap.count[OBM_POOL_EMPTY],
            snap.count[OBM_POOL_CACHED]);
    if (!set_free(&set_a, NULL))
        return false;
    printf("# malloc_trim(0): 1, all %zu emptied pools PURGED\n", purged);
    return true;
}

static void test_malloc_trim(void **state)
{
    (void)state;
    dropin_symbol("malloc_trim");
    if (!malloc_trim_purges())
        fail_msg("%s", why);
}
#endif

/* ---- the children: a fresh process with the options in its environment ---- */

static char self[PATH_MAX];
static int report_fd = -1;

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (len < 0)
        return;
    if ((size_t)len > sizeof line - 2)
        len = (int)sizeof line - 2;
    line[len++] = '\n';
    ssize_t rc = write(report_fd, line, (size_t)len);
    (void)rc;
}

/* How many of the emptied pools are in each state. */
static void freed_states(size_t count[OBM_POOL_PURGED + 1])
{
    memset(count, 0, (OBM_POOL_PURGED + 1) * sizeof count[0]);
    for (size_t e = 0; e < w_nfreed; e++)
        count[pool_state(w_freed[e])]++;
}

/* Take and give back pools: 48-byte blocks enough for `pools` pools more
 * than the heap caches, then free them. With check, between the two:
 * nothing dirty is left (the decay ran when the arenas gave pools). */
static bool take_and_return(size_t cached, bool check)
{
    if (!set_alloc(&set_b, 48, (cached + 3) * per_pool(48), false))
        return false;
    if (check) {
        obm_stats_t s = stats_now();
        if (!snapshot() || !stats_match_snapshot(&s))
            return false;
        REQUIRE(snap.count[OBM_POOL_EMPTY] == 0,
                "%zu pools still EMPTY after the arenas gave %zu pools, more than a whole "
                "delay after the last pool went free",
                snap.count[OBM_POOL_EMPTY], set_b.npools);
        for (size_t e = 0; e < w_nfreed; e++) {
            int st = pool_state(w_freed[e]);
            REQUIRE(st == OBM_POOL_PURGED || pool_index(&set_b, w_freed[e]) < set_b.npools,
                    "emptied pool %p is %s, neither PURGED nor taken again", (void *)w_freed[e],
                    state_name(st));
        }
    }
    return set_check(&set_b, "before its free") && set_free(&set_b, NULL);
}

static unsigned long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long)ts.tv_sec * 1000 + (unsigned long)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* OBM_PURGE_DELAY_MS=0 */
static bool child_delay_zero(void)
{
    obm_stats_t before = stats_now();
    if (!workload())
        return false;
    obm_stats_t s = stats_now();
    if (!snapshot() || !stats_match_snapshot(&s))
        return false;
    size_t count[OBM_POOL_PURGED + 1];
    freed_states(count);
    for (size_t e = 0; e < w_nfreed; e++) {
        uintptr_t p = w_freed[e];
        int st = pool_state(p);
        REQUIRE(st == OBM_POOL_PURGED || st == OBM_POOL_CACHED,
                "emptied pool %p is %s, not PURGED (or kept in the heap's cache)", (void *)p,
                state_name(st));
        if (st != OBM_POOL_PURGED)
            continue;
        const struct rec *a = arena_rec(p);
        REQUIRE(a->state == OBM_ARENA_USED, "the arena of PURGED pool %p serves no class",
                (void *)p);
        REQUIRE(resident(p) == 0, "PURGED pool %p is resident (mincore)", (void *)p);
    }
    REQUIRE(count[OBM_POOL_CACHED] <= 8, "%zu emptied pools CACHED: the heap keeps at most 8",
            count[OBM_POOL_CACHED]);
    REQUIRE(snap.count[OBM_POOL_EMPTY] == 0, "%zu pools EMPTY (dirty) with a delay of 0",
            snap.count[OBM_POOL_EMPTY]);
    REQUIRE(s.pools_purged_total - before.pools_purged_total >= count[OBM_POOL_PURGED] &&
                s.purges_total > before.purges_total,
            "pools_purged_total grew by %zu, purges_total by %zu; %zu emptied pools PURGED",
            s.pools_purged_total - before.pools_purged_total, s.purges_total - before.purges_total,
            count[OBM_POOL_PURGED]);
    if (!set_check(&set_a, "after the purge"))
        return false;
    say("%zu of %zu pools emptied, %zu PURGED with no obm_trim (%zu cached), %zu madvise calls",
        w_nfreed, (size_t)W_POOLS, count[OBM_POOL_PURGED], count[OBM_POOL_CACHED],
        s.purges_total - before.purges_total);
    return set_free(&set_a, NULL);
}

static int thread_trim_rc, go_pipe[2];

/* obm_trim once main, which took a snapshot after pthread_create's own
 * mallocs, writes to go_pipe. */
static void *trim_thread(void *arg)
{
    (void)arg;
    char c;
    while (read(go_pipe[0], &c, 1) < 0 && errno == EINTR)
        ;
    thread_trim_rc = T_TRIM();
    return NULL;
}

/* OBM_PURGE_DELAY_MS=-1 */
static bool child_delay_never(void)
{
    if (!workload())
        return false;
    obm_stats_t s = stats_now();
    if (!snapshot() || !stats_match_snapshot(&s))
        return false;
    size_t count[OBM_POOL_PURGED + 1];
    freed_states(count);
    REQUIRE(count[OBM_POOL_EMPTY] + count[OBM_POOL_CACHED] == w_nfreed &&
                count[OBM_POOL_EMPTY] >= w_nfreed - 8,
            "of %zu emptied pools, %zu EMPTY, %zu CACHED, %zu PURGED", w_nfreed,
            count[OBM_POOL_EMPTY], count[OBM_POOL_CACHED], count[OBM_POOL_PURGED]);
    for (int round = 0; round < 2; round++) {
        sleep_ms(150);
        if (!take_and_return(snap.count[OBM_POOL_CACHED], false))
            return false;
        s = stats_now();
        if (!snapshot() || !stats_match_snapshot(&s))
            return false;
        REQUIRE(s.pools_purged_total == 0 && s.purges_total == 0 && s.pools_purged == 0,
                "with a delay of -1, after %d ms and pools taken and returned: "
                "pools_purged_total %zu, purges_total %zu, pools_purged %zu",
                150 * (round + 1), s.pools_purged_total, s.purges_total, s.pools_purged);
    }
    /* obm_trim on another thread: every EMPTY pool, none of this thread's
     * cached ones. The snapshot is taken once the thread exists. */
    pthread_t t;
    REQUIRE(pipe(go_pipe) == 0, "pipe failed");
    REQUIRE(pthread_create(&t, NULL, trim_thread, NULL) == 0, "pthread_create failed");
    s = stats_now();
    if (!snapshot())
        return false;
    size_t empty = snap.count[OBM_POOL_EMPTY], cached = snap.count[OBM_POOL_CACHED];
    static uintptr_t was_empty[MAX_ARENAS], was_cached[8];
    size_t ne = 0, nc = 0;
    for (size_t i = 0; i < snap.n; i++) {
        if (snap.r[i].kind != OBM_REGION_POOL)
            continue;
        if (snap.r[i].state == OBM_POOL_EMPTY && ne < MAX_ARENAS)
            was_empty[ne++] = snap.r[i].address;
        if (snap.r[i].state == OBM_POOL_CACHED && nc < 8)
            was_cached[nc++] = snap.r[i].address;
    }
    REQUIRE(write(go_pipe[1], "", 1) == 1, "write to the thread's pipe failed");
    pthread_join(t, NULL);
    close(go_pipe[0]);
    close(go_pipe[1]);
    REQUIRE(s.pools_purged_total == 0, "pools_purged_total %zu before any obm_trim",
            s.pools_purged_total);
    REQUIRE(empty >= w_nfreed - 8 && cached > 0, "%zu EMPTY and %zu CACHED pools before obm_trim",
            empty, cached);
    REQUIRE(thread_trim_rc == 1, "obm_trim on a new thread returned %d, not 1", thread_trim_rc);
    s = stats_now();
    if (!snapshot() || !stats_match_snapshot(&s))
        return false;
    for (size_t e = 0; e < ne; e++) {
        int st = pool_state(was_empty[e]);
        REQUIRE(st == OBM_POOL_PURGED || st == 0,
                "EMPTY pool %p is %s after obm_trim on another thread", (void *)was_empty[e],
                state_name(st));
    }
    for (size_t c = 0; c < nc; c++) {
        int st = pool_state(was_cached[c]);
        REQUIRE(st == OBM_POOL_CACHED,
                "pool %p cached by the main thread is %s after obm_trim on another thread",
                (void *)was_cached[c], state_name(st));
    }
    size_t by_thread = s.pools_purged_total, now_purged = 0;
    for (size_t e = 0; e < ne; e++)
        now_purged += pool_state(was_empty[e]) == OBM_POOL_PURGED;
    REQUIRE(by_thread >= now_purged && now_purged > 0,
            "obm_trim on another thread: pools_purged_total %zu; %zu of %zu EMPTY pools PURGED",
            by_thread, now_purged, ne);

    /* This thread's obm_trim: its cache too. */
    int rc = T_TRIM();
    REQUIRE(rc == 1, "obm_trim returned %d, not 1, with %zu pools cached", rc, nc);
    s = stats_now();
    if (!snapshot() || !stats_match_snapshot(&s))
        return false;
    REQUIRE(snap.count[OBM_POOL_EMPTY] == 0 && snap.count[OBM_POOL_CACHED] == 0,
            "after obm_trim: %zu EMPTY and %zu CACHED pools", snap.count[OBM_POOL_EMPTY],
            snap.count[OBM_POOL_CACHED]);
    for (size_t c = 0; c < nc; c++) {
        int st = pool_state(was_cached[c]);
        REQUIRE(st == OBM_POOL_PURGED || st == 0, "cached pool %p is %s after obm_trim",
                (void *)was_cached[c], state_name(st));
    }
    /* Every emptied pool is PURGED, unless the thread's own mallocs
     * (pthread_create's, in the drop-in) took it again. */
    freed_states(count);
    REQUIRE(count[OBM_POOL_PURGED] + count[0] + count[OBM_POOL_USED] + count[OBM_POOL_FULL] ==
                    w_nfreed &&
                count[OBM_POOL_PURGED] > 0,
            "after obm_trim, of %zu emptied pools: %zu PURGED, %zu unmapped, %zu serving", w_nfreed,
            count[OBM_POOL_PURGED], count[0], count[OBM_POOL_USED] + count[OBM_POOL_FULL]);
    if (!set_check(&set_a, "after obm_trim"))
        return false;
    say("delay -1: nothing purged in 300 ms; obm_trim on a new thread purged %zu pools (%zu EMPTY) "
        "and left the %zu cached, the main thread's purged them too (%zu pools purged in all)",
        by_thread, empty, nc, s.pools_purged_total);
    return set_free(&set_a, NULL);
}

/* The workload's frees and a snapshot, done within 30 ms of the first free
 * (else the child exits 2 and is run again): none of the emptied pools is
 * purged yet under a delay of `delay` ("50 ms"), each is EMPTY or CACHED.
 * *empty: how many are EMPTY. */
static bool freed_not_yet_purged(const char *delay, obm_stats_t *before, unsigned long *t0,
                                 unsigned long *took, size_t *empty)
{
    *before = stats_now();
    *t0 = now_ms();
    if (!workload())
        return false;
    obm_stats_t s = stats_now();
    if (!snapshot())
        return false;
    *took = now_ms() - *t0;
    if (*took >= 30) {
        say("the frees and the snapshot took %lu ms, too close to the %s delay", *took, delay);
        _exit(2);
    }
    if (!stats_match_snapshot(&s))
        return false;
    size_t count[OBM_POOL_PURGED + 1];
    freed_states(count);
    REQUIRE(count[OBM_POOL_PURGED] == 0 && s.pools_purged_total == before->pools_purged_total,
            "%lu ms after the first free, with a delay of %s: %zu of %zu emptied pools "
            "PURGED, pools_purged_total grew by %zu",
            *took, delay, count[OBM_POOL_PURGED], w_nfreed,
            s.pools_purged_total - before->pools_purged_total);
    REQUIRE(count[OBM_POOL_EMPTY] + count[OBM_POOL_CACHED] == w_nfreed &&
                count[OBM_POOL_EMPTY] >= w_nfreed - 8,
            "of %zu emptied pools, %zu EMPTY, %zu CACHED", w_nfreed, count[OBM_POOL_EMPTY],
            count[OBM_POOL_CACHED]);
    *empty = count[OBM_POOL_EMPTY];
    return true;
}

/* OBM_PURGE_DELAY_MS=50 */
static bool child_delay_fifty(void)
{
    obm_stats_t before, s;
    unsigned long t0, took;
    size_t empty;
    if (!freed_not_yet_purged("50 ms", &before, &t0, &took, &empty))
        return false;

    sleep_ms(120);
    if (!take_and_return(snap.count[OBM_POOL_CACHED], true))
        return false;
    s = stats_now();
    REQUIRE(s.pools_purged_total - before.pools_purged_total >= empty - 1,
            "after 120 ms and pools taken: pools_purged_total grew by %zu; %zu pools were EMPTY",
            s.pools_purged_total - before.pools_purged_total, empty);
    if (!set_check(&set_a, "after the purge"))
        return false;
    say("delay 50: none of %zu emptied pools purged after %lu ms; after 120 ms more, taking "
        "pools purged %zu (%zu were EMPTY)",
        w_nfreed, took, s.pools_purged_total - before.pools_purged_total, empty);
    return set_free(&set_a, NULL);
}

static void sleep_until(unsigned long t0, unsigned long ms)
{
    unsigned long now = now_ms();
    if (now < t0 + ms)
        sleep_ms((unsigned)(t0 + ms - now));
}

/* Mallocs that run obm's slow path (carving 16-byte blocks, more than a
 * pool's worth), where the decay is checked, and free nothing. */
static struct blockset probe_early, probe_late;

/* No OBM_PURGE_DELAY_MS: the default delay, 100 ms. 80 ms after the first
 * free nothing is purged yet (a delay of 80 ms or less would have purged
 * every pool, free for a whole delay by then); 125 ms after the last one
 * every pool still free is (a delay of 125 ms or more would not have). */
static bool child_delay_default(void)
{
    obm_stats_t before, s;
    unsigned long t0, took;
    size_t empty;
    if (!freed_not_yet_purged("100 ms (the default)", &before, &t0, &took, &empty))
        return false;
    static int first[POOLS_MAX]; /* each emptied pool's state right after the frees */
    size_t ncached = 0;
    for (size_t e = 0; e < w_nfreed; e++)
        ncached += (first[e] = pool_state(w_freed[e])) == OBM_POOL_CACHED;

    sleep_until(t0, 80);
    if (!set_alloc(&probe_early, 16, 300, false))
        return false;
    s = stats_now();
    unsigned long early = now_ms() - t0;
    if (early >= 95) {
        say("the first slow paths came %lu ms after the first free, too close to the 100 ms "
            "delay",
            early);
        _exit(2);
    }
    REQUIRE(s.pools_purged_total == before.pools_purged_total,
            "%lu ms after the first free, with the default delay of 100 ms: pools_purged_total "
            "grew by %zu",
            early, s.pools_purged_total - before.pools_purged_total);

    sleep_until(t0, took + 125);
    if (!set_alloc(&probe_late, 16, 300, false))
        return false;
    s = stats_now();
    unsigned long late = now_ms() - t0;
    if (!snapshot() || !stats_match_snapshot(&s))
        return false;
    if (late >= 145) {
        say("the last slow paths came %lu ms after the first free, too late to tell 100 ms from "
            "150 ms",
            late);
        _exit(2);
    }
    /* The tick that purged the pools free since the frees is the second
     * the heap saw (the first came during the frees): it expired the heap's
     * cached pools and its classes' last pools with nothing in use, EMPTY
     * now in their arenas; and only they are EMPTY. */
    REQUIRE(snap.count[OBM_POOL_EMPTY] <= ncached + OBM_NCLASSES,
            "%lu ms after the first free (%lu ms after the last), with the default delay of "
            "100 ms: %zu pools still EMPTY, %zu were CACHED",
            late, late - took, snap.count[OBM_POOL_EMPTY], ncached);
    for (size_t e = 0; e < w_nfreed; e++) {
        int st = pool_state(w_freed[e]);
        REQUIRE(st == OBM_POOL_PURGED || serving(st) ||
                    (st == OBM_POOL_EMPTY && (first[e] == OBM_POOL_CACHED || serving(first[e]))),
                "emptied pool %p is %s %lu ms after the first free (it was %s)", (void *)w_freed[e],
                state_name(st), late, state_name(first[e]));
    }
    REQUIRE(s.pools_purged_total - before.pools_purged_total >= empty - 2,
            "%lu ms after the first free: pools_purged_total grew by %zu; %zu pools were EMPTY",
            late, s.pools_purged_total - before.pools_purged_total, empty);
    if (!set_check(&set_a, "after the purge") || !set_check(&probe_early, "probe") ||
        !set_check(&probe_late, "probe"))
        return false;
    say("default delay: none of %zu emptied pools purged at %lu ms, nor at %lu ms; at %lu ms "
        "%zu purged (%zu were EMPTY)",
        w_nfreed, took, early, late, s.pools_purged_total - before.pools_purged_total, empty);
    return set_free(&probe_late, NULL) && set_free(&probe_early, NULL) && set_free(&set_a, NULL);
}

/* OBM_ARENA_KEEP=keep (or unset: 1): six arenas' worth of 512-byte blocks,
 * all freed. At once `keep` of the emptied arenas stay mapped as spares and
 * up to SPARES_WAITING more wait for the decay clock (src/types.h, ARENAS);
 * two ticks later (a slow malloc after each delay: there is no thread)
 * only `keep` are left. */
enum { SPARES_WAITING = 4 };

static bool count_spares(size_t *spare)
{
    obm_stats_t s = stats_now();
    if (!snapshot() || !stats_match_snapshot(&s))
        return false;
    *spare = 0;
    for (size_t a = 0; a < snap.n; a += RECS)
        *spare += snap.r[a].state == OBM_ARENA_SPARE;
    return true;
}

static bool child_arena_keep(size_t keep)
{
    enum { ARENAS = 6 };
    obm_stats_t before = stats_now();
    if (!set_alloc(&set_a, 512, ARENAS * (OBM_ARENA_SIZE / OBM_POOL_SIZE) * per_pool(512), false))
        return false;
    obm_stats_t peak = stats_now();
    REQUIRE(peak.arenas_current >= before.arenas_current + ARENAS - 1,
            "%zu arenas before, %zu with %d arenas' worth of blocks", before.arenas_current,
            peak.arenas_current, ARENAS);
    if (!set_free(&set_a, NULL))
        return false;
    size_t spare;
    if (!count_spares(&spare))
        return false;
    obm_stats_t s = stats_now();
    size_t released = s.arenas_released_total - before.arenas_released_total;
    REQUIRE(spare >= keep && spare <= keep + SPARES_WAITING,
            "%zu arenas SPARE after the frees, want %zu to %zu (%zu arenas mapped, %zu unmapped)",
            spare, keep, keep + SPARES_WAITING, s.arenas_current, released);
    REQUIRE(released + keep + SPARES_WAITING + 1 >= peak.arenas_current - before.arenas_current,
            "%zu of %zu new arenas unmapped, %zu kept", released,
            peak.arenas_current - before.arenas_current, keep);

    /* Two delays, each ended by a slow malloc (a pool's worth of 48-byte
     * blocks and one more), so that two ticks come. */
    for (int tick = 0; tick < 2; tick++) {
        sleep_ms(130); /* the default delay is 100 ms */
        if (!set_alloc(&set_b, 48, per_pool(48) + 1, false) || !set_free(&set_b, NULL))
            return false;
    }
    size_t spare_later;
    if (!count_spares(&spare_later))
        return false;
    obm_stats_t later = stats_now();
    REQUIRE(spare_later <= keep,
            "%zu arenas SPARE two delays after the frees, want at most %zu (%zu arenas mapped)",
            spare_later, keep, later.arenas_current);
    say("OBM_ARENA_KEEP %zu: arenas %zu -> %zu -> %zu (%zu SPARE) -> %zu two delays later (%zu "
        "SPARE), %zu unmapped",
        keep, before.arenas_current, peak.arenas_current, s.arenas_current, spare,
        later.arenas_current, spare_later,
        later.arenas_released_total - before.arenas_released_total);
    return true;
}

/* OBM_PURGE_DELAY_MS=0: classes in turn free their pools (purged at once)
 * and the next takes them. */
static struct blockset anchors;

static bool child_reuse(void)
{
    static const size_t sizes[] = {512, 16, 256, 64, 400, 32, 144, 496, 96, 336, 48, 208, 128};
    enum { ROUNDS = sizeof sizes / sizeof sizes[0] - 1, POOLS = 24 };
    if (!set_alloc(&anchors, 512, 40 * 7, false))
        return false;
    struct blockset *cur = &set_a, *next = &set_b;
    if (!set_alloc(cur, sizes[0], POOLS * per_pool(sizes[0]), false))
        return false;
    size_t total_purged = 0, total_reused = 0;
    for (size_t r = 0; r < ROUNDS; r++) {
        if (!set_free(cur, NULL))
            return false;
        if (!snapshot())
            return false;
        uintptr_t purged[POOLS_MAX];
        size_t npurged = 0;
        for (size_t k = 0; k < cur->npools; k++)
            if (pool_state(cur->pool[k]) == OBM_POOL_PURGED)
                purged[npurged++] = cur->pool[k];
        REQUIRE(npurged >= POOLS - 8 - 1,
                "round %zu: %zu of the %zu pools of %zu-byte blocks PURGED after their frees", r,
                npurged, cur->npools, cur->size);
        size_t size = sizes[r + 1];
        if (!set_alloc(next, size, POOLS * per_pool(size), r % 2 == 1))
            return false;
        size_t again = reused(purged, npurged, next);
        REQUIRE(again > 0, "round %zu: %s(%zu) took none of the %zu PURGED pools again", r,
                r % 2 == 1 ? "calloc" : "malloc", size, npurged);
        if (!snapshot())
            return false;
        for (size_t k = 0; k < next->npools; k++) {
            const struct rec *pr = pool_rec(next->pool[k]);
            REQUIRE(pr != NULL && serving(pr->state) && pr->size_class == (int)(size / 16 - 1) &&
                        pr->used >= next->in_pool[k],
                    "round %zu: pool %p of %zu-byte blocks is %s of class %d with %zu in use", r,
                    (void *)next->pool[k], size, pr == NULL ? "unmapped" : state_name(pr->state),
                    pr == NULL ? -1 : pr->size_class, pr == NULL ? 0 : pr->used);
        }
        if (!set_check(next, "once all filled") || !set_check(&anchors, "anchors"))
            return false;
        total_purged += npurged;
        total_reused += again;
        struct blockset *t = cur;
        cur = next;
        next = t;
    }
    if (!set_free(cur, NULL) || !set_free(&anchors, NULL))
        return false;
    say("%d rounds: %zu pools PURGED as their blocks were freed, %zu of them taken again by "
        "the next class (malloc and calloc in turn)",
        (int)ROUNDS, total_purged, total_reused);
    return true;
}

static int child_main(const char *mode, int fd)
{
    report_fd = fd;
    bool ok;
    if (strcmp(mode, "zero") == 0)
        ok = child_delay_zero();
    else if (strcmp(mode, "zero-set") == 0) /* the delay set at run time instead */
        ok = T_OPTION_SET("OBM_PURGE_DELAY_MS", "0") == 0 && child_delay_zero();
    else if (strcmp(mode, "never") == 0)
        ok = child_delay_never();
    else if (strcmp(mode, "fifty") == 0)
        ok = child_delay_fifty();
    else if (strcmp(mode, "reuse") == 0)
        ok = child_reuse();
    else if (strcmp(mode, "default_delay") == 0)
        ok = child_delay_default();
    else if (strncmp(mode, "keep-", 5) == 0)
        ok = child_arena_keep(strtoul(mode + 5, NULL, 10));
    else
        ok = (snprintf(why, sizeof why, "unknown mode %s", mode), false);
    if (!ok)
        say("%s", why);
    return ok ? 0 : 1;
}

/* Run this program again as `self --child mode FD` with the environment
 * variables NAME=VALUE of env set, print what it reports as diagnostics,
 * and return its exit status (-1 when it died of a signal). */
static int run_child(const char *mode, const char *const *env, char *last, size_t lastlen)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        /* Only the case's own options: none from the test's environment. */
        static const char *const options[] = {
            "OBM_VERBOSE",        "OBM_SHOW_STATS",   "OBM_STATS_FILE", "OBM_MAP",
            "OBM_PURGE_DELAY_MS", "OBM_PURGE_ADVICE", "OBM_ARENA_KEEP", "OBM_ON_ERROR",
        };
        for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
            unsetenv(options[i]);
        for (const char *const *e = env; *e != NULL; e++)
            if (putenv((char *)*e) != 0)
                _exit(125);
        char fdarg[16];
        snprintf(fdarg, sizeof fdarg, "%d", fds[1]);
        alarm(60);
        execl(self, self, "--child", mode, fdarg, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    static char buf[16384];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof buf - 1)
            break;
    }
    close(fds[0]);
    buf[len] = '\0';
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    snprintf(last, lastlen, "(no report)");
    for (char *line = buf, *end; *line != '\0'; line = end + 1) {
        end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line) - 1;
        else
            *end = '\0';
        printf("# %s", mode);
        for (const char *const *e = env; *e != NULL; e++)
            printf(" %s", *e);
        printf(": %s\n", line);
        snprintf(last, lastlen, "%s", line);
    }
    if (WIFSIGNALED(status)) {
        snprintf(last, lastlen, "killed by signal %d", WTERMSIG(status));
        return -1;
    }
    return WEXITSTATUS(status);
}

static void run_child_case(const char *mode, const char *const *env)
{
    char last[1024];
    int rc;
    for (int attempt = 0;; attempt++) {
        rc = run_child(mode, env, last, sizeof last);
        if (rc != 2 || attempt == 4)
            break;
    }
    if (rc == 2)
        fail_msg("%s: too slow to judge in 5 attempts: %s", mode, last);
    if (rc != 0)
        fail_msg("%s: the child %s: %s", mode, rc < 0 ? "died" : "failed", last);
}

static void test_delay_zero(void **state)
{
    (void)state;
    static const char *const env[] = {"OBM_PURGE_DELAY_MS=0", NULL};
    run_child_case("zero", env);
}

/* obm_option_set: the purge options at run time, and nothing else. */
static void test_option_set(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"OBM_NOPE", "1"},
        {"OBM_VERBOSE", "1"},
        {"OBM_MAP", "x.svg"},
        {"OBM_PURGE_DELAY_MS", "-2"},
        {"OBM_PURGE_DELAY_MS", "3600001"},
        {"OBM_PURGE_DELAY_MS", "1x"},
        {"OBM_PURGE_DELAY_MS", ""},
        {"OBM_PURGE_ADVICE", "never"},
        {"OBM_ARENA_KEEP", "1025"},
        {"obm_purge_delay_ms", "0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(T_OPTION_SET(bad[i][0], bad[i][1]), EINVAL);
    assert_int_equal(T_OPTION_SET(NULL, "0"), EINVAL);
    assert_int_equal(T_OPTION_SET("OBM_PURGE_DELAY_MS", NULL), EINVAL);
    /* Valid values, each the default already. */
    assert_int_equal(T_OPTION_SET("OBM_ARENA_KEEP", "1"), 0);
    assert_int_equal(T_OPTION_SET("OBM_PURGE_ADVICE", "dontneed"), 0);
    /* In a fresh process with no OBM_ variable, setting the delay to 0 at
     * run time purges as OBM_PURGE_DELAY_MS=0 does from the start. */
    static const char *const env[] = {NULL};
    run_child_case("zero-set", env);
}

static void test_delay_never(void **state)
{
    (void)state;
    static const char *const env[] = {"OBM_PURGE_DELAY_MS=-1", NULL};
    run_child_case("never", env);
}

static void test_delay_fifty(void **state)
{
    (void)state;
    static const char *const env[] = {"OBM_PURGE_DELAY_MS=50", NULL};
    run_child_case("fifty", env);
}

static void test_delay_default(void **state)
{
    (void)state;
    static const char *const env[] = {NULL};
    run_child_case("default_delay", env);
}

static void test_arena_keep(void **state)
{
    (void)state;
    static const char *const none[] = {NULL}, *const zero[] = {"OBM_ARENA_KEEP=0", NULL},
                             *const three[] = {"OBM_ARENA_KEEP=3", NULL};
    run_child_case("keep-1", none);
    run_child_case("keep-0", zero);
    run_child_case("keep-3", three);
}

static void test_reuse_after_purge(void **state)
{
    (void)state;
    static const char *const env[] = {"OBM_PURGE_DELAY_MS=0", "OBM_PURGE_ADVICE=dontneed", NULL};
    run_child_case("reuse", env);
}

static void test_reuse_after_purge_madv_free(void **state)
{
    (void)state;
    static const char *const env[] = {"OBM_PURGE_DELAY_MS=0", "OBM_PURGE_ADVICE=free", NULL};
    run_child_case("reuse", env);
}

#endif /* PURGE_CASES & PURGE_BEHAVIOUR */

#if PURGE_CASES & PURGE_RESIDENCY

/* ---- purged pages are not resident, survivors intact ---- */

#define RSS_TOTAL (64 * MiB) /* bytes of blocks (class sizes) */
#define RSS_MAX   (1u << 19) /* table entries; about 254,000 are used */
#define RSS_KEEP  97         /* every 97th block survives */
/* Anonymous RSS falls by this share of the pools that stop serving: 99.9 %
 * measured. The whole RSS falls by 99.5-99.7 %: obm's first calls of its
 * free and trim paths fault in about 60 pages of the library's code, which
 * are not the allocator's memory. */
#define RSS_MIN_FALL 0.99

/* Resident anonymous bytes: resident less shared (file-backed) pages; 0
 * when unreadable. */
static size_t anon_rss_bytes(void)
{
    unsigned long resident, shared;
    return statm_pages(&resident, &shared) && shared <= resident ? (resident - shared) * page_size()
                                                                 : 0;
}

struct entry {
    void *p;
    size_t size; /* class size */
};

/* What the child measured, in a MAP_SHARED mapping. */
struct rss_report {
    size_t nblocks, survivors, bytes;
    size_t peak, freed, trimmed;    /* RSS in bytes */
    size_t anon_peak, anon_trimmed; /* of which anonymous */
    obm_stats_t at_peak, after;
    size_t arenas, states[OBM_POOL_PURGED + 1];
    int trim_rc;
    char msg[1024];
};

static bool rss_measure(struct rss_report *r, struct entry *table)
{
    uint64_t rng = 0x9a26e5ull;
    while (r->bytes < RSS_TOTAL) {
        REQUIRE(r->nblocks < RSS_MAX, "more than %u blocks", RSS_MAX);
        size_t n = 1 + (size_t)(rng_next(&rng) % OBM_SMALL_MAX), size = class_size(n);
        void *p = T_MALLOC(OPQ(n));
        REQUIRE(p != NULL && T_OWNS(p), "malloc(%zu) gave %p, not an obm block", n, p);
        block_fill(p, size, r->nblocks);
        table[r->nblocks++] = (struct entry){p, size};
        r->bytes += size;
    }
    r->peak = rss_bytes();
    r->anon_peak = anon_rss_bytes();
    r->at_peak = stats_now();
    for (size_t i = 0; i < r->nblocks; i++) {
        size_t bad = block_check(table[i].p, table[i].size, i);
        REQUIRE(bad == table[i].size / 8,
                "block %zu (%p, %zu bytes), before its free: word %zu "
                "is not its pattern",
                i, table[i].p, table[i].size, bad);
        if (i % RSS_KEEP == 0)
            r->survivors++;
        else
            T_FREE(table[i].p);
    }
    r->freed = rss_bytes();
    r->trim_rc = T_TRIM();
    r->trimmed = rss_bytes();
    r->anon_trimmed = anon_rss_bytes();
    r->after = stats_now();

    /* From here on only reads: the snapshot's table, mincore. */
    if (!snapshot())
        return false;
    r->arenas = snap.arenas;
    memcpy(r->states, snap.count, sizeof r->states);
    REQUIRE(r->trim_rc == 1, "obm_trim after the frees returned %d, not 1", r->trim_rc);
    if (!stats_match_snapshot(&r->after))
        return false;
    REQUIRE(snap.count[OBM_POOL_EMPTY] == 0 && snap.count[OBM_POOL_CACHED] == 0,
            "after obm_trim: %zu EMPTY and %zu CACHED pools", snap.count[OBM_POOL_EMPTY],
            snap.count[OBM_POOL_CACHED]);
    size_t in_use = 0;
    for (size_t i = 0; i < snap.n; i++) {
        const struct rec *pr = &snap.r[i];
        if (pr->kind != OBM_REGION_POOL)
            continue;
        int res = resident(pr->address);
        REQUIRE(res >= 0, "mincore(%p) failed: %s", (void *)pr->address, strerror(errno));
        REQUIRE(pr->state != OBM_POOL_PURGED || res == 0, "PURGED pool %p is resident",
                (void *)pr->address);
        REQUIRE(!serving(pr->state) || res == 1, "%s pool %p is not resident",
                state_name(pr->state), (void *)pr->address);
        if (serving(pr->state))
            in_use += pr->used;
    }
    for (size_t i = 0; i < r->nblocks; i += RSS_KEEP) {
        uintptr_t p = (uintptr_t)table[i].p;
        int st = pool_state(p);
        REQUIRE(serving(st), "survivor %zu (%p) is in a %s pool", i, (void *)p, state_name(st));
        REQUIRE(resident(p) == 1, "survivor %zu (%p) is not resident", i, (void *)p);
        size_t bad = block_check(table[i].p, table[i].size, i);
        REQUIRE(bad == table[i].size / 8,
                "survivor %zu (%p, %zu bytes) after obm_trim: word %zu is not its pattern", i,
                (void *)p, table[i].size, bad);
    }
#ifdef OBM_API_PRELOAD
    /* The drop-in also serves what the process allocated before. */
    REQUIRE(in_use >= r->survivors, "%zu blocks in use in the pools serving a class, %zu survive",
            in_use, r->survivors);
#else
    REQUIRE(in_use == r->survivors, "%zu blocks in use in the pools serving a class, %zu survive",
            in_use, r->survivors);
#endif
    size_t stopped = (r->at_peak.pools_in_use - r->after.pools_in_use) * OBM_POOL_SIZE;
    REQUIRE(stopped >= r->at_peak.pools_in_use * OBM_POOL_SIZE / 2,
            "only %zu of %zu pools stopped serving", stopped / OBM_POOL_SIZE,
            r->at_peak.pools_in_use);
    REQUIRE(r->anon_trimmed > 0 && r->anon_peak > r->anon_trimmed &&
                (double)(r->anon_peak - r->anon_trimmed) >= RSS_MIN_FALL * (double)stopped,
            "anonymous RSS fell from %zu KiB to %zu KiB; %zu pools (%zu KiB) stopped serving, "
            "so it should have fallen by %.0f KiB at least",
            r->anon_peak / KiB, r->anon_trimmed / KiB, stopped / OBM_POOL_SIZE, stopped / KiB,
            RSS_MIN_FALL * (double)stopped / KiB);
    return true;
}

static void test_purged_not_resident(void **state)
{
    (void)state;
    if (page_size() != OBM_POOL_SIZE)
        skip(); /* a pool is then not a page of its own */
    struct rss_report *r =
        mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(r != MAP_FAILED);
    memset(r, 0, sizeof *r);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60);
        struct entry *table = mmap(NULL, RSS_MAX * sizeof *table, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (table == MAP_FAILED) {
            snprintf(r->msg, sizeof r->msg, "mmap of the block table failed");
            _exit(1);
        }
        memset(table, 0x5a, RSS_MAX * sizeof *table); /* resident from here on */
        if (!rss_measure(r, table)) {
            snprintf(r->msg, sizeof r->msg, "%s", why);
            _exit(1);
        }
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    const double m = (double)MiB;
    printf("# %zu blocks of 1..512 B (%.1f MiB), %zu survive (every %dth); pools serving: %zu "
           "at the peak, %zu after obm_trim (returned %d); %zu arenas, %zu pools PURGED, %zu "
           "UNTOUCHED; bytes_resident %.2f MiB -> %.2f MiB\n",
           r->nblocks, r->bytes / m, r->survivors, RSS_KEEP, r->at_peak.pools_in_use,
           r->after.pools_in_use, r->trim_rc, r->arenas, r->states[OBM_POOL_PURGED],
           r->states[OBM_POOL_UNTOUCHED], r->at_peak.bytes_resident / m,
           r->after.bytes_resident / m);
    double stopped = (double)(r->at_peak.pools_in_use - r->after.pools_in_use) * OBM_POOL_SIZE;
    printf("# RSS: %.2f MiB at the peak, %.2f MiB after the frees, %.2f MiB after obm_trim: "
           "fell by %.2f MiB, %.1f %% of the %.2f MiB of pools that stopped serving; anonymous "
           "RSS fell by %.2f MiB, %.2f %% of them\n",
           r->peak / m, r->freed / m, r->trimmed / m, ((double)r->peak - (double)r->trimmed) / m,
           100.0 * ((double)r->peak - (double)r->trimmed) / stopped, stopped / m,
           ((double)r->anon_peak - (double)r->anon_trimmed) / m,
           100.0 * ((double)r->anon_peak - (double)r->anon_trimmed) / stopped);
    if (WIFSIGNALED(status))
        fail_msg("the child died of signal %d", WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        fail_msg("%s", r->msg);
    munmap(r, sizeof *r);
}

#endif /* PURGE_CASES & PURGE_RESIDENCY */

int main(int argc, char **argv)
{
    if (!resolve_obm_calls()) {
        printf("Bail out! obm_trim, obm_stats_get or obm_visit not found: is the drop-in "
               "preloaded (OBM_DROPIN)?\n");
        return 1;
    }
#if PURGE_CASES & PURGE_BEHAVIOUR
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        printf("Bail out! readlink(/proc/self/exe) failed\n");
        return 1;
    }
    self[len] = '\0';
    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child_main(argv[2], atoi(argv[3]));
#else
    (void)argc;
    (void)argv;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obm_active),
#if PURGE_CASES & PURGE_BEHAVIOUR
        cmocka_unit_test(test_trim_return),
        cmocka_unit_test(test_trim_then_reuse),
#ifdef OBM_API_PRELOAD
        cmocka_unit_test(test_malloc_trim),
#endif
        cmocka_unit_test(test_delay_zero),
        cmocka_unit_test(test_option_set),
        cmocka_unit_test(test_delay_never),
        cmocka_unit_test(test_delay_fifty),
        cmocka_unit_test(test_delay_default),
        cmocka_unit_test(test_arena_keep),
        cmocka_unit_test(test_reuse_after_purge),
        cmocka_unit_test(test_reuse_after_purge_madv_free),
#endif
#if PURGE_CASES & PURGE_RESIDENCY
        cmocka_unit_test(test_purged_not_resident),
#endif
    };
    return RUN_TAP_TESTS(tests);
}
