/* Out of memory (CHECKLIST 40 oom_recovers, 31 thread_oom): under a small
 * RLIMIT_AS every allocation call is driven to failure in turn (malloc,
 * calloc, realloc, reallocarray, posix_memalign, aligned_alloc, memalign,
 * and valloc and pvalloc where the drop-in defines them), for small and
 * medium pool blocks and for the backing allocator's, and fails as
 * docs/semantics.md says: NULL with errno ENOMEM; posix_memalign
 * returns ENOMEM with *memptr and errno untouched; a realloc that fails
 * keeps its block.
 * Blocks allocated before stay intact, and the same call works again once
 * memory is freed. Eight threads do the same, each through every call in
 * turn. Each scenario runs in a forked child, so the limit never reaches
 * the test harness; a child that finds a fault says what on stderr and
 * exits with the code below. Built twice; see api.h. */
#include "api.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define HEADROOM ((size_t)16 << 20) /* address space allowed past the start */

/* Why a child failed. */
enum {
    OOM_NEVER = 2,      /* allocation never failed, or never succeeded */
    OOM_ERRNO = 3,      /* failed, but not as documented */
    OOM_CONTENTS = 4,   /* a block allocated before the failure changed */
    OOM_NO_RECOVER = 5, /* no allocation after freeing */
    OOM_REALLOC = 6,    /* a failed realloc lost or changed its block */
    OOM_SETUP = 7,      /* rlimit or thread set-up failed */
    OOM_BLOCK = 8,      /* a block that succeeded is misaligned, short or not zeroed */
};

/* Says why on stderr, without allocating, and ends the child. */
__attribute__((format(printf, 2, 3), noreturn)) static void die(int code, const char *fmt, ...)
{
    static char msg[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof msg - 2)
        n = (int)sizeof msg - 2;
    msg[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, msg, (size_t)n);
    (void)w;
    _exit(code);
}

static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f == NULL || fscanf(f, "%lu", &pages) != 1)
        die(OOM_SETUP, "cannot read /proc/self/statm");
    fclose(f);
    return pages * page_size();
}

static void limit_address_space(size_t headroom)
{
    struct rlimit r = {.rlim_cur = vm_size() + headroom, .rlim_max = RLIM_INFINITY};
    r.rlim_max = r.rlim_cur;
    if (setrlimit(RLIMIT_AS, &r) != 0)
        die(OOM_SETUP, "setrlimit(RLIMIT_AS): errno %d", errno);
}

/* ---- the calls ---- */

enum api {
    API_MALLOC,
    API_CALLOC,
    API_REALLOC,
    API_REALLOCARRAY,
    API_POSIX_MEMALIGN,
    API_ALIGNED_ALLOC,
    API_MEMALIGN,
#ifdef T_HAVE_VALLOC
    API_VALLOC,
    API_PVALLOC,
#endif
    API_COUNT
};

static const char *const api_names[] = {
    "malloc", "calloc",  "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign",
#ifdef T_HAVE_VALLOC
    "valloc", "pvalloc",
#endif
};
_Static_assert(sizeof api_names / sizeof *api_names == API_COUNT, "a name per call");

/* The alignment a block from `api` must have. */
static size_t api_alignment(enum api api, size_t align)
{
    switch (api) {
    case API_POSIX_MEMALIGN:
    case API_ALIGNED_ALLOC:
    case API_MEMALIGN:
        return align;
#ifdef T_HAVE_VALLOC
    case API_VALLOC:
    case API_PVALLOC:
        return page_size();
#endif
    default:
        return 16;
    }
}

static int posix_memalign_target; /* what *memptr points at before the call */

/* One call of `api` for n bytes (n a multiple of 8; `align` for the calls
 * that take one). A usable block, or NULL once the failure was checked to
 * be the documented one. */
