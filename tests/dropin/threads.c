/* Drop-in, threads:
 *   CHECKLIST 28 cross_thread_free: 8 threads, 16 rounds, 2048 blocks of
 *     msb + rand % msb bytes per allocating thread and round; half the
 *     threads allocate, the other half check and free what another thread
 *     allocated in the round before. [glibc tst-aligned-alloc-random-thread-
 *     cross; jemalloc test_remote_free] Small blocks, medium ones (their
 *     pools several pages, found through the arena's page table when another
 *     thread frees them) and the backing allocator's. Plus a producer ->
 *     consumer pair.
 *   CHECKLIST 29 thread_exit_live_blocks, smaller: 20,000 sequential threads
 *     each return a live 32 B block that main frees; RSS stays bounded.
 *   CHECKLIST 30 thread_churn: 2 outer threads start 4 inner threads at a
 *     time that "alloc then wait" or "wait then alloc" on a barrier.
 * Threads never call cmocka's asserts (they longjmp); they count errors,
 * and the main thread asserts the counts. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dropin.h"

static atomic_long errors;

/* A block of `size` bytes from malloc, checked to live where its size says
 * (obm's pools up to OBM_MEDIUM_MAX, the backing allocator above). */
static void *alloc_filled(size_t size)
{
    void *p = malloc(size);
    if (p == NULL || (dropin_owns(p) != 0) != dropin_served(size)) {
        errors++;
        return p;
    }
    dropin_fill(p, size);
    return p;
}

static void check_and_free(void *p, size_t size)
{
    if (p == NULL || !dropin_check(p, size))
        errors++;
    free(p);
}

static bool all_zero(const unsigned char *p, size_t size)
{
    for (size_t i = 0; i < size; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* ---- CHECKLIST 28: cross-thread free ---- */

enum { XT_HALF = 4, XT_THREADS = 2 * XT_HALF, XT_ROUNDS = 16, XT_BLOCKS = 2048 };

/* Double buffered: in round r the allocators fill buffer r & 1 while the
 * freers empty buffer (r - 1) & 1, filled in the round before; one barrier
 * ends each round. */
struct xt_state {
    size_t msb;
    pthread_barrier_t barrier;
    void *blocks[2][XT_HALF][XT_BLOCKS];
    size_t sizes[2][XT_HALF][XT_BLOCKS];
};

struct xt_arg {
    struct xt_state *st;
    int id; /* 0..3 allocate, 4..7 free */
};

/* Blocks per allocating thread and round: fewer of the big sizes (a power
 * of two, so that an odd stride runs through them all). */
static unsigned xt_count(size_t msb)
{
    return msb >= 4096 ? 128 : XT_BLOCKS;
}

static void *xt_thread(void *argp)
{
    struct xt_arg *arg = argp;
    struct xt_state *st = arg->st;
    unsigned seed = (unsigned)(arg->id * 7919 + (int)st->msb), count = xt_count(st->msb);
    for (int r = 0; r <= XT_ROUNDS; r++) {
        if (arg->id < XT_HALF && r < XT_ROUNDS) {
            int a = arg->id;
            for (unsigned i = 0; i < count; i++) {
                size_t size = st->msb + (size_t)rand_r(&seed) % st->msb;
                st->sizes[r & 1][a][i] = size;
                st->blocks[r & 1][a][i] = alloc_filled(size);
            }
        } else if (arg->id >= XT_HALF && r > 0) {
            /* Freer f takes a different allocator's blocks every round,
             * in a scrambled order (the stride is odd, so a permutation). */
            int f = arg->id - XT_HALF, b = (r - 1) & 1, a = (f + r) % XT_HALF;
            unsigned start = (unsigned)rand_r(&seed), stride = 2 * (unsigned)rand_r(&seed) + 1;
            for (unsigned k = 0; k < count; k++) {
                unsigned i = (start + k * stride) % count;
                check_and_free(st->blocks[b][a][i], st->sizes[b][a][i]);
            }
        }
        pthread_barrier_wait(&st->barrier);
    }
    return NULL;
}

static void test_cross_thread_free(void **state)
{
    /* 8..15 up to 1024..2047 bytes: small and medium; 4096..8191 and
     * 16384..32767: medium, in pools of 128 and 256 KiB; 32768..65535:
     * the largest medium class and the backing allocator's. */
    static const size_t msbs[] = {8, 32, 128, 512, 1024, 4096, 16384, 32768};
    struct xt_state *st = calloc(1, sizeof(*st));
    assert_non_null(st);
    errors = 0;
    for (size_t m = 0; m < sizeof(msbs) / sizeof(msbs[0]); m++) {
        st->msb = msbs[m];
        assert_int_equal(pthread_barrier_init(&st->barrier, NULL, XT_THREADS), 0);
        pthread_t tid[XT_THREADS];
        struct xt_arg args[XT_THREADS];
        for (int t = 0; t < XT_THREADS; t++) {
            args[t] = (struct xt_arg){st, t};
            assert_int_equal(pthread_create(&tid[t], NULL, xt_thread, &args[t]), 0);
        }
        for (int t = 0; t < XT_THREADS; t++)
            pthread_join(tid[t], NULL);
        pthread_barrier_destroy(&st->barrier);
        assert_int_equal(errors, 0);
    }
    free(st);
}

/* ---- producer -> consumer ---- */

enum { PC_SLOTS = 256, PC_ITEMS = 100000 };

struct pc_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    size_t head, count;
    void *ptr[PC_SLOTS];
    size_t size[PC_SLOTS];
};

static struct pc_queue queue = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .not_empty = PTHREAD_COND_INITIALIZER,
    .not_full = PTHREAD_COND_INITIALIZER,
};

