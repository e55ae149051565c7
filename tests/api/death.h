/* Death tests for the API programs (invalid.c, hardening.c): each case runs
 * in a child whose stderr goes into a pipe, and the parent checks how the
 * child ended (SIGABRT, or a clean exit) and every line it wrote.
 *
 * The child knows the addresses, so it tells the parent what to expect
 * through a second pipe, just before the call that should print: one record
 * per line, "E" and the exact line, or "P" and the line's beginning. A child
 * that cannot go on (its set-up failed, or obm did what it must not) says
 * why in an "X" record (death_fail).
 *
 * Cases that need a process nobody has allocated in yet, or environment
 * variables that obm reads at start-up (OBM_ON_ERROR, OBM_PURGE_DELAY_MS),
 * exec this program again: death_main, first thing in main, runs the case
 * named on the command line. Included once per program, after api.h.
 */
#ifndef OBM_TESTS_DEATH_H
#define OBM_TESTS_DEATH_H

#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>

#define POOL_HEADER 64 /* bytes at the start of each pool (src/types.h) */

enum death_end {
    DEATH_ABORT = 1, /* SIGABRT, and stderr exactly as reported */
    DEATH_ABORT_ANY, /* SIGABRT; stderr is someone else's (glibc's, ASan's) */
    DEATH_EXIT,      /* exit status 0, and stderr exactly as reported (often nothing) */
};

struct death_case {
    const char *name;
    enum death_end end;
    int fresh;          /* run in a fresh process (exec), even without env */
    const char *env[2]; /* NAME=value for that process */
    void (*run)(void);
    void (*test)(void **state); /* the cmocka test, if not test_death */
};

/* The child's end of the expectation pipe, and the case's argument (a
 * seed, a class), passed along to a fresh process. */
static int death_fd = -1;
static uint64_t death_arg;

enum { DEATH_EXIT_SETUP = 3 }; /* the child could not set its case up */

static void death_record(char kind, const char *fmt, va_list ap)
{
    char buf[512];
    buf[0] = kind;
    int n = vsnprintf(buf + 1, sizeof buf - 2, fmt, ap);
    if (n < 0 || (size_t)n > sizeof buf - 3)
        _exit(DEATH_EXIT_SETUP);
    buf[1 + n] = '\n';
    if (write(death_fd, buf, (size_t)n + 2) != n + 2)
        _exit(DEATH_EXIT_SETUP);
}

/* The next line on stderr is exactly this (without its newline). */
__attribute__((format(printf, 1, 2))) static void expect_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    death_record('E', fmt, ap);
    va_end(ap);
}

/* The next line on stderr begins with this. */
__attribute__((format(printf, 1, 2), unused)) static void expect_prefix(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    death_record('P', fmt, ap);
    va_end(ap);
}

/* The case cannot go on (its set-up failed, or obm did what it must not):
 * the parent fails it with this reason. */
__attribute__((format(printf, 1, 2), noreturn)) static void death_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    death_record('X', fmt, ap);
    va_end(ap);
    _exit(DEATH_EXIT_SETUP);
}

/* ---- obm's messages (docs/hardening.md) ---- */

/* The page p lies in: a small block's pool (block_pool in api.h finds a
 * medium block's). */
static char *pool_of(const void *p)
{
    return (char *)((uintptr_t)p & ~(uintptr_t)(OBM_POOL_SIZE - 1));
}

__attribute__((unused)) static char *arena_of(const void *p)
{
    return (char *)((uintptr_t)p & ~(uintptr_t)(OBM_ARENA_SIZE - 1));
}

/* The size class of a request of n <= OBM_MEDIUM_MAX bytes, small or
 * medium (api.h). */
static unsigned class_of(size_t n)
{
    return class_index(n);
}

__attribute__((unused)) static void expect_invalid(const char *func, const void *p)
{
    expect_line("obm: %s(): invalid pointer 0x%" PRIxPTR, func, (uintptr_t)p);
}

/* The messages name a block's class, its block size and its pool: the
 * page of a small block, the first page of a medium block's pool (whose
 * header is there), which the pool's size aligns (api.h, block_pool). */

/* p is a block of a request of n bytes, already free. */
__attribute__((unused)) static void expect_double_free(const void *p, size_t n)
{
    unsigned c = class_of(n);
    expect_line("obm: free(): double free detected (ptr=0x%" PRIxPTR
                ", class %u of %zu bytes, pool 0x%" PRIxPTR ")",
                (uintptr_t)p, c, class_bytes(c), (uintptr_t)block_pool(p, n));
}

__attribute__((unused)) static void expect_freed(const char *func, const void *p, size_t n)
{
    unsigned c = class_of(n);
    expect_line("obm: %s(): pointer already freed (ptr=0x%" PRIxPTR
                ", class %u of %zu bytes, pool 0x%" PRIxPTR ")",
                func, (uintptr_t)p, c, class_bytes(c), (uintptr_t)block_pool(p, n));
}

