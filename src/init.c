/* Start-up.
 *
 * Everything malloc needs is statically initialised, so the first call may
 * come before any constructor runs (from ld.so or libc) and simply works:
 * a thread's first malloc sets up the thread machinery (thread.c). The
 * constructor reads the environment and resolves the backing allocator,
 * which must not happen inside malloc. The destructor writes the reports
 * the environment asked for (report.c).
 */
#include "internal.h"

static void print_config(void)
{
    obmi_msg m = {.len = 0};
    obmi_msg_str(&m, "obm: version " OBM_VERSION_STRING ", classes ");
    obmi_msg_dec(&m, OBMI_NSMALL);
    obmi_msg_str(&m, " x 16..");
    obmi_msg_dec(&m, OBMI_SMALL_MAX);
    obmi_msg_str(&m, " B in pools of ");
    obmi_msg_dec(&m, OBMI_POOL_SIZE);
    obmi_msg_str(&m, " B, ");
    obmi_msg_dec(&m, OBMI_NCLASSES - OBMI_NSMALL);
    obmi_msg_str(&m, " x ");
    obmi_msg_dec(&m, obmi_classes[OBMI_NSMALL].size);
    obmi_msg_str(&m, "..");
    obmi_msg_dec(&m, OBMI_MEDIUM_MAX);
    obmi_msg_str(&m, " B in pools of ");
    obmi_msg_dec(&m, obmi_classes[OBMI_NSMALL].pool_bytes / 1024);
    obmi_msg_str(&m, "..");
    obmi_msg_dec(&m, obmi_classes[OBMI_NCLASSES - 1].pool_bytes / 1024);
    obmi_msg_str(&m, " KiB, arena ");
    obmi_msg_dec(&m, OBMI_ARENA_SIZE / 1024);
    obmi_msg_str(&m, obmi_debug ? " KiB, debug build" : " KiB");
    obmi_msg_emit(&m);
}

/* The purge options, from the environment or obm_option_set, to the
 * arena manager; the caller holds its lock. */
void obmi_purge_options_apply(void)
{
    obmi_arenas_configure(&obmi_main_arenas, obmi_option(OBMI_OPTION_PURGE_DELAY_MS),
                          (unsigned)obmi_option(OBMI_OPTION_PURGE_ADVICE),
                          (uint32_t)obmi_option(OBMI_OPTION_ARENA_KEEP));
}

void obmi_init(void)
{
    static _Atomic int done;
    if (atomic_exchange(&done, 1))
        return;
    obmi_options_init();
    obmi_report_init();
    obmi_arenas_lock(&obmi_main_arenas);
    obmi_purge_options_apply();
    obmi_arenas_unlock(&obmi_main_arenas);
    obmi_backing_init();
    obmi_thread_init();
    if (obmi_option(OBMI_OPTION_VERBOSE)) {
        print_config();
        obmi_options_print();
    }
}

__attribute__((constructor)) static void obmi_constructor(void)
{
    obmi_init();
}

/* Here rather than in report.c, so a static link that pulls in the
 * constructor pulls in the reports too. */
__attribute__((destructor)) static void obmi_destructor(void)
{
    obmi_report_at_exit();
}
