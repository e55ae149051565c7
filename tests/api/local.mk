# tests/api: the public API. Each case is written once and runs twice
# (tests/api/api.h): *_obm through the obm_* functions of libobm, and
# *_plain, not linked to obm, through malloc with the drop-in preloaded by
# *_preload.sh.

if HAVE_CMOCKA
API_OBM_LIBS = libobm.la $(CMOCKA_LIBS)
# -no-install: a real executable, not libtool's wrapper script, so valgrind
# (test.sh) checks the test itself.
API_OBM_LINKFLAGS = -no-install
# -fno-builtin: the compiler must not fold or elide calls to malloc & co.
API_PLAIN_FLAGS = $(TEST_CFLAGS) -DOBM_API_PRELOAD -fno-builtin
API_PLAIN_LIBS = $(CMOCKA_LIBS) -ldl

API_PRELOADED_TESTS = \
	tests/api/semantics_preload.sh tests/api/align_preload.sh \
	tests/api/contents_preload.sh tests/api/invalid_preload.sh
API_OBM_TESTS = \
	tests/api/semantics_obm tests/api/align_obm \
	tests/api/contents_obm tests/api/invalid_obm
# Under RLIMIT_AS: not for valgrind or ASan, which need address space of
# their own, so not in INTERNAL_TESTS.
API_OOM_TESTS = tests/api/oom_obm tests/api/oom_preload.sh

check_PROGRAMS += $(API_OBM_TESTS) tests/api/oom_obm \
	tests/api/semantics_plain tests/api/align_plain \
	tests/api/contents_plain tests/api/invalid_plain tests/api/oom_plain
TESTS += $(API_OBM_TESTS) $(API_PRELOADED_TESTS) $(API_OOM_TESTS)
INTERNAL_TESTS += $(API_OBM_TESTS)
dist_check_SCRIPTS += $(API_PRELOADED_TESTS) tests/api/oom_preload.sh

tests_api_semantics_obm_SOURCES = tests/api/semantics.c tests/api/api.h
tests_api_semantics_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_semantics_obm_LDADD = $(API_OBM_LIBS)
tests_api_semantics_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_semantics_plain_SOURCES = $(tests_api_semantics_obm_SOURCES)
tests_api_semantics_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_semantics_plain_LDADD = $(API_PLAIN_LIBS)

tests_api_align_obm_SOURCES = tests/api/align.c tests/api/api.h
tests_api_align_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_align_obm_LDADD = $(API_OBM_LIBS)
tests_api_align_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_align_plain_SOURCES = $(tests_api_align_obm_SOURCES)
tests_api_align_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_align_plain_LDADD = $(API_PLAIN_LIBS)

tests_api_contents_obm_SOURCES = tests/api/contents.c tests/api/api.h
tests_api_contents_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_contents_obm_LDADD = $(API_OBM_LIBS)
tests_api_contents_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_contents_plain_SOURCES = $(tests_api_contents_obm_SOURCES)
tests_api_contents_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_contents_plain_LDADD = $(API_PLAIN_LIBS)

tests_api_invalid_obm_SOURCES = tests/api/invalid.c tests/api/api.h tests/api/death.h
tests_api_invalid_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_invalid_obm_LDADD = $(API_OBM_LIBS)
tests_api_invalid_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_invalid_plain_SOURCES = $(tests_api_invalid_obm_SOURCES)
tests_api_invalid_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_invalid_plain_LDADD = $(API_PLAIN_LIBS)

tests_api_oom_obm_SOURCES = tests/api/oom.c tests/api/api.h
tests_api_oom_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_oom_obm_LDADD = $(API_OBM_LIBS) $(PTHREAD_LIBS)
tests_api_oom_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_oom_plain_SOURCES = $(tests_api_oom_obm_SOURCES)
tests_api_oom_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_oom_plain_LDADD = $(API_PLAIN_LIBS) $(PTHREAD_LIBS)

# CHECKLIST group H (hardening): death tests through death.h, as invalid.c;
# its cross-thread cases start threads, so ThreadSanitizer runs it too.
API_OBM_TESTS += tests/api/hardening_obm
THREAD_TESTS += tests/api/hardening_obm
API_PRELOADED_TESTS += tests/api/hardening_preload.sh
check_PROGRAMS += tests/api/hardening_plain

