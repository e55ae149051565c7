/* obm internals: the machine, explained once.
 *
 * GEOMETRY
 *
 *   arena: 256 KiB from mmap, aligned to 256 KiB, so p & ~(256K-1) is its base
 *   +--------+--------+--------+-- ... --+---------+
 *   | pool 0 | pool 1 | pool 2 |         | pool 63 |     64 pools of 4 KiB
 *   +--------+--------+--------+-- ... --+---------+
 *
 *   small pool: 4 KiB (one page), one size class, p & ~4095 is its header
 *   +-------------+-------+-------+-----+-------+---------------+
 *   | header 64 B | block | block | ... | block | tail (unused) |
 *   +-------------+-------+-------+-----+-------+---------------+
 *   0             64      64+s    ...           64+n*s          4096
 *
 *   medium pool: 4..64 pages (a power of two, by class: pool_bytes),
 *   aligned to its size in its arena, the same header in its first page
 *   and blocks of 640..32768 bytes after it. The arena keeps, for each
 *   page, the page its pool starts at (pool_start), which is how a free
 *   finds the header of a block past the first page.
 *
 *   Pool header (struct obmi_pool), one cache line:
 *     0  freeblock      head of the owner's free list (NULL: none free)
 *     8  ref_count      blocks handed out and not yet collected back
 *    10  szidx          size class index
 *    11  state          OBMI_POOL_* below
 *    12  carved         bytes carved into blocks after the header (0: not in service)
 *    16  nextpool       ring or free-list link
 *    24  prevpool       ring link
 *    32  divc           its class's divisor constant (the block-start check)
 *    40  heap_tag       the owning heap's address XOR the pool's (obmi_pool_heap)
 *    48  remote         remote-free list head | OBMI_REMOTE_* flags (atomic)
 *    56  nextqueued     link on the owner's pending list
 *
 * SIZE CLASSES
 *
 *   Requests of n bytes, 0 <= n <= 512, use class c = (n - 1) >> 4 (n = 0
 *   uses class 0); class c has blocks of 16 * (c + 1) bytes, so every block
 *   is 16-byte aligned (max_align_t; CPython moved to 16 in 3.8):
 *
 *     class   block   blocks/pool   tail      class   block   blocks/pool   tail
 *       0       16        252          0       16      272         14         224
 *       1       32        126          0       ...
 *       2       48         84          0       29      480          8         192
 *       3       64         63          0       30      496          8          64
 *       ...                                    31      512          7         448
 *
 *   Requests of 513..32768 bytes use the medium classes 32..55, four per
 *   doubling (at most a quarter of a block lost to rounding), in pools of
 *   4 pages, twice as many at each doubling, up to 64 (pool.c's table):
 *
 *     classes   blocks               pool      blocks/pool
 *     32..35    640  768  896 1024   16 KiB    25 21 18 15
 *     36..39    1280 ...      2048   32 KiB    25 21 18 15
 *     40..43    2560 ...      4096   64 KiB    25 21 18 15
 *     44..47    5120 ...      8192   128 KiB   25 21 18 15
 *     48..51    10240 ...    16384   256 KiB   25 21 18 15
 *     52..55    20480 ...    32768   256 KiB   12 10  9  7
 *
 * POOL STATES (obmalloc's machine; the move functions are named after it)
 *
 *   UNUSED  never initialised in this arena's life: header is all zero.
 *   USED    in service, on its heap's usedpools[szidx] ring. Every pool on a
 *           ring has a free or never-carved block, except possibly the ring's
 *           head, whose exhaustion is only noticed by the next malloc.
 *   FULL    in service, every block handed out, on no list, and flagged
 *           NOTIFY so the first remote free queues it (heap.c). The next
 *           free into it puts it back on its ring, behind the head
 *           (pool_full_to_used).
 *   EMPTY   no block in use; in its heap's small cache, or free in its
 *           arena (a bit in the arena's `dirty` mask), ready to be taken
 *           again for any class (pool_used_to_empty).
 *   PURGED  free in its arena and given back to the OS (a bit in the
 *           arena's `purged` mask): the page is not resident and its
 *           header is not read again; taking it re-initialises it. Not a
 *           header state: the header may read as zero (UNUSED) or stale.
 *
 *   Retire: a pool that empties while it is the only pool on its ring (full
 *   pools of the class are on no ring) stays there (state USED, ref_count
 *   0), so a loop that allocates and frees one block never pays a pool
 *   round-trip (as mimalloc retires pages). A full pool that gets a block
 *   back retires an exhausted ring head to FULL before taking its place.
 *
 * ARENAS (arena.c)
 *
 *   Arena objects live in mmap'd metadata, never inside the arena, so all
 *   64 pools serve blocks. The arena manager keeps `usable`, the arenas with
 *   at least one free pool, sorted by nfreepools ascending: new pools come
 *   from the fullest arena, so the emptiest arenas drain and can be released
 *   (CPython's policy). nfp2lasta[n] points at the last arena in `usable`
 *   with exactly n free pools, which makes re-sorting after one pool moves
 *   O(1) (CPython bpo-37257's nfp2lasta).
 *   An arena's free pages are three sets, no list: `dirty` (emptied, still
 *   resident), `purged` (emptied, then given back), and `untouched`. A
 *   small pool is taken from them in that order, lowest address first, so
 *   resident pages are reused before any page is faulted in; a medium
 *   pool takes the lowest free run of its pages aligned to its size, from
 *   the fullest arena that has one among the first few (arena.c). Its
 *   pages go back dirty as far as it was carved, untouched past that.
 *   An arena whose 64 pools are all free (a spare) is unmapped on the decay
 *   clock (PURGE): a tick unmaps the spares that were spares at the tick
 *   before too, oldest first, while more than arena_keep (OBM_ARENA_KEEP,
 *   default 1) are left. So an arena emptied now and needed again soon is
 *   not unmapped and mapped in the same breath, and a loop at an arena
 *   boundary never maps and unmaps (also bpo-37257). At most
 *   OBMI_SPARES_WAITING spares beyond arena_keep wait: past that the
 *   oldest is unmapped at once, so a program that frees most of its memory
 *   gives it back without waiting for a tick (there is no thread to make
 *   one), and the backing allocator can map it again. With no decay
 *   (purge_delay_ms 0 or -1) a spare beyond arena_keep is unmapped at once.
 *
 * PURGE (purge.c)
 *
 *   A free pool's page goes back to the OS with madvise, so one survivor
 *   pins its own page, not its 256 KiB arena. Not at once (a pool emptied
 *   now is often taken again soon): a decay in two generations, checked at
 *   the end of each slow path that holds the manager lock, with one clock
 *   read. Every purge_delay_ms a tick purges the pools that were already
 *   dirty at the previous tick (dirty_old), then marks the remaining dirty
 *   pools old; a pool is so purged after between one and two delays free,
 *   or at the first tick after a whole delay in which nothing was dirtied.
 *   Runs of adjacent pools go in one madvise call. Arenas with dirty pools
 *   are on their own list, so a tick costs nothing for the others.
 *   A malloc slow path that moved no pool (carving, moving to the next
 *   pool of its ring) checks too, without the lock: one atomic load of
 *   due_ms (UINT64_MAX while no pool is dirty), then one clock read, and
 *   the lock only when a tick is due. So a program that keeps allocating
 *   but no longer frees whole pools still has its free pools purged.
 *   Each tick also counts in `ticks`: a heap's slow mallocs look at it;
 *   at a tick they see, a heap that keeps cached pools or retired ones (a
 *   class's last pool, kept in place with no block in use) arms and asks
 *   for one more tick (`expiring`), and at the next it gives them back, so
 *   what a quiet heap keeps expires on the same clock (heap.c,
 *   heap_expire_due).
 *
 * ARENA MAP (arena_map.c)
 *
 *   Address -> arena object in two loads without a lock: a static root of
 *   2^15 pointers indexed by address bits 47..33, each pointing at a leaf of
 *   2^15 arena pointers indexed by bits 32..18. Leaves are mmap'd on demand
 *   and never freed. An entry is set before any block of its arena exists
 *   and cleared before the arena is unmapped.
 *
 * HARDENING (hardening.c, api.c, heap.c; docs/hardening.md)
 *
 *   A free block's first word is its link XORed with a per-process secret,
 *   its second a per-process key (0 once handed out). free checks the
 *   pointer is a carved block start (a multiply by the header's divisor constant), then, if the
 *   block carries the key, looks for it on its pool's lists before calling
 *   it a double free. malloc's fast path checks the list head lies in its
 *   pool, past the header, 16-aligned (one subtract, rotate, compare, which
 *   also catches an empty list); the slow path and every walk check the
 *   block boundary. 4 instructions per pair in all. secure.c adds junk,
 *   canaries and random carving in --enable-secure builds; track.h tells
 *   memcheck and ASan which bytes the program may touch.
 *
 * THREADS (heap.c: the remote-free protocol; thread.c: heaps per thread)
 *
 *   Every thread has its own heap, reached through one initial-exec TLS
 *   pointer (obmi_tls_heap) that starts at obmi_heap_empty, whose rings are
 *   all empty: a thread's first malloc falls into the slow path, which
 *   gives the thread a heap. A heap's pools, rings, cache and counters are
 *   touched by its owning thread only, with plain loads and stores; other
 *   threads touch two atomic words, pool->remote and heap->pending.
 *   Arenas and their free pools are one manager behind one mutex, taken
 *   once per pool moved, never per block. The arena map is read without it.
 */
