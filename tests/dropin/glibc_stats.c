/* Drop-in: glibc's statistics calls answer with obm's numbers (CHECKLIST
 * 20: any exported mallinfo, malloc_stats, malloc_trim returns sane
 * values). The program is not linked to obm; obm_stats_get is found with
 * dlsym and serves as the reference.
 *
 *   mallinfo2        arena is obm's mapped bytes, uordblks grows by exactly
 *                    the blocks' bytes, hblks/hblkhd by a large block's
 *   mallinfo         the same numbers in its int fields
 *   malloc_info      glibc's XML shape, a <size> per class with free blocks
 *                    whose counts match the statistics; EINVAL for options
 *   malloc_stats     the text report on stderr, every number of it the
 *                    statistics'
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
    free(malloc(100000)); /* glibc's heap set up: what it counts below is the block alone */
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
    /* hblkhd: glibc's own count of what it holds, which grew by the big
     * block and its chunk header (8 bytes on the heap, 16 for an mmapped
     * one, rounded to 16). */
    size_t grown = after.hblkhd - before.hblkhd;
    assert_in_range(grown, malloc_usable_size(big), malloc_usable_size(big) + 32);
    assert_int_equal(after.uordblks - before.uordblks, (size_t)N * 112 + grown);
    assert_int_equal(after.hblks, before.hblks + 1);
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

/* malloc_stats' text report, parsed: the class rows and the "name = value"
 * lines, in order. */
struct report {
    unsigned rows;
    size_t row[OBM_NCLASSES][8]; /* class, size, pools, in use, free, remote, mallocs, frees */
    unsigned lines;
    char name[48][64];
    size_t value[48];
};

/* A number that may hold thousands separators; NULL when there is none. */
static const char *parse_grouped(const char *p, size_t *v)
{
    while (*p == ' ')
        p++;
    if (*p < '0' || *p > '9')
        return NULL;
    for (*v = 0; (*p >= '0' && *p <= '9') || *p == ','; p++)
        if (*p != ',')
            *v = *v * 10 + (size_t)(*p - '0');
    return p;
}

static void parse_report(char *text, struct report *r)
{
    memset(r, 0, sizeof *r);
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    int in_table = 0;
    for (; line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "-----", 5) == 0) {
            in_table = 1;
            continue;
        }
        char *eq = strstr(line, " = ");
        if (in_table && eq == NULL) {
            assert_true(r->rows < OBM_NCLASSES);
            const char *p = line;
            for (int i = 0; i < 8; i++)
                if ((p = parse_grouped(p, &r->row[r->rows][i])) == NULL)
                    fail_msg("class row %u: not 8 numbers: %s", r->rows, line);
            assert_true(*p == '\0');
            r->rows++;
            continue;
        }
        in_table = 0;
        if (eq == NULL || strncmp(line, "Small block threshold", 21) == 0)
            continue;
        assert_true(r->lines < sizeof r->value / sizeof *r->value);
        char *end = eq;
        while (end > line && end[-1] == ' ')
            end--;
        assert_true((size_t)(end - line) < sizeof r->name[0]);
        memcpy(r->name[r->lines], line, (size_t)(end - line));
        const char *rest = parse_grouped(eq + 3, &r->value[r->lines]);
        if (rest == NULL || *rest != '\0')
            fail_msg("not a number after '=': %s", line);
        r->lines++;
    }
}

/* The report's numbers are the statistics', line by line, and they move by
 * exactly the blocks this test allocates. */
