/* The public obm_* functions: argument checks, errno, overflow, and routing
 * between obm's pools (1..512 bytes, alignment <= 16) and the backing
 * allocator (everything else). Semantics follow glibc; docs/semantics.md lists them.
 *
 * Each function is defined once under its internal name (obmi_*) and
 * exported as obm_* by alias; in the drop-in (OBM_DROPIN) also as malloc,
 * free, ... (override.h).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"

#define EXPORT_AS(internal, public)                                                                \
    __typeof__(internal) public __attribute__((alias(#internal), visibility("default")))

/* ---- small blocks ----
 *
 * The calling thread's heap serves its mallocs; a free goes to the block's
 * own pool: plainly when the caller owns the pool, by one CAS onto the
 * pool's remote list when it does not (heap.c). */

static void *obmi_malloc_secure_retry(unsigned c);

/* The pool of a block of class c just handed out. */
static obmi_pool *block_pool(const void *p, unsigned c)
{
    if (c < OBMI_NSMALL)
        return obmi_pool_of(p);
    return obmi_pool_containing(obmi_arena_map_lookup(p), p);
}

/* p, a block of class c from the heap (or NULL): announced to the
 * checkers, and checked by the secure options. */
static inline void *class_served(void *p, unsigned c)
{
    if (p == NULL)
        return NULL;
    obmi_track_malloc(p, obmi_class_size(c));
    if (obmi_secure && (obmi_secure_flags & (OBMI_SECURE_JUNK | OBMI_SECURE_CANARY)) &&
        !obmi_secure_malloc(block_pool(p, c), p))
        return obmi_malloc_secure_retry(c);
    return p;
}

static inline void *small_malloc(unsigned c)
{
    return class_served(obmi_heap_malloc_small(obmi_tls_heap, c), c);
}

static inline void *medium_malloc(unsigned c)
{
    return class_served(obmi_heap_malloc_medium(obmi_tls_heap, c), c);
}

/* A block failed its check (OBM_ON_ERROR=report): it stays out of use;
 * hand out another. */
static OBMI_NOINLINE void *obmi_malloc_secure_retry(unsigned c)
{
    return c < OBMI_NSMALL ? small_malloc(c) : medium_malloc(c);
}

/* A freed block whose whole pool has been freed since: the pool is out of
 * service, so the block-start check failed, but its header still names
 * the class and the block its key, unless the page went back to the OS. */
static bool freed_in_empty_pool(const obmi_pool *pool, const void *p)
{
    if (obmi_pool_state(pool) != OBMI_POOL_EMPTY)
        return false;
    const obmi_class_info *ci = &obmi_classes[obmi_class_bounded(pool->szidx)];
    uintptr_t rel = (uintptr_t)p - (uintptr_t)pool - OBMI_POOL_HEADER;
    return rel <= (uintptr_t)(ci->nblocks - 1) * ci->size && rel % ci->size == 0 &&
           obmi_block_keyed(p);
}

static OBMI_COLD void bad_pointer(obmi_pool *pool, const void *p, const char *func)
{
    if (freed_in_empty_pool(pool, p))
        obmi_report_freed(func, p, pool);
    else
        obmi_report_invalid(func, p);
}

/* p lies in arena ao: the pool of the block it starts, NULL (after the
 * report) when it is no carved block of a pool in service. */
static inline obmi_pool *pool_checked(const obmi_arena *ao, const void *p, const char *func)
{
    obmi_pool *pool = obmi_pool_containing(ao, p);
    if (OBMI_UNLIKELY(!obmi_pool_is_block_start_in(pool, p))) {
        bad_pointer(pool, p, func);
        return NULL;
    }
    return pool;
}

/* p is a live block of pool: give it back. The checkers hear of it before
 * another thread can take it again. */
static OBMI_ALWAYS_INLINE void small_free_block(obmi_pool *pool, void *p, const char *func)
{
    if (obmi_secure && (obmi_secure_flags & (OBMI_SECURE_JUNK | OBMI_SECURE_CANARY)) &&
        !obmi_secure_free(pool, p, func))
        return;
    obmi_track_free(p, obmi_classes[pool->szidx].size);
    obmi_heap *heap = obmi_tls_heap;
    if (OBMI_LIKELY(obmi_pool_heap(pool) == heap))
        obmi_heap_free_small(heap, pool, p);
    else
        obmi_pool_free_remote(pool, p);
}

/* p carries the freed key: free it unless it is on its pool's lists. */
static OBMI_NOINLINE void small_free_keyed(obmi_pool *pool, void *p, const char *func)
{
    if (obmi_pool_holds_free(obmi_tls_heap, pool, p))
        obmi_report_freed(func, p, pool); /* if the process goes on, p stays as it is */
    else
        small_free_block(pool, p, func);
}

