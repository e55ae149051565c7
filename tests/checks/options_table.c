/* Prints obm's options table as the Markdown rows the README shows, so
 * tests/checks/options_doc.sh can hold the README to the code. */
#include <stdio.h>

#include "internal.h"

int main(void)
{
    for (size_t i = 0; i < obmi_options_count(); i++) {
        const char *name, *doc;
        long def, min, max;
        obmi_options_describe(i, &name, &def, &min, &max, &doc);
        printf("| `%s` | %ld | %ld..%ld | %s |\n", name, def, min, max, doc);
    }
    return 0;
}
