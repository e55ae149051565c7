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
 * Semantics follow glibc: see docs/semantics.md.
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
#define OBM_VERSION        (OBM_VERSION_MAJOR * 10000 + OBM_VERSION_MINOR * 100 + OBM_VERSION_PATCH)

/* The version of the library in use, as OBM_VERSION (major * 10000 +
 * minor * 100 + patch), which a program built against another obm.h can
 * compare with its own. */
int obm_version(void);

/* Geometry, fixed at build time. */
#define OBM_ALIGNMENT  16     /* every block is aligned to this */
#define OBM_SMALL_MAX  512    /* largest request served from one-page pools */
#define OBM_MEDIUM_MAX 32768  /* largest request served from pools at all */
#define OBM_NSMALL     32     /* small classes 16, 32, ..., 512: classes 0..31 */
#define OBM_NCLASSES   56     /* and medium classes 640, 768, 896, 1024, ..., 32768 */
#define OBM_POOL_SIZE  4096   /* a page: a small pool, and the unit of a medium pool */
#define OBM_ARENA_SIZE 262144 /* 64 pages, aligned to its size */

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

/* Gives memory back now instead of on the purge decay (docs/memory.md): the calling thread's empty
 * pools return to their arenas, every free pool's page goes back to the OS (madvise), and every
 * arena with no pool in use is unmapped. Pools other threads keep for reuse stay theirs. Returns 1
 * when anything was given back, else 0. */
int obm_trim(void);

/* Changes the purge policy at run time, as the same variables do at
 * start-up (README.md, "Options"): name is "OBM_PURGE_DELAY_MS",
 * "OBM_PURGE_ADVICE" or "OBM_ARENA_KEEP", value as in the environment,
 * e.g. obm_option_set("OBM_PURGE_DELAY_MS", "-1"). 0, or EINVAL (nothing
 * changed) for another name or a value out of range. */
int obm_option_set(const char *name, const char *value);

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

/* ---- statistics ----
 *
 * Computed by walking arenas and pools under the arena manager's lock (the
 * fast paths keep no shared counter), and summing each heap's own event
 * counts. Exact when no other thread runs; while threads run, a snapshot
 * whose sums still hold: per class blocks_in_use + blocks_free = pools x
 * blocks per pool, pages_in_use + pools_empty = arenas_current x 64, and
 * the five bytes_* of the ledger add up to bytes_mapped.
 * docs/statistics.md documents every field. */

#define OBM_STATS_VERSION 5

typedef struct obm_class_stats {
    size_t block_size;    /* bytes per block */
    size_t pools;         /* pools currently serving this class */
    size_t blocks_in_use; /* handed out and not freed */
    size_t blocks_free;   /* free blocks in those pools, carved or not */
    size_t blocks_remote; /* of blocks_free: freed by another thread, not yet taken back */
    size_t mallocs;       /* blocks handed out, ever, summed over heaps */
    size_t frees;         /* blocks taken back, ever (remote ones once collected) */
    size_t remote_frees;  /* of frees: freed by a thread other than the owner */
} obm_class_stats_t;

typedef struct obm_stats {
    size_t size;    /* the caller sets sizeof(obm_stats_t) */
    size_t version; /* OBM_STATS_VERSION */
    size_t arenas_current, arenas_highwater, arenas_allocated_total, arenas_released_total;
    size_t pools_in_use;    /* serving a class (USED or FULL) */
    size_t pools_full;      /* of pools_in_use: every block handed out */
    size_t pages_in_use;    /* the pages of those pools: 1 a small pool, 4..64 a medium one */
    size_t pools_empty;     /* free pages, each a pool of its own: in an arena, cached by a
                               heap, or untouched */
    size_t pools_cached;    /* of pools_empty: kept by a thread's heap for reuse (a medium
                               pool's run: all its pages) */
    size_t pools_untouched; /* of pools_empty: never used since the arena was mapped */
    size_t pools_purged;    /* of pools_empty: free in an arena, page given back to the OS */
    size_t bytes_mapped;    /* arenas_current * OBM_ARENA_SIZE */
    size_t bytes_in_use, bytes_free_blocks, bytes_empty_pools, bytes_pool_headers,
        bytes_quantization;    /* these five sum to bytes_mapped */
    size_t bytes_purged;       /* pools_purged * OBM_POOL_SIZE, part of bytes_empty_pools */
    size_t bytes_resident;     /* bytes_mapped less purged and untouched pools */
    size_t purges_total;       /* madvise calls that gave pages back, ever */
    size_t pools_purged_total; /* pools given back to the OS, ever */
    size_t large_allocs_current, large_bytes_current; /* held from the backing allocator */
    size_t large_allocs_total; /* requests routed to the backing allocator, ever */
    size_t heaps_live, heaps_abandoned, heaps_created, heaps_adopted;
    size_t pools_taken_total, pools_returned_total; /* pool moves between heaps and arenas */
    /* the slow paths, per kind (docs/statistics.md) */
    size_t slow_mallocs_total, slow_frees_total; /* calls that left the fast path */
    size_t carves_total;                         /* never-used blocks carved into a free list */
    size_t remote_collects_total;                /* remote-free lists taken in by the owner */
    size_t pools_used_to_full_total;             /* pools found full: malloc went on to the next */
    size_t pools_full_to_used_total;             /* full pools that got a block back */
    size_t pools_emptied_total;                  /* pools a slow path found with nothing in use */
    size_t pools_from_arenas_total, pools_to_arenas_total; /* of the pool moves: via the arenas */
    size_t errors_invalid_pointer;  /* free/realloc/usable size of no block start, ever */
    size_t errors_double_free;      /* of a block already free, ever */
    size_t errors_corrupted_list;   /* free-list links found overwritten, ever */
    size_t errors_write_after_free; /* OBM_JUNK: a freed block written to, ever */
    size_t errors_overflow;         /* OBM_CANARY: a block's canary overwritten, ever */
    obm_class_stats_t classes[OBM_NCLASSES];
} obm_stats_t;

