/* A heap per thread: the TLS pointer, making, abandoning and adopting
 * heaps, collecting abandoned ones, the arena manager's lock, and fork.
 *
 * A thread starts on obmi_heap_empty; its first malloc reaches
 * obmi_thread_malloc_first, which adopts an abandoned heap or makes a new
 * one (heaps come from mmap'd slabs and are never freed), and registers it
 * under a pthread key whose destructor abandons it when the thread ends.
 * The key is created before the first heap exists, so its index is low and
 * its slot lives in the thread descriptor: pthread_setspecific then never
 * calls calloc (and if it ever does, the new heap serves that call).
 *
 * Who may touch a heap's rings is decided by heap->owner:
 *
 *   OWNED      by its thread, until the key destructor runs; then
 *   ABANDONED  on the abandoned list, where a new thread adopts it (CAS to
 *              OWNED under the manager lock) before any heap is made, and
 *   CLAIMED    briefly, by a thread whose remote free queued one of its
 *              pools (CAS from ABANDONED): it drains the pending list,
 *              giving back every pool emptied that way, and puts it back.
 *
 * Abandoning flags every remaining pool NOTIFY (heap.c), so each remote
 * free into an abandoned heap queues its pool and gets it collected: a
 * program that starts and ends threads forever, each leaving blocks for
 * others to free, keeps a bounded number of heaps and arenas. A remote
 * freer that queued a pool and the thread that set ABANDONED (or put a
 * claimed heap back) each store one word then load the other's (pending,
 * owner), all seq_cst: at least one of them sees the other's store, so no
 * queued pool is left behind.
 *
 * malloc and free keep working after the destructor ran (in later key
 * destructors and in libc's own thread clean-up): the thread is back on
 * obmi_heap_empty, its frees are remote frees, and each malloc borrows a
 * heap for that one call (adopts or makes one, and abandons it again).
 * Re-arming the key instead would leak a heap taken in glibc's last
 * destructor round, after which no destructor runs.
 *
 * fork(): prepare takes the backing allocator's locks, then the manager
 * lock (the only obm lock), in that order. The child keeps the forking
 * thread's heap; every other heap that was OWNED or CLAIMED belonged to a
 * thread that does not exist there and may have stopped mid-update, so it
 * becomes DEAD: never adopted, never collected (its memory is not reused
 * in the child). Remote frees into DEAD heaps stay safe: they only push.
 */
#include <errno.h>
#include <pthread.h>

#include "internal.h"

#define EMPTY_RINGS                                                                                \
    {                                                                                              \
        [0 ... OBMI_NCLASSES - 1] = &obmi_pool_empty                                               \
    }

__thread obmi_heap *obmi_tls_heap __attribute__((tls_model("initial-exec"))) = &obmi_heap_empty;

/* Set when the thread's heap destructor has run: the thread is ending. */
static __thread bool tls_exited __attribute__((tls_model("initial-exec")));

/* Never written: every ring is empty, so malloc falls into the slow path,
 * and no pool names it, so every free is remote. */
obmi_heap obmi_heap_empty = {.usedpools = EMPTY_RINGS};

obmi_arenas obmi_main_arenas = OBMI_ARENAS_DEFAULTS;

/* Under the manager lock: every heap made, and the abandoned ones. */
static obmi_heap *all_heaps;
static obmi_heap *abandoned_heaps;
static size_t heaps_made;
static obmi_heap *heap_slab_next, *heap_slab_end;

#define HEAP_SLAB 65536

static pthread_key_t heap_key;
static bool heap_key_ok;

/* ---- the manager lock ----
 *
 * Between fork's prepare handler and the parent or child handler the
 * forking thread holds the manager lock, yet other libraries' fork
 * handlers (glibc runs them in that window, and allows them to malloc)
 * may call obm on that same thread: it re-enters instead of deadlocking. */
static _Atomic bool forking;
static pthread_t fork_owner;

