#!/bin/sh
# free keeps errno (tests/api/free_errno.c) through free, with the drop-in
# preloaded; free_errno_plain is not linked to obm and checks that obm
# really serves it.
[ -f "$OBM_DROPIN" ] || { echo "1..0 # SKIP no drop-in at $OBM_DROPIN (--disable-shared?)"; exit 0; }
exec env LD_PRELOAD="$OBM_DROPIN" "$top_builddir/tests/api/free_errno_plain"