#ifndef OBM_TYPES_H
#define OBM_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "obm.h"

#define OBMI_ALIGNMENT       OBM_ALIGNMENT
#define OBMI_ALIGNMENT_SHIFT 4
#define OBMI_SMALL_MAX       OBM_SMALL_MAX
#define OBMI_MEDIUM_MAX      OBM_MEDIUM_MAX
#define OBMI_NSMALL          OBM_NSMALL
#define OBMI_NCLASSES        OBM_NCLASSES
#define OBMI_POOL_SIZE       OBM_POOL_SIZE
#define OBMI_POOL_SHIFT      12
#define OBMI_POOL_HEADER     64
#define OBMI_ARENA_SIZE      OBM_ARENA_SIZE
#define OBMI_ARENA_SHIFT     18
#define OBMI_POOLS_PER_ARENA (OBMI_ARENA_SIZE / OBMI_POOL_SIZE)
#define OBMI_RUN_SIZES       5 /* medium pool sizes: 16, 32, 64, 128, 256 KiB */
#define OBMI_SPARES_WAITING  4 /* spares beyond arena_keep waiting for a tick (ARENAS) */

/* Arena map: user addresses below 2^48, split into root and leaf indexes. */
#define OBMI_ADDRESS_BITS  48
#define OBMI_MAP_BITS      (OBMI_ADDRESS_BITS - OBMI_ARENA_SHIFT)
#define OBMI_MAP_LEAF_BITS 15
#define OBMI_MAP_ROOT_BITS (OBMI_MAP_BITS - OBMI_MAP_LEAF_BITS)

