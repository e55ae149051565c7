/* The backing allocator of the drop-in: glibc's malloc, reached through the
 * __libc_* entry points glibc exports for exactly this purpose, so large and
 * over-aligned blocks are glibc's own and glibc's pointers can be handed
 * back to it.
 *
 * glibc exports no __libc_malloc_usable_size, and our own malloc_usable_size
 * hides its public one, so we find glibc's function by looking it up in
 * libc.so's dynamic symbol table (GNU hash) through dl_iterate_phdr, which
 * neither allocates nor calls dlsym. Under valgrind the looked-up address is
 * redirected like any call into libc, so the answer stays right there too.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <string.h>

#include "internal.h"

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void __libc_free(void *p);
extern void *__libc_memalign(size_t alignment, size_t size);

void *obmi_backing_malloc(size_t size)
{
    return __libc_malloc(size);
}

void *obmi_backing_calloc(size_t count, size_t size)
{
    return __libc_calloc(count, size);
}

void *obmi_backing_realloc(void *p, size_t size)
{
    return __libc_realloc(p, size);
}

void obmi_backing_free(void *p)
{
    __libc_free(p);
}

void *obmi_backing_memalign(size_t alignment, size_t size)
{
    return __libc_memalign(alignment, size);
}

/* ---- finding glibc's malloc_usable_size ---- */

typedef size_t (*usable_size_fn)(void *);

struct libc_lookup {
    const char *name;
    void *found;
};

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

/* A d_ptr is already relocated by ld.so on most targets, and not on some
 * (read-only dynamic sections): accept both. */
static uintptr_t dyn_addr(const struct dl_phdr_info *info, ElfW(Addr) v)
{
    return v < info->dlpi_addr ? info->dlpi_addr + v : v;
}

static int libc_lookup_object(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct libc_lookup *q = data;
    if (info->dlpi_name == NULL || strstr(info->dlpi_name, "/libc.so") == NULL)
        return 0;
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (dyn == NULL)
        return 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const uint32_t *gnuhash = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        if (dyn->d_tag == DT_SYMTAB)
            symtab = (const ElfW(Sym) *)dyn_addr(info, dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_STRTAB)
            strtab = (const char *)dyn_addr(info, dyn->d_un.d_ptr);
        else if (dyn->d_tag == DT_GNU_HASH)
            gnuhash = (const uint32_t *)dyn_addr(info, dyn->d_un.d_ptr);
    }
    if (symtab == NULL || strtab == NULL || gnuhash == NULL)
        return 0;

    /* GNU hash: nbuckets, symoffset, bloom size, bloom shift, bloom words,
     * buckets, then one chain word per symbol from symoffset on. */
    uint32_t nbuckets = gnuhash[0], symoffset = gnuhash[1], bloom_size = gnuhash[2];
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)&gnuhash[4] + bloom_size);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t h = gnu_hash(q->name);
    uint32_t i = buckets[h % nbuckets];
    if (i < symoffset)
        return 0;
    for (;; i++) {
        uint32_t h2 = chain[i - symoffset];
        const ElfW(Sym) *s = &symtab[i];
        if ((h2 | 1) == (h | 1) && strcmp(q->name, strtab + s->st_name) == 0 &&
            s->st_shndx != SHN_UNDEF) {
            q->found = (void *)(info->dlpi_addr + s->st_value);
            return 1;
        }
        if (h2 & 1)
            return 0;
    }
}

static _Atomic(usable_size_fn) libc_usable_size;

static usable_size_fn resolve_usable_size(void)
{
    struct libc_lookup q = {.name = "malloc_usable_size", .found = NULL};
    dl_iterate_phdr(libc_lookup_object, &q);
    if (q.found == NULL)
        obmi_fatal("cannot find glibc's malloc_usable_size in libc.so");
    usable_size_fn fn = (usable_size_fn)q.found;
    atomic_store_explicit(&libc_usable_size, fn, memory_order_release);
    return fn;
}

size_t obmi_backing_usable_size(void *p)
{
    usable_size_fn fn = atomic_load_explicit(&libc_usable_size, memory_order_acquire);
    if (OBMI_UNLIKELY(fn == NULL))
        fn = resolve_usable_size();
    return fn(p);
}

void obmi_backing_init(void)
{
    if (atomic_load_explicit(&libc_usable_size, memory_order_acquire) == NULL)
        resolve_usable_size();
}
