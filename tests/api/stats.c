/* The statistics API: obm_stats_get, obm_stats_diff, obm_stats_print and
 * obm_visit, linked against libobm, where nothing but these tests
 * allocates through obm, so every count is known.
 *
 *   errors           EINVAL for a NULL or wrongly sized struct, unknown
 *                    print options, a NULL visitor
 *   exact_classes    known numbers of blocks in three classes (a pool
 *                    spilled into, pools filled exactly, a tail lost to
 *                    quantization): every per-class and total field, after
 *                    allocating, after freeing part, after freeing all,
 *                    when the arenas come back to their starting count
 *   ledger           the five byte fields sum to bytes_mapped after each
 *                    step of every test (checked wherever stats are read)
 *   large            blocks of the backing allocator: counts and usable
 *                    bytes, realloc, over-aligned requests
 *   diff             counts and levels subtract, fixed fields copy, the
 *                    result may alias an operand
 *   visit            one arena record then its 64 pools; sums equal the
 *                    struct's; a non-zero return stops the walk; the
 *                    callback may allocate
 *   text, json       the reports carry the struct's numbers (the JSON one
 *                    key per field, in the struct's names)
 *   map              one <g class="arena"> per arena, one pool cell per pool
 *   partial_free     TESTPLAN 38: 10,000 blocks up to 16 KiB, all freed
 *                    but every 13th: every arena left holds a live block
 *                    (but the spare), and the class sums are the totals
 *   threads          TESTPLAN 41: obm_stats_get, obm_visit and
 *                    obm_stats_print in a loop while 8 threads allocate and
 *                    free each other's blocks: every snapshot is possible
 *                    and totals only grow
 *
 * `stats_obm --dump DIR` writes the JSON report, the same numbers as JSON
 * built here from the struct, and the SVG map, for tests/api/stats_output.sh
 * to check with python3 and xmllint. */
#include "api.h"
#include "threaded.h"

#include <pthread.h>
#include <stdio.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer) ||                             \
    defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define SANITIZER_SCALE 0.25
#else
#define SANITIZER_SCALE 1.0
#endif

#define POOL_USABLE (OBM_POOL_SIZE - 64) /* a pool less its header */

static size_t nblocks(size_t c)
{
    return POOL_USABLE / (16 * (c + 1));
}

/* The invariants every snapshot keeps, quiet or not; "" when they hold. */
static const char *impossible(const obm_stats_t *s)
{
    if (s->bytes_in_use + s->bytes_free_blocks + s->bytes_empty_pools + s->bytes_pool_headers +
            s->bytes_quantization !=
        s->bytes_mapped)
        return "the byte ledger does not add up to bytes_mapped";
    if (s->bytes_mapped != s->arenas_current * OBM_ARENA_SIZE)
        return "bytes_mapped is not arenas_current * 256 KiB";
    if (s->pools_in_use + s->pools_empty != s->arenas_current * 64)
        return "pools in use + empty pools is not 64 per arena";
    if (s->pools_full > s->pools_in_use || s->pools_cached + s->pools_untouched > s->pools_empty)
        return "a part of the pools is larger than its whole";
    if (s->arenas_current > s->arenas_highwater ||
        s->arenas_allocated_total - s->arenas_released_total != s->arenas_current)
        return "arena counts disagree";
    if (s->bytes_pool_headers != s->pools_in_use * 64 ||
        s->bytes_empty_pools != s->pools_empty * OBM_POOL_SIZE)
        return "headers or empty pools' bytes disagree with the pool counts";
    size_t pools = 0, bytes = 0, quant = 0;
    for (size_t c = 0; c < OBM_NCLASSES; c++) {
        const obm_class_stats_t *k = &s->classes[c];
        if (k->block_size != 16 * (c + 1))
            return "wrong block size";
        if (k->blocks_in_use + k->blocks_free != k->pools * nblocks(c))
            return "blocks in use + free blocks is not pools * blocks per pool";
        if (k->blocks_remote > k->blocks_free)
            return "more remote blocks than free ones";
        pools += k->pools;
        bytes += k->blocks_in_use * k->block_size;
        quant += k->pools * (POOL_USABLE - nblocks(c) * k->block_size);
    }
    if (pools != s->pools_in_use || bytes != s->bytes_in_use || quant != s->bytes_quantization)
        return "the classes do not add up to the totals";
    return "";
}

