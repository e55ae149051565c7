#!/bin/sh
# Drop-in: libc functions that allocate internally (CHECKLIST 21).
exec "${top_srcdir:-.}/tests/dropin/preload.sh" tests/dropin/libc_preload
