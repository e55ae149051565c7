/* Run-time options: one table (name, default, range, doc) drives the
 * environment parser, the verbose printout and the README's table
 * (tests/options_doc.sh checks the README against `obm-options`). */
#include <errno.h>
#include <stdlib.h>

#include "internal.h"

typedef struct option_desc {
    const char *name; /* environment variable */
    long def;         /* default */
    long min, max;    /* accepted range; others are reported and ignored */
    const char *doc;  /* one line for the README */
} option_desc;

static const option_desc option_table[OBMI_OPTION_COUNT] = {
    [OBMI_OPTION_VERBOSE] = {"OBM_VERBOSE", 0, 0, 1,
                             "1: print obm's version and geometry to stderr at start-up"},
};

static long option_values[OBMI_OPTION_COUNT] = {
    [OBMI_OPTION_VERBOSE] = 0,
};

long obmi_option(obmi_option_id id)
{
    return option_values[id];
}

static void option_warn(const option_desc *d, const char *value)
{
    obmi_msg m = {.len = 0};
    obmi_msg_str(&m, "obm: ignoring ");
    obmi_msg_str(&m, d->name);
    obmi_msg_str(&m, "=");
    obmi_msg_str(&m, value);
    obmi_msg_str(&m, " (expected ");
    obmi_msg_dec(&m, (uintmax_t)d->min);
    obmi_msg_str(&m, "..");
    obmi_msg_dec(&m, (uintmax_t)d->max);
    obmi_msg_str(&m, ")");
    obmi_msg_emit(&m);
}

void obmi_options_init(void)
{
    for (int i = 0; i < OBMI_OPTION_COUNT; i++) {
        const option_desc *d = &option_table[i];
        option_values[i] = d->def;
        const char *s = getenv(d->name);
        if (s == NULL || *s == '\0')
            continue;
        char *end;
        int saved = errno;
        errno = 0;
        long v = strtol(s, &end, 10);
        bool ok = errno == 0 && *end == '\0' && v >= d->min && v <= d->max;
        errno = saved;
        if (ok)
            option_values[i] = v;
        else
            option_warn(d, s);
    }
}

/* For the obm-options tool: the table as Markdown rows. */
size_t obmi_options_count(void)
{
    return OBMI_OPTION_COUNT;
}

void obmi_options_describe(size_t i, const char **name, long *def, long *min, long *max,
                           const char **doc)
{
    const option_desc *d = &option_table[i];
    *name = d->name;
    *def = d->def;
    *min = d->min;
    *max = d->max;
    *doc = d->doc;
}
