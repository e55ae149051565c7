/* The fragmentation map: obm_stats_print(write, opaque, "M") draws every
 * arena as an SVG picture, so a person sees at a glance where the mapped
 * memory goes.
 *
 * What it shows, and how to read it:
 *
 *   - One row per arena, oldest at the top, labelled with the arena's
 *     serial number ("#3"). Each row is a grey tray of 64 square cells, one
 *     per 4 KiB pool, in address order; the number at the right of the row
 *     is the share of the arena's 256 KiB in blocks handed out.
 *   - A pool serving a size class is coloured by its class (each class its
 *     own colour, neighbouring classes far apart, named in the legend), and
 *     shaded by how full it is: pale when few of its blocks are in use,
 *     deep when all are, and never as pale as a free pool. Many pale cells
 *     of one colour are the picture of fragmentation: memory held for
 *     blocks nobody uses.
 *   - A pool serving no class is grey: light grey when it is free in its
 *     arena, mid grey when a thread's heap holds it for reuse, nearly white
 *     when its page was given back to the OS, white when it was never used
 *     since its arena was mapped (neither resident).
 *   - An arena with no pool serving a class gets a frame and a word after
 *     its label: dashed for the spare (every pool free in the arena, kept
 *     mapped so the next growth does not map again), dotted for an "empty"
 *     arena (its free pools are held by threads' heaps).
 *   - Every cell and arena label has a tooltip (hover in a browser) with the
 *     address and the counts. Below the rows: the legend, then the byte
 *     ledger of obm_stats_get as a bar and a table, and the large blocks,
 *     which live in the backing allocator and are not drawn.
 *   - Above FINE_ARENAS_MAX arenas (64 MiB) the map is coarse: one cell per
 *     arena, 64 to a row, coloured by the class most of its pools serve and
 *     shaded by its bytes in use; the legend and the totals are the same.
 *
 * Structure tests rely on (tests/api/stats.c, tests/api/stats_output.sh):
 * in a coarse map one <rect class="arena-cell"> per arena and no pool
 * cell; otherwise one <g class="arena"> per arena, holding exactly one
 * <rect> per pool whose class starts with "pool" ("pool used", "pool full", "pool e" free in its
 * arena, "pool c" cached by a heap, "pool u" untouched, "pool p" purged); no other element
 * has "pool" in its class.
 *
 * It is drawn from a snapshot (obmi_snapshot_take), never from the pools,
 * and written through obmi_out without malloc, stdio or float formatting:
 * the drop-in draws it at exit, from inside the allocator.
 *
 * Renderers: plain #rrggbb fills, presentation attributes for what every
 * cell needs, CSS classes (one name each, no element selectors) for what
 * elements share, and stroke="none" at the root, because ImageMagick's own
 * SVG renderer strokes everything black by default. That renderer also
 * stops drawing at the 400th class attribute, so the header, legend and
 * totals come first in the document (the rows after them, placed above):
 * a large map in ImageMagick shows everything but the rows past the first
 * few; browsers and rsvg draw it all. */
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ---- layout, in pixels ---- */

#define MARGIN     16
#define LABEL_W    84 /* the arena label column, right-aligned against the grid */
#define CELL       10 /* a pool's square */
#define PITCH      12 /* cell plus gap */
#define ROW        15 /* one arena: tray of PITCH, then a white gap */
#define GRID_W     (OBMI_POOLS_PER_ARENA * PITCH - (PITCH - CELL))
#define PCT_W      44                   /* the per-arena percentage at the right */
#define PCT_X      (GRID_W + PCT_W - 2) /* its right edge, from the grid's left */
#define GRID_X     (MARGIN + LABEL_W)
#define WIDTH      (GRID_X + GRID_W + PCT_W + MARGIN)
#define TOP        82                          /* first row, below the title and the column heads */
#define CLASS_ROWS ((OBMI_NCLASSES + 15) / 16) /* the legend's lines of size classes */
#define LEGEND_H   (116 + CLASS_ROWS * 16)     /* from the legend's top to the totals' top */
#define TOTALS_H   188                         /* the bar, the ledger and the counts */
#define ARENA_ROWS (OBMI_POOLS_PER_ARENA + 1)  /* snapshot records per arena */
/* Above this many arenas the map draws one cell per arena, 64 to a row,
 * so a large heap's picture stays small; the totals stay exact. */
#define FINE_ARENAS_MAX 256

/* ---- numbers and attributes ---- */

/* v as 0x-prefixed lower-case hex, as a debugger prints an address. */
static void out_hex(obmi_out *o, uintptr_t v)
{
    char digits[2 + 2 * sizeof v + 1];
    size_t at = sizeof digits - 1;
    digits[at] = '\0';
    do {
        digits[--at] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v != 0);
    digits[--at] = 'x';
    digits[--at] = '0';
    obmi_out_str(o, &digits[at]);
}

/* part of whole as "12.5%" (one decimal, rounded), without floating point
 * formatting; 0.0% when whole is 0. */
