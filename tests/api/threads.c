/* Threads against per-thread heaps: blocks that cross threads, heaps that
 * outlive their threads, thread-exit clean-up, and fork with threads running.
 *
 *   producer_consumer    2 producers malloc (mostly 1..512 B, 1/16 larger:
 *                        medium blocks of 513..32768 B, a few past that
 *                        for the backing allocator) and pass blocks through
 *                        a bounded queue to 2 consumers, which check,
 *                        sometimes realloc, and free them: nearly every
 *                        free is remote, medium blocks' included (their
 *                        pool found through the arena's page table).
 *   short_lived_threads  100,000 threads, 2 at a time, each returning one
 *                        live block through pthread_join for main to free:
 *                        heaps are abandoned, adopted and stay few.
 *   key_destructors      pthread keys made after obm's own, whose destructors
 *                        malloc, free and re-set the key until glibc's last
 *                        destructor round, and free a block another thread
 *                        made.
 *   exit_frees_remote    a thread leaves 20,000 live blocks behind, and 2,000
 *                        medium ones; main frees them; the pools and arenas
 *                        come back.
 *   fork_under_load      4 threads allocate and free while main forks; each
 *                        child checks and frees what the threads had made,
 *                        then works through every class.
 *   fork_dead_heaps      main forks while 3 threads hold their heaps and 2
 *                        ended threads' heaps are abandoned; the child
 *                        starts threads, all alive at once, as many as the
 *                        abandoned heaps and a few more: they adopt every
 *                        abandoned heap and none of the 3 dead ones (the
 *                        counters, and no block from a dead thread's
 *                        pool), before and after the child frees the dead
 *                        threads' blocks.
 *
 * Every block holds a pattern tied to its address, its size and a serial
 * number of its own, checked before every free, so a block handed out twice,
 * moved without its contents or written through another block fails. Threads
 * never call cmocka (its asserts longjmp): the first failure is recorded,
 * every thread stops, and main reports it. Counter checks use
 * obm_counters_get and are made while no other thread runs.
 *
 * Sized for a 2-core machine. The work shrinks under valgrind (found by its
 * preload library in LD_PRELOAD), ThreadSanitizer and AddressSanitizer;
 * TESTS_SCALE (a factor, 1 = full size) overrides. Built twice; see
 * api.h. */
#include "api.h"
#include "threaded.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>

#ifdef UNDER_TSAN
/* fork_dead_heaps starts threads in a child forked from a threaded
 * process, which ThreadSanitizer refuses by default: there only the
 * forking thread's state is known, as in obm itself. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}
#endif

/* ---- counters ---- */

#ifdef OBM_API_PRELOAD
/* The plain program is not linked to obm: find obm_counters_get in the
 * drop-in. Resolved by main before any child is forked. */
static int counters_get(obm_counters_t *out)
{
    static int (*get)(obm_counters_t *);
    if (get == NULL) {
        get = (int (*)(obm_counters_t *))dlsym(RTLD_DEFAULT, "obm_counters_get");
        if (get == NULL)
            fail_msg("obm_counters_get not found: is the drop-in preloaded (OBM_DROPIN)?");
    }
    return get(out);
}
#else
#define counters_get obm_counters_get
#endif

/* A snapshot, taken by main while no other thread runs, and what holds for
 * any such snapshot. */
static obm_counters_t counters(void)
{
    obm_counters_t c = {.size = sizeof c};
    assert_int_equal(counters_get(&c), 0);
    assert_int_equal(c.size, sizeof c);
    assert_true(c.frees <= c.mallocs);
    assert_true(c.remote_frees <= c.frees);
    assert_true(c.pools_returned <= c.pools_taken);
    assert_true(c.heaps_live >= 1); /* main's */
    assert_true(c.heaps_live + c.heaps_abandoned <= c.heaps_created);
    assert_true(c.arenas_current <= c.arenas_highwater);
    return c;
}

#define DELTA(after, before, field) ((after).field - (before).field)

static void print_counters(const char *what, const obm_counters_t *a, const obm_counters_t *b)
{
    printf("# %s: mallocs +%zu, frees +%zu (remote +%zu), pools taken +%zu, returned +%zu; "
           "heaps created +%zu, adopted +%zu, now %zu live, %zu abandoned; arenas %zu -> %zu "
           "(high-water %zu)\n",
           what, DELTA(*b, *a, mallocs), DELTA(*b, *a, frees), DELTA(*b, *a, remote_frees),
           DELTA(*b, *a, pools_taken), DELTA(*b, *a, pools_returned), DELTA(*b, *a, heaps_created),
           DELTA(*b, *a, heaps_adopted), b->heaps_live, b->heaps_abandoned, a->arenas_current,
           b->arenas_current, b->arenas_highwater);
}

/* ---- the pattern ---- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Word w of a block with this cookie; the tail bytes come from one more. */
static uint64_t pattern_word(uint64_t cookie, size_t w)
{
    return cookie ^ (uint64_t)(w + 1) * 0x9e3779b97f4a7c15ull;
}

static uint64_t cookie_of(const void *p, size_t n, uint64_t serial)
{
    return mix64((uint64_t)(uintptr_t)p ^ mix64(serial) ^ (uint64_t)n << 48);
}

static unsigned char expected_byte(uint64_t cookie, size_t i)
{
    return (unsigned char)(pattern_word(cookie, i / 8) >> (8 * (i % 8)));
}

static void fill_cookie(void *p, size_t n, uint64_t cookie)
{
    unsigned char *b = p;
    size_t w = 0;
    for (; (w + 1) * 8 <= n; w++) {
        uint64_t x = pattern_word(cookie, w);
        memcpy(b + 8 * w, &x, 8);
    }
    for (size_t i = 8 * w; i < n; i++)
        b[i] = expected_byte(cookie, i);
}

/* Offset of the first of the len bytes at p that differs, or len. */
static size_t check_cookie(const void *p, size_t len, uint64_t cookie)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t x;
        memcpy(&x, b + i, 8);
        if (x != pattern_word(cookie, i / 8))
            break;
    }
    for (; i < len; i++)
        if (b[i] != expected_byte(cookie, i))
            return i;
    return len;
}

static void fill(void *p, size_t n, uint64_t serial)
{
    fill_cookie(p, n, cookie_of(p, n, serial));
}

/* Whether the block still holds its pattern; records a failure if not. */
static bool check_block(const void *p, size_t n, uint64_t serial, const char *who)
{
    uint64_t cookie = cookie_of(p, n, serial);
    size_t bad = check_cookie(p, n, cookie);
    if (bad == n)
        return true;
    record_failure("%s: block %p of %zu bytes (serial %#llx): byte %zu is 0x%02x, expected 0x%02x",
                   who, p, n, (unsigned long long)serial, bad, ((const unsigned char *)p)[bad],
                   expected_byte(cookie, bad));
    return false;
}

/* malloc(n), checked: obm's, of n's class, for the sizes obm serves
 * (small and medium), the backing allocator's for larger ones, and big
 * enough; then filled. NULL (recorded) on failure. */