static bool lock_is_mine(void)
{
    return atomic_load_explicit(&forking, memory_order_acquire) &&
           pthread_equal(fork_owner, pthread_self());
}

void obmi_arenas_lock(obmi_arenas *arenas)
{
    if (!lock_is_mine())
        pthread_mutex_lock(&arenas->lock);
}

void obmi_arenas_unlock(obmi_arenas *arenas)
{
    if (!lock_is_mine())
        pthread_mutex_unlock(&arenas->lock);
}

/* ---- heaps ---- */

/* Under the manager lock: an abandoned heap taken over, or NULL. Heaps a
 * remote freer holds right now are skipped; DEAD ones are dropped. */
static obmi_heap *heap_adopt_locked(void)
{
    obmi_heap **link = &abandoned_heaps;
    for (obmi_heap *heap = *link; heap != NULL; heap = *link) {
        int expect = OBMI_HEAP_ABANDONED;
        if (atomic_compare_exchange_strong(&heap->owner, &expect, OBMI_HEAP_OWNED)) {
            *link = heap->nextabandoned;
            return heap;
        }
        if (expect == OBMI_HEAP_DEAD)
            *link = heap->nextabandoned;
        else
            link = &heap->nextabandoned;
    }
    return NULL;
}

/* Under the manager lock. */
static obmi_heap *heap_new_locked(void)
{
    if (heap_slab_next == heap_slab_end) {
        obmi_heap *slab = obmi_os_map(HEAP_SLAB);
        if (slab == NULL)
            return NULL;
        heap_slab_next = slab;
        heap_slab_end = slab + HEAP_SLAB / sizeof(obmi_heap);
    }
    obmi_heap *heap = heap_slab_next++;
    obmi_heap_init(heap, &obmi_main_arenas);
    heap->cache_max = OBMI_HEAP_CACHE;
    heap->allnext = all_heaps;
    all_heaps = heap;
    heaps_made++;
    return heap;
}

static obmi_heap *heap_acquire(void)
{
    obmi_arenas_lock(&obmi_main_arenas);
    obmi_heap *heap = heap_adopt_locked();
    bool adopted = heap != NULL;
    if (!adopted)
        heap = heap_new_locked();
    obmi_arenas_unlock(&obmi_main_arenas);
    if (heap == NULL)
        return NULL;
    if (adopted) {
        heap->abandoned = false;
        heap->counts.adoptions++;
        obmi_heap_collect(heap);
    }
    return heap;
}

static void heap_abandon(obmi_heap *heap)
{
    obmi_heap_abandon_pools(heap);
    obmi_tls_heap = &obmi_heap_empty;
    obmi_arenas_lock(&obmi_main_arenas);
    heap->nextabandoned = abandoned_heaps;
    abandoned_heaps = heap;
    obmi_arenas_unlock(&obmi_main_arenas);
    atomic_store_explicit(&heap->owner, OBMI_HEAP_ABANDONED, memory_order_seq_cst);
    obmi_thread_collect_abandoned(heap); /* what was queued while we still owned it */
}

void obmi_thread_collect_abandoned(obmi_heap *heap)
{
    while (atomic_load_explicit(&heap->pending, memory_order_seq_cst) != NULL) {
        int expect = OBMI_HEAP_ABANDONED;
        if (!atomic_compare_exchange_strong(&heap->owner, &expect, OBMI_HEAP_CLAIMED))
            return; /* adopted (the owner drains) or claimed (the claimer re-checks) */
        obmi_heap_collect(heap);
        atomic_store_explicit(&heap->owner, OBMI_HEAP_ABANDONED, memory_order_seq_cst);
    }
}

static void heap_key_destructor(void *value)
{
    tls_exited = true;
    if (value != NULL && value == obmi_tls_heap)
        heap_abandon(value);
}

