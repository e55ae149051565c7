/* Helpers for the unit tests, which reach obm's internals directly: a
 * private heap on a private arena manager per test, and walkers that check
 * every invariant after each step. */
#ifndef OBM_UNIT_H
#define OBM_UNIT_H

#include "testutil.h"
#include "internal.h"

typedef struct unit_heap {
    obmi_arenas arenas;
    obmi_heap heap;
} unit_heap;

static inline void unit_heap_init(unit_heap *u)
{
    obmi_arenas_init(&u->arenas);
    obmi_heap_init(&u->heap, &u->arenas);
}

/* The same with the cache a thread's heap has (thread.c). */
static inline void unit_heap_init_cached(unit_heap *u)
{
    unit_heap_init(u);
    u->heap.cache_max = OBMI_HEAP_CACHE;
}

/* Blocks are announced to the memory checkers and withdrawn as api.c
 * does, so tests may use their bytes under memcheck and ASan. */
static inline void *unit_malloc(unit_heap *u, size_t n)
{
    unsigned c = n == 0 ? 0 : obmi_size_class(n);
    void *p = obmi_heap_malloc_small(&u->heap, c);
    if (p != NULL)
        obmi_track_malloc(p, obmi_class_size(c));
    return p;
}

static inline void unit_free(unit_heap *u, void *p)
{
    obmi_pool *pool = obmi_pool_of(p);
    assert_true(obmi_pool_is_block_start(pool, p));
    assert_ptr_equal(obmi_pool_heap(pool), &u->heap);
    obmi_track_free(p, obmi_class_size(pool->szidx));
    obmi_heap_free_small(&u->heap, pool, p);
}

/* For a test that writes pool bytes obm has not handed out (a whole
 * pool's body): the checkers are told they may be used. */
static inline void unit_open(void *p, size_t n)
{
#if defined(OBMI_TRACK_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#elif defined(OBMI_TRACK_VALGRIND)
    (void)VALGRIND_MAKE_MEM_UNDEFINED(p, n);
#else
    (void)p;
    (void)n;
#endif
}

/* For a test that reads what obm left in a block it just handed out,
 * which memcheck counts as undefined. */
static inline void unit_inspect(const void *p, size_t n)
{
#if defined(OBMI_TRACK_VALGRIND)
    (void)VALGRIND_MAKE_MEM_DEFINED(p, n);
#else
    (void)p;
    (void)n;
#endif
}

/* Eight 512-byte blocks (seven to a pool): b[0..6] fill the first pool,
 * which goes FULL, and b[7] takes a second. Returns the first pool. */
static inline obmi_pool *unit_fill_one_pool(unit_heap *u, void *b[8])
{
    for (int i = 0; i < 8; i++)
        b[i] = unit_malloc(u, 512);
    return obmi_pool_of(b[0]);
}

static inline void unit_check(const unit_heap *u)
{
    assert_true(obmi_heap_check(&u->heap));
    assert_true(obmi_arenas_check(&u->arenas));
}

#endif /* OBM_UNIT_H */
