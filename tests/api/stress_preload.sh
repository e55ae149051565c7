#!/bin/sh
# The stress test (CHECKLIST 33) through malloc, with the drop-in preloaded;
# stress_plain is not linked to obm and checks that obm really serves it.
[ -f "$OBM_DROPIN" ] || { echo "Bail out! drop-in library not found: OBM_DROPIN='$OBM_DROPIN'"; exit 1; }
exec env LD_PRELOAD="$OBM_DROPIN" "$top_builddir/tests/api/stress_plain"