static void out_percent(obmi_out *o, uintmax_t part, uintmax_t whole)
{
    uintmax_t tenths = whole == 0 ? 0 : (part * 1000 + whole / 2) / whole;
    obmi_out_dec(o, tenths / 10);
    obmi_out_str(o, ".");
    obmi_out_dec(o, tenths % 10);
    obmi_out_str(o, "%");
}

/* The same in whole percents for the narrow row column: "<1%" keeps a
 * nearly empty arena from reading as an unused one. */
static void out_percent_whole(obmi_out *o, uintmax_t part, uintmax_t whole)
{
    uintmax_t pct = whole == 0 ? 0 : (part * 100 + whole / 2) / whole;
    if (pct == 0 && part > 0) {
        obmi_out_str(o, "&lt;1%");
        return;
    }
    obmi_out_dec(o, pct);
    obmi_out_str(o, "%");
}

/* " (3.3 MiB)" (KiB, MiB or GiB, one decimal) after an exact byte count,
 * for the eye; nothing below one KiB. */
static void out_size(obmi_out *o, uintmax_t bytes)
{
    if (bytes < 1024)
        return;
    unsigned shift = bytes >= (UINTMAX_C(1) << 30) ? 30 : bytes >= (1u << 20) ? 20 : 10;
    uintmax_t unit = UINTMAX_C(1) << shift;
    uintmax_t tenths = (bytes * 10 + unit / 2) / unit;
    obmi_out_str(o, " (");
    obmi_out_dec(o, tenths / 10);
    obmi_out_str(o, ".");
    obmi_out_dec(o, tenths % 10);
    obmi_out_str(o, shift == 30 ? " GiB)" : shift == 20 ? " MiB)" : " KiB)");
}

/* n and its noun, singular for 1: "1 block", "2 blocks". */
static void out_count(obmi_out *o, uintmax_t n, const char *one, const char *many)
{
    obmi_out_num(o, n, 0, true);
    obmi_out_str(o, " ");
    obmi_out_str(o, n == 1 ? one : many);
}

/* One numeric attribute, ` name="v"`. */
static void out_attr(obmi_out *o, const char *name, uintmax_t v)
{
    obmi_out_str(o, " ");
    obmi_out_str(o, name);
    obmi_out_str(o, "=\"");
    obmi_out_dec(o, v);
    obmi_out_str(o, "\"");
}

/* ` name="v.5"`: a 1-pixel outline sits on half pixels to stay sharp;
 * v may be negative (left of a row's origin, in the label column). */
static void out_attr_half(obmi_out *o, const char *name, intmax_t v)
{
    obmi_out_str(o, " ");
    obmi_out_str(o, name);
    obmi_out_str(o, v < 0 ? "=\"-" : "=\"");
    obmi_out_dec(o, (uintmax_t)(v < 0 ? -(v + 1) : v));
    obmi_out_str(o, ".5\"");
}

/* `<text class="cls" x=".." y="..">`: the caller writes the words and the
 * closing tag. */
static void out_text_open(obmi_out *o, const char *cls, uintmax_t x, uintmax_t y)
{
    obmi_out_str(o, "<text");
    if (cls != NULL) {
        obmi_out_str(o, " class=\"");
        obmi_out_str(o, cls);
        obmi_out_str(o, "\"");
    }
    out_attr(o, "x", x);
    out_attr(o, "y", y);
    obmi_out_str(o, ">");
}

/* A whole text element of fixed words. */
static void out_text(obmi_out *o, const char *cls, uintmax_t x, uintmax_t y, const char *words)
{
    out_text_open(o, cls, x, y);
    obmi_out_str(o, words);
    obmi_out_str(o, "</text>\n");
}

/* ---- words ---- */

/* text with XML's special characters escaped (a program's name). */
static void out_escaped(obmi_out *o, const char *text)
{
    for (; *text != '\0'; text++) {
        char c[2] = {*text, '\0'};
        obmi_out_str(o, *text == '<' ? "&lt;" : *text == '>' ? "&gt;" : *text == '&' ? "&amp;" : c);
    }
}

static void out_two_digits(obmi_out *o, int v)
{
    char d[3] = {(char)('0' + v / 10), (char)('0' + v % 10), '\0'};
    obmi_out_str(o, d);
}

/* The time now, "YYYY-MM-DD HH:MM:SS UTC". */
static void out_utc_time(obmi_out *o)
{
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL)
        return;
    obmi_out_dec(o, (uintmax_t)tm.tm_year + 1900);
    obmi_out_str(o, "-");
    out_two_digits(o, tm.tm_mon + 1);
    obmi_out_str(o, "-");
    out_two_digits(o, tm.tm_mday);
    obmi_out_str(o, " ");
    out_two_digits(o, tm.tm_hour);
    obmi_out_str(o, ":");
    out_two_digits(o, tm.tm_min);
    obmi_out_str(o, ":");
    out_two_digits(o, tm.tm_sec);
    obmi_out_str(o, " UTC");
}

/* ---- colours ---- */

/* "#rrggbb" of an HSL colour (hue in degrees, saturation and lightness in
 * 0..1), computed here so that every renderer gets a plain hex fill. */
