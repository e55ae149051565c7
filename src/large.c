/* Requests obm does not serve from pools (over 512 bytes, or aligned to
 * more than 16) go to the backing allocator, counted here so that the
 * statistics show what is held there. Like every event count, these live
 * in the calling thread's heap; a thread that has no heap (it never made a
 * small request, or it is ending) counts in a shared atomic set instead.
 * Sizes are the backing allocator's usable sizes, known again at free. */
#include <errno.h>

#include "internal.h"

static struct {
    _Atomic size_t events[2], bytes[2];
} unowned;

/* One block of n bytes taken (OBMI_LARGE_ALLOC) or given back. */
static void count(int what, size_t n)
{
    obmi_heap *heap = obmi_tls_heap;
    if (OBMI_LIKELY(heap != &obmi_heap_empty)) {
        heap->counts.large[what]++;
        heap->counts.large_bytes[what] += n;
    } else {
        atomic_fetch_add_explicit(&unowned.events[what], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&unowned.bytes[what], n, memory_order_relaxed);
    }
}

static void count_alloc(void *p)
{
    if (p != NULL)
        count(OBMI_LARGE_ALLOC, obmi_backing_usable_size(p));
}

void *obmi_large_malloc(size_t size)
{
    void *p = obmi_backing_malloc(size);
    count_alloc(p);
    return p;
}

void *obmi_large_calloc(size_t nmemb, size_t size)
{
    void *p = obmi_backing_calloc(nmemb, size);
    count_alloc(p);
    return p;
}

void *obmi_large_memalign(size_t alignment, size_t size)
{
    void *p = obmi_backing_memalign(alignment, size);
    count_alloc(p);
    return p;
}

/* Counted as a free and an allocation, when it succeeds. */
void *obmi_large_realloc(void *p, size_t size)
{
    size_t old = obmi_backing_usable_size(p);
    void *q = obmi_backing_realloc(p, size);
    if (q != NULL) {
        count(OBMI_LARGE_FREE, old);
        count_alloc(q);
    }
    return q;
}

/* Preserves errno, as every free does. */
void obmi_large_free(void *p)
{
    int saved = errno;
    if (OBMI_UNLIKELY((uintptr_t)p % OBMI_ALIGNMENT != 0)) {
        obmi_backing_free(p); /* no block of anyone's: the backing allocator's own check */
        errno = saved;
        return;
    }
    count(OBMI_LARGE_FREE, obmi_backing_usable_size(p));
    obmi_backing_free(p);
    errno = saved;
}

void obmi_large_sum_unowned(struct obmi_heap_counts *sum)
{
    for (int i = 0; i < 2; i++) {
        sum->large[i] += atomic_load_explicit(&unowned.events[i], memory_order_relaxed);
        sum->large_bytes[i] += atomic_load_explicit(&unowned.bytes[i], memory_order_relaxed);
    }
}
