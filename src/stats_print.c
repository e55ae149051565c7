/* Reports: the text layout of CPython's sys._debugmallocstats and the same
 * numbers as JSON, written through the caller's writer a buffer at a time.
 * No stdio and no malloc: the drop-in prints these at exit, and through
 * malloc_stats(), from inside the allocator. */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ---- the output buffer ---- */

void obmi_out_flush(obmi_out *o)
{
    if (o->len == 0)
        return;
    if (o->write != NULL) {
        o->buf[o->len] = '\0';
        o->write(o->opaque, o->buf);
    } else {
        obmi_os_write(STDERR_FILENO, o->buf, o->len);
    }
    o->len = 0;
}

void obmi_out_str(obmi_out *o, const char *s)
{
    for (; *s != '\0'; s++) {
        if (o->len == sizeof o->buf - 1) /* room for the NUL */
            obmi_out_flush(o);
        o->buf[o->len++] = *s;
    }
}

/* v in decimal, right-aligned in width columns, with a comma every three
 * digits when grouped. */
void obmi_out_num(obmi_out *o, uintmax_t v, int width, bool grouped)
{
    char digits[32];
    int i = (int)sizeof digits - 1, k = 0;
    digits[i] = '\0';
    do {
        if (grouped && k > 0 && k % 3 == 0)
            digits[--i] = ',';
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
        k++;
    } while (v != 0);
    for (int pad = width - ((int)sizeof digits - 1 - i); pad > 0; pad--)
        obmi_out_str(o, " ");
    obmi_out_str(o, &digits[i]);
}

void obmi_out_dec(obmi_out *o, uintmax_t v)
{
    obmi_out_num(o, v, 0, false);
}

/* ---- text ---- */

/* One "name   =   value" line, as sys._debugmallocstats lays it out. */
static void out_line(obmi_out *o, const char *name, size_t v)
{
    obmi_out_str(o, name);
    for (size_t n = strlen(name); n < 35; n++)
        obmi_out_str(o, " ");
    obmi_out_str(o, "=");
    obmi_out_num(o, v, 21, true);
    obmi_out_str(o, "\n");
}

static void out_program(obmi_out *o)
{
    char comm[64];
    obmi_os_program_name(comm, sizeof comm);
    if (comm[0] == '\0')
        return;
    obmi_out_str(o, " (");
    obmi_out_str(o, comm);
    obmi_out_str(o, ")");
}

static void print_text(obmi_out *o, const obm_stats_t *s)
{
    obmi_out_str(o, "obm " OBM_VERSION_STRING " statistics, pid ");
    obmi_out_dec(o, (uintmax_t)getpid());
    out_program(o);
    obmi_out_str(o, "\nSmall block threshold = ");
    obmi_out_dec(o, OBMI_SMALL_MAX);
    obmi_out_str(o, ", in ");
    obmi_out_dec(o, OBMI_NSMALL);
    obmi_out_str(o, " size classes; medium blocks up to ");
    obmi_out_dec(o, OBMI_MEDIUM_MAX);
    obmi_out_str(o, ", in ");
    obmi_out_dec(o, OBMI_NCLASSES - OBMI_NSMALL);
    obmi_out_str(o, " more.\n\n"
                    "class   size   num pools   blocks in use  avail blocks   remote"
                    "        mallocs          frees\n"
                    "-----   ----   ---------   -------------  ------------   ------"
                    "   ------------   ------------\n");
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        const obm_class_stats_t *k = &s->classes[c];
        if (k->pools == 0 && k->mallocs == 0)
            continue;
        obmi_out_num(o, c, 5, false);
        obmi_out_num(o, k->block_size, 7, false);
        obmi_out_num(o, k->pools, 12, false);
        obmi_out_num(o, k->blocks_in_use, 16, false);
        obmi_out_num(o, k->blocks_free, 14, false);
        obmi_out_num(o, k->blocks_remote, 9, false);
        obmi_out_num(o, k->mallocs, 15, false);
        obmi_out_num(o, k->frees, 15, false);
        obmi_out_str(o, "\n");
    }

    obmi_out_str(o, "\n");
    out_line(o, "# arenas allocated total", s->arenas_allocated_total);
    out_line(o, "# arenas reclaimed", s->arenas_released_total);
    out_line(o, "# arenas highwater mark", s->arenas_highwater);
    out_line(o, "# arenas allocated current", s->arenas_current);
    obmi_msg m = {.len = 0}; /* "N arenas * 262144 bytes/arena" */
    obmi_msg_dec(&m, s->arenas_current);
    obmi_msg_str(&m, " arenas * 262144 bytes/arena");
    m.buf[m.len] = '\0';
    out_line(o, m.buf, s->bytes_mapped);

    obmi_out_str(o, "\n");
    out_line(o, "# bytes in allocated blocks", s->bytes_in_use);
    out_line(o, "# bytes in available blocks", s->bytes_free_blocks);
    m.len = 0;
    obmi_msg_dec(&m, s->pools_empty);
    obmi_msg_str(&m, " unused pools * 4096 bytes");
    m.buf[m.len] = '\0';
    out_line(o, m.buf, s->bytes_empty_pools);
    out_line(o, "# bytes lost to pool headers", s->bytes_pool_headers);
    out_line(o, "# bytes lost to quantization", s->bytes_quantization);
    out_line(o, "Total",
             s->bytes_in_use + s->bytes_free_blocks + s->bytes_empty_pools + s->bytes_pool_headers +
                 s->bytes_quantization);

    obmi_out_str(o, "\n");
    out_line(o, "# pools in use", s->pools_in_use);
    out_line(o, "# pools full", s->pools_full);
    out_line(o, "# unused pools cached by heaps", s->pools_cached);
    out_line(o, "# unused pools never touched", s->pools_untouched);
    out_line(o, "# unused pools purged", s->pools_purged);
    out_line(o, "# bytes resident at most", s->bytes_resident);
    out_line(o, "# pools purged total", s->pools_purged_total);
    out_line(o, "# purge calls (madvise)", s->purges_total);
    out_line(o, "# pools taken by heaps", s->pools_taken_total);
    out_line(o, "# pools returned by heaps", s->pools_returned_total);

    obmi_out_str(o, "\n");
    out_line(o, "# slow mallocs", s->slow_mallocs_total);
    out_line(o, "# slow frees", s->slow_frees_total);
    out_line(o, "# carves", s->carves_total);
    out_line(o, "# remote lists taken in", s->remote_collects_total);
    out_line(o, "# pools found full", s->pools_used_to_full_total);
    out_line(o, "# full pools back in use", s->pools_full_to_used_total);
    out_line(o, "# pools emptied", s->pools_emptied_total);
    out_line(o, "# pools taken from arenas", s->pools_from_arenas_total);
    out_line(o, "# pools given to arenas", s->pools_to_arenas_total);

    obmi_out_str(o, "\n");
    out_line(o, "# large blocks (backing allocator)", s->large_allocs_current);
    out_line(o, "# bytes in large blocks", s->large_bytes_current);
    out_line(o, "# large requests total", s->large_allocs_total);

    obmi_out_str(o, "\n");
    out_line(o, "# heaps live", s->heaps_live);
    out_line(o, "# heaps abandoned", s->heaps_abandoned);
    out_line(o, "# heaps created", s->heaps_created);
    out_line(o, "# heaps adopted", s->heaps_adopted);

    obmi_out_str(o, "\n");
    out_line(o, "# errors: invalid pointers", s->errors_invalid_pointer);
    out_line(o, "# errors: double frees", s->errors_double_free);
    out_line(o, "# errors: corrupted free lists", s->errors_corrupted_list);
    out_line(o, "# errors: writes after free", s->errors_write_after_free);
    out_line(o, "# errors: overflows", s->errors_overflow);
}

