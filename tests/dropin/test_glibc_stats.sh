#!/bin/sh
# Drop-in: mallinfo, mallinfo2, malloc_info, malloc_stats, malloc_trim.
exec "${top_srcdir:-.}/tests/dropin/preload.sh" tests/dropin/glibc_stats_preload
