# examples/: one small program for each way of using obm, built by make
# check and run by tests/checks/examples.sh, so they keep working.
#   examples/dropin      plain malloc; run under the drop-in
#   examples/linked      the obm_* API, linked to libobm
#   examples/stats_diff  the statistics: a phase's difference and the report
check_PROGRAMS += examples/dropin examples/linked examples/stats_diff
examples_dropin_SOURCES = examples/dropin.c
examples_dropin_CFLAGS = $(AM_CFLAGS) -fno-builtin
examples_linked_SOURCES = examples/linked.c
examples_linked_LDADD = libobm.la
examples_stats_diff_SOURCES = examples/stats_diff.c
examples_stats_diff_LDADD = libobm.la
dist_check_SCRIPTS += tests/checks/examples.sh
TESTS += tests/checks/examples.sh
