"""Pure retry rules: no I/O, no clocks, no Dagster; values and functions of values."""
