/* The arena map: is this address inside one of obm's arenas, and which one?
 *
 * Two levels indexed by the address's arena number (address >> 18): a static
 * root of 2^15 leaf pointers (256 KiB of .bss, only touched pages become
 * resident) and mmap'd leaves of 2^15 arena pointers. Readers take no lock
 * (obmi_arena_map_lookup in internal.h); writers hold the arena lock.
 *
 * Race: a reader may look up a foreign pointer while an arena is being mapped
 * or unmapped elsewhere. It cannot matter: an entry is published before any
 * block of its arena is handed out and cleared before the arena is unmapped,
 * so a pointer the reader legitimately holds always finds the right answer.
 */
#include <errno.h>

#include "internal.h"

_Atomic(obmi_arena **) obmi_arena_map_root[1u << OBMI_MAP_ROOT_BITS];

#define LEAF_ENTRIES (1u << OBMI_MAP_LEAF_BITS)

static obmi_arena **arena_map_slot(uintptr_t base, bool create)
{
    size_t r = base >> (OBMI_ARENA_SHIFT + OBMI_MAP_LEAF_BITS);
    obmi_arena **leaf = atomic_load_explicit(&obmi_arena_map_root[r], memory_order_acquire);
    if (leaf == NULL) {
        if (!create)
            return NULL;
        leaf = obmi_os_map(LEAF_ENTRIES * sizeof(obmi_arena *));
        if (leaf == NULL)
            return NULL;
        atomic_store_explicit(&obmi_arena_map_root[r], leaf, memory_order_release);
    }
    return &leaf[(base >> OBMI_ARENA_SHIFT) & (LEAF_ENTRIES - 1)];
}

int obmi_arena_map_set(uintptr_t base, obmi_arena *arena)
{
    OBMI_ASSERT((base & (OBMI_ARENA_SIZE - 1)) == 0);
    if (base >> OBMI_ADDRESS_BITS) {
        errno = ENOMEM; /* an address the map cannot hold: refuse the arena */
        return -1;
    }
    obmi_arena **slot = arena_map_slot(base, true);
    if (slot == NULL)
        return -1;
    __atomic_store_n(slot, arena, __ATOMIC_RELEASE);
    return 0;
}

void obmi_arena_map_clear(uintptr_t base)
{
    obmi_arena **slot = arena_map_slot(base, false);
    if (slot != NULL)
        __atomic_store_n(slot, (obmi_arena *)NULL, __ATOMIC_RELEASE);
}