/* p is a block start of pool. */
static OBMI_ALWAYS_INLINE void pool_free_start(obmi_pool *pool, void *p, const char *func)
{
    if (OBMI_UNLIKELY(obmi_block_keyed(p))) {
        small_free_keyed(pool, p, func);
        return;
    }
    small_free_block(pool, p, func);
}

/* The error paths are tail calls: the fast path then needs no stack frame. */
static OBMI_ALWAYS_INLINE void small_free_in(obmi_pool *pool, void *p, const char *func)
{
    if (OBMI_UNLIKELY(!obmi_pool_is_block_start(pool, p))) {
        bad_pointer(pool, p, func);
        return;
    }
    pool_free_start(pool, p, func);
}

/* p lies in arena ao, in any page of its pool. */
static OBMI_ALWAYS_INLINE void pool_free(const obmi_arena *ao, void *p, const char *func)
{
    obmi_pool *pool = pool_checked(ao, p, func);
    if (pool != NULL)
        pool_free_start(pool, p, func);
}

/* The usable size of the blocks of pool: its class's, less a canary. */
static inline size_t pool_block_usable(const obmi_pool *pool)
{
    return obmi_classes[pool->szidx].size - obmi_secure_extra();
}

/* The usable size of a live block of pool; 0 after a report. */
static size_t pool_usable_size(obmi_pool *pool, const void *p, const char *func)
{
    if (OBMI_UNLIKELY(obmi_block_keyed(p)) && obmi_pool_holds_free(obmi_tls_heap, pool, p)) {
        obmi_report_freed(func, p, pool);
        return 0;
    }
    return pool_block_usable(pool);
}

static void *enomem(void)
{
    errno = ENOMEM;
    return NULL;
}

static inline bool is_power_of_two(size_t x)
{
    return x != 0 && (x & (x - 1)) == 0;
}

/* ---- malloc family ---- */

void *obmi_malloc(size_t size)
{
    if (obmi_secure && size <= OBMI_MEDIUM_MAX)
        size += obmi_secure_extra(); /* the canary's bytes; may go past the pools' sizes */
    if (OBMI_LIKELY(size - 1 < OBMI_SMALL_MAX))
        return small_malloc(obmi_size_class(size));
    if (size == 0)
        return small_malloc(0); /* a unique 16-byte block */
    if (size <= OBMI_MEDIUM_MAX)
        return medium_malloc(obmi_medium_class(size));
    if (size > PTRDIFF_MAX)
        return enomem();
    return obmi_large_malloc(size);
}

/* Any pointer but a block of a pool the calling thread owns, found by its
 * page: NULL, another thread's block, a block past a medium pool's first
 * page, the backing allocator's (out of line: the fast path then saves no
 * registers for them). */
static OBMI_NOINLINE void free_other(void *p)
{
    obmi_arena *ao = obmi_arena_map_lookup(p);
    if (ao != NULL)
        pool_free(ao, p, "free");
    else if (p != NULL)
        obmi_large_free(p);
}

/* The ownership test first: a pointer whose page header names the calling
 * thread's heap is in one of its pools (obmi_pool_heap says why). So the common free needs no
 * arena-map lookup. A pointer below 4096 (NULL) has no page to read. */
void obmi_free(void *p)
{
    obmi_pool *pool = obmi_pool_of(p);
    if (obmi_track_probe_pages && OBMI_LIKELY(pool != NULL) &&
        OBMI_LIKELY(obmi_pool_heap(pool) == obmi_tls_heap))
        small_free_in(pool, p, "free");
    else
        free_other(p);
}

/* Blocks are 16-byte aligned and a whole number of 16 bytes: plain vector
 * stores, where gcc would otherwise turn the loop back into a memset and
 * inline it as a `rep stos`, with a high fixed cost for a few hundred bytes
 * (clang has no such switch, nor the problem). */
#if defined(__clang__)
#define NO_MEMSET_IDIOM
#else
#define NO_MEMSET_IDIOM __attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif

NO_MEMSET_IDIOM static inline void zero_block(void *p, size_t n)
{
    typedef long long v16 __attribute__((vector_size(16)));
    v16 *q = (v16 *)__builtin_assume_aligned(p, 16);
    for (size_t i = 0; i < n / 16; i++)
        q[i] = (v16){0, 0};
}

void *obmi_calloc(size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n) || n > PTRDIFF_MAX)
        return enomem();
    size_t extra = obmi_secure_extra(); /* a canary's bytes, not zeroed */
    if (n + extra > OBMI_MEDIUM_MAX)
        return obmi_large_calloc(count, size);
    unsigned c = obmi_class_of(n + extra);
    void *p = c < OBMI_NSMALL ? small_malloc(c) : medium_malloc(c);
    if (p == NULL)
        return NULL;
    /* Recycled blocks hold old data. A small block is zeroed in line; a
     * medium one (640 bytes and more) by memset, whose wide stores win
     * there. */
    if ((obmi_secure && extra != 0) || c >= OBMI_NSMALL)
        memset(p, 0, obmi_class_size(c) - extra);
    else
        zero_block(p, obmi_class_size(c));
    return p;
}