static void hsl_hex(double hue, double sat, double light, char hex[8])
{
    double chroma = (1 - (light > 0.5 ? 2 * light - 1 : 1 - 2 * light)) * sat;
    double h6 = hue / 60;
    int sector = (int)h6 > 5 ? 5 : (int)h6;
    double frac = h6 - sector;
    double x = chroma * (sector % 2 == 0 ? frac : 1 - frac);
    double rgb[3];
    switch (sector) {
    case 0:
        rgb[0] = chroma, rgb[1] = x, rgb[2] = 0;
        break;
    case 1:
        rgb[0] = x, rgb[1] = chroma, rgb[2] = 0;
        break;
    case 2:
        rgb[0] = 0, rgb[1] = chroma, rgb[2] = x;
        break;
    case 3:
        rgb[0] = 0, rgb[1] = x, rgb[2] = chroma;
        break;
    case 4:
        rgb[0] = x, rgb[1] = 0, rgb[2] = chroma;
        break;
    default:
        rgb[0] = chroma, rgb[1] = 0, rgb[2] = x;
        break;
    }
    double base = light - chroma / 2;
    hex[0] = '#';
    for (int i = 0; i < 3; i++) {
        int v = (int)((rgb[i] + base) * 255 + 0.5);
        v = v < 0 ? 0 : v > 255 ? 255 : v;
        hex[1 + 2 * i] = "0123456789abcdef"[v >> 4];
        hex[2 + 2 * i] = "0123456789abcdef"[v & 15];
    }
    hex[7] = '\0';
}

/* The class ramp: anchors at fractions of the class range, each a hue and
 * the lightness and saturation of a full pool there. The deep end is
 * darker where the eye sees a hue as light (cyan, green), so that a full
 * pool reads as equally full in every class. */
static const struct ramp_anchor {
    double at, hue, full_light, sat;
} ramp[] = {
    {0.00, 232, 0.46, 0.72}, /* blue: the ramp's start, class 0 */
    {0.18, 205, 0.42, 0.75}, {0.33, 175, 0.34, 0.70}, {0.47, 135, 0.34, 0.55},
    {0.60, 85, 0.36, 0.60},  {0.70, 50, 0.46, 0.85},  {0.82, 30, 0.50, 0.85},
    {1.00, -5, 0.48, 0.72}, /* red: its end */
};

/* Where class c sits on the ramp: 23 steps of 56 further on than class
 * c - 1 (23 and 56 share no factor, so every class gets its own place),
 * so neighbouring classes, whose pools often lie side by side, are far
 * apart in hue; the legend names each class's colour. */
static double class_place(int c)
{
    return (double)((c * 23) % OBMI_NCLASSES) / (OBMI_NCLASSES - 1);
}

/* Lightness of a pool with none of its blocks in use: coloured enough
 * that a nearly empty pool still reads as a pool in use, not a free one
 * (free pools are grey or white). */
#define IDLE_LIGHT 0.80

/* The fill of a pool of class c with the share full of its blocks in use:
 * the class's colour, from pale (idle) to deep (full). */
static void class_fill(int c, double full, char hex[8])
{
    double t = class_place(c);
    size_t i = 0;
    while (i + 2 < sizeof ramp / sizeof ramp[0] && t > ramp[i + 1].at)
        i++;
    const struct ramp_anchor *a = &ramp[i], *b = &ramp[i + 1];
    double u = (t - a->at) / (b->at - a->at);
    double hue = a->hue + (b->hue - a->hue) * u;
    double deep = a->full_light + (b->full_light - a->full_light) * u;
    double sat = a->sat + (b->sat - a->sat) * u;
    hsl_hex(hue < 0 ? hue + 360 : hue, sat, IDLE_LIGHT - (IDLE_LIGHT - deep) * full, hex);
}

/* ` fill="#rrggbb"` for a pool of class c with used of capacity blocks. */
static void out_class_fill(obmi_out *o, int c, size_t used, size_t capacity)
{
    char hex[8];
    class_fill(c, capacity == 0 ? 0 : (double)used / (double)capacity, hex);
    obmi_out_str(o, " fill=\"");
    obmi_out_str(o, hex);
    obmi_out_str(o, "\"");
}

/* Pools serving no class: how each is drawn and named. */
typedef struct free_pool_look {
    int state;          /* enum obm_region_state */
    const char *cls;    /* the cell's class: "pool" and a letter */
    const char *fill;   /* its colour */
    const char *legend; /* the legend's words */
    const char *tip;    /* the tooltip's words after the address */
} free_pool_look;

static const free_pool_look free_pool_looks[] = {
    {OBM_POOL_EMPTY, "pool e", "#d2d2d2", "free in its arena", "empty: free in its arena"},
    {OBM_POOL_CACHED, "pool c", "#8f8f8f", "held by a thread's heap",
     "cached: empty, held by a thread's heap"},
    {OBM_POOL_UNTOUCHED, "pool u", "#ffffff", "never used (not resident)",
     "untouched: never used, not resident"},
    {OBM_POOL_PURGED, "pool p", "#efefef", "given back to the OS",
     "purged: free, its page given back to the OS (not resident)"},
};
#define NFREE_LOOKS (sizeof free_pool_looks / sizeof free_pool_looks[0])

