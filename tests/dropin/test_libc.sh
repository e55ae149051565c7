#!/bin/sh
# Drop-in: libc functions that allocate internally (TESTPLAN 21).
exec "${top_srcdir:-.}/tests/dropin/preload.sh" tests/dropin/libc_preload
