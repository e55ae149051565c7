/* The bugs memcheck must see in obm's blocks (tests/dropin/memcheck.sh):
 * a plain program, not linked to obm, run under valgrind with the drop-in
 * preloaded. One mode per run:
 *
 *   uaf            malloc(40), free, then read byte 3
 *   leak           malloc(24), and the only pointer to it dropped
 *   overflow-next  write one byte past malloc_usable_size into the next
 *                  block of its pool, never handed out
 *   overflow-tail  the same from the last block of a pool, into its tail
 *   clean          a few thousand mallocs, callocs, reallocs and frees of
 *                  1..2000 bytes, every byte written and checked: no bug
 *
 * Each mode first prints the addresses the script expects in valgrind's
 * report, after checking that obm serves them (obm_owns, by dlsym). Output
 * goes through write(2): stdio would allocate a buffer of its own.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define POOL_SIZE 4096 /* OBM_POOL_SIZE */

static int (*owns_fn)(const void *);

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0 && write(STDOUT_FILENO, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf) < 0)
        _exit(2);
}

__attribute__((noreturn)) static void die(const char *why)
{
    say("error: %s\n", why);
    _exit(2);
}

/* A block of n bytes that obm serves, or the run proves nothing. */
static unsigned char *obm_block(size_t n)
{
    unsigned char *p = malloc(n);
    if (p == NULL || !owns_fn(p))
        die("malloc did not give a block of obm's");
    return p;
}

static void mode_uaf(void)
{
    unsigned char *p = obm_block(40);
    memset(p, 1, 40);
    say("block %p usable %zu\n", (void *)p, malloc_usable_size(p));
    free(p);
    volatile unsigned char *v = p;
    say("read %d\n", v[3]); /* memcheck: invalid read of size 1 */
}

/* noinline: no register or stack slot of main's keeps the pointer. */
__attribute__((noinline)) static void leak_one(void)
{
    unsigned char *p = obm_block(24);
    memset(p, 2, 24);
    say("leaked block usable %zu\n", malloc_usable_size(p));
    p = NULL;
}

static void mode_leak(void)
{
    leak_one();
    /* Clobbers the registers leak_one left its pointer in. */
    say("done\n");
}

/* The first block of a pool of 496-byte blocks (class 30): nothing else in
 * this process allocates 481..496 bytes, so its neighbour is never handed
 * out. */
static void mode_overflow_next(void)
{
    unsigned char *p = obm_block(490);
    size_t usable = malloc_usable_size(p);
    if ((uintptr_t)p % POOL_SIZE + 2 * usable > POOL_SIZE)
        die("the block is the last of its pool");
    say("block %p usable %zu\n", (void *)p, usable);
    volatile unsigned char *v = p;
    v[usable] = 3; /* memcheck: invalid write of size 1 */
    free(p);
}

/* 512-byte blocks (class 31) until one is the last of its pool: 7 fit in
 * a pool, after a 64-byte header, and 448 bytes of tail follow the last. */
static void mode_overflow_tail(void)
{
    unsigned char *held[8];
    unsigned n = 0;
    unsigned char *p;
    for (;;) {
        p = obm_block(512);
        if ((uintptr_t)p % POOL_SIZE + 2 * malloc_usable_size(p) > POOL_SIZE)
            break;
        if (n == 8)
            die("no block of 512 bytes ends its pool");
        held[n++] = p;
    }
    size_t usable = malloc_usable_size(p);
    say("block %p usable %zu\n", (void *)p, usable);
    volatile unsigned char *v = p;
    v[usable] = 4; /* memcheck: invalid write of size 1 */
    free(p);
    while (n > 0)
        free(held[--n]);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static unsigned char tag_byte(const void *p, size_t i)
{
    return (unsigned char)(((uintptr_t)p >> 4) * 31 + i);
}

static void fill(unsigned char *p, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        p[i] = tag_byte(p, i);
}

/* Bytes [0, n) of p were written by fill(q, ...) at address q. */
static void check(const unsigned char *p, const void *q, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != tag_byte(q, i))
            die("a block lost its contents");
}

/* Mostly obm's sizes, 1 in 8 for the backing allocator (up to 2000). */
static size_t random_size(void)
{
    uint64_t r = next_random();
    return r % 8 == 0 ? 513 + (size_t)(r >> 8) % 1488 : 1 + (size_t)(r >> 8) % 512;
}

static void mode_clean(void)
{
    enum { SLOTS = 256, OPS = 6000 };
    static unsigned char *slot[SLOTS];
    static size_t len[SLOTS];
    unsigned ops[3] = {0, 0, 0}, owned = 0;
    for (unsigned op = 0; op < OPS; op++) {
        unsigned i = (unsigned)(next_random() % SLOTS);
        size_t n = random_size();
        if (slot[i] == NULL) {
            int zeroed = next_random() % 4 == 0;
            slot[i] = zeroed ? calloc(1, n) : malloc(n);
            if (slot[i] == NULL)
                die("out of memory");
            if (zeroed)
                for (size_t k = 0; k < n; k++)
                    if (slot[i][k] != 0)
                        die("calloc gave a byte that is not zero");
            fill(slot[i], 0, n);
            len[i] = n;
            owned += owns_fn(slot[i]) != 0;
            ops[0]++;
        } else if (next_random() % 2 == 0) {
            /* realloc keeps the contents up to the smaller size. */
            unsigned char *old = slot[i], *p = realloc(old, n);
            if (p == NULL)
                die("out of memory");
            size_t kept = len[i] < n ? len[i] : n;
            check(p, old, kept);
            /* Retag the whole block at its new address. */
            fill(p, 0, n);
            slot[i] = p;
            len[i] = n;
            ops[1]++;
        } else {
            check(slot[i], slot[i], len[i]);
            free(slot[i]);
            slot[i] = NULL;
            ops[2]++;
        }
    }
    for (unsigned i = 0; i < SLOTS; i++)
        free(slot[i]);
    if (owned == 0)
        die("obm served no block");
    say("clean: %u mallocs (%u from obm), %u reallocs, %u frees\n", ops[0], owned, ops[1], ops[2]);
}

int main(int argc, char **argv)
{
    owns_fn = (int (*)(const void *))dlsym(RTLD_DEFAULT, "obm_owns");
    if (owns_fn == NULL)
        die("obm_owns not found: run with LD_PRELOAD=libobmalloc.so");
    const char *mode = argc == 2 ? argv[1] : "";
    if (strcmp(mode, "uaf") == 0)
        mode_uaf();
    else if (strcmp(mode, "leak") == 0)
        mode_leak();
    else if (strcmp(mode, "overflow-next") == 0)
        mode_overflow_next();
    else if (strcmp(mode, "overflow-tail") == 0)
        mode_overflow_tail();
    else if (strcmp(mode, "clean") == 0)
        mode_clean();
    else
        die("usage: uaf uaf|leak|overflow-next|overflow-tail|clean");
    return 0;
}
