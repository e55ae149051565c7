#!/bin/sh
# Drop-in: C++ containers, new/delete, aligned new, std::thread.
exec "${top_srcdir:-.}/tests/dropin/preload.sh" tests/dropin/cxx_preload
