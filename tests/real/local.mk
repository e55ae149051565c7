# tests/real: real programs with and without the drop-in preloaded; the
# outputs must match byte for byte, and each run proves obm was active.
# A script prints "1..0 # SKIP" when its program is not installed.

REAL_TESTS = tests/real/test_python.sh tests/real/test_sqlite.sh \
	tests/real/test_cpython_regrtest.sh tests/real/test_obm_run.sh tests/real/test_runtimes.sh
dist_check_SCRIPTS += $(REAL_TESTS)
TESTS += $(REAL_TESTS)
EXTRA_DIST += tests/real/common.sh tests/real/alloc_heavy.py tests/real/sqlite_workload.awk

# The probe preloaded beside obm into sqlite3 (a program we cannot change)
# to show obm serves its malloc; -rpath makes libtool build the shared module.
check_LTLIBRARIES += tests/real/obmprobe.la
tests_real_obmprobe_la_SOURCES = tests/real/obmprobe.c
tests_real_obmprobe_la_CFLAGS = $(AM_CFLAGS) -fno-builtin
tests_real_obmprobe_la_LDFLAGS = -module -avoid-version -rpath $(abs_builddir)
tests_real_obmprobe_la_LIBADD = -ldl

# obm-run on a process, its child and its grandchild.
dist_check_SCRIPTS += tests/real/test_obm_run_tree.sh
TESTS += tests/real/test_obm_run_tree.sh

# The reports at exit arrive: closed stderr, paths, appending, errors.
dist_check_SCRIPTS += tests/real/test_reports.sh
TESTS += tests/real/test_reports.sh

# OBM_* variables that are no option, and values with stray characters.
dist_check_SCRIPTS += tests/real/test_options_env.sh
TESTS += tests/real/test_options_env.sh

# OBM_VERBOSE from the environment, in fresh processes.
dist_check_SCRIPTS += tests/real/test_verbose.sh
TESTS += tests/real/test_verbose.sh