static obm_stats_t stats(void)
{
    obm_stats_t s = {.size = sizeof s};
    assert_int_equal(obm_stats_get(&s), 0);
    assert_int_equal(s.size, sizeof s);
    assert_int_equal(s.version, OBM_STATS_VERSION);
    assert_string_equal(impossible(&s), "");
    return s;
}

static void test_errors(void **state)
{
    (void)state;
    assert_int_equal(obm_stats_get(NULL), EINVAL);
    obm_stats_t s = {.size = sizeof s - 1};
    assert_int_equal(obm_stats_get(&s), EINVAL);
    s.size = 0;
    assert_int_equal(obm_stats_get(&s), EINVAL);
    assert_int_equal(obm_stats_print(NULL, NULL, "X"), EINVAL);
    assert_int_equal(obm_stats_print(NULL, NULL, "JJ"), EINVAL);
    assert_int_equal(obm_visit(NULL, NULL), EINVAL);
}

/* ---- exact counts ---- */

enum { N16 = 1000, N64 = 126, N512 = 50 };
static void *b16[N16], *b64[N64], *b512[N512];

static void alloc_pattern(void)
{
    for (int i = 0; i < N16; i++)
        assert_non_null(b16[i] = obm_malloc(OPQ(16)));
    for (int i = 0; i < N64; i++)
        assert_non_null(b64[i] = obm_malloc(OPQ(64)));
    for (int i = 0; i < N512; i++)
        assert_non_null(b512[i] = obm_malloc(OPQ(500)));
}

static void free_all(void **p, int n)
{
    for (int i = 0; i < n; i++) {
        obm_free(p[i]);
        p[i] = NULL;
    }
}

static void free_pattern(void)
{
    free_all(b16, N16);
    free_all(b64, N64);
    free_all(b512, N512);
}

/* Class c of s against base: n more blocks in use, in want_pools pools. */
static void check_class(const obm_stats_t *base, const obm_stats_t *s, size_t c, size_t in_use,
                        size_t want_pools, size_t mallocs, size_t frees)
{
    const obm_class_stats_t *k = &s->classes[c], *k0 = &base->classes[c];
    assert_int_equal(k->block_size, 16 * (c + 1));
    assert_int_equal(k->pools, want_pools);
    assert_int_equal(k->blocks_in_use, in_use);
    assert_int_equal(k->blocks_free, want_pools * nblocks(c) - in_use);
    assert_int_equal(k->blocks_remote, 0);
    assert_int_equal(k->mallocs - k0->mallocs, mallocs);
    assert_int_equal(k->frees - k0->frees, frees);
    assert_int_equal(k->remote_frees - k0->remote_frees, 0);
}