static void *make_block(size_t n, uint64_t serial, const char *who)
{
    void *p = T_MALLOC(OPQ(n));
    if (p == NULL) {
        record_failure("%s: malloc(%zu) failed", who, n);
        return NULL;
    }
    if ((T_OWNS(p) != 0) != obm_serves(n) || T_USABLE_SIZE(p) < n ||
        (obm_serves(n) && T_USABLE_SIZE(p) != block_size(n))) {
        record_failure("%s: malloc(%zu) = %p: owned by obm %d, usable size %zu", who, n, p,
                       T_OWNS(p), T_USABLE_SIZE(p));
        return NULL;
    }
    fill(p, n, serial);
    return p;
}

/* Check, then free; false (recorded) when the contents were wrong. */
static bool drop_block(void *p, size_t n, uint64_t serial, const char *who)
{
    if (!check_block(p, n, serial, who))
        return false;
    T_FREE(p);
    return true;
}

/* Mostly 1..512 bytes; one in 16 larger: of those, six in eight medium
 * up to 4 KiB (pools of 16 to 64 KiB), one medium up to OBM_MEDIUM_MAX
 * (pools up to a whole arena), one the backing allocator's, up to 40,000. */
static size_t pick_size(uint64_t *rng)
{
    uint64_t r = rng_next(rng);
    if (r % 16 != 0)
        return 1 + (size_t)(r >> 8) % OBM_SMALL_MAX;
    size_t kind = (size_t)(r >> 8) % 8, x = (size_t)(r >> 11);
    if (kind < 6)
        return OBM_SMALL_MAX + 1 + x % (4096 - OBM_SMALL_MAX);
    if (kind == 6)
        return OBM_SMALL_MAX + 1 + x % (OBM_MEDIUM_MAX - OBM_SMALL_MAX);
    return OBM_MEDIUM_MAX + 1 + x % (40000 - OBM_MEDIUM_MAX);
}

/* n blocks of assorted sizes made, then checked and freed, newest first. */
static bool churn(uint64_t *rng, unsigned n, const char *who)
{
    enum { MAX = 64 };
    void *p[MAX];
    size_t size[MAX];
    uint64_t serial[MAX];
    if (n > MAX)
        n = MAX;
    for (unsigned i = 0; i < n; i++) {
        size[i] = pick_size(rng);
        serial[i] = rng_next(rng);
        p[i] = make_block(size[i], serial[i], who);
        if (p[i] == NULL) {
            n = i;
            break;
        }
    }
    bool ok = !stopped();
    while (n-- > 0)
        ok = drop_block(p[n], size[n], serial[n], who) && ok;
    return ok;
}

/* Threads started here while the process is quiet, `count` at once: each
 * mallocs and frees, waits for the others, and exits; so with count equal
 * to the abandoned heaps, each adopts one and lets it go again. */
static pthread_barrier_t adopt_barrier;

static void *adopt_thread(void *arg)
{
    uint64_t rng = 0xad0b7 + (uintptr_t)arg;
    churn(&rng, 8, "adopting thread");
    pthread_barrier_wait(&adopt_barrier);
    return NULL;
}

static void adopt_all(void)
{
    obm_counters_t before = counters();
    size_t count = before.heaps_abandoned;
    if (count == 0)
        return;
    pthread_t *threads = calloc(count, sizeof *threads);
    assert_non_null(threads);
    assert_int_equal(pthread_barrier_init(&adopt_barrier, NULL, (unsigned)count), 0);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, adopt_thread, (void *)i), 0);
    for (size_t i = 0; i < count; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    pthread_barrier_destroy(&adopt_barrier);
    free(threads);
    report_failure();
    obm_counters_t after = counters();
    /* An abandoned heap was there for each of them. */
    assert_int_equal(after.heaps_created, before.heaps_created);
    assert_true(DELTA(after, before, heaps_adopted) >= count);
    assert_int_equal(after.heaps_live, before.heaps_live);
}

/* ---- the API ---- */

static void test_counters_get(void **state)
{
    (void)state;
    obm_counters_t c = {.size = sizeof c - 1};
    assert_int_equal(counters_get(NULL), EINVAL);
    assert_int_equal(counters_get(&c), EINVAL);
    c.size = sizeof c + 8;
    assert_int_equal(counters_get(&c), EINVAL);

    /* One thread, nothing else running: each call is counted exactly. */
    obm_counters_t a = counters();
    void *p = T_MALLOC(OPQ(100));
    assert_non_null(p);
    obm_counters_t b = counters();
    T_FREE(p);
    obm_counters_t d = counters();
    assert_int_equal(DELTA(b, a, mallocs), 1);
    assert_int_equal(DELTA(b, a, frees), 0);
    assert_int_equal(DELTA(d, b, frees), 1);
    assert_int_equal(DELTA(d, a, remote_frees), 0);
    assert_int_equal(DELTA(d, a, heaps_created), 0);
    assert_true(d.arenas_current >= 1);
}

/* ---- producer_consumer ---- */

enum { PC_PRODUCERS = 2, PC_CONSUMERS = 2, PC_BATCH = 32, PC_QUEUE = 64 };

struct item {
    void *p;
    size_t n;
    uint64_t serial;
};

struct batch {
    unsigned count;
    struct item items[PC_BATCH];
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t nonempty, nonfull;
    struct batch ring[PC_QUEUE];
    unsigned head, count, producers_left;
} queue = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .nonempty = PTHREAD_COND_INITIALIZER,
    .nonfull = PTHREAD_COND_INITIALIZER,
};

struct pc_worker {
    pthread_t thread;
    unsigned id;
    size_t blocks; /* a producer's share */
    uint64_t rng;
    unsigned long small, medium, large, reallocs, remote; /* blocks made or freed */
};

/* After a failure: wake every waiter, which then sees stopped(). */
static void queue_abort(void)
{
    pthread_mutex_lock(&queue.lock);
    pthread_cond_broadcast(&queue.nonempty);
    pthread_cond_broadcast(&queue.nonfull);
    pthread_mutex_unlock(&queue.lock);
}

static bool queue_push(const struct batch *b)
{
    pthread_mutex_lock(&queue.lock);
    while (queue.count == PC_QUEUE && !stopped())
        pthread_cond_wait(&queue.nonfull, &queue.lock);
    bool ok = !stopped();
    if (ok) {
        queue.ring[(queue.head + queue.count) % PC_QUEUE] = *b;
        queue.count++;
        pthread_cond_signal(&queue.nonempty);
    }
    pthread_mutex_unlock(&queue.lock);
    return ok;
}

/* false when the producers are done and the queue is empty, or on failure. */
static bool queue_pop(struct batch *b)
{
    pthread_mutex_lock(&queue.lock);
    while (queue.count == 0 && queue.producers_left > 0 && !stopped())
        pthread_cond_wait(&queue.nonempty, &queue.lock);
    bool ok = queue.count > 0 && !stopped();
    if (ok) {
        *b = queue.ring[queue.head];
        queue.head = (queue.head + 1) % PC_QUEUE;
        queue.count--;
        pthread_cond_signal(&queue.nonfull);
    }
    pthread_mutex_unlock(&queue.lock);
    return ok;
}

