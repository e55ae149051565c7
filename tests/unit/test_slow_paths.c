/* The slow paths, counted per kind (obm_stats_t's slow_* / pools_*_total
 * fields): the main thread, whose heap is made by its first malloc here
 * (cmocka allocates with the process's malloc), runs a known sequence of mallocs and frees
 * through the API, and every count moves by exactly what the pool state
 * machine says. 64-byte blocks: 63 to a pool, carved 16 at a time. */
#include <pthread.h>

#include "unit.h"

#define PER_POOL 63

static obm_stats_t before, delta;

static void mark(void)
{
    before.size = sizeof before;
    assert_int_equal(obm_stats_get(&before), 0);
}

/* delta = now - before */
static void since_mark(void)
{
    obm_stats_t now = {.size = sizeof now};
    assert_int_equal(obm_stats_get(&now), 0);
    obm_stats_diff(&before, &now, &delta);
}

#define EXPECT_SLOW(field, n) assert_int_equal(delta.field, (size_t)(n))

static void *b[2 * PER_POOL];
static void *other_block;

static void *free_other_block(void *arg)
{
    (void)arg;
    obmi_free(other_block); /* a remote free: the pool is another thread's */
    return NULL;
}

static void test_slow_paths_counted_per_kind(void **state)
{
    (void)state;
    obm_option_set("OBM_PURGE_DELAY_MS", "-1"); /* no purge on a clock between reads */
    void *warm = obmi_malloc(16);               /* the thread's heap exists from here */
    assert_non_null(warm);

    /* One pool and one block more: a slow malloc per carve of 16 (four to
     * carve 63), then the full pool is left for a second one. */
    mark();
    for (int i = 0; i < PER_POOL + 1; i++) {
        b[i] = obmi_malloc(64);
        assert_non_null(b[i]);
    }
    since_mark();
    EXPECT_SLOW(slow_mallocs_total, 5);
    EXPECT_SLOW(carves_total, 5);
    EXPECT_SLOW(pools_used_to_full_total, 1);
    EXPECT_SLOW(pools_taken_total, 2);
    EXPECT_SLOW(pools_from_arenas_total, 2);
    EXPECT_SLOW(slow_frees_total, 0);
    EXPECT_SLOW(classes[3].mallocs, PER_POOL + 1);

    /* A free into the full pool puts it back on its list; the other 62
     * frees are fast until the last empties it, and with another pool of
     * the class in service it goes back (a heap this small caches none). */
    mark();
    for (int i = 0; i < PER_POOL; i++)
        obmi_free(b[i]);
    since_mark();
    EXPECT_SLOW(slow_frees_total, 2);
    EXPECT_SLOW(pools_full_to_used_total, 1);
    EXPECT_SLOW(pools_emptied_total, 1);
    EXPECT_SLOW(pools_returned_total, 1);
    EXPECT_SLOW(pools_to_arenas_total, 1);
    EXPECT_SLOW(slow_mallocs_total, 0);

    /* The class's last pool empties: retired in place by the fast path. */
    mark();
    obmi_free(b[PER_POOL]);
    since_mark();
    EXPECT_SLOW(slow_frees_total, 0);
    EXPECT_SLOW(pools_emptied_total, 0);
    EXPECT_SLOW(pools_returned_total, 0);

    /* Fill the retired pool again (4 carves): it stays its ring's head,
     * every block handed out, not yet known full. Another thread frees one
     * block of it, and the next malloc, slow as the head has no free block,
     * takes that remote list in instead of carving or taking a pool. */
    for (int i = 0; i < PER_POOL; i++)
        assert_non_null(b[i] = obmi_malloc(64));
    mark();
    other_block = b[10];
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, free_other_block, NULL), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_non_null(b[PER_POOL] = obmi_malloc(64)); /* slow: the head has no free block */
    assert_ptr_equal(b[PER_POOL], other_block);     /* the remote free, reused */
    since_mark();
    EXPECT_SLOW(slow_mallocs_total, 1);
    EXPECT_SLOW(remote_collects_total, 1);
    EXPECT_SLOW(pools_used_to_full_total, 0);
    EXPECT_SLOW(pools_full_to_used_total, 0);
    EXPECT_SLOW(carves_total, 0);
    EXPECT_SLOW(pools_taken_total, 0);
    EXPECT_SLOW(classes[3].remote_frees, 1);

    for (int i = 0; i <= PER_POOL; i++)
        if (i != 10)
            obmi_free(b[i]);
    obmi_free(warm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_paths_counted_per_kind),
    };
    return RUN_TAP_TESTS(tests);
}
