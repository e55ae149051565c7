#!/bin/sh
# LOG_COMPILER for `make check` under memcheck: any error fails the test.
# --trace-children=yes: the death tests, the purge-delay cases and the
# secure cases exec the test program again, and those children run under
# memcheck too (a fork's child always does), with the same options. The
# suppressions are the writes the tests make on purpose (valgrind.supp).
# Some children run natively (--trace-children-skip-by-arg), as the cases
# are about the process without valgrind:
#   free_stack_var, large_* (hardening.c) must die of glibc's abort on
#                   freeing a stack address or a block twice; memcheck's
#                   free reports it and returns
#   fifty, default_delay (purge.c) time their frees against a purge delay
#                   of 50 and 100 ms, which memcheck's pace cannot keep
exec valgrind -q --trace-children=yes --trace-children-skip-by-arg=free_stack_var,large_*,fifty,default_delay \
    --suppressions="$(dirname "$0")/valgrind.supp" \
    --error-exitcode=99 --leak-check=no --track-origins=no "$@"
