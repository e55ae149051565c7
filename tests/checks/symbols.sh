#!/bin/bash
# Each library exports exactly its intended symbols (-fvisibility=hidden).
echo 1..3
obm_api="obm_aligned_alloc obm_calloc obm_counters_get obm_free obm_malloc obm_memalign obm_owns
obm_posix_memalign obm_realloc obm_reallocarray obm_usable_size
obm_option_set obm_stats_diff obm_stats_get obm_stats_print obm_trim obm_visit"
dropin="aligned_alloc calloc cfree free free_aligned_sized free_sized malloc
malloc_usable_size memalign posix_memalign pvalloc realloc reallocarray valloc
mallinfo mallinfo2 malloc_info malloc_stats malloc_trim"

exported() {
    nm -D --defined-only "$1" | awk '$2 ~ /^[TWDBVRi]$/ { print $3 }' | sed 's/@.*//' | sort
}
expect() {
    printf '%s\n' $1 | sort
}
check() { # number, library, expected list, description
    got=$(exported "$2")
    want=$(expect "$3")
    if [ "$got" = "$want" ]; then
        echo "ok $1 - $4"
    else
        diff <(echo "$want") <(echo "$got") 2>/dev/null | sed 's/^/# /' ||
            { echo "# want: $want" | tr '\n' ' '; echo; echo "# got: $got" | tr '\n' ' '; echo; }
        echo "not ok $1 - $4"
    fi
}
lib=$top_builddir/.libs
check 1 "$lib/libobmalloc.so" "$dropin $obm_api" "libobmalloc.so exports the malloc family and obm_*"
check 2 "$lib/libobm.so" "$obm_api" "libobm.so exports only obm_*"
# The drop-in must not depend on libdl or pull in a second allocator.
if ldd "$lib/libobmalloc.so" | grep -Eq 'jemalloc|tcmalloc|mimalloc'; then
    echo "not ok 3 - libobmalloc.so links another allocator"
else
    echo "ok 3 - libobmalloc.so links no other allocator"
fi
