/* The drop-in's answers to glibc's statistics calls: malloc_stats,
 * mallinfo, mallinfo2, malloc_info and malloc_trim report and act on obm
 * (its arenas, plus what it holds from glibc for large requests) instead of
 * glibc's nearly unused arenas. Only in libobmalloc: libobm leaves the
 * process's malloc, and these, alone. docs/statistics.md, "glibc's
 * statistics calls", gives the mapping. */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>

#include "internal.h"

OBMI_EXPORT void malloc_stats(void)
{
    obm_stats_print(NULL, NULL, "");
}

static size_t free_blocks(const obm_stats_t *s)
{
    size_t n = 0;
    for (unsigned c = 0; c < OBMI_NCLASSES; c++)
        n += s->classes[c].blocks_free;
    return n;
}

OBMI_EXPORT struct mallinfo2 mallinfo2(void)
{
    obm_stats_t s = {.size = sizeof s};
    obm_stats_get(&s);
    return (struct mallinfo2){
        .arena = s.bytes_mapped,         /* obm's arenas */
        .ordblks = free_blocks(&s),      /* free blocks in pools */
        .hblks = s.large_allocs_current, /* blocks held from glibc */
        .hblkhd = s.large_bytes_current, /* glibc's own count of its bytes in use */
        .usmblks = s.arenas_highwater * OBMI_ARENA_SIZE,
        .uordblks = s.bytes_in_use + s.large_bytes_current,
        .fordblks = s.bytes_free_blocks + s.bytes_empty_pools,
        .keepcost = 0,
    };
}

static int clamp(size_t v)
{
    return v > INT_MAX ? INT_MAX : (int)v;
}

/* The old interface with int fields: values past INT_MAX stay at INT_MAX
 * instead of wrapping. */
OBMI_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m = mallinfo2();
    return (struct mallinfo){
        .arena = clamp(m.arena),
        .ordblks = clamp(m.ordblks),
        .hblks = clamp(m.hblks),
        .hblkhd = clamp(m.hblkhd),
        .usmblks = clamp(m.usmblks),
        .uordblks = clamp(m.uordblks),
        .fordblks = clamp(m.fordblks),
        .keepcost = 0,
    };
}

/* ---- malloc_info: glibc's XML shape, one <size> per class with free blocks ---- */

static void xml_attr(obmi_out *o, const char *name, size_t v)
{
    obmi_out_str(o, " ");
    obmi_out_str(o, name);
    obmi_out_str(o, "=\"");
    obmi_out_dec(o, v);
    obmi_out_str(o, "\"");
}

static void xml_totals(obmi_out *o, size_t nfree, size_t free_bytes)
{
    obmi_out_str(o, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n<total type=\"rest\"");
    xml_attr(o, "count", nfree);
    xml_attr(o, "size", free_bytes);
    obmi_out_str(o, "/>\n");
}

static void xml_system(obmi_out *o, const obm_stats_t *s)
{
    size_t max = s->arenas_highwater * OBMI_ARENA_SIZE;
    obmi_out_str(o, "<system type=\"current\"");
    xml_attr(o, "size", s->bytes_mapped);
    obmi_out_str(o, "/>\n<system type=\"max\"");
    xml_attr(o, "size", max);
    obmi_out_str(o, "/>\n<aspace type=\"total\"");
    xml_attr(o, "size", s->bytes_mapped);
    obmi_out_str(o, "/>\n<aspace type=\"mprotect\"");
    xml_attr(o, "size", s->bytes_mapped);
    obmi_out_str(o, "/>\n");
}

static void write_file(void *opaque, const char *text)
{
    fputs(text, opaque);
}

OBMI_EXPORT int malloc_info(int options, FILE *fp)
{
    if (options != 0 || fp == NULL)
        return EINVAL;
    obm_stats_t s = {.size = sizeof s};
    obm_stats_get(&s);
    obmi_out o = {.write = write_file, .opaque = fp, .len = 0};
    size_t nfree = 0, free_bytes = 0;
    obmi_out_str(&o, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        const obm_class_stats_t *k = &s.classes[c];
        if (k->blocks_free == 0)
            continue;
        obmi_out_str(&o, "  <size");
        xml_attr(&o, "from", c == 0 ? 1 : s.classes[c - 1].block_size + 1);
        xml_attr(&o, "to", k->block_size);
        xml_attr(&o, "total", k->blocks_free * k->block_size);
        xml_attr(&o, "count", k->blocks_free);
        obmi_out_str(&o, "/>\n");
        nfree += k->blocks_free;
        free_bytes += k->blocks_free * k->block_size;
    }
    obmi_out_str(&o, "</sizes>\n");
    xml_totals(&o, nfree, free_bytes);
    xml_system(&o, &s);
    obmi_out_str(&o, "</heap>\n");
    xml_totals(&o, nfree, free_bytes);
    obmi_out_str(&o, "<total type=\"mmap\"");
    xml_attr(&o, "count", s.large_allocs_current);
    xml_attr(&o, "size", s.large_bytes_current);
    obmi_out_str(&o, "/>\n");
    xml_system(&o, &s);
    obmi_out_str(&o, "</malloc>\n");
    obmi_out_flush(&o);
    return 0;
}

/* obm_trim (the calling thread's empty pools, every free pool's page and
 * every entirely free arena back to the OS), then glibc's own malloc_trim
 * with pad for what it holds. 1 when anything went back. */
OBMI_EXPORT int malloc_trim(size_t pad)
{
    bool released = obm_trim() != 0;
    int (*libc_trim)(size_t) = (int (*)(size_t))obmi_libc_symbol("malloc_trim");
    if (libc_trim != NULL && libc_trim(pad))
        released = true;
    return released;
}
