# bench/speed.mk: the speed harness and the instruction-count program.
# Both call the plain malloc family and are not linked to obm: the same
# binary runs once per allocator (glibc, or LD_PRELOAD of jemalloc,
# mimalloc, tcmalloc or .libs/libobmalloc.so; bench/run.py does that).
# -fno-builtin keeps the compiler from eliding or merging malloc/free pairs.
# Makefile.am sets `noinst_PROGRAMS =` before including this fragment, and
# distributes bench/callgrind-pairs.sh.
#
#   bench/obm-speed    google-benchmark harness (needs libbenchmark-dev)
#   bench/obm-pairs    N malloc/free pairs, for callgrind:
#                      bench/callgrind-pairs.sh bench/obm-pairs PRELOAD SIZE live|alone

noinst_PROGRAMS += bench/obm-pairs
bench_obm_pairs_SOURCES = bench/pairs.c
bench_obm_pairs_CFLAGS = $(AM_CFLAGS) -fno-builtin

if HAVE_BENCHMARK
noinst_PROGRAMS += bench/obm-speed
bench_obm_speed_SOURCES = bench/speed.cc
bench_obm_speed_CXXFLAGS = $(AM_CXXFLAGS) $(BENCHMARK_CFLAGS) $(PTHREAD_CFLAGS) -fno-builtin
bench_obm_speed_LDADD = $(BENCHMARK_LIBS) $(PTHREAD_LIBS) -ldl
endif
