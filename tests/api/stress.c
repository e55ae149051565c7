/* CHECKLIST 33 stress_content, after the description of mimalloc's
 * test/test-stress.c (written afresh, not ported line by line): NTHREADS
 * threads run for ROUNDS rounds; each keeps a table of live blocks and, at
 * random, allocates (malloc or calloc; sizes mostly 1..512 with a geometric
 * skew toward small, 2 % above that up to 64 KiB: most of them obm's
 * medium blocks, the rest past OBM_MEDIUM_MAX the backing allocator's),
 * frees, reallocs (growing, shrinking and across the small and medium
 * limits) and hands blocks to other
 * threads through a shared transfer array (a quarter of new blocks go
 * there, and others are swapped in later; a thread never takes back a
 * block it made), so over a third of the blocks are freed or realloc'ed
 * by a thread other than the one that made them. Between rounds the
 * threads are joined and new ones started (thread creation and exit with
 * blocks still in flight), and main frees about half the transfer array.
 *
 * Every block holds mimalloc's pattern: word i of a block of `items` words
 * is (items - i) ^ cookie, the tail bytes a byte of the cookie, where the
 * cookie is unique to the block (a serial number, kept outside the block,
 * mixed). A block is checked before every free and realloc (after realloc,
 * its preserved prefix against the old pattern); calloc'ed blocks are
 * checked zero first. The first bad byte stops the run with its block,
 * offset and values. A block handed out twice, moved without its contents,
 * or written by another block therefore fails.
 *
 * Threads never call cmocka (its asserts longjmp): the first failure is
 * recorded, every thread stops, and main reports it. Built twice; see
 * api.h. Sized for a 2-core machine: about 3.2 M operations. */
#include "api.h"
#include "threaded.h"

#include <pthread.h>
#include <stdio.h>

enum {
    NTHREADS = 8,
    ROUNDS = 25,
    SCALE = 20,
    STEPS = SCALE * 800, /* operations per thread and round */
    CAP = 1024,          /* live blocks a thread keeps at most */
    TRANSFERS = 16384,   /* slots of the shared transfer array */
    LARGE_MAX = 64 * 1024,
};

/* Which server a size goes to: obm's small or medium pools, or the
 * backing allocator. */
enum tier { SMALL, MEDIUM, LARGE };

static enum tier tier_of(size_t n)
{
    return n <= OBM_SMALL_MAX ? SMALL : obm_serves(n) ? MEDIUM : LARGE;
}

struct item {
    void *p;         /* NULL: none */
    size_t n;        /* requested size */
    uint64_t cookie; /* the block's pattern */
    unsigned origin; /* round * NTHREADS + thread that made the block */
    bool crossed;    /* freed or realloc'ed by another thread at least once */
};

struct slot {
    pthread_mutex_t lock;
    struct item it;
};

struct counts {
    /* medium, large: blocks made of those sizes; crossing: reallocs from
     * one tier to another; remote: frees and reallocs by another thread;
     * crossed: blocks with at least one of those */
    unsigned long mallocs, callocs, frees, reallocs, crossing, medium, large, handed, remote,
        crossed;
};

struct worker {
    pthread_t thread;
    unsigned id, round;
    uint64_t rng, serial;
    size_t count;
    struct item items[CAP];
    struct counts c;
};

static struct slot transfer[TRANSFERS];
static struct worker workers[NTHREADS];

/* ---- the pattern ---- */

static uint64_t pattern_word(size_t n, uint64_t cookie, size_t w)
{
    size_t items = n / sizeof(uint64_t);
    return w < items ? (uint64_t)(items - w) ^ cookie : ~cookie * 0x9e3779b97f4a7c15ull;
}

static unsigned char expected_byte(size_t n, uint64_t cookie, size_t i)
{
    return (unsigned char)(pattern_word(n, cookie, i / 8) >> (8 * (i % 8)));
}

static void fill(void *p, size_t n, uint64_t cookie)
{
    unsigned char *b = p;
    size_t w = 0;
    for (; (w + 1) * 8 <= n; w++) {
        uint64_t x = pattern_word(n, cookie, w);
        memcpy(b + w * 8, &x, 8);
    }
    for (size_t i = w * 8; i < n; i++)
        b[i] = expected_byte(n, cookie, i);
}

/* Offset of the first of bytes [0, len) of p that differs from the pattern
 * of a block of n bytes with this cookie, or len. */