/* A block of usable bytes stays where it is for a request of size when
 * the cut would save less than a quarter of it. */
static inline bool shrink_stays(size_t usable, size_t size)
{
    return size <= usable && usable - size < usable / 4;
}

/* The size to allocate when a block of old usable bytes moves to hold
 * size: a block that grows gets a quarter more than it had (as tcmalloc
 * does), so a block grown in small steps moves once per quarter instead
 * of at every class, but no more than the pools' sizes when size is one
 * of them, and no larger a class than the next requests, from size up,
 * stay in (a class of 896 bytes for 656 would move down to 768 at the
 * next step, 672: a cut of a quarter); a shrink gets what it asks for. */
static size_t realloc_grown(size_t old, size_t size)
{
    size_t headroom = old + old / 4;
    if (size <= old || headroom <= size)
        return size;
    size_t extra = obmi_secure_extra(); /* a canary's bytes: a class's usable size is less */
    if (size + extra > OBMI_MEDIUM_MAX)
        return headroom; /* the backing allocator's */
    if (headroom + extra > OBMI_MEDIUM_MAX)
        headroom = OBMI_MEDIUM_MAX - extra;
    unsigned c = obmi_class_of(headroom + extra), least = obmi_class_of(size + extra);
    while (c > least && !shrink_stays(obmi_class_size(c) - extra, size))
        c--;
    return obmi_class_size(c) - extra;
}

/* Every case but a live block of obm's that stays where it is. */
static OBMI_NOINLINE void *realloc_other(void *p, size_t size)
{
    if (p == NULL)
        return obmi_malloc(size);
    obmi_arena *ao = obmi_arena_map_lookup(p);
    obmi_pool *pool = NULL;
    size_t old = 0;
    if (ao != NULL) { /* a bad pointer aborts here, first */
        pool = pool_checked(ao, p, "realloc");
        old = pool != NULL ? pool_usable_size(pool, p, "realloc") : 0;
        if (old == 0) {
            errno = EINVAL; /* OBM_ON_ERROR=report: reported, p left alone */
            return NULL;
        }
    }
    if (size == 0) {
        obmi_free(p); /* glibc: realloc(p, 0) frees and returns NULL */
        return NULL;
    }
    if (size > PTRDIFF_MAX)
        return enomem();

    if (pool != NULL) {
        /* Stay when the block still fits and shrinking would save less
         * than a quarter of it (a same-class shrink saves nothing). */
        if (shrink_stays(old, size) || (size <= old && obmi_class_size(obmi_class_of(size)) == old))
            return p;
    } else {
        if (size > OBMI_MEDIUM_MAX)
            return obmi_large_realloc(p, size); /* glibc grows or shrinks in place */
        old = obmi_backing_usable_size(p);
        if (shrink_stays(old, size))
            return p;
    }
    void *q = obmi_malloc(realloc_grown(old, size));
    if (q == NULL)
        return NULL; /* p is untouched and still valid */
    memcpy(q, p, old < size ? old : size);
    if (pool != NULL)
        pool_free_start(pool, p, "realloc");
    else
        obmi_large_free(p);
    return q;
}

/* The common case first, in a frame of its own (realloc_other is a tail
 * call): a block of a pool the calling thread owns, found by its page's
 * header as free finds it, not carrying the freed key, that the new size
 * still fits by the shrink rule. Anything else (another thread's block, a
 * medium block past its pool's first page, the backing allocator's) takes
 * the full path, which checks again from the start. */
void *obmi_realloc(void *p, size_t size)
{
    obmi_pool *pool = obmi_pool_of(p);
    if (obmi_track_probe_pages && OBMI_LIKELY(pool != NULL) &&
        OBMI_LIKELY(obmi_pool_heap(pool) == obmi_tls_heap) &&
        OBMI_LIKELY(obmi_pool_is_block_start(pool, p)) && !obmi_block_keyed(p) &&
        shrink_stays(pool_block_usable(pool), size))
        return p;
    return realloc_other(p, size);
}

void *obmi_reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n))
        return enomem();
    return obmi_realloc(p, n);
}

size_t obmi_usable_size(const void *p)
{
    obmi_arena *ao = obmi_arena_map_lookup(p);
    if (ao != NULL) {
        obmi_pool *pool = pool_checked(ao, p, "malloc_usable_size");
        return pool != NULL ? pool_usable_size(pool, p, "malloc_usable_size") : 0;
    }
    if (p == NULL)
        return 0;
    return obmi_backing_usable_size((void *)p);
}

