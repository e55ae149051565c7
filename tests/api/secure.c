/* The checks behind options of a build configured with --enable-secure
 * (src/secure.c): OBM_JUNK, OBM_CANARY and OBM_RANDOMIZE, each on and off,
 * in fresh processes, through libobm, and with OBM_ON_ERROR=report: the
 * line, one count in the statistics, the process goes on and the bad
 * block stays out of use. In other builds every case checks the other
 * side: setting an option prints one warning and changes nothing. */
#include "api.h"

#include "config.h"
#include "death.h"

#ifdef OBM_SECURE
#define SECURE_BUILD 1
#define SECURE_END   DEATH_ABORT
#else
#define SECURE_BUILD 0
#define SECURE_END   DEATH_EXIT
#endif

/* The cases write where they must not on purpose; ASan (whose build has
 * no secure checks) would report that first. */
#define BUGGY __attribute__((no_sanitize("address")))

#define JUNK   "OBM_JUNK=1"
#define CANARY "OBM_CANARY=1"
#define RANDOM "OBM_RANDOMIZE=1"
#define REPORT "OBM_ON_ERROR=report"

/* p is a block of `block` bytes (a class's size, small or medium). */
static void expect_block_error(const char *func, const char *what, const void *p, size_t block)
{
    expect_line("obm: %s(): %s (ptr=0x%" PRIxPTR ", class %u of %zu bytes, pool 0x%" PRIxPTR ")",
                func, what, (uintptr_t)p, class_of(block), block, (uintptr_t)block_pool(p, block));
}

static void expect_ignored(const char *name)
{
    if (!SECURE_BUILD)
        expect_line("obm: ignoring %s (this build was not configured with --enable-secure)", name);
}

/* Write after free: one byte of a freed block (its pool kept in service by
 * a neighbour), then the malloc that hands it out again reports it. */
BUGGY static void junk_write_after_free(void)
{
    expect_ignored("OBM_JUNK");
    char *keep = small_block(64), *p = small_block(64);
    if (pool_of(keep) != pool_of(p))
        death_fail("two blocks in two pools");
    T_FREE(p);
    p[40] = 'x';
    if (SECURE_BUILD)
        expect_block_error("malloc", "write after free detected", p, 64);
    char *q = small_block(64);
    if (q != p)
        death_fail("the freed block was not handed out again");
}

/* Junk on, no write: blocks come back filled with 0xdf past 16 bytes, and
 * calloc still zeroes. */
static void junk_clean(void)
{
    expect_ignored("OBM_JUNK");
    char *keep = small_block(96), *p = small_block(96);
    memset(p, 0x11, 96);
    T_FREE(p);
    char *q = small_block(96);
    if (q != p)
        death_fail("the freed block was not handed out again");
    for (size_t i = 16; i < 96; i++)
        if ((unsigned char)q[i] != (SECURE_BUILD ? 0xdf : 0x11))
            death_fail("byte %zu is 0x%02x", i, (unsigned char)q[i]);
    T_FREE(q);
    unsigned char *z = T_CALLOC(1, OPQ(80));
    for (size_t i = 0; i < 80; i++)
        if (z[i] != 0)
            death_fail("calloc byte %zu is %u", i, z[i]);
    T_FREE(z);
    T_FREE(keep);
}

/* Canary: the usable size shrinks by 8; one byte past it is caught by
 * free; writing the whole usable size is fine. */
BUGGY static void canary_overflow(void)
{
    expect_ignored("OBM_CANARY");
    char *p = small_block(40);
    size_t usable = T_USABLE_SIZE(p);
    if (usable != (SECURE_BUILD ? 40u : 48u))
        death_fail("usable size %zu", usable);
    memset(p, 0x22, usable);
    T_FREE(p);
    char *q = small_block(40);
    q[usable] ^= 1; /* the canary's first byte (a neighbour's without canaries), changed */
    if (SECURE_BUILD)
        expect_block_error("free", "buffer overflow detected", q, 48);
    T_FREE(q);
}

/* The same past the first page of a medium pool (a block of the 1024-byte
 * class, its pool's fifth: 64 + 4 * 1024 = 4160; the sixth, live, is the
 * neighbour). */
