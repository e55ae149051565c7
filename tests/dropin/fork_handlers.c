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
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            void *p = malloc(64);
            free(p);
            _exit(handler_calls >= 2 && forkhandlers_calls >= 2 ? 17 : 1); /* handlers ran */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 17);
    }
    stop = 1;
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(handler_calls >= 200);      /* main's prepare */
    assert_true(forkhandlers_calls >= 400); /* the library's prepare and parent */
}

int main(void)
{
    dropin_require_obm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_with_allocating_handlers),
    };
    return DROPIN_RUN_TAP(tests);
}