static void *producer(void *arg)
{
    struct pc_worker *w = arg;
    struct batch b = {.count = 0};
    for (size_t i = 0; i < w->blocks && !stopped(); i++) {
        struct item *it = &b.items[b.count];
        it->n = pick_size(&w->rng);
        it->serial = (uint64_t)w->id << 40 | i;
        it->p = make_block(it->n, it->serial, "producer");
        if (it->p == NULL)
            break;
        if (it->n <= OBM_SMALL_MAX)
            w->small++;
        else if (obm_serves(it->n))
            w->medium++;
        else
            w->large++;
        if (++b.count == PC_BATCH) {
            if (!queue_push(&b))
                break;
            b.count = 0;
        }
    }
    if (b.count > 0 && !stopped())
        queue_push(&b);
    pthread_mutex_lock(&queue.lock);
    queue.producers_left--;
    pthread_cond_broadcast(&queue.nonempty);
    pthread_mutex_unlock(&queue.lock);
    if (stopped())
        queue_abort();
    return NULL;
}

/* Check and free a block made by a producer; one in 8 is first realloc'ed
 * by this thread to another size, keeping its prefix: a small one half the
 * time, else one of pick_size's (perhaps medium or large). */
static bool consume(struct pc_worker *w, const struct item *it)
{
    if (!check_block(it->p, it->n, it->serial, "consumer"))
        return false;
    uint64_t r = rng_next(&w->rng);
    if (r % 8 != 0) {
        w->remote += obm_serves(it->n);
        T_FREE(it->p);
        return true;
    }
    size_t m = (r >> 8) % 2 ? 1 + (size_t)(r >> 9) % OBM_SMALL_MAX : pick_size(&w->rng);
    size_t keep = m < it->n ? m : it->n;
    uint64_t cookie = cookie_of(it->p, it->n, it->serial);
    bool was_owned = T_OWNS(it->p) != 0;
    void *q = T_REALLOC(it->p, OPQ(m));
    if (q == NULL) {
        record_failure("consumer: realloc(%p, %zu) of a %zu-byte block failed", it->p, m, it->n);
        return false;
    }
    w->reallocs++;
    w->remote += q != it->p && obm_serves(it->n);
    size_t bad = check_cookie(q, keep, cookie);
    if (bad != keep) {
        record_failure("consumer: realloc(%p, %zu) of a %zu-byte block = %p: byte %zu of the %zu "
                       "kept is 0x%02x, expected 0x%02x",
                       it->p, m, it->n, q, bad, keep, ((unsigned char *)q)[bad],
                       expected_byte(cookie, bad));
        return false;
    }
    /* obm's when obm serves m, but for a block of the backing allocator
     * that stayed where it was (a shrink that saves less than a quarter). */
    bool want_owned = obm_serves(m) && (was_owned || q != it->p);
    if (T_USABLE_SIZE(q) < m || (T_OWNS(q) != 0) != want_owned) {
        record_failure("consumer: realloc(%p, %zu) = %p: usable size %zu, owned %d", it->p, m, q,
                       T_USABLE_SIZE(q), T_OWNS(q));
        return false;
    }
    T_FREE(q);
    return true;
}

static void *consumer(void *arg)
{
    struct pc_worker *w = arg;
    struct batch b;
    while (queue_pop(&b)) {
        for (unsigned i = 0; i < b.count; i++)
            if (!consume(w, &b.items[i])) {
                queue_abort();
                return NULL;
            }
    }
    return NULL;
}

/* A few mallocs and frees by main, in several classes. */
static void main_touch(void)
{
    void *p[32];
    for (unsigned i = 0; i < 32; i++) {
        p[i] = T_MALLOC(OPQ(16 * (size_t)i + 1));
        assert_non_null(p[i]);
    }
    for (unsigned i = 0; i < 32; i++)
        T_FREE(p[i]);
}

static void test_producer_consumer(void **state)
{
    (void)state;
    watchdog("producer_consumer", 300);
    struct pc_worker producers[PC_PRODUCERS], consumers[PC_CONSUMERS];
    size_t total = scaled(2000000, 20000);
    obm_counters_t before = counters();
    unsigned long start = now_ms();
    queue.producers_left = PC_PRODUCERS;
    for (unsigned i = 0; i < PC_CONSUMERS; i++) {
        consumers[i] = (struct pc_worker){.id = i, .rng = mix64(0xc0 + i)};
        assert_int_equal(pthread_create(&consumers[i].thread, NULL, consumer, &consumers[i]), 0);
    }
    for (unsigned i = 0; i < PC_PRODUCERS; i++) {
        producers[i] =
            (struct pc_worker){.id = i, .blocks = total / PC_PRODUCERS, .rng = mix64(0x9c + i)};
        assert_int_equal(pthread_create(&producers[i].thread, NULL, producer, &producers[i]), 0);
    }
    unsigned long small = 0, medium = 0, large = 0, reallocs = 0, remote = 0;
    for (unsigned i = 0; i < PC_PRODUCERS; i++) {
        assert_int_equal(pthread_join(producers[i].thread, NULL), 0);
        small += producers[i].small;
        medium += producers[i].medium;
        large += producers[i].large;
    }
    for (unsigned i = 0; i < PC_CONSUMERS; i++) {
        assert_int_equal(pthread_join(consumers[i].thread, NULL), 0);
        reallocs += consumers[i].reallocs;
        remote += consumers[i].remote;
    }
    unsigned long ms = now_ms() - start;
    report_failure();
    assert_int_equal(queue.count, 0);
    assert_int_equal(small + medium + large, total / PC_PRODUCERS * PC_PRODUCERS);
    assert_true(medium > 0 && large > 0);
    printf("# producer_consumer: %lu small, %lu medium and %lu large blocks, %lu realloc'ed, %lu "
           "of obm's freed by a consumer, in %lu ms\n",
           small, medium, large, reallocs, remote, ms);

    obm_counters_t after = counters();
    print_counters("producer_consumer", &before, &after);
    assert_true(DELTA(after, before, mallocs) >= small + medium);
    assert_true(DELTA(after, before, remote_frees) > 0);
    assert_int_equal(after.heaps_live, before.heaps_live); /* every thread let its heap go */
    assert_true(DELTA(after, before, heaps_created) <= PC_PRODUCERS + PC_CONSUMERS);
    /* Once the abandoned heaps have been taken up and let go again, with
     * every block freed, the pools are back and empty arenas unmapped:
     * at most the spare, one more, and 4 spares that wait for the decay
     * clock (src/types.h, OBMI_SPARES_WAITING) stay. */
    adopt_all();
    main_touch();
    obm_counters_t end = counters();
    print_counters("producer_consumer, abandoned heaps adopted", &before, &end);
    assert_true(end.arenas_current <= before.arenas_current + 2 + 4);
    alarm(0);
}

/* ---- short_lived_threads ---- */

enum { SL_AT_ONCE = 2 };

/* Mostly small; one thread in 8 returns a medium block. */
static size_t sl_size(size_t i)
{
    uint64_t x = mix64(i);
    if (x % 8 == 0)
        return OBM_SMALL_MAX + 1 + (size_t)((x >> 3) % (OBM_MEDIUM_MAX - OBM_SMALL_MAX));
    return 1 + (size_t)((x >> 3) % OBM_SMALL_MAX);
}

static void *sl_thread(void *arg)
{
    size_t i = (size_t)(uintptr_t)arg;
    return make_block(sl_size(i), i, "short-lived thread");
}

