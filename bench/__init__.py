"""Benchmarks: run them directly (python -m bench.NAME); they print a table and JSON."""
