/* Checks behind options, compiled in by configure --enable-secure; off
 * until their option says 1 (OBM_JUNK, OBM_CANARY, OBM_RANDOMIZE). In
 * other builds obmi_secure is a constant false and none of this is
 * reached. docs/hardening.md has their measured costs.
 *
 *   junk      a freed block is filled with 0xdf past its link and key,
 *             and checked when it is handed out again: a write after free
 *             is reported by that malloc.
 *   canary    a request takes 8 bytes more; the block's last 8 bytes hold
 *             a value made from the block's address and the per-process
 *             key, checked when it is freed: an overflow past the usable
 *             size is reported by that free.
 *   randomize the blocks of each batch carved from a pool are linked in
 *             random order, so the next block handed out is not the
 *             neighbour of the last.
 *
 * The options are read when the first arena is mapped (obmi_secret_init),
 * before any block exists, so every block is treated alike.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define JUNK 0xdf

unsigned obmi_secure_flags;

static const struct {
    const char *name;
    unsigned flag;
} secure_options[] = {
    {"OBM_JUNK", OBMI_SECURE_JUNK},
    {"OBM_CANARY", OBMI_SECURE_CANARY},
    {"OBM_RANDOMIZE", OBMI_SECURE_RANDOM},
};

void obmi_secure_init(void)
{
    for (size_t i = 0; i < sizeof secure_options / sizeof secure_options[0]; i++) {
        const char *s = getenv(secure_options[i].name);
        obmi_option_id id;
        long v;
        if (s == NULL || *s == '\0' || !obmi_option_parse(secure_options[i].name, s, &id, &v) ||
            v == 0)
            continue; /* a bad value is reported with the other options */
        if (!obmi_secure) {
            obmi_msg m = {.len = 0};
            obmi_msg_str(&m, "obm: ignoring ");
            obmi_msg_str(&m, secure_options[i].name);
            obmi_msg_str(&m, " (this build was not configured with --enable-secure)");
            obmi_msg_emit(&m);
            continue;
        }
        obmi_secure_flags |= secure_options[i].flag;
    }
}

/* Not instrumented by ASan: the bytes of a free block are poisoned. */
__attribute__((no_sanitize("address"))) static void junk_fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ((volatile unsigned char *)p)[i] = JUNK;
}

static bool junk_intact(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != JUNK)
            return false;
    return true;
}

static uintptr_t canary_of(const void *block)
{
    return obmi_free_key ^ ((uintptr_t)block * 0x9e3779b97f4a7c15u); /* odd: 0 only at NULL */
}

/* p, popped from pool, is being handed out: the checkers know it as a
 * block in use already, and its junk is read as defined. */
bool obmi_secure_malloc(obmi_pool *pool, void *p)
{
    size_t size = obmi_classes[pool->szidx].size;
    unsigned char *b = p;
    if (obmi_secure_flags & OBMI_SECURE_JUNK)
        obmi_track_open(b + sizeof(obmi_block), size - sizeof(obmi_block));
    if ((obmi_secure_flags & OBMI_SECURE_JUNK) &&
        !junk_intact(b + sizeof(obmi_block), size - sizeof(obmi_block))) {
        obmi_report_block(OBMI_ERROR_WRITE_AFTER_FREE, "malloc", p, pool);
        return false;
    }
    if (obmi_secure_flags & OBMI_SECURE_CANARY) {
        uintptr_t canary = canary_of(p);
        memcpy(b + size - OBMI_CANARY_BYTES, &canary, sizeof canary);
    }
    return true;
}

/* p, a live block of pool, is being freed. */
bool obmi_secure_free(obmi_pool *pool, void *p, const char *func)
{
    size_t size = obmi_classes[pool->szidx].size;
    unsigned char *b = p;
    if (obmi_secure_flags & OBMI_SECURE_CANARY) {
        uintptr_t canary;
        memcpy(&canary, b + size - OBMI_CANARY_BYTES, sizeof canary);
        if (canary != canary_of(p)) {
            obmi_report_block(OBMI_ERROR_OVERFLOW, func, p, pool);
            return false;
        }
    }
    if (obmi_secure_flags & OBMI_SECURE_JUNK)
        junk_fill(b + sizeof(obmi_block), size - sizeof(obmi_block));
    return true;
}

/* A per-thread xorshift: where blocks land needs no shared state. */
static uint64_t next_random(void)
{
    static __thread uint64_t state;
    if (state == 0)
        state = (obmi_link_secret ^ (uintptr_t)&state) | 1;
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

/* Link the never-used blocks at [off, end) into pool's (empty) free list,
 * in random order when asked, junk-filled when asked. */
void obmi_secure_carve(obmi_pool *pool, uint32_t off, uint32_t end)
{
    uint32_t size = obmi_classes[pool->szidx].size;
    char *base = (char *)pool;
    uint32_t order[OBMI_CARVE_BATCH], n = 0;
    for (uint32_t o = off; o < end && n < OBMI_CARVE_BATCH; o += size)
        order[n++] = o;
    if (n == 0)
        return;
    if (obmi_secure_flags & OBMI_SECURE_RANDOM) {
        for (uint32_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            uint32_t j = (uint32_t)(next_random() % (i + 1));
            uint32_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        obmi_block *b = (obmi_block *)(base + order[i]);
        if (obmi_secure_flags & OBMI_SECURE_JUNK) {
            obmi_track_open((char *)b + sizeof *b, size - sizeof *b);
            junk_fill((unsigned char *)b + sizeof *b, size - sizeof *b);
            obmi_track_noaccess((char *)b + sizeof *b, size - sizeof *b);
        }
        obmi_block_set_free(b, i + 1 < n ? (obmi_block *)(base + order[i + 1]) : NULL);
    }
    pool->freeblock = (obmi_block *)(base + order[0]);
}
