"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "admin_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("admin_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("entity_type", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.String(length=64), nullable=False),
        sa.Column("from_status", sa.String(length=32), nullable=True),
        sa.Column("to_status", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_audit")),
    )
    with op.batch_alter_table("admin_audit", schema=None) as batch_op:
        batch_op.create_index("ix_admin_audit_entity", ["entity_type", "entity_id"], unique=False)

    op.create_table(
        "gateway_state",
        sa.Column("gateway", sa.String(length=16), nullable=False),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pause_reason", sa.Text(), nullable=True),
        sa.Column("token_validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway", name=op.f("pk_gateway_state")),
    )
    op.create_table(
        "invoices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("seller_ntn", sa.String(length=13), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("fbr_invoice_number", sa.String(length=64), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("counted_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_type", sa.String(length=16), nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("reference", name=op.f("uq_invoices_reference")),
    )
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoices_error_type",
            ["last_error_type", "status"],
            unique=False,
            postgresql_where=sa.text("last_error_type IS NOT NULL"),
            sqlite_where=sa.text("last_error_type IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_invoices_last_attempt",
            ["last_attempt_at"],
            unique=False,
            postgresql_where=sa.text("last_attempt_at IS NOT NULL"),
            sqlite_where=sa.text("last_attempt_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_invoices_lease_expiry",
            ["lease_expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'processing'"),
            sqlite_where=sa.text("status = 'processing'"),
        )
        batch_op.create_index(
            "ix_invoices_ready",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            "ix_invoices_status_attempts", ["status", "counted_attempts"], unique=False
        )

    op.create_table(
        "payout_batches",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("cycle_id", sa.String(length=64), nullable=False),
        sa.Column("sender_batch_id", sa.String(length=256), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("email_subject", sa.String(length=255), nullable=True),
        sa.Column("email_message", sa.String(length=1000), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("total_value", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paypal_batch_id", sa.String(length=64), nullable=True),
        sa.Column("paypal_batch_status", sa.String(length=16), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("counted_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error_type", sa.String(length=16), nullable=True),
        sa.Column("last_error_code", sa.String(length=64), nullable=True),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_batches")),
        sa.UniqueConstraint("request_id", name=op.f("uq_payout_batches_request_id")),
        sa.UniqueConstraint("sender_batch_id", name=op.f("uq_payout_batches_sender_batch_id")),
    )
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payout_batches_cycle_checksum",
            ["cycle_id", "checksum", "created_at"],
            unique=False,
        )
        batch_op.create_index(
            "ix_payout_batches_error_type",
            ["last_error_type", "status"],
            unique=False,
            postgresql_where=sa.text("last_error_type IS NOT NULL"),
            sqlite_where=sa.text("last_error_type IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_payout_batches_last_attempt",
            ["last_attempt_at"],
            unique=False,
            postgresql_where=sa.text("last_attempt_at IS NOT NULL"),
            sqlite_where=sa.text("last_attempt_at IS NOT NULL"),
        )
        batch_op.create_index(
            "ix_payout_batches_lease_expiry",
            ["lease_expires_at"],
            unique=False,
            postgresql_where=sa.text("status = 'processing'"),
            sqlite_where=sa.text("status = 'processing'"),
        )
        batch_op.create_index(
            "ix_payout_batches_ready",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            "ix_payout_batches_status_attempts",
            ["status", "counted_attempts"],
            unique=False,
        )

    op.create_table(
        "processing_locks",
        sa.Column("lock_key", sa.String(length=128), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("lock_key", name=op.f("pk_processing_locks")),
    )
    op.create_table(
        "invoice_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "invoice_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_type", sa.String(length=16), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("delivery", sa.String(length=16), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column(
            "counts_against_budget",
            sa.Boolean(),
            server_default=sa.text("(true)"),
            nullable=False,
        ),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_attempts_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_attempts")),
        sa.UniqueConstraint("invoice_id", "attempt_number", name="uq_invoice_attempts_number"),
    )
    with op.batch_alter_table("invoice_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_invoice_attempts_in_flight",
            ["invoice_id"],
            unique=False,
            postgresql_where=sa.text("outcome = 'in_flight'"),
            sqlite_where=sa.text("outcome = 'in_flight'"),
        )
        batch_op.create_index("ix_invoice_attempts_started", ["started_at"], unique=False)

    op.create_table(
        "payout_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "batch_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error_type", sa.String(length=16), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("delivery", sa.String(length=16), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column(
            "counts_against_budget",
            sa.Boolean(),
            server_default=sa.text("(true)"),
            nullable=False,
        ),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["payout_batches.id"],
            name=op.f("fk_payout_attempts_batch_id_payout_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_attempts")),
        sa.UniqueConstraint("batch_id", "attempt_number", name="uq_payout_attempts_number"),
    )
    with op.batch_alter_table("payout_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payout_attempts_in_flight",
            ["batch_id"],
            unique=False,
            postgresql_where=sa.text("outcome = 'in_flight'"),
            sqlite_where=sa.text("outcome = 'in_flight'"),
        )
        batch_op.create_index("ix_payout_attempts_started", ["started_at"], unique=False)

    op.create_table(
        "payout_items",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "batch_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("sender_item_id", sa.String(length=63), nullable=False),
        sa.Column("receiver", sa.String(length=127), nullable=False),
        sa.Column("recipient_type", sa.String(length=16), nullable=False),
        sa.Column("amount_value", sa.String(length=32), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("note", sa.String(length=4000), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="queued", nullable=False),
        sa.Column("payout_item_id", sa.String(length=64), nullable=True),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("error_name", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["payout_batches.id"],
            name=op.f("fk_payout_items_batch_id_payout_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_items")),
        sa.UniqueConstraint("batch_id", "sender_item_id", name="uq_payout_items_sender_item"),
    )
    with op.batch_alter_table("payout_items", schema=None) as batch_op:
        batch_op.create_index("ix_payout_items_status", ["status"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("payout_items", schema=None) as batch_op:
        batch_op.drop_index("ix_payout_items_status")

    op.drop_table("payout_items")
    with op.batch_alter_table("payout_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_payout_attempts_started")
        batch_op.drop_index(
            "ix_payout_attempts_in_flight",
            postgresql_where=sa.text("outcome = 'in_flight'"),
            sqlite_where=sa.text("outcome = 'in_flight'"),
        )

    op.drop_table("payout_attempts")
    with op.batch_alter_table("invoice_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_invoice_attempts_started")
        batch_op.drop_index(
            "ix_invoice_attempts_in_flight",
            postgresql_where=sa.text("outcome = 'in_flight'"),
            sqlite_where=sa.text("outcome = 'in_flight'"),
        )

    op.drop_table("invoice_attempts")
    op.drop_table("processing_locks")
    with op.batch_alter_table("payout_batches", schema=None) as batch_op:
        batch_op.drop_index("ix_payout_batches_status_attempts")
        batch_op.drop_index(
            "ix_payout_batches_ready",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index(
            "ix_payout_batches_lease_expiry",
            postgresql_where=sa.text("status = 'processing'"),
            sqlite_where=sa.text("status = 'processing'"),
        )
        batch_op.drop_index("ix_payout_batches_last_attempt")
        batch_op.drop_index("ix_payout_batches_error_type")
        batch_op.drop_index("ix_payout_batches_cycle_checksum")

    op.drop_table("payout_batches")
    with op.batch_alter_table("invoices", schema=None) as batch_op:
        batch_op.drop_index("ix_invoices_status_attempts")
        batch_op.drop_index(
            "ix_invoices_ready",
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
        batch_op.drop_index(
            "ix_invoices_lease_expiry",
            postgresql_where=sa.text("status = 'processing'"),
            sqlite_where=sa.text("status = 'processing'"),
        )
        batch_op.drop_index("ix_invoices_last_attempt")
        batch_op.drop_index("ix_invoices_error_type")

    op.drop_table("invoices")
    op.drop_table("gateway_state")
    with op.batch_alter_table("admin_audit", schema=None) as batch_op:
        batch_op.drop_index("ix_admin_audit_entity")

    op.drop_table("admin_audit")
