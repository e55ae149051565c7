/* The reports a process asks for in its environment, written at exit:
 * OBM_SHOW_STATS (text or JSON, to stderr or OBM_STATS_FILE; OBM_STATS_FILE
 * with OBM_SHOW_STATS unset asks for the text report) and OBM_MAP (the SVG map). They are
 * written from init.c's destructor, after the program's own clean-up, with
 * open(2) and write(2) only.
 *
 * Where each report goes is settled at start (obmi_report_init, from the
 * constructor), so that it arrives whatever the program does meanwhile:
 *  - to stderr: through a close-on-exec duplicate of fd 2 taken then, so a
 *    program that closes stdout and stderr before it exits (the coreutils
 *    do) still reports. At exit the duplicate is used only if it still is
 *    the same file (the program may have closed its number, or put another
 *    file there); else fd 2.
 *  - to a file: the name is made absolute against the directory at start,
 *    so a program that changes directory still writes where it was asked;
 *    the file is opened once at start, so a bad name is told at once
 *    (which report, the expanded name, the reason), and again at exit.
 *    "%p" in the name is the process id: one file per process, truncated.
 *    Without it every process of a run appends its report to the one file
 *    (the map, one SVG document, is truncated: the last process's stays).
 * A report goes out in one write when it fits BUF, so the reports of
 * processes that exit together do not interleave. A process that leaves by
 * _exit (dash runs its last command so), by a signal or by exec runs no
 * destructor and writes no report. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

enum { REPORT_STATS, REPORT_MAP, NREPORTS };

#define NAME_MAX_LEN 4096

struct sink {
    bool wanted;
    bool told;               /* a failure was reported: say it once */
    char name[NAME_MAX_LEN]; /* absolute, "%p" unexpanded; "" for stderr */
    int fd;                  /* stderr's duplicate, or -1 */
    dev_t dev;               /* the duplicate's file, to know it again */
    ino_t ino;
};

static struct sink sinks[NREPORTS];
static const char *const report_names[NREPORTS] = {"statistics", "map"};
static const obmi_option_id report_options[NREPORTS] = {OBMI_OPTION_STATS_FILE, OBMI_OPTION_MAP};

/* name with every "%p" replaced by the process id; false when too long. */
static bool expand_name(const char *name, char *out, size_t size)
{
    obmi_msg pid = {.len = 0};
    obmi_msg_dec(&pid, (uintmax_t)getpid());
    size_t n = 0;
    for (const char *s = name; *s != '\0'; s++) {
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

/* "obm: cannot write the <report> report to <name>: <reason> (pid N)",
 * once per report. */
static void tell_failure(int r, const char *name, int err)
{
    if (sinks[r].told)
        return;
    sinks[r].told = true;
    obmi_msg m = {.len = 0};
    obmi_msg_str(&m, "obm: cannot write the ");
    obmi_msg_str(&m, report_names[r]);
    obmi_msg_str(&m, " report to ");
    obmi_msg_str(&m, name);
    obmi_msg_str(&m, ": ");
    obmi_msg_str(&m, strerror(err));
    obmi_msg_str(&m, " (pid ");
    obmi_msg_dec(&m, (uintmax_t)getpid());
    obmi_msg_str(&m, ")");
    obmi_msg_emit(&m);
}

/* Opens report r's file: truncated for one file per process and for the
 * map, appended to otherwise; at start only created. -1 after telling why. */
static int open_file(int r, bool at_exit)
{
    char name[NAME_MAX_LEN + 32];
    if (!expand_name(sinks[r].name, name, sizeof name)) {
        tell_failure(r, sinks[r].name, ENAMETOOLONG);
        return -1;
    }
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC;
    if (at_exit)
        flags |= (strstr(sinks[r].name, "%p") != NULL || r == REPORT_MAP) ? O_TRUNC : O_APPEND;
    int fd = open(name, flags, 0644);
    if (fd < 0)
        tell_failure(r, name, errno);
    return fd;
}

/* The name as given, made absolute against the current directory; false
 * with errno set when it cannot be. */
static bool absolute_name(const char *given, char *out, size_t size)
{
    size_t n = 0;
    if (given[0] != '/') {
        if (getcwd(out, size) == NULL)
            return false;
        n = strlen(out);
        if (n + 1 >= size) {
            errno = ENAMETOOLONG;
            return false;
        }
        if (n == 0 || out[n - 1] != '/')
            out[n++] = '/';
    }
    size_t len = strlen(given);
    if (n + len >= size) {
        errno = ENAMETOOLONG;
        return false;
    }
    memcpy(out + n, given, len + 1);
    return true;
}

void obmi_report_init(void)
{
    /* OBM_STATS_FILE alone asks for the text report; OBM_SHOW_STATS=0 says no. */
    sinks[REPORT_STATS].wanted =
        obmi_option(OBMI_OPTION_SHOW_STATS) != 0 ||
        (obmi_option_path(OBMI_OPTION_STATS_FILE) != NULL && getenv("OBM_SHOW_STATS") == NULL);
    sinks[REPORT_MAP].wanted = obmi_option_path(OBMI_OPTION_MAP) != NULL;
    for (int r = 0; r < NREPORTS; r++) {
        struct sink *k = &sinks[r];
        k->fd = -1;
        if (!k->wanted)
            continue;
        const char *given = obmi_option_path(report_options[r]);
        if (given == NULL) {
            struct stat st;
            k->fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
            if (k->fd >= 0 && fstat(k->fd, &st) == 0) {
                k->dev = st.st_dev;
                k->ino = st.st_ino;
            }
            continue;
        }
        if (!absolute_name(given, k->name, sizeof k->name)) {
            tell_failure(r, given, errno);
            k->wanted = false;
            continue;
        }
        int fd = open_file(r, false);
        if (fd >= 0)
            close(fd);
    }
}

/* A report is gathered here and written in one piece where it fits. */
#define BUF 65536
static struct {
    int fd;
    size_t len;
    char text[BUF];
} out;

static void out_flush(void)
{
    obmi_os_write(out.fd, out.text, out.len);
    out.len = 0;
}

static void out_add(void *opaque, const char *text)
{
    (void)opaque;
    size_t n = strlen(text);
    if (out.len + n > BUF)
        out_flush();
    if (n > BUF) {
        obmi_os_write(out.fd, text, n);
        return;
    }
    memcpy(out.text + out.len, text, n);
    out.len += n;
}

/* stderr's duplicate if it is still the file it was at start, else fd 2. */
static int stderr_fd(const struct sink *k)
{
    struct stat st;
    if (k->fd >= 0 && fstat(k->fd, &st) == 0 && st.st_dev == k->dev && st.st_ino == k->ino)
        return k->fd;
    return 2;
}

static void report(int r, const char *opts)
{
    const struct sink *k = &sinks[r];
    bool file = k->name[0] != '\0';
    out.fd = file ? open_file(r, true) : stderr_fd(k);
    if (out.fd < 0)
        return;
    out.len = 0;
    obm_stats_print(out_add, NULL, opts);
    out_flush();
    if (file)
        close(out.fd);
}

void obmi_report_at_exit(void)
{
    if (sinks[REPORT_STATS].wanted)
        report(REPORT_STATS, obmi_option(OBMI_OPTION_SHOW_STATS) == 2 ? "J" : "");
    if (sinks[REPORT_MAP].wanted)
        report(REPORT_MAP, "M");
}