static size_t check(const void *p, size_t len, size_t n, uint64_t cookie)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, b + i, 8);
        if (x != pattern_word(n, cookie, i / 8))
            break;
    }
    for (; i < len; i++)
        if (b[i] != expected_byte(n, cookie, i))
            return i;
    return len;
}

/* Check the first len bytes of the block; w is the checking thread (NULL:
 * main). */
static bool check_item(const struct item *it, size_t len, const struct worker *w, const char *when)
{
    size_t bad = check(it->p, len, it->n, it->cookie);
    if (bad == len)
        return true;
    const unsigned char *b = it->p;
    char who[64] = "main";
    if (w != NULL)
        snprintf(who, sizeof who, "thread %u of round %u", w->id, w->round);
    record_failure(
        "%s, %s: block %p of %zu bytes (made by thread %u of round %u): byte %zu of %zu is "
        "0x%02x, expected 0x%02x",
        who, when, it->p, it->n, it->origin % NTHREADS, it->origin / NTHREADS, bad, len, b[bad],
        expected_byte(it->n, it->cookie, bad));
    return false;
}

/* ---- the operations ---- */

/* 1..512 bytes, half of them up to 16, a quarter 17..32 at most, ...; 2 %
 * larger, 513..64 KiB: a third of those up to 4 KiB, a third up to
 * OBM_MEDIUM_MAX, a third up to 64 KiB (five in six are medium blocks). */
static size_t pick_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    if (r % 50 == 0) {
        r >>= 8;
        static const size_t tops[] = {4096, OBM_MEDIUM_MAX, LARGE_MAX};
        size_t top = tops[r % 3];
        return OBM_SMALL_MAX + 1 + (size_t)(r >> 2) % (top - OBM_SMALL_MAX);
    }
    r >>= 8;
    unsigned g = 0;
    while (g < 5 && (r & 1)) {
        g++;
        r >>= 1;
    }
    return 1 + (size_t)(r >> 1) % ((size_t)16 << g);
}

static struct item make(struct worker *w)
{
    struct item it = {.p = NULL};
    size_t n = pick_size(&w->rng);
    bool zeroed = rng_next(&w->rng) % 4 == 0;
    unsigned tid = w->round * NTHREADS + w->id;
    void *p = zeroed ? T_CALLOC(OPQ(1), OPQ(n)) : T_MALLOC(OPQ(n));
    if (p == NULL) {
        record_failure("thread %u of round %u: %s(%zu) failed", w->id, w->round,
                       zeroed ? "calloc" : "malloc", n);
        return it;
    }
    if (zeroed) {
        w->c.callocs++;
        for (size_t i = 0; i < n; i++)
            if (((unsigned char *)p)[i] != 0) {
                record_failure("thread %u of round %u: calloc(1, %zu) = %p: byte %zu is 0x%02x",
                               w->id, w->round, n, p, i, ((unsigned char *)p)[i]);
                return it;
            }
    } else {
        w->c.mallocs++;
    }
    w->c.medium += tier_of(n) == MEDIUM;
    w->c.large += tier_of(n) == LARGE;
    /* obm's exactly up to OBM_MEDIUM_MAX, and then of n's class */
    if ((T_OWNS(p) != 0) != obm_serves(n) || T_USABLE_SIZE(p) < n ||
        (obm_serves(n) && T_USABLE_SIZE(p) != block_size(n))) {
        record_failure("thread %u of round %u: %zu bytes at %p: owned by obm %d, usable size %zu",
                       w->id, w->round, n, p, T_OWNS(p), T_USABLE_SIZE(p));
        return it;
    }
    it = (struct item){.p = p, .n = n, .cookie = rng_next(&w->rng) ^ ++w->serial, .origin = tid};
    fill(p, n, it.cookie);
    return it;
}

/* A free or realloc of it on a thread that did not make it. */
static void count_remote(struct counts *c, struct item *it)
{
    c->remote++;
    c->crossed += !it->crossed;
    it->crossed = true;
}

static void note_remote(struct worker *w, struct item *it)
{
    if (it->origin != w->round * NTHREADS + w->id)
        count_remote(&w->c, it);
}

static void release(struct worker *w, struct item *it)
{
    if (!check_item(it, it->n, w, "before free"))
        return;
    note_remote(w, it);
    T_FREE(it->p);
    it->p = NULL;
    w->c.frees++;
}

