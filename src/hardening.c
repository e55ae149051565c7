/* Hardening on by default: the secrets behind the encoded free-list links
 * and the freed key, and the reports of what the checks find.
 *
 * What is checked where (types.h, HARDENING, has the why):
 *   free, realloc, malloc_usable_size   the pointer is a carved block start
 *                                       of a pool in service (api.c)
 *   the same, block carrying the key    it is not on its pool's lists
 *                                       (heap.c, obmi_pool_holds_free)
 *   malloc                              the list head is in its pool, past
 *                                       the header, 16-aligned; the slow
 *                                       path and every list walk check the
 *                                       block boundary too
 *
 * Reports are one line, formatted without stdio and written with one
 * write(2), then abort(); OBM_ON_ERROR=report prints the line, counts it
 * and returns, and the caller leaks the block instead of touching it.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Fixed values until obmi_secret_init runs: programs that make their own
 * heaps and arenas (the unit tests) work with these. */
uintptr_t obmi_link_secret = 0x5bd1e9955bd1e995u;
uintptr_t obmi_free_key = 0x9e3779b97f4a7c15u;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9u;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* getrandom(2) when it answers at once; else the kernel's AT_RANDOM bytes
 * mixed with the clock and addresses that ASLR places. */
static void random_words(uint64_t out[2])
{
    if (syscall(SYS_getrandom, out, 2 * sizeof out[0], 1 /* GRND_NONBLOCK */) ==
        (long)(2 * sizeof out[0]))
        return;
    const uint64_t *at = (const uint64_t *)getauxval(AT_RANDOM);
    struct timespec ts = {0, 0};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)&ts ^
                    (uintptr_t)&obmi_link_secret;
    out[0] = mix64(seed ^ (at != NULL ? at[0] : 0));
    out[1] = mix64(out[0] ^ (at != NULL ? at[1] : 0) ^ (uintptr_t)random_words);
}

/* Before the first arena of the process is mapped, so no link or key
 * exists yet. Managers in several threads may get there together: one
 * sets the words, the others wait for it. */
void obmi_secret_init(void)
{
    static _Atomic int state; /* 0 not yet, 1 being set, 2 set */
    int expect = 0;
    if (atomic_load_explicit(&state, memory_order_acquire) == 2)
        return;
    if (!atomic_compare_exchange_strong(&state, &expect, 1)) {
        while (atomic_load_explicit(&state, memory_order_acquire) != 2)
            ;
        return;
    }
    int saved = errno;
    uint64_t w[2];
    random_words(w);
    errno = saved;
    obmi_link_secret = (uintptr_t)w[0];
    obmi_free_key = (uintptr_t)(w[1] | 1); /* never 0, the key of a block in use */
    obmi_secure_init();                    /* before any block, too */
    atomic_store_explicit(&state, 2, memory_order_release);
}

/* ---- reports ---- */

static _Atomic size_t error_counts[OBMI_ERROR_COUNT];

size_t obmi_error_count(obmi_error e)
{
    return atomic_load_explicit(&error_counts[e], memory_order_relaxed);
}

/* Counts the error; true when the process goes on (OBM_ON_ERROR=report). */
static bool error_counted(obmi_error e)
{
    atomic_fetch_add_explicit(&error_counts[e], 1, memory_order_relaxed);
    return obmi_option(OBMI_OPTION_ON_ERROR) == OBMI_ON_ERROR_REPORT;
}

static void msg_start(obmi_msg *m, const char *func, const char *what)
{
    obmi_msg_str(m, "obm: ");
    obmi_msg_str(m, func);
    obmi_msg_str(m, "(): ");
    obmi_msg_str(m, what);
}

/* "class 1 of 32 bytes" */
static void msg_class(obmi_msg *m, const obmi_pool *pool)
{
    unsigned c = obmi_class_bounded(__atomic_load_n(&pool->szidx, __ATOMIC_RELAXED));
    obmi_msg_str(m, "class ");
    obmi_msg_dec(m, c);
    obmi_msg_str(m, " of ");
    obmi_msg_dec(m, obmi_classes[c].size);
    obmi_msg_str(m, " bytes");
}

static void finish(obmi_msg *m, bool go_on)
{
    obmi_msg_emit(m);
    if (!go_on)
        abort();
}

void obmi_report_invalid(const char *func, const void *p)
{
    bool go_on = error_counted(OBMI_ERROR_INVALID_POINTER);
    obmi_msg m = {.len = 0};
    msg_start(&m, func, "invalid pointer ");
    obmi_msg_hex(&m, (uintptr_t)p);
    finish(&m, go_on);
}

void obmi_report_block(obmi_error e, const char *func, const void *p, const obmi_pool *pool)
{
    bool go_on = error_counted(e);
    const char *what = e == OBMI_ERROR_WRITE_AFTER_FREE ? "write after free detected (ptr="
                       : e == OBMI_ERROR_OVERFLOW       ? "buffer overflow detected (ptr="
                       : func[0] == 'f'                 ? "double free detected (ptr=" /* free* */
                                                        : "pointer already freed (ptr=";
    obmi_msg m = {.len = 0};
    msg_start(&m, func, what);
    obmi_msg_hex(&m, (uintptr_t)p);
    obmi_msg_str(&m, ", ");
    msg_class(&m, pool);
    obmi_msg_str(&m, ", pool ");
    obmi_msg_hex(&m, (uintptr_t)pool);
    obmi_msg_str(&m, ")");
    finish(&m, go_on);
}

void obmi_report_corrupted(const char *func, const obmi_pool *pool)
{
    bool go_on = error_counted(OBMI_ERROR_CORRUPTED_LIST);
    obmi_msg m = {.len = 0};
    msg_start(&m, func, "corrupted free list (pool ");
    obmi_msg_hex(&m, (uintptr_t)pool);
    obmi_msg_str(&m, ", ");
    msg_class(&m, pool);
    obmi_msg_str(&m, ")");
    finish(&m, go_on);
}