static void test_short_lived_threads(void **state)
{
    (void)state;
    watchdog("short_lived_threads", 300);
    size_t count = scaled(100000, 400) / SL_AT_ONCE * SL_AT_ONCE;
    obm_counters_t before = counters();
    unsigned long start = now_ms();
    for (size_t i = 0; i < count && !stopped(); i += SL_AT_ONCE) {
        pthread_t t[SL_AT_ONCE];
        for (size_t k = 0; k < SL_AT_ONCE; k++)
            assert_int_equal(pthread_create(&t[k], NULL, sl_thread, (void *)(uintptr_t)(i + k)), 0);
        for (size_t k = 0; k < SL_AT_ONCE; k++) {
            void *p;
            assert_int_equal(pthread_join(t[k], &p), 0);
            if (p != NULL)
                drop_block(p, sl_size(i + k), i + k, "main, freeing a short-lived thread's block");
        }
    }
    unsigned long ms = now_ms() - start;
    report_failure();
    obm_counters_t after = counters();
    printf("# short_lived_threads: %zu threads, %d at a time, in %lu ms\n", count, SL_AT_ONCE, ms);
    print_counters("short_lived_threads", &before, &after);
    /* Every thread let its heap go, and nearly every one adopted a heap
     * another had left: a heap is made only when every other one is owned
     * or held for a moment by main's free, so few ever are. */
    assert_int_equal(after.heaps_live, before.heaps_live);
    assert_true(DELTA(after, before, heaps_created) <= SL_AT_ONCE + 2);
    assert_true(DELTA(after, before, heaps_adopted) >= count - (SL_AT_ONCE + 2));
    assert_true(after.heaps_live + after.heaps_abandoned <=
                before.heaps_live + before.heaps_abandoned + SL_AT_ONCE + 2);
    /* main's frees went into the exited threads' heaps and were taken in. */
    assert_true(DELTA(after, before, remote_frees) >= count / 2);
    assert_true(after.arenas_current <= before.arenas_current + 4);
    alarm(0);
}

/* ---- key_destructors ---- */

/* ThreadSanitizer retires a thread in glibc's last destructor round, and
 * instrumented code that runs after that crashes it: under it the test's
 * destructors stop one round earlier. */
#ifdef UNDER_TSAN
#define KD_ROUNDS (PTHREAD_DESTRUCTOR_ITERATIONS - 1)
#else
#define KD_ROUNDS PTHREAD_DESTRUCTOR_ITERATIONS
#endif

enum { KD_AT_ONCE = 8 };

/* The value of kd_key: a block of its own, naming the next payload. */
struct node {
    uint64_t hash; /* of the fields below and the node's address */
    unsigned round, thread;
    size_t n;
    uint64_t serial;
    void *payload;
};

static pthread_key_t kd_key, kd_gift_key;
static pthread_barrier_t kd_barrier;
static struct item *kd_gifts; /* one per thread, made by it */
static unsigned kd_wave_base; /* first thread of the running wave */
static atomic_ulong kd_calls, kd_gift_calls, kd_last_rounds;

static uint64_t node_hash(const struct node *nd)
{
    return mix64((uintptr_t)nd ^ mix64(nd->round | (uint64_t)nd->thread << 32) ^
                 mix64(nd->n ^ nd->serial) ^ (uintptr_t)nd->payload);
}

static struct node *make_node(unsigned thread, unsigned round, const char *who)
{
    uint64_t seed = mix64((uint64_t)thread << 8 | round);
    struct node *nd = T_MALLOC(OPQ(sizeof *nd));
    if (nd == NULL) {
        record_failure("%s: malloc(%zu) failed", who, sizeof *nd);
        return NULL;
    }
    nd->round = round;
    nd->thread = thread;
    nd->n = pick_size(&seed);
    nd->serial = seed;
    nd->payload = make_block(nd->n, nd->serial, who);
    if (nd->payload == NULL) {
        T_FREE(nd);
        return NULL;
    }
    nd->hash = node_hash(nd);
    return nd;
}

/* Runs in every destructor round up to KD_ROUNDS: checks and frees the
 * node, makes, checks and frees more blocks, and before the last round
 * makes the next node and sets it again, so glibc calls it once more. The
 * blocks of the last round come after the allocator's own destructor's
 * last call: no heap taken for them may stay with the ending thread. */
static void kd_destructor(void *value)
{
    struct node *nd = value;
    atomic_fetch_add(&kd_calls, 1);
    if (stopped())
        return;
    if (nd->hash != node_hash(nd)) {
        record_failure("key destructor: node %p was overwritten", (void *)nd);
        return;
    }
    unsigned round = nd->round + 1, thread = nd->thread;
    if (!drop_block(nd->payload, nd->n, nd->serial, "key destructor"))
        return;
    T_FREE(nd);
    if (round > KD_ROUNDS) {
        record_failure("key destructor: called for round %u of %d", round, KD_ROUNDS);
        return;
    }
    uint64_t rng = mix64(thread * 31 + round);
    churn(&rng, 8, "key destructor");
    if (round == KD_ROUNDS) {
        atomic_fetch_add(&kd_last_rounds, 1);
        return;
    }
    struct node *next = make_node(thread, round, "key destructor");
    if (next != NULL && pthread_setspecific(kd_key, next) != 0)
        record_failure("key destructor: pthread_setspecific failed");
}

/* A block another thread of the wave made, perhaps after that thread has
 * exited. */
static void kd_gift_destructor(void *value)
{
    struct item *it = value;
    atomic_fetch_add(&kd_gift_calls, 1);
    if (!stopped())
        drop_block(it->p, it->n, it->serial, "gift destructor");
}

static void *kd_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    uint64_t rng = mix64(0x4b0 + id);
    churn(&rng, 32, "key thread");
    struct node *nd = make_node(id, 0, "key thread");
    if (nd != NULL && pthread_setspecific(kd_key, nd) != 0)
        record_failure("key thread: pthread_setspecific failed");
    struct item *mine = &kd_gifts[id];
    mine->n = pick_size(&rng);
    mine->serial = rng_next(&rng);
    mine->p = make_block(mine->n, mine->serial, "key thread");
    /* Every thread of the wave has made its gift before any is taken. */
    pthread_barrier_wait(&kd_barrier);
    struct item *other = &kd_gifts[kd_wave_base + (id - kd_wave_base + 1) % KD_AT_ONCE];
    if (other->p != NULL && pthread_setspecific(kd_gift_key, other) != 0)
        record_failure("key thread: pthread_setspecific failed");
    return NULL;
}

