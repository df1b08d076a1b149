"""Benchmarks: ``make bench`` prints a table per benchmark and writes JSON to ``results/``."""
