/* A shared library that registers pthread_atfork handlers which call malloc
 * from its constructor: libraries' constructors run before a preloaded
 * obm's, so these handlers may be registered before obm's own. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int forkhandlers_calls;

static void churn(size_t n)
{
    void *p = malloc(n);
    memset(p, 0x5a, n);
    void *q = realloc(p, 2 * n);
    free(q);
    forkhandlers_calls++;
}

static void lib_prepare(void)
{
    churn(100);
}

static void lib_parent(void)
{
    churn(300);
}

static void lib_child(void)
{
    churn(48);
}

__attribute__((constructor)) static void forkhandlers_register(void)
{
    pthread_atfork(lib_prepare, lib_parent, lib_child);
}