/* A malloc of n bytes finds the free list of p's pool corrupted. */
__attribute__((unused)) static void expect_corrupted(const void *p, size_t n)
{
    unsigned c = class_of(n);
    expect_prefix("obm: malloc(): corrupted free list (pool 0x%" PRIxPTR ", class %u of %zu bytes)",
                  (uintptr_t)block_pool(p, n), c, class_bytes(c));
}

/* A block obm owns (n <= OBM_MEDIUM_MAX: small or medium), or the case
 * fails. */
static char *small_block(size_t n)
{
    char *p = T_MALLOC(OPQ(n));
    if (p == NULL || !T_OWNS(p))
        death_fail("malloc(%zu) gave %p, not a block of obm's", n, (void *)p);
    return p;
}

/* obm's statistics now; through the drop-in's obm_stats_get when obm is
 * preloaded rather than linked. */
static inline obm_stats_t death_stats(void)
{
#ifdef OBM_API_PRELOAD
    int (*get)(obm_stats_t *) = (int (*)(obm_stats_t *))dlsym(RTLD_DEFAULT, "obm_stats_get");
    if (get == NULL)
        death_fail("the drop-in does not export obm_stats_get");
#else
    int (*get)(obm_stats_t *) = obm_stats_get;
#endif
    obm_stats_t s = {.size = sizeof s};
    if (get(&s) != 0 || s.version != OBM_STATS_VERSION)
        death_fail("obm_stats_get failed or gave version %zu", s.version);
    return s;
}

/* ---- the parent ---- */

static const struct death_case *death_find(const struct death_case *cases, size_t n,
                                           const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(cases[i].name, name) == 0)
            return &cases[i];
    return NULL;
}

/* Start-up options that print or change what the cases expect: a fresh
 * process gets only its case's. */
static const char *const death_unset[] = {
    "OBM_VERBOSE",  "OBM_SHOW_STATS",     "OBM_STATS_FILE",   "OBM_MAP",
    "OBM_ON_ERROR", "OBM_PURGE_DELAY_MS", "OBM_PURGE_ADVICE", "OBM_ARENA_KEEP",
};

static void death_child(const struct death_case *c, int err_fd, int rep_fd)
{
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    signal(SIGABRT, SIG_DFL);
    alarm(60); /* a child that neither aborts nor exits dies of SIGALRM */
    if (dup2(err_fd, STDERR_FILENO) < 0)
        _exit(DEATH_EXIT_SETUP);
    death_fd = rep_fd;
    if (c->fresh || c->env[0] != NULL) {
        char self[4096], fd[16], arg[32];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len <= 0)
            death_fail("readlink /proc/self/exe failed");
        self[len] = '\0';
        snprintf(fd, sizeof fd, "%d", rep_fd);
        snprintf(arg, sizeof arg, "%" PRIu64, death_arg);
        for (size_t i = 0; i < sizeof death_unset / sizeof death_unset[0]; i++)
            unsetenv(death_unset[i]);
        for (size_t i = 0; i < 2 && c->env[i] != NULL; i++)
            putenv((char *)c->env[i]);
        execl(self, self, "--death-case", c->name, fd, arg, (char *)NULL);
        death_fail("exec of %s failed", self);
    }
    c->run();
    _exit(0);
}

/* How a child ended: its wait status, stderr and expectation records. */
struct death_outcome {
    int status;
    char err[4096];
    char rep[4096];
};

/* Reads both pipes to their end (at most cap - 1 bytes of each is kept). */
static void death_collect(int err_fd, int rep_fd, struct death_outcome *o)
{
    struct pollfd fds[2] = {{.fd = err_fd, .events = POLLIN}, {.fd = rep_fd, .events = POLLIN}};
    char *buf[2] = {o->err, o->rep};
    size_t len[2] = {0, 0}, cap = sizeof o->err;
    int open = 2;
    while (open > 0) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || fds[i].revents == 0)
                continue;
            char chunk[1024];
            ssize_t got = read(fds[i].fd, chunk, sizeof chunk);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0) {
                fds[i].fd = -1;
                open--;
                continue;
            }
            size_t keep = (size_t)got < cap - 1 - len[i] ? (size_t)got : cap - 1 - len[i];
            memcpy(buf[i] + len[i], chunk, keep);
            len[i] += keep;
        }
    }
    o->err[len[0]] = '\0';
    o->rep[len[1]] = '\0';
}

