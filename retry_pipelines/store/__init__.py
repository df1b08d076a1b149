"""Persistence: SQLAlchemy Core tables, Alembic migrations, claims with leases, repositories."""