BUGGY static void canary_overflow_medium(void)
{
    expect_ignored("OBM_CANARY");
    char *b[6];
    for (int i = 0; i < 6; i++)
        b[i] = small_block(1000);
    char *p = b[4];
    if ((size_t)(p - block_pool(p, 1000)) < OBM_POOL_SIZE)
        death_fail("block %p is in its pool's first page", (void *)p);
    size_t usable = T_USABLE_SIZE(p);
    if (usable != (SECURE_BUILD ? 1016u : 1024u))
        death_fail("usable size %zu", usable);
    memset(p, 0x22, usable);
    p[usable] ^= 1; /* the canary's first byte (a neighbour's without canaries), changed */
    if (SECURE_BUILD)
        expect_block_error("free", "buffer overflow detected", p, 1024);
    T_FREE(p);
}

/* Canary on: every path that hands out or takes back a block of obm's
 * keeps it (realloc, calloc, aligned), small and medium, so a clean
 * program runs clean; a request of 505..512 bytes no longer fits a small
 * block but a medium one, and one of 32761..32768 no longer fits obm's
 * pools at all. */
static void canary_clean(void)
{
    expect_ignored("OBM_CANARY");
    for (unsigned i = 0; i < 20000; i++) {
        size_t n = (i * 7919u) % (i % 2 ? 600 : 40000);
        char *p = T_MALLOC(OPQ(n));
        memset(p, 1, T_USABLE_SIZE(p));
        char *q = T_CALLOC(1, OPQ(n / 2 + 1));
        for (size_t k = 0; k < n / 2 + 1; k++)
            if (q[k] != 0)
                death_fail("calloc(%zu) byte %zu", n / 2 + 1, k);
        p = T_REALLOC(p, OPQ(n + 40));
        memset(p, 2, T_USABLE_SIZE(p));
        void *a = T_ALIGNED_ALLOC(16, OPQ(n));
        T_FREE(a);
        T_FREE(q);
        T_FREE(p);
    }
    char *big = T_MALLOC(OPQ(510));
    if (!T_OWNS(big) || T_USABLE_SIZE(big) != (SECURE_BUILD ? 632u : 512u))
        death_fail("malloc(510): owned %d, usable size %zu", T_OWNS(big), T_USABLE_SIZE(big));
    T_FREE(big);
    char *top = T_MALLOC(OPQ(OBM_MEDIUM_MAX - 4));
    if (SECURE_BUILD == (T_OWNS(top) != 0))
        death_fail("malloc(%d) %s an obm block", OBM_MEDIUM_MAX - 4, T_OWNS(top) ? "is" : "is not");
    T_FREE(top);
}

static void junk_and_canary_clean(void)
{
    expect_ignored("OBM_JUNK"); /* warnings in the order of the options table */
    canary_clean();
}

/* Randomize: a fresh pool's first 16 blocks are not handed out in address
 * order (one order in 16! is; the seed differs per process, so the case
 * runs in a fresh one); with it off they are. */
static void randomize_order(void)
{
    expect_ignored("OBM_RANDOMIZE");
    char *b[16];
    for (int i = 0; i < 16; i++)
        b[i] = small_block(400 + 16 * 4); /* class 28: no other user in a fresh process */
    int ascending = 1;
    for (int i = 1; i < 16 && ascending; i++)
        ascending = b[i] > b[i - 1];
    if (ascending == SECURE_BUILD)
        death_fail("blocks %s in address order", ascending ? "handed out" : "not handed out");
}

/* ---- OBM_ON_ERROR=report ---- */

/* The error counters grew by exactly these since `before`. */
static void errors_grew(const obm_stats_t *before, size_t write_after_free, size_t overflow)
{
    obm_stats_t now = death_stats();
    size_t dw = now.errors_write_after_free - before->errors_write_after_free;
    size_t dov = now.errors_overflow - before->errors_overflow;
    size_t other = (now.errors_invalid_pointer - before->errors_invalid_pointer) +
                   (now.errors_double_free - before->errors_double_free) +
                   (now.errors_corrupted_list - before->errors_corrupted_list);
    if (dw != write_after_free || dov != overflow || other != 0)
        death_fail("errors counted: write after free +%zu, overflow +%zu, others +%zu; want +%zu, "
                   "+%zu, +0",
                   dw, dov, other, write_after_free, overflow);
}

