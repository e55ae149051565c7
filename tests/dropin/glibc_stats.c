/* Drop-in: glibc's statistics calls answer with obm's numbers (TESTPLAN
 * 20: any exported mallinfo, malloc_stats, malloc_trim returns sane
 * values). The program is not linked to obm; obm_stats_get is found with
 * dlsym and serves as the reference.
 *
 *   mallinfo2        arena is obm's mapped bytes, uordblks grows by exactly
 *                    the blocks' bytes, hblks/hblkhd by a large block's
 *   mallinfo         the same numbers in its int fields
 *   malloc_info      glibc's XML shape, a <size> per class with free blocks
 *                    whose counts match the statistics; EINVAL for options
 *   malloc_stats     the text report on stderr
 *   malloc_trim      gives back the thread's empty pools and the free
 *                    arenas, and reports it */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dropin.h"
#include "obm.h"

static int (*stats_get)(obm_stats_t *);

static obm_stats_t stats(void)
{
    obm_stats_t s = {.size = sizeof s};
    assert_int_equal(stats_get(&s), 0);
    return s;
}

#define N 2000

static void test_mallinfo2(void **state)
{
    (void)state;
    static void *p[N];
    struct mallinfo2 before = mallinfo2();
    obm_stats_t s0 = stats();
    assert_int_equal(before.arena, s0.bytes_mapped);
    for (int i = 0; i < N; i++)
        assert_non_null(p[i] = malloc(100)); /* class of 112 bytes */
    void *big = malloc(100000);
    assert_non_null(big);
    struct mallinfo2 after = mallinfo2();
    obm_stats_t s1 = stats();
    assert_int_equal(after.arena, s1.bytes_mapped);
    assert_int_equal(after.uordblks - before.uordblks, (size_t)N * 112 + malloc_usable_size(big));
    assert_int_equal(after.hblks, before.hblks + 1);
    assert_int_equal(after.hblkhd - before.hblkhd, malloc_usable_size(big));
    assert_int_equal(after.fordblks, s1.bytes_free_blocks + s1.bytes_empty_pools);
    assert_int_equal(after.usmblks, s1.arenas_highwater * OBM_ARENA_SIZE);

    struct mallinfo old = mallinfo();
    assert_int_equal((size_t)old.arena, after.arena);
    assert_int_equal((size_t)old.uordblks, after.uordblks);
    assert_int_equal((size_t)old.hblks, after.hblks);
    for (int i = 0; i < N; i++)
        free(p[i]);
    free(big);
    struct mallinfo2 end = mallinfo2();
    assert_int_equal(end.uordblks, before.uordblks);
    assert_int_equal(end.hblks, before.hblks);
}

/* Counts occurrences of needle in hay. */
static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++)
        n++;
    return n;
}

static void test_malloc_info(void **state)
{
    (void)state;
    static void *p[N];
    for (int i = 0; i < N; i++)
        assert_non_null(p[i] = malloc(40)); /* 48-byte class */
    for (int i = 0; i < N; i += 2)
        free(p[i]);
    static char buf[1 << 16];
    FILE *f = fmemopen(buf, sizeof buf - 1, "w");
    assert_non_null(f);
    obm_stats_t s = stats();
    assert_int_equal(malloc_info(0, f), 0);
    fclose(f);
    assert_non_null(strstr(buf, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n"));
    assert_int_equal(count(buf, "</malloc>"), 1);
    size_t nclasses = 0;
    for (int c = 0; c < OBM_NCLASSES; c++)
        nclasses += s.classes[c].blocks_free > 0;
    assert_int_equal(count(buf, "<size from="), nclasses);
    char want[160];
    snprintf(want, sizeof want, "<size from=\"33\" to=\"48\" total=\"%zu\" count=\"%zu\"/>",
             s.classes[2].blocks_free * 48, s.classes[2].blocks_free);
    assert_non_null(strstr(buf, want));
    assert_true(s.classes[2].blocks_free >= N / 2);
    snprintf(want, sizeof want, "<system type=\"current\" size=\"%zu\"/>", s.bytes_mapped);
    assert_int_equal(count(buf, want), 2);

    assert_int_equal(malloc_info(1, stdout), EINVAL);
    for (int i = 1; i < N; i += 2)
        free(p[i]);
}

static void test_malloc_stats(void **state)
{
    (void)state;
    char path[] = "/tmp/obm-malloc-stats-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    malloc_stats();
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char buf[1 << 14];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "Small block threshold = 512, in 32 size classes."));
    assert_non_null(strstr(buf, "# bytes lost to quantization"));
}

/* Three arenas' worth of blocks freed leave free arenas (the spare, or
 * pools in this thread's cache or kept on its rings): malloc_trim gives
 * them back. */
static void test_malloc_trim(void **state)
{
    (void)state;
    enum { M = 3 * 64 * 63 }; /* three arenas of 64-byte blocks */
    static void *p[M];
    for (int i = 0; i < M; i++)
        assert_non_null(p[i] = malloc(64));
    obm_stats_t full = stats();
    for (int i = 0; i < M; i++)
        free(p[i]);
    obm_stats_t freed = stats();
    assert_int_equal(malloc_trim(0), 1);
    obm_stats_t trimmed = stats();
    assert_true(trimmed.arenas_current < freed.arenas_current);
    assert_true(trimmed.arenas_current + 3 <= full.arenas_current);
    assert_int_equal(trimmed.pools_cached, 0);
    /* One thread: a class with no block in use keeps no pool in service. */
    for (int c = 0; c < OBM_NCLASSES; c++)
        if (trimmed.classes[c].blocks_in_use == 0)
            assert_int_equal(trimmed.classes[c].pools, 0);
    assert_int_equal(trimmed.arenas_released_total - freed.arenas_released_total,
                     freed.arenas_current - trimmed.arenas_current);
}

int main(void)
{
    dropin_require_obm(60);
    stats_get = (int (*)(obm_stats_t *))dlsym(RTLD_DEFAULT, "obm_stats_get");
    if (stats_get == NULL) {
        printf("Bail out! obm_stats_get not found\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mallinfo2),
        cmocka_unit_test(test_malloc_info),
        cmocka_unit_test(test_malloc_stats),
        cmocka_unit_test(test_malloc_trim),
    };
    return DROPIN_RUN_TAP(tests);
}