/* Runs case c in a child, with death_arg = arg. */
static void death_run(const struct death_case *c, uint64_t arg, struct death_outcome *o)
{
    int err[2], rep[2];
    assert_int_equal(pipe(err), 0);
    assert_int_equal(pipe(rep), 0);
    death_arg = arg;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(err[0]);
        close(rep[0]);
        death_child(c, err[1], rep[1]);
    }
    close(err[1]);
    close(rep[1]);
    death_collect(err[0], rep[0], o);
    close(err[0]);
    close(rep[0]);
    assert_int_equal(waitpid(pid, &o->status, 0), pid);
}

/* The child's reason for giving up, if it gave one. */
static const char *death_setup_failure(const struct death_outcome *o)
{
    const char *x = o->rep[0] == 'X' ? o->rep : strstr(o->rep, "\nX");
    return x == NULL ? NULL : x + (x[0] == 'X' ? 1 : 2);
}

/* Whether stderr is the lines the child announced. */
static int death_lines_match(const struct death_outcome *o)
{
    const char *want = o->rep, *got = o->err;
    while (*want != '\0') {
        const char *wend = strchr(want, '\n'), *gend = strchr(got, '\n');
        if (wend == NULL || gend == NULL || (want[0] != 'E' && want[0] != 'P'))
            return 0;
        size_t wlen = (size_t)(wend - want - 1), glen = (size_t)(gend - got);
        if (want[0] == 'E' ? wlen != glen : wlen > glen)
            return 0;
        if (memcmp(want + 1, got, wlen) != 0)
            return 0;
        want = wend + 1;
        got = gend + 1;
    }
    return *got == '\0';
}

static int death_aborted(const struct death_outcome *o)
{
    return WIFSIGNALED(o->status) && WTERMSIG(o->status) == SIGABRT;
}

static int death_exited_cleanly(const struct death_outcome *o)
{
    return WIFEXITED(o->status) && WEXITSTATUS(o->status) == 0;
}

static void death_describe(const struct death_outcome *o, char *buf, size_t cap)
{
    if (WIFSIGNALED(o->status))
        snprintf(buf, cap, "signal %d", WTERMSIG(o->status));
    else
        snprintf(buf, cap, "exit status %d", WEXITSTATUS(o->status));
}

/* Fails the current test unless the child ended as case c must. */
static void death_check(const struct death_case *c, uint64_t arg, const struct death_outcome *o)
{
    char name[128], how[32];
    if (arg != 0)
        snprintf(name, sizeof name, "%s (arg %" PRIu64 ")", c->name, arg);
    else
        snprintf(name, sizeof name, "%s", c->name);
    death_describe(o, how, sizeof how);
    const char *why = death_setup_failure(o);
    if (why != NULL)
        fail_msg("%s: the child gave up: %s", name, why);
    int ended = c->end == DEATH_EXIT ? death_exited_cleanly(o) : death_aborted(o);
    if (!ended)
        fail_msg("%s: child ended with %s, want %s; stderr \"%s\"", name, how,
                 c->end == DEATH_EXIT ? "exit status 0" : "SIGABRT", o->err);
    if (c->end != DEATH_ABORT_ANY && !death_lines_match(o))
        fail_msg("%s: stderr \"%s\", want the lines (E: exact, P: prefix) \"%s\"", name, o->err,
                 o->rep);
}

static void test_death(void **state)
{
    const struct death_case *c = *state;
    struct death_outcome o;
    death_run(c, 0, &o);
    death_check(c, 0, &o);
}

/* In a process exec'd by death_child: runs the case and returns 0; -1
 * when this process is not one. */
static int death_main(int argc, char **argv, const struct death_case *cases, size_t n)
{
    if (argc != 5 || strcmp(argv[1], "--death-case") != 0)
        return -1;
    death_fd = atoi(argv[3]);
    death_arg = strtoull(argv[4], NULL, 10);
    const struct death_case *c = death_find(cases, n, argv[2]);
    if (c == NULL)
        death_fail("no case named %s", argv[2]);
    c->run();
    return 0;
}

/* One cmocka test per case, into tests[0..n). */
static void death_tests(struct CMUnitTest *tests, const struct death_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tests[i] = (struct CMUnitTest){.name = cases[i].name,
                                       .test_func = cases[i].test ? cases[i].test : test_death,
                                       .initial_state = (void *)&cases[i]};
}

/* The program's main: a case named on the command line (a fresh process),
 * else every case as a cmocka test after test_obm_active (api.h). */
#define DEATH_MAIN(cases)                                                                          \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        enum { N = sizeof(cases) / sizeof((cases)[0]) };                                           \
        int rc = death_main(argc, argv, cases, N);                                                 \
        if (rc >= 0)                                                                               \
            return rc;                                                                             \
        struct CMUnitTest tests[1 + N] = {cmocka_unit_test(test_obm_active)};                      \
        death_tests(tests + 1, cases, N);                                                          \
        return RUN_TAP_TESTS(tests);                                                               \
    }

#endif /* OBM_TESTS_DEATH_H */