static void test_key_destructors(void **state)
{
    (void)state;
    watchdog("key_destructors", 120);
    unsigned threads = (unsigned)scaled(200, 2 * KD_AT_ONCE) / KD_AT_ONCE * KD_AT_ONCE;
    /* After obm's own key, which the first malloc made. */
    assert_int_equal(pthread_key_create(&kd_key, kd_destructor), 0);
    assert_int_equal(pthread_key_create(&kd_gift_key, kd_gift_destructor), 0);
    kd_gifts = calloc(threads, sizeof *kd_gifts);
    assert_non_null(kd_gifts);
    obm_counters_t before = counters();
    unsigned long start = now_ms();
    for (unsigned base = 0; base < threads && !stopped(); base += KD_AT_ONCE) {
        pthread_t t[KD_AT_ONCE];
        kd_wave_base = base;
        assert_int_equal(pthread_barrier_init(&kd_barrier, NULL, KD_AT_ONCE), 0);
        for (unsigned k = 0; k < KD_AT_ONCE; k++)
            assert_int_equal(pthread_create(&t[k], NULL, kd_thread, (void *)(uintptr_t)(base + k)),
                             0);
        for (unsigned k = 0; k < KD_AT_ONCE; k++)
            assert_int_equal(pthread_join(t[k], NULL), 0);
        pthread_barrier_destroy(&kd_barrier);
    }
    unsigned long ms = now_ms() - start;
    pthread_key_delete(kd_key);
    pthread_key_delete(kd_gift_key);
    free(kd_gifts);
    report_failure();
    obm_counters_t after = counters();
    printf("# key_destructors: %u threads, %d at a time, %lu destructor calls, in %lu ms\n",
           threads, KD_AT_ONCE, (unsigned long)kd_calls, ms);
    print_counters("key_destructors", &before, &after);
    /* Each thread's destructor ran in every round, and its gift was freed. */
    assert_int_equal(kd_calls, (unsigned long)threads * KD_ROUNDS);
    assert_int_equal(kd_last_rounds, threads);
    assert_int_equal(kd_gift_calls, threads);
    /* A malloc in a destructor round took a heap again, and the thread let
     * it go again in a later round. Each thread took a heap at least once
     * per round but the last, nearly always by adoption: new heaps are
     * bounded by the threads running at once, plus those whose remote
     * frees hold an abandoned heap for a moment. */
    assert_int_equal(after.heaps_live, before.heaps_live);
    assert_true(DELTA(after, before, heaps_created) <= 2 * KD_AT_ONCE + 1);
    assert_true(DELTA(after, before, heaps_created) + DELTA(after, before, heaps_adopted) >=
                (size_t)threads * (KD_ROUNDS - 1));
    alarm(0);
}

/* ---- exit_frees_remote ---- */

enum {
    EF_BLOCKS = 20000,
    EF_SIZE = 48,
    EF_PER_POOL = (OBM_POOL_SIZE - 64) / EF_SIZE, /* 84: a 64-byte pool header */
    EF_POOLS = (EF_BLOCKS + EF_PER_POOL - 1) / EF_PER_POOL,
    /* and medium blocks: 1000 bytes, in the 1024-byte class, 15 to a pool
     * of 16 KiB (4 pages) */
    EF_MEDIUM = 2000,
    EF_MSIZE = 1000,
    EF_MPER_POOL = (4 * OBM_POOL_SIZE - 64) / 1024,
    EF_MPOOLS = (EF_MEDIUM + EF_MPER_POOL - 1) / EF_MPER_POOL,
    EF_PAGES = EF_POOLS + 4 * EF_MPOOLS,
    EF_ARENAS = (EF_PAGES + OBM_ARENA_SIZE / OBM_POOL_SIZE - 1) / (OBM_ARENA_SIZE / OBM_POOL_SIZE),
};

static void *ef_blocks[EF_BLOCKS], *ef_medium[EF_MEDIUM];

static void *ef_leaver(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < EF_BLOCKS && !stopped(); i++) {
        ef_blocks[i] = make_block(EF_SIZE, i, "leaving thread");
        if (i % 10 == 0)
            ef_medium[i / 10] = make_block(EF_MSIZE, i, "leaving thread");
    }
    return NULL;
}

static void *ef_adopter(void *arg)
{
    (void)arg;
    void *p = make_block(EF_SIZE, 0xad, "adopting thread");
    if (p != NULL)
        drop_block(p, EF_SIZE, 0xad, "adopting thread");
    return NULL;
}

