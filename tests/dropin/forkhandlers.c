/* A shared library that registers pthread_atfork handlers which call malloc
 * from its constructor: libraries' constructors run before a preloaded
 * obm's, so these handlers may be registered before obm's own. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

volatile int forkhandlers_calls;

/* malloc, write, realloc and free n bytes, and count the call in *calls;
 * the test program's own handlers use it too. */
void forkhandlers_churn(size_t n, volatile int *calls)
{
    void *p = malloc(n);
    memset(p, 0x5a, n);
    void *q = realloc(p, 2 * n);
    free(q);
    (*calls)++;
}

static void lib_prepare(void)
{
    forkhandlers_churn(100, &forkhandlers_calls);
}

static void lib_parent(void)
{
    forkhandlers_churn(300, &forkhandlers_calls);
}

static void lib_child(void)
{
    forkhandlers_churn(48, &forkhandlers_calls);
}

__attribute__((constructor)) static void forkhandlers_register(void)
{
    pthread_atfork(lib_prepare, lib_parent, lib_child);
}
