/* A probe preloaded beside the drop-in into a real program we cannot
 * change (sqlite3): at start-up and again at exit it looks up obm_owns with
 * dlsym(RTLD_DEFAULT) and checks that the process's malloc serves a small
 * block from an obm arena. The verdicts go to stderr, one line each:
 *   obm-probe: start active | obm-probe: exit active   (or "... inactive")
 * and the test script requires both "active" lines. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static void probe(const char *when)
{
    int (*owns)(const void *) = (int (*)(const void *))dlsym(RTLD_DEFAULT, "obm_owns");
    void *p = malloc(40);
    int active = owns != NULL && p != NULL && owns(p);
    free(p);
    fprintf(stderr, "obm-probe: %s %s\n", when, active ? "active" : "inactive");
}

__attribute__((constructor)) static void probe_start(void)
{
    probe("start");
}

__attribute__((destructor)) static void probe_exit(void)
{
    probe("exit");
}
