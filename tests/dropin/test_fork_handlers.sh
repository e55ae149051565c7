#!/bin/sh
# Drop-in: fork while pthread_atfork handlers of other code call malloc.
exec "${top_srcdir:-.}/tests/dropin/preload.sh" tests/dropin/fork_handlers_preload
