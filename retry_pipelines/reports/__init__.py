"""Retry metrics and error distributions, aggregated in SQL."""
