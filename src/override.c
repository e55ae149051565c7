/* The drop-in: the malloc family of the process, mapped onto obm's API.
 * Only in libobmalloc; each symbol is a tail call into api.c. */
#include <malloc.h>
#include <stdlib.h>

#include "internal.h"

/* Not declared by every libc's headers. */
void cfree(void *p);
void free_sized(void *p, size_t size);
void free_aligned_sized(void *p, size_t alignment, size_t size);

OBMI_EXPORT void *malloc(size_t size)
{
    return obmi_malloc(size);
}

OBMI_EXPORT void free(void *p)
{
    obmi_free(p);
}

OBMI_EXPORT void cfree(void *p)
{
    obmi_free(p);
}

OBMI_EXPORT void *calloc(size_t count, size_t size)
{
    return obmi_calloc(count, size);
}

OBMI_EXPORT void *realloc(void *p, size_t size)
{
    return obmi_realloc(p, size);
}

OBMI_EXPORT void *reallocarray(void *p, size_t count, size_t size)
{
    return obmi_reallocarray(p, count, size);
}

OBMI_EXPORT int posix_memalign(void **memptr, size_t alignment, size_t size)
{
    return obmi_posix_memalign(memptr, alignment, size);
}

OBMI_EXPORT void *aligned_alloc(size_t alignment, size_t size)
{
    return obmi_aligned_alloc(alignment, size);
}

OBMI_EXPORT void *memalign(size_t alignment, size_t size)
{
    return obmi_memalign(alignment, size);
}

OBMI_EXPORT void *valloc(size_t size)
{
    return obmi_valloc(size);
}

OBMI_EXPORT void *pvalloc(size_t size)
{
    return obmi_pvalloc(size);
}

OBMI_EXPORT size_t malloc_usable_size(void *p)
{
    return obmi_usable_size(p);
}

/* C23 sized frees: the size is a hint obm does not need. */
OBMI_EXPORT void free_sized(void *p, size_t size)
{
    obmi_free_sized(p, size);
}

OBMI_EXPORT void free_aligned_sized(void *p, size_t alignment, size_t size)
{
    obmi_free_aligned_sized(p, alignment, size);
}
