/* Death tests: a pointer into an obm pool that is not the start of a block
 * in use makes free, realloc and malloc_usable_size abort with one line,
 * "obm: <function>(): invalid pointer 0x...", on stderr (the obm-owned cases
 * of TESTPLAN 45). The double frees caught so far (the block freed last into
 * its pool, a pool with no block in use) say "double free detected"; full
 * detection is a later issue. Built twice; see api.h.
 *
 * Each case runs in a child whose stderr goes into a pipe; the child first
 * reports the pointer it is about to pass through a second pipe, so the
 * parent knows the exact line to expect. Cases that need a heap nobody has
 * used yet (a never-used pool of a live arena) exec this program again, so
 * they run in a fresh process: main() runs the case named on its command
 * line.
 */
#include "api.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define POOL_HEADER 64 /* bytes at the start of each pool (src/types.h) */

/* Why a child exited instead of aborting (the parent prints the number). */
enum {
    EXIT_NO_REPORT = 3,  /* could not write to the report pipe */
    EXIT_NO_BLOCK = 4,   /* malloc failed or gave a block obm does not own */
    EXIT_NOT_FRESH = 5,  /* the heap was not as fresh as the case needs */
    EXIT_BAD_USABLE = 6, /* valid_calls: wrong usable size */
    EXIT_NO_DUP = 7,     /* dup2 failed */
    EXIT_NO_EXEC = 8,    /* exec of this program failed */
    EXIT_NO_CASE = 9,    /* no case of that name */
};

static int report_fd = -1;

/* Tell the parent which pointer is about to be passed. */
static void report(const void *p)
{
    uintptr_t v = (uintptr_t)p;
    if (write(report_fd, &v, sizeof v) != (ssize_t)sizeof v)
        _exit(EXIT_NO_REPORT);
}

static char *small_block(size_t n)
{
    char *p = T_MALLOC(OPQ(n));
    if (p == NULL || !T_OWNS(p))
        _exit(EXIT_NO_BLOCK);
    return p;
}

static char *pool_of(const void *p)
{
    return (char *)((uintptr_t)p & ~(uintptr_t)(OBM_POOL_SIZE - 1));
}

static char *arena_of(const void *p)
{
    return (char *)((uintptr_t)p & ~(uintptr_t)(OBM_ARENA_SIZE - 1));
}

static void bad_free(char *p)
{
    report(p);
    T_FREE(p);
}

static void bad_realloc(char *p, size_t n)
{
    report(p);
    void *volatile q = T_REALLOC(p, OPQ(n));
    (void)q;
}

static void bad_usable_size(char *p)
{
    report(p);
    volatile size_t n = T_USABLE_SIZE(p);
    (void)n;
}

/* In a fresh process the first arena has given out a few pools, from pool
 * 0 up: its last pool has never been used. */
static char *unused_pool_pointer(void)
{
    char *p = small_block(32);
    char *last = arena_of(p) + (OBM_ARENA_SIZE - OBM_POOL_SIZE);
    if (pool_of(p) >= arena_of(p) + OBM_ARENA_SIZE / 2)
        _exit(EXIT_NOT_FRESH);
    return last + POOL_HEADER;
}

static void free_p_plus_1(void)
{
    bad_free(small_block(32) + 1);
}

static void free_p_plus_8(void)
{
    bad_free(small_block(32) + 8);
}

static void free_pool_start(void)
{
    bad_free(pool_of(small_block(32)));
}

static void free_in_pool_header(void)
{
    bad_free(pool_of(small_block(48)) + 48);
}

static void free_unused_pool(void)
{
    bad_free(unused_pool_pointer());
}

/* The 512-byte class has 7 blocks at 64 + 512 k and a 448-byte tail. */
static void free_pool_tail(void)
{
    bad_free(pool_of(small_block(512)) + POOL_HEADER + 7 * 512);
}

/* Blocks are carved 16 at a time: block 40 of a fresh 96-byte pool is not. */
static void free_uncarved_block(void)
{
    char *p = small_block(96);
    char *q = pool_of(p) + POOL_HEADER + 40 * 96;
    if (p >= q)
        _exit(EXIT_NOT_FRESH);
    bad_free(q);
}

static void realloc_p_plus_16(void)
{
    bad_realloc(small_block(64) + 16, 10);
}

static void realloc_pool_start(void)
{
    bad_realloc(pool_of(small_block(64)), 100);
}

static void realloc_unused_pool(void)
{
    bad_realloc(unused_pool_pointer(), 1000);
}

static void usable_size_p_plus_1(void)
{
    bad_usable_size(small_block(32) + 1);
}

static void usable_size_unused_pool(void)
{
    bad_usable_size(unused_pool_pointer());
}

/* Freeing the block freed last into its pool. */
static void double_free_immediate(void)
{
    char *a = small_block(32), *b = small_block(32);
    (void)b;
    T_FREE(a);
    bad_free(a);
}

/* The only block of its class: its pool is empty (and kept) after the first
 * free. A fresh process, so no other block of the class exists. */
static void double_free_sole_block(void)
{
    char *p = small_block(464);
    T_FREE(p);
    bad_free(p);
}

static void realloc_after_free(void)
{
    char *a = small_block(80), *b = small_block(80);
    (void)b;
    T_FREE(a);
    bad_realloc(a, 100);
}

static void usable_size_after_free(void)
{
    char *a = small_block(80), *b = small_block(80);
    (void)b;
    T_FREE(a);
    bad_usable_size(a);
}