static void *attempt(enum api api, size_t n, size_t align)
{
    const char *name = api_names[api];
    void *p = NULL;
    errno = 0;
    switch (api) {
    case API_MALLOC:
        p = T_MALLOC(OPQ(n));
        break;
    case API_CALLOC:
        p = T_CALLOC(OPQ(n / 8), OPQ(8));
        break;
    case API_REALLOC: {
        /* A small block grown to n: a failure must leave it as it was. */
        unsigned char *s = T_REALLOC(NULL, OPQ(16));
        if (s == NULL)
            break;
        memset(s, 0x5c, 16);
        errno = 0;
        p = T_REALLOC(OPQP(s), OPQ(n));
        if (p == NULL) {
            int e = errno;
            for (int i = 0; i < 16; i++)
                if (s[i] != 0x5c)
                    die(OOM_REALLOC, "realloc(p, %zu) failed and changed p's byte %d", n, i);
            T_FREE(s);
            errno = e;
        }
        break;
    }
    case API_REALLOCARRAY:
        p = T_REALLOCARRAY(NULL, OPQ(n / 8), OPQ(8));
        break;
    case API_POSIX_MEMALIGN: {
        void *q = &posix_memalign_target;
        errno = EDOM;
        int rc = T_POSIX_MEMALIGN(&q, align, OPQ(n));
        if (errno != EDOM)
            die(OOM_ERRNO, "posix_memalign(%zu, %zu) returned %d and changed errno to %d", align, n,
                rc, errno);
        if (rc == 0) {
            p = q;
            break;
        }
        if (rc != ENOMEM)
            die(OOM_ERRNO, "posix_memalign(%zu, %zu) returned %d, expected ENOMEM (%d)", align, n,
                rc, ENOMEM);
        if (q != &posix_memalign_target)
            die(OOM_ERRNO, "posix_memalign(%zu, %zu) failed and changed *memptr to %p", align, n,
                q);
        return NULL;
    }
    case API_ALIGNED_ALLOC:
        p = T_ALIGNED_ALLOC(align, OPQ(n));
        break;
    case API_MEMALIGN:
        p = T_MEMALIGN(align, OPQ(n));
        break;
#ifdef T_HAVE_VALLOC
    case API_VALLOC:
        p = T_VALLOC(OPQ(n));
        break;
    case API_PVALLOC:
        p = T_PVALLOC(OPQ(n));
        break;
#endif
    default:
        die(OOM_SETUP, "no call %d", (int)api);
    }
    if (p == NULL) {
        if (errno != ENOMEM)
            die(OOM_ERRNO, "%s(%zu) returned NULL with errno %d, expected ENOMEM (%d)", name, n,
                errno, ENOMEM);
        return NULL;
    }
    if ((uintptr_t)p % api_alignment(api, align) != 0 || T_USABLE_SIZE(p) < n)
        die(OOM_BLOCK, "%s(%zu): block %p, %zu usable bytes", name, n, p, T_USABLE_SIZE(p));
    /* obm's pools serve it exactly when obm serves the size (small or
     * medium) at no more than obm's alignment. */
    int pooled = api_alignment(api, align) <= OBM_ALIGNMENT && obm_serves(n);
    if ((T_OWNS(p) != 0) != pooled)
        die(OOM_BLOCK, "%s(%zu): block %p owned %d, want %d", name, n, p, T_OWNS(p), pooled);
    if (api == API_CALLOC)
        for (size_t i = 0; i < n; i++)
            if (((unsigned char *)p)[i] != 0)
                die(OOM_BLOCK, "calloc(%zu): byte %zu is not zero", n, i);
    return p;
}

/* ---- chains of blocks ---- */

/* A singly linked list of n-byte blocks threaded through their first word,
 * newest first; the rest of each block holds a pattern tied to its
 * address. */
struct chain {
    void *head;
    size_t count, n;
};

static void chain_push(struct chain *c, void *p)
{
    pattern_fill((char *)p + sizeof(void *), c->n - sizeof(void *), (uintptr_t)p);
    *(void **)p = c->head;
    c->head = p;
    c->count++;
}

/* Free the newest blocks, checking each one's pattern, until `keep` are
 * left: the newest are neighbours, so what they free is contiguous enough
 * for any request of the same call to fit again. */
static void chain_free(struct chain *c, size_t keep)
{
    while (c->count > keep) {
        void *p = c->head;
        c->head = *(void **)p;
        c->count--;
        if (pattern_check((char *)p + sizeof(void *), c->n - sizeof(void *), (uintptr_t)p) !=
            c->n - sizeof(void *))
            die(OOM_CONTENTS, "a %zu-byte block changed while memory ran out", c->n);
        T_FREE(p);
    }
}

/* Blocks from `api` until it fails (cleanly: attempt checks). */
static struct chain exhaust(enum api api, size_t n, size_t align)
{
    struct chain c = {NULL, 0, n};
    for (void *p; (p = attempt(api, n, align)) != NULL;) {
        chain_push(&c, p);
        if (c.count > ((size_t)1 << 26))
            die(OOM_NEVER, "%s(%zu) never fails", api_names[api], n);
    }
    return c;
}

/* ---- one thread ---- */

/* Every call in turn: it runs out, requests past the limit fail too (a
 * realloc keeping its block), half is freed and the call works again,
 * everything is freed and as much fits again, within a tenth. */