static void test_exact_classes(void **state)
{
    (void)state;
    /* One round first, so the retired pools and the heap's cache are in the
     * state the measured round leaves them in. */
    alloc_pattern();
    free_pattern();
    obm_stats_t base = stats();
    for (size_t c = 0; c < OBM_NCLASSES; c++)
        assert_int_equal(base.classes[c].blocks_in_use, 0);

    alloc_pattern();
    obm_stats_t s = stats();
    /* 16 B: 252 a pool, 1000 spill into a 4th; 64 B: 63 a pool, 126 fill
     * two exactly; 512 B: 7 a pool, 50 spill into an 8th, 448 B of tail each. */
    check_class(&base, &s, 0, N16, 4, N16, 0);
    check_class(&base, &s, 3, N64, 2, N64, 0);
    check_class(&base, &s, 31, N512, 8, N512, 0);
    assert_int_equal(s.pools_in_use, 14);
    assert_int_equal(s.pools_full, 3 + 2 + 7);
    assert_int_equal(s.bytes_in_use, N16 * 16 + N64 * 64 + N512 * 512);
    assert_int_equal(s.bytes_pool_headers, 14 * 64);
    assert_int_equal(s.bytes_quantization, 8 * 448);
    assert_int_equal(s.bytes_free_blocks, (4 * 252 - N16) * 16 + (8 * 7 - N512) * 512);
    assert_int_equal(s.arenas_current, 1);
    assert_int_equal(s.pools_empty, 64 - 14);

    /* Free every other 16-byte block: each of the 4 pools keeps half. */
    for (int i = 0; i < N16; i += 2) {
        obm_free(b16[i]);
        b16[i] = NULL;
    }
    obm_stats_t half = stats();
    check_class(&base, &half, 0, N16 / 2, 4, N16, N16 / 2);
    check_class(&base, &half, 3, N64, 2, N64, 0);
    assert_int_equal(half.bytes_in_use, s.bytes_in_use - N16 / 2 * 16);
    assert_int_equal(half.pools_full, 2 + 7);

    free_pattern();
    obm_stats_t end = stats();
    assert_int_equal(end.arenas_current, base.arenas_current);
    assert_int_equal(end.bytes_in_use, base.bytes_in_use);
    assert_int_equal(end.pools_in_use, base.pools_in_use);
    assert_int_equal(end.pools_cached, base.pools_cached);
    for (size_t c = 0; c < OBM_NCLASSES; c++) {
        assert_int_equal(end.classes[c].blocks_in_use, 0);
        assert_int_equal(end.classes[c].mallocs - end.classes[c].frees, 0);
    }
}

/* ---- large blocks ---- */

static void test_large(void **state)
{
    (void)state;
    obm_stats_t s0 = stats();
    void *a = obm_malloc(OPQ(100000));
    void *b = obm_calloc(OPQ(3), OPQ(1000));
    void *c = obm_aligned_alloc(64, OPQ(100)); /* over-aligned: the backing allocator's */
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_false(obm_owns(c));
    size_t bytes = obm_usable_size(a) + obm_usable_size(b) + obm_usable_size(c);
    obm_stats_t s1 = stats();
    assert_int_equal(s1.large_allocs_current - s0.large_allocs_current, 3);
    assert_int_equal(s1.large_bytes_current - s0.large_bytes_current, bytes);
    assert_int_equal(s1.large_allocs_total - s0.large_allocs_total, 3);
    assert_true(bytes >= 100000 + 3000 + 100);

    a = obm_realloc(a, OPQ(200000)); /* a free and an allocation */
    assert_non_null(a);
    obm_stats_t s2 = stats();
    assert_int_equal(s2.large_allocs_current, s1.large_allocs_current);
    assert_int_equal(s2.large_allocs_total - s1.large_allocs_total, 1);
    assert_int_equal(s2.large_bytes_current - s0.large_bytes_current,
                     obm_usable_size(a) + obm_usable_size(b) + obm_usable_size(c));

    a = obm_realloc(a, OPQ(100)); /* into obm's pools: no longer large */
    assert_true(obm_owns(a));
    obm_free(a);
    obm_free(b);
    obm_free(c);
    obm_stats_t s3 = stats();
    assert_int_equal(s3.large_allocs_current, s0.large_allocs_current);
    assert_int_equal(s3.large_bytes_current, s0.large_bytes_current);
    assert_int_equal(s3.bytes_in_use, s0.bytes_in_use);
}

/* ---- obm_stats_diff ---- */

