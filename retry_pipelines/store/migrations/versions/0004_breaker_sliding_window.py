"""circuit breakers: the previous bucket of the sliding window and the consecutive-failure count

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

COLUMNS = ("prev_calls", "prev_retries", "prev_failures", "consecutive_failures")


def upgrade() -> None:
    with op.batch_alter_table("gateway_breakers") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("gateway_breakers") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