static void test_exit_frees_remote(void **state)
{
    (void)state;
    watchdog("exit_frees_remote", 120);
    obm_counters_t before = counters();
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ef_leaver, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    report_failure();
    obm_counters_t left = counters();
    /* The blocks filled pools of their own (a few may have been there
     * already, part used), in several arenas. */
    assert_true(DELTA(left, before, pools_taken) >= EF_POOLS + EF_MPOOLS - 8);
    assert_true(left.arenas_current >= EF_ARENAS);
    assert_int_equal(left.heaps_live, before.heaps_live);

    for (size_t i = 0; i < EF_BLOCKS && !stopped(); i++) {
        drop_block(ef_blocks[i], EF_SIZE, i, "main, freeing a block of an exited thread");
        if (i % 10 == 0)
            drop_block(ef_medium[i / 10], EF_MSIZE, i,
                       "main, freeing a medium block of an exited thread");
    }
    report_failure();
    obm_counters_t freed = counters();
    assert_int_equal(pthread_create(&t, NULL, ef_adopter, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    report_failure();
    obm_counters_t after = counters();
    print_counters("exit_frees_remote", &before, &after);
    /* The new thread found an abandoned heap, so made none. */
    assert_int_equal(after.heaps_created, freed.heaps_created);
    assert_true(DELTA(after, freed, heaps_adopted) >= 1);
    assert_int_equal(after.heaps_live, before.heaps_live);
    /* Every pool the blocks filled went back (one of each class may stay
     * as a retired pool), each after all of its frees were taken in, and
     * the arenas they took were unmapped but for the spare and one more
     * for each class. */
    assert_true(DELTA(after, before, pools_returned) >= EF_POOLS + EF_MPOOLS - 2);
    assert_true(DELTA(after, before, remote_frees) >=
                EF_BLOCKS - EF_PER_POOL + EF_MEDIUM - EF_MPER_POOL);
    assert_true(after.arenas_current <= before.arenas_current + 3);
    alarm(0);
}

/* ---- fork_under_load ---- */

enum {
    FU_WORKERS = 4,
    FU_FROZEN = 128, /* blocks each worker makes first and keeps untouched */
    FU_LIVE = 128,   /* a worker's own working set */
    FU_SLOTS = 64,   /* blocks passed between workers */
    FU_MAIN = 256,   /* main's blocks, alive across every fork */
};

struct fu_worker {
    pthread_t thread;
    unsigned id;
    uint64_t rng, serial;
    unsigned long ops;
    struct item live[FU_LIVE];
};

static struct fu_worker fu_workers[FU_WORKERS];
static struct item fu_frozen[FU_WORKERS][FU_FROZEN];
static struct item fu_main[FU_MAIN];
static _Atomic(void *) fu_slots[FU_SLOTS];
static atomic_int fu_ready, fu_stop;

/* Mostly small; one slot in 8 medium (1279..5935 bytes), but for two,
 * the backing allocator's. */
static size_t fu_slot_size(unsigned s)
{
    if (s % 32 == 31)
        return OBM_MEDIUM_MAX + 1 + 97 * (size_t)s;
    return s % 8 == 7 ? 600 + 97 * (size_t)s : 1 + (size_t)(s * 37) % OBM_SMALL_MAX;
}

static uint64_t fu_slot_serial(unsigned s)
{
    return 0x510700 + s;
}

static void *fu_thread(void *arg)
{
    struct fu_worker *w = arg;
    for (unsigned i = 0; i < FU_FROZEN; i++) {
        struct item *it = &fu_frozen[w->id][i];
        /* one in 16 medium (895..2143 bytes), one in 64 past OBM_MEDIUM_MAX */
        it->n = i % 64 == 63   ? OBM_MEDIUM_MAX + 13 * (size_t)i
                : i % 16 == 15 ? 700 + 13 * (size_t)i
                               : 1 + (size_t)(i * 67 + w->id) % OBM_SMALL_MAX;
        it->serial = (uint64_t)w->id << 32 | i;
        it->p = make_block(it->n, it->serial, "fork worker");
    }
    for (unsigned i = 0; i < FU_LIVE; i++) {
        struct item *it = &w->live[i];
        it->n = pick_size(&w->rng);
        it->serial = ++w->serial;
        it->p = make_block(it->n, it->serial, "fork worker");
    }
    atomic_fetch_add(&fu_ready, 1);
    while (!atomic_load_explicit(&fu_stop, memory_order_relaxed) && !stopped()) {
        uint64_t r = rng_next(&w->rng);
        /* Valgrind runs one thread at a time and need not switch fairly:
         * a busy worker could keep main from running for minutes. */
        if (++w->ops % 64 == 0)
            sched_yield();
        if (r % 8 == 0) {
            /* Into a shared slot; free what was there, made by any worker. */
            unsigned s = (unsigned)(r >> 8) % FU_SLOTS;
            size_t n = fu_slot_size(s);
            void *p = make_block(n, fu_slot_serial(s), "fork worker");
            if (p == NULL)
                break;
            void *old = atomic_exchange(&fu_slots[s], p);
            if (old != NULL && !drop_block(old, n, fu_slot_serial(s), "fork worker, slot"))
                break;
            continue;
        }
        struct item *it = &w->live[(r >> 8) % FU_LIVE];
        if (it->p != NULL && !drop_block(it->p, it->n, it->serial, "fork worker"))
            break;
        it->n = pick_size(&w->rng);
        it->serial = ++w->serial;
        it->p = make_block(it->n, it->serial, "fork worker");
    }
    for (unsigned i = 0; i < FU_LIVE && !stopped(); i++)
        if (w->live[i].p != NULL)
            drop_block(w->live[i].p, w->live[i].n, w->live[i].serial, "fork worker");
    return NULL;
}

/* The child's exit codes. */
static const char *const fu_child_errors[] = {
    [1] = "obm_counters_get failed",
    [2] = "more than one live heap after fork",
    [3] = "a worker's block made before the fork was damaged",
    [4] = "a block in a shared slot was damaged",
    [5] = "a block of main's made before the fork was damaged",
    [6] = "malloc failed, or gave a block of the wrong owner or size",
    [7] = "a block made in the child was damaged",
};

static bool fu_intact(const struct item *it)
{
    return check_cookie(it->p, it->n, cookie_of(it->p, it->n, it->serial)) == it->n;
}

/* AddressSanitizer's allocator, the backing one of the obm build under it,
 * takes no lock over fork: another thread may hold one then, and a child
 * that calls it hangs. There the child leaves large blocks alone. */
#ifdef UNDER_ASAN
static const bool fu_child_large = false;
#else
static const bool fu_child_large = true;
#endif

/* Check an inherited block and free it; false when it was damaged. */
static bool fu_child_drop(const struct item *it)
{
    if (!fu_intact(it))
        return false;
    if (obm_serves(it->n) || fu_child_large)
        T_FREE(it->p);
    return true;
}

/* Everything through what the child inherited, one thread in it. */
static int fu_child(unsigned fork_no, size_t per_class)
{
    obm_counters_t now = {.size = sizeof now};
    if (counters_get(&now) != 0)
        return 1;
    /* Only the forking thread's heap goes on living in the child. */
    if (now.heaps_live != 1)
        return 2;
    for (unsigned w = 0; w < FU_WORKERS; w++)
        for (unsigned i = 0; i < FU_FROZEN; i++) {
            /* Into the heap of a thread the child lacks. */
            if (!fu_child_drop(&fu_frozen[w][i]))
                return 3;
        }
    for (unsigned s = 0; s < FU_SLOTS; s++) {
        void *p = atomic_load(&fu_slots[s]);
        struct item it = {.p = p, .n = fu_slot_size(s), .serial = fu_slot_serial(s)};
        if (p != NULL && !fu_child_drop(&it))
            return 4;
    }
    for (unsigned i = 0; i < FU_MAIN; i++)
        if (!fu_child_drop(&fu_main[i]))
            return 5;
    /* Every class, small and medium, and some large sizes, in batches freed
     * in mixed order; fewer blocks of the medium classes above 4 KiB. */
    enum { BATCH = 64 };
    struct item batch[BATCH];
    uint64_t serial = (uint64_t)fork_no << 48;
    for (unsigned round = 0; round < 2; round++)
        for (unsigned c = 0; c <= (fu_child_large ? OBM_NCLASSES : OBM_NCLASSES - 1); c++) {
            size_t count_c =
                c < OBM_NCLASSES && class_bytes(c) > 4096 ? per_class / 4 + 1 : per_class;
            for (size_t done = 0; done < count_c; done += BATCH) {
                unsigned count = count_c - done < BATCH ? (unsigned)(count_c - done) : BATCH;
                for (unsigned i = 0; i < count; i++) {
                    struct item *it = &batch[i];
                    /* c == OBM_NCLASSES: large; else a request of class c */
                    if (c < OBM_NCLASSES) {
                        size_t first = class_first(c), width = class_bytes(c) - first + 1;
                        it->n = first + (i * 5 + round) % width;
                    } else {
                        it->n = OBM_MEDIUM_MAX + 1 + (size_t)(i * 131 + round) % 8000;
                    }
                    it->serial = ++serial;
                    it->p = T_MALLOC(OPQ(it->n));
                    if (it->p == NULL || (T_OWNS(it->p) != 0) != obm_serves(it->n) ||
                        T_USABLE_SIZE(it->p) < it->n ||
                        (obm_serves(it->n) && T_USABLE_SIZE(it->p) != class_bytes(c)))
                        return 6;
                    fill(it->p, it->n, it->serial);
                }
                for (unsigned k = 0; k < count; k++) { /* from both ends inwards */
                    struct item *it = &batch[k % 2 == 0 ? k / 2 : count - 1 - k / 2];
                    if (!fu_intact(it))
                        return 7;
                    T_FREE(it->p);
                }
            }
        }
    return 0;
}

static void describe_status(char *buf, size_t len, int status)
{
    if (WIFEXITED(status)) {
        int code = WEXITSTATUS(status);
        const char *why = code > 0 && code < (int)(sizeof fu_child_errors / sizeof *fu_child_errors)
                              ? fu_child_errors[code]
                              : NULL;
        snprintf(buf, len, "exited with %d (%s)", code, why != NULL ? why : "?");
    } else if (WIFSIGNALED(status)) {
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(buf, len, "status %#x", status);
    }
}

static void test_fork_under_load(void **state)
{
    (void)state;
    unsigned forks = (unsigned)scaled(20, 4);
    size_t per_class = scaled(200, 16);
    watchdog("fork_under_load", 300);
    obm_counters_t before = counters();
    for (unsigned i = 0; i < FU_MAIN; i++) {
        struct item *it = &fu_main[i];
        /* one in 16 medium, one in 64 past OBM_MEDIUM_MAX */
        it->n = i % 64 == 63   ? OBM_MEDIUM_MAX + 7 * (size_t)i
                : i % 16 == 15 ? 600 + 7 * (size_t)i
                               : 1 + (size_t)(i * 29) % OBM_SMALL_MAX;
        it->serial = 0x3a17 << 16 | i;
        it->p = make_block(it->n, it->serial, "main");
        assert_non_null(it->p);
    }
    atomic_store(&fu_stop, 0);
    atomic_store(&fu_ready, 0);
    for (unsigned i = 0; i < FU_WORKERS; i++) {
        fu_workers[i] = (struct fu_worker){.id = i, .rng = mix64(0xf0 + i)};
        assert_int_equal(pthread_create(&fu_workers[i].thread, NULL, fu_thread, &fu_workers[i]), 0);
    }
    while (atomic_load(&fu_ready) < FU_WORKERS && !stopped())
        sched_yield();
    unsigned long start = now_ms();
    uint64_t rng = 0xf02c;
    unsigned done = 0;
    for (; done < forks && !stopped(); done++) {
        fflush(NULL); /* nothing buffered is written twice */
        pid_t pid = fork();
        if (pid == 0) {
            /* A crash must end the child, not land in cmocka's handlers. */
            static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS};
            for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
                signal(sigs[i], SIG_DFL);
            signal(SIGALRM, SIG_DFL);
            alarm(120);
            _exit(fu_child(done, per_class));
        }
        if (pid < 0) {
            record_failure("fork %u: %s", done, strerror(errno));
            break;
        }
        int status;
        pid_t got;
        while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
            ;
        if (got != pid) {
            record_failure("fork %u: waitpid: %s", done, strerror(errno));
            break;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            char why[160];
            describe_status(why, sizeof why, status);
            record_failure("fork %u: the child %s", done, why);
            break;
        }
        /* Let the workers move on between forks, by a varying amount. */
        struct timespec pause = {.tv_nsec = (long)(rng_next(&rng) % 2000000)};
        nanosleep(&pause, NULL);
    }
    unsigned long ms = now_ms() - start;
    atomic_store(&fu_stop, 1);
    unsigned long ops = 0;
    for (unsigned i = 0; i < FU_WORKERS; i++) {
        assert_int_equal(pthread_join(fu_workers[i].thread, NULL), 0);
        ops += fu_workers[i].ops;
    }
    report_failure();
    for (unsigned w = 0; w < FU_WORKERS; w++)
        for (unsigned i = 0; i < FU_FROZEN; i++)
            drop_block(fu_frozen[w][i].p, fu_frozen[w][i].n, fu_frozen[w][i].serial,
                       "main, after the forks");
    for (unsigned s = 0; s < FU_SLOTS; s++) {
        void *p = atomic_exchange(&fu_slots[s], NULL);
        if (p != NULL)
            drop_block(p, fu_slot_size(s), fu_slot_serial(s), "main, after the forks");
    }
    for (unsigned i = 0; i < FU_MAIN; i++)
        drop_block(fu_main[i].p, fu_main[i].n, fu_main[i].serial, "main, after the forks");
    report_failure();
    obm_counters_t after = counters();
    printf("# fork_under_load: %u forks in %lu ms, %lu worker operations meanwhile\n", done, ms,
           ops);
    print_counters("fork_under_load", &before, &after);
    assert_int_equal(done, forks);
    assert_int_equal(after.heaps_live, before.heaps_live);
    alarm(0);
}

/* ---- fork_dead_heaps ---- */

enum {
    FD_RUNNING = 3,  /* threads blocked in read() across the fork */
    FD_EXITED = 2,   /* threads that ended before it, leaving blocks */
    FD_BLOCKS = 96,  /* each one's blocks, 1..512 bytes, one in 8 medium */
    FD_NEW_MAX = 64, /* threads the child starts at once, at most */
    FD_NEW_BLOCKS = 48,
};

struct fd_thread {
    pthread_t thread;
    unsigned id;
    struct item blocks[FD_BLOCKS];
};

static struct fd_thread fd_running[FD_RUNNING], fd_exited[FD_EXITED];
static pthread_barrier_t fd_made; /* the running threads and main */
static int fd_hold[2];            /* the running threads wait for its end */

/* The size of block i of a thread: small, or one in 8 medium (up to
 * 8 KiB: pools of 16 to 128 KiB). */
static size_t fd_size(unsigned i, unsigned salt)
{
    size_t x = (size_t)i * 53 + (size_t)salt * 7;
    return i % 8 == 7 ? OBM_SMALL_MAX + 1 + x * 37 % (8192 - OBM_SMALL_MAX) : 1 + x % OBM_SMALL_MAX;
}

static void fd_make(struct fd_thread *t)
{
    for (unsigned i = 0; i < FD_BLOCKS; i++) {
        struct item *it = &t->blocks[i];
        it->n = fd_size(i, t->id);
        it->serial = (uint64_t)0xfd << 40 | (uint64_t)t->id << 16 | i;
        it->p = make_block(it->n, it->serial, "fork_dead_heaps thread");
    }
}

static void *fd_running_thread(void *arg)
{
    fd_make(arg);
    pthread_barrier_wait(&fd_made);
    char c;
    while (read(fd_hold[0], &c, 1) < 0 && errno == EINTR)
        ;
    return NULL;
}

/* Frees every other block and ends: its heap is abandoned, blocks left. */
static void *fd_exiting_thread(void *arg)
{
    struct fd_thread *t = arg;
    fd_make(t);
    for (unsigned i = 0; i < FD_BLOCKS; i += 2)
        if (t->blocks[i].p != NULL && drop_block(t->blocks[i].p, t->blocks[i].n,
                                                 t->blocks[i].serial, "fork_dead_heaps thread"))
            t->blocks[i].p = NULL;
    return NULL;
}

/* In the child: the pools of the threads that did not survive the fork,
 * each where it starts and its bytes (a page, or a medium pool's pages). */
static struct {
    uintptr_t start;
    size_t bytes;
} fd_dead_pools[FD_RUNNING * FD_BLOCKS];
static size_t fd_ndead;

static bool fd_in_dead_pool(const void *p)
{
    for (size_t i = 0; i < fd_ndead; i++)
        if ((uintptr_t)p - fd_dead_pools[i].start < fd_dead_pools[i].bytes)
            return true;
    return false;
}

static pthread_barrier_t fd_new_made, fd_new_counted;
static char *fd_msg; /* shared with the parent: why the child failed */

static _Noreturn void fd_child_exit(bool ok)
{
    snprintf(fd_msg, sizeof failure, "%s", failure);
    _exit(ok ? 0 : 1);
}

/* A thread of the child's: its blocks come from no dead thread's pool. */
static void *fd_new_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    struct item b[FD_NEW_BLOCKS];
    for (unsigned i = 0; i < FD_NEW_BLOCKS; i++) {
        b[i].n = fd_size(i, id + 1000);
        b[i].serial = (uint64_t)0xc41d << 32 | (uint64_t)id << 16 | i;
        b[i].p = make_block(b[i].n, b[i].serial, "a thread of the child");
        if (b[i].p != NULL && fd_in_dead_pool(b[i].p))
            record_failure("a thread of the child got %p, in a pool of a thread that did not "
                           "survive the fork",
                           b[i].p);
    }
    pthread_barrier_wait(&fd_new_made);
    pthread_barrier_wait(&fd_new_counted);
    for (unsigned i = 0; i < FD_NEW_BLOCKS; i++)
        if (b[i].p != NULL)
            drop_block(b[i].p, b[i].n, b[i].serial, "a thread of the child");
    return NULL;
}

