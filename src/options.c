/* Run-time options: one table (name, kind, default, accepted values, doc)
 * drives the environment parser and the README's table
 * (tests/checks/options_doc.sh checks the README against the table).
 * Read once, by the constructor; the purge options may be changed later
 * by obm_option_set (api.c), under the arena manager's lock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const char *const show_stats_words[] = {"0", "1", "json", NULL};
static const char *const purge_advice_words[] = {"dontneed", "free", NULL};
static const char *const on_error_words[] = {"abort", "report", NULL};

static const obmi_option_info option_table[OBMI_OPTION_COUNT] = {
    [OBMI_OPTION_VERBOSE] = {"OBM_VERBOSE", OBMI_OPTION_INT, 0, 0, 1, NULL,
                             "1: print obm's version and geometry to stderr at start-up, then "
                             "every option with its value and where it came from"},
    [OBMI_OPTION_SHOW_STATS] = {"OBM_SHOW_STATS", OBMI_OPTION_WORD, 0, 0, 2, show_stats_words,
                                "at exit, print the statistics report: `1` as text, `json` as "
                                "JSON (to stderr, or to `OBM_STATS_FILE`)"},
    [OBMI_OPTION_STATS_FILE] = {"OBM_STATS_FILE", OBMI_OPTION_PATH, 0, 0, 0, NULL,
                                "write the `OBM_SHOW_STATS` report (text when that is unset) "
                                "to this file instead of stderr; `%p` in it becomes the "
                                "process id, without it processes append"},
    [OBMI_OPTION_MAP] = {"OBM_MAP", OBMI_OPTION_PATH, 0, 0, 0, NULL,
                         "at exit, draw the fragmentation map (SVG) into this file; `%p` "
                         "becomes the process id"},
    [OBMI_OPTION_PURGE_DELAY_MS] = {"OBM_PURGE_DELAY_MS", OBMI_OPTION_INT, OBMI_PURGE_DELAY_DEFAULT,
                                    -1, 3600000, NULL,
                                    "give a free pool's page back to the OS once it has been free "
                                    "this long (ms); `0` at once, `-1` never"},
    [OBMI_OPTION_PURGE_ADVICE] = {"OBM_PURGE_ADVICE", OBMI_OPTION_WORD, OBMI_PURGE_DONTNEED, 0, 1,
                                  purge_advice_words,
                                  "how pages go back: `dontneed` (`MADV_DONTNEED`: RSS falls at "
                                  "once) or `free` (`MADV_FREE`: taken when the kernel needs "
                                  "memory)"},
    [OBMI_OPTION_ARENA_KEEP] = {"OBM_ARENA_KEEP", OBMI_OPTION_INT, 1, 0, 1024, NULL,
                                "entirely free arenas kept mapped (their pages are purged like "
                                "any free pool's); more are unmapped on the decay clock"},
    [OBMI_OPTION_ON_ERROR] = {"OBM_ON_ERROR", OBMI_OPTION_WORD, OBMI_ON_ERROR_ABORT, 0, 1,
                              on_error_words,
                              "on an invalid pointer, a double free or a corrupted free list: "
                              "`abort` after the one-line report, or `report` it, leak the "
                              "block and go on"},
    [OBMI_OPTION_JUNK] = {"OBM_JUNK", OBMI_OPTION_INT, 0, 0, 1, NULL,
                          "`1`: fill freed blocks with 0xdf and check them when handed out "
                          "again (write after free); `--enable-secure` builds only"},
    [OBMI_OPTION_CANARY] = {"OBM_CANARY", OBMI_OPTION_INT, 0, 0, 1, NULL,
                            "`1`: an 8-byte canary after each small block, checked by free "
                            "(overflow); `--enable-secure` builds only"},
    [OBMI_OPTION_RANDOMIZE] = {"OBM_RANDOMIZE", OBMI_OPTION_INT, 0, 0, 1, NULL,
                               "`1`: hand out a new pool's blocks in random order; "
                               "`--enable-secure` builds only"},
};

static long option_values[OBMI_OPTION_COUNT];

/* Where each option's value came from, for OBM_VERBOSE. */
enum option_source { FROM_DEFAULT, FROM_ENVIRONMENT, FROM_OPTION_SET };
static const char *const source_names[] = {"default", "environment", "obm_option_set"};
static unsigned char option_sources[OBMI_OPTION_COUNT];