/* The look of a pool serving no class; an unknown state draws as free. */
static const free_pool_look *free_look(int state)
{
    for (size_t i = 0; i < NFREE_LOOKS; i++)
        if (free_pool_looks[i].state == state)
            return &free_pool_looks[i];
    return &free_pool_looks[0];
}

/* The byte ledger's five parts, in the bar and the table, in the order of
 * obm_stats_t; in use and free blocks echo the pools' blue, empty pools
 * the free pool's grey. */
typedef struct ledger_part {
    const char *name;
    const char *fill;
    size_t offset; /* of the obm_stats_t field */
} ledger_part;

static const ledger_part ledger_parts[] = {
    {"in blocks in use", "#3f6fb5", offsetof(obm_stats_t, bytes_in_use)},
    {"in free blocks of pools in use", "#a9c3e8", offsetof(obm_stats_t, bytes_free_blocks)},
    {"in empty pools", "#d2d2d2", offsetof(obm_stats_t, bytes_empty_pools)},
    {"in pool headers", "#e59866", offsetof(obm_stats_t, bytes_pool_headers)},
    {"lost to quantization (pool tails)", "#f2d27a", offsetof(obm_stats_t, bytes_quantization)},
};
#define NLEDGER (sizeof ledger_parts / sizeof ledger_parts[0])

/* A part's bytes, read through the table so bar and table stay in step. */
static size_t ledger_bytes(const obm_stats_t *s, const ledger_part *part)
{
    return *(const size_t *)((const char *)s + part->offset);
}

/* ---- the document ---- */

/* The opening: size, the shared styles, the root group that every
 * renderer inherits fonts and "no stroke" from, and the title. */
static void out_header(obmi_out *o, size_t height, size_t narenas, size_t in_use, bool coarse)
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
                    ".title{font-size:15px;font-weight:bold;fill:#111}\n"
                    ".sub{font-size:11px;fill:#555}\n"
                    ".head{font-weight:bold;text-anchor:end}\n"
                    ".lab{font-size:9px;text-anchor:end}\n"
                    "/* small grey text: left-aligned, right-aligned, centred */\n"
                    ".dim{font-size:9px;fill:#808080}\n"
                    ".dimr{font-size:9px;fill:#808080;text-anchor:end}\n"
                    ".dimc{font-size:9px;fill:#808080;text-anchor:middle}\n"
                    ".num{text-anchor:end}\n"
                    ".tray{fill:#e6e6e6}\n"
                    ".spare{fill:none;stroke:#666;stroke-dasharray:4,2}\n"
                    ".emptied{fill:none;stroke:#666;stroke-dasharray:1,2}\n"
                    "</style>\n"
                    "<g font-family=\"DejaVu Sans,Verdana,Arial,sans-serif\" font-size=\"10\" "
                    "fill=\"#333\" stroke=\"none\">\n");
    obmi_out_str(o, "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n");

    out_text_open(o, "title", MARGIN, 26);
    obmi_out_str(o, "obm fragmentation map: ");
    char comm[64];
    obmi_os_program_name(comm, sizeof comm);
    if (comm[0] != '\0') {
        out_escaped(o, comm);
        obmi_out_str(o, ", ");
    }
    obmi_out_str(o, "pid ");
    obmi_out_dec(o, (uintmax_t)getpid());
    obmi_out_str(o, ", ");
    out_utc_time(o);
    obmi_out_str(o, ", ");
    out_count(o, narenas, "arena", "arenas");
    obmi_out_str(o, ", ");
    size_t mapped = narenas * OBMI_ARENA_SIZE;
    obmi_out_num(o, mapped, 0, true);
    obmi_out_str(o, " bytes mapped");
    out_size(o, mapped);
    obmi_out_str(o, ", ");
    out_percent(o, in_use, mapped);
    obmi_out_str(o, " in use</text>\n");
    if (coarse)
        out_text(o, "sub", MARGIN, 44,
                 "Many arenas: one cell per 256 KiB arena, 64 to a row, oldest first. Colour: "
                 "the class of most of its pools. Shade: its bytes in use. Hover for details.");
    else
        out_text(o, "sub", MARGIN, 44,
                 "One row per arena, oldest first; one cell per 4 KiB pool. Colour: the pool's "
                 "size class. Shade: how many of its blocks are in use. Hover for details.");
}

/* Heads over the three columns, and pool numbers over the grid so a cell
 * can be found by its place in the arena. */
static void out_column_heads(obmi_out *o)
{
    out_text(o, "dimr", GRID_X - 10, TOP - 8, "arena");
    static const unsigned ticks[] = {0, 8, 16, 24, 32, 40, 48, 56, 63};
    for (size_t i = 0; i < sizeof ticks / sizeof ticks[0]; i++) {
        out_text_open(o, "dimc", GRID_X + ticks[i] * PITCH + CELL / 2, TOP - 8);
        obmi_out_dec(o, ticks[i]);
        obmi_out_str(o, "</text>");
    }
    obmi_out_str(o, "\n");
    out_text(o, "dimr", GRID_X + PCT_X, TOP - 8, "in use");
}

