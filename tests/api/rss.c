/* CHECKLIST 37 rss_returns, measured with RSS (there is no statistics API
 * yet): 256 MiB of 32-byte blocks raise the resident set by at least
 * 200 MiB, and once they are all freed (in allocation order, and in a
 * second run in random order) it comes back to within RSS_SLACK of the
 * baseline, and the arenas that held them are unmapped: apart from the
 * warm-up block's arena, at most KEPT_ARENAS of them are still known to
 * obm (obm_owns) or still have a page mapped (mincore). A third and a
 * fourth run do the same with 2048-byte blocks, a medium class: 15 to a
 * pool of 32 KiB (8 pages), 8 pools to an arena.
 *
 * Why those bounds (src/types.h, src/arena.c, src/heap.c): after the last
 * free, one empty pool per class stays on its ring (here one class, so
 * one pool, in one arena), one entirely free arena is kept as the spare,
 * and up to 4 more spares (OBMI_SPARES_WAITING) wait for the decay clock;
 * every other arena is unmapped as its last pool comes back, with no tick
 * needed. So at most 6 of the arenas the blocks used stay mapped, plus the
 * arena of the warm-up block, which may also hold blocks allocated before
 * the test (cmocka's and stdio's under the drop-in): 1.75 MiB resident at
 * most (tests/api/purge.c checks that the waiting spares go two ticks
 * later).
 * obm's own metadata never shrinks but is small: arena objects (64 KiB
 * slabs, about 800 arenas each: 128 KiB for the ~1,040 arenas here) and
 * arena-map leaves (8 bytes per arena touched). That is about 1 MiB;
 * RSS_SLACK is 4 MiB, so a release that stopped working (260 MiB) fails it
 * by far and 12 arenas too many fail it too (a single one fails the
 * arena counts).
 *
 * Each run is a forked child, so nothing else allocates from the heap
 * while it is measured; the child reads /proc/self/statm with open and
 * read (no allocation), keeps its block table in its own mmap (touched
 * before the baseline, unmapped only after the last reading), and reports
 * its numbers through a shared mapping; the parent checks them and prints
 * them as TAP diagnostics. Not for valgrind or ASan, whose own allocators
 * and shadow memory change RSS. Built twice; see api.h. */
#include "api.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define TOTAL       (256 * MiB)
#define MIN_RISE    (200 * MiB)
#define RSS_SLACK   (4 * MiB)
#define KEPT_ARENAS 6

/* What a child measured, in a MAP_SHARED page. */
struct report {
    size_t baseline, peak, after; /* RSS in bytes */
    size_t arenas;                /* distinct arenas the blocks were in */
    size_t owned;                 /* of those but the warm-up block's: still obm's */
    size_t mapped;                /* of those but the warm-up block's: still mapped */
    int warm_owned, warm_mapped;  /* the warm-up block's arena, for the report */
    int middle_owned;             /* obm_owns(the middle block) after the frees */
    size_t bad_block;             /* for RSS_CONTENTS */
};

enum {
    RSS_SETUP = 1,    /* mmap, /proc or mincore failed */
    RSS_ALLOC = 2,    /* malloc failed, or gave a block obm does not own */
    RSS_CONTENTS = 3, /* a block's words changed before its free */
};

/* Resident bytes now; a child that cannot read them exits. */
static size_t rss_now(void)
{
    size_t rss = rss_bytes();
    if (rss == 0)
        _exit(RSS_SETUP);
    return rss;
}

static uintptr_t arena_of(uintptr_t p)
{
    return p & ~(uintptr_t)(OBM_ARENA_SIZE - 1);
}

/* Whether any page of the arena at base is still mapped. */
static int arena_mapped(uintptr_t base)
{
    unsigned char vec[OBM_ARENA_SIZE / 4096];
    size_t page = page_size();
    for (uintptr_t a = base; a < base + OBM_ARENA_SIZE; a += page) {
        if (mincore((void *)a, page, vec) == 0)
            return 1;
        if (errno != ENOMEM)
            _exit(RSS_SETUP);
    }
    return 0;
}

/* The run's block size (32, or 2048), and how many blocks make TOTAL. */
static size_t rss_block;
#define BLOCK   rss_block
#define NBLOCKS (TOTAL / BLOCK)

