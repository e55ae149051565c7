/* The fragmentation map: an SVG picture of every arena as a row of 64 pool
 * cells, oldest arena at the top.
 *
 * How to read it: a cell's colour is its pool's size class, on a ramp from
 * blue (16 bytes) through green and yellow to red (512 bytes), and its
 * shade is how full the pool is (pale: few blocks in use, deep: full).
 * Pools serving no class are grey: light for a pool free in its arena,
 * darker for one a thread's heap keeps for reuse, white with an outline for
 * one never touched (not resident). A dashed frame marks an arena with no
 * pool serving a class: the spare (kept mapped, every pool free) or one
 * whose free pools sit in heap caches. Each cell and arena label carries a
 * tooltip with its address and counts. Below: the legend and the byte
 * ledger of obm_stats_get.
 *
 * Drawn from a snapshot (obmi_snapshot_take), never from the pools
 * themselves, and written through obmi_out without malloc or stdio, so the
 * drop-in can draw it at exit. Each element carries what a test counts on:
 * one <g class="arena"> per arena, one <rect> with class "pool ..." per
 * pool, and no other element with "pool" in its class. */
#include <unistd.h>

#include "internal.h"

/* Layout, in pixels. */
#define MARGIN   12
#define LABEL_W  74 /* arena labels, right-aligned against the grid */
#define CELL     10
#define PITCH    12 /* cell plus gap */
#define ROW      13
#define TOP      58 /* below the title lines */
#define GRID_W   (OBMI_POOLS_PER_ARENA * PITCH)
#define WIDTH    (MARGIN + LABEL_W + GRID_W + MARGIN)
#define LEGEND_H 236

/* ---- numbers ---- */