static void test_diff(void **state)
{
    (void)state;
    obm_stats_t before = stats();
    void *p[300];
    for (int i = 0; i < 300; i++)
        assert_non_null(p[i] = obm_malloc(OPQ(32)));
    obm_stats_t after = stats(), d;
    obm_stats_diff(&before, &after, &d);
    assert_int_equal(d.size, sizeof d);
    assert_int_equal(d.version, OBM_STATS_VERSION);
    assert_int_equal(d.arenas_highwater, after.arenas_highwater); /* fixed: after's */
    assert_int_equal(d.classes[1].block_size, 32);
    assert_int_equal(d.classes[1].mallocs, 300);
    assert_int_equal(d.classes[1].blocks_in_use, 300);
    assert_int_equal(d.bytes_in_use, 300 * 32);
    assert_int_equal(d.pools_in_use, after.pools_in_use - before.pools_in_use);
    assert_int_equal(d.bytes_mapped, after.bytes_mapped - before.bytes_mapped);

    for (int i = 0; i < 300; i++)
        obm_free(p[i]);
    obm_stats_t end = stats();
    obm_stats_diff(&after, &end, &d); /* levels that fell wrap: read as signed */
    assert_int_equal((ptrdiff_t)d.classes[1].blocks_in_use, -300);
    assert_int_equal((ptrdiff_t)d.bytes_in_use, -300 * 32);
    assert_int_equal(d.classes[1].frees, 300);

    obm_stats_t alias = end;
    obm_stats_diff(&after, &alias, &alias); /* delta may be an operand */
    assert_memory_equal(&alias, &d, sizeof d);
    alias = after;
    obm_stats_diff(&alias, &end, &alias);
    assert_memory_equal(&alias, &d, sizeof d);
}

/* ---- obm_visit ---- */

struct visit_sums {
    size_t arenas, pools, serving, used[OBM_NCLASSES], pools_of[OBM_NCLASSES], calls, stop_at;
    size_t spares, empty;
    const void *arena;
    size_t arena_used, arena_serving, pools_seen;
    bool bad;
    bool allocate;
};

static int visit_sum(const obm_region_t *r, void *arg)
{
    struct visit_sums *v = arg;
    v->calls++;
    if (v->allocate) /* the snapshot is taken; the lock is free */
        obm_free(obm_malloc(OPQ(48)));
    if (r->kind == OBM_REGION_ARENA) {
        if (v->arena != NULL && v->pools_seen != 64)
            v->bad = true; /* an arena came before its previous one's 64 pools */
        v->arenas++;
        v->arena = r->address;
        v->arena_used = r->used;
        v->arena_serving = 0;
        v->pools_seen = 0;
        v->spares += r->state == OBM_ARENA_SPARE;
        v->empty += r->state == OBM_ARENA_EMPTY;
        if (r->size != OBM_ARENA_SIZE || r->capacity != 64 ||
            ((uintptr_t)r->address & (OBM_ARENA_SIZE - 1)) != 0 ||
            (r->state == OBM_ARENA_USED) != (r->used > 0))
            v->bad = true;
    } else {
        uintptr_t a = (uintptr_t)r->address, base = (uintptr_t)v->arena;
        if (r->kind != OBM_REGION_POOL || r->size != OBM_POOL_SIZE || a < base ||
            a >= base + OBM_ARENA_SIZE || a != base + v->pools_seen * OBM_POOL_SIZE)
            v->bad = true;
        v->pools_seen++;
        v->pools++;
        if (r->size_class >= 0) {
            v->serving++;
            v->arena_serving++;
            v->used[r->size_class] += r->used;
            v->pools_of[r->size_class]++;
            if (r->capacity != nblocks((size_t)r->size_class) || r->used > r->capacity ||
                (r->state == OBM_POOL_FULL) != (r->used == r->capacity))
                v->bad = true;
        } else if (r->state != OBM_POOL_EMPTY && r->state != OBM_POOL_CACHED &&
                   r->state != OBM_POOL_UNTOUCHED) {
            v->bad = true;
        }
        if (v->pools_seen == 64 && v->arena_serving != v->arena_used)
            v->bad = true;
    }
    return v->stop_at != 0 && v->calls == v->stop_at ? 42 : 0;
}

static void test_visit(void **state)
{
    (void)state;
    static void *p[4000];
    for (int i = 0; i < 4000; i++)
        assert_non_null(p[i] = obm_malloc(OPQ(1 + (size_t)(i * 37) % 512)));
    obm_stats_t s = stats();
    struct visit_sums v = {.stop_at = 0};
    assert_int_equal(obm_visit(visit_sum, &v), 0);
    assert_false(v.bad);
    assert_int_equal(v.arenas, s.arenas_current);
    assert_true(v.arenas >= 2);
    assert_int_equal(v.pools, 64 * s.arenas_current);
    assert_int_equal(v.serving, s.pools_in_use);
    assert_true(v.spares <= 1);
    for (size_t c = 0; c < OBM_NCLASSES; c++) {
        assert_int_equal(v.used[c], s.classes[c].blocks_in_use);
        assert_int_equal(v.pools_of[c], s.classes[c].pools);
    }

    struct visit_sums stop = {.stop_at = 70};
    assert_int_equal(obm_visit(visit_sum, &stop), 42);
    assert_int_equal(stop.calls, 70);

    struct visit_sums alloc = {.allocate = true};
    assert_int_equal(obm_visit(visit_sum, &alloc), 0);
    assert_int_equal(alloc.calls, 65 * s.arenas_current);
    for (int i = 0; i < 4000; i++)
        obm_free(p[i]);
    stats();
}

