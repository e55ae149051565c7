/* Drop-in, fork:
 *   CHECKLIST 34 fork_child_usable: the child checks and frees blocks
 *     allocated before the fork, then mallocs, memsets and frees, and forks
 *     a grandchild that does the same; the parent keeps working meanwhile.
 *     [jemalloc unit/fork; scudo Fork]
 *   CHECKLIST 35 fork_while_allocating: for 2 s, 4 threads fork while 4
 *     threads allocate, 2 read lines with getline and one calls
 *     fflush(NULL); every child mallocs and frees and exits with 17, and
 *     one child execs `true`. A deadlock (a lock inherited held) ends in
 *     SIGALRM, not a hung suite. [glibc tst-malloc-fork-deadlock; jemalloc
 *     test_fork_multithreaded]
 * Children report through their exit status only. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dropin.h"

/* malloc, fill, check and free n blocks of mixed sizes (small, one in 8
 * up to 4 KiB, one in 64 up to 40,000 bytes); true when all went well and
 * each was obm's exactly when obm serves its size (up to OBM_MEDIUM_MAX). */
static bool churn(int n, unsigned seed)
{
    void *blocks[64];
    size_t sizes[64];
    bool ok = true;
    for (int i = 0; i < n; i++) {
        int k = i % 64;
        if (i >= 64) {
            ok = ok && dropin_check(blocks[k], sizes[k]);
            free(blocks[k]);
        }
        sizes[k] = 1 + (size_t)rand_r(&seed) % (i % 64 == 0 ? 40000 : i % 8 == 0 ? 4096 : 512);
        blocks[k] = malloc(sizes[k]);
        if (blocks[k] == NULL || (dropin_owns(blocks[k]) != 0) != dropin_served(sizes[k]))
            return false;
        dropin_fill(blocks[k], sizes[k]);
    }
    for (int k = 0; k < 64 && k < n; k++) {
        ok = ok && dropin_check(blocks[k], sizes[k]);
        free(blocks[k]);
    }
    return ok;
}

/* Waits for pid; the exit status, or -1 when it did not exit normally. */
static int wait_status(pid_t pid)
{
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* ---- CHECKLIST 34 ---- */

enum { INHERITED = 3000 };

/* The child's side: everything through the inherited heap. */
static bool child_work(void **blocks, size_t *sizes, int depth)
{
    bool ok = true;
    for (int i = 0; i < INHERITED; i++) {
        ok = ok && dropin_check(blocks[i], sizes[i]);
        free(blocks[i]); /* allocated by the parent, before the fork */
    }
    for (int i = 0; i < 20000; i++) {
        size_t size = 1 + (size_t)(i * 31) % 700;
        char *p = malloc(size);
        if (p == NULL)
            return false;
        memset(p, 0xa5, size);
        ok = ok && p[size - 1] == (char)0xa5;
        free(p);
    }
    ok = ok && churn(5000, 7);
    if (depth == 0) {
        /* A grandchild inherits what the child did to the heap. */
        for (int i = 0; i < INHERITED; i++) {
            blocks[i] = malloc(sizes[i]);
            if (blocks[i] == NULL)
                return false;
            dropin_fill(blocks[i], sizes[i]);
        }
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_work(blocks, sizes, 1) ? 0 : 1);
        ok = ok && pid > 0 && churn(5000, 8) && wait_status(pid) == 0;
        for (int i = 0; i < INHERITED; i++) {
            ok = ok && dropin_check(blocks[i], sizes[i]);
            free(blocks[i]);
        }
    }
    return ok;
}

static void test_fork_child_usable(void **state)
{
    void **blocks = malloc(INHERITED * sizeof(*blocks));
    size_t *sizes = malloc(INHERITED * sizeof(*sizes));
    assert_non_null(blocks);
    assert_non_null(sizes);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < INHERITED; i++) {
            /* small; one in 10 up to 3000 bytes (medium), one in 100
             * past OBM_MEDIUM_MAX (the backing allocator's) */
            sizes[i] = i % 100 == 0 ? OBM_MEDIUM_MAX + 1 + (size_t)(i * 17 + round) % 5000
                                    : 1 + (size_t)(i * 17 + round) % (i % 10 == 0 ? 3000 : 512);
            blocks[i] = malloc(sizes[i]);
            assert_non_null(blocks[i]);
            assert_int_equal(dropin_owns(blocks[i]) != 0, dropin_served(sizes[i]));
            dropin_fill(blocks[i], sizes[i]);
        }
        fflush(NULL); /* nothing buffered is written twice */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(child_work(blocks, sizes, 0) ? 0 : 1);
        /* The parent keeps working while the child runs. */
        assert_true(churn(20000, (unsigned)round));
        for (int i = 0; i < INHERITED; i++) {
            assert_true(dropin_check(blocks[i], sizes[i]));
            free(blocks[i]);
        }
        assert_int_equal(wait_status(pid), 0);
    }
    free(sizes);
    free(blocks);
}

