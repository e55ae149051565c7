/* Prints obm's options table, then its statistics fields, as the Markdown
 * rows README.md and docs/statistics.md show, so tests/checks/options_doc.sh
 * can hold them to the code: `options_table options` or `options_table fields`. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static void print_options(void)
{
    for (size_t i = 0; i < obmi_options_count(); i++) {
        const obmi_option_info *d = obmi_options_describe(i);
        printf("| `%s` | ", d->name);
        if (d->kind == OBMI_OPTION_INT) {
            printf("%ld | %ld..%ld", d->def, d->min, d->max);
        } else if (d->kind == OBMI_OPTION_WORD) {
            printf("`%s` |", d->words[d->def]);
            for (size_t w = 0; d->words[w] != NULL; w++)
                printf("%s `%s`", w > 0 ? "," : "", d->words[w]);
        } else {
            printf("unset | a path");
        }
        printf(" | %s |\n", d->doc);
    }
}

static const char *kind_word(obmi_field_kind k)
{
    return k == OBMI_FIELD_COUNT ? "count" : k == OBMI_FIELD_LEVEL ? "level" : "fixed";
}

/* Every size_t of the struct has exactly one row: the fields tile it. */
static int fields_cover(const obmi_stats_field *f, size_t n, size_t bytes)
{
    unsigned char seen[sizeof(obm_stats_t) / sizeof(size_t)] = {0};
    for (size_t i = 0; i < n; i++) {
        size_t k = f[i].offset / sizeof(size_t);
        if (f[i].offset % sizeof(size_t) != 0 || f[i].offset >= bytes || seen[k]++)
            return 0;
    }
    return n * sizeof(size_t) == bytes;
}

static int print_fields(void)
{
    if (!fields_cover(obmi_stats_fields, obmi_stats_nfields, offsetof(obm_stats_t, classes)) ||
        !fields_cover(obmi_class_fields, obmi_class_nfields, sizeof(obm_class_stats_t))) {
        fprintf(stderr, "options_table: the field tables do not cover obm_stats_t\n");
        return 1;
    }
    for (size_t i = 0; i < obmi_stats_nfields; i++)
        printf("| `%s` | %s | %s |\n", obmi_stats_fields[i].name,
               kind_word(obmi_stats_fields[i].kind), obmi_stats_fields[i].doc);
    for (size_t i = 0; i < obmi_class_nfields; i++)
        printf("| `classes[c].%s` | %s | %s |\n", obmi_class_fields[i].name,
               kind_word(obmi_class_fields[i].kind), obmi_class_fields[i].doc);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "options") == 0)
        print_options();
    else if (argc == 2 && strcmp(argv[1], "fields") == 0)
        return print_fields();
    else
        return fprintf(stderr, "usage: options_table options|fields\n"), 2;
    return 0;
}
