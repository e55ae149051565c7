/* The process heap, its lock, start-up and fork.
 *
 * Everything malloc needs is statically initialised, so the first call may
 * come before any constructor runs (from ld.so or libc) and simply works.
 * The fork handlers are registered by the first slow path, before obm has
 * handed out a single block; the constructor reads the environment and
 * resolves the backing allocator, which must not happen inside malloc.
 */
#include <pthread.h>

#include "internal.h"

#define EMPTY_RINGS                                                                                \
    {                                                                                              \
        [0 ... OBMI_NCLASSES - 1] = &obmi_pool_empty                                               \
    }

obmi_arenas obmi_main_arenas; /* all zero is an empty manager */
obmi_heap obmi_main_heap = {.usedpools = EMPTY_RINGS, .arenas = &obmi_main_arenas};

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;

/* Between fork's prepare handler and the parent or child handler the
 * forking thread holds the heap lock, yet other libraries' fork handlers
 * (glibc runs them in that window, and allows them to malloc) may call
 * obm on that same thread: it re-enters instead of deadlocking. */
static _Atomic bool forking;
static pthread_t fork_owner;

static bool lock_is_mine(void)
{
    return atomic_load_explicit(&forking, memory_order_acquire) &&
           pthread_equal(fork_owner, pthread_self());
}

void obmi_lock(void)
{
    if (!lock_is_mine())
        pthread_mutex_lock(&heap_lock);
}

void obmi_unlock(void)
{
    if (!lock_is_mine())
        pthread_mutex_unlock(&heap_lock);
}

/* fork(): hold the lock across it so the child never inherits a heap in
 * the middle of an update; the child, single-threaded, starts a new lock.
 * The backing allocator's hooks order the locks it needs before ours. */
static void fork_prepare(void)
{
    obmi_backing_fork_prepare();
    pthread_mutex_lock(&heap_lock);
    fork_owner = pthread_self();
    atomic_store_explicit(&forking, true, memory_order_release);
}

static void fork_parent(void)
{
    atomic_store_explicit(&forking, false, memory_order_release);
    pthread_mutex_unlock(&heap_lock);
    obmi_backing_fork_parent();
}

static void fork_child(void)
{
    atomic_store_explicit(&forking, false, memory_order_release);
    pthread_mutex_init(&heap_lock, NULL);
    obmi_backing_fork_child();
}

/* Registered as early as possible: prepare handlers run newest first, so
 * handlers of libraries that start later run before ours and may still
 * malloc or take locks that a mallocing thread holds. */
void obmi_register_fork_handlers(void)
{
    static _Atomic bool done;
    if (!atomic_load_explicit(&done, memory_order_relaxed) && !atomic_exchange(&done, true))
        pthread_atfork(fork_prepare, fork_parent, fork_child);
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
    obmi_register_fork_handlers();
    if (obmi_option(OBMI_OPTION_VERBOSE))
        print_config();
}

__attribute__((constructor)) static void obmi_constructor(void)
{
    obmi_init();
}