/* Variables named OBM_* that obm's own tools read, not options of the
 * library: not warned about. */
static const char *const tool_variables[] = {
    "OBM_DROPIN",           /* obm-run: the drop-in to preload */
    "OBM_PYTHON_ALLOCATOR", /* bench/runtimes/python_host.c */
    NULL,
};

/* Paths are copied: the program may change its environment later. */
#define PATH_OPTION_MAX 1024
static char option_paths[OBMI_OPTION_COUNT][PATH_OPTION_MAX];

long obmi_option(obmi_option_id id)
{
    return option_values[id];
}

const char *obmi_option_path(obmi_option_id id)
{
    return option_paths[id][0] != '\0' ? option_paths[id] : NULL;
}

static void option_warn(const obmi_option_info *d, const char *value)
{
    obmi_msg m = {.len = 0};
    obmi_msg_str(&m, "obm: ignoring ");
    obmi_msg_str(&m, d->name);
    obmi_msg_str(&m, "=");
    obmi_msg_str(&m, value);
    obmi_msg_str(&m, " (expected ");
    if (d->kind == OBMI_OPTION_INT) {
        if (d->min < 0)
            obmi_msg_str(&m, "-");
        obmi_msg_dec(&m, (uintmax_t)(d->min < 0 ? -d->min : d->min));
        obmi_msg_str(&m, "..");
        obmi_msg_dec(&m, (uintmax_t)d->max);
    } else if (d->kind == OBMI_OPTION_WORD) {
        for (size_t i = 0; d->words[i] != NULL; i++) {
            obmi_msg_str(&m, i > 0 ? ", " : "");
            obmi_msg_str(&m, d->words[i]);
        }
    } else {
        obmi_msg_str(&m, "a path shorter than 1024 bytes");
    }
    obmi_msg_str(&m, ")");
    obmi_msg_emit(&m);
}

static bool parse_int(const obmi_option_info *d, const char *s, long *v)
{
    char *end;
    int saved = errno;
    errno = 0;
    *v = strtol(s, &end, 10);
    /* strtol skips leading white space and takes a '+': neither is a number here */
    char first = s[0] == '-' ? s[1] : s[0];
    bool ok = first >= '0' && first <= '9' && errno == 0 && end != s && *end == '\0' &&
              *v >= d->min && *v <= d->max;
    errno = saved;
    return ok;
}

static bool parse_word(const obmi_option_info *d, const char *s, long *v)
{
    for (long i = 0; d->words[i] != NULL; i++) {
        if (strcmp(s, d->words[i]) == 0) {
            *v = i;
            return true;
        }
    }
    return false;
}

static bool parse_value(const obmi_option_info *d, const char *s, long *v)
{
    return d->kind == OBMI_OPTION_INT ? parse_int(d, s, v) : parse_word(d, s, v);
}

/* Edit distance of a and b (short names), for "did you mean". */
static size_t distance(const char *a, size_t na, const char *b)
{
    size_t nb = strlen(b);
    if (na >= 64 || nb >= 64)
        return 64;
    size_t row[64];
    for (size_t j = 0; j <= nb; j++)
        row[j] = j;
    for (size_t i = 1; i <= na; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[nb];
}

/* The len bytes at name are exactly word. */
static bool same_name(const char *name, size_t len, const char *word)
{
    return strlen(word) == len && strncmp(name, word, len) == 0;
}

static bool known_name(const char *name, size_t len)
{
    for (int i = 0; i < OBMI_OPTION_COUNT; i++)
        if (same_name(name, len, option_table[i].name))
            return true;
    for (size_t i = 0; tool_variables[i] != NULL; i++)
        if (same_name(name, len, tool_variables[i]))
            return true;
    return false;
}

/* One line for every OBM_* variable that is no option (a misspelt one
 * would otherwise be ignored without a word), with the nearest name. */
static void warn_unknown(void)
{
    extern char **environ;
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        const char *eq = strchr(*e, '=');
        size_t len = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
        if (strncmp(*e, "OBM_", 4) != 0 || known_name(*e, len))
            continue;
        const char *nearest = NULL;
        size_t best = 3; /* a suggestion within two edits */
        for (int i = 0; i < OBMI_OPTION_COUNT; i++) {
            size_t d = distance(*e, len, option_table[i].name);
            if (d < best) {
                best = d;
                nearest = option_table[i].name;
            }
        }
        obmi_msg m = {.len = 0};
        obmi_msg_str(&m, "obm: ignoring ");
        for (size_t i = 0; i < len && m.len + 1 < sizeof m.buf; i++)
            m.buf[m.len++] = (*e)[i];
        obmi_msg_str(&m, ": no such option");
        if (nearest != NULL) {
            obmi_msg_str(&m, " (did you mean ");
            obmi_msg_str(&m, nearest);
            obmi_msg_str(&m, "?)");
        }
        obmi_msg_emit(&m);
    }
}

