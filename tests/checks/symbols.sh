#!/bin/bash
# Each library exports exactly its intended symbols (-fvisibility=hidden),
# and the drop-in depends on no libdl (neither a NEEDED entry nor a call
# into the dl* API, which lived in libdl before glibc 2.34 and may call
# malloc) and on no second allocator.
echo 1..5
obm_api="obm_aligned_alloc obm_calloc obm_counters_get obm_free obm_malloc obm_memalign obm_owns
obm_posix_memalign obm_realloc obm_reallocarray obm_usable_size
obm_option_set obm_stats_diff obm_stats_get obm_stats_print obm_trim obm_version obm_visit"
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
dropin_lib=$lib/libobmalloc.so
# NEEDED entries, one a line.
needed() {
    readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'
}
deps=$(needed "$dropin_lib")
if [ -z "$deps" ]; then
    echo "not ok 3 - readelf -d found no NEEDED entry in $dropin_lib"
elif echo "$deps" | grep -q '^libdl\.'; then
    echo "# NEEDED: $(echo $deps)"
    echo "not ok 3 - libobmalloc.so has libdl among its NEEDED entries"
else
    echo "ok 3 - libobmalloc.so does not need libdl (NEEDED: $(echo $deps))"
fi
dl_calls=$(nm -D --undefined-only "$dropin_lib" | awk '{ print $NF }' | sed 's/@.*//' |
    grep -E '^(dlopen|dlmopen|dlsym|dlvsym|dladdr1?|dlclose|dlerror|dlinfo)$')
if [ -n "$dl_calls" ]; then
    echo "not ok 4 - libobmalloc.so calls the dl* API: $(echo $dl_calls)"
else
    echo "ok 4 - libobmalloc.so calls nothing of the dl* API"
fi
# Another allocator, needed directly or through a dependency.
if ! resolved=$(ldd "$dropin_lib"); then
    echo "not ok 5 - ldd cannot read $dropin_lib"
elif others=$(printf '%s\n' "$deps" "$resolved" | grep -E 'jemalloc|tcmalloc|mimalloc'); then
    echo "$others" | sed 's/^/# /'
    echo "not ok 5 - libobmalloc.so links another allocator"
else
    echo "ok 5 - libobmalloc.so links no other allocator"
fi
