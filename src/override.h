/* The drop-in: the malloc family of the process is api.c's functions under
 * their C names. Included at the end of api.c in libobmalloc's copy only
 * (OBM_DROPIN); each name is an alias, so a call to malloc is a call to
 * obmi_malloc, with no jump between them. */
#ifndef OBM_OVERRIDE_H
#define OBM_OVERRIDE_H

#define OVERRIDE(internal, name)                                                                   \
    __typeof__(internal) name __attribute__((alias(#internal), visibility("default")))

OVERRIDE(obmi_malloc, malloc);
OVERRIDE(obmi_free, free);
OVERRIDE(obmi_free, cfree);
OVERRIDE(obmi_calloc, calloc);
OVERRIDE(obmi_realloc, realloc);
OVERRIDE(obmi_reallocarray, reallocarray);
OVERRIDE(obmi_posix_memalign, posix_memalign);
OVERRIDE(obmi_aligned_alloc, aligned_alloc);
OVERRIDE(obmi_memalign, memalign);
OVERRIDE(obmi_valloc, valloc);
OVERRIDE(obmi_pvalloc, pvalloc);
/* glibc declares it without const: the same function to the caller. */
size_t malloc_usable_size(void *p)
    __attribute__((alias("obmi_usable_size"), visibility("default")));
/* C23 sized frees: the size is a hint obm does not need. */
OVERRIDE(obmi_free_sized, free_sized);
OVERRIDE(obmi_free_aligned_sized, free_aligned_sized);

#endif /* OBM_OVERRIDE_H */
