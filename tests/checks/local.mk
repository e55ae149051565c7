# tests/checks
