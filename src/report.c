/* The reports a process asks for in its environment, written at exit:
 * OBM_SHOW_STATS (text or JSON, to stderr or OBM_STATS_FILE) and OBM_MAP
 * (the SVG map). They run from init.c's destructor, after the program's
 * own clean-up, and write with open(2) and write(2) only. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* path with every "%p" replaced by the process id; false when too long. */
static bool expand_path(const char *path, char *out, size_t size)
{
    obmi_msg pid = {.len = 0};
    obmi_msg_dec(&pid, (uintmax_t)getpid());
    size_t n = 0;
    for (const char *s = path; *s != '\0'; s++) {
        const char *piece = s;
        size_t len = 1;
        if (s[0] == '%' && s[1] == 'p') {
            piece = pid.buf;
            len = pid.len;
            s++;
        }
        if (n + len >= size)
            return false;
        for (size_t i = 0; i < len; i++)
            out[n++] = piece[i];
    }
    out[n] = '\0';
    return true;
}

static void write_fd(void *opaque, const char *text)
{
    obmi_os_write(*(const int *)opaque, text, strlen(text));
}

/* The report opts into the file named by option id, or to stderr when
 * it is unset. */
static void report(const char *opts, obmi_option_id id)
{
    const char *path = obmi_option_path(id);
    if (path == NULL) {
        obm_stats_print(NULL, NULL, opts);
        return;
    }
    char name[1100];
    int fd = -1;
    if (expand_path(path, name, sizeof name))
        fd = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        obmi_msg m = {.len = 0};
        obmi_msg_str(&m, "obm: cannot write the report to ");
        obmi_msg_str(&m, path);
        obmi_msg_emit(&m);
        return;
    }
    obm_stats_print(write_fd, &fd, opts);
    close(fd);
}

void obmi_report_at_exit(void)
{
    long show = obmi_option(OBMI_OPTION_SHOW_STATS);
    if (show != 0)
        report(show == 2 ? "J" : "", OBMI_OPTION_STATS_FILE);
    if (obmi_option_path(OBMI_OPTION_MAP) != NULL)
        report("M", OBMI_OPTION_MAP);
}