/* A legend cell at (x, y) on its own bit of tray, filled with hex. */
static void out_swatch(obmi_out *o, size_t x, size_t y, const char *hex)
{
    obmi_out_str(o, "<rect class=\"tray\"");
    out_attr(o, "x", x - 1);
    out_attr(o, "y", y - 1);
    out_attr(o, "width", CELL + 2);
    out_attr(o, "height", CELL + 2);
    obmi_out_str(o, "/><rect");
    out_attr(o, "x", x);
    out_attr(o, "y", y);
    out_attr(o, "width", CELL);
    out_attr(o, "height", CELL);
    obmi_out_str(o, " fill=\"");
    obmi_out_str(o, hex);
    obmi_out_str(o, "\"/>");
}

/* The legend, top at y: the 56 classes, the fullness ramp, the free pool
 * states, the arena frames. Headings sit in the label column. */
static void out_legend(obmi_out *o, size_t y)
{
    char hex[8];
    obmi_out_str(o, "<g class=\"legend\">\n");

    /* Size classes: 16 a line, at 75% full, with the block size. */
    out_text(o, "head", GRID_X - 10, y + 9, "size class");
    for (int c = 0; c < OBMI_NCLASSES; c++) {
        size_t x = GRID_X + (size_t)(c % 16) * 4 * PITCH, yy = y + (size_t)(c / 16) * 16;
        class_fill(c, 0.75, hex);
        out_swatch(o, x, yy, hex);
        out_text_open(o, NULL, x + CELL + 4, yy + 9);
        obmi_out_dec(o, obmi_class_size((unsigned)c));
        obmi_out_str(o, " B</text>\n");
    }

    /* Fullness: three hues from 10% to 100% in tenths. */
    size_t yf = y + 8 + CLASS_ROWS * 16;
    out_text(o, "head", GRID_X - 10, yf + 9, "blocks in use");
    static const int ramp_classes[] = {0, 15, 31};
    for (size_t r = 0; r < 3; r++) {
        for (unsigned k = 1; k <= 10; k++) {
            class_fill(ramp_classes[r], k / 10.0, hex);
            out_swatch(o, GRID_X + r * 11 * PITCH + (k - 1) * PITCH, yf, hex);
        }
        obmi_out_str(o, "\n");
    }
    for (size_t r = 0; r < 3; r++) {
        out_text(o, "dim", GRID_X + r * 11 * PITCH, yf + 22, "10%");
        out_text(o, "dimr", GRID_X + r * 11 * PITCH + 9 * PITCH + CELL, yf + 22, "100%");
    }
    out_text(o, NULL, GRID_X + 33 * PITCH + 6, yf + 9,
             "pale: few of the pool's blocks in use; deep: all of them");

    /* Pools serving no class. */
    size_t yp = yf + 40;
    out_text(o, "head", GRID_X - 10, yp + 9, "free pools");
    for (size_t i = 0; i < NFREE_LOOKS; i++) {
        size_t x = GRID_X + i * 16 * PITCH;
        out_swatch(o, x, yp, free_pool_looks[i].fill);
        out_text(o, NULL, x + CELL + 6, yp + 9, free_pool_looks[i].legend);
    }

    /* Arenas with no pool serving a class. */
    size_t ya = yf + 64;
    out_text(o, "head", GRID_X - 10, ya + 9, "arenas");
    static const struct {
        const char *cls, *word, *text;
    } frames[] = {
        {"spare", "spare", "all pools free, kept mapped for reuse"},
        {"emptied", "empty", "no pool in use, some held by threads"},
    };
    for (size_t i = 0; i < 2; i++) {
        size_t x = GRID_X + i * 22 * PITCH;
        obmi_out_str(o, "<rect class=\"");
        obmi_out_str(o, frames[i].cls);
        obmi_out_str(o, "\"");
        out_attr_half(o, "x", (intmax_t)x);
        out_attr_half(o, "y", (intmax_t)ya - 3);
        obmi_out_str(o, " width=\"40\" height=\"15\"/>");
        out_text(o, "dim", x + 6, ya + 8, frames[i].word);
        out_text(o, NULL, x + 48, ya + 9, frames[i].text);
    }
    obmi_out_str(o, "</g>\n");
}

/* One ledger line: swatch, name, bytes and share of the mapped bytes. */
static void out_ledger_line(obmi_out *o, size_t y, const char *fill, const char *name, size_t bytes,
                            size_t mapped)
{
    if (fill != NULL) {
        obmi_out_str(o, "<rect");
        out_attr(o, "x", GRID_X);
        out_attr(o, "y", y - 9);
        obmi_out_str(o, " width=\"10\" height=\"10\" fill=\"");
        obmi_out_str(o, fill);
        obmi_out_str(o, "\"/>");
    }
    out_text(o, NULL, GRID_X + 16, y, name);
    out_text_open(o, "num", GRID_X + 330, y);
    obmi_out_num(o, bytes, 0, true);
    obmi_out_str(o, "</text>");
    out_text_open(o, "num", GRID_X + 384, y);
    out_percent(o, bytes, mapped);
    obmi_out_str(o, "</text>\n");
}