/* Carve at most this many never-used blocks into the free list at once:
 * enough to amortise the slow path, few enough to keep first touch lazy. */
#define OBMI_CARVE_BATCH 16

typedef struct obmi_block obmi_block;
typedef struct obmi_pool obmi_pool;
typedef struct obmi_arena obmi_arena;
typedef struct obmi_arenas obmi_arenas;
typedef struct obmi_heap obmi_heap;

/* A free block's first 16 bytes (every block has at least 16): the
 * free-list link, encoded (hardening.c), and the freed key, which marks
 * the block as free for the double-free check. A block handed out has its
 * key cleared; its link word is the program's. */
struct obmi_block {
    uintptr_t link; /* next free block ^ obmi_link_secret; read through obmi_block_next */
    uintptr_t key;  /* obmi_free_key while free, 0 once handed out */
};

enum obmi_pool_state {
    OBMI_POOL_UNUSED = 0, /* zero: a never-initialised header */
    OBMI_POOL_USED = 1,
    OBMI_POOL_FULL = 2,
    OBMI_POOL_EMPTY = 3,
};

/* pool->remote: the remote-free list head (blocks are 16-byte aligned, so
 * the low bits are free) and two flags, changed together in one CAS. */
#define OBMI_REMOTE_NOTIFY ((uintptr_t)1) /* owner asks: queue me on the next remote free */
#define OBMI_REMOTE_QUEUED ((uintptr_t)2) /* on (or being put on) the heap's pending list */
#define OBMI_REMOTE_FLAGS  ((uintptr_t)3)

