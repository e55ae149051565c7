/* Death tests: a pointer into an obm pool that is not the start of a block
 * in use makes free, realloc and malloc_usable_size abort with one line,
 * "obm: <function>(): invalid pointer 0x...", on stderr (the obm-owned cases
 * of CHECKLIST 45); a block already free is reported by what it was (a
 * double free, or a pointer already freed). The same holds in a medium
 * pool, several pages with its header in the first (a pointer's pool is
 * found through its arena's page table). hardening.c has the rest of
 * CHECKLIST group H. Built twice; see api.h. The machinery is death.h's.
 */
#include "api.h"
#include "death.h"

static void bad_free(char *p)
{
    expect_invalid("free", p);
    T_FREE(p);
}

static void bad_realloc(char *p, size_t n)
{
    expect_invalid("realloc", p);
    void *volatile q = T_REALLOC(p, OPQ(n));
    (void)q;
}

static void bad_usable_size(char *p)
{
    expect_invalid("malloc_usable_size", p);
    volatile size_t n = T_USABLE_SIZE(p);
    (void)n;
}

/* In a fresh process the first arena has given out a few pools, from pool
 * 0 up: its last pool has never been used. */
static char *unused_pool_pointer(void)
{
    char *p = small_block(32);
    char *last = arena_of(p) + (OBM_ARENA_SIZE - OBM_POOL_SIZE);
    if (pool_of(p) >= arena_of(p) + OBM_ARENA_SIZE / 2)
        death_fail("not a fresh process: a block in pool %p", (void *)pool_of(p));
    return last + POOL_HEADER;
}

static void free_p_plus_1(void)
{
    bad_free(small_block(32) + 1);
}

static void free_p_plus_8(void)
{
    bad_free(small_block(32) + 8);
}

static void free_pool_start(void)
{
    bad_free(pool_of(small_block(32)));
}

static void free_in_pool_header(void)
{
    bad_free(pool_of(small_block(48)) + 48);
}

static void free_unused_pool(void)
{
    bad_free(unused_pool_pointer());
}

/* The 512-byte class has 7 blocks at 64 + 512 k and a 448-byte tail. */
static void free_pool_tail(void)
{
    bad_free(pool_of(small_block(512)) + POOL_HEADER + 7 * 512);
}

/* Blocks are carved 16 at a time: block 40 of a fresh 96-byte pool is not. */
static void free_uncarved_block(void)
{
    char *p = small_block(96);
    char *q = pool_of(p) + POOL_HEADER + 40 * 96;
    if (p >= q)
        death_fail("not a fresh pool: block %p", (void *)p);
    bad_free(q);
}

static void realloc_p_plus_16(void)
{
    bad_realloc(small_block(64) + 16, 10);
}

static void realloc_pool_start(void)
{
    bad_realloc(pool_of(small_block(64)), 100);
}

static void realloc_unused_pool(void)
{
    bad_realloc(unused_pool_pointer(), 1000);
}

static void usable_size_p_plus_1(void)
{
    bad_usable_size(small_block(32) + 1);
}

static void usable_size_unused_pool(void)
{
    bad_usable_size(unused_pool_pointer());
}

/* Freeing the block freed last into its pool. */
static void double_free_immediate(void)
{
    char *a = small_block(32), *b = small_block(32);
    (void)b;
    T_FREE(a);
    expect_double_free(a, 32);
    T_FREE(OPQP(a));
}

/* The only block of its class: its pool is empty (and kept) after the first
 * free. A fresh process, so no other block of the class exists. */
static void double_free_sole_block(void)
{
    char *p = small_block(464);
    T_FREE(p);
    expect_double_free(p, 464);
    T_FREE(OPQP(p));
}

static void realloc_after_free(void)
{
    char *a = small_block(80), *b = small_block(80);
    (void)b;
    T_FREE(a);
    expect_freed("realloc", a, 80);
    void *volatile q = T_REALLOC(OPQP(a), OPQ(100));
    (void)q;
}

static void usable_size_after_free(void)
{
    char *a = small_block(80), *b = small_block(80);
    (void)b;
    T_FREE(a);
    expect_freed("malloc_usable_size", a, 80);
    volatile size_t n = T_USABLE_SIZE(OPQP(a));
    (void)n;
}

/* ---- medium blocks: pools of several pages, the header in the first ---- */

static void free_medium_p_plus_16(void)
{
    bad_free(small_block(1000) + 16);
}

/* The 1024-byte class: 15 blocks at 64 + 1024 k in a 16 KiB pool, and a
 * 960-byte tail. */
static void free_medium_pool_tail(void)
{
    char *p = small_block(1000);
    bad_free(block_pool(p, 1000) + POOL_HEADER + 15 * 1024);
}

/* A medium pool is carved 16 KiB at a time: block 5 of a fresh pool of
 * 8192-byte blocks (two a batch) is not. */
static void free_medium_uncarved_block(void)
{
    char *p = small_block(8000);
    char *q = block_pool(p, 8000) + POOL_HEADER + 5 * 8192;
    if (p >= q)
        death_fail("not a fresh pool: block %p", (void *)p);
    bad_free(q);
}

/* The start of a medium pool's third page (8192), in a fresh pool of
 * 2048-byte blocks: inside block 3 (64 + 3 * 2048 = 6208 up to 8256), in
 * use, so no block start. */
