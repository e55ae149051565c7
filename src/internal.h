/* obm internals: cross-file declarations and the inline fast path.
 * types.h explains the data structures; read it first. */
#ifndef OBM_INTERNAL_H
#define OBM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#ifdef HAVE_CONFIG_H
#include "config.h" /* first: track.h reads OBM_VALGRIND */
#endif

#include "track.h"
#include "types.h"

#define OBMI_EXPORT        __attribute__((visibility("default")))
#define OBMI_HIDDEN        __attribute__((visibility("hidden"))) /* one RIP-relative load */
#define OBMI_LIKELY(x)     __builtin_expect(!!(x), 1)
#define OBMI_UNLIKELY(x)   __builtin_expect(!!(x), 0)
#define OBMI_NOINLINE      __attribute__((noinline))
#define OBMI_ALWAYS_INLINE inline __attribute__((always_inline))
#define OBMI_COLD          __attribute__((cold, noinline))
#define OBMI_NORETURN      __attribute__((noreturn))

/* Configure results as constants, so every configuration compiles every
 * line (jemalloc's habit); OBM_DEBUG comes from --enable-debug. */
#ifdef OBM_DEBUG
static const bool obmi_debug = true;
#else
static const bool obmi_debug = false;
#endif

/* ---- os.c: mapped memory, the clock, messages ---- */

void *obmi_os_map_aligned(size_t size, size_t alignment); /* NULL + errno on failure */
void *obmi_os_map(size_t size);
void obmi_os_unmap(void *addr, size_t size);       /* preserves errno */
void obmi_os_program_name(char *out, size_t size); /* /proc/self/comm, or "" */
void obmi_os_write(int fd, const char *buf, size_t len);
size_t obmi_os_page_size(void);
int obmi_os_purge(void *addr, size_t size, int advice); /* 0, or -1: still resident */
uint64_t obmi_os_clock_ms(void);                        /* monotonic milliseconds */

/* Diagnostics without stdio: one line, one write(2). */
typedef struct obmi_msg {
    char buf[256];
    size_t len;
} obmi_msg;
void obmi_msg_str(obmi_msg *m, const char *s);
void obmi_msg_hex(obmi_msg *m, uintptr_t v);
void obmi_msg_dec(obmi_msg *m, uintmax_t v);
void obmi_msg_emit(obmi_msg *m); /* appends '\n', writes to stderr */
OBMI_COLD OBMI_NORETURN void obmi_fatal(const char *what);
OBMI_COLD OBMI_NORETURN void obmi_assert_fail(const char *expr, const char *file, int line);

