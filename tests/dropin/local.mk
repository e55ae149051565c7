# tests/dropin