static void free_medium_page_start(void)
{
    char *b[4];
    for (int i = 0; i < 4; i++)
        b[i] = small_block(2000);
    bad_free(block_pool(b[0], 2000) + 2 * OBM_POOL_SIZE);
}

static void realloc_medium_p_plus_16(void)
{
    bad_realloc(small_block(5000) + 16, 10);
}

static void usable_size_medium_p_plus_1(void)
{
    bad_usable_size(small_block(700) + 1);
}

/* The only block of its class, in a fresh process. */
static void double_free_medium_sole_block(void)
{
    char *p = small_block(3000);
    T_FREE(p);
    expect_double_free(p, 3000);
    T_FREE(OPQP(p));
}

static void realloc_after_free_medium(void)
{
    char *a = small_block(1500), *b = small_block(1500);
    (void)b;
    T_FREE(a);
    expect_freed("realloc", a, 1500);
    void *volatile q = T_REALLOC(OPQP(a), OPQ(100));
    (void)q;
}

static void usable_size_after_free_medium(void)
{
    char *a = small_block(OBM_MEDIUM_MAX), *b = small_block(OBM_MEDIUM_MAX);
    (void)b;
    T_FREE(a);
    expect_freed("malloc_usable_size", a, OBM_MEDIUM_MAX);
    volatile size_t n = T_USABLE_SIZE(OPQP(a));
    (void)n;
}

/* The control: valid calls, so the child must exit cleanly and silently. */
static void valid_calls(void)
{
    char *p = small_block(32);
    p = T_REALLOC(p, OPQ(64));
    if (T_USABLE_SIZE(p) != 64)
        death_fail("usable size %zu after realloc to 64", T_USABLE_SIZE(p));
    p = T_REALLOC(p, OPQ(3000));
    if (!T_OWNS(p) || T_USABLE_SIZE(p) != 3072)
        death_fail("usable size %zu after realloc to 3000", T_USABLE_SIZE(p));
    T_FREE(p);
}

static const struct death_case death_cases[] = {
    {"free_p_plus_1", DEATH_ABORT, 0, {NULL}, free_p_plus_1, NULL},
    {"free_p_plus_8", DEATH_ABORT, 0, {NULL}, free_p_plus_8, NULL},
    {"free_pool_start", DEATH_ABORT, 0, {NULL}, free_pool_start, NULL},
    {"free_in_pool_header", DEATH_ABORT, 0, {NULL}, free_in_pool_header, NULL},
    {"free_unused_pool", DEATH_ABORT, 1, {NULL}, free_unused_pool, NULL},
    {"free_pool_tail", DEATH_ABORT, 0, {NULL}, free_pool_tail, NULL},
    {"free_uncarved_block", DEATH_ABORT, 1, {NULL}, free_uncarved_block, NULL},
    {"realloc_p_plus_16", DEATH_ABORT, 0, {NULL}, realloc_p_plus_16, NULL},
    {"realloc_pool_start", DEATH_ABORT, 0, {NULL}, realloc_pool_start, NULL},
    {"realloc_unused_pool", DEATH_ABORT, 1, {NULL}, realloc_unused_pool, NULL},
    {"usable_size_p_plus_1", DEATH_ABORT, 0, {NULL}, usable_size_p_plus_1, NULL},
    {"usable_size_unused_pool", DEATH_ABORT, 1, {NULL}, usable_size_unused_pool, NULL},
    {"double_free_immediate", DEATH_ABORT, 0, {NULL}, double_free_immediate, NULL},
    {"double_free_sole_block", DEATH_ABORT, 1, {NULL}, double_free_sole_block, NULL},
    {"realloc_after_free", DEATH_ABORT, 0, {NULL}, realloc_after_free, NULL},
    {"usable_size_after_free", DEATH_ABORT, 0, {NULL}, usable_size_after_free, NULL},
    {"free_medium_p_plus_16", DEATH_ABORT, 0, {NULL}, free_medium_p_plus_16, NULL},
    {"free_medium_pool_tail", DEATH_ABORT, 0, {NULL}, free_medium_pool_tail, NULL},
    {"free_medium_uncarved_block", DEATH_ABORT, 1, {NULL}, free_medium_uncarved_block, NULL},
    {"free_medium_page_start", DEATH_ABORT, 1, {NULL}, free_medium_page_start, NULL},
    {"realloc_medium_p_plus_16", DEATH_ABORT, 0, {NULL}, realloc_medium_p_plus_16, NULL},
    {"usable_size_medium_p_plus_1", DEATH_ABORT, 0, {NULL}, usable_size_medium_p_plus_1, NULL},
    {"double_free_medium_sole_block", DEATH_ABORT, 1, {NULL}, double_free_medium_sole_block, NULL},
    {"realloc_after_free_medium", DEATH_ABORT, 0, {NULL}, realloc_after_free_medium, NULL},
    {"usable_size_after_free_medium", DEATH_ABORT, 0, {NULL}, usable_size_after_free_medium, NULL},
    {"valid_calls", DEATH_EXIT, 0, {NULL}, valid_calls, NULL},
    {"valid_calls_fresh", DEATH_EXIT, 1, {NULL}, valid_calls, NULL},
};

DEATH_MAIN(death_cases)
