#!/bin/sh
# Drop-in: fork with live blocks and from a loaded threaded process (CHECKLIST 34, 35).
exec "${top_srcdir:-.}/tests/dropin/preload.sh" tests/dropin/fork_preload
