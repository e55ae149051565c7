# tests/fuzz: a libFuzzer harness over the obm_* API (fuzz_ops.c), its seed
# corpus (corpus/, written by make_corpus.py), a short run for `make check`
# (fuzz_run.sh, FUZZ_SECONDS, default 60) and `make fuzz` for long ones.
# The harness and its test are built and listed only when the compiler has
# libFuzzer (configure: HAVE_LIBFUZZER, e.g. CC=clang); elsewhere the test
# is not in TESTS at all.

dist_check_SCRIPTS += tests/fuzz/fuzz_run.sh
EXTRA_DIST += tests/fuzz/make_corpus.py tests/fuzz/corpus tests/fuzz/coverage-ignore.txt

FUZZ_TESTS =
FUZZERS =
if HAVE_LIBFUZZER
FUZZ_TESTS += tests/fuzz/fuzz_run.sh
TESTS += $(FUZZ_TESTS)
FUZZ_CFLAGS = -fsanitize=fuzzer-no-link
FUZZERS += tests/fuzz/fuzz_ops
check_PROGRAMS += $(FUZZERS)
# libobminternal's sources again, with libFuzzer's coverage instrumentation:
# the feedback that steers the fuzzer must come from obm's own branches,
# not only from the harness's.
check_LTLIBRARIES += tests/fuzz/libobmfuzz.la
tests_fuzz_libobmfuzz_la_SOURCES = $(libobmcore_la_SOURCES) $(libobminternal_la_SOURCES)
tests_fuzz_libobmfuzz_la_CFLAGS = $(AM_CFLAGS) $(OBM_LIB_CFLAGS) $(FUZZ_CFLAGS) \
	-fsanitize-coverage-ignorelist=$(srcdir)/tests/fuzz/coverage-ignore.txt
tests_fuzz_fuzz_ops_SOURCES = tests/fuzz/fuzz_ops.c
tests_fuzz_fuzz_ops_CFLAGS = $(AM_CFLAGS) -I$(top_srcdir)/src $(FUZZ_CFLAGS)
tests_fuzz_fuzz_ops_LDADD = tests/fuzz/libobmfuzz.la $(PTHREAD_LIBS)
tests_fuzz_fuzz_ops_LDFLAGS = -static -fsanitize=fuzzer
endif

# `make fuzz [FUZZ_TIME=seconds] [FUZZ_FLAGS='-jobs=2 -workers=2']`: the
# seed corpus is only read; new inputs go to tests/fuzz/fuzz-corpus and
# crashing ones to tests/fuzz/fuzz-artifacts, both in the build directory.
FUZZ_TIME = 300
FUZZ_FLAGS =
if HAVE_LIBFUZZER
fuzz: tests/fuzz/fuzz_ops
	@mkdir -p tests/fuzz/fuzz-corpus tests/fuzz/fuzz-artifacts
	./tests/fuzz/fuzz_ops -max_total_time=$(FUZZ_TIME) -timeout=30 \
		-artifact_prefix=tests/fuzz/fuzz-artifacts/ $(FUZZ_FLAGS) \
		tests/fuzz/fuzz-corpus $(srcdir)/tests/fuzz/corpus
else
fuzz:
	@echo "make fuzz: needs a compiler with libFuzzer (configure CC=clang)" >&2; exit 1
endif

# test.sh builds only what its fuzz run needs, and runs only its test.
print-fuzzers:
	@echo $(FUZZERS)
print-fuzz-tests:
	@echo $(FUZZ_TESTS)

distclean-local: distclean-fuzz
distclean-fuzz:
	-rm -rf tests/fuzz/fuzz-corpus tests/fuzz/fuzz-artifacts tests/fuzz/fuzz-run.*
.PHONY: fuzz print-fuzzers print-fuzz-tests distclean-fuzz