/* ---- the reports ---- */

static char report[1 << 22];
static size_t report_len;

/* A writer that allocates nothing: the report goes into `report`. */
static void capture(void *opaque, const char *text)
{
    (void)opaque;
    size_t n = strlen(text);
    if (report_len + n < sizeof report) {
        memcpy(report + report_len, text, n + 1);
        report_len += n;
    }
}

static int print_captured(const char *opts)
{
    report_len = 0;
    report[0] = '\0';
    return obm_stats_print(capture, NULL, opts);
}

/* The number on the report line that starts with name, commas dropped. */
static size_t report_value(const char *name)
{
    const char *line = strstr(report, name);
    assert_non_null(line);
    const char *eq = strchr(line, '=');
    assert_non_null(eq);
    size_t v = 0;
    for (const char *s = eq + 1; *s != '\n' && *s != '\0'; s++)
        if (*s >= '0' && *s <= '9')
            v = v * 10 + (size_t)(*s - '0');
    return v;
}

static void test_text(void **state)
{
    (void)state;
    void *p[100];
    for (int i = 0; i < 100; i++)
        assert_non_null(p[i] = obm_malloc(OPQ(200))); /* class 12, 208 B */
    obm_stats_t s = stats();
    assert_int_equal(print_captured(""), 0);
    assert_non_null(strstr(report, "Small block threshold = 512, in 32 size classes.\n"));
    assert_int_equal(report_value("# arenas allocated current"), s.arenas_current);
    assert_int_equal(report_value("# arenas highwater mark"), s.arenas_highwater);
    assert_int_equal(report_value("# bytes in allocated blocks"), s.bytes_in_use);
    assert_int_equal(report_value("# bytes lost to quantization"), s.bytes_quantization);
    assert_int_equal(report_value("Total"), s.bytes_mapped);
    assert_int_equal(report_value("# large requests total"), s.large_allocs_total);
    char row[200];
    snprintf(row, sizeof row, "\n   12    208 %11zu %15zu %13zu ", s.classes[12].pools,
             s.classes[12].blocks_in_use, s.classes[12].blocks_free);
    assert_non_null(strstr(report, row));
    assert_int_equal(s.classes[12].blocks_in_use, 100);
    assert_int_equal(obm_stats_print(NULL, NULL, ""), 0); /* to stderr */
    for (int i = 0; i < 100; i++)
        obm_free(p[i]);
}

/* The struct as JSON, from a list of names kept here, apart from the
 * library's table. */
#define S(f)                                                                                       \
    {                                                                                              \
#f, offsetof(obm_stats_t, f)                                                               \
    }
#define K(f)                                                                                       \
    {                                                                                              \
#f, offsetof(obm_class_stats_t, f)                                                         \
    }
static const struct {
    const char *name;
    size_t offset;
} top_fields[] = {S(size),
                  S(version),
                  S(arenas_current),
                  S(arenas_highwater),
                  S(arenas_allocated_total),
                  S(arenas_released_total),
                  S(pools_in_use),
                  S(pools_full),
                  S(pools_empty),
                  S(pools_cached),
                  S(pools_untouched),
                  S(bytes_mapped),
                  S(bytes_in_use),
                  S(bytes_free_blocks),
                  S(bytes_empty_pools),
                  S(bytes_pool_headers),
                  S(bytes_quantization),
                  S(large_allocs_current),
                  S(large_bytes_current),
                  S(large_allocs_total),
                  S(heaps_live),
                  S(heaps_abandoned),
                  S(heaps_created),
                  S(heaps_adopted),
                  S(pools_taken_total),
                  S(pools_returned_total)},
  class_fields[] = {K(block_size),    K(pools),   K(blocks_in_use), K(blocks_free),
                    K(blocks_remote), K(mallocs), K(frees),         K(remote_frees)};