static void *producer(void *unused)
{
    unsigned seed = 42;
    for (int i = 0; i < PC_ITEMS; i++) {
        /* Mostly small, every 16th up to 8 KiB (medium), every 256th up
         * to 48 KiB (medium or the backing allocator's); every 8th from
         * calloc. */
        size_t size = 1 + (size_t)rand_r(&seed) % (i % 256 == 0 ? 49152 : i % 16 == 0 ? 8192 : 512);
        void *p;
        if (i % 8 == 0) {
            p = calloc(1, size);
            if (p == NULL || !all_zero(p, size) || (dropin_owns(p) != 0) != dropin_served(size))
                errors++;
            else
                dropin_fill(p, size);
        } else {
            p = alloc_filled(size);
        }
        pthread_mutex_lock(&queue.lock);
        while (queue.count == PC_SLOTS)
            pthread_cond_wait(&queue.not_full, &queue.lock);
        size_t slot = (queue.head + queue.count) % PC_SLOTS;
        queue.ptr[slot] = p;
        queue.size[slot] = size;
        queue.count++;
        pthread_cond_signal(&queue.not_empty);
        pthread_mutex_unlock(&queue.lock);
    }
    return NULL;
}

static void *consumer(void *unused)
{
    for (int i = 0; i < PC_ITEMS; i++) {
        pthread_mutex_lock(&queue.lock);
        while (queue.count == 0)
            pthread_cond_wait(&queue.not_empty, &queue.lock);
        void *p = queue.ptr[queue.head];
        size_t size = queue.size[queue.head];
        queue.head = (queue.head + 1) % PC_SLOTS;
        queue.count--;
        pthread_cond_signal(&queue.not_full);
        pthread_mutex_unlock(&queue.lock);
        if (i % 5 == 0 && p != NULL) {
            /* Grow some blocks on this side: the contents must move along. */
            if (!dropin_check(p, size))
                errors++;
            unsigned char head[64];
            size_t keep = size < sizeof(head) ? size : sizeof(head);
            memcpy(head, p, keep);
            size_t bigger = size + 1 + (size_t)i % 700;
            void *q = realloc(p, bigger);
            if (q == NULL || memcmp(q, head, keep) != 0)
                errors++;
            dropin_fill(q, bigger);
            p = q;
            size = bigger;
        }
        check_and_free(p, size);
    }
    return NULL;
}

static void test_producer_consumer(void **state)
{
    errors = 0;
    pthread_t prod, cons;
    assert_int_equal(pthread_create(&cons, NULL, consumer, NULL), 0);
    assert_int_equal(pthread_create(&prod, NULL, producer, NULL), 0);
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    assert_int_equal(queue.count, 0);
    assert_int_equal(errors, 0);
}

