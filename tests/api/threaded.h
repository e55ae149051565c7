/* For the threaded API tests (stress.c, threads.c, stats.c): threads never
 * call cmocka, whose asserts longjmp, so the first failure is recorded
 * here, every thread stops at its next step, and main reports it; and the
 * work's scale under valgrind and the sanitizers, and a watchdog. Included
 * once per program, after api.h. */
#ifndef OBM_TESTS_THREADED_H
#define OBM_TESTS_THREADED_H

#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define UNDER_TSAN      1
#define SANITIZER_SCALE 0.5
#elif defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define UNDER_ASAN      1
#define SANITIZER_SCALE 0.5
#else
#define SANITIZER_SCALE 1.0
#endif
#ifndef VALGRIND_SCALE
#define VALGRIND_SCALE 0.5 /* the includer may define its own */
#endif

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

/* ---- sizing, the watchdog ---- */

/* The share of the full work to do: TESTS_SCALE, else less under
 * valgrind (found by its preload library) and the sanitizers. */
__attribute__((unused)) static double scale(void)
{
    static double s;
    if (s == 0) {
        const char *env = getenv("TESTS_SCALE"), *pre = getenv("LD_PRELOAD");
        if (env != NULL && *env != '\0')
            s = strtod(env, NULL);
        else if (pre != NULL && strstr(pre, "vgpreload") != NULL)
            s = VALGRIND_SCALE;
        else
            s = SANITIZER_SCALE;
        if (!(s > 0))
            s = 1;
    }
    return s;
}

/* full, scaled, and at least `least`. */
__attribute__((unused)) static size_t scaled(size_t full, size_t least)
{
    double n = (double)full * scale();
    return n < (double)least ? least : (size_t)n;
}

/* A hang (a deadlock, a lost wake-up) ends the program with a TAP bail-out
 * instead of blocking the suite. */
static const char *watchdog_case;

static void watchdog_fired(int sig)
{
    (void)sig;
    static const char msg[] = "Bail out! watchdog: a case did not finish in time: ";
    ssize_t rc = write(1, msg, sizeof msg - 1);
    rc = write(1, watchdog_case, strlen(watchdog_case));
    rc = write(1, "\n", 1);
    (void)rc;
    _exit(1);
}

__attribute__((unused)) static void watchdog(const char *what, unsigned seconds)
{
    watchdog_case = what;
    signal(SIGALRM, watchdog_fired);
    alarm(seconds);
}

#endif /* OBM_TESTS_THREADED_H */
