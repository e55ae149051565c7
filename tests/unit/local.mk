# Unit tests: reach obm's internals through the core convenience library.
if HAVE_CMOCKA
UNIT_TESTS = tests/unit/test_size_class tests/unit/test_pool tests/unit/test_arena \
	tests/unit/test_arena_map tests/unit/test_heap tests/unit/test_remote tests/unit/test_purge \
	tests/unit/test_free_owner tests/unit/test_slow_paths
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)
INTERNAL_TESTS += $(UNIT_TESTS)
UNIT_LDADD = libobminternal.la $(CMOCKA_LIBS) $(PTHREAD_LIBS)
UNIT_LINKFLAGS = -static
tests_unit_test_size_class_SOURCES = tests/unit/test_size_class.c tests/unit/unit.h tests/testutil.h
tests_unit_test_size_class_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_size_class_LDADD = $(UNIT_LDADD)
tests_unit_test_size_class_LDFLAGS = $(UNIT_LINKFLAGS)
tests_unit_test_pool_SOURCES = tests/unit/test_pool.c tests/unit/unit.h tests/testutil.h
tests_unit_test_pool_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_pool_LDADD = $(UNIT_LDADD)
tests_unit_test_pool_LDFLAGS = $(UNIT_LINKFLAGS)
tests_unit_test_arena_SOURCES = tests/unit/test_arena.c tests/unit/unit.h tests/testutil.h
tests_unit_test_arena_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_arena_LDADD = $(UNIT_LDADD)
tests_unit_test_arena_LDFLAGS = $(UNIT_LINKFLAGS)
tests_unit_test_arena_map_SOURCES = tests/unit/test_arena_map.c tests/unit/unit.h tests/testutil.h
tests_unit_test_arena_map_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_arena_map_LDADD = $(UNIT_LDADD)
tests_unit_test_arena_map_LDFLAGS = $(UNIT_LINKFLAGS)
tests_unit_test_heap_SOURCES = tests/unit/test_heap.c tests/unit/unit.h tests/testutil.h
tests_unit_test_heap_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_heap_LDADD = $(UNIT_LDADD)
tests_unit_test_heap_LDFLAGS = $(UNIT_LINKFLAGS)
tests_unit_test_remote_SOURCES = tests/unit/test_remote.c tests/unit/unit.h tests/testutil.h
tests_unit_test_remote_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_remote_LDADD = $(UNIT_LDADD)
tests_unit_test_remote_LDFLAGS = $(UNIT_LINKFLAGS)
tests_unit_test_purge_SOURCES = tests/unit/test_purge.c tests/unit/unit.h tests/testutil.h
tests_unit_test_purge_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_purge_LDADD = $(UNIT_LDADD)
tests_unit_test_purge_LDFLAGS = $(UNIT_LINKFLAGS)
tests_unit_test_free_owner_SOURCES = tests/unit/test_free_owner.c tests/unit/unit.h tests/testutil.h
tests_unit_test_free_owner_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_free_owner_LDADD = $(UNIT_LDADD)
tests_unit_test_free_owner_LDFLAGS = $(UNIT_LINKFLAGS)
tests_unit_test_slow_paths_SOURCES = tests/unit/test_slow_paths.c tests/unit/unit.h tests/testutil.h
tests_unit_test_slow_paths_CFLAGS = $(TEST_CFLAGS)
tests_unit_test_slow_paths_LDADD = $(UNIT_LDADD)
tests_unit_test_slow_paths_LDFLAGS = $(UNIT_LINKFLAGS)
endif
