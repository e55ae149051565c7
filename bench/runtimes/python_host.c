/* obm-python: CPython with obm as its object allocator.
 *
 * Runs exactly like `python3 args...`, except that the PYMEM_DOMAIN_MEM
 * and PYMEM_DOMAIN_OBJ allocators (PyMem_Malloc and PyObject_Malloc:
 * where pymalloc, CPython's obmalloc, normally sits) are obm's, installed
 * with PyMem_SetAllocator before the interpreter starts. The raw domain
 * stays the C library's. This is how an embedder wires obm in; see
 * docs/runtimes.md.
 *
 *   obm-python script.py args...     (any python3 command line)
 *
 * With OBM_PYTHON_ALLOCATOR=python it leaves CPython's own choice in place
 * (pymalloc, or what PYTHONMALLOC says): the same program (libpython as a
 * shared library, unlike Debian's /usr/bin/python3, which has it linked
 * in), for comparison. Otherwise PYTHONMALLOC would replace obm again
 * while the interpreter starts, so it is refused. */
#include <Python.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obm.h"

static void *host_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return obm_malloc(size);
}

static void *host_calloc(void *ctx, size_t count, size_t size)
{
    (void)ctx;
    return obm_calloc(count, size);
}

/* CPython's contract: realloc to 0 bytes keeps a block (obm_realloc, as
 * glibc's, frees it), so ask for 1 byte, as CPython's own allocators do. */
static void *host_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return obm_realloc(ptr, size != 0 ? size : 1);
}

static void host_free(void *ctx, void *ptr)
{
    (void)ctx;
    obm_free(ptr);
}

int main(int argc, char **argv)
{
    const char *which = getenv("OBM_PYTHON_ALLOCATOR");
    if (which != NULL && strcmp(which, "python") == 0)
        return Py_BytesMain(argc, argv);
    if (which != NULL && *which != '\0' && strcmp(which, "obm") != 0) {
        fprintf(stderr, "obm-python: OBM_PYTHON_ALLOCATOR=%s: expected obm or python\n", which);
        return 2;
    }
    const char *env = getenv("PYTHONMALLOC");
    if (env != NULL && *env != '\0') {
        fprintf(stderr, "obm-python: PYTHONMALLOC=%s would replace obm; unset it\n", env);
        return 2;
    }
    PyMemAllocatorEx obm = {NULL, host_malloc, host_calloc, host_realloc, host_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &obm);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obm);
    return Py_BytesMain(argc, argv);
}
