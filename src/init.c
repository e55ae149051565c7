/* The process heap, its lock, start-up and fork.
 *
 * Everything malloc needs is statically initialised, so the first call may
 * come before any constructor runs (from ld.so or libc) and simply works.
 * The constructor then does what must not happen inside malloc: reading the
 * environment, registering the fork handlers (pthread_atfork may allocate)
 * and resolving the backing allocator.
 */
#include <pthread.h>

#include "internal.h"

#define EMPTY_RINGS                                                                                \
    {                                                                                              \
        [0 ... OBMI_NCLASSES - 1] = &obmi_pool_empty                                               \
    }

obmi_arenas obmi_main_arenas; /* all zero is an empty manager */
obmi_heap obmi_main_heap = {.usedpools = EMPTY_RINGS, .arenas = &obmi_main_arenas};

pthread_mutex_t obmi_heap_lock = PTHREAD_MUTEX_INITIALIZER;

/* fork(): hold the lock across it so the child never inherits a heap in
 * the middle of an update; the child, single-threaded, starts a new lock.
 *
 * Lock order: stdio's list lock, then the heap lock. glibc's fork runs these
 * handlers first and only then takes the stdio list lock, so holding the
 * heap lock alone would deadlock against a thread in fflush(NULL) (holding
 * the list lock, waiting for a FILE) and a thread in getline (holding that
 * FILE, waiting in realloc for the heap lock). The list lock is recursive,
 * so fork taking it again is fine. */
void _IO_list_lock(void);
void _IO_list_unlock(void);
void _IO_list_resetlock(void);

static void fork_prepare(void)
{
    _IO_list_lock();
    obmi_lock();
}

static void fork_parent(void)
{
    obmi_unlock();
    _IO_list_unlock();
}

static void fork_child(void)
{
    pthread_mutex_init(&obmi_heap_lock, NULL);
    _IO_list_resetlock();
}

static void print_config(void)
{
    obmi_msg m = {.len = 0};
    obmi_msg_str(&m, "obm: version " OBM_VERSION_STRING ", classes ");
    obmi_msg_dec(&m, OBMI_NCLASSES);
    obmi_msg_str(&m, " x 16..");
    obmi_msg_dec(&m, OBMI_SMALL_MAX);
    obmi_msg_str(&m, " B, pool ");
    obmi_msg_dec(&m, OBMI_POOL_SIZE);
    obmi_msg_str(&m, " B, arena ");
    obmi_msg_dec(&m, OBMI_ARENA_SIZE / 1024);
    obmi_msg_str(&m, obmi_debug ? " KiB, debug build" : " KiB");
    obmi_msg_emit(&m);
}

void obmi_init(void)
{
    static _Atomic int done;
    if (atomic_exchange(&done, 1))
        return;
    obmi_options_init();
    obmi_backing_init();
    pthread_atfork(fork_prepare, fork_parent, fork_child);
    if (obmi_option(OBMI_OPTION_VERBOSE))
        print_config();
}

__attribute__((constructor)) static void obmi_constructor(void)
{
    obmi_init();
}
