"""report tables: daily retry metrics, error distributions, and which report days exist

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_days",
        sa.Column("report", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("report", "day", name=op.f("pk_report_days")),
    )
    op.create_table(
        "retry_metrics_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("successes", sa.Integer(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Integer(), nullable=False),
        sa.Column("success_rate", sa.Float(), nullable=True),
        sa.Column("avg_attempts_to_success", sa.Float(), nullable=True),
        sa.Column("dead_lettered", sa.Integer(), nullable=False),
        sa.Column("held", sa.Integer(), nullable=False),
        sa.Column("latency_p50_ms", sa.Float(), nullable=True),
        sa.Column("latency_p95_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("day", "gateway", name=op.f("pk_retry_metrics_daily")),
    )
    op.create_table(
        "error_distribution_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("error_type", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("top_message", sa.Text(), nullable=True),
        sa.Column("top_message_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "gateway", "error_type", "error_code", name=op.f("pk_error_distribution_daily")
        ),
    )


def downgrade() -> None:
    op.drop_table("error_distribution_daily")
    op.drop_table("retry_metrics_daily")
    op.drop_table("report_days")
