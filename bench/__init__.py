"""Benchmarks behind docs/BENCHMARKS.md (run by `make bench`)."""