/* Starts as many threads as there are abandoned heaps, and `extra` more,
 * all alive at once: they adopt every abandoned heap, and no other, and
 * make `extra` new ones. */
static bool fd_child_round(size_t extra, const char *when)
{
    obm_counters_t before = {.size = sizeof before}, mid = {.size = sizeof mid};
    if (counters_get(&before) != 0) {
        record_failure("%s: obm_counters_get failed", when);
        return false;
    }
    size_t n = before.heaps_abandoned + extra;
    if (n > FD_NEW_MAX) {
        record_failure("%s: %zu abandoned heaps, more than the case starts threads for", when,
                       before.heaps_abandoned);
        return false;
    }
    pthread_t t[FD_NEW_MAX];
    pthread_barrier_init(&fd_new_made, NULL, (unsigned)n + 1);
    pthread_barrier_init(&fd_new_counted, NULL, (unsigned)n + 1);
    for (size_t i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, fd_new_thread, (void *)(uintptr_t)i) != 0) {
            record_failure("%s: pthread_create failed", when);
            fd_child_exit(false); /* the others wait at the barrier for good */
        }
    pthread_barrier_wait(&fd_new_made);
    int rc = counters_get(&mid);
    pthread_barrier_wait(&fd_new_counted);
    for (size_t i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&fd_new_made);
    pthread_barrier_destroy(&fd_new_counted);
    if (stopped())
        return false;
    if (rc != 0 || mid.heaps_live != 1 + n || DELTA(mid, before, heaps_adopted) != n - extra ||
        DELTA(mid, before, heaps_created) != extra) {
        record_failure("%s: %zu threads running, %zu heaps were abandoned: %zu heaps live, %zu "
                       "adopted, %zu created; want %zu, %zu, %zu",
                       when, n, before.heaps_abandoned, mid.heaps_live,
                       DELTA(mid, before, heaps_adopted), DELTA(mid, before, heaps_created), 1 + n,
                       n - extra, extra);
        return false;
    }
    return true;
}

