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
#include <malloc.h>
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

/* ---- fork ----
 *
 * stdio calls malloc with its locks held, so its list lock must be taken
 * before the heap lock. glibc's fork takes it itself, but only after the
 * atfork handlers, so holding the heap lock alone deadlocks against a thread
 * in fflush(NULL) (holding the list lock, waiting for a FILE) and one in
 * getline (holding that FILE, waiting in realloc for the heap lock). The
 * list lock is recursive, so fork taking it again is fine. */
void _IO_list_lock(void);
void _IO_list_unlock(void);
void _IO_list_resetlock(void);

void obmi_backing_fork_prepare(void)
{
    _IO_list_lock();
}

void obmi_backing_fork_parent(void)
{
    _IO_list_unlock();
}

void obmi_backing_fork_child(void)
{
    _IO_list_resetlock();
}

/* ---- finding glibc's own functions (malloc_usable_size, malloc_trim) ---- */

typedef size_t (*usable_size_fn)(void *);

struct libc_lookup {
    const char *name;
    void *found;
};

struct dyn_tables {
    const ElfW(Sym) * symtab;
    const char *strtab;
    const uint32_t *gnuhash; /* DT_GNU_HASH, or NULL */
    const uint32_t *hash;    /* DT_HASH (System V), or NULL */
    const ElfW(Half) * versym;
};

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

static uint32_t sysv_hash(const char *s)
{
    uint32_t h = 0;
    for (; *s; s++) {
        h = (h << 4) + (unsigned char)*s;
        h ^= (h >> 24) & 0xf0;
    }
    return h & 0x0fffffff;
}

/* A d_ptr is already relocated by ld.so on most targets, and not on some
 * (read-only dynamic sections): accept both. */
static uintptr_t dyn_addr(const struct dl_phdr_info *info, ElfW(Addr) v)
{
    return v < info->dlpi_addr ? info->dlpi_addr + v : v;
}

/* Symbol i is a definition of name that a plain lookup would bind to: not
 * undefined, not a hidden (non-default) version. */
static bool symbol_matches(const struct dyn_tables *t, uint32_t i, const char *name)
{
    const ElfW(Sym) *s = &t->symtab[i];
    if (s->st_shndx == SHN_UNDEF || strcmp(name, t->strtab + s->st_name) != 0)
        return false;
    return t->versym == NULL || (t->versym[i] & 0x8000) == 0;
}

static int64_t gnu_hash_find(const struct dyn_tables *t, const char *name)
{
    /* nbuckets, symoffset, bloom size, bloom shift, bloom words, buckets,
     * then one chain word per symbol from symoffset on. */
    const uint32_t *g = t->gnuhash;
    uint32_t nbuckets = g[0], symoffset = g[1], bloom_size = g[2];
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)&g[4] + bloom_size);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t h = gnu_hash(name);
    for (uint32_t i = buckets[h % nbuckets]; i >= symoffset; i++) {
        uint32_t h2 = chain[i - symoffset];
        if ((h2 | 1) == (h | 1) && symbol_matches(t, i, name))
            return i;
        if (h2 & 1)
            break;
    }
    return -1;
}

static int64_t sysv_hash_find(const struct dyn_tables *t, const char *name)
{
    const uint32_t *h = t->hash; /* nbucket, nchain, buckets, chains */
    uint32_t nbucket = h[0];
    const uint32_t *buckets = &h[2], *chains = &h[2 + nbucket];
    for (uint32_t i = buckets[sysv_hash(name) % nbucket]; i != STN_UNDEF; i = chains[i])
        if (symbol_matches(t, i, name))
            return i;
    return -1;
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
    struct dyn_tables t = {NULL, NULL, NULL, NULL, NULL};
    for (; dyn->d_tag != DT_NULL; dyn++) {
        uintptr_t a = dyn_addr(info, dyn->d_un.d_ptr);
        if (dyn->d_tag == DT_SYMTAB)
            t.symtab = (const ElfW(Sym) *)a;
        else if (dyn->d_tag == DT_STRTAB)
            t.strtab = (const char *)a;
        else if (dyn->d_tag == DT_GNU_HASH)
            t.gnuhash = (const uint32_t *)a;
        else if (dyn->d_tag == DT_HASH)
            t.hash = (const uint32_t *)a;
        else if (dyn->d_tag == DT_VERSYM)
            t.versym = (const ElfW(Half) *)a;
    }
    if (t.symtab == NULL || t.strtab == NULL)
        return 0;
    int64_t i = t.gnuhash != NULL ? gnu_hash_find(&t, q->name)
                : t.hash != NULL  ? sysv_hash_find(&t, q->name)
                                  : -1;
    if (i < 0)
        return 0;
    const ElfW(Sym) *s = &t.symtab[i];
    void *addr = (void *)(info->dlpi_addr + s->st_value);
    if (ELF64_ST_TYPE(s->st_info) == STT_GNU_IFUNC)
        addr = ((void *(*)(void))addr)(); /* the resolver returns the implementation */
    q->found = addr;
    return 1;
}

/* glibc's own definition of name, past the drop-in's; NULL if none. */
void *obmi_libc_symbol(const char *name)
{
    struct libc_lookup q = {.name = name, .found = NULL};
    dl_iterate_phdr(libc_lookup_object, &q);
    return q.found;
}

static _Atomic(usable_size_fn) libc_usable_size;

static usable_size_fn resolve_usable_size(void)
{
    usable_size_fn fn = (usable_size_fn)obmi_libc_symbol("malloc_usable_size");
    if (fn != NULL)
        atomic_store_explicit(&libc_usable_size, fn, memory_order_release);
    return fn;
}

size_t obmi_backing_usable_size(void *p)
{
    usable_size_fn fn = atomic_load_explicit(&libc_usable_size, memory_order_acquire);
    if (OBMI_UNLIKELY(fn == NULL) && (fn = resolve_usable_size()) == NULL)
        obmi_fatal("cannot find glibc's malloc_usable_size in libc.so");
    return fn(p);
}

/* glibc's own mallinfo2 (the drop-in's reports obm's arenas): its blocks
 * in use and its mmapped ones, which are the drop-in's large blocks and
 * what glibc keeps in its thread cache. */
typedef struct mallinfo2 (*mallinfo2_fn)(void);
static _Atomic(mallinfo2_fn) libc_mallinfo2;

size_t obmi_backing_bytes_in_use(void)
{
    mallinfo2_fn fn = atomic_load_explicit(&libc_mallinfo2, memory_order_acquire);
    if (OBMI_UNLIKELY(fn == NULL)) {
        fn = (mallinfo2_fn)obmi_libc_symbol("mallinfo2");
        if (fn == NULL)
            return 0; /* a glibc before 2.33: not known */
        atomic_store_explicit(&libc_mallinfo2, fn, memory_order_release);
    }
    struct mallinfo2 mi = fn();
    return mi.uordblks + mi.hblkhd;
}

/* Resolved at start-up, outside any malloc call; a failure only matters
 * once a glibc block's size is asked for. */
void obmi_backing_init(void)
{
    if (atomic_load_explicit(&libc_usable_size, memory_order_acquire) == NULL)
        resolve_usable_size();
}
