/* Drop-in, CHECKLIST 21 (interposition_libc_internal): libc functions that
 * allocate inside libc must reach obm and keep working: getline (which
 * reallocs its buffer), strdup, asprintf, open_memstream, fopen/fclose,
 * qsort, setlocale, opendir/readdir, scandir, fork + waitpid; their blocks
 * are obm's up to OBM_MEDIUM_MAX. obm must never move the program break:
 * sbrk(0) is unchanged across many small and medium mallocs.
 * (glibc tst-interpose-skeleton) */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <wchar.h>

#include "dropin.h"

/* A scratch directory under $TMPDIR, removed by teardown_dir. */
static int setup_dir(void **state)
{
    static char dir[4096];
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/obm-dropin-libc-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    *state = dir;
    return 0;
}

static int teardown_dir(void **state)
{
    const char *dir = *state;
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[4352];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
    return 0;
}

/* The line of length len at position i of the file: printable, no '\n'. */
static void make_line(char *buf, size_t len, size_t i)
{
    for (size_t j = 0; j < len; j++)
        buf[j] = (char)('!' + (j * 7 + i * 13) % 94);
    buf[len] = '\0';
}

static void test_getline_round_trip(void **state)
{
    static const size_t lens[] = {0, 45, 80, 2, 8201, 0, 17};
    enum { NLINES = sizeof(lens) / sizeof(lens[0]) };
    char path[4200];
    snprintf(path, sizeof(path), "%s/lines.txt", (const char *)*state);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    char *buf = malloc(8202);
    assert_non_null(buf);
    for (size_t i = 0; i < NLINES; i++) {
        make_line(buf, lens[i], i);
        assert_true(fprintf(f, "%s\n", buf) == (int)lens[i] + 1);
    }
    assert_int_equal(fclose(f), 0);

    f = fopen(path, "r");
    assert_non_null(f);
    char *line = NULL; /* getline mallocs, then reallocs, inside libc */
    size_t cap = 0;
    ssize_t got;
    size_t i = 0;
    bool small_seen = false, medium_seen = false;
    while ((got = getline(&line, &cap, f)) != -1) {
        assert_true(i < NLINES);
        assert_int_equal(got, lens[i] + 1);
        assert_true(cap >= lens[i] + 2);
        make_line(buf, lens[i], i);
        assert_memory_equal(line, buf, lens[i]);
        assert_int_equal(line[lens[i]], '\n');
        /* libc's malloc and realloc are obm's: a buffer of a size obm
         * serves is obm's block, small or medium (the 8201-byte line). */
        assert_int_equal(dropin_owns(line) != 0, dropin_served(cap));
        small_seen = small_seen || cap <= OBM_SMALL_MAX;
        medium_seen = medium_seen || (cap > OBM_SMALL_MAX && dropin_served(cap));
        i++;
    }
    assert_int_equal(i, NLINES);
    assert_true(small_seen);
    assert_true(medium_seen);
    assert_true(feof(f));
    free(line); /* a buffer libc allocated, freed by the program */
    fclose(f);

    /* The same through getdelim with a caller-made small buffer. */
    f = fopen(path, "r");
    assert_non_null(f);
    cap = 8;
    line = malloc(cap);
    assert_true(dropin_owns(line));
    for (i = 0; getdelim(&line, &cap, '\n', f) != -1; i++) {
        make_line(buf, lens[i], i);
        assert_memory_equal(line, buf, lens[i]);
    }
    assert_int_equal(i, NLINES);
    free(line);
    fclose(f);
    free(buf);
}

static void test_strdup_asprintf(void **state)
{
    for (int i = 0; i < 2000; i++) {
        char src[700];
        size_t len = (size_t)(i * 37) % sizeof(src);
        make_line(src, len, (size_t)i);
        char *d = strdup(src);
        assert_non_null(d);
        assert_string_equal(d, src);
        assert_int_equal(dropin_owns(d) != 0, dropin_served(len + 1)); /* up to 700 bytes */
        char *n = strndup(src, 10);
        assert_int_equal(strlen(n), len < 10 ? len : 10);
        char *a = NULL;
        int r = asprintf(&a, "%d:%s:%x", i, d, (unsigned)i);
        char want[800];
        snprintf(want, sizeof(want), "%d:%s:%x", i, src, (unsigned)i);
        assert_int_equal(r, strlen(want));
        assert_string_equal(a, want);
        assert_true(dropin_owns(a));
        free(a);
        free(n);
        free(d);
    }
}

static void test_open_memstream(void **state)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size); /* grows buf with realloc */
    assert_non_null(f);
    for (int i = 0; i < 20000; i++)
        fprintf(f, "%d,", i);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(size, strlen(buf));
    char *p = buf;
    for (int i = 0; i < 20000; i++) {
        char *end;
        assert_int_equal(strtol(p, &end, 10), i);
        assert_int_equal(*end, ',');
        p = end + 1;
    }
    free(buf);
}

