/* Linking obm for a program's own small objects: the obm_* API beside the
 * process's malloc, which obm leaves alone.
 *
 *   cc linked.c $(pkg-config --cflags --libs obm) -o linked && ./linked
 */
#include <obm.h>
#include <stdio.h>
#include <string.h>

struct node {
    struct node *next;
    char name[24];
};

int main(void)
{
    struct node *list = NULL;
    for (int i = 0; i < 100000; i++) {
        struct node *n = obm_malloc(sizeof *n); /* 32 bytes: a pool block */
        if (n == NULL)
            return 1;
        snprintf(n->name, sizeof n->name, "node %d", i);
        n->next = list;
        list = n;
    }
    size_t count = 0;
    while (list != NULL) {
        struct node *next = list->next;
        count += strncmp(list->name, "node ", 5) == 0;
        obm_free(list);
        list = next;
    }
    obm_counters_t k = {.size = sizeof k};
    if (obm_counters_get(&k) != 0)
        return 1;
    printf("%zu nodes checked; obm %d: %zu mallocs, %zu frees, %zu arenas mapped at most\n", count,
           obm_version(), k.mallocs, k.frees, k.arenas_highwater);
    return count == 100000 && k.mallocs == k.frees ? 0 : 1;
}
