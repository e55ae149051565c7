# bench/mem: memory and fragmentation workloads, plain C programs that use
# only malloc and free. Each is run unchanged under every allocator (glibc,
# or LD_PRELOAD of obm's drop-in, jemalloc, mimalloc, tcmalloc, TBB) by
# bench/run.py and prints one JSON object on one line; see the comment at
# the top of each source. Included from Makefile.am.
#
# -fno-builtin: the compiler must not fold or elide calls to malloc, free
# and memset. The programs link to no obm library. Makefile.am must set
# `noinst_PROGRAMS =` before this fragment is included.

noinst_PROGRAMS += \
	bench/obm-mem-random90 bench/obm-mem-pinning \
	bench/obm-mem-phased bench/obm-mem-churn bench/obm-mem-skewed
BENCH_MEM_FLAGS = $(AM_CFLAGS) -fno-builtin

bench_obm_mem_random90_SOURCES = bench/mem/random90.c bench/mem/memutil.h
bench_obm_mem_random90_CFLAGS = $(BENCH_MEM_FLAGS)

bench_obm_mem_pinning_SOURCES = bench/mem/pinning.c bench/mem/memutil.h
bench_obm_mem_pinning_CFLAGS = $(BENCH_MEM_FLAGS)

bench_obm_mem_phased_SOURCES = bench/mem/phased.c bench/mem/memutil.h
bench_obm_mem_phased_CFLAGS = $(BENCH_MEM_FLAGS)

bench_obm_mem_churn_SOURCES = bench/mem/churn.c bench/mem/memutil.h
bench_obm_mem_churn_CFLAGS = $(BENCH_MEM_FLAGS)

bench_obm_mem_skewed_SOURCES = bench/mem/skewed.c bench/mem/memutil.h
bench_obm_mem_skewed_CFLAGS = $(BENCH_MEM_FLAGS)
