/* Drop-in: fork while other code's pthread_atfork handlers call malloc.
 * glibc runs the handlers before it takes its own malloc locks and allows
 * them to allocate; under obm the forking thread may hold the heap lock by
 * then, so obm must let that thread back in. One set of handlers comes from
 * a shared library's constructor (forkhandlers.c, which runs before the
 * preloaded obm's), one from main; a second thread allocates all along. */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dropin.h"

/* forkhandlers.c */
extern volatile int forkhandlers_calls;
void forkhandlers_churn(size_t n, volatile int *calls);

static volatile int handler_calls;

static void main_prepare(void)
{
    forkhandlers_churn(700, &handler_calls); /* a large block: glibc's path, under obm's lock */
}

static void main_child(void)
{
    forkhandlers_churn(24, &handler_calls);
}

static volatile int stop;

static void *allocator_thread(void *arg)
{
    (void)arg;
    unsigned r = 1;
    while (!stop) {
        r = r * 1103515245u + 12345u;
        void *p = malloc(16 + (r >> 8) % 600);
        free(p);
    }
    return NULL;
}

static void test_fork_with_allocating_handlers(void **state)
{
    (void)state;
    assert_int_equal(pthread_atfork(main_prepare, NULL, main_child), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, allocator_thread, NULL), 0);
    for (int i = 0; i < 200; i++) {
        /* Only this thread forks, so each fork moves the counts by exactly
         * its own handlers' calls: main's prepare and child, the library's
         * prepare and child in the child; main's prepare, the library's
         * prepare and parent in the parent. */
        int main_before = handler_calls, lib_before = forkhandlers_calls;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            void *p = malloc(64);
            free(p);
            int main_calls = handler_calls - main_before,
                lib_calls = forkhandlers_calls - lib_before;
            /* Exit code: 10 * main's calls + the library's; 22 when both ran twice. */
            _exit(main_calls >= 0 && main_calls < 10 && lib_calls >= 0 && lib_calls < 10
                      ? 10 * main_calls + lib_calls
                      : 99);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        if (WEXITSTATUS(status) != 22)
            fail_msg("fork %d: child saw %d calls of main's handlers and %d of the library's, "
                     "expected 2 and 2",
                     i, WEXITSTATUS(status) / 10, WEXITSTATUS(status) % 10);
        if (handler_calls - main_before != 1 || forkhandlers_calls - lib_before != 2)
            fail_msg("fork %d: parent saw %d calls of main's handlers and %d of the library's, "
                     "expected 1 and 2",
                     i, handler_calls - main_before, forkhandlers_calls - lib_before);
    }
    stop = 1;
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(handler_calls, 200);      /* main's prepare */
    assert_int_equal(forkhandlers_calls, 400); /* the library's prepare and parent */
}

int main(void)
{
    dropin_require_obm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_with_allocating_handlers),
    };
    return DROPIN_RUN_TAP(tests);
}