/* The totals, top at y: the ledger as a bar across the grid's width (each
 * part's width in proportion, rounded so they meet), the ledger as a
 * table, then the pool, arena and large-block counts. */
static void out_totals(obmi_out *o, const obm_stats_t *s, size_t y)
{
    obmi_out_str(o, "<g class=\"totals\">\n");
    out_text(o, "head", GRID_X - 10, y + 10, "bytes");
    obmi_out_str(o, "<rect class=\"tray\"");
    out_attr(o, "x", GRID_X - 1);
    out_attr(o, "y", y - 1);
    out_attr(o, "width", GRID_W + 2);
    obmi_out_str(o, " height=\"14\"/>");
    size_t mapped = s->bytes_mapped, before = 0;
    for (size_t i = 0; i < NLEDGER && mapped > 0; i++) {
        size_t bytes = ledger_bytes(s, &ledger_parts[i]);
        size_t x0 = (size_t)((uintmax_t)before * GRID_W / mapped);
        size_t x1 = (size_t)((uintmax_t)(before + bytes) * GRID_W / mapped);
        before += bytes;
        if (x1 == x0)
            continue;
        obmi_out_str(o, "<rect");
        out_attr(o, "x", GRID_X + x0);
        out_attr(o, "y", y);
        out_attr(o, "width", x1 - x0);
        obmi_out_str(o, " height=\"12\" fill=\"");
        obmi_out_str(o, ledger_parts[i].fill);
        obmi_out_str(o, "\"/>");
    }
    obmi_out_str(o, "\n");

    size_t yl = y + 32;
    for (size_t i = 0; i < NLEDGER; i++)
        out_ledger_line(o, yl + i * 15, ledger_parts[i].fill, ledger_parts[i].name,
                        ledger_bytes(s, &ledger_parts[i]), mapped);
    obmi_out_str(o, "<rect");
    out_attr(o, "x", GRID_X + 16);
    out_attr(o, "y", yl + NLEDGER * 15 - 9);
    obmi_out_str(o, " width=\"368\" height=\"1\" fill=\"#999\"/>");
    out_ledger_line(o, yl + NLEDGER * 15 + 5, NULL, "mapped in arenas", mapped, mapped);

    size_t yc = yl + NLEDGER * 15 + 30;
    out_text(o, "head", GRID_X - 10, yc, "pools");
    out_text_open(o, NULL, GRID_X, yc);
    out_count(o, s->pools_in_use, "pool serves", "pools serve");
    obmi_out_str(o, " a size class (");
    obmi_out_num(o, s->pools_full, 0, true);
    obmi_out_str(o, " of them full), ");
    obmi_out_num(o, s->pools_empty, 0, true);
    obmi_out_str(o, " free: ");
    obmi_out_num(o, s->pools_cached, 0, true);
    obmi_out_str(o, " held by threads' heaps, ");
    obmi_out_num(o, s->pools_untouched, 0, true);
    obmi_out_str(o, " never used, ");
    obmi_out_num(o, s->pools_purged, 0, true);
    obmi_out_str(o, " given back to the OS</text>\n");

    out_text(o, "head", GRID_X - 10, yc + 16, "arenas");
    out_text_open(o, NULL, GRID_X, yc + 16);
    out_count(o, s->arenas_current, "arena", "arenas");
    obmi_out_str(o, " mapped now, at most ");
    obmi_out_num(o, s->arenas_highwater, 0, true);
    obmi_out_str(o, " at once; ");
    obmi_out_num(o, s->arenas_allocated_total, 0, true);
    obmi_out_str(o, " mapped and ");
    obmi_out_num(o, s->arenas_released_total, 0, true);
    obmi_out_str(o, " released since start</text>\n");

    out_text(o, "head", GRID_X - 10, yc + 32, "not drawn");
    out_text_open(o, NULL, GRID_X, yc + 32);
    out_count(o, s->large_allocs_current, "large block", "large blocks");
    obmi_out_str(o, " of ");
    obmi_out_num(o, s->large_bytes_current, 0, true);
    obmi_out_str(o, " bytes");
    out_size(o, s->large_bytes_current);
    obmi_out_str(o,
                 " held from the backing allocator (over 32768 bytes or aligned over 16)</text>\n");
    obmi_out_str(o, "</g>\n");
}

/* One pool cell: its class names its state, its fill its class and
 * fullness (or its free state), its tooltip its numbers. */
