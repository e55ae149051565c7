/* free keeps errno (docs/semantics.md: every free preserves errno;
 * CHECKLIST 3) on the paths semantics.c's free_keeps_errno does not reach,
 * each in a fresh process (death.h) that must exit cleanly:
 *
 *   remote_free          blocks of every class, small and medium, whole
 *                        pools among them, freed by another thread than
 *                        their owner (the first remote free into a full
 *                        pool queues it), then the owner takes them back
 *                        and frees more.
 *   abandoned_heap       a thread leaves four arenas' worth of blocks and
 *                        ends; main frees them into its abandoned heap,
 *                        which gives its pools back as they empty: with
 *                        OBM_PURGE_DELAY_MS=0 their pages go back to the
 *                        OS at once and emptied arenas are unmapped,
 *                        inside those frees.
 *   purge_and_release    the owner frees four arenas' worth of blocks with
 *                        OBM_PURGE_DELAY_MS=0: madvise and munmap inside
 *                        the frees.
 *   release_fails        the same, and abandoned_heap_release_fails the
 *                        same as abandoned_heap, with madvise and munmap
 *                        failing (this program's own definitions, which
 *                        obm's calls reach): each failed munmap prints its
 *                        line, and errno is still kept.
 *
 * The statistics show that each case took the paths it names (pools
 * purged, arenas unmapped, remote frees). Built twice; see api.h. */
#include "api.h"
#include "death.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define SENTINEL 12345 /* no errno value of Linux */

/* ---- madvise and munmap, failing on request ---- */

static volatile int fail_release;
static volatile size_t madvise_failed, munmap_failed;

int madvise(void *addr, size_t len, int advice)
{
    if (fail_release) {
        madvise_failed++;
        errno = EINVAL;
        return -1;
    }
    return (int)syscall(SYS_madvise, addr, len, advice);
}

int munmap(void *addr, size_t len)
{
    if (fail_release) {
        munmap_failed++;
        expect_line("obm: munmap failed at 0x%" PRIxPTR, (uintptr_t)addr);
        errno = EINVAL;
        return -1;
    }
    return (int)syscall(SYS_munmap, addr, len);
}

/* ---- the statistics ---- */

/* ---- blocks ---- */

/* Four arenas of 512-byte blocks (7 a pool, 64 pools an arena), and 40 of
 * every class, small and medium (whole pools of most medium classes: 7 to
 * 15 blocks a pool, the 32 KiB class's pool a whole arena). */
enum {
    ARENA_BLOCKS = 4 * 64 * 7,
    MIXED = OBM_NCLASSES * 40,
    NBLOCKS = ARENA_BLOCKS + MIXED,
};

static void *blocks[NBLOCKS];

static void make_blocks(void)
{
    for (size_t i = 0; i < NBLOCKS; i++) {
        size_t n =
            i < ARENA_BLOCKS ? 512 : class_bytes((unsigned)((i - ARENA_BLOCKS) % OBM_NCLASSES));
        blocks[i] = small_block(n);
        memset(blocks[i], 0x5a, n);
    }
}

static void free_checked(void *p, const char *who)
{
    errno = SENTINEL;
    T_FREE(p);
    if (errno != SENTINEL)
        death_fail("%s: free(%p) changed errno from %d to %d", who, p, SENTINEL, errno);
}

static void free_blocks(const char *who)
{
    for (size_t i = 0; i < NBLOCKS; i++)
        free_checked(blocks[i], who);
}

static void run_thread(void *(*fn)(void *))
{
    pthread_t t;
    if (pthread_create(&t, NULL, fn, NULL) != 0 || pthread_join(t, NULL) != 0)
        death_fail("pthread_create or pthread_join failed");
}

/* ---- remote_free ---- */

static void *free_all_remote(void *arg)
{
    (void)arg;
    free_blocks("another thread");
    return NULL;
}

static void remote_free(void)
{
    obm_stats_t before = death_stats();
    make_blocks();
    run_thread(free_all_remote);
    /* The owner takes them back (its mallocs collect the remote frees)
     * and frees again. */
    make_blocks();
    free_blocks("the owner, after remote frees");
    obm_stats_t after = death_stats();
    size_t remote = 0;
    for (int c = 0; c < OBM_NCLASSES; c++)
        remote += after.classes[c].remote_frees - before.classes[c].remote_frees;
    if (remote < NBLOCKS)
        death_fail("%zu remote frees counted, %d made", remote, NBLOCKS);
}

/* ---- abandoned_heap ---- */

static void *make_and_leave(void *arg)
{
    (void)arg;
    make_blocks();
    return NULL;
}

/* Main frees what an ended thread left: its heap is abandoned. */
static void free_into_abandoned(void)
{
    run_thread(make_and_leave);
    if (death_stats().heaps_abandoned == 0)
        death_fail("the thread's heap was not abandoned");
    free_blocks("main, into an abandoned heap");
}

/* The frees gave pages back and unmapped arenas, with or without
 * failures. */
static void released(const obm_stats_t *before, const char *what)
{
    obm_stats_t after = death_stats();
    size_t unmapped = after.arenas_released_total - before->arenas_released_total;
    if (fail_release) {
        if (madvise_failed == 0 || munmap_failed == 0)
            death_fail("%s: madvise failed %zu times, munmap %zu times: both should have been "
                       "called",
                       what, (size_t)madvise_failed, (size_t)munmap_failed);
        if (unmapped != munmap_failed)
            death_fail("%s: %zu arenas released, %zu failed munmaps", what, unmapped,
                       (size_t)munmap_failed);
        fail_release = 0;
        return;
    }
    size_t purged = after.pools_purged_total - before->pools_purged_total;
    if (purged == 0 || unmapped == 0)
        death_fail("%s: %zu pools purged, %zu arenas unmapped: the frees should have done both",
                   what, purged, unmapped);
}

static void abandoned_heap(void)
{
    obm_stats_t before = death_stats();
    free_into_abandoned();
    released(&before, "frees into an abandoned heap");
}

static void abandoned_heap_release_fails(void)
{
    obm_stats_t before = death_stats();
    run_thread(make_and_leave);
    fail_release = 1;
    free_blocks("main, into an abandoned heap, releases failing");
    released(&before, "frees into an abandoned heap, releases failing");
}

/* ---- purge_and_release ---- */

static void purge_and_release(void)
{
    obm_stats_t before = death_stats();
    make_blocks();
    free_blocks("the owner");
    released(&before, "the owner's frees");
}

static void release_fails(void)
{
    obm_stats_t before = death_stats();
    make_blocks();
    fail_release = 1;
    free_blocks("the owner, releases failing");
    released(&before, "the owner's frees, releases failing");
}

#define PURGE_AT_ONCE "OBM_PURGE_DELAY_MS=0"

static const struct death_case cases[] = {
    {"remote_free", DEATH_EXIT, 1, {NULL}, remote_free, NULL},
    {"abandoned_heap", DEATH_EXIT, 1, {PURGE_AT_ONCE}, abandoned_heap, NULL},
    {"abandoned_heap_release_fails",
     DEATH_EXIT,
     1,
     {PURGE_AT_ONCE},
     abandoned_heap_release_fails,
     NULL},
    {"purge_and_release", DEATH_EXIT, 1, {PURGE_AT_ONCE}, purge_and_release, NULL},
    {"release_fails", DEATH_EXIT, 1, {PURGE_AT_ONCE}, release_fails, NULL},
};

DEATH_MAIN(cases)