struct obmi_pool {
    obmi_block *freeblock;    /* free-list head; NULL when none is free */
    uint16_t ref_count;       /* blocks in use, remote frees not yet collected included */
    uint8_t szidx;            /* size class */
    uint8_t state;            /* enum obmi_pool_state */
    uint32_t carved;          /* bytes of blocks carved; 0 unless USED or FULL */
    obmi_pool *nextpool;      /* ring link (USED) or arena free list/heap cache (EMPTY) */
    obmi_pool *prevpool;      /* ring link (USED) */
    uint64_t divc;            /* obmi_classes[szidx].divc: the block-start check's constant */
    uintptr_t heap_tag;       /* owning heap (NULL unless USED or FULL) ^ the pool's address */
    _Atomic uintptr_t remote; /* remote-free list | OBMI_REMOTE_* */
    obmi_pool *nextqueued;    /* pending-list link, written by whoever set QUEUED */
};

struct obmi_arena {
    uintptr_t base;          /* address of pool 0; 0 when the object is free */
    uint64_t dirty;          /* pools free in this arena and still resident (EMPTY) */
    uint64_t dirty_old;      /* of dirty: already dirty at the last decay tick */
    uint64_t purged;         /* pools free in this arena and given back to the OS */
    uint64_t untouched;      /* pages never used since the arena was mapped (UNUSED) */
    uint64_t lent_untouched; /* pages medium pools in service took untouched, */
    uint64_t lent_purged;    /* or purged: past a pool's carved blocks they still are */
    uint32_t nfreepools;     /* dirty + purged + untouched pages */
    bool spare_old;          /* all 64 pools free at the last decay tick too */
    obmi_arena *nextarena;   /* usable list link, or free-object list link */
    obmi_arena *prevarena;   /* usable list link */
    obmi_arena *allnext;     /* every arena of the manager, in creation order */
    obmi_arena *allprev;
    obmi_arena *dirtynext; /* arenas with a dirty pool, oldest dirty first */
    obmi_arena *dirtyprev;
    obmi_arenas *owner; /* the manager this arena belongs to */
    uint64_t serial;    /* order of creation, for reports */
    /* For each page, the page its pool starts at: itself, but in a medium
     * pool's later pages. Read without the lock by frees (a live block's
     * pool cannot change). */
    _Atomic uint8_t pool_start[OBMI_POOLS_PER_ARENA];
    /* At a medium pool's first page: the pages it carved into in its
     * earlier times in service (a heap's cache keeps a run whole between
     * them), so its return knows which pages hold data. Written by the
     * heap holding the run; 0 elsewhere. */
    uint8_t run_carved[OBMI_POOLS_PER_ARENA];
};

/* How purged pages are given back (OBM_PURGE_ADVICE). */
enum obmi_purge_advice {
    OBMI_PURGE_DONTNEED = 0, /* MADV_DONTNEED: gone at once, zero on next touch */
    OBMI_PURGE_FREE = 1,     /* MADV_FREE: reclaimed when the kernel needs memory */
};

/* The arena manager: every arena of a heap family and its free pools,
 * behind one mutex (obmi_arenas_lock in thread.c), and the purge policy
 * (purge.c). */
struct obmi_arenas {
    pthread_mutex_t lock;
    obmi_arena *usable;                              /* free pools, fewest first */
    obmi_arena *nfp2lasta[OBMI_POOLS_PER_ARENA + 1]; /* last in usable with n free */
    obmi_arena *all;                                 /* every mapped arena */
    obmi_arena *dirty, *dirtylast;                   /* arenas with dirty pools */
    size_t nspare;                                   /* spares: arenas with all 64 pools free */
    size_t narenas_current;                          /* mapped now */
    size_t narenas_highwater;                        /* most mapped at once */
    size_t narenas_allocated_total;                  /* arenas mapped, ever */
    size_t narenas_released_total;                   /* arenas unmapped, ever */
    /* purge policy, set by obmi_arenas_init or obmi_init */
    long purge_delay_ms;     /* purge pools free this long; 0 at once, -1 never */
    uint32_t arena_keep;     /* entirely free arenas kept mapped past the decay */
    uint8_t purge_advice;    /* enum obmi_purge_advice */
    bool dirtied;            /* a pool became dirty since the last decay check */
    uint64_t (*clock)(void); /* milliseconds, monotonic; tests inject their own */
    uint64_t next_tick_ms;   /* the next decay tick is due */
    _Atomic uint64_t ticks;  /* decay ticks, ever: heaps expire what they keep on them */
    bool expiring;           /* a heap armed its expiry: tick even with no pool dirty */
    uint64_t last_dirtied_ms;
    _Atomic uint64_t due_ms; /* next_tick_ms, or UINT64_MAX when no tick is needed: read
                                without the lock by obmi_arenas_decay_due */
    /* purge counts */
    size_t pools_purged;       /* purged now */
    size_t purges_total;       /* madvise calls, ever */
    size_t pools_purged_total; /* pools purged, ever */
};

