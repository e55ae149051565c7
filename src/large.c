/* Requests obm does not serve from pools (over 512 bytes, or aligned to
 * more than 16) go to the backing allocator. The only toll is a count of
 * each block taken and given back, kept in the calling thread's heap (a
 * thread that has no heap, because it never made a small request or it is
 * ending, counts in a shared atomic pair instead). Nothing of a block is
 * read here: a free goes to the backing allocator untouched, so its own
 * checks see a double or invalid free first (glibc prints its message and
 * aborts), and the bytes held are the backing allocator's own count, read
 * when the statistics are taken (obmi_backing_bytes_in_use). */
#include <errno.h>

#include "internal.h"

static _Atomic size_t unowned[2];

/* One block taken (OBMI_LARGE_ALLOC) or given back. */
static void count(int what)
{
    obmi_heap *heap = obmi_tls_heap;
    if (OBMI_LIKELY(heap != &obmi_heap_empty))
        heap->counts.large[what]++;
    else
        atomic_fetch_add_explicit(&unowned[what], 1, memory_order_relaxed);
}

static void *counted(void *p)
{
    if (p != NULL)
        count(OBMI_LARGE_ALLOC);
    return p;
}

void *obmi_large_malloc(size_t size)
{
    return counted(obmi_backing_malloc(size));
}

void *obmi_large_calloc(size_t nmemb, size_t size)
{
    return counted(obmi_backing_calloc(nmemb, size));
}

void *obmi_large_memalign(size_t alignment, size_t size)
{
    return counted(obmi_backing_memalign(alignment, size));
}

/* Counted as a free and an allocation, when it succeeds. */
void *obmi_large_realloc(void *p, size_t size)
{
    void *q = obmi_backing_realloc(p, size);
    if (q != NULL) {
        count(OBMI_LARGE_FREE);
        count(OBMI_LARGE_ALLOC);
    }
    return q;
}

/* Preserves errno, as every free does. */
void obmi_large_free(void *p)
{
    int saved = errno;
    count(OBMI_LARGE_FREE);
    obmi_backing_free(p);
    errno = saved;
}

void obmi_large_sum_unowned(struct obmi_heap_counts *sum)
{
    for (int i = 0; i < 2; i++)
        sum->large[i] += atomic_load_explicit(&unowned[i], memory_order_relaxed);
}