/* A size of another tier than n's: small, medium (up to 4 KiB past the
 * small limit, or anywhere below OBM_MEDIUM_MAX), or large, r picking. */
static size_t other_tier(size_t n, uint64_t r)
{
    enum tier t = tier_of(n), to = (enum tier)((t + 1 + (r & 1)) % 3);
    r >>= 1;
    switch (to) {
    case SMALL:
        return 1 + (size_t)r % OBM_SMALL_MAX;
    case MEDIUM:
        return OBM_SMALL_MAX + 1 +
               (size_t)(r >> 1) % ((r & 1) ? 4096 : OBM_MEDIUM_MAX - OBM_SMALL_MAX);
    default:
        return OBM_MEDIUM_MAX + 1 + (size_t)r % (LARGE_MAX - OBM_MEDIUM_MAX);
    }
}

/* Grow, shrink, cross to another tier (small, medium, large), or any size. */
static void resize(struct worker *w, struct item *it)
{
    size_t n = it->n, m;
    uint64_t r = rng_next(&w->rng);
    switch (r % 4) {
    case 0:
        m = n + 1 + (size_t)(r >> 8) % (n < 16 ? 16 : n);
        break;
    case 1:
        m = 1 + (size_t)(r >> 8) % n;
        break;
    case 2:
        m = other_tier(n, r >> 8);
        break;
    default:
        m = pick_size(&w->rng);
        break;
    }
    if (m > LARGE_MAX)
        m = LARGE_MAX;
    if (!check_item(it, n, w, "before realloc"))
        return;
    note_remote(w, it);
    bool was_owned = T_OWNS(it->p) != 0;
    void *q = T_REALLOC(it->p, OPQ(m));
    if (q == NULL) {
        record_failure("thread %u of round %u: realloc(%p, %zu) of a %zu-byte block failed", w->id,
                       w->round, it->p, m, n);
        return;
    }
    w->c.reallocs++;
    w->c.crossing += tier_of(n) != tier_of(m);
    void *old = it->p;
    it->p = q;
    size_t keep = n < m ? n : m;
    size_t bad = check(q, keep, n, it->cookie);
    if (bad != keep) {
        record_failure(
            "thread %u of round %u: realloc(%p, %zu) of a %zu-byte block (made by thread %u "
            "of round %u) = %p: byte %zu of the %zu kept is 0x%02x, expected 0x%02x",
            w->id, w->round, old, m, n, it->origin % NTHREADS, it->origin / NTHREADS, q, bad, keep,
            ((unsigned char *)q)[bad], expected_byte(n, it->cookie, bad));
        return;
    }
    /* obm's when obm serves m, but for a block of the backing allocator
     * that stayed where it was (a shrink that saves less than a quarter). */
    bool want_owned = obm_serves(m) && (was_owned || q != old);
    if (T_USABLE_SIZE(q) < m || (T_OWNS(q) != 0) != want_owned) {
        record_failure("thread %u of round %u: realloc(%p, %zu) = %p: usable size %zu, owned %d",
                       w->id, w->round, old, m, q, T_USABLE_SIZE(q), T_OWNS(q));
        return;
    }
    it->n = m;
    it->cookie = rng_next(&w->rng) ^ ++w->serial;
    fill(q, m, it->cookie);
}

/* Swap *it with a random transfer slot (either may be empty), but never
 * take a block this thread made: a block handed over is then freed or
 * realloc'ed by another thread, whatever the scheduling. After a few slots
 * holding its own blocks, *it stays. */
static void exchange(struct worker *w, struct item *it)
{
    unsigned me = w->round * NTHREADS + w->id;
    for (int tries = 0; tries < 8; tries++) {
        struct slot *s = &transfer[rng_next(&w->rng) % TRANSFERS];
        pthread_mutex_lock(&s->lock);
        struct item got = s->it;
        bool mine = got.p != NULL && got.origin == me;
        if (!mine)
            s->it = *it;
        pthread_mutex_unlock(&s->lock);
        if (!mine) {
            *it = got;
            w->c.handed++;
            return;
        }
    }
}

/* Drop table entry i if it is empty, keeping the table dense. */
static void compact(struct worker *w, size_t i)
{
    if (w->items[i].p == NULL)
        w->items[i] = w->items[--w->count];
}