/* A few hundred more n-byte blocks, twice (freed in between): none is
 * `never`, a block the report left out of use. */
static void never_handed_out(size_t n, const char *never)
{
    enum { MORE = 300 };
    char *got[MORE];
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < MORE; i++) {
            got[i] = small_block(n);
            if (got[i] == never)
                death_fail("malloc(%zu) handed out %p again", n, (void *)never);
            memset(got[i], 0x44, T_USABLE_SIZE(got[i]));
        }
        for (size_t i = 0; i < MORE; i++)
            T_FREE(got[i]);
    }
}

/* Write after free, reported: the malloc that meets it prints the line,
 * counts it once and hands out another block; the written block is never
 * handed out again. Without the secure checks nothing is seen. */
BUGGY static void junk_report(void)
{
    expect_ignored("OBM_JUNK");
    char *keep = small_block(64), *p = small_block(64);
    if (pool_of(keep) != pool_of(p))
        death_fail("two blocks in two pools");
    obm_stats_t before = death_stats();
    T_FREE(p);
    p[40] = 'x';
    if (SECURE_BUILD)
        expect_block_error("malloc", "write after free detected", p, 64);
    char *q = small_block(64);
    if (SECURE_BUILD ? q == p : q != p)
        death_fail("malloc after the write gave %p; the written block is %p", (void *)q, (void *)p);
    errors_grew(&before, SECURE_BUILD, 0);
    memset(q, 0x55, 64);
    T_FREE(q);
    if (SECURE_BUILD)
        never_handed_out(64, p);
    errors_grew(&before, SECURE_BUILD, 0);
    T_FREE(keep);
}

/* Overflow, reported: the free that meets it prints the line, counts it
 * once and leaves the block alone, never handed out again. */
BUGGY static void canary_report(void)
{
    expect_ignored("OBM_CANARY");
    char *p = small_block(40);
    size_t usable = T_USABLE_SIZE(p);
    if (usable != (SECURE_BUILD ? 40u : 48u))
        death_fail("usable size %zu", usable);
    obm_stats_t before = death_stats();
    memset(p, 0x22, usable);
    if (SECURE_BUILD) {
        p[usable] ^= 1; /* the canary's first byte, changed whatever it holds */
        expect_block_error("free", "buffer overflow detected", p, 48);
    }
    T_FREE(p);
    errors_grew(&before, 0, SECURE_BUILD);
    if (SECURE_BUILD)
        never_handed_out(40, p);
    errors_grew(&before, 0, SECURE_BUILD);
}

/* Each option off (unset) behaves as a plain build. */
BUGGY static void options_off(void)
{
    char *keep = small_block(64), *p = small_block(64);
    T_FREE(p);
    p[40] = 'x'; /* not checked */
    char *q = small_block(64);
    if (T_USABLE_SIZE(q) != 64)
        death_fail("usable size %zu", T_USABLE_SIZE(q));
    T_FREE(q);
    T_FREE(keep);
}

static const struct death_case cases[] = {
    {"junk_write_after_free", SECURE_END, 1, {JUNK}, junk_write_after_free, NULL},
    {"junk_clean", DEATH_EXIT, 1, {JUNK}, junk_clean, NULL},
    {"canary_overflow", SECURE_END, 1, {CANARY}, canary_overflow, NULL},
    {"canary_overflow_medium", SECURE_END, 1, {CANARY}, canary_overflow_medium, NULL},
    {"canary_clean", DEATH_EXIT, 1, {CANARY}, canary_clean, NULL},
    {"junk_and_canary_clean", DEATH_EXIT, 1, {CANARY, JUNK}, junk_and_canary_clean, NULL},
    {"randomize_order", DEATH_EXIT, 1, {RANDOM}, randomize_order, NULL},
    {"junk_report", DEATH_EXIT, 1, {JUNK, REPORT}, junk_report, NULL},
    {"canary_report", DEATH_EXIT, 1, {CANARY, REPORT}, canary_report, NULL},
    {"options_off", DEATH_EXIT, 1, {NULL}, options_off, NULL},
};

DEATH_MAIN(cases)
