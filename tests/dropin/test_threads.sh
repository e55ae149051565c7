#!/bin/sh
# Drop-in: cross-thread free, producer/consumer, thread churn, thread exit (CHECKLIST 28-30).
exec "${top_srcdir:-.}/tests/dropin/preload.sh" tests/dropin/threads_preload