/* ---- JSON: every field of the tables, under its struct name ---- */

static void json_fields(obmi_out *o, const obmi_stats_field *fields, size_t n, const void *base,
                        const char *sep)
{
    for (size_t i = 0; i < n; i++) {
        obmi_out_str(o, i == 0 ? "" : sep);
        obmi_out_str(o, "\"");
        obmi_out_str(o, fields[i].name);
        obmi_out_str(o, "\": ");
        obmi_out_dec(o, *(const size_t *)((const char *)base + fields[i].offset));
    }
}

/* s as a JSON string (no character of a program name needs more than
 * escaping quotes, backslashes and control characters). */
static void json_string(obmi_out *o, const char *s)
{
    obmi_out_str(o, "\"");
    for (; *s != '\0'; s++) {
        char c[7] = {*s, '\0'};
        if (*s == '"' || *s == '\\') {
            c[0] = '\\';
            c[1] = *s;
            c[2] = '\0';
        } else if ((unsigned char)*s < 0x20) {
            static const char hex[] = "0123456789abcdef";
            memcpy(c, "\\u00", 4);
            c[4] = hex[(unsigned char)*s >> 4];
            c[5] = hex[*s & 15];
            c[6] = '\0';
        }
        obmi_out_str(o, c);
    }
    obmi_out_str(o, "\"");
}

/* Who wrote the report, and when: obm's version (not the struct's layout,
 * which is "version" below), the process and the time. */
static void json_header(obmi_out *o)
{
    char comm[64];
    obmi_os_program_name(comm, sizeof comm);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    obmi_out_str(o, "\"report\": {\"obm_version\": \"" OBM_VERSION_STRING "\", \"pid\": ");
    obmi_out_dec(o, (uintmax_t)getpid());
    obmi_out_str(o, ", \"program\": ");
    json_string(o, comm);
    obmi_out_str(o, ", \"time_unix_ms\": ");
    obmi_out_dec(o, (uintmax_t)now.tv_sec * 1000 + (uintmax_t)now.tv_nsec / 1000000);
    obmi_out_str(o, "}");
}

static void print_json(obmi_out *o, const obm_stats_t *s)
{
    obmi_out_str(o, "{\n  ");
    json_header(o);
    obmi_out_str(o, ",\n  ");
    json_fields(o, obmi_stats_fields, obmi_stats_nfields, s, ",\n  ");
    obmi_out_str(o, ",\n  \"classes\": [\n");
    for (unsigned c = 0; c < OBMI_NCLASSES; c++) {
        obmi_out_str(o, "    {");
        json_fields(o, obmi_class_fields, obmi_class_nfields, &s->classes[c], ", ");
        obmi_out_str(o, c + 1 < OBMI_NCLASSES ? "},\n" : "}\n");
    }
    obmi_out_str(o, "  ]\n}\n");
}

/* ---- obm_stats_print ---- */

OBMI_EXPORT int obm_stats_print(obm_write_fn write, void *opaque, const char *opts)
{
    if (opts == NULL)
        opts = "";
    if (strcmp(opts, "") != 0 && strcmp(opts, "J") != 0 && strcmp(opts, "M") != 0)
        return EINVAL;
    /* The buffer lives on the stack: a report is one writer's business. */
    obmi_out o = {.write = write, .opaque = opaque, .len = 0};
    int rc = 0;
    if (opts[0] == 'M') {
        rc = obmi_map_print(&o);
    } else {
        obm_stats_t s = {.size = sizeof s};
        obm_stats_get(&s);
        if (opts[0] == 'J')
            print_json(&o, &s);
        else
            print_text(&o, &s);
    }
    obmi_out_flush(&o);
    return rc;
}
