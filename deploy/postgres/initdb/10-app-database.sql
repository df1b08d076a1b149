-- docker-compose only, run once when the PostgreSQL volume is first initialised: the application
-- database (RETRY_PIPELINES_DATABASE_URL) beside Dagster's own (POSTGRES_DB). Both keep an
-- alembic_version table, so they cannot share one database. Its tables come from
-- `retry-pipelines db upgrade` (the compose `migrate` service).
CREATE DATABASE retry_pipelines;
