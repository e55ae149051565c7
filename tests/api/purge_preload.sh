#!/bin/sh
# The purge tests (tests/api/purge.c) through malloc, with the drop-in
# preloaded; purge_plain is not linked to obm, checks that obm really
# serves it, and reaches obm_trim, obm_stats_get and obm_visit in the
# drop-in. Its children inherit LD_PRELOAD.
[ -f "$OBM_DROPIN" ] || { echo "Bail out! drop-in library not found: OBM_DROPIN='$OBM_DROPIN'"; exit 1; }
exec env LD_PRELOAD="$OBM_DROPIN" "$top_builddir/tests/api/purge_plain"
