/* An ordinary program: plain malloc, nothing of obm in it. Under obm's
 * drop-in every small request is obm's, and malloc_stats() prints obm's
 * report instead of glibc's.
 *
 *   cc dropin.c -o dropin
 *   LD_PRELOAD=/usr/local/lib/libobmalloc.so ./dropin     (or: obm-run ./dropin)
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    enum { N = 20000 };
    char **words = malloc(N * sizeof *words);
    if (words == NULL)
        return 1;
    for (int i = 0; i < N; i++) {
        char buf[32];
        snprintf(buf, sizeof buf, "word-%d", i * 7919 % N);
        words[i] = strdup(buf);
        if (words[i] == NULL)
            return 1;
    }
    size_t bytes = 0;
    for (int i = 0; i < N; i++) {
        bytes += strlen(words[i]) + 1;
        free(words[i]);
    }
    free(words);
    printf("%d words, %zu bytes\n", N, bytes);
    malloc_stats(); /* glibc's report, or obm's under the drop-in */
    return 0;
}