/* Fills *out: 0, or EINVAL (*out untouched) when out is NULL or out->size
 * is not sizeof(obm_stats_t). */
int obm_stats_get(obm_stats_t *out);

/* delta = after - before, field by field, for counts of events and for
 * levels (a level that fell wraps: read it as ptrdiff_t); size, version,
 * block_size and arenas_highwater are after's. Any two may be the same. */
void obm_stats_diff(const obm_stats_t *before, const obm_stats_t *after, obm_stats_t *delta);

/* Receives the report a piece at a time (NUL-terminated). It is called
 * with no obm lock held, so it may allocate. */
typedef void (*obm_write_fn)(void *opaque, const char *text);

/* Writes a report through write (NULL: to stderr). opts (NULL: ""): "" the text
 * report in the layout of CPython's sys._debugmallocstats, "J" the same as
 * JSON (names as in obm_stats_t), "M" the fragmentation map as SVG.
 * 0, EINVAL for other opts, ENOMEM when the map's snapshot cannot be
 * mapped. */
int obm_stats_print(obm_write_fn write, void *opaque, const char *opts);

/* obm_visit: one call per arena, then one per each of its 64 pages: a
 * small pool is one page; a medium pool's first page stands for the whole
 * pool (size, blocks), its later pages are OBM_POOL_CONTINUED. */
enum obm_region_kind { OBM_REGION_ARENA = 1, OBM_REGION_POOL = 2 };

enum obm_region_state {
    /* arenas */
    OBM_ARENA_USED = 1,  /* at least one pool serving a class */
    OBM_ARENA_EMPTY = 2, /* no pool serving; some cached by heaps */
    OBM_ARENA_SPARE = 3, /* every pool free in the arena: kept mapped (OBM_ARENA_KEEP) */
    /* pools */
    OBM_POOL_USED = 11,      /* serving a class, with a free block */
    OBM_POOL_FULL = 12,      /* serving a class, every block handed out */
    OBM_POOL_EMPTY = 13,     /* free in its arena */
    OBM_POOL_CACHED = 14,    /* free, kept by a thread's heap */
    OBM_POOL_UNTOUCHED = 15, /* never used since the arena was mapped */
    OBM_POOL_PURGED = 16,    /* free in its arena, page given back to the OS */
    OBM_POOL_CONTINUED = 17, /* a later page of the medium pool that starts before it */
};

typedef struct obm_region {
    int kind;            /* enum obm_region_kind */
    int state;           /* enum obm_region_state */
    const void *address; /* start of the arena or pool */
    size_t size;         /* OBM_ARENA_SIZE, a pool's bytes, or OBM_POOL_SIZE */
    size_t arena_serial; /* the arena's number, in order of mapping */
    int size_class;      /* pools serving a class: 0..OBM_NCLASSES-1; otherwise -1 */
    size_t block_size;   /* bytes per block, or 0 */
    size_t used;         /* blocks in use (pools), pools serving a class (arenas) */
    size_t capacity;     /* blocks per pool (pools serving a class, else 0), 64 (arenas) */
                         /* (a CONTINUED page repeats its pool's class, block size, used,
                            capacity and remote; it is counted with the pool's first page) */
    size_t remote;       /* pools: of the free blocks, freed by another thread, not yet collected */
} obm_region_t;

/* Non-zero stops the walk and is returned by obm_visit. */
typedef int (*obm_visit_fn)(const obm_region_t *region, void *arg);

/* Calls fn for every arena and pool, in arena order, from a snapshot taken
 * under the manager lock and released before the first call: fn may
 * allocate and free (the snapshot does not change). Returns 0, fn's
 * non-zero value, EINVAL for a NULL fn, or ENOMEM. The snapshot is unmapped
 * when the walk ends: leaving fn by longjmp or thread cancellation leaks it. */
int obm_visit(obm_visit_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* OBM_H */
