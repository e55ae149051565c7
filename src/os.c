/* The os layer: the memory obm maps (mmap, munmap, madvise), the clock and
 * the one-line messages, so that failure injection has one place to hook
 * into. The other system calls are their owners' own: getrandom in
 * hardening.c, the report files' open, fstat and close in report.c. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

void *obmi_os_map(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

/* Map size bytes aligned to alignment (a power of two >= the page size).
 * First try the spot just below the last arena, where a top-down mmap puts
 * the next mapping anyway, so most arenas cost one syscall; otherwise
 * over-map and trim both ends. */
void *obmi_os_map_aligned(size_t size, size_t alignment)
{
    static _Atomic uintptr_t hint;
    uintptr_t h = atomic_load_explicit(&hint, memory_order_relaxed);
    if (h >= alignment) {
        void *p = mmap((void *)(h - alignment), size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED) {
            if (((uintptr_t)p & (alignment - 1)) == 0) {
                atomic_store_explicit(&hint, (uintptr_t)p, memory_order_relaxed);
                return p;
            }
            obmi_os_unmap(p, size);
        }
    }
    size_t span = size + alignment - obmi_os_page_size();
    char *raw = obmi_os_map(span);
    if (raw == NULL)
        return NULL;
    uintptr_t start = ((uintptr_t)raw + alignment - 1) & ~(uintptr_t)(alignment - 1);
    size_t head = start - (uintptr_t)raw;
    size_t tail = span - head - size;
    if (head)
        obmi_os_unmap(raw, head);
    if (tail)
        obmi_os_unmap((char *)start + size, tail);
    atomic_store_explicit(&hint, start, memory_order_relaxed);
    return (void *)start;
}

void obmi_os_unmap(void *addr, size_t size)
{
    int saved = errno;
    if (munmap(addr, size) != 0) {
        obmi_msg m = {.len = 0};
        obmi_msg_str(&m, "obm: munmap failed at ");
        obmi_msg_hex(&m, (uintptr_t)addr);
        obmi_msg_emit(&m);
    }
    errno = saved;
}

/* Give pages back, keeping the mapping: MADV_DONTNEED drops them now (the
 * next touch reads zeros), MADV_FREE lets the kernel take them when it
 * needs memory. A kernel without MADV_FREE gets MADV_DONTNEED. */
int obmi_os_purge(void *addr, size_t size, int advice)
{
    int saved = errno;
    int rc = -1;
#ifdef MADV_FREE
    if (advice == OBMI_PURGE_FREE)
        rc = madvise(addr, size, MADV_FREE);
#endif
    if (rc != 0)
        rc = madvise(addr, size, MADV_DONTNEED);
    errno = saved;
    return rc;
}

/* Milliseconds from a monotonic clock. The coarse clock is read from the
 * vDSO without a system call; a few milliseconds of resolution is plenty
 * for the purge decay. */
uint64_t obmi_os_clock_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

size_t obmi_os_page_size(void)
{
    static _Atomic size_t page; /* any thread may be first: same value */
    size_t p = atomic_load_explicit(&page, memory_order_relaxed);
    if (p == 0) {
        p = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, p, memory_order_relaxed);
    }
    return p;
}

void obmi_os_write(int fd, const char *buf, size_t len)
{
    int saved = errno;
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        buf += n;
        len -= (size_t)n;
    }
    errno = saved;
}

/* ---- one-line messages, formatted without stdio ---- */

void obmi_msg_str(obmi_msg *m, const char *s)
{
    while (*s && m->len < sizeof m->buf - 1)
        m->buf[m->len++] = *s++;
}

void obmi_msg_hex(obmi_msg *m, uintptr_t v)
{
    char tmp[2 + 2 * sizeof v];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    obmi_msg_str(m, "0x");
    while (n > 0 && m->len < sizeof m->buf - 1)
        m->buf[m->len++] = tmp[--n];
}

void obmi_msg_dec(obmi_msg *m, uintmax_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n > 0 && m->len < sizeof m->buf - 1)
        m->buf[m->len++] = tmp[--n];
}

void obmi_msg_emit(obmi_msg *m)
{
    m->buf[m->len++] = '\n';
    obmi_os_write(STDERR_FILENO, m->buf, m->len);
}

void obmi_fatal(const char *what)
{
    obmi_msg m = {.len = 0};
    obmi_msg_str(&m, "obm: ");
    obmi_msg_str(&m, what);
    obmi_msg_emit(&m);
    abort();
}

void obmi_assert_fail(const char *expr, const char *file, int line)
{
    obmi_msg m = {.len = 0};
    obmi_msg_str(&m, "obm: assertion failed: ");
    obmi_msg_str(&m, expr);
    obmi_msg_str(&m, " at ");
    obmi_msg_str(&m, file);
    obmi_msg_str(&m, ":");
    obmi_msg_dec(&m, (uintmax_t)line);
    obmi_msg_emit(&m);
    abort();
}

/* The name of this process, from /proc/self/comm (no stdio, no malloc);
 * "" when unknown. */
void obmi_os_program_name(char *out, size_t size)
{
    ssize_t n = -1;
    int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, out, size - 1);
        close(fd);
    }
    out[n > 0 ? n : 0] = '\0';
    out[strcspn(out, "\n")] = '\0';
}
