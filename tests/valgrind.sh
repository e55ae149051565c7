#!/bin/sh
# LOG_COMPILER for `make check` under memcheck: any error fails the test.
exec valgrind -q --error-exitcode=99 --leak-check=no --track-origins=no "$@"
