/* Helpers for the drop-in tests: programs that are not linked to obm and
 * run with LD_PRELOAD=$OBM_DROPIN (tests/dropin/preload.sh). They include
 * this header instead of testutil.h, which is C only; dropin.c wraps its
 * content patterns for C and C++ alike. */
#ifndef OBM_DROPIN_H
#define OBM_DROPIN_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include <cmocka.h>

#include "obm.h" /* the geometry: OBM_SMALL_MAX, OBM_MEDIUM_MAX */

/* Whether obm serves a malloc of n bytes from its pools (alignment up to
 * 16): the small classes up to OBM_SMALL_MAX, the medium ones up to
 * OBM_MEDIUM_MAX; a larger block is the backing allocator's. */
static inline bool dropin_served(size_t n)
{
    return n <= OBM_MEDIUM_MAX;
}

/* Run a cmocka group with TAP output, as testutil.h's RUN_TAP_TESTS. */
int dropin_run_tap(const char *name, const struct CMUnitTest *tests, size_t count);
#define DROPIN_RUN_TAP(tests) dropin_run_tap(#tests, tests, sizeof(tests) / sizeof((tests)[0]))

/* Look up obm_owns with dlsym(RTLD_DEFAULT) and check that a small malloc
 * is owned. Prints "Bail out!" and exits 1 when obm is not the process's
 * malloc: every drop-in test calls this first, or it would prove nothing.
 * Also arms alarm(alarm_seconds), so a hang fails the test instead of
 * blocking the suite. */
void dropin_require_obm(unsigned alarm_seconds);

/* obm_owns through the pointer found by dropin_require_obm. */
int dropin_owns(const void *p);

/* Fill n bytes at p with testutil.h's pattern, tagged with p and n. */
void dropin_fill(void *p, size_t n);

/* Whether n bytes at p still hold the pattern dropin_fill wrote. */
bool dropin_check(const void *p, size_t n);

/* Resident set in KiB, from /proc/self/statm; 0 when unreadable. */
size_t dropin_rss_kib(void);

/* Seconds on the monotonic clock. */
double dropin_now(void);

#ifdef __cplusplus
}
#endif

#endif /* OBM_DROPIN_H */