/* Heap states (thread.c). Only the holder of OWNED or CLAIMED touches the
 * heap's rings; the change of holder is a CAS on `owner`. */
enum obmi_heap_owner {
    OBMI_HEAP_OWNED = 0,     /* a running thread's heap (or a test's value) */
    OBMI_HEAP_ABANDONED = 1, /* its thread ended; waiting to be adopted */
    OBMI_HEAP_CLAIMED = 2,   /* abandoned, being collected by a remote freer */
    OBMI_HEAP_DEAD = 3,      /* in a fork child: its thread vanished mid-update */
};

/* Events counted by a heap, written only by its holder. */
struct obmi_heap_counts {
    size_t mallocs[OBMI_NCLASSES];
    size_t frees[OBMI_NCLASSES];        /* local frees and collected remote ones */
    size_t remote_frees[OBMI_NCLASSES]; /* collected remote frees */
    size_t pools_taken;                 /* from the cache or the arenas, ever */
    size_t pools_returned;              /* to the cache or the arenas, ever */
    /* The slow paths, each kind counted where it happens (heap.c). */
    size_t slow_mallocs;      /* obmi_heap_malloc_slow calls */
    size_t slow_frees;        /* obmi_heap_free_slow calls */
    size_t carves;            /* never-used blocks carved into a free list */
    size_t remote_collects;   /* remote lists taken in (non-empty) */
    size_t used_to_full;      /* pools retired FULL (malloc goes on to the next pool) */
    size_t full_to_used;      /* FULL pools back on their ring */
    size_t emptied;           /* pools left with nothing in use */
    size_t pools_from_arenas; /* of pools_taken: under the manager lock */
    size_t pools_to_arenas;   /* of pools_returned, and cached pools flushed: likewise */
    size_t adoptions;         /* times a new thread adopted this heap */
    size_t large[2]; /* blocks taken from [0] and given back to [1] the backing allocator */
};

/* A heap: the usedpools rings of every class, where its pools come from,
 * and what remote frees have queued. A value: tests make as many as they
 * like; thread.c makes one per thread. Aligned to two cache lines (the
 * adjacent-line prefetcher's pair), so two threads' heaps share none. */
struct __attribute__((aligned(128))) obmi_heap {
    obmi_pool *usedpools[OBMI_NCLASSES]; /* ring heads; &obmi_pool_empty if none */
    obmi_arenas *arenas;                 /* where this heap takes pools from */
    _Atomic(obmi_pool *) pending;        /* pools queued by remote frees (heap.c) */
    obmi_pool *cache;                    /* EMPTY small pools kept for reuse, via nextpool */
    uint32_t ncached;
    uint32_t cache_max; /* 0: every empty pool goes straight back */
    size_t npools;      /* pools in service (USED or FULL) */
    /* EMPTY medium pools kept for reuse, whole runs, by size: 16 KiB << i */
    obmi_pool *run_cache[OBMI_RUN_SIZES];
    uint32_t run_cache_pages; /* pages in run_cache */
    size_t run_pages;         /* pages of the medium pools in service */
    uint64_t ticks_seen;      /* the manager's ticks at this heap's last look (heap_expire_due) */
    bool expire_armed;        /* a tick seen: the next one expires the retired and cached pools */
    bool abandoned;           /* no owner: keep nothing, notify on every pool */
    _Atomic int owner;        /* enum obmi_heap_owner */
    obmi_heap *allnext;       /* every heap made by thread.c */
    obmi_heap *nextabandoned; /* thread.c's abandoned list */
    struct obmi_heap_counts counts;
};

#endif /* OBM_TYPES_H */