static void out_hex(obmi_out *o, uintptr_t v)
{
    char tmp[2 + 2 * sizeof v + 1];
    size_t n = sizeof tmp - 1;
    tmp[n] = '\0';
    do {
        tmp[--n] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    tmp[--n] = 'x';
    tmp[--n] = '0';
    obmi_out_str(o, &tmp[n]);
}

/* part / whole as a percentage with one decimal, e.g. "12.5%". */
static void out_percent(obmi_out *o, size_t part, size_t whole)
{
    uintmax_t tenths = whole == 0 ? 0 : ((uintmax_t)part * 1000 + whole / 2) / whole;
    obmi_out_dec(o, tenths / 10);
    obmi_out_str(o, ".");
    obmi_out_dec(o, tenths % 10);
    obmi_out_str(o, "%");
}

/* An SVG attribute: name="v". */
static void out_attr(obmi_out *o, const char *name, uintmax_t v)
{
    obmi_out_str(o, " ");
    obmi_out_str(o, name);
    obmi_out_str(o, "=\"");
    obmi_out_dec(o, v);
    obmi_out_str(o, "\"");
}

/* ---- colours ---- */

/* "#rrggbb" from hue (degrees), saturation and lightness (0..1). */
static void out_hsl(obmi_out *o, double h, double s, double l)
{
    double c = (1 - (2 * l > 1 ? 2 * l - 1 : 1 - 2 * l)) * s;
    double hp = h / 60;
    double frac = hp - 2 * (double)(int)(hp / 2); /* hp mod 2 */
    double x = c * (1 - (frac > 1 ? frac - 1 : 1 - frac));
    double rgb[3] = {0, 0, 0};
    int sector = (int)hp % 6;
    static const int order[6][3] = {{0, 1, 2}, {1, 0, 2}, {2, 0, 1},
                                    {2, 1, 0}, {1, 2, 0}, {0, 2, 1}};
    double vals[3] = {c, x, 0};
    for (int i = 0; i < 3; i++)
        rgb[i] = vals[order[sector][i]];
    char buf[8] = "#";
    for (int i = 0; i < 3; i++) {
        int v = (int)((rgb[i] + l - c / 2) * 255 + 0.5);
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        buf[1 + 2 * i] = "0123456789abcdef"[v >> 4];
        buf[2 + 2 * i] = "0123456789abcdef"[v & 15];
    }
    buf[7] = '\0';
    obmi_out_str(o, buf);
}

/* Blue for the smallest class through to red for the largest. */
static double class_hue(int c)
{
    return 240.0 - 240.0 * c / (OBMI_NCLASSES - 1);
}

/* The fill of a pool of class c with used of capacity blocks in use. */
static void out_pool_fill(obmi_out *o, int c, size_t used, size_t capacity)
{
    double full = capacity == 0 ? 0 : (double)used / (double)capacity;
    out_hsl(o, class_hue(c), 0.80, 0.84 - 0.46 * full);
}

/* ---- the picture ---- */

static const char *pool_state_class(int state)
{
    switch (state) {
    case OBM_POOL_EMPTY:
        return "pool e";
    case OBM_POOL_CACHED:
        return "pool c";
    case OBM_POOL_UNTOUCHED:
        return "pool u";
    case OBM_POOL_FULL:
        return "pool full";
    default:
        return "pool used";
    }
}

static void out_pool(obmi_out *o, const obm_region_t *r, unsigned i)
{
    obmi_out_str(o, "<rect class=\"");
    obmi_out_str(o, pool_state_class(r->state));
    obmi_out_str(o, "\"");
    out_attr(o, "x", (uintmax_t)i * PITCH);
    obmi_out_str(o, " y=\"0\" width=\"10\" height=\"10\"");
    if (r->size_class >= 0) {
        obmi_out_str(o, " fill=\"");
        out_pool_fill(o, r->size_class, r->used, r->capacity);
        obmi_out_str(o, "\"");
    }
    obmi_out_str(o, "><title>");
    out_hex(o, (uintptr_t)r->address);
    if (r->size_class >= 0) {
        obmi_out_str(o, ": class ");
        obmi_out_dec(o, (uintmax_t)r->size_class);
        obmi_out_str(o, " (");
        obmi_out_dec(o, r->block_size);
        obmi_out_str(o, " B), ");
        obmi_out_dec(o, r->used);
        obmi_out_str(o, "/");
        obmi_out_dec(o, r->capacity);
        obmi_out_str(o, " blocks in use");
        if (r->remote > 0) {
            obmi_out_str(o, ", ");
            obmi_out_dec(o, r->remote);
            obmi_out_str(o, " freed by other threads, not yet collected");
        }
    } else {
        obmi_out_str(o, r->state == OBM_POOL_CACHED  ? ": empty, cached by a thread's heap"
                        : r->state == OBM_POOL_EMPTY ? ": empty, free in its arena"
                                                     : ": never touched");
    }
    obmi_out_str(o, "</title></rect>");
}

/* One arena: its label, a frame when no pool serves, then its 64 cells. */
static void out_arena(obmi_out *o, const obm_region_t *arena, const obm_region_t *pools, size_t row)
{
    obmi_out_str(o, "<g class=\"arena\" transform=\"translate(");
    obmi_out_dec(o, MARGIN + LABEL_W);
    obmi_out_str(o, ",");
    obmi_out_dec(o, TOP + row * ROW);
    obmi_out_str(o, ")\"><text x=\"-6\" y=\"9\" text-anchor=\"end\">#");
    obmi_out_dec(o, arena->arena_serial);
    if (arena->state == OBM_ARENA_SPARE)
        obmi_out_str(o, " spare");
    else if (arena->state == OBM_ARENA_EMPTY)
        obmi_out_str(o, " empty");
    obmi_out_str(o, "<title>arena ");
    out_hex(o, (uintptr_t)arena->address);
    obmi_out_str(o, ": ");
    obmi_out_dec(o, arena->used);
    obmi_out_str(o, " of 64 pools serving a class</title></text>");
    if (arena->state != OBM_ARENA_USED) {
        obmi_out_str(o, "<rect class=\"frame\" x=\"-2\" y=\"-2\"");
        out_attr(o, "width", GRID_W + 2);
        obmi_out_str(o, " height=\"14\"/>");
    }
    for (unsigned i = 0; i < OBMI_POOLS_PER_ARENA; i++)
        out_pool(o, &pools[i], i);
    obmi_out_str(o, "</g>\n");
}

/* A legend swatch at (x, y) with a caption; fill is written by the caller
 * between the two halves, or a CSS class names it. */
static void out_swatch_start(obmi_out *o, size_t x, size_t y, const char *cls)
{
    obmi_out_str(o, "<rect class=\"");
    obmi_out_str(o, cls);
    obmi_out_str(o, "\"");
    out_attr(o, "x", x);
    out_attr(o, "y", y);
    obmi_out_str(o, " width=\"10\" height=\"10\"");
}

static void out_caption(obmi_out *o, size_t x, size_t y, const char *text)
{
    obmi_out_str(o, "<text");
    out_attr(o, "x", x + 14);
    out_attr(o, "y", y + 9);
    obmi_out_str(o, ">");
    obmi_out_str(o, text);
    obmi_out_str(o, "</text>\n");
}

static void out_legend(obmi_out *o, size_t y)
{
    size_t x0 = MARGIN;
    obmi_out_str(o, "<g class=\"legend\">\n<text class=\"h\"");
    out_attr(o, "x", x0);
    out_attr(o, "y", y + 10);
    obmi_out_str(o, ">size classes (block bytes), shade = share of the pool's blocks in use"
                    "</text>\n");
    for (int c = 0; c < OBMI_NCLASSES; c++) {
        size_t x = x0 + (size_t)(c % 16) * 54, yy = y + 20 + (size_t)(c / 16) * 18;
        out_swatch_start(o, x, yy, "key");
        obmi_out_str(o, " fill=\"");
        out_pool_fill(o, c, 3, 4);
        obmi_out_str(o, "\"/>");
        obmi_msg m = {.len = 0};
        obmi_msg_dec(&m, (uintmax_t)(16 * (c + 1)));
        m.buf[m.len] = '\0';
        out_caption(o, x, yy, m.buf);
    }
    static const unsigned shades[] = {10, 25, 50, 75, 100};
    size_t ys = y + 64;
    for (unsigned i = 0; i < sizeof shades / sizeof shades[0]; i++) {
        size_t x = x0 + i * 64;
        out_swatch_start(o, x, ys, "key");
        obmi_out_str(o, " fill=\"");
        out_pool_fill(o, 12, shades[i], 100);
        obmi_out_str(o, "\"/>");
        obmi_msg m = {.len = 0};
        obmi_msg_dec(&m, shades[i]);
        obmi_msg_str(&m, "% full");
        m.buf[m.len] = '\0';
        out_caption(o, x, ys, m.buf);
    }
    static const struct {
        const char *cls, *text;
    } states[] = {
        {"key e", "empty pool, free in its arena"},
        {"key c", "empty pool, cached by a thread"},
        {"key u", "pool never touched"},
    };
    for (unsigned i = 0; i < sizeof states / sizeof states[0]; i++) {
        size_t x = x0 + 330 + i * 180;
        out_swatch_start(o, x, ys, states[i].cls);
        obmi_out_str(o, "/>");
        out_caption(o, x, ys, states[i].text);
    }
    obmi_out_str(o, "<rect class=\"frame\"");
    out_attr(o, "x", x0);
    out_attr(o, "y", ys + 22);
    obmi_out_str(o, " width=\"40\" height=\"12\"/>");
    obmi_out_str(o, "<text");
    out_attr(o, "x", x0 + 48);
    out_attr(o, "y", ys + 32);
    obmi_out_str(o, ">arena with no pool serving a class: the spare (every pool free, kept "
                    "mapped) or one whose free pools are cached by threads</text>\n</g>\n");
}

/* One ledger line: "name  bytes  (percent of mapped)". */
static void out_ledger_line(obmi_out *o, size_t y, const char *name, size_t bytes, size_t mapped)
{
    obmi_out_str(o, "<text");
    out_attr(o, "x", MARGIN);
    out_attr(o, "y", y);
    obmi_out_str(o, ">");
    obmi_out_str(o, name);
    obmi_out_str(o, "</text><text class=\"n\"");
    out_attr(o, "x", MARGIN + 330);
    out_attr(o, "y", y);
    obmi_out_str(o, ">");
    obmi_out_num(o, bytes, 0, true);
    obmi_out_str(o, "</text><text class=\"n\"");
    out_attr(o, "x", MARGIN + 400);
    out_attr(o, "y", y);
    obmi_out_str(o, ">");
    out_percent(o, bytes, mapped);
    obmi_out_str(o, "</text>\n");
}

static void out_totals(obmi_out *o, const obm_stats_t *s, size_t y)
{
    obmi_out_str(o, "<g class=\"totals\">\n");
    out_ledger_line(o, y, "bytes in blocks in use", s->bytes_in_use, s->bytes_mapped);
    out_ledger_line(o, y + 14, "bytes in free blocks", s->bytes_free_blocks, s->bytes_mapped);
    out_ledger_line(o, y + 28, "bytes in empty pools", s->bytes_empty_pools, s->bytes_mapped);
    out_ledger_line(o, y + 42, "bytes lost to pool headers", s->bytes_pool_headers,
                    s->bytes_mapped);
    out_ledger_line(o, y + 56, "bytes lost to quantization", s->bytes_quantization,
                    s->bytes_mapped);
    out_ledger_line(o, y + 70, "bytes mapped in arenas", s->bytes_mapped, s->bytes_mapped);
    obmi_out_str(o, "<text");
    out_attr(o, "x", MARGIN);
    out_attr(o, "y", y + 92);
    obmi_out_str(o, ">");
    obmi_out_dec(o, s->pools_in_use);
    obmi_out_str(o, " pools serving a class, ");
    obmi_out_dec(o, s->pools_empty);
    obmi_out_str(o, " empty; not drawn: ");
    obmi_out_dec(o, s->large_allocs_current);
    obmi_out_str(o, " large blocks, ");
    obmi_out_num(o, s->large_bytes_current, 0, true);
    obmi_out_str(o, " bytes, held from the backing allocator</text>\n</g>\n");
}

static void out_header(obmi_out *o, const obm_stats_t *s, size_t narenas, size_t height)
{
    obmi_out_str(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\"");
    out_attr(o, "width", WIDTH);
    out_attr(o, "height", height);
    obmi_out_str(o, " viewBox=\"0 0 ");
    obmi_out_dec(o, WIDTH);
    obmi_out_str(o, " ");
    obmi_out_dec(o, height);
    obmi_out_str(o, "\">\n<style>\n"
                    "text{font-family:DejaVu Sans,Verdana,sans-serif;font-size:10px;fill:#333}\n"
                    ".t{font-size:15px;font-weight:bold;fill:#111}.h{font-weight:bold}\n"
                    ".n{text-anchor:end}\n"
                    ".e{fill:#dadada}.c{fill:#9e9e9e}.u{fill:#fff;stroke:#c4c4c4;"
                    "stroke-width:0.8}\n"
                    ".frame{fill:none;stroke:#777;stroke-width:1;stroke-dasharray:3,2}\n"
                    "</style>\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n"
                    "<text class=\"t\"");
    out_attr(o, "x", MARGIN);
    obmi_out_str(o, " y=\"24\">obm fragmentation map</text>\n<text");
    out_attr(o, "x", MARGIN);
    obmi_out_str(o, " y=\"42\">pid ");
    obmi_out_dec(o, (uintmax_t)getpid());
    obmi_out_str(o, ": ");
    obmi_out_dec(o, narenas);
    obmi_out_str(o, narenas == 1 ? " arena, " : " arenas, ");
    obmi_out_num(o, s->bytes_mapped, 0, true);
    obmi_out_str(o, " bytes mapped, ");
    out_percent(o, s->bytes_in_use, s->bytes_mapped);
    obmi_out_str(o, " of them in blocks in use; one row per arena (64 pools of 4 KiB), oldest "
                    "first</text>\n");
}

int obmi_map_print(obmi_out *o)
{
    obm_region_t *regions;
    size_t n, mapped;
    int rc = obmi_snapshot_take(&regions, &n, &mapped);
    if (rc != 0)
        return rc;
    obm_stats_t s = {.size = sizeof s};
    obm_stats_get(&s);

    size_t narenas = n / (OBMI_POOLS_PER_ARENA + 1);
    size_t rows_h = narenas == 0 ? ROW : narenas * ROW;
    size_t legend_y = TOP + rows_h + 14;
    out_header(o, &s, narenas, legend_y + LEGEND_H);
    if (narenas == 0) {
        obmi_out_str(o, "<text");
        out_attr(o, "x", MARGIN);
        out_attr(o, "y", TOP + 9);
        obmi_out_str(o, ">no arena is mapped</text>\n");
    }
    for (size_t a = 0; a < narenas; a++) {
        const obm_region_t *arena = &regions[a * (OBMI_POOLS_PER_ARENA + 1)];
        out_arena(o, arena, arena + 1, a);
    }
    out_legend(o, legend_y);
    out_totals(o, &s, legend_y + 128);
    obmi_out_str(o, "</svg>\n");
    obmi_os_unmap(regions, mapped);
    return 0;
}