/* The control: valid calls, so the child must exit cleanly and silently. */
static void valid_calls(void)
{
    char *p = small_block(32);
    p = T_REALLOC(p, OPQ(64));
    if (T_USABLE_SIZE(p) != 64)
        _exit(EXIT_BAD_USABLE);
    T_FREE(p);
}

#define INVALID "invalid pointer"
#define DOUBLE  "double free detected"

static const struct death_case {
    const char *name;
    const char *func; /* in the message; NULL: no abort expected */
    int fresh;        /* run in a fresh process */
    void (*run)(void);
    const char *what; /* the message after the function name */
} death_cases[] = {
    {"free_p_plus_1", "free", 0, free_p_plus_1, INVALID},
    {"free_p_plus_8", "free", 0, free_p_plus_8, INVALID},
    {"free_pool_start", "free", 0, free_pool_start, INVALID},
    {"free_in_pool_header", "free", 0, free_in_pool_header, INVALID},
    {"free_unused_pool", "free", 1, free_unused_pool, INVALID},
    {"free_pool_tail", "free", 0, free_pool_tail, INVALID},
    {"free_uncarved_block", "free", 1, free_uncarved_block, INVALID},
    {"realloc_p_plus_16", "realloc", 0, realloc_p_plus_16, INVALID},
    {"realloc_pool_start", "realloc", 0, realloc_pool_start, INVALID},
    {"realloc_unused_pool", "realloc", 1, realloc_unused_pool, INVALID},
    {"usable_size_p_plus_1", "malloc_usable_size", 0, usable_size_p_plus_1, INVALID},
    {"usable_size_unused_pool", "malloc_usable_size", 1, usable_size_unused_pool, INVALID},
    {"double_free_immediate", "free", 0, double_free_immediate, DOUBLE},
    {"double_free_sole_block", "free", 1, double_free_sole_block, DOUBLE},
    {"realloc_after_free", "realloc", 0, realloc_after_free, INVALID},
    {"usable_size_after_free", "malloc_usable_size", 0, usable_size_after_free, INVALID},
    {"valid_calls", NULL, 0, valid_calls, NULL},
    {"valid_calls_fresh", NULL, 1, valid_calls, NULL},
};
enum { NCASES = sizeof death_cases / sizeof death_cases[0] };

static const struct death_case *find_case(const char *name)
{
    for (size_t i = 0; i < NCASES; i++)
        if (strcmp(death_cases[i].name, name) == 0)
            return &death_cases[i];
    return NULL;
}

/* Read fd to EOF; returns the byte count (buf is NUL-terminated). */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || (n += (size_t)got) == cap - 1)
            break;
    }
    buf[n] = '\0';
    return n;
}

static void child(const struct death_case *c, int err_fd, int rep_fd, const char *self)
{
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGABRT, SIG_DFL);
    alarm(20); /* a child that neither aborts nor exits dies of SIGALRM */
    if (dup2(err_fd, STDERR_FILENO) < 0)
        _exit(EXIT_NO_DUP);
    if (c->fresh) {
        char fd[16];
        snprintf(fd, sizeof fd, "%d", rep_fd);
        unsetenv("OBM_VERBOSE");
        execl(self, self, "--death-case", c->name, fd, (char *)NULL);
        _exit(EXIT_NO_EXEC);
    }
    report_fd = rep_fd;
    c->run();
    _exit(0);
}

static void test_death(void **state)
{
    const struct death_case *c = *state;
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(len > 0);
    self[len] = '\0';

    int err[2], rep[2];
    assert_int_equal(pipe(err), 0);
    assert_int_equal(pipe(rep), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(err[0]);
        close(rep[0]);
        child(c, err[1], rep[1], self);
    }
    close(err[1]);
    close(rep[1]);
    char rep_buf[4 * sizeof(uintptr_t) + 1];
    size_t nrep = read_all(rep[0], rep_buf, sizeof rep_buf) / sizeof(uintptr_t);
    uintptr_t reported;
    memcpy(&reported, rep_buf, sizeof reported);
    char out[1024];
    read_all(err[0], out, sizeof out);
    close(err[0]);
    close(rep[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);

    if (c->func == NULL) {
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out[0] != '\0')
            fail_msg("%s: status %#x, stderr \"%s\"; want a clean exit", c->name, status, out);
        return;
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        fail_msg("%s: child did not abort: %s %d, stderr \"%s\"", c->name,
                 WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), out);
    if (nrep != 1)
        fail_msg("%s: the child reported %zu pointers", c->name, nrep);
    char want[128];
    snprintf(want, sizeof want, "obm: %s(): %s 0x%" PRIxPTR "\n", c->func, c->what, reported);
    if (strcmp(out, want) != 0)
        fail_msg("%s: stderr \"%s\", want \"%s\"", c->name, out, want);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--death-case") == 0) {
        const struct death_case *c = find_case(argv[2]);
        if (c == NULL)
            return EXIT_NO_CASE;
        report_fd = atoi(argv[3]);
        c->run();
        return 0;
    }

    struct CMUnitTest tests[1 + NCASES] = {cmocka_unit_test(test_obm_active)};
    for (size_t i = 0; i < NCASES; i++)
        tests[1 + i] = (struct CMUnitTest){.name = death_cases[i].name,
                                           .test_func = test_death,
                                           .initial_state = (void *)&death_cases[i]};
    return RUN_TAP_TESTS(tests);
}