/* ---- CHECKLIST 35 ---- */

enum { FORKERS = 4, ALLOCATORS = 4, READERS = 2 };

static double deadline;
static atomic_long forks, bad_children, thread_errors, lines_read;
static atomic_int finished; /* workers that returned */

static void *worker_done(void)
{
    finished++;
    return NULL;
}

static void *forker(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int n = 0; dropin_now() < deadline; n++) {
        bool exec_true = id == 0 && n == 0;
        pid_t pid = fork();
        if (pid < 0) {
            thread_errors++;
            break;
        }
        if (pid == 0) {
            if (exec_true) {
                execlp("true", "true", (char *)NULL);
                _exit(127);
            }
            _exit(churn(200, (unsigned)n) ? 17 : 1);
        }
        forks++;
        if (wait_status(pid) != (exec_true ? 0 : 17))
            bad_children++;
    }
    return worker_done();
}

static void *allocator(void *arg)
{
    unsigned seed = (unsigned)(intptr_t)arg;
    while (dropin_now() < deadline)
        if (!churn(2000, seed++))
            thread_errors++;
    return worker_done();
}

/* Lines of 0..299 bytes, read back with getline (which reallocs). */
static void *reader(void *arg)
{
    FILE *f = tmpfile();
    if (f == NULL) {
        thread_errors++;
        return worker_done();
    }
    for (int i = 0; i < 300; i++)
        fprintf(f, "%*s\n", i, "");
    char *line = NULL;
    size_t cap = 0;
    while (dropin_now() < deadline) {
        rewind(f);
        ssize_t got;
        for (int i = 0; (got = getline(&line, &cap, f)) != -1; i++) {
            if (got != i + 1)
                thread_errors++;
            lines_read++;
        }
        free(line); /* start again from a NULL buffer: more reallocs */
        line = NULL;
        cap = 0;
    }
    fclose(f);
    return worker_done();
}

static void *flusher(void *arg)
{
    while (dropin_now() < deadline)
        fflush(NULL);
    return worker_done();
}

static void test_fork_while_allocating(void **state)
{
    fflush(NULL);
    deadline = dropin_now() + 2.0;
    pthread_t tid[FORKERS + ALLOCATORS + READERS + 1];
    int n = 0;
    for (intptr_t i = 0; i < FORKERS; i++)
        assert_int_equal(pthread_create(&tid[n++], NULL, forker, (void *)i), 0);
    for (intptr_t i = 0; i < ALLOCATORS; i++)
        assert_int_equal(pthread_create(&tid[n++], NULL, allocator, (void *)(i + 100)), 0);
    for (intptr_t i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&tid[n++], NULL, reader, NULL), 0);
    assert_int_equal(pthread_create(&tid[n++], NULL, flusher, NULL), 0);
    /* A deadlock leaves threads blocked for good: report it and leave
     * without touching stdio's list lock or the heap again (the main thread
     * may still flush stdout: no blocked thread holds its lock). */
    while (finished < n) {
        if (dropin_now() > deadline + 10) {
            char msg[160]; /* dprintf would take stdio's list lock */
            int len = snprintf(msg, sizeof(msg),
                               "Bail out! fork_while_allocating: %d of %d threads blocked 10 s "
                               "after the end (deadlock)\n",
                               n - finished, n);
            fflush(stdout);
            if (write(1, msg, (size_t)len) < 0)
                _exit(2);
            _exit(1);
        }
        usleep(10000);
    }
    for (int i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    print_message("# %ld forks, %ld lines read\n", (long)forks, (long)lines_read);
    assert_int_equal(thread_errors, 0);
    assert_int_equal(bad_children, 0);
    assert_true(forks >= FORKERS);
    assert_true(lines_read > 0);
}

int main(void)
{
    dropin_require_obm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_child_usable),
        cmocka_unit_test(test_fork_while_allocating),
    };
    return DROPIN_RUN_TAP(tests);
}
