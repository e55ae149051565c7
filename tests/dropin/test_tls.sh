#!/bin/sh
# Drop-in: malloc in TLS destructors, constructors and atexit handlers (CHECKLIST 32).
exec "${top_srcdir:-.}/tests/dropin/preload.sh" tests/dropin/tls_preload