static void rss_child(struct report *r, int shuffled)
{
    uintptr_t *table = mmap(NULL, NBLOCKS * sizeof *table, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (table == MAP_FAILED) {
        _exit(RSS_SETUP);
    }
    memset(table, 0x5a, NBLOCKS * sizeof *table); /* resident from here on */

    /* Warm up the class (its first pool and arena) and the code paths. */
    void *warm = T_MALLOC(OPQ(BLOCK));
    if (warm == NULL || !T_OWNS(warm))
        _exit(RSS_ALLOC);
    uintptr_t warm_arena = arena_of((uintptr_t)warm);
    T_FREE(warm);
    r->baseline = rss_now();

    for (size_t i = 0; i < NBLOCKS; i++) {
        uint64_t *p = T_MALLOC(OPQ(BLOCK));
        if (p == NULL || !T_OWNS(p))
            _exit(RSS_ALLOC);
        p[0] = i; /* touch every word */
        p[1] = (uintptr_t)p;
        p[2] = ~(uint64_t)i;
        p[3] = i * 0x9e3779b97f4a7c15ull;
        table[i] = (uintptr_t)p;
    }
    r->peak = rss_now();

    if (shuffled) {
        uint64_t rng = 0x0b3a11ull;
        for (size_t i = NBLOCKS - 1; i > 0; i--) {
            size_t j = (size_t)(rng_next(&rng) % (i + 1));
            uintptr_t t = table[i];
            table[i] = table[j];
            table[j] = t;
        }
    }
    for (size_t i = 0; i < NBLOCKS; i++) {
        uint64_t *p = (uint64_t *)table[i];
        size_t k = (size_t)p[0];
        if (k >= NBLOCKS || p[1] != (uintptr_t)p || p[2] != ~(uint64_t)k ||
            p[3] != k * 0x9e3779b97f4a7c15ull) {
            r->bad_block = i;
            _exit(RSS_CONTENTS);
        }
        T_FREE(p);
    }
    r->after = rss_now();

    if (!shuffled)
        r->middle_owned = T_OWNS((void *)table[NBLOCKS / 2]);
    /* The distinct arenas the blocks were in, through a small open-address
     * set (about 1,050 of them), and which of them obm still has. */
    enum { SET = 1 << 14 };
    static uintptr_t set[SET];
    for (size_t i = 0; i < NBLOCKS; i++) {
        uintptr_t a = arena_of(table[i]);
        size_t h = (size_t)((a >> 18) * 0x9e3779b97f4a7c15ull >> 50);
        while (set[h] != 0 && set[h] != a)
            h = (h + 1) % SET;
        if (set[h] != 0)
            continue;
        set[h] = a;
        r->arenas++;
        int owned = T_OWNS((void *)a) != 0, mapped = arena_mapped(a);
        if (a == warm_arena) {
            r->warm_owned = owned;
            r->warm_mapped = mapped;
        } else {
            r->owned += owned;
            r->mapped += mapped;
        }
    }
    munmap(table, NBLOCKS * sizeof *table);
    _exit(0);
}

static void run_rss(size_t block, int shuffled)
{
    BLOCK = block;
    struct report *r =
        mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(r != MAP_FAILED);
    *r = (struct report){.baseline = 0};
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(60);
        rss_child(r, shuffled);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        fail_msg("child died of signal %d", WTERMSIG(status));
    if (WEXITSTATUS(status) == RSS_CONTENTS)
        fail_msg("block %zu of the free order changed before its free", r->bad_block);
    if (WEXITSTATUS(status) != 0)
        fail_msg("child failed: %s", WEXITSTATUS(status) == RSS_ALLOC ? "allocation" : "set-up");

    const double m = (double)MiB;
    printf("# %s: %zu blocks of %zu B in %zu arenas; RSS baseline %.2f MiB, with the blocks "
           "%.2f MiB (+%.2f), after freeing %.2f MiB (%+.2f); other arenas than the warm-up "
           "block's still obm's %zu, still mapped %zu (the warm-up block's: %d, %d)\n",
           shuffled ? "random order" : "allocation order", (size_t)NBLOCKS, BLOCK, r->arenas,
           r->baseline / m, r->peak / m, ((double)r->peak - (double)r->baseline) / m, r->after / m,
           ((double)r->after - (double)r->baseline) / m, r->owned, r->mapped, r->warm_owned,
           r->warm_mapped);
    if (r->peak < r->baseline + MIN_RISE)
        fail_msg("RSS rose by %zu KiB only with %zu MiB of blocks: is it measured?",
                 (r->peak - r->baseline) / KiB, TOTAL / MiB);
    /* 32-byte blocks, 126 to a 4 KiB pool, 64 pools to an arena; 2048-byte
     * blocks, 15 to a 32 KiB pool, 8 pools to an arena. */
    size_t per_arena = BLOCK == 32 ? 126 * 64 : 15 * 8;
    assert_true(r->arenas >= NBLOCKS / per_arena && r->arenas <= NBLOCKS / per_arena + 2);
    if (r->after > r->baseline + RSS_SLACK)
        fail_msg("RSS %zu KiB after freeing everything: %zu KiB above the baseline (at most "
                 "%zu KiB)",
                 r->after / KiB, (r->after - r->baseline) / KiB, RSS_SLACK / KiB);
    if (r->owned > KEPT_ARENAS || r->mapped > KEPT_ARENAS)
        fail_msg("after freeing everything, %zu of %zu arenas (not counting the warm-up "
                 "block's) are still obm's and %zu still mapped (at most %d: one with the "
                 "class's kept pool, and the spare)",
                 r->owned, r->arenas, r->mapped, KEPT_ARENAS);
    /* In allocation order the middle block's arena is neither the first to
     * empty (the spare) nor the last (the kept pool): it was released. */
    if (!shuffled && r->middle_owned)
        fail_msg("the arena of the middle block is still obm's after freeing everything");
    munmap(r, sizeof *r);
}

static void test_rss_returns_in_order(void **state)
{
    (void)state;
    run_rss(32, 0);
}

static void test_rss_returns_shuffled(void **state)
{
    (void)state;
    run_rss(32, 1);
}

static void test_rss_returns_medium_in_order(void **state)
{
    (void)state;
    run_rss(2048, 0);
}

static void test_rss_returns_medium_shuffled(void **state)
{
    (void)state;
    run_rss(2048, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_obm_active),
        cmocka_unit_test(test_rss_returns_in_order),
        cmocka_unit_test(test_rss_returns_shuffled),
        cmocka_unit_test(test_rss_returns_medium_in_order),
        cmocka_unit_test(test_rss_returns_medium_shuffled),
    };
    return RUN_TAP_TESTS(tests);
}