/* ---- CHECKLIST 29: threads that exit with a live block ---- */

static void *return_block(void *unused)
{
    return alloc_filled(32);
}

static void test_thread_exit_live_blocks(void **state)
{
    enum { NTHREADS = 20000, WARMUP = 1000 };
    errors = 0;
    size_t rss_warm = 0;
    for (int i = 0; i < NTHREADS; i++) {
        if (i == WARMUP)
            rss_warm = dropin_rss_kib();
        pthread_t tid;
        assert_int_equal(pthread_create(&tid, NULL, return_block, NULL), 0);
        void *p;
        assert_int_equal(pthread_join(tid, &p), 0);
        assert_true(dropin_owns(p));
        check_and_free(p, 32);
    }
    size_t rss_end = dropin_rss_kib();
    assert_int_equal(errors, 0);
    /* Every block was freed: growth after the warm-up is noise, not
     * per-thread state left behind (20,000 leaked 4 KiB would be 80 MiB). */
    assert_true(rss_warm > 0);
    if (rss_end > rss_warm + 4096)
        fail_msg("RSS grew from %zu to %zu KiB over %d threads", rss_warm, rss_end,
                 NTHREADS - WARMUP);
}

/* ---- CHECKLIST 30: thread churn ---- */

enum { CHURN_OUTER = 2, CHURN_INNER = 4 };

struct churn_inner {
    pthread_barrier_t *barrier;
    bool alloc_first;
    size_t size;
};

static void *churn_inner_thread(void *argp)
{
    struct churn_inner *arg = argp;
    void *p = NULL;
    if (arg->alloc_first)
        p = alloc_filled(arg->size);
    pthread_barrier_wait(arg->barrier);
    if (!arg->alloc_first)
        p = alloc_filled(arg->size);
    return p; /* the outer thread checks and frees it */
}

static atomic_long churn_starts;
static double churn_deadline;

static void *churn_outer_thread(void *argp)
{
    unsigned seed = (unsigned)(uintptr_t)argp;
    while (dropin_now() < churn_deadline) {
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, CHURN_INNER + 1);
        pthread_t tid[CHURN_INNER];
        struct churn_inner args[CHURN_INNER];
        for (int i = 0; i < CHURN_INNER; i++) {
            /* small and medium sizes, one thread in 4 up to 40,000 bytes */
            size_t top = i == 3 ? 40000 : 1500;
            args[i] = (struct churn_inner){&barrier, i % 2 == 0, 1 + (size_t)rand_r(&seed) % top};
            if (pthread_create(&tid[i], NULL, churn_inner_thread, &args[i]) != 0) {
                errors++;
                return NULL; /* the barrier would never open */
            }
        }
        void *mine = alloc_filled(48); /* the outer thread allocates meanwhile */
        pthread_barrier_wait(&barrier);
        for (int i = 0; i < CHURN_INNER; i++) {
            void *p;
            pthread_join(tid[i], &p);
            check_and_free(p, args[i].size);
        }
        check_and_free(mine, 48);
        pthread_barrier_destroy(&barrier);
        churn_starts += CHURN_INNER;
    }
    return NULL;
}

static void test_thread_churn(void **state)
{
    errors = 0;
    churn_deadline = dropin_now() + 1.5;
    pthread_t tid[CHURN_OUTER];
    for (uintptr_t i = 0; i < CHURN_OUTER; i++)
        assert_int_equal(pthread_create(&tid[i], NULL, churn_outer_thread, (void *)(i + 1)), 0);
    for (int i = 0; i < CHURN_OUTER; i++)
        pthread_join(tid[i], NULL);
    assert_int_equal(errors, 0);
    assert_true(churn_starts > 0);
    print_message("# %ld inner threads in 1.5 s\n", (long)churn_starts);
}

int main(void)
{
    dropin_require_obm(120);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_thread_free),
        cmocka_unit_test(test_producer_consumer),
        cmocka_unit_test(test_thread_exit_live_blocks),
        cmocka_unit_test(test_thread_churn),
    };
    return DROPIN_RUN_TAP(tests);
}