tests_api_hardening_obm_SOURCES = tests/api/hardening.c tests/api/api.h tests/api/death.h
tests_api_hardening_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_hardening_obm_LDADD = $(API_OBM_LIBS) $(PTHREAD_LIBS)
tests_api_hardening_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_hardening_plain_SOURCES = $(tests_api_hardening_obm_SOURCES)
tests_api_hardening_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_hardening_plain_LDADD = $(API_PLAIN_LIBS) $(PTHREAD_LIBS)

# CHECKLIST 33 stress_content: 8 threads for 25 rounds, a few seconds (about
# 14 s under valgrind), so with the other obm_* API tests in INTERNAL_TESTS.
API_OBM_TESTS += tests/api/stress_obm
THREAD_TESTS += tests/api/stress_obm
API_PRELOADED_TESTS += tests/api/stress_preload.sh
check_PROGRAMS += tests/api/stress_plain
# CHECKLIST 37 rss_returns: RSS is what it measures, and valgrind and ASan
# change RSS, so not in INTERNAL_TESTS.
API_RSS_TESTS = tests/api/rss_obm tests/api/rss_preload.sh
check_PROGRAMS += tests/api/rss_obm tests/api/rss_plain
TESTS += $(API_RSS_TESTS)
dist_check_SCRIPTS += tests/api/rss_preload.sh

tests_api_stress_obm_SOURCES = tests/api/stress.c tests/api/api.h tests/api/threaded.h
tests_api_stress_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_stress_obm_LDADD = $(API_OBM_LIBS) $(PTHREAD_LIBS)
tests_api_stress_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_stress_plain_SOURCES = $(tests_api_stress_obm_SOURCES)
tests_api_stress_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_stress_plain_LDADD = $(API_PLAIN_LIBS) $(PTHREAD_LIBS)

# Threads against per-thread heaps: cross-thread frees, 100,000 short-lived
# threads, key destructors that allocate, blocks left by exited threads, and
# fork under load. Its work shrinks under valgrind and the sanitizers.
API_OBM_TESTS += tests/api/threads_obm
THREAD_TESTS += tests/api/threads_obm
API_PRELOADED_TESTS += tests/api/threads_preload.sh
check_PROGRAMS += tests/api/threads_plain

tests_api_threads_obm_SOURCES = tests/api/threads.c tests/api/api.h tests/api/threaded.h
tests_api_threads_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_threads_obm_LDADD = $(API_OBM_LIBS) $(PTHREAD_LIBS)
tests_api_threads_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_threads_plain_SOURCES = $(tests_api_threads_obm_SOURCES)
tests_api_threads_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_threads_plain_LDADD = $(API_PLAIN_LIBS) $(PTHREAD_LIBS)

tests_api_rss_obm_SOURCES = tests/api/rss.c tests/api/api.h
tests_api_rss_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_rss_obm_LDADD = $(API_OBM_LIBS)
tests_api_rss_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_rss_plain_SOURCES = $(tests_api_rss_obm_SOURCES)
tests_api_rss_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_rss_plain_LDADD = $(API_PLAIN_LIBS)
endif

# The statistics API (tests/api/stats.c): exact counts need a process where
# only the test allocates through obm, so it is built against libobm only
# (no preloaded twin). With its threaded cases (CHECKLIST 41) it also runs
# under valgrind, the sanitizers and ThreadSanitizer (test.sh), in about 6 s
# under valgrind. stats_output.sh checks the JSON and SVG reports that
# `stats_obm --dump DIR` writes, with python3 and xmllint.
if HAVE_CMOCKA
API_OBM_TESTS += tests/api/stats_obm
THREAD_TESTS += tests/api/stats_obm
TESTS += tests/api/stats_output.sh
dist_check_SCRIPTS += tests/api/stats_output.sh
tests_api_stats_obm_SOURCES = tests/api/stats.c tests/api/api.h tests/api/threaded.h
tests_api_stats_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_stats_obm_LDADD = $(API_OBM_LIBS) $(PTHREAD_LIBS)
tests_api_stats_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
endif

