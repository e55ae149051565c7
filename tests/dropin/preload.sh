#!/bin/sh
# Run one drop-in test program (plain, not linked to obm) with the drop-in
# preloaded; the program prints TAP. Only the program is preloaded: the
# harness, this shell and timeout(1) keep glibc's malloc.
#   usage: preload.sh PROGRAM   (PROGRAM relative to $top_builddir)
prog="${top_builddir:-.}/$1"
if [ -z "$OBM_DROPIN" ] || [ ! -f "$OBM_DROPIN" ]; then
    echo "Bail out! drop-in library not found: OBM_DROPIN='$OBM_DROPIN'"
    exit 1
fi
if [ ! -x "$prog" ]; then
    echo "Bail out! test program not built: $prog"
    exit 1
fi
# The programs arm alarm() themselves; this is the backstop for a hang
# that blocks SIGALRM.
exec timeout -s KILL 300 env LD_PRELOAD="$OBM_DROPIN" "$prog"