static void test_malloc_stats(void **state)
{
    (void)state;
    enum { M = 500 };
    static void *p[M];
    obm_stats_t s0 = stats();
    for (int i = 0; i < M; i++)
        assert_non_null(p[i] = malloc(100)); /* class 6, 112 bytes */
    void *big = malloc(100000);
    assert_non_null(big);
    char path[] = "/tmp/obm-malloc-stats-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    obm_stats_t s = stats();
    malloc_stats();
    obm_stats_t s_after = stats();
    dup2(saved, STDERR_FILENO);
    close(saved);
    static char buf[1 << 14];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    assert_true(n > 0 && n < (ssize_t)sizeof buf - 1);
    buf[n] = '\0';
    /* Nothing allocated while it ran: the report is of s. */
    assert_memory_equal(&s, &s_after, sizeof s);

    char want[128];
    snprintf(want, sizeof want, "obm %s statistics, pid %d (", OBM_VERSION_STRING, (int)getpid());
    assert_true(strncmp(buf, want, strlen(want)) == 0);
    assert_non_null(strstr(
        buf, "\nSmall block threshold = 512, in 32 size classes; medium blocks up to 32768, in "
             "24 more.\n"));
    struct report r;
    parse_report(buf, &r);

    unsigned row = 0;
    for (unsigned c = 0; c < OBM_NCLASSES; c++) {
        const obm_class_stats_t *k = &s.classes[c];
        if (k->pools == 0 && k->mallocs == 0)
            continue;
        if (row >= r.rows)
            fail_msg("no row for class %u", c);
        size_t w[8] = {
            c,          k->block_size, k->pools, k->blocks_in_use, k->blocks_free, k->blocks_remote,
            k->mallocs, k->frees};
        for (int i = 0; i < 8; i++)
            if (r.row[row][i] != w[i])
                fail_msg("class %u, column %d: %zu, statistics %zu", c, i, r.row[row][i], w[i]);
        row++;
    }
    assert_int_equal(r.rows, row);

    char arenas[64], pools[64];
    snprintf(arenas, sizeof arenas, "%zu arenas * 262144 bytes/arena", s.arenas_current);
    snprintf(pools, sizeof pools, "%zu unused pools * 4096 bytes", s.pools_empty);
    const struct {
        const char *name;
        size_t value;
    } lines[] = {
        {"# arenas allocated total", s.arenas_allocated_total},
        {"# arenas reclaimed", s.arenas_released_total},
        {"# arenas highwater mark", s.arenas_highwater},
        {"# arenas allocated current", s.arenas_current},
        {arenas, s.bytes_mapped},
        {"# bytes in allocated blocks", s.bytes_in_use},
        {"# bytes in available blocks", s.bytes_free_blocks},
        {pools, s.bytes_empty_pools},
        {"# bytes lost to pool headers", s.bytes_pool_headers},
        {"# bytes lost to quantization", s.bytes_quantization},
        {"Total", s.bytes_mapped},
        {"# pools in use", s.pools_in_use},
        {"# pools full", s.pools_full},
        {"# unused pools cached by heaps", s.pools_cached},
        {"# unused pools never touched", s.pools_untouched},
        {"# unused pools purged", s.pools_purged},
        {"# bytes resident at most", s.bytes_resident},
        {"# pools purged total", s.pools_purged_total},
        {"# purge calls (madvise)", s.purges_total},
        {"# pools taken by heaps", s.pools_taken_total},
        {"# pools returned by heaps", s.pools_returned_total},
        {"# slow mallocs", s.slow_mallocs_total},
        {"# slow frees", s.slow_frees_total},
        {"# carves", s.carves_total},
        {"# remote lists taken in", s.remote_collects_total},
        {"# pools found full", s.pools_used_to_full_total},
        {"# full pools back in use", s.pools_full_to_used_total},
        {"# pools emptied", s.pools_emptied_total},
        {"# pools taken from arenas", s.pools_from_arenas_total},
        {"# pools given to arenas", s.pools_to_arenas_total},
        {"# large blocks (backing allocator)", s.large_allocs_current},
        {"# bytes in large blocks", s.large_bytes_current},
        {"# large requests total", s.large_allocs_total},
        {"# heaps live", s.heaps_live},
        {"# heaps abandoned", s.heaps_abandoned},
        {"# heaps created", s.heaps_created},
        {"# heaps adopted", s.heaps_adopted},
        {"# errors: invalid pointers", s.errors_invalid_pointer},
        {"# errors: double frees", s.errors_double_free},
        {"# errors: corrupted free lists", s.errors_corrupted_list},
        {"# errors: writes after free", s.errors_write_after_free},
        {"# errors: overflows", s.errors_overflow},
    };
    assert_int_equal(r.lines, sizeof lines / sizeof *lines);
    for (unsigned i = 0; i < r.lines; i++) {
        if (strcmp(r.name[i], lines[i].name) != 0)
            fail_msg("line %u: '%s', expected '%s'", i, r.name[i], lines[i].name);
        if (r.value[i] != lines[i].value)
            fail_msg("%s: %zu, statistics %zu", lines[i].name, r.value[i], lines[i].value);
    }

    /* The statistics themselves moved by what was allocated. */
    assert_int_equal(s.classes[6].blocks_in_use, s0.classes[6].blocks_in_use + M);
    assert_int_equal(s.classes[6].mallocs, s0.classes[6].mallocs + M);
    assert_int_equal(s.bytes_in_use, s0.bytes_in_use + (size_t)M * 112);
    assert_int_equal(s.large_allocs_current, s0.large_allocs_current + 1);
    /* glibc's own count of its blocks: the block and its chunk header (8
     * bytes on the heap, 16 for an mmapped one, rounded to 16). */
    size_t grown = s.large_bytes_current - s0.large_bytes_current;
    assert_in_range(grown, malloc_usable_size(big), malloc_usable_size(big) + 32);
    assert_true(s.heaps_live >= 1 && s.arenas_current >= 1);
    for (int i = 0; i < M; i++)
        free(p[i]);
    free(big);
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