#define NTOP    (sizeof top_fields / sizeof top_fields[0])
#define NCLASSF (sizeof class_fields / sizeof class_fields[0])

static size_t field(const void *base, size_t offset)
{
    return *(const size_t *)((const char *)base + offset);
}

static void struct_json(FILE *f, const obm_stats_t *s)
{
    fprintf(f, "{");
    for (size_t i = 0; i < NTOP; i++)
        fprintf(f, "\"%s\": %zu, ", top_fields[i].name, field(s, top_fields[i].offset));
    fprintf(f, "\"classes\": [");
    for (size_t c = 0; c < OBM_NCLASSES; c++) {
        fprintf(f, "%s{", c ? ", " : "");
        for (size_t i = 0; i < NCLASSF; i++)
            fprintf(f, "%s\"%s\": %zu", i ? ", " : "", class_fields[i].name,
                    field(&s->classes[c], class_fields[i].offset));
        fprintf(f, "}");
    }
    fprintf(f, "]}\n");
}

static void test_json(void **state)
{
    (void)state;
    void *p = obm_malloc(OPQ(40));
    assert_non_null(p);
    assert_int_equal(NTOP * sizeof(size_t), offsetof(obm_stats_t, classes));
    assert_int_equal(NCLASSF * sizeof(size_t), sizeof(obm_class_stats_t));
    obm_stats_t s = stats();
    assert_int_equal(print_captured("J"), 0);
    /* Every field appears once, with the struct's value. */
    char want[128];
    for (size_t i = 0; i < NTOP; i++) {
        snprintf(want, sizeof want, "\"%s\": %zu", top_fields[i].name,
                 field(&s, top_fields[i].offset));
        assert_non_null(strstr(report, want));
    }
    snprintf(want, sizeof want, "{\"block_size\": 48, \"pools\": %zu, \"blocks_in_use\": %zu,",
             s.classes[2].pools, s.classes[2].blocks_in_use);
    assert_non_null(strstr(report, want));
    assert_true(s.classes[2].blocks_in_use >= 1);
    obm_free(p);
}

/* ---- the map ---- */

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++)
        n++;
    return n;
}

static void test_map(void **state)
{
    (void)state;
    static void *p[3000];
    for (int i = 0; i < 3000; i++)
        assert_non_null(p[i] = obm_malloc(OPQ(16 + (size_t)(i % 31) * 16)));
    for (int i = 0; i < 3000; i += 3)
        obm_free(p[i]);
    obm_stats_t s = stats();
    assert_int_equal(print_captured("M"), 0);
    assert_true(strncmp(report, "<?xml", 5) == 0);
    assert_non_null(strstr(report, "</svg>\n"));
    assert_int_equal(count_of(report, "<g class=\"arena\""), s.arenas_current);
    assert_int_equal(count_of(report, "<rect class=\"pool "), 64 * s.arenas_current);
    assert_int_equal(count_of(report, "<rect class=\"pool used\"") +
                         count_of(report, "<rect class=\"pool full\""),
                     s.pools_in_use);
    assert_int_equal(count_of(report, "<rect class=\"pool full\""), s.pools_full);
    assert_int_equal(count_of(report, "<rect class=\"pool u\""), s.pools_untouched);
    for (int i = 1; i < 3000; i++)
        if (i % 3 != 0)
            obm_free(p[i]);
}

/* ---- TESTPLAN 38: partial_free_keeps_only_used_arenas ---- */

/* Per arena: blocks live in it, and whether a pool in it is cached by a
 * heap or retired (serving a class with no block in use: a ring's only
 * pool stays in service when it empties). */
struct arena_check {
    size_t arenas, spares, unexplained, pools_seen, live;
    bool held;
};