static void out_pool(obmi_out *o, const obm_region_t *pool, unsigned index)
{
    const free_pool_look *idle = pool->size_class < 0 ? free_look(pool->state) : NULL;
    bool part = pool->state == OBM_POOL_CONTINUED;
    obmi_out_str(o, "<rect class=\"");
    obmi_out_str(o, idle != NULL                   ? idle->cls
                    : part                         ? "pool part"
                    : pool->state == OBM_POOL_FULL ? "pool full"
                                                   : "pool used");
    obmi_out_str(o, "\"");
    out_attr(o, "x", (uintmax_t)index * PITCH);
    obmi_out_str(o, " width=\"10\" height=\"10\"");
    if (idle != NULL) {
        obmi_out_str(o, " fill=\"");
        obmi_out_str(o, idle->fill);
        obmi_out_str(o, "\"");
    } else {
        out_class_fill(o, pool->size_class, pool->used, pool->capacity);
    }
    obmi_out_str(o, "><title>");
    out_hex(o, (uintptr_t)pool->address);
    if (idle != NULL) {
        obmi_out_str(o, ": ");
        obmi_out_str(o, idle->tip);
    } else {
        obmi_out_str(o, part ? ": a later page of a medium pool, class " : ": class ");
        obmi_out_dec(o, (uintmax_t)pool->size_class);
        obmi_out_str(o, " (");
        obmi_out_dec(o, pool->block_size);
        obmi_out_str(o, " B): ");
        obmi_out_dec(o, pool->used);
        obmi_out_str(o, "/");
        obmi_out_dec(o, pool->capacity);
        obmi_out_str(o, " blocks in use");
        if (pool->remote > 0) {
            obmi_out_str(o, ", ");
            obmi_out_dec(o, pool->remote);
            obmi_out_str(o, " freed by other threads, not yet collected");
        }
    }
    obmi_out_str(o, "</title></rect>");
}

/* Bytes of blocks in use in an arena's pools (a medium pool's later
 * pages repeat its numbers: counted once). */
static size_t arena_bytes_in_use(const obm_region_t *pools)
{
    size_t bytes = 0;
    for (unsigned i = 0; i < OBMI_POOLS_PER_ARENA; i++)
        if (pools[i].size_class >= 0 && pools[i].state != OBM_POOL_CONTINUED)
            bytes += pools[i].used * pools[i].block_size;
    return bytes;
}

/* One arena's row at vertical offset y: a frame when no pool serves, the
 * label with its tooltip, the tray, 64 cells, the share in use. */
static void out_arena(obmi_out *o, const obm_region_t *arena, const obm_region_t *pools, size_t y)
{
    size_t in_use = arena_bytes_in_use(pools);
    const char *frame = arena->state == OBM_ARENA_SPARE   ? "spare"
                        : arena->state == OBM_ARENA_EMPTY ? "emptied"
                                                          : NULL;
    obmi_out_str(o, "<g class=\"arena\" transform=\"translate(");
    obmi_out_dec(o, GRID_X);
    obmi_out_str(o, ",");
    obmi_out_dec(o, y);
    obmi_out_str(o, ")\">");
    if (frame != NULL) {
        obmi_out_str(o, "<rect class=\"");
        obmi_out_str(o, frame);
        obmi_out_str(o, "\"");
        out_attr_half(o, "x", -(LABEL_W - 14));
        out_attr_half(o, "y", -3);
        out_attr(o, "width", LABEL_W - 14 + GRID_W + PCT_W + 2);
        obmi_out_str(o, " height=\"15\"/>");
    }
    obmi_out_str(o, "<g><title>arena #");
    obmi_out_dec(o, arena->arena_serial);
    obmi_out_str(o, " at ");
    out_hex(o, (uintptr_t)arena->address);
    obmi_out_str(o, frame == NULL                     ? ": "
                    : arena->state == OBM_ARENA_SPARE ? ": spare, "
                                                      : ": empty, ");
    obmi_out_dec(o, arena->used);
    obmi_out_str(o, " of 64 pools serving a class, ");
    obmi_out_num(o, in_use, 0, true);
    obmi_out_str(o, " bytes in use</title><text class=\"lab\" x=\"-10\" y=\"9\">#");
    obmi_out_dec(o, arena->arena_serial);
    if (frame != NULL)
        obmi_out_str(o, arena->state == OBM_ARENA_SPARE ? " spare" : " empty");
    obmi_out_str(o, "</text></g>");
    obmi_out_str(o, "<rect class=\"tray\" x=\"-1\" y=\"-1\"");
    out_attr(o, "width", GRID_W + 2);
    obmi_out_str(o, " height=\"12\"/>\n");
    for (unsigned i = 0; i < OBMI_POOLS_PER_ARENA; i++)
        out_pool(o, &pools[i], i);
    obmi_out_str(o, "\n");
    out_text_open(o, "dimr", PCT_X, 9);
    out_percent_whole(o, in_use, OBMI_ARENA_SIZE);
    obmi_out_str(o, "</text></g>\n");
}

/* One arena as one cell (the coarse map): the colour of the class most
 * of its pools serve, shaded by its share of bytes in use; an arena with
 * no pool serving a class looks like a free pool. */
