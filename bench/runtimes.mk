# bench/runtimes: runtimes that link obm as their own allocator, the way an
# embedder wires it in (docs/runtimes.md). Built when
# configure finds the runtime's headers; bench/run.py and
# tests/real/test_runtimes.sh use them.
#
#   bench/obm-python   CPython with obm in the MEM and OBJ domains
#   bench/obm-lua      Lua 5.4 with obm as its lua_Alloc (--default-alloc: Lua's own)
#
# -no-install: real executables (no libtool wrapper), so a script's
# sys.executable and child processes are the host itself.

EXTRA_DIST += bench/runtimes/workload.py bench/runtimes/shapes.py bench/runtimes/workload.lua

if HAVE_PYTHON_EMBED
noinst_PROGRAMS += bench/obm-python
bench_obm_python_SOURCES = bench/runtimes/python_host.c
bench_obm_python_CFLAGS = $(AM_CFLAGS) $(PYTHON_EMBED_CFLAGS)
bench_obm_python_LDADD = libobm.la $(PYTHON_EMBED_LIBS)
bench_obm_python_LDFLAGS = -no-install
endif

if HAVE_LUA
noinst_PROGRAMS += bench/obm-lua
bench_obm_lua_SOURCES = bench/runtimes/lua_host.c
bench_obm_lua_CFLAGS = $(AM_CFLAGS) $(LUA_CFLAGS)
bench_obm_lua_LDADD = libobm.la $(LUA_LIBS)
bench_obm_lua_LDFLAGS = -no-install
endif