static void test_fopen_fclose(void **state)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/f.txt", (const char *)*state);
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(path, i == 0 ? "w" : "a"); /* FILE and its buffer: malloc */
        assert_non_null(f);
        fprintf(f, "%04d\n", i);
        assert_int_equal(fclose(f), 0);
    }
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[16];
    for (int i = 0; i < 500; i++) {
        assert_non_null(fgets(line, sizeof(line), f));
        assert_int_equal(atoi(line), i);
    }
    assert_null(fgets(line, sizeof(line), f));
    fclose(f);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_u32(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

static void test_qsort(void **state)
{
    /* Large enough that glibc's qsort mallocs its merge buffer. */
    enum { N = 200000 };
    unsigned *v = malloc(N * sizeof(*v));
    assert_non_null(v);
    unsigned x = 1;
    unsigned long sum = 0;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        v[i] = x >> 8;
        sum += v[i];
    }
    qsort(v, N, sizeof(*v), cmp_u32);
    for (int i = 0; i < N; i++) {
        sum -= v[i];
        if (i > 0)
            assert_true(v[i - 1] <= v[i]);
    }
    assert_int_equal(sum, 0);
    free(v);

    /* Many small sorts: glibc sorts these on the stack or in small blocks. */
    for (int n = 1; n < 400; n += 3) {
        char **s = malloc((size_t)n * sizeof(*s));
        for (int i = 0; i < n; i++) {
            s[i] = malloc(12);
            snprintf(s[i], 12, "%08d", (n - i) * 7919 % 100000);
        }
        qsort(s, (size_t)n, sizeof(*s), cmp_str);
        for (int i = 1; i < n; i++)
            assert_true(strcmp(s[i - 1], s[i]) <= 0);
        for (int i = 0; i < n; i++)
            free(s[i]);
        free(s);
    }
}

static void test_setlocale(void **state)
{
    /* Loading a locale mallocs its data; switching frees it again. */
    for (int i = 0; i < 50; i++) {
        assert_non_null(setlocale(LC_ALL, "C.UTF-8"));
        char *s = NULL;
        assert_true(asprintf(&s, "%lc", (wint_t)0x00e9) == 2); /* é in UTF-8 */
        free(s);
        assert_int_equal(setenv("LC_ALL", "C.UTF-8", 1), 0);
        assert_non_null(setlocale(LC_ALL, ""));
        assert_non_null(setlocale(LC_ALL, "C"));
        assert_int_equal(unsetenv("LC_ALL"), 0);
    }
    assert_string_equal(setlocale(LC_ALL, NULL), "C");
}

static int name_filter(const struct dirent *e)
{
    return strncmp(e->d_name, "entry-", 6) == 0;
}

static void test_opendir_readdir(void **state)
{
    const char *dir = *state;
    enum { NFILES = 300 };
    for (int i = 0; i < NFILES; i++) {
        char path[4300];
        snprintf(path, sizeof(path), "%s/entry-%03d", dir, i);
        int fd = open(path, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
    }
    for (int round = 0; round < 20; round++) {
        DIR *d = opendir(dir); /* the DIR and its buffer are malloc'd */
        assert_non_null(d);
        int seen = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            seen += name_filter(e);
        assert_int_equal(closedir(d), 0);
        assert_int_equal(seen, NFILES);
    }
    struct dirent **list;
    int n = scandir(dir, &list, name_filter, alphasort); /* malloc + realloc */
    assert_int_equal(n, NFILES);
    for (int i = 0; i < n; i++) {
        char want[16];
        snprintf(want, sizeof(want), "entry-%03d", i);
        assert_string_equal(list[i]->d_name, want);
        free(list[i]);
    }
    free(list);
}

/* Small, and one in 64 medium (513..32768 bytes). */
static size_t sbrk_size(int i)
{
    if (i % 64 == 63)
        return OBM_SMALL_MAX + 1 + (size_t)(i * 13) % (OBM_MEDIUM_MAX - OBM_SMALL_MAX);
    return 1 + (size_t)(i * 13) % OBM_SMALL_MAX;
}

static void test_sbrk_unchanged(void **state)
{
    /* obm maps its arenas; it must never move the break (glibc's malloc
     * would, and a program using brk itself must not collide with obm). */
    enum { N = 100000 };
    void **blocks = calloc(N, sizeof(*blocks)); /* > OBM_MEDIUM_MAX: before the reading */
    assert_non_null(blocks);
    void *before = sbrk(0);
    for (int i = 0; i < N; i++) {
        size_t size = sbrk_size(i);
        blocks[i] = malloc(size);
        if (blocks[i] == NULL || !dropin_owns(blocks[i]))
            break;
        dropin_fill(blocks[i], size);
    }
    void *after_malloc = sbrk(0);
    for (int i = 0; i < N; i++) {
        size_t size = sbrk_size(i);
        assert_non_null(blocks[i]);
        assert_true(dropin_owns(blocks[i]));
        assert_true(dropin_check(blocks[i], size));
        free(blocks[i]);
    }
    void *after_free = sbrk(0);
    free(blocks);
    assert_ptr_equal(before, after_malloc);
    assert_ptr_equal(before, after_free);
}

static void test_fork_waitpid(void **state)
{
    char *s = strdup("inherited block");
    fflush(NULL); /* nothing buffered is written twice */
    for (int i = 0; i < 20; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int ok = strcmp(s, "inherited block") == 0;
            free(s);
            char *t = NULL;
            ok = ok && asprintf(&t, "child %d", i) > 0 && dropin_owns(t);
            free(t);
            _exit(ok ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    assert_string_equal(s, "inherited block");
    free(s);
}

int main(void)
{
    dropin_require_obm(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_getline_round_trip, setup_dir, teardown_dir),
        cmocka_unit_test(test_strdup_asprintf),
        cmocka_unit_test(test_open_memstream),
        cmocka_unit_test_setup_teardown(test_fopen_fclose, setup_dir, teardown_dir),
        cmocka_unit_test(test_qsort),
        cmocka_unit_test(test_setlocale),
        cmocka_unit_test_setup_teardown(test_opendir_readdir, setup_dir, teardown_dir),
        cmocka_unit_test(test_sbrk_unchanged),
        cmocka_unit_test(test_fork_waitpid),
    };
    return DROPIN_RUN_TAP(tests);
}
