"""The Dagster layer. Thin: ops, assets, schedules and sensors call ``engine/`` or ``reports/``."""
