# Checks on the tree and the built libraries: formatting, exported symbols,
# and the option and field tables of README.md and docs/statistics.md
# against the code.
TREE_CHECKS = tests/checks/format.sh tests/checks/symbols.sh tests/checks/options_doc.sh \
	tests/checks/bench_smoke.sh tests/checks/man_pages.sh
EXTRA_DIST += tests/checks/man_options.awk
dist_check_SCRIPTS += $(TREE_CHECKS)
TESTS += $(TREE_CHECKS)
check_PROGRAMS += tests/checks/options_table
tests_checks_options_table_SOURCES = tests/checks/options_table.c
tests_checks_options_table_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/src
tests_checks_options_table_LDADD = libobminternal.la $(PTHREAD_LIBS)
tests_checks_options_table_LDFLAGS = -static
