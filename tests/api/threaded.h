/* For the threaded API tests (stress.c, threads.c): threads never call
 * cmocka, whose asserts longjmp, so the first failure is recorded here,
 * every thread stops at its next step, and main reports it. Included once
 * per program, after api.h. */
#ifndef OBM_TESTS_THREADED_H
#define OBM_TESTS_THREADED_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static atomic_int failed;
static char failure[512];

/* Record the first failure; every thread stops at its next step. */
__attribute__((format(printf, 1, 2))) static void record_failure(const char *fmt, ...)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&failed, &expected, 1))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure, sizeof failure, fmt, ap);
    va_end(ap);
}

static bool stopped(void)
{
    return atomic_load_explicit(&failed, memory_order_relaxed) != 0;
}

/* In main, once the threads are joined. */
static void report_failure(void)
{
    if (stopped())
        fail_msg("%s", failure);
}

static unsigned long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long)ts.tv_sec * 1000 + (unsigned long)ts.tv_nsec / 1000000;
}

#endif /* OBM_TESTS_THREADED_H */