static void every_call(size_t n, size_t align)
{
    limit_address_space(HEADROOM);
    for (int api = 0; api < API_COUNT; api++) {
        const char *name = api_names[api];
        struct chain c = exhaust(api, n, align);
        if (c.count == 0)
            die(OOM_NEVER, "%s(%zu) failed before anything was allocated", name, n);
        size_t first = c.count;

        errno = 0;
        if (T_MALLOC(OPQ(HEADROOM)) != NULL || errno != ENOMEM)
            die(OOM_ERRNO, "after %s ran out, malloc(past the limit): errno %d", name, errno);
        errno = 0;
        if (T_REALLOC(OPQP(c.head), OPQ(HEADROOM)) != NULL || errno != ENOMEM)
            die(OOM_REALLOC, "after %s ran out, realloc(p, past the limit): errno %d", name, errno);

        chain_free(&c, first / 2);
        void *again = attempt(api, n, align);
        if (again == NULL)
            die(OOM_NO_RECOVER, "%s(%zu) fails after half its blocks were freed", name, n);
        T_FREE(again);
        chain_free(&c, 0);
        struct chain d = exhaust(api, n, align);
        if (d.count < first - first / 10)
            die(OOM_NO_RECOVER, "%s(%zu): %zu blocks fit at first, %zu after all were freed", name,
                n, first, d.count);
        chain_free(&d, 0);
    }
    _exit(0);
}

static void oom_small(void)
{
    every_call(48, 16); /* pool blocks; valloc and pvalloc go to the backing allocator */
}

static void oom_medium(void)
{
    every_call(3000, 16); /* medium pool blocks (64 KiB pools); valloc and pvalloc as above */
}

static void oom_large(void)
{
    every_call(40000, 64); /* the backing allocator's: above OBM_MEDIUM_MAX */
}

/* ---- eight threads ---- */

/* Each thread goes through every call with its own size and alignment
 * (pool blocks or the backing allocator's). A round: all run the call out
 * at once, each checking its own failure; all free everything; each
 * allocates once more with the call, which must work. */
enum { NTHREADS = 8 };
static pthread_barrier_t round_barrier;
static size_t thread_counts[NTHREADS][API_COUNT];

static void *oom_thread(void *arg)
{
    size_t id = (size_t)arg;
    static const size_t sizes[] = {32, 200, 512, 2000, 40000};
    size_t n = sizes[id % 5], align = id % 2 ? 64 : 16;
    for (int api = 0; api < API_COUNT; api++) {
        pthread_barrier_wait(&round_barrier); /* everything free */
        struct chain c = exhaust(api, n, align);
        thread_counts[id][api] = c.count;
        pthread_barrier_wait(&round_barrier); /* memory full */
        chain_free(&c, 0);
        pthread_barrier_wait(&round_barrier); /* everything free again */
        void *p = attempt(api, n, align);
        if (p == NULL)
            die(OOM_NO_RECOVER, "thread %zu: %s(%zu) fails after every block was freed", id,
                api_names[api], n);
        T_FREE(p);
    }
    pthread_barrier_wait(&round_barrier);
    return NULL;
}

static void thread_oom(void)
{
    pthread_t t[NTHREADS];
    if (pthread_barrier_init(&round_barrier, NULL, NTHREADS + 1) != 0)
        die(OOM_SETUP, "pthread_barrier_init");
    for (size_t i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, oom_thread, (void *)i) != 0)
            die(OOM_SETUP, "pthread_create");
    limit_address_space(HEADROOM);
    for (int api = 0; api < API_COUNT; api++)
        for (int phase = 0; phase < 3; phase++)
            pthread_barrier_wait(&round_barrier);
    pthread_barrier_wait(&round_barrier);
    for (size_t i = 0; i < NTHREADS; i++)
        if (pthread_join(t[i], NULL) != 0)
            die(OOM_SETUP, "pthread_join");
    /* Memory ran out in every round while the threads held blocks. */
    for (int api = 0; api < API_COUNT; api++) {
        size_t total = 0;
        for (size_t i = 0; i < NTHREADS; i++)
            total += thread_counts[i][api];
        if (total == 0)
            die(OOM_NEVER, "%s: no thread allocated anything", api_names[api]);
    }
    struct chain c = exhaust(API_MALLOC, 64, 16); /* the allocator still works */
    if (c.count == 0)
        die(OOM_NO_RECOVER, "malloc(64) fails after the threads freed everything");
    chain_free(&c, 0);
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
    if (WEXITSTATUS(status) != 0)
        fail_msg("child exited with %d (its reason is on stderr above)", WEXITSTATUS(status));
}

static void test_oom_small_recovers(void **state)
{
    (void)state;
    run_in_child(oom_small);
}

static void test_oom_medium_recovers(void **state)
{
    (void)state;
    run_in_child(oom_medium);
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
        cmocka_unit_test(test_obm_active),          cmocka_unit_test(test_oom_small_recovers),
        cmocka_unit_test(test_oom_medium_recovers), cmocka_unit_test(test_oom_large_recovers),
        cmocka_unit_test(test_thread_oom),
    };
    return RUN_TAP_TESTS(tests);
}