#define OBMI_ASSERT(x)                                                                             \
    do {                                                                                           \
        if (obmi_debug && !(x))                                                                    \
            obmi_assert_fail(#x, __FILE__, __LINE__);                                              \
    } while (0)

/* ---- size classes ---- */

typedef struct obmi_class_info {
    uint64_t divc;       /* ceil(2^64 / size): rel * divc mod 2^64 < divc iff size divides rel */
    uint32_t pool_bytes; /* its pools' size: a page, or 4..64 pages for a medium class */
    uint16_t size;       /* block size in bytes */
    uint16_t nblocks;    /* blocks per pool */
} obmi_class_info;

extern const obmi_class_info obmi_classes[OBMI_NCLASSES];

/* Class of a request of 1..512 bytes. */
static inline unsigned obmi_size_class(size_t n)
{
    return (unsigned)((n - 1) >> OBMI_ALIGNMENT_SHIFT);
}

/* Class of a request of 513..32768 bytes: four classes per doubling, the
 * k-th doubling's from 2^k + 2^(k-2) to 2^(k+1). */
static inline unsigned obmi_medium_class(size_t n)
{
    unsigned k = 63 - (unsigned)__builtin_clzll(n - 1); /* 2^k <= n - 1 < 2^(k+1) */
    return OBMI_NSMALL + (k - 9) * 4 + (unsigned)(((n - 1) >> (k - 2)) & 3);
}

/* Class of a request of 1..32768 bytes (0: class 0). */
static inline unsigned obmi_class_of(size_t n)
{
    if (n <= OBMI_SMALL_MAX)
        return n == 0 ? 0 : obmi_size_class(n);
    return obmi_medium_class(n);
}

static inline size_t obmi_class_size(unsigned c)
{
    if (OBMI_LIKELY(c < OBMI_NSMALL))
        return (size_t)(c + 1) << OBMI_ALIGNMENT_SHIFT;
    return obmi_classes[c].size;
}

/* The pages of a pool of class c: 1 for a small class, 4..64 a medium. */
static inline unsigned obmi_class_pages(unsigned c)
{
    return obmi_classes[c].pool_bytes >> OBMI_POOL_SHIFT;
}

/* A class read without a lock from a header that may be stale: one that
 * indexes the table. */
static inline unsigned obmi_class_bounded(unsigned c)
{
    return c < OBMI_NCLASSES ? c : 0;
}

/* ---- arena_map.c ---- */

extern _Atomic(obmi_arena **) obmi_arena_map_root[1u << OBMI_MAP_ROOT_BITS];

/* The arena holding p, or NULL when p is not in any obm arena: two loads. */
static inline obmi_arena *obmi_arena_map_lookup(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    if (OBMI_UNLIKELY(a >> OBMI_ADDRESS_BITS))
        return NULL;
    obmi_arena **leaf = atomic_load_explicit(
        &obmi_arena_map_root[a >> (OBMI_ARENA_SHIFT + OBMI_MAP_LEAF_BITS)], memory_order_acquire);
    if (leaf == NULL)
        return NULL;
    uintptr_t i = (a >> OBMI_ARENA_SHIFT) & ((1u << OBMI_MAP_LEAF_BITS) - 1);
    return __atomic_load_n(&leaf[i], __ATOMIC_RELAXED);
}

/* The arena object of a pool (pool headers do not keep it). */
static inline obmi_arena *obmi_pool_arena(const void *pool)
{
    return obmi_arena_map_lookup(pool);
}

/* The index in arena ao of the page p lies in. */
static inline unsigned obmi_arena_page(const obmi_arena *ao, const void *p)
{
    return (unsigned)(((uintptr_t)p - ao->base) >> OBMI_POOL_SHIFT);
}

/* The pool whose pages hold p, p in arena ao: p's page, or for a page of
 * a medium pool past its first, the page the pool starts at. */
static inline obmi_pool *obmi_pool_containing(const obmi_arena *ao, const void *p)
{
    unsigned page = obmi_arena_page(ao, p);
    unsigned start = atomic_load_explicit(&ao->pool_start[page], memory_order_relaxed);
    return (obmi_pool *)(ao->base + ((uintptr_t)start << OBMI_POOL_SHIFT));
}

int obmi_arena_map_set(uintptr_t base, obmi_arena *arena); /* -1 + ENOMEM on failure */
void obmi_arena_map_clear(uintptr_t base);

/* ---- pool.c ---- */

static inline obmi_pool *obmi_pool_of(const void *p)
{
    return (obmi_pool *)((uintptr_t)p & ~(uintptr_t)(OBMI_POOL_SIZE - 1));
}

/* The heap that owns a pool in service, NULL otherwise. Kept XORed with the
 * pool's own address: free compares the header of any pointer's page with
 * the caller's heap before it knows the page is a pool (api.c), and a page
 * that is not a pool holds that value only if the program computed it,
 * where a plain heap address could be one obm spilled onto a stack. */
static inline obmi_heap *obmi_pool_heap(const obmi_pool *pool)
{
    return (obmi_heap *)(pool->heap_tag ^ (uintptr_t)pool);
}

static inline void obmi_pool_set_heap(obmi_pool *pool, const obmi_heap *heap)
{
    pool->heap_tag = (uintptr_t)heap ^ (uintptr_t)pool;
}

/* state and carved are read by threads that free into a pool they do
 * not own (the block-start check): relaxed atomics, plain moves on x86. */
static inline unsigned obmi_pool_state(const obmi_pool *pool)
{
    return __atomic_load_n(&pool->state, __ATOMIC_RELAXED);
}

static inline void obmi_pool_set_state(obmi_pool *pool, unsigned state)
{
    __atomic_store_n(&pool->state, (uint8_t)state, __ATOMIC_RELAXED);
}

/* Blocks start at offsets [HEADER, nextoffset): the carved ones. */
static inline uint32_t obmi_pool_nextoffset(const obmi_pool *pool)
{
    return OBMI_POOL_HEADER + pool->carved;
}

static inline void obmi_pool_set_carved(obmi_pool *pool, uint32_t bytes)
{
    __atomic_store_n(&pool->carved, bytes, __ATOMIC_RELAXED);
}

/* The largest offset a block of class c may start at. */
static inline uint32_t obmi_pool_max_offset(unsigned c)
{
    return OBMI_POOL_HEADER + (obmi_classes[c].nblocks - 1) * obmi_classes[c].size;
}

/* True when p is the start of a block that was carved in a pool in service
 * (USED or FULL), ci being the pool's class (the statistics walk passes the
 * one it read once, without a lock). Does not tell a free block from a
 * live one. p may lie anywhere: outside the pool, rel is past carved. */
static inline bool obmi_pool_is_block_start_of(const obmi_pool *pool, const void *p,
                                               const obmi_class_info *ci)
{
    uintptr_t rel = (uintptr_t)p - (uintptr_t)pool - OBMI_POOL_HEADER;
    /* carved is 0 in an UNUSED (all-zero) or EMPTY pool: nothing is
     * allocated there, so one test covers the state as well. */
    if (OBMI_UNLIKELY(rel >= __atomic_load_n(&pool->carved, __ATOMIC_RELAXED)))
        return false; /* in the header (rel wrapped) or past the carved blocks */
    /* Lemire's divisibility test, exact for a 32-bit rel */
    return (uint64_t)(uint32_t)rel * ci->divc < ci->divc;
}

/* The same with the divisor constant the pool's header keeps, for p in any
 * page of the pool (a free that found the pool through the arena). */
static inline bool obmi_pool_is_block_start_in(const obmi_pool *pool, const void *p)
{
    uintptr_t rel = (uintptr_t)p - (uintptr_t)pool - OBMI_POOL_HEADER;
    if (OBMI_UNLIKELY(rel >= __atomic_load_n(&pool->carved, __ATOMIC_RELAXED)))
        return false;
    uint64_t divc = __atomic_load_n(&pool->divc, __ATOMIC_RELAXED);
    return (uint64_t)(uint32_t)rel * divc < divc;
}

/* The same, for p in pool's page and the pool's own class, with the
 * divisor constant its header keeps (a copy of its class's, so the check
 * reads one cache line). An address in the header wraps to the page's
 * last 64 bytes, past every carved block. */
static inline bool obmi_pool_is_block_start(const obmi_pool *pool, const void *p)
{
    OBMI_ASSERT(obmi_pool_of(p) == pool);
    uint32_t rel = (uint32_t)((uintptr_t)p - OBMI_POOL_HEADER) & (OBMI_POOL_SIZE - 1);
    if (OBMI_UNLIKELY(rel >= __atomic_load_n(&pool->carved, __ATOMIC_RELAXED)))
        return false;
    uint64_t divc = __atomic_load_n(&pool->divc, __ATOMIC_RELAXED);
    return (uint64_t)rel * divc < divc;
}

/* ---- hardening.c: encoded links, the freed key, error reports ---- */

/* Per-process random words, set before the first arena is mapped. */
extern OBMI_HIDDEN uintptr_t obmi_link_secret; /* free-list links are stored XORed with it */
extern OBMI_HIDDEN uintptr_t obmi_free_key;    /* a free block's second word; never 0 */
void obmi_secret_init(void);                   /* once; before any block exists */

static inline obmi_block *obmi_block_next(const obmi_block *b)
{
    return (obmi_block *)(obmi_word_peek(&b->link) ^ obmi_link_secret);
}

/* The same, for walks of a list another thread may be changing (in
 * OBMI_RACY functions: a bounded walk that checks every link). A macro:
 * an inline function would be compiled with the sanitizers' checks,
 * which the caller's attribute turns off only in its own body. */
#define obmi_block_next_racy(b)                                                                    \
    ((const obmi_block *)(obmi_word_racy(&(b)->link) ^ obmi_link_secret))

static inline void obmi_block_set_next(obmi_block *b, const obmi_block *next)
{
    obmi_word_poke(&b->link, (uintptr_t)next ^ obmi_link_secret);
}

/* b is a block obm holds free: link it and mark it free. Both secrets are
 * read before the stores, which the compiler cannot tell from them. */
static inline void obmi_block_set_free(obmi_block *b, const obmi_block *next)
{
    uintptr_t link = (uintptr_t)next ^ obmi_link_secret, key = obmi_free_key;
    obmi_word_poke(&b->link, link);
    obmi_word_poke(&b->key, key);
}

/* The block carries the freed key: it is free, or the program stored that
 * value there (the double-free check then looks for it in its pool). */
static inline bool obmi_block_keyed(const void *p)
{
    return obmi_word_peek(&((const obmi_block *)p)->key) == obmi_free_key;
}

/* The fast path's test of a free-list head before it is used: inside the
 * pool of pool_bytes, past the header, 16-byte aligned. NULL fails too; the
 * slow path tells an empty list from a corrupted one, and checks the block
 * boundary in full (obmi_link_valid). One subtract, one rotate, one
 * compare. */
static inline bool obmi_link_usable(const obmi_pool *pool, const obmi_block *b, uint32_t pool_bytes)
{
    uintptr_t rel = ((uintptr_t)b - OBMI_POOL_HEADER) - (uintptr_t)pool;
    uintptr_t granule = (rel >> 4) | (rel << 60); /* misaligned: a huge value */
    return granule < (pool_bytes - OBMI_POOL_HEADER) / 16;
}

/* A decoded link is the end of the list or a carved block of the pool. */
static inline bool obmi_link_valid(const obmi_pool *pool, const obmi_block *next)
{
    return next == NULL || obmi_pool_is_block_start_in(pool, next);
}

/* What a check found; counted in the statistics. */
typedef enum obmi_error {
    OBMI_ERROR_INVALID_POINTER,
    OBMI_ERROR_DOUBLE_FREE, /* also realloc or malloc_usable_size of a free block */
    OBMI_ERROR_CORRUPTED_LIST,
    OBMI_ERROR_WRITE_AFTER_FREE, /* secure.c: OBM_JUNK */
    OBMI_ERROR_OVERFLOW,         /* secure.c: OBM_CANARY */
    OBMI_ERROR_COUNT
} obmi_error;

size_t obmi_error_count(obmi_error e);

/* Report one line and abort, or, with OBM_ON_ERROR=report, count it and
 * return: the caller then leaves the block alone (it leaks). */
OBMI_COLD void obmi_report_invalid(const char *func, const void *p);
OBMI_COLD void obmi_report_block(obmi_error e, const char *func, const void *p,
                                 const obmi_pool *pool); /* "(ptr=..., class ..., pool ...)" */
#define obmi_report_freed(func, p, pool) obmi_report_block(OBMI_ERROR_DOUBLE_FREE, func, p, pool)
OBMI_COLD void obmi_report_corrupted(const char *func, const obmi_pool *pool);

void obmi_pool_init(obmi_pool *pool, unsigned c, obmi_heap *heap);
void obmi_pool_set_empty(obmi_pool *pool);
void obmi_pool_cache_run(obmi_pool *pool);       /* a medium pool: set_empty, run kept whole */
unsigned obmi_pool_clear_pages(obmi_pool *pool); /* a medium run: set_empty, and its pages */
obmi_block *obmi_pool_carve(obmi_pool *pool);
void obmi_pool_drop_free_list(obmi_pool *pool); /* after a corrupted link: leak it */
bool obmi_pool_check(const obmi_pool *pool);    /* invariant walker */

/* ---- arena.c ---- */

/* The purge delay when OBM_PURGE_DELAY_MS is not set, ms: see
 * docs/memory.md for the measurements behind it. */
#define OBMI_PURGE_DELAY_DEFAULT 100

#define OBMI_ARENAS_DEFAULTS                                                                       \
    {                                                                                              \
        .lock = PTHREAD_MUTEX_INITIALIZER, .purge_delay_ms = OBMI_PURGE_DELAY_DEFAULT,             \
        .arena_keep = 1, .purge_advice = OBMI_PURGE_DONTNEED, .due_ms = UINT64_MAX                 \
    }

void obmi_arenas_init(obmi_arenas *arenas);            /* OBMI_ARENAS_DEFAULTS */
obmi_pool *obmi_arenas_take_pool(obmi_arenas *arenas); /* a page; NULL + ENOMEM */
void obmi_arenas_return_pool(obmi_arenas *arenas, obmi_pool *pool);
/* A medium pool: npages (a power of two) aligned to their size; NULL + ENOMEM. */
obmi_pool *obmi_arenas_take_run(obmi_arenas *arenas, unsigned npages);
void obmi_arenas_return_run(obmi_arenas *arenas, obmi_pool *pool); /* a medium pool in service */
size_t obmi_arenas_release_empty(obmi_arenas *arenas); /* unmaps every spare: how many */
void obmi_arenas_decay_spares(obmi_arenas *arenas);    /* at a tick: old spares beyond keep */
void obmi_arenas_configure(obmi_arenas *arenas, long purge_delay_ms, unsigned advice,
                           uint32_t keep); /* the policy; spares beyond keep go */
bool obmi_arena_check(const obmi_arena *arena);
bool obmi_arenas_check(const obmi_arenas *arenas);
size_t obmi_arenas_count_usable(const obmi_arenas *arenas);

/* ---- purge.c: under the manager lock ---- */

void obmi_purge_list_add(obmi_arenas *arenas, obmi_arena *ao); /* ao got a dirty pool */
void obmi_purge_list_remove(obmi_arenas *arenas, obmi_arena *ao);
void obmi_arenas_decay(obmi_arenas *arenas);     /* end of a locked slow path: purge what is due */
void obmi_arenas_decay_due(obmi_arenas *arenas); /* a slow path without the lock: the same */
void obmi_arenas_want_tick(obmi_arenas *arenas); /* under the lock: a heap waits for a tick */
size_t obmi_arenas_purge_all(obmi_arenas *arenas); /* every dirty pool: how many */
bool obmi_arenas_trim(obmi_arenas *arenas);        /* every spare and dirty pool: any? */

/* ---- secure.c: the checks behind options (configure --enable-secure) ---- */

#ifdef OBM_SECURE
static const bool obmi_secure = true;
#else
static const bool obmi_secure = false;
#endif

enum {
    OBMI_SECURE_JUNK = 1,   /* OBM_JUNK: free blocks filled, checked when handed out again */
    OBMI_SECURE_CANARY = 2, /* OBM_CANARY: a canary in each block's last 8 bytes */
    OBMI_SECURE_RANDOM = 4, /* OBM_RANDOMIZE: blocks carved in random order */
};
#define OBMI_CANARY_BYTES 8

extern OBMI_HIDDEN unsigned obmi_secure_flags; /* OBMI_SECURE_*, fixed before the first block */
void obmi_secure_init(void);                   /* from obmi_secret_init */

/* Bytes a small request needs beyond its size (the canary). The options
 * are read here at the latest, before the first request is sized. */
static inline size_t obmi_secure_extra(void)
{
    if (!obmi_secure)
        return 0;
    obmi_secret_init();
    return obmi_secure_flags & OBMI_SECURE_CANARY ? OBMI_CANARY_BYTES : 0;
}

bool obmi_secure_malloc(obmi_pool *pool, void *p); /* false: reported, leave p alone */
bool obmi_secure_free(obmi_pool *pool, void *p, const char *func);   /* likewise */
void obmi_secure_carve(obmi_pool *pool, uint32_t off, uint32_t end); /* links [off, end) */

/* ---- heap.c ---- */

extern obmi_pool obmi_pool_empty; /* the ring head of a class with no pool */

/* Empty pools a thread heap keeps for reuse before giving them back. */
#define OBMI_HEAP_CACHE 8
/* And pages of empty medium pools (1 MiB). */
#define OBMI_HEAP_RUN_CACHE_PAGES 256

void obmi_heap_init(obmi_heap *heap, obmi_arenas *arenas); /* no cache */
OBMI_NOINLINE void *obmi_heap_malloc_slow(obmi_heap *heap, unsigned c);
OBMI_NOINLINE void obmi_heap_free_slow(obmi_heap *heap, obmi_pool *pool);
OBMI_NOINLINE void obmi_pool_free_remote(obmi_pool *pool, void *p);
void obmi_heap_collect(obmi_heap *heap);         /* take in everything queued */
void obmi_heap_release_retired(obmi_heap *heap); /* give back retired empty pools */
void obmi_heap_flush_cache(obmi_heap *heap);
bool obmi_heap_trim(obmi_heap *heap);          /* cache and spare arena back: true if any */
void obmi_heap_abandon_pools(obmi_heap *heap); /* before the owner leaves */
bool obmi_heap_check(const obmi_heap *heap);

/* The fast paths. Budget, counted with callgrind (bench/callgrind-pairs.sh)
 * on a 64-byte malloc/free pair through the drop-in, gcc 12 -O2: 68
 * instructions with 10,000 blocks live, 73 alone; 10 of them are the
 * benchmark's own loop and its two PLT jumps. The account (x86-64):
 *
 *   malloc (obmi_malloc, the drop-in's malloc itself)                  23
 *     size test and class: lea, cmp, ja, shr                            4
 *     heap from TLS (GOT offset, %fs load)                               2
 *     ring head and its list head: lea, mov, mov                         3
 *     head check (obmi_link_usable): mov, sub, sub, ror, cmp, ja         6
 *     pop, decoding the link: mov, xor secret, mov                       3
 *     key cleared, ref_count, mallocs[c], result, ret                    5
 *   free (obmi_free, the drop-in's free itself)                          35
 *     page of p, NULL test: mov, and, cmp, jbe                           4
 *     ownership (heap tag ^ page == TLS heap): mov, mov, xor, cmp, jne   5
 *     block start (header's carved, divc): lea, movzwl, and, cmp, jae,
 *       mov, imul, cmp, jae                                              9
 *     freed key test: mov, cmp, je                                       3
 *     push, encoding the link and storing the key: 8 moves and ALU ops   8
 *     frees[c], ref_count with its empty test, was-full test, ret        6
 *   An empty pool that is its class's only one (the lone pair) adds the
 *   retire test inline: cmp usedpools[c], cmp nextpool, 5 more in all.
 *
 * Fast path: pop the free list of the class's first pool. The head is
 * checked before it is used (obmi_link_usable), which also sends an empty
 * list to the slow path. */
static OBMI_ALWAYS_INLINE void *obmi_heap_malloc_in(obmi_heap *heap, unsigned c,
                                                    uint32_t pool_bytes)
{
    obmi_pool *pool = heap->usedpools[c];
    obmi_block *b = pool->freeblock;
    if (OBMI_UNLIKELY(!obmi_link_usable(pool, b, pool_bytes)))
        return obmi_heap_malloc_slow(heap, c);
    pool->freeblock = obmi_block_next(b);
    obmi_word_poke(&b->key, 0);
    pool->ref_count++;
    heap->counts.mallocs[c]++;
    return b;
}

static inline void *obmi_heap_malloc_small(obmi_heap *heap, unsigned c)
{
    return obmi_heap_malloc_in(heap, c, OBMI_POOL_SIZE);
}

/* A medium class: the same, its pool's size from the class table. */
static inline void *obmi_heap_malloc_medium(obmi_heap *heap, unsigned c)
{
    return obmi_heap_malloc_in(heap, c, obmi_classes[c].pool_bytes);
}

static inline void *obmi_heap_malloc_class(obmi_heap *heap, unsigned c)
{
    return c < OBMI_NSMALL ? obmi_heap_malloc_small(heap, c) : obmi_heap_malloc_medium(heap, c);
}

/* pool, of class c, is the only pool on its ring: when empty it is retired
 * in place. */
static inline bool obmi_heap_sole_pool(const obmi_heap *heap, const obmi_pool *pool, size_t c)
{
    return heap->usedpools[c] == pool && pool->nextpool == NULL;
}

/* Fast path, the owner's free: push p on its pool's free list. The slow
 * path runs when the pool was FULL or has become empty; a ring head whose
 * last block went out is still USED (the next malloc retires it), and a
 * free into it stays here. */
static inline void obmi_heap_free_small(obmi_heap *heap, obmi_pool *pool, void *p)
{
    size_t c = pool->szidx; /* read once: the stores below may alias it */
    obmi_block *b = (obmi_block *)p;
    obmi_block *head = pool->freeblock;
    obmi_block_set_free(b, head);
    pool->freeblock = b;
    heap->counts.frees[c]++;
    /* The owner's own read of its pool's state: a plain load (others read
     * it with relaxed atomics, only the owner writes it). */
    bool was_full = pool->state == OBMI_POOL_FULL;
    if (OBMI_UNLIKELY(--pool->ref_count == 0 || was_full)) {
        /* The common empty case, the retired pool (see heap.c), stays put
         * without a call: a malloc/free loop on one block lands here. (A
         * FULL pool never empties in one free: it has 7 blocks or more.) */
        if (!was_full && obmi_heap_sole_pool(heap, pool, c))
            return;
        obmi_heap_free_slow(heap, pool);
    }
}

/* Is p, a block start of pool, free (on the free or the remote list)? For
 * a block carrying the freed key: a bounded walk of its pool's lists. */
bool obmi_pool_holds_free(obmi_heap *heap, obmi_pool *pool, const void *p);

/* ---- thread.c: a heap per thread, the manager lock, fork ---- */

/* The calling thread's heap; &obmi_heap_empty until its first malloc. */
extern __thread obmi_heap *obmi_tls_heap __attribute__((tls_model("initial-exec")));
extern obmi_heap obmi_heap_empty;
extern obmi_arenas obmi_main_arenas;

/* The slow path of a thread that has no heap yet: give it one, then
 * malloc from it. */
void *obmi_thread_malloc_first(unsigned c);
/* A remote free queued a pool on an abandoned heap: collect it. */
void obmi_thread_collect_abandoned(obmi_heap *heap);
void obmi_arenas_lock(obmi_arenas *arenas);
void obmi_arenas_unlock(obmi_arenas *arenas);
void obmi_thread_init(void); /* the TLS key and fork handlers */

/* Every heap's counts summed, with how many heaps are in each state. */
typedef struct obmi_heaps_sum {
    struct obmi_heap_counts counts;
    size_t live, abandoned, created;
} obmi_heaps_sum;
void obmi_heaps_sum_locked(obmi_heaps_sum *out); /* under the manager lock */

void obmi_init(void);                /* idempotent: options, thread set-up, backing */
void obmi_purge_options_apply(void); /* under the manager lock: the purge options to the arenas */

/* ---- backing allocator: backing_libc.c (drop-in) or backing_malloc.c ---- */

void *obmi_backing_malloc(size_t size);
void *obmi_backing_calloc(size_t count, size_t size);
void *obmi_backing_realloc(void *p, size_t size);
void obmi_backing_free(void *p);
void *obmi_backing_memalign(size_t alignment, size_t size); /* power-of-two alignment */
size_t obmi_backing_usable_size(void *p);
size_t obmi_backing_bytes_in_use(void); /* its own count: glibc's mallinfo2 */
void obmi_backing_init(void);
void obmi_backing_fork_prepare(void); /* locks the backing side needs held over fork */
void obmi_backing_fork_parent(void);
void obmi_backing_fork_child(void);
void *obmi_libc_symbol(const char *name); /* backing_libc.c only: glibc's own definition */

/* ---- large.c: the backing allocator's blocks, counted ---- */

enum { OBMI_LARGE_ALLOC = 0, OBMI_LARGE_FREE = 1 }; /* obmi_heap_counts.large[] */

void *obmi_large_malloc(size_t size);
void *obmi_large_calloc(size_t nmemb, size_t size);
void *obmi_large_memalign(size_t alignment, size_t size);
void *obmi_large_realloc(void *p, size_t size);
void obmi_large_free(void *p); /* preserves errno */
void obmi_large_sum_unowned(struct obmi_heap_counts *sum);

/* ---- stats.c: the walk, the struct, the field tables ---- */

/* How obm_stats_diff treats a field; the field table of docs/statistics.md says it. */
typedef enum obmi_field_kind {
    OBMI_FIELD_COUNT, /* events, ever: after - before */
    OBMI_FIELD_LEVEL, /* a level now: after - before, may wrap (read as signed) */
    OBMI_FIELD_FIXED, /* after's value */
} obmi_field_kind;

typedef struct obmi_stats_field {
    const char *name; /* the struct member, and the JSON key */
    size_t offset;
    obmi_field_kind kind;
    const char *doc; /* one line for docs/statistics.md */
} obmi_stats_field;

extern const obmi_stats_field obmi_stats_fields[]; /* obm_stats_t, but classes */
extern const size_t obmi_stats_nfields;
extern const obmi_stats_field obmi_class_fields[]; /* obm_class_stats_t */
extern const size_t obmi_class_nfields;

/* Every region, oldest arena first, in an array from obmi_os_map of
 * *mapped bytes (the caller unmaps it), and the statistics of that same
 * walk in *stats: 0 or ENOMEM. */
int obmi_snapshot_take(obm_region_t **regions, size_t *n, size_t *mapped, obm_stats_t *stats);

/* ---- stats_print.c: reports through a writer, without malloc ---- */

typedef struct obmi_out {
    obm_write_fn write; /* NULL: stderr */
    void *opaque;
    size_t len;
    char buf[4096];
} obmi_out;

void obmi_out_str(obmi_out *o, const char *s);
void obmi_out_dec(obmi_out *o, uintmax_t v);
void obmi_out_num(obmi_out *o, uintmax_t v, int width, bool grouped); /* right-aligned, 1,234 */
void obmi_out_flush(obmi_out *o);

/* ---- stats_map.c ---- */

int obmi_map_print(obmi_out *o); /* the SVG fragmentation map: 0 or ENOMEM */

/* ---- report.c ---- */

void obmi_report_init(void);    /* at start: where each report goes */
void obmi_report_at_exit(void); /* OBM_SHOW_STATS, OBM_MAP */

/* ---- options.c ---- */

typedef enum obmi_option_id {
    OBMI_OPTION_VERBOSE,
    OBMI_OPTION_SHOW_STATS, /* 0 none, 1 text, 2 JSON */
    OBMI_OPTION_STATS_FILE,
    OBMI_OPTION_MAP,
    OBMI_OPTION_PURGE_DELAY_MS, /* -1 never, 0 at once */
    OBMI_OPTION_PURGE_ADVICE,   /* enum obmi_purge_advice */
    OBMI_OPTION_ARENA_KEEP,
    OBMI_OPTION_ON_ERROR, /* enum obmi_on_error */
    OBMI_OPTION_JUNK,     /* secure.c reads these three itself, before the first block */
    OBMI_OPTION_CANARY,
    OBMI_OPTION_RANDOMIZE,
    OBMI_OPTION_COUNT
} obmi_option_id;

enum obmi_on_error { OBMI_ON_ERROR_ABORT = 0, OBMI_ON_ERROR_REPORT = 1 };

typedef enum obmi_option_kind {
    OBMI_OPTION_INT,  /* a number in [min, max] */
    OBMI_OPTION_WORD, /* one of words; the value is its index */
    OBMI_OPTION_PATH, /* a file name */
} obmi_option_kind;

typedef struct obmi_option_info {
    const char *name; /* the environment variable */
    obmi_option_kind kind;
    long def, min, max;
    const char *const *words; /* OBMI_OPTION_WORD: NULL-terminated */
    const char *doc;          /* one line for the README */
} obmi_option_info;

long obmi_option(obmi_option_id id);
const char *obmi_option_path(obmi_option_id id); /* NULL when unset */
void obmi_options_init(void);                    /* reads OBM_* from the environment */
size_t obmi_options_count(void);
const obmi_option_info *obmi_options_describe(size_t i);
bool obmi_option_parse(const char *name, const char *value, obmi_option_id *id, long *v);
void obmi_option_store(obmi_option_id id, long v); /* under the manager lock */
void obmi_options_print(void);                     /* OBM_VERBOSE: each option, value, source */
void obmi_option_print(obmi_option_id id);         /* one of them */

/* ---- api.c: the public functions (override.h names them for the drop-in) ---- */

void *obmi_malloc(size_t size);
void *obmi_calloc(size_t count, size_t size);
void *obmi_realloc(void *p, size_t size);
void *obmi_reallocarray(void *p, size_t count, size_t size);
void obmi_free(void *p);
int obmi_posix_memalign(void **memptr, size_t alignment, size_t size);
void *obmi_aligned_alloc(size_t alignment, size_t size);
void *obmi_memalign(size_t alignment, size_t size);
void *obmi_valloc(size_t size);
void *obmi_pvalloc(size_t size);
size_t obmi_usable_size(const void *p);
void obmi_free_sized(void *p, size_t size);
void obmi_free_aligned_sized(void *p, size_t alignment, size_t size);

#endif /* OBM_INTERNAL_H */
