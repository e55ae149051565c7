/* Helpers for the drop-in tests; see dropin.h. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "dropin.h"
#include "testutil.h"

static int (*owns_fn)(const void *);

int dropin_run_tap(const char *name, const struct CMUnitTest *tests, size_t count)
{
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return _cmocka_run_group_tests(name, tests, count, NULL, NULL);
}

void dropin_require_obm(unsigned alarm_seconds)
{
    alarm(alarm_seconds);
    owns_fn = (int (*)(const void *))dlsym(RTLD_DEFAULT, "obm_owns");
    if (owns_fn == NULL) {
        printf("Bail out! obm_owns not found: run with LD_PRELOAD=libobmalloc.so\n");
        exit(1);
    }
    void *p = malloc(24);
    int owned = owns_fn(p);
    free(p);
    if (!owned) {
        printf("Bail out! malloc(24) is not served by obm\n");
        exit(1);
    }
}

int dropin_owns(const void *p)
{
    return owns_fn(p);
}

/* The tag ties the pattern to the block's address and size. */
static uintptr_t block_tag(const void *p, size_t n)
{
    return (uintptr_t)p ^ ((uintptr_t)n << 40);
}

void dropin_fill(void *p, size_t n)
{
    pattern_fill(p, n, block_tag(p, n));
}

bool dropin_check(const void *p, size_t n)
{
    return pattern_check(p, n, block_tag(p, n)) == n;
}

size_t dropin_rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return 0;
    unsigned long size, resident;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? resident * (size_t)sysconf(_SC_PAGESIZE) / 1024 : 0;
}

double dropin_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
