#!/bin/sh
# The API semantics (CHECKLIST A) through malloc, with the drop-in preloaded;
# semantics_plain is not linked to obm and checks that obm really serves it.
[ -f "$OBM_DROPIN" ] || { echo "Bail out! drop-in library not found: OBM_DROPIN='$OBM_DROPIN'"; exit 1; }
exec env LD_PRELOAD="$OBM_DROPIN" "$top_builddir/tests/api/semantics_plain"
