/* Telling memory checkers which bytes of a pool the program may touch.
 *
 * obm's blocks are carved out of mmap'd arenas, which memcheck and
 * AddressSanitizer see as one big defined area: without help they would
 * miss a use after free of an obm block. So:
 *
 *   - a block handed out is announced (memcheck: MALLOCLIKE_BLOCK, ASan:
 *     unpoisoned), one taken back is withdrawn (FREELIKE_BLOCK, poisoned);
 *   - a pool put into service has its whole block area made inaccessible:
 *     free, never-carved blocks and the tail;
 *   - obm's own words in a free block (its link and key, types.h) are read
 *     and written through obmi_word_peek and obmi_word_poke: under ASan
 *     they are not instrumented, under memcheck they open the word for the
 *     access and restore what it was.
 *
 * Pool headers stay accessible: obm reads them on every call.
 *
 * ASan is on when the compiler instruments for it; memcheck's client
 * requests are compiled in by configure --enable-valgrind (OBM_VALGRIND).
 * Otherwise every function here is empty and costs nothing.
 */
#ifndef OBM_TRACK_H
#define OBM_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef __has_feature
#define __has_feature(x) 0
#endif

#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define OBMI_TRACK_ASAN 1
#include <sanitizer/asan_interface.h>
#elif defined(OBM_VALGRIND)
#define OBMI_TRACK_VALGRIND 1
#include <valgrind/memcheck.h>
#endif

/* For functions that read words another thread may be writing (the
 * double-free scan of a pool it does not own, the statistics walk): no
 * ThreadSanitizer or ASan instrumentation; obmi_word_racy reads one such
 * word. Under memcheck the word is opened and restored as by peek. */
#define OBMI_RACY __attribute__((no_sanitize("thread", "address")))

#if defined(OBMI_TRACK_ASAN)

/* Not instrumented: these words belong to obm while the block is free. */
__attribute__((no_sanitize("address"))) static inline uintptr_t obmi_word_peek(const uintptr_t *w)
{
    return *(const volatile uintptr_t *)w;
}

__attribute__((no_sanitize("address"))) static inline void obmi_word_poke(uintptr_t *w, uintptr_t v)
{
    *(volatile uintptr_t *)w = v;
}

static inline void obmi_track_malloc(void *p, size_t size)
{
    ASAN_UNPOISON_MEMORY_REGION(p, size);
}

static inline void obmi_track_free(void *p, size_t size)
{
    ASAN_POISON_MEMORY_REGION(p, size);
}

static inline void obmi_track_noaccess(void *p, size_t size)
{
    ASAN_POISON_MEMORY_REGION(p, size);
}

/* obm writes or reads a free block's bytes (secure.c), then closes them
 * again with obmi_track_noaccess. */
static inline void obmi_track_open(void *p, size_t size)
{
    ASAN_UNPOISON_MEMORY_REGION(p, size);
}

/* Before an arena is unmapped: the range may be mapped again by anyone. */
static inline void obmi_track_unmap(void *p, size_t size)
{
    ASAN_UNPOISON_MEMORY_REGION(p, size);
}

#elif defined(OBMI_TRACK_VALGRIND)

/* The word may be inaccessible (a free block) or the program's (a block
 * in use, whose bytes may be undefined): read it either way and leave it
 * as it was. VALGRIND_GET_VBITS answers 3 for an inaccessible word.
 * Another thread may free the block between the client requests and the
 * read (the walkers' reads are racy by design, and bounded): this thread
 * reports no error meanwhile. */
static inline uintptr_t obmi_word_peek(const uintptr_t *w)
{
    unsigned char vbits[sizeof(uintptr_t)];
    VALGRIND_DISABLE_ERROR_REPORTING;
    unsigned r = VALGRIND_GET_VBITS(w, vbits, sizeof vbits);
    (void)VALGRIND_MAKE_MEM_DEFINED(w, sizeof *w);
    uintptr_t v = *(const volatile uintptr_t *)w;
    if (r == 3)
        (void)VALGRIND_MAKE_MEM_NOACCESS(w, sizeof *w);
    else if (r == 0)
        (void)VALGRIND_SET_VBITS(w, vbits, sizeof vbits);
    VALGRIND_ENABLE_ERROR_REPORTING;
    return v;
}

/* Only into free blocks, which stay inaccessible to the program. */
static inline void obmi_word_poke(uintptr_t *w, uintptr_t v)
{
    (void)VALGRIND_MAKE_MEM_UNDEFINED(w, sizeof *w);
    *(volatile uintptr_t *)w = v;
    (void)VALGRIND_MAKE_MEM_NOACCESS(w, sizeof *w);
}

static inline void obmi_track_malloc(void *p, size_t size)
{
    VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, 0);
}

static inline void obmi_track_free(void *p, size_t size)
{
    (void)size;
    VALGRIND_FREELIKE_BLOCK(p, 0);
}

static inline void obmi_track_noaccess(void *p, size_t size)
{
    (void)VALGRIND_MAKE_MEM_NOACCESS(p, size);
}

static inline void obmi_track_open(void *p, size_t size)
{
    (void)VALGRIND_MAKE_MEM_DEFINED(p, size);
}

static inline void obmi_track_unmap(void *p, size_t size)
{
    (void)p;
    (void)size; /* memcheck follows munmap itself */
}

#else

static inline uintptr_t obmi_word_peek(const uintptr_t *w)
{
    return *w;
}

/* volatile: two pokes stay two stores (gcc would pair them into a vector
 * store that takes more instructions). */
static inline void obmi_word_poke(uintptr_t *w, uintptr_t v)
{
    *(volatile uintptr_t *)w = v;
}

static inline void obmi_track_malloc(void *p, size_t size)
{
    (void)p;
    (void)size;
}

static inline void obmi_track_free(void *p, size_t size)
{
    (void)p;
    (void)size;
}

static inline void obmi_track_noaccess(void *p, size_t size)
{
    (void)p;
    (void)size;
}

static inline void obmi_track_open(void *p, size_t size)
{
    (void)p;
    (void)size;
}

static inline void obmi_track_unmap(void *p, size_t size)
{
    (void)p;
    (void)size;
}

#endif

#if defined(OBMI_TRACK_VALGRIND)
#define obmi_word_racy(w) obmi_word_peek(w)
#else
#define obmi_word_racy(w) (*(const volatile uintptr_t *)(w))
#endif

/* free reads the header of the page a pointer lies in before it knows the
 * page is obm's (api.c): every page a valid pointer lies in is mapped, but
 * it may hold another allocator's bytes, which a checker would report (a
 * read of a redzone, a race with the program's own writes). Under a checker
 * free asks the arena map first instead. */
#if defined(OBMI_TRACK_ASAN) || defined(OBMI_TRACK_VALGRIND) || defined(__SANITIZE_THREAD__) ||    \
    __has_feature(thread_sanitizer)
static const bool obmi_track_probe_pages = false;
#else
static const bool obmi_track_probe_pages = true;
#endif

#endif /* OBM_TRACK_H */
