/* AddressSanitizer sees a program's bugs in obm's blocks: obm poisons
 * free and never-carved blocks (src/track.h), so a read of a freed block,
 * or a read or a write past a block into a neighbour never handed out, is
 * reported even though the arena is mmap'd memory ASan knows nothing of.
 *
 * Each case runs in a forked child whose stderr goes into a pipe; the
 * parent allocates the block first, so it knows the address ASan must
 * name. Only meaningful when built with ASan (test.sh's build-sanitize),
 * the only build whose TESTS lists it; elsewhere it fails. Not for
 * valgrind: obm's ASan build and memcheck do not mix.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "obm.h"

#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif

#ifdef HAVE_ASAN

/* The block the parent allocated for the case, and its usable size. */
static unsigned char *block;
static size_t usable;

/* Read one byte: volatile, so the load stays and is instrumented. */
static int peek(const unsigned char *p)
{
    return *(const volatile unsigned char *)p;
}

/* obm_malloc(40): a 48-byte block, freed, then byte 3 read. */
static void case_uaf(void)
{
    obm_free(block);
    (void)peek(block + 3);
}

/* Write one byte: volatile, so the store stays and is instrumented. */
static void poke(unsigned char *p, unsigned char v)
{
    *(volatile unsigned char *)p = v;
}

/* One byte past the block, in the next block of its pool, which nothing
 * in this process has been given. */
static void case_overflow(void)
{
    (void)peek(block + usable);
}

/* The same byte written: an overflow, as by a copy one byte too long. */
static void case_overflow_write(void)
{
    poke(block + usable, 0x5a);
}

/* Blocks of every class and of the backing allocator, written and read
 * in full, freed: nothing to report. */
static void case_clean(void)
{
    unsigned char *p[600];
    for (size_t n = 1; n <= 600; n++) {
        p[n - 1] = obm_malloc(n);
        if (p[n - 1] == NULL)
            _exit(2);
        memset(p[n - 1], (int)n, obm_usable_size(p[n - 1]));
    }
    unsigned sum = 0;
    for (size_t n = 1; n <= 600; n++) {
        p[n - 1] = obm_realloc(p[n - 1], 601 - n);
        if (p[n - 1] == NULL)
            _exit(2);
        for (size_t i = 0; i < 601 - n && i < n; i++)
            sum += peek(p[n - 1] + i) != (unsigned char)n;
        obm_free(p[n - 1]);
    }
    exit(sum == 0 ? 0 : 2);
}

struct outcome {
    int status;
    char err[16384];
};

/* Runs fn in a child with stderr into a pipe; its wait status and stderr
 * into o. */
static void run_child(void (*fn)(void), struct outcome *o)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], STDERR_FILENO) < 0)
            _exit(3);
        alarm(60);
        fn();
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t got;
    while ((got = read(fds[0], o->err + len, sizeof o->err - 1 - len)) > 0)
        len += (size_t)got;
    o->err[len] = '\0';
    close(fds[0]);
    if (waitpid(pid, &o->status, 0) != pid) {
        perror("waitpid");
        exit(1);
    }
}

static int failures, number;

/* "ok", or "not ok" with why and the child's stderr as diagnostics. */
static void result(const char *name, const char *why, const struct outcome *o)
{
    number++;
    if (why == NULL) {
        printf("ok %d - %s\n", number, name);
        return;
    }
    failures++;
    printf("not ok %d - %s\n# %s\n", number, name, why);
    for (const char *line = o->err; *line != '\0';) {
        const char *end = strchr(line, '\n');
        int n = end ? (int)(end - line) : (int)strlen(line);
        printf("# stderr: %.*s\n", n, line);
        line += n + (end != NULL);
    }
}

/* The child died of ASan's report on an access (READ or WRITE) of 1 byte
 * at addr, of the kind named. */
static void expect_report(const char *name, void (*fn)(void), const char *kind, const char *op,
                          const void *addr)
{
    struct outcome o;
    run_child(fn, &o);
    char error[128], access[128], why[512];
    /* ASan prints addresses with 12 hex digits at least. */
    snprintf(error, sizeof error, "ERROR: AddressSanitizer: %s on address 0x%012" PRIxPTR " ", kind,
             (uintptr_t)addr);
    snprintf(access, sizeof access, "\n%s of size 1 at 0x%012" PRIxPTR " thread T0", op,
             (uintptr_t)addr);
    if (WIFEXITED(o.status) && WEXITSTATUS(o.status) == 0)
        snprintf(why, sizeof why, "the child exited with status 0");
    else if (strstr(o.err, error) == NULL)
        snprintf(why, sizeof why, "no \"%s\" in stderr", error);
    else if (strstr(o.err, access) == NULL)
        snprintf(why, sizeof why, "no \"%s\" in stderr", access + 1);
    else
        why[0] = '\0';
    result(name, why[0] ? why : NULL, &o);
}

int main(void)
{
    printf("1..4\n");

    struct outcome o;
    run_child(case_clean, &o);
    const char *why = NULL;
    if (!WIFEXITED(o.status) || WEXITSTATUS(o.status) != 0)
        why = "the child did not exit with status 0";
    else if (o.err[0] != '\0')
        why = "the child wrote to stderr";
    result("clean: blocks used within their bounds, nothing reported", why, &o);

    block = obm_malloc(40);
    if (block == NULL || !obm_owns(block) || obm_usable_size(block) != 48) {
        printf("Bail out! obm_malloc(40) is not a 48-byte obm block\n");
        return 1;
    }
    expect_report("use after free of a 48-byte obm block: use-after-poison", case_uaf,
                  "use-after-poison", "READ", block + 3);
    obm_free(block);

    /* 481..496 bytes (class 30): the first request of its class in this
     * process, so its pool's next block is never handed out. */
    block = obm_malloc(490);
    usable = block ? obm_usable_size(block) : 0;
    if (usable != 496 || (uintptr_t)block % OBM_POOL_SIZE + 2 * usable > OBM_POOL_SIZE) {
        printf("Bail out! obm_malloc(490) is not a 496-byte block with a neighbour\n");
        return 1;
    }
    expect_report("a read one byte past a 496-byte obm block, in its unused neighbour",
                  case_overflow, "use-after-poison", "READ", block + usable);
    expect_report("a write one byte past a 496-byte obm block, into its unused neighbour",
                  case_overflow_write, "use-after-poison", "WRITE", block + usable);
    obm_free(block);
    return failures == 0 ? 0 : 1;
}

#else

int main(void)
{
    /* Only an ASan build lists this test: elsewhere it is a mistake. */
    printf("Bail out! not built with AddressSanitizer\n");
    return 1;
}

#endif
