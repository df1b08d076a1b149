"""Dagster helpers the modules under ``defs/`` share: run settings and their bounds, how a retry
op reports its run, what the retry sensors decide, admin ops, alert sensor ticks, metadata.

They live outside ``defs/`` because ``load_from_defs_folder`` imports every module there and
collects what it defines; a helper module is not a definitions module."""
