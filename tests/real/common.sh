# Shared by the real-program tests (sourced): TAP output and the checks
# every script needs. Sets $tmp, a scratch directory removed on exit.

tap_n=0

# ok STATUS DESCRIPTION: "ok N" when STATUS is 0, else "not ok N" and
# returns 1 (so `ok $? ... || diag FILE` shows the failure's context).
ok()
{
    tap_n=$((tap_n + 1))
    if [ "$1" -eq 0 ]; then
        echo "ok $tap_n - $2"
    else
        echo "not ok $tap_n - $2 (status $1)"
        return 1
    fi
}

# diag FILE...: the files as TAP comments (for a failure's context).
diag()
{
    for f in "$@"; do
        [ -s "$f" ] && sed -n '1,40s/^/# /p' "$f"
    done
    return 0
}

# require_program NAME PATH: "1..0 # SKIP" and exit when PATH is not a program.
require_program()
{
    if [ -z "$2" ] || [ ! -x "$2" ]; then
        echo "1..0 # SKIP $1 not found"
        exit 0
    fi
}

require_dropin()
{
    if [ -z "$OBM_DROPIN" ] || [ ! -f "$OBM_DROPIN" ]; then
        echo "Bail out! drop-in library not found: OBM_DROPIN='$OBM_DROPIN'"
        exit 1
    fi
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/obm-real.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
