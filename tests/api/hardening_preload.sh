#!/bin/sh
# The hardening death tests through malloc, with the drop-in preloaded;
# hardening_plain is not linked to obm and checks that obm really serves it.
[ -f "$OBM_DROPIN" ] || { echo "1..0 # SKIP no drop-in at $OBM_DROPIN (--disable-shared?)"; exit 0; }
exec env LD_PRELOAD="$OBM_DROPIN" "$top_builddir/tests/api/hardening_plain"