static void *stress_thread(void *arg)
{
    struct worker *w = arg;
    for (unsigned step = 0; step < STEPS && !stopped(); step++) {
        unsigned r = (unsigned)(rng_next(&w->rng) % 100);
        if (w->count == 0 || (w->count < CAP && r < 45)) {
            struct item it = make(w);
            if (it.p == NULL)
                break;
            w->items[w->count++] = it;
            if (rng_next(&w->rng) % 4 == 0) { /* a quarter go to another thread */
                exchange(w, &w->items[w->count - 1]);
                compact(w, w->count - 1);
            }
            continue;
        }
        size_t i = (size_t)(rng_next(&w->rng) % w->count);
        if (r < 75) {
            release(w, &w->items[i]);
            compact(w, i);
        } else if (r < 92) {
            resize(w, &w->items[i]);
        } else {
            exchange(w, &w->items[i]);
            compact(w, i);
        }
    }
    /* The thread's own blocks die with it; what it handed over lives on. */
    while (w->count > 0 && !stopped()) {
        release(w, &w->items[w->count - 1]);
        w->count--;
    }
    return NULL;
}

/* Main, between rounds and alone: free each slot's block with probability
 * 1/2, or all of them. */
static void drain_transfers(uint64_t *rng, bool all, struct counts *c)
{
    for (size_t i = 0; i < TRANSFERS && !stopped(); i++) {
        struct item *it = &transfer[i].it;
        if (it->p == NULL || (!all && rng_next(rng) % 2))
            continue;
        if (!check_item(it, it->n, NULL, "freeing a transferred block"))
            return;
        count_remote(c, it);
        T_FREE(it->p);
        it->p = NULL;
        c->frees++;
    }
}

static void test_stress_content(void **state)
{
    (void)state;
    alarm(120); /* a hang fails (valgrind included), rather than blocking the suite */
    for (size_t i = 0; i < TRANSFERS; i++)
        assert_int_equal(pthread_mutex_init(&transfer[i].lock, NULL), 0);
    struct counts total = {0};
    uint64_t rng = 0x5eed5eedull;
    unsigned long start = now_ms();
    for (unsigned round = 0; round < ROUNDS && !stopped(); round++) {
        for (unsigned t = 0; t < NTHREADS; t++) {
            struct worker *w = &workers[t];
            w->id = t;
            w->round = round;
            w->rng = 0x9e3779b97f4a7c15ull * (round * NTHREADS + t + 1);
            w->count = 0;
            w->c = (struct counts){0};
            assert_int_equal(pthread_create(&w->thread, NULL, stress_thread, w), 0);
        }
        for (unsigned t = 0; t < NTHREADS; t++) {
            struct worker *w = &workers[t];
            assert_int_equal(pthread_join(w->thread, NULL), 0);
            total.mallocs += w->c.mallocs;
            total.callocs += w->c.callocs;
            total.frees += w->c.frees;
            total.reallocs += w->c.reallocs;
            total.crossing += w->c.crossing;
            total.medium += w->c.medium;
            total.large += w->c.large;
            total.handed += w->c.handed;
            total.remote += w->c.remote;
            total.crossed += w->c.crossed;
        }
        drain_transfers(&rng, round + 1 == ROUNDS, &total);
    }
    alarm(0);
    report_failure();
    printf("# %u threads x %u rounds in %lu ms: %lu malloc, %lu calloc, %lu realloc (%lu across "
           "512 B or 32 KiB), %lu medium, %lu large, %lu free, %lu handed over, %lu frees and "
           "reallocs by another thread, on %lu blocks (%.1f %%)\n",
           NTHREADS, ROUNDS, now_ms() - start, total.mallocs, total.callocs, total.reallocs,
           total.crossing, total.medium, total.large, total.frees, total.handed, total.remote,
           total.crossed, 100.0 * (double)total.crossed / (double)(total.mallocs + total.callocs));
    /* Everything made was freed, and the mix really happened. */
    assert_int_equal(total.mallocs + total.callocs, total.frees);
    assert_true(total.crossed * 3 > total.mallocs + total.callocs);
    assert_true(total.crossing > 1000 && total.medium > 1000 && total.large > 1000 &&
                total.callocs > 1000);
    for (size_t i = 0; i < TRANSFERS; i++)
        assert_null(transfer[i].it.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obm_active),
        cmocka_unit_test(test_stress_content),
    };
    return RUN_TAP_TESTS(tests);
}