# Purge (tests/api/purge.c, built three ways): purge_obm holds the cases
# that measure no residency (obm_trim's return, the purge delay in fresh
# processes, pools reused after their purge), so it runs under valgrind and
# the sanitizers too, ThreadSanitizer included (obm_trim from a second
# thread); purge_rss_obm holds the one that reads RSS and
# mincore, which valgrind and ASan change, so it stays out of
# INTERNAL_TESTS (as rss_obm does); purge_plain, run only with the drop-in
# preloaded (purge_preload.sh), holds both. purge_stress.sh runs the
# threaded stress programs with every free pool purged at once
# (OBM_PURGE_DELAY_MS=0).
if HAVE_CMOCKA
API_OBM_TESTS += tests/api/purge_obm
THREAD_TESTS += tests/api/purge_obm
API_PURGE_TESTS = tests/api/purge_rss_obm tests/api/purge_preload.sh tests/api/purge_stress.sh
check_PROGRAMS += tests/api/purge_rss_obm tests/api/purge_plain
TESTS += $(API_PURGE_TESTS)
dist_check_SCRIPTS += tests/api/purge_preload.sh tests/api/purge_stress.sh

tests_api_purge_obm_SOURCES = tests/api/purge.c tests/api/api.h
tests_api_purge_obm_CFLAGS = $(TEST_CFLAGS) -DPURGE_CASES=1
tests_api_purge_obm_LDADD = $(API_OBM_LIBS) $(PTHREAD_LIBS)
tests_api_purge_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_purge_rss_obm_SOURCES = $(tests_api_purge_obm_SOURCES)
tests_api_purge_rss_obm_CFLAGS = $(TEST_CFLAGS) -DPURGE_CASES=2
tests_api_purge_rss_obm_LDADD = $(API_OBM_LIBS)
tests_api_purge_rss_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
tests_api_purge_plain_SOURCES = $(tests_api_purge_obm_SOURCES)
tests_api_purge_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_purge_plain_LDADD = $(API_PLAIN_LIBS) $(PTHREAD_LIBS)
endif

# The options of an --enable-secure build (src/secure.c), on and off; in
# other builds, that they are refused. libobm only: the cases need
# configure's answer at compile time.
if HAVE_CMOCKA
API_OBM_TESTS += tests/api/secure_obm
check_PROGRAMS += tests/api/secure_obm
tests_api_secure_obm_SOURCES = tests/api/secure.c tests/api/api.h tests/api/death.h
tests_api_secure_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_secure_obm_LDADD = $(API_OBM_LIBS)
tests_api_secure_obm_LDFLAGS = $(API_OBM_LINKFLAGS)
endif

# ASan reports a use after free and an overflow of obm blocks (asan_uaf.c):
# run by test.sh's build-sanitize (SANITIZE_TESTS), in TESTS only in a
# build with ASan (configure: OBM_ASAN); not in INTERNAL_TESTS, which
# valgrind runs too.
SANITIZE_TESTS += tests/api/asan_uaf
check_PROGRAMS += tests/api/asan_uaf
if OBM_ASAN
TESTS += tests/api/asan_uaf
endif
tests_api_asan_uaf_SOURCES = tests/api/asan_uaf.c
tests_api_asan_uaf_LDADD = libobm.la
tests_api_asan_uaf_LDFLAGS = -no-install

# free keeps errno where semantics.c's case does not reach (remote frees,
# abandoned heaps, purges and releases, failing ones too): libobm and the
# drop-in. The programs define madvise and munmap to make them fail, and
# export them (-Wl,-E) so that obm's calls reach them.
if HAVE_CMOCKA
API_OBM_TESTS += tests/api/free_errno_obm
THREAD_TESTS += tests/api/free_errno_obm
API_PRELOADED_TESTS += tests/api/free_errno_preload.sh
check_PROGRAMS += tests/api/free_errno_plain
tests_api_free_errno_obm_SOURCES = tests/api/free_errno.c tests/api/api.h tests/api/death.h
tests_api_free_errno_obm_CFLAGS = $(TEST_CFLAGS)
tests_api_free_errno_obm_LDADD = $(API_OBM_LIBS) $(PTHREAD_LIBS)
tests_api_free_errno_obm_LDFLAGS = $(API_OBM_LINKFLAGS) -Wl,-E
tests_api_free_errno_plain_SOURCES = $(tests_api_free_errno_obm_SOURCES)
tests_api_free_errno_plain_CFLAGS = $(API_PLAIN_FLAGS)
tests_api_free_errno_plain_LDADD = $(API_PLAIN_LIBS) $(PTHREAD_LIBS)
tests_api_free_errno_plain_LDFLAGS = -Wl,-E
endif