void *obmi_thread_malloc_first(unsigned c)
{
    obmi_thread_init();
    obmi_heap *heap = heap_acquire();
    if (heap == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    if (OBMI_UNLIKELY(tls_exited)) { /* borrowed for this one call */
        void *p = obmi_heap_malloc_class(heap, c);
        heap_abandon(heap);
        return p;
    }
    obmi_tls_heap = heap;
    if (heap_key_ok)
        pthread_setspecific(heap_key, heap);
    return obmi_heap_malloc_class(heap, c);
}

/* ---- fork ---- */

static void fork_prepare(void)
{
    obmi_backing_fork_prepare();
    pthread_mutex_lock(&obmi_main_arenas.lock);
    fork_owner = pthread_self();
    atomic_store_explicit(&forking, true, memory_order_release);
}

static void fork_parent(void)
{
    atomic_store_explicit(&forking, false, memory_order_release);
    pthread_mutex_unlock(&obmi_main_arenas.lock);
    obmi_backing_fork_parent();
}

static void fork_child(void)
{
    atomic_store_explicit(&forking, false, memory_order_release);
    /* The forking thread, the child's only one, holds it since prepare:
     * unlocked, not initialised again (undefined for a locked mutex, and
     * ThreadSanitizer then sees the child's next lock as a double lock). */
    pthread_mutex_unlock(&obmi_main_arenas.lock);
    for (obmi_heap *heap = all_heaps; heap != NULL; heap = heap->allnext) {
        if (heap == obmi_tls_heap)
            continue;
        int owner = atomic_load_explicit(&heap->owner, memory_order_relaxed);
        if (owner == OBMI_HEAP_OWNED || owner == OBMI_HEAP_CLAIMED)
            atomic_store_explicit(&heap->owner, OBMI_HEAP_DEAD, memory_order_relaxed);
    }
    obmi_backing_fork_child();
}

/* The key and the fork handlers, before obm hands out its first block.
 * Fork handlers are registered as early as possible: prepare handlers run
 * newest first, so handlers of libraries that start later run before ours
 * and may still malloc or take locks that a mallocing thread holds. */
static void thread_init_once(void)
{
    heap_key_ok = pthread_key_create(&heap_key, heap_key_destructor) == 0;
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void obmi_thread_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, thread_init_once);
}

/* ---- counts ---- */

/* Under the manager lock. Other threads' counts are read while they write
 * them: a snapshot, not synchronised (exact when the process is quiet),
 * hence not instrumented by ThreadSanitizer. */
__attribute__((no_sanitize("thread"))) void obmi_heaps_sum_locked(obmi_heaps_sum *out)
{
    *out = (obmi_heaps_sum){.created = heaps_made};
    struct obmi_heap_counts *sum = &out->counts;
    for (obmi_heap *heap = all_heaps; heap != NULL; heap = heap->allnext) {
        const struct obmi_heap_counts *k = &heap->counts;
        for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
            sum->mallocs[c] += k->mallocs[c];
            sum->frees[c] += k->frees[c];
            sum->remote_frees[c] += k->remote_frees[c];
        }
        sum->pools_taken += k->pools_taken;
        sum->pools_returned += k->pools_returned;
        sum->slow_mallocs += k->slow_mallocs;
        sum->slow_frees += k->slow_frees;
        sum->carves += k->carves;
        sum->remote_collects += k->remote_collects;
        sum->used_to_full += k->used_to_full;
        sum->full_to_used += k->full_to_used;
        sum->emptied += k->emptied;
        sum->pools_from_arenas += k->pools_from_arenas;
        sum->pools_to_arenas += k->pools_to_arenas;
        sum->adoptions += k->adoptions;
        for (int i = 0; i < 2; i++)
            sum->large[i] += k->large[i];
        int owner = atomic_load_explicit(&heap->owner, memory_order_relaxed);
        out->live += owner == OBMI_HEAP_OWNED;
        out->abandoned += owner == OBMI_HEAP_ABANDONED || owner == OBMI_HEAP_CLAIMED;
    }
    obmi_large_sum_unowned(sum);
}