OBMI_EXPORT int obm_owns(const void *p)
{
    return obmi_arena_map_lookup(p) != NULL;
}

OBMI_EXPORT int obm_version(void)
{
    return OBM_VERSION;
}

/* The calling thread's empty pools back to their arenas (a thread's heap
 * is its own to touch), then every free pool's page back to the OS and
 * every entirely free arena unmapped. */
OBMI_EXPORT int obm_trim(void)
{
    obmi_heap *heap = obmi_tls_heap;
    if (heap != &obmi_heap_empty)
        return obmi_heap_trim(heap);
    obmi_arenas_lock(&obmi_main_arenas);
    bool released = obmi_arenas_trim(&obmi_main_arenas);
    obmi_arenas_unlock(&obmi_main_arenas);
    return released;
}

/* The purge policy at run time; other options are read at start-up only. */
OBMI_EXPORT int obm_option_set(const char *name, const char *value)
{
    obmi_option_id id;
    long v;
    if (name == NULL || value == NULL || !obmi_option_parse(name, value, &id, &v))
        return EINVAL;
    if (id != OBMI_OPTION_PURGE_DELAY_MS && id != OBMI_OPTION_PURGE_ADVICE &&
        id != OBMI_OPTION_ARENA_KEEP)
        return EINVAL;
    obmi_arenas_lock(&obmi_main_arenas);
    obmi_option_store(id, v);
    obmi_purge_options_apply();
    obmi_arenas_unlock(&obmi_main_arenas);
    if (obmi_option(OBMI_OPTION_VERBOSE))
        obmi_option_print(id);
    return 0;
}

void obmi_free_sized(void *p, size_t size)
{
    (void)size;
    obmi_free(p);
}

void obmi_free_aligned_sized(void *p, size_t alignment, size_t size)
{
    (void)alignment;
    (void)size;
    obmi_free(p);
}

/* ---- aligned allocation ---- */

/* alignment is a power of two. */
static void *aligned_malloc(size_t alignment, size_t size)
{
    if (alignment <= OBMI_ALIGNMENT)
        return obmi_malloc(size); /* every obm block is 16-aligned */
    if (alignment > PTRDIFF_MAX || size > PTRDIFF_MAX - alignment)
        return enomem();
    return obmi_large_memalign(alignment, size);
}

int obmi_posix_memalign(void **memptr, size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment) || alignment % sizeof(void *) != 0)
        return EINVAL;
    int saved = errno;
    void *p = aligned_malloc(alignment, size);
    errno = saved;
    if (p == NULL)
        return ENOMEM;
    *memptr = p;
    return 0;
}

void *obmi_aligned_alloc(size_t alignment, size_t size)
{
    if (!is_power_of_two(alignment) || alignment > PTRDIFF_MAX) {
        errno = EINVAL;
        return NULL;
    }
    return aligned_malloc(alignment, size);
}

/* glibc's memalign: an alignment that is not a power of two is rounded up
 * to the next one; one too large to round is EINVAL. */
void *obmi_memalign(size_t alignment, size_t size)
{
    if (alignment > PTRDIFF_MAX) {
        errno = EINVAL;
        return NULL;
    }
    if (!is_power_of_two(alignment))
        alignment = alignment <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzl(alignment - 1));
    return aligned_malloc(alignment, size);
}

void *obmi_valloc(size_t size)
{
    return obmi_memalign(obmi_os_page_size(), size);
}

/* pvalloc rounds the size up to whole pages (at least one). */
void *obmi_pvalloc(size_t size)
{
    size_t page = obmi_os_page_size();
    if (size > PTRDIFF_MAX - page)
        return enomem();
    size_t rounded = size == 0 ? page : (size + page - 1) & ~(page - 1);
    return obmi_memalign(page, rounded);
}

/* A static link pulls in this file with the first obm_* call; this
 * reference pulls in init.c, whose constructor reads the options and
 * whose destructor writes the exit reports, which nothing calls by name. */
__attribute__((used)) static void (*const link_init)(void) = obmi_init;

/* ---- the exported names ---- */

EXPORT_AS(obmi_malloc, obm_malloc);
EXPORT_AS(obmi_calloc, obm_calloc);
EXPORT_AS(obmi_realloc, obm_realloc);
EXPORT_AS(obmi_reallocarray, obm_reallocarray);
EXPORT_AS(obmi_free, obm_free);
EXPORT_AS(obmi_posix_memalign, obm_posix_memalign);
EXPORT_AS(obmi_aligned_alloc, obm_aligned_alloc);
EXPORT_AS(obmi_memalign, obm_memalign);
EXPORT_AS(obmi_usable_size, obm_usable_size);

#ifdef OBM_DROPIN
#include "override.h"
#endif