static int arena_live(const obm_region_t *r, void *arg)
{
    struct arena_check *a = arg;
    if (r->kind == OBM_REGION_ARENA) {
        a->arenas++;
        a->spares += r->state == OBM_ARENA_SPARE;
        a->pools_seen = a->live = 0;
        a->held = r->state == OBM_ARENA_SPARE;
        return 0;
    }
    a->live += r->used;
    a->held |= r->state == OBM_POOL_CACHED || (r->size_class >= 0 && r->used == 0);
    if (++a->pools_seen == 64 && a->live == 0 && !a->held)
        a->unexplained++; /* empty, yet neither the spare nor held by a heap */
    return 0;
}

static void test_partial_free(void **state)
{
    (void)state;
    enum { M = 10000 };
    static void *p[M];
    obm_stats_t s0 = stats();
    unsigned seed = 38;
    for (int i = 0; i < M; i++) {
        seed = seed * 1103515245 + 12345;
        size_t n = 1 + (seed >> 8) % (16 * KiB);
        if (i % 2)
            n = 1 + n % 512; /* half small, so pools of every class fill arenas */
        assert_non_null(p[i] = obm_malloc(OPQ(n)));
    }
    obm_stats_t full = stats();
    assert_true(full.arenas_current >= 3);
    size_t live = 0, live_large = 0;
    for (int i = 0; i < M; i++) {
        if (i % 13 == 0) {
            live += obm_owns(p[i]) ? 1 : 0;
            live_large += obm_owns(p[i]) ? 0 : 1;
            continue;
        }
        obm_free(p[i]);
    }
    obm_stats_t s = stats();
    size_t in_use = 0;
    for (size_t c = 0; c < OBM_NCLASSES; c++)
        in_use += s.classes[c].blocks_in_use - s0.classes[c].blocks_in_use;
    assert_int_equal(in_use, live);
    assert_int_equal(s.large_allocs_current - s0.large_allocs_current, live_large);
    /* Every arena left holds a live block, or is the one spare, or holds a
     * pool this thread's heap keeps (cached, or retired on its ring). */
    struct arena_check a = {0};
    assert_int_equal(obm_visit(arena_live, &a), 0);
    assert_int_equal(a.arenas, s.arenas_current);
    assert_true(a.spares <= 1);
    assert_int_equal(a.unexplained, 0);
    assert_true(s.pools_cached <= 8);
    assert_int_equal(s.arenas_released_total - full.arenas_released_total,
                     full.arenas_current - s.arenas_current);

    /* 64-byte blocks until three new arenas are mapped, all freed: those
     * arenas go back but the spare, and the same checks hold. */
    enum { B = 40 * 64 * 63 };
    static void *burst[B];
    int nb = 0;
    obm_stats_t peak = s;
    while (peak.arenas_current < s.arenas_current + 3) {
        assert_true(nb + 63 <= B);
        for (int i = 0; i < 63; i++)
            assert_non_null(burst[nb++] = obm_malloc(OPQ(64)));
        peak = stats();
    }
    for (int i = 0; i < nb; i++)
        obm_free(burst[i]);
    obm_stats_t after = stats();
    assert_true(after.arenas_current <= s.arenas_current + 1);
    assert_true(after.arenas_released_total >= peak.arenas_released_total + 2);
    struct arena_check b = {0};
    assert_int_equal(obm_visit(arena_live, &b), 0);
    assert_int_equal(b.unexplained, 0);
    for (int i = 0; i < M; i += 13)
        obm_free(p[i]);
}

/* ---- TESTPLAN 41: stats_consistent_under_threads ---- */

#define NTHREADS 8
#define SLOTS    512

