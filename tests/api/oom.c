/* Out of memory (TESTPLAN 40 oom_recovers, 31 thread_oom): under a small
 * RLIMIT_AS every API returns NULL with errno ENOMEM (posix_memalign:
 * ENOMEM) instead of crashing, blocks allocated before stay intact, and
 * the allocator works normally once memory is freed. Each scenario runs in
 * a forked child, so the limit never reaches the test harness. Built twice;
 * see api.h. */
#include "api.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define HEADROOM ((size_t)64 << 20) /* address space allowed past the start */

/* Why a child failed (the parent prints the number). */
enum {
    OOM_NEVER = 2,      /* allocation never failed */
    OOM_ERRNO = 3,      /* failed without ENOMEM */
    OOM_CONTENTS = 4,   /* a block allocated before the failure changed */
    OOM_NO_RECOVER = 5, /* no allocation after freeing */
    OOM_REALLOC = 6,    /* a failed realloc lost its block */
    OOM_SETUP = 7,      /* rlimit or thread set-up failed */
};

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f == NULL || fscanf(f, "%lu", &pages) != 1)
        _exit(OOM_SETUP);
    fclose(f);
    return pages * page_size();
}

static void limit_address_space(size_t headroom)
{
    struct rlimit r = {.rlim_cur = vm_size() + headroom, .rlim_max = RLIM_INFINITY};
    r.rlim_max = r.rlim_cur;
    if (setrlimit(RLIMIT_AS, &r) != 0)
        _exit(OOM_SETUP);
}

/* A singly linked list of blocks threaded through their first word; the
 * rest of each block holds a pattern tied to its address. */
struct chain {
    void *head;
    size_t count;
};

static void chain_push(struct chain *c, void *p, size_t n)
{
    pattern_fill((char *)p + sizeof(void *), n - sizeof(void *), (uintptr_t)p);
    *(void **)p = c->head;
    c->head = p;
    c->count++;
}

/* Free every block, checking its pattern; frees every other one only when
 * half is set, keeping the rest. */
static void chain_free(struct chain *c, size_t n, int half)
{
    struct chain kept = {NULL, 0};
    size_t i = 0;
    while (c->head != NULL) {
        void *p = c->head;
        c->head = *(void **)p;
        if (pattern_check((char *)p + sizeof(void *), n - sizeof(void *), (uintptr_t)p) !=
            n - sizeof(void *))
            _exit(OOM_CONTENTS);
        if (half && i++ % 2) {
            *(void **)p = kept.head;
            kept.head = p;
            kept.count++;
        } else {
            T_FREE(p);
        }
    }
    *c = kept;
}

/* Allocate n-byte blocks with malloc until it fails; returns the chain. */
static struct chain exhaust(size_t n)
{
    struct chain c = {NULL, 0};
    for (;;) {
        errno = 0;
        void *p = T_MALLOC(OPQ(n));
        if (p == NULL) {
            if (errno != ENOMEM)
                _exit(OOM_ERRNO);
            break;
        }
        chain_push(&c, p, n);
        if (c.count > ((size_t)1 << 26))
            _exit(OOM_NEVER);
    }
    return c;
}

/* Small blocks until ENOMEM, every other API fails cleanly too, half freed,
 * allocation works again, everything freed, and it works once more. */
static void small_and_large(size_t n)
{
    limit_address_space(HEADROOM);
    struct chain c = exhaust(n);
    if (c.count == 0)
        _exit(OOM_NEVER);

    errno = 0;
    if (T_CALLOC(OPQ(1), OPQ(n)) != NULL || errno != ENOMEM)
        _exit(OOM_ERRNO);
    /* Over-aligned requests go to the backing allocator, which may still
     * have room of its own: it may succeed, or fail with ENOMEM, untouched. */
    void *q = NULL;
    int rc = T_POSIX_MEMALIGN(&q, 64, OPQ(n));
    if (rc == 0)
        T_FREE(q);
    else if (rc != ENOMEM || q != NULL)
        _exit(OOM_ERRNO);
    errno = 0;
    if (T_MALLOC(OPQ(HEADROOM)) != NULL || errno != ENOMEM)
        _exit(OOM_ERRNO);
    /* A failed realloc keeps its block: grow the newest far past the limit. */
    errno = 0;
    if (T_REALLOC(c.head, OPQ(HEADROOM)) != NULL || errno != ENOMEM)
        _exit(OOM_REALLOC);

    chain_free(&c, n, 1);
    void *again = T_MALLOC(OPQ(n));
    if (again == NULL)
        _exit(OOM_NO_RECOVER);
    T_FREE(again);
    chain_free(&c, n, 0);
    struct chain d = exhaust(n); /* as much fits again */
    if (d.count == 0)
        _exit(OOM_NO_RECOVER);
    chain_free(&d, n, 0);
    _exit(0);
}

static void oom_small(void)
{
    small_and_large(48);
}

static void oom_large(void)
{
    small_and_large(3000);
}

/* 8 threads allocate with every API until each fails, then free all. */
enum { NTHREADS = 8 };
static pthread_barrier_t start;

static void *oom_thread(void *arg)
{
    size_t id = (size_t)arg;
    pthread_barrier_wait(&start);
    struct chain c = {NULL, 0};
    size_t sizes[] = {32, 200, 512, 2000, 40000};
    size_t n = sizes[id % 5];
    for (int round = 0;; round++) {
        void *p = NULL;
        errno = 0;
        switch (round % 4) {
        case 0:
            p = T_MALLOC(OPQ(n));
            break;
        case 1:
            p = T_CALLOC(OPQ(n), OPQ(1));
            break;
        case 2:
            if (T_POSIX_MEMALIGN(&p, 32, OPQ(n)) != 0) {
                p = NULL;
                errno = ENOMEM;
            }
            break;
        default:
            p = T_ALIGNED_ALLOC(16, OPQ(n));
            break;
        }
        if (p == NULL) {
            if (errno != ENOMEM)
                return (void *)(uintptr_t)OOM_ERRNO;
            break;
        }
        chain_push(&c, p, n);
    }
    chain_free(&c, n, 0);
    return NULL;
}

static void thread_oom(void)
{
    pthread_t t[NTHREADS];
    if (pthread_barrier_init(&start, NULL, NTHREADS + 1) != 0)
        _exit(OOM_SETUP);
    for (size_t i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, oom_thread, (void *)i) != 0)
            _exit(OOM_SETUP);
    limit_address_space(HEADROOM);
    pthread_barrier_wait(&start);
    for (size_t i = 0; i < NTHREADS; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        if (rc != NULL)
            _exit((int)(uintptr_t)rc);
    }
    struct chain c = exhaust(64); /* the allocator still works */
    if (c.count == 0)
        _exit(OOM_NO_RECOVER);
    chain_free(&c, 64, 0);
    _exit(0);
}

static void run_in_child(void (*scenario)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60);
        scenario();
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        fail_msg("child died of signal %d", WTERMSIG(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_oom_small_recovers(void **state)
{
    (void)state;
    run_in_child(oom_small);
}

static void test_oom_large_recovers(void **state)
{
    (void)state;
    run_in_child(oom_large);
}

static void test_thread_oom(void **state)
{
    (void)state;
    run_in_child(thread_oom);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obm_active),
        cmocka_unit_test(test_oom_small_recovers),
        cmocka_unit_test(test_oom_large_recovers),
        cmocka_unit_test(test_thread_oom),
    };
    return RUN_TAP_TESTS(tests);
}