static bool fd_child(const obm_counters_t *at_fork)
{
    obm_counters_t now = {.size = sizeof now};
    if (counters_get(&now) != 0) {
        record_failure("obm_counters_get failed in the child");
        return false;
    }
    /* The running threads' heaps are DEAD: neither live nor abandoned. */
    if (now.heaps_live != 1 || now.heaps_abandoned != at_fork->heaps_abandoned ||
        now.heaps_created != at_fork->heaps_created) {
        record_failure("after the fork: %zu heaps live, %zu abandoned, %zu created; want 1, %zu, "
                       "%zu",
                       now.heaps_live, now.heaps_abandoned, now.heaps_created,
                       at_fork->heaps_abandoned, at_fork->heaps_created);
        return false;
    }
    for (unsigned t = 0; t < FD_RUNNING; t++)
        for (unsigned i = 0; i < FD_BLOCKS; i++) {
            const struct item *it = &fd_running[t].blocks[i];
            fd_dead_pools[fd_ndead].start = (uintptr_t)block_pool(it->p, it->n);
            fd_dead_pools[fd_ndead++].bytes = class_pool_bytes(class_index(it->n));
        }
    if (!fd_child_round(3, "before the dead threads' blocks are freed"))
        return false;
    /* Their blocks can be freed (into DEAD heaps, never collected), as can
     * those the ended threads left. */
    for (unsigned t = 0; t < FD_RUNNING; t++)
        for (unsigned i = 0; i < FD_BLOCKS; i++)
            if (!drop_block(fd_running[t].blocks[i].p, fd_running[t].blocks[i].n,
                            fd_running[t].blocks[i].serial, "the child, a dead thread's block"))
                return false;
    for (unsigned t = 0; t < FD_EXITED; t++)
        for (unsigned i = 1; i < FD_BLOCKS; i += 2)
            if (!drop_block(fd_exited[t].blocks[i].p, fd_exited[t].blocks[i].n,
                            fd_exited[t].blocks[i].serial, "the child, an ended thread's block"))
                return false;
    return fd_child_round(2, "after the dead threads' blocks were freed");
}

static void test_fork_dead_heaps(void **state)
{
    (void)state;
    watchdog("fork_dead_heaps", 120);
    fd_msg = mmap(NULL, sizeof failure, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(fd_msg != MAP_FAILED);
    fd_msg[0] = '\0';
    assert_int_equal(pipe(fd_hold), 0);
    assert_int_equal(pthread_barrier_init(&fd_made, NULL, FD_RUNNING + 1), 0);
    for (unsigned i = 0; i < FD_RUNNING; i++) {
        fd_running[i].id = i;
        assert_int_equal(
            pthread_create(&fd_running[i].thread, NULL, fd_running_thread, &fd_running[i]), 0);
    }
    pthread_barrier_wait(&fd_made);
    /* Started once the running threads hold their heaps, so these end
     * with heaps of their own, abandoned. */
    for (unsigned i = 0; i < FD_EXITED; i++) {
        fd_exited[i].id = FD_RUNNING + i;
        assert_int_equal(
            pthread_create(&fd_exited[i].thread, NULL, fd_exiting_thread, &fd_exited[i]), 0);
        assert_int_equal(pthread_join(fd_exited[i].thread, NULL), 0);
    }
    report_failure();
    obm_counters_t at_fork = counters();
    assert_true(at_fork.heaps_live >= 1 + FD_RUNNING);
    assert_true(at_fork.heaps_abandoned >= FD_EXITED);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS};
        for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
            signal(sigs[i], SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        alarm(60);
        fd_child_exit(fd_child(&at_fork));
    }
    int status;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
        ;
    assert_int_equal(got, pid);
    close(fd_hold[1]); /* the running threads end */
    for (unsigned i = 0; i < FD_RUNNING; i++)
        assert_int_equal(pthread_join(fd_running[i].thread, NULL), 0);
    close(fd_hold[0]);
    pthread_barrier_destroy(&fd_made);
    if (WIFSIGNALED(status))
        fail_msg("the child was killed by signal %d: %s", WTERMSIG(status), fd_msg);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the child failed: %s", fd_msg);
    printf("# fork_dead_heaps: %zu heaps live and %zu abandoned at the fork; the child's threads "
           "adopted only the abandoned ones\n",
           at_fork.heaps_live, at_fork.heaps_abandoned);
    for (unsigned t = 0; t < FD_RUNNING; t++)
        for (unsigned i = 0; i < FD_BLOCKS; i++)
            drop_block(fd_running[t].blocks[i].p, fd_running[t].blocks[i].n,
                       fd_running[t].blocks[i].serial, "main, a running thread's block");
    for (unsigned t = 0; t < FD_EXITED; t++)
        for (unsigned i = 1; i < FD_BLOCKS; i += 2)
            drop_block(fd_exited[t].blocks[i].p, fd_exited[t].blocks[i].n,
                       fd_exited[t].blocks[i].serial, "main, an ended thread's block");
    report_failure();
    munmap(fd_msg, sizeof failure);
    alarm(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obm_active),
        cmocka_unit_test(test_counters_get), /* while main is the only thread yet */
        cmocka_unit_test(test_producer_consumer),
        cmocka_unit_test(test_short_lived_threads),
        cmocka_unit_test(test_key_destructors),
        cmocka_unit_test(test_exit_frees_remote),
        cmocka_unit_test(test_fork_under_load),
        cmocka_unit_test(test_fork_dead_heaps),
    };
    return RUN_TAP_TESTS(tests);
}