static _Atomic(void *) shared[NTHREADS * SLOTS];
static atomic_bool stop_threads;

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;
    while (!atomic_load_explicit(&stop_threads, memory_order_relaxed) && !stopped()) {
        seed = seed * 1103515245 + 12345;
        size_t slot = (seed >> 8) % (NTHREADS * SLOTS); /* any thread's slot: remote frees */
        size_t n = (seed >> 4) % 64 == 0 ? 600 + (seed >> 12) % 4000 : 1 + (seed >> 12) % 512;
        void *p = obm_malloc(n);
        if (p == NULL) {
            record_failure("obm_malloc(%zu) failed", n);
            break;
        }
        memset(p, 0x5a, n < 64 ? n : 64);
        obm_free(atomic_exchange(&shared[slot], p));
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    double scale =
        SANITIZER_SCALE * (getenv("OBM_TEST_SCALE") ? atof(getenv("OBM_TEST_SCALE")) : 1);
    if (strstr(getenv("LD_PRELOAD") ? getenv("LD_PRELOAD") : "", "valgrind") != NULL)
        scale *= 0.1;
    unsigned long ms = (unsigned long)(1500 * scale) + 100;
    pthread_t t[NTHREADS];
    atomic_store(&stop_threads, false);
    for (uintptr_t i = 0; i < NTHREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, churn, (void *)(i + 1)), 0);

    obm_stats_t prev = {.size = sizeof prev};
    assert_int_equal(obm_stats_get(&prev), 0);
    size_t snapshots = 0;
    unsigned long end = now_ms() + ms;
    while (now_ms() < end && !stopped()) {
        obm_stats_t s = {.size = sizeof s};
        assert_int_equal(obm_stats_get(&s), 0);
        const char *why = impossible(&s);
        if (*why != '\0')
            record_failure("snapshot %zu: %s", snapshots, why);
        if (s.arenas_allocated_total < prev.arenas_allocated_total ||
            s.arenas_highwater < prev.arenas_highwater ||
            s.large_allocs_total < prev.large_allocs_total ||
            s.pools_taken_total < prev.pools_taken_total)
            record_failure("snapshot %zu: a total went down", snapshots);
        for (size_t c = 0; c < OBM_NCLASSES; c++)
            if (s.classes[c].mallocs < prev.classes[c].mallocs ||
                s.classes[c].frees < prev.classes[c].frees)
                record_failure("snapshot %zu: class %zu's counts went down", snapshots, c);
        if (snapshots % 16 == 0) {
            struct visit_sums v = {.stop_at = 0};
            if (obm_visit(visit_sum, &v) != 0 || v.bad || v.spares > 1)
                record_failure("obm_visit under threads gave an impossible walk");
            print_captured(snapshots % 32 == 0 ? "J" : "");
        }
        prev = s;
        snapshots++;
    }
    atomic_store(&stop_threads, true);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    report_failure();
    assert_true(snapshots > 10);
    for (size_t i = 0; i < NTHREADS * SLOTS; i++)
        obm_free(atomic_exchange(&shared[i], NULL));
    obm_stats_t quiet = stats(); /* the threads are gone: exact again */
    for (size_t c = 0; c < OBM_NCLASSES; c++)
        assert_int_equal(quiet.classes[c].blocks_in_use + quiet.classes[c].blocks_remote,
                         quiet.classes[c].mallocs - quiet.classes[c].frees);
}

/* ---- --dump DIR: files for stats_output.sh ---- */

static void write_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static int dump(const char *dir)
{
    static void *p[5000];
    for (int i = 0; i < 5000; i++)
        p[i] = obm_malloc(1 + (size_t)(i * 7919) % 700);
    for (int i = 0; i < 5000; i += 3)
        obm_free(p[i]);
    obm_stats_t s = {.size = sizeof s};
    obm_stats_get(&s);
    if (print_captured("J") != 0)
        return 1;
    write_file(dir, "report.json", report, report_len);
    char path[4096];
    snprintf(path, sizeof path, "%s/struct.json", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return 1;
    struct_json(f, &s);
    fclose(f);
    if (print_captured("M") != 0)
        return 1;
    write_file(dir, "map.svg", report, report_len);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--dump") == 0)
        return dump(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_classes), /* first: nothing else allocated yet */
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_large),
        cmocka_unit_test(test_diff),          cmocka_unit_test(test_visit),
        cmocka_unit_test(test_text),          cmocka_unit_test(test_json),
        cmocka_unit_test(test_map),           cmocka_unit_test(test_partial_free),
        cmocka_unit_test(test_threads),
    };
    return RUN_TAP_TESTS(tests);
}
