/* obm: a small-object allocator.
 *
 * Requests of 1..512 bytes are served from size-classed 4 KiB pools inside
 * 256 KiB arenas; larger or over-aligned requests go to the backing
 * allocator (the process's malloc for libobm, glibc for the drop-in).
 *
 * Two libraries export this header:
 *   libobm       the prefixed API below, for runtimes that link it; it never
 *                replaces malloc.
 *   libobmalloc  the drop-in: replaces the whole malloc family of the process
 *                (LD_PRELOAD or -lobmalloc) and exports the same obm_* API.
 *
 * Semantics follow glibc: see README.md, "Semantics".
 */
#ifndef OBM_H
#define OBM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OBM_VERSION_MAJOR  0
#define OBM_VERSION_MINOR  1
#define OBM_VERSION_PATCH  0
#define OBM_VERSION_STRING "0.1.0"

/* Geometry, fixed at build time. */
#define OBM_ALIGNMENT  16     /* every block is aligned to this */
#define OBM_SMALL_MAX  512    /* largest request served from pools */
#define OBM_NCLASSES   32     /* size classes 16, 32, ..., 512 */
#define OBM_POOL_SIZE  4096   /* one pool, one size class */
#define OBM_ARENA_SIZE 262144 /* 64 pools, aligned to its size */

#if defined(__GNUC__)
#define OBM_ATTR_MALLOC          __attribute__((malloc))
#define OBM_ATTR_ALLOC_SIZE(...) __attribute__((alloc_size(__VA_ARGS__)))
#define OBM_ATTR_WARN_UNUSED     __attribute__((warn_unused_result))
#else
#define OBM_ATTR_MALLOC
#define OBM_ATTR_ALLOC_SIZE(...)
#define OBM_ATTR_WARN_UNUSED
#endif

/* malloc(3) family. Failures return NULL with errno = ENOMEM (EINVAL for a
 * bad alignment); obm_free and friends preserve errno. */
OBM_ATTR_MALLOC OBM_ATTR_ALLOC_SIZE(1) void *obm_malloc(size_t size);
OBM_ATTR_MALLOC OBM_ATTR_ALLOC_SIZE(1, 2) void *obm_calloc(size_t count, size_t size);
OBM_ATTR_WARN_UNUSED OBM_ATTR_ALLOC_SIZE(2) void *obm_realloc(void *ptr, size_t size);
OBM_ATTR_WARN_UNUSED OBM_ATTR_ALLOC_SIZE(2, 3) void *obm_reallocarray(void *ptr, size_t count,
                                                                      size_t size);
void obm_free(void *ptr);

/* Aligned allocation. obm_posix_memalign returns 0, EINVAL or ENOMEM and
 * leaves *memptr untouched on failure. obm_aligned_alloc requires a power of
 * two; obm_memalign rounds any other alignment up to one, as glibc does. */
int obm_posix_memalign(void **memptr, size_t alignment, size_t size);
OBM_ATTR_MALLOC OBM_ATTR_ALLOC_SIZE(2) void *obm_aligned_alloc(size_t alignment, size_t size);
OBM_ATTR_MALLOC OBM_ATTR_ALLOC_SIZE(2) void *obm_memalign(size_t alignment, size_t size);

/* Bytes that may be used at ptr (>= the size asked for); 0 for NULL. */
size_t obm_usable_size(const void *ptr);

/* Non-zero when ptr lies inside one of obm's arenas (small blocks), zero for
 * NULL and for blocks that came from the backing allocator. */
int obm_owns(const void *ptr);

/* Event counters, summed over every heap. Each heap counts its own events
 * and only its owning thread writes them, so malloc and free share no
 * counter; the sum is exact when no other thread is running. A free by a
 * thread other than the block's owner is counted (in frees and
 * remote_frees) when the owner collects it. */
typedef struct obm_counters {
    size_t size;             /* the caller sets sizeof(obm_counters_t) */
    size_t mallocs;          /* small blocks handed out, ever */
    size_t frees;            /* small blocks taken back, ever */
    size_t remote_frees;     /* frees collected from other threads, ever */
    size_t pools_taken;      /* pools heaps took from arenas or their cache, ever */
    size_t pools_returned;   /* pools heaps gave back, ever */
    size_t heaps_created;    /* thread heaps made, ever */
    size_t heaps_adopted;    /* abandoned heaps taken over by a new thread, ever */
    size_t heaps_live;       /* heaps owned by a running thread now */
    size_t heaps_abandoned;  /* heaps whose thread ended, waiting for adoption, now */
    size_t arenas_current;   /* arenas mapped now */
    size_t arenas_highwater; /* most arenas mapped at once */
} obm_counters_t;

/* Fills *out; 0, or EINVAL when out is NULL or out->size is not
 * sizeof(obm_counters_t). */
int obm_counters_get(obm_counters_t *out);

#ifdef __cplusplus
}
#endif

#endif /* OBM_H */
