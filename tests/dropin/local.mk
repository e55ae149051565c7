# tests/dropin: plain programs, not linked to obm, run by test_*.sh with
# LD_PRELOAD=$(OBM_DROPIN) (tests/dropin/preload.sh). Each proves obm is
# the process's malloc (dlsym "obm_owns") before it tests anything.
# -fno-builtin keeps gcc from folding or eliding the malloc calls.

dist_check_SCRIPTS += \
	tests/dropin/preload.sh \
	tests/dropin/test_cxx.sh \
	tests/dropin/test_libc.sh \
	tests/dropin/test_threads.sh \
	tests/dropin/test_tls.sh \
	tests/dropin/test_fork.sh \
	tests/dropin/test_fork_handlers.sh \
	tests/dropin/test_glibc_stats.sh

if HAVE_CMOCKA
check_LTLIBRARIES += tests/dropin/libdropin.la
tests_dropin_libdropin_la_SOURCES = tests/dropin/dropin.c tests/dropin/dropin.h
tests_dropin_libdropin_la_CFLAGS = $(TEST_CFLAGS) -fno-builtin

DROPIN_CFLAGS = $(TEST_CFLAGS) -fno-builtin
DROPIN_CXXFLAGS = $(TEST_CXXFLAGS) $(CMOCKA_CFLAGS) -fno-builtin
DROPIN_LDADD = tests/dropin/libdropin.la $(CMOCKA_LIBS) $(PTHREAD_LIBS) -ldl

check_PROGRAMS += \
	tests/dropin/cxx_preload \
	tests/dropin/libc_preload \
	tests/dropin/threads_preload \
	tests/dropin/tls_preload \
	tests/dropin/fork_preload \
	tests/dropin/fork_handlers_preload \
	tests/dropin/glibc_stats_preload

tests_dropin_glibc_stats_preload_SOURCES = tests/dropin/glibc_stats.c
tests_dropin_glibc_stats_preload_CFLAGS = $(DROPIN_CFLAGS)
tests_dropin_glibc_stats_preload_LDADD = $(DROPIN_LDADD)

tests_dropin_cxx_preload_SOURCES = tests/dropin/cxx.cc
tests_dropin_cxx_preload_CXXFLAGS = $(DROPIN_CXXFLAGS)
tests_dropin_cxx_preload_LDADD = $(DROPIN_LDADD)

tests_dropin_libc_preload_SOURCES = tests/dropin/libc.c
tests_dropin_libc_preload_CFLAGS = $(DROPIN_CFLAGS)
tests_dropin_libc_preload_LDADD = $(DROPIN_LDADD)

tests_dropin_threads_preload_SOURCES = tests/dropin/threads.c
tests_dropin_threads_preload_CFLAGS = $(DROPIN_CFLAGS)
tests_dropin_threads_preload_LDADD = $(DROPIN_LDADD)

tests_dropin_tls_preload_SOURCES = tests/dropin/tls.cc
tests_dropin_tls_preload_CXXFLAGS = $(DROPIN_CXXFLAGS)
tests_dropin_tls_preload_LDADD = $(DROPIN_LDADD)

tests_dropin_fork_preload_SOURCES = tests/dropin/fork.c
tests_dropin_fork_preload_CFLAGS = $(DROPIN_CFLAGS)
tests_dropin_fork_preload_LDADD = $(DROPIN_LDADD)

tests_dropin_fork_handlers_preload_SOURCES = tests/dropin/fork_handlers.c
tests_dropin_fork_handlers_preload_CFLAGS = $(DROPIN_CFLAGS)
tests_dropin_fork_handlers_preload_LDADD = tests/dropin/libforkhandlers.la $(DROPIN_LDADD)

# A real shared library (-rpath), so its constructor runs before obm's.
check_LTLIBRARIES += tests/dropin/libforkhandlers.la
tests_dropin_libforkhandlers_la_SOURCES = tests/dropin/forkhandlers.c
tests_dropin_libforkhandlers_la_CFLAGS = $(AM_CFLAGS) -fno-builtin
tests_dropin_libforkhandlers_la_LDFLAGS = -avoid-version -rpath $(abs_builddir)
tests_dropin_libforkhandlers_la_LIBADD = $(PTHREAD_LIBS)

TESTS += \
	tests/dropin/test_cxx.sh \
	tests/dropin/test_libc.sh \
	tests/dropin/test_threads.sh \
	tests/dropin/test_tls.sh \
	tests/dropin/test_fork.sh \
	tests/dropin/test_fork_handlers.sh \
	tests/dropin/test_glibc_stats.sh
endif

# memcheck.sh: valgrind reports a program's use after free, leak and
# overflow of obm blocks (uaf.c), which only obm's client requests make
# visible: in TESTS only in a build configured with --enable-valgrind,
# absent elsewhere. uaf.c needs no cmocka.
dist_check_SCRIPTS += tests/dropin/memcheck.sh
tests_dropin_uaf_preload_SOURCES = tests/dropin/uaf.c
tests_dropin_uaf_preload_CFLAGS = $(AM_CFLAGS) -fno-builtin
tests_dropin_uaf_preload_LDADD = -ldl
if OBM_VALGRIND
TESTS += tests/dropin/memcheck.sh
check_PROGRAMS += tests/dropin/uaf_preload
TESTS_MEMCHECK_HOOKS = yes
else
TESTS_MEMCHECK_HOOKS = no
endif
AM_TESTS_ENVIRONMENT += TESTS_MEMCHECK_HOOKS=$(TESTS_MEMCHECK_HOOKS) VALGRIND='$(VALGRIND)'; \
	export TESTS_MEMCHECK_HOOKS VALGRIND;
