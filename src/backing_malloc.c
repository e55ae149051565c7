/* The backing allocator of libobm: the process's own malloc, whatever it is.
 * libobm never replaces malloc, so these calls cannot come back into obm
 * (unless the drop-in is also preloaded, in which case they reach its
 * large path, which is glibc). */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include "internal.h"

void *obmi_backing_malloc(size_t size)
{
    return malloc(size);
}

void *obmi_backing_calloc(size_t count, size_t size)
{
    return calloc(count, size);
}

void *obmi_backing_realloc(void *p, size_t size)
{
    return realloc(p, size);
}

void obmi_backing_free(void *p)
{
    free(p);
}

void *obmi_backing_memalign(size_t alignment, size_t size)
{
    void *p;
    int rc = posix_memalign(&p, alignment, size);
    if (rc != 0) {
        errno = rc;
        return NULL;
    }
    return p;
}

size_t obmi_backing_usable_size(void *p)
{
    return malloc_usable_size(p);
}

/* The process's malloc, whatever it is, through glibc's interface: the
 * whole process's blocks, not only libobm's. */
size_t obmi_backing_bytes_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

void obmi_backing_init(void)
{
}

/* Nothing of the process's malloc calls into libobm: no lock to order. */
void obmi_backing_fork_prepare(void)
{
}

void obmi_backing_fork_parent(void)
{
}

void obmi_backing_fork_child(void)
{
}