void obmi_options_init(void)
{
    for (int i = 0; i < OBMI_OPTION_COUNT; i++) {
        const obmi_option_info *d = &option_table[i];
        option_values[i] = d->def;
        const char *s = getenv(d->name);
        if (s == NULL || *s == '\0')
            continue;
        long v = 0;
        bool ok;
        if (d->kind == OBMI_OPTION_PATH) {
            ok = strlen(s) < PATH_OPTION_MAX;
            if (ok)
                strcpy(option_paths[i], s);
        } else {
            ok = parse_value(d, s, &v);
            if (ok)
                option_values[i] = v;
        }
        if (ok)
            option_sources[i] = FROM_ENVIRONMENT;
        else
            option_warn(d, s);
    }
    warn_unknown();
}

/* A value for option `name` given at run time (obm_option_set): its id
 * and value, or false when the name is unknown or the value out of range.
 * Paths are not taken at run time. */
bool obmi_option_parse(const char *name, const char *value, obmi_option_id *id, long *v)
{
    for (int i = 0; i < OBMI_OPTION_COUNT; i++) {
        const obmi_option_info *d = &option_table[i];
        if (strcmp(name, d->name) != 0 || d->kind == OBMI_OPTION_PATH)
            continue;
        *id = (obmi_option_id)i;
        return parse_value(d, value, v);
    }
    return false;
}

/* A purge option's new value (obm_option_set), under the manager's lock,
 * the only place they are read after start-up. */
void obmi_option_store(obmi_option_id id, long v)
{
    option_values[id] = v;
    option_sources[id] = FROM_OPTION_SET;
}

/* OBM_VERBOSE: option id, its value and where it came from, a line. */
void obmi_option_print(obmi_option_id id)
{
    int i = (int)id;
    const obmi_option_info *d = &option_table[i];
    obmi_msg m = {.len = 0};
    obmi_msg_str(&m, "obm: option ");
    obmi_msg_str(&m, d->name);
    obmi_msg_str(&m, "=");
    long v = option_values[i];
    if (d->kind == OBMI_OPTION_PATH) {
        obmi_msg_str(&m, option_paths[i]);
    } else if (d->kind == OBMI_OPTION_WORD) {
        obmi_msg_str(&m, d->words[v]);
    } else {
        if (v < 0)
            obmi_msg_str(&m, "-");
        obmi_msg_dec(&m, (uintmax_t)(v < 0 ? -v : v));
    }
    obmi_msg_str(&m, " (");
    obmi_msg_str(&m, source_names[option_sources[i]]);
    obmi_msg_str(&m, ")");
    obmi_msg_emit(&m);
}

/* OBM_VERBOSE at start: every option, a line each. */
void obmi_options_print(void)
{
    for (int i = 0; i < OBMI_OPTION_COUNT; i++)
        obmi_option_print((obmi_option_id)i);
}

/* For the options_table tool (the README's table). */
size_t obmi_options_count(void)
{
    return OBMI_OPTION_COUNT;
}

const obmi_option_info *obmi_options_describe(size_t i)
{
    return &option_table[i];
}
