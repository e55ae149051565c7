/* What one phase of a program did to its memory: obm_stats_get before and
 * after, obm_stats_diff between them, then the text report.
 *
 *   cc stats_diff.c $(pkg-config --cflags --libs obm) -o stats_diff && ./stats_diff
 */
#include <obm.h>
#include <stdio.h>

static void write_stderr(void *opaque, const char *text)
{
    (void)opaque;
    fputs(text, stderr);
}

int main(void)
{
    enum { N = 50000 };
    static void *blocks[N];
    obm_stats_t before = {.size = sizeof before}, after = {.size = sizeof after};
    obm_stats_t delta = {.size = sizeof delta};
    if (obm_stats_get(&before) != 0)
        return 1;

    /* The phase: blocks of 48 and 200 bytes, every other one freed. */
    for (int i = 0; i < N; i++)
        blocks[i] = obm_malloc(i % 2 ? 200 : 48);
    for (int i = 0; i < N; i += 2)
        obm_free(blocks[i]);

    if (obm_stats_get(&after) != 0)
        return 1;
    obm_stats_diff(&before, &after, &delta);
    printf("the phase: %zu arenas more, %zu bytes in use, %zu in free blocks, "
           "%zu slow mallocs\n",
           delta.arenas_current, delta.bytes_in_use, delta.bytes_free_blocks,
           delta.slow_mallocs_total);
    printf("48-byte class: %zu blocks in use; 208-byte class: %zu\n",
           after.classes[2].blocks_in_use, after.classes[12].blocks_in_use);
    obm_stats_print(write_stderr, NULL, ""); /* the whole picture, as text */
    for (int i = 1; i < N; i += 2)
        obm_free(blocks[i]);
    return 0;
}