static void out_arena_cell(obmi_out *o, const obm_region_t *arena, const obm_region_t *pools,
                           unsigned index)
{
    size_t count[OBMI_NCLASSES] = {0}, pages = 0; /* pages of pools serving a class */
    int most = -1;
    for (unsigned i = 0; i < OBMI_POOLS_PER_ARENA; i++) {
        int c = pools[i].size_class;
        if (c < 0)
            continue;
        pages++;
        count[c]++;
        if (most < 0 || count[c] > count[most])
            most = c;
    }
    size_t in_use = arena_bytes_in_use(pools);
    obmi_out_str(o, "<rect class=\"arena-cell\"");
    out_attr(o, "x", (uintmax_t)index * PITCH);
    obmi_out_str(o, " width=\"10\" height=\"10\"");
    if (most < 0) {
        obmi_out_str(o, " fill=\"");
        obmi_out_str(
            o, free_look(arena->state == OBM_ARENA_SPARE ? OBM_POOL_EMPTY : OBM_POOL_CACHED)->fill);
        obmi_out_str(o, "\"");
    } else {
        out_class_fill(o, most, in_use, pages * OBMI_POOL_SIZE);
    }
    obmi_out_str(o, "><title>arena #");
    obmi_out_dec(o, arena->arena_serial);
    obmi_out_str(o, " at ");
    out_hex(o, (uintptr_t)arena->address);
    obmi_out_str(o, ": ");
    obmi_out_dec(o, arena->used);
    obmi_out_str(o, " of 64 pools serving a class");
    if (most >= 0) {
        obmi_out_str(o, " (");
        obmi_out_dec(o, count[most]);
        obmi_out_str(o, " pages of class ");
        obmi_out_dec(o, (uintmax_t)most);
        obmi_out_str(o, ", ");
        obmi_out_dec(o, obmi_class_size((unsigned)most));
        obmi_out_str(o, " B)");
    }
    obmi_out_str(o, ", ");
    obmi_out_num(o, in_use, 0, true);
    obmi_out_str(o, " bytes in use</title></rect>");
}

/* Row r of the coarse map: arenas 64 r .. 64 r + 63 of the snapshot. */
static void out_arena_row(obmi_out *o, const obm_region_t *regions, size_t narenas, size_t r)
{
    obmi_out_str(o, "<g class=\"arena-row\" transform=\"translate(");
    obmi_out_dec(o, GRID_X);
    obmi_out_str(o, ",");
    obmi_out_dec(o, TOP + r * ROW);
    obmi_out_str(o, ")\"><text class=\"lab\" x=\"-10\" y=\"9\">#");
    obmi_out_dec(o, regions[r * OBMI_POOLS_PER_ARENA * ARENA_ROWS].arena_serial);
    obmi_out_str(o, "</text><rect class=\"tray\" x=\"-1\" y=\"-1\"");
    out_attr(o, "width", GRID_W + 2);
    obmi_out_str(o, " height=\"12\"/>\n");
    for (unsigned i = 0; i < OBMI_POOLS_PER_ARENA; i++) {
        size_t a = r * OBMI_POOLS_PER_ARENA + i;
        if (a >= narenas)
            break;
        const obm_region_t *arena = &regions[a * ARENA_ROWS];
        out_arena_cell(o, arena, arena + 1, i);
    }
    obmi_out_str(o, "</g>\n");
}

/* The whole picture from one snapshot, so every row is one moment's; the
 * snapshot is mapped memory, not malloc's, as the drop-in draws this at
 * exit. */
int obmi_map_print(obmi_out *o)
{
    obm_region_t *regions;
    size_t nregions, mapped;
    obm_stats_t s = {.size = sizeof s}; /* from the walk that made the snapshot */
    int rc = obmi_snapshot_take(&regions, &nregions, &mapped, &s);
    if (rc != 0)
        return rc;
    size_t narenas = nregions / ARENA_ROWS;
    bool coarse = narenas > FINE_ARENAS_MAX;
    size_t nrows = coarse ? (narenas + OBMI_POOLS_PER_ARENA - 1) / OBMI_POOLS_PER_ARENA : narenas;
    size_t rows_h = narenas == 0 ? 2 * ROW : nrows * ROW;
    size_t legend_y = TOP + rows_h + 22;
    size_t totals_y = legend_y + LEGEND_H;
    out_header(o, totals_y + TOTALS_H, narenas, s.bytes_in_use, coarse);
    out_legend(o, legend_y);
    out_totals(o, &s, totals_y);
    if (narenas == 0)
        out_text(o, "sub", GRID_X, TOP + 10,
                 "No arena is mapped: no small block was ever asked "
                 "for, or every arena has been released.");
    else if (!coarse)
        out_column_heads(o);
    for (size_t r = 0; coarse && r < nrows; r++)
        out_arena_row(o, regions, narenas, r);
    for (size_t a = 0; !coarse && a < narenas; a++) {
        const obm_region_t *arena = &regions[a * ARENA_ROWS];
        out_arena(o, arena, arena + 1, TOP + a * ROW);
    }
    obmi_out_str(o, "</g>\n</svg>\n");
    obmi_os_unmap(regions, mapped);
    return 0;
}
