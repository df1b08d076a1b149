"""The application schema. Alembic migrations in ``migrations/`` create exactly this.

Invoices and payout batches are both *work items* and share the claim columns (status,
next_attempt_at, attempt counters, lease) so one claim implementation serves both. Every attempt
is a row of its own; an attempt row is written *before* the request is sent (outcome
``in_flight``), so a crash leaves evidence that a request may have gone out.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from retry_pipelines.store.types import Id, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _work_item_columns() -> list[Column]:
    return [
        Column("status", String(32), nullable=False, server_default="pending"),
        Column("attempt_count", Integer, nullable=False, server_default="0"),
        Column("counted_attempts", Integer, nullable=False, server_default="0"),
        Column("next_attempt_at", UTCDateTime, nullable=False),
        Column("last_attempt_at", UTCDateTime),
        Column("lease_owner", String(128)),
        Column("lease_expires_at", UTCDateTime),
        Column("last_error_type", String(16)),
        Column("last_error_code", String(64)),
        Column("last_error_message", Text),
        Column("status_reason", Text),
        Column("created_at", UTCDateTime, nullable=False),
        Column("updated_at", UTCDateTime, nullable=False),
    ]


def _work_item_indexes(name: str) -> list[Index]:
    """Indexes for the hot queries; the two partial ones keep the claim and the sweep cheap."""
    pending, processing = text("status = 'pending'"), text("status = 'processing'")
    attempted, failed = text("last_attempt_at IS NOT NULL"), text("last_error_type IS NOT NULL")
    return [
        Index(
            f"ix_{name}_ready",
            "next_attempt_at",
            postgresql_where=pending,
            sqlite_where=pending,
        ),
        Index(
            f"ix_{name}_lease_expiry",
            "lease_expires_at",
            postgresql_where=processing,
            sqlite_where=processing,
        ),
        Index(f"ix_{name}_status_attempts", "status", "counted_attempts"),
        # Only rows that were attempted or failed: smaller, and never-attempted rows do not all
        # pile onto one NULL-key page under concurrent claims.
        Index(
            f"ix_{name}_last_attempt",
            "last_attempt_at",
            postgresql_where=attempted,
            sqlite_where=attempted,
        ),
        Index(
            f"ix_{name}_error_type",
            "last_error_type",
            "status",
            postgresql_where=failed,
            sqlite_where=failed,
        ),
    ]


def _attempt_columns() -> list[Column]:
    return [
        Column("attempt_number", Integer, nullable=False),
        Column("started_at", UTCDateTime, nullable=False),
        Column("finished_at", UTCDateTime),
        Column("outcome", String(16), nullable=False),
        Column("error_type", String(16)),
        Column("error_code", String(64)),
        Column("error_message", Text),
        Column("delivery", String(16)),
        Column("http_status", Integer),
        Column("latency_ms", Float),
        Column(
            "counts_against_budget",
            Boolean,
            nullable=False,
            server_default=text("true"),
        ),
        Column("owner", String(128)),
        Column("run_id", String(64)),
    ]


invoices = Table(
    "invoices",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("reference", String(64), nullable=False, unique=True),
    Column("seller_ntn", String(13), nullable=False),
    Column("payload", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    Column("fbr_invoice_number", String(64)),
    Column("submitted_at", UTCDateTime),
    *_work_item_columns(),
    *_work_item_indexes("invoices"),
)

invoice_attempts = Table(
    "invoice_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("invoice_id", Id, ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
    *_attempt_columns(),
    UniqueConstraint("invoice_id", "attempt_number", name="uq_invoice_attempts_number"),
    Index("ix_invoice_attempts_started", "started_at"),
    Index(
        "ix_invoice_attempts_in_flight",
        "invoice_id",
        postgresql_where=text("outcome = 'in_flight'"),
        sqlite_where=text("outcome = 'in_flight'"),
    ),
)

payout_batches = Table(
    "payout_batches",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("cycle_id", String(64), nullable=False),
    Column("sender_batch_id", String(256), nullable=False, unique=True),
    Column("request_id", String(128), nullable=False, unique=True),
    Column("checksum", String(64), nullable=False),
    Column("email_subject", String(255)),
    Column("email_message", String(1000)),
    Column("item_count", Integer, nullable=False),
    Column("total_value", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("paypal_batch_id", String(64)),
    Column("paypal_batch_status", String(16)),
    Column("submitted_at", UTCDateTime),
    Column("completed_at", UTCDateTime),
    # Payout identity (migration 0005): 0 when recorded, n for the n-th audited re-pay, NULL once
    # canceled or denied. NULLs are distinct in unique constraints, so released rows never clash.
    Column("identity_generation", Integer),
    Column("repay_of", Id),
    *_work_item_columns(),
    *_work_item_indexes("payout_batches"),
    Index("uq_payout_batches_identity", "cycle_id", "checksum", "identity_generation", unique=True),
)

payout_items = Table(
    "payout_items",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "batch_id",
        Id,
        ForeignKey("payout_batches.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("sender_item_id", String(63), nullable=False),
    Column("receiver", String(127), nullable=False),
    Column("recipient_type", String(16), nullable=False),
    Column("amount_value", String(32), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("note", String(4000)),
    Column("status", String(16), nullable=False, server_default="queued"),
    Column("payout_item_id", String(64)),
    Column("transaction_id", String(64)),
    Column("error_name", String(64)),
    Column("error_message", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("cycle_id", String(64), nullable=False),
    Column("identity_generation", Integer),
    UniqueConstraint("batch_id", "sender_item_id", name="uq_payout_items_sender_item"),
    Index(
        "uq_payout_items_identity", "cycle_id", "sender_item_id", "identity_generation", unique=True
    ),
    Index("ix_payout_items_status", "status"),
)

payout_identity_conflicts = Table(
    "payout_identity_conflicts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("cycle_id", String(64), nullable=False),
    Column("batch_id", Id, nullable=False),
    Column("earlier_batch_id", Id, nullable=False),
    Column("sender_item_id", String(63)),
    Column("found_at", UTCDateTime, nullable=False),
)
"""Batches and items that already broke the payout identity rule when migration 0005 ran."""

payout_attempts = Table(
    "payout_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "batch_id",
        Id,
        ForeignKey("payout_batches.id", ondelete="CASCADE"),
        nullable=False,
    ),
    *_attempt_columns(),
    UniqueConstraint("batch_id", "attempt_number", name="uq_payout_attempts_number"),
    Index("ix_payout_attempts_started", "started_at"),
    Index(
        "ix_payout_attempts_in_flight",
        "batch_id",
        postgresql_where=text("outcome = 'in_flight'"),
        sqlite_where=text("outcome = 'in_flight'"),
    ),
)

processing_locks = Table(
    "processing_locks",
    metadata,
    Column("lock_key", String(128), primary_key=True),
    Column("owner", String(128), nullable=False),
    Column("run_id", String(64)),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)

gateway_state = Table(
    "gateway_state",
    metadata,
    Column("gateway", String(16), primary_key=True),
    Column("paused_until", UTCDateTime),
    Column("pause_reason", Text),
    Column("token_validated_at", UTCDateTime),
    Column("token_expires_at", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Circuit breakers (migration 0003): one row per gateway, changed only under a row lock, and one
# history row per state change.

gateway_breakers = Table(
    "gateway_breakers",
    metadata,
    Column("gateway", String(16), primary_key=True),
    Column("state", String(16), nullable=False, server_default="closed"),
    Column("window_start", UTCDateTime),
    Column("calls", Integer, nullable=False, server_default="0"),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("failures", Integer, nullable=False, server_default="0"),
    Column("prev_calls", Integer, nullable=False, server_default="0"),
    Column("prev_retries", Integer, nullable=False, server_default="0"),
    Column("prev_failures", Integer, nullable=False, server_default="0"),
    Column("consecutive_failures", Integer, nullable=False, server_default="0"),
    Column("trips", Integer, nullable=False, server_default="0"),
    Column("opened_at", UTCDateTime),
    Column("open_until", UTCDateTime),
    Column("half_open_at", UTCDateTime),
    Column("probes_out", Integer, nullable=False, server_default="0"),
    Column("rate_factor", Float, nullable=False, server_default="1"),
    Column("reason", Text),
    Column("updated_at", UTCDateTime, nullable=False),
)

breaker_changes = Table(
    "breaker_changes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("gateway", String(16), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("from_state", String(16), nullable=False),
    Column("to_state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("open_until", UTCDateTime),
    Column("run_id", String(64)),
    Index("ix_breaker_changes_gateway_at", "gateway", "at"),
)

admin_audit = Table(
    "admin_audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("admin_id", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("from_status", String(32)),
    Column("to_status", String(32)),
    Column("reason", Text, nullable=False),
    Column("run_id", String(64)),
    Column("details", JSON),
    Index("ix_admin_audit_entity", "entity_type", "entity_id"),
)


# Reports (migration 0002). Each daily report's rows for a day are replaced as a whole (delete and
# insert in one transaction) together with its ``report_days`` row, so a re-materialization or a
# backfill never duplicates a day, and ``report_days`` says which reports exist for which days.

report_days = Table(
    "report_days",
    metadata,
    Column("report", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("computed_at", UTCDateTime, nullable=False),
    Column("run_id", String(64)),
    Column("row_count", Integer, nullable=False),
)

retry_metrics_daily = Table(
    "retry_metrics_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("gateway", String(16), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("successes", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("in_flight", Integer, nullable=False),
    Column("success_rate", Float),
    Column("avg_attempts_to_success", Float),
    Column("dead_lettered", Integer, nullable=False),
    Column("held", Integer, nullable=False),
    Column("latency_p50_ms", Float),
    Column("latency_p95_ms", Float),
)

error_distribution_daily = Table(
    "error_distribution_daily",
    metadata,
    Column("day", Date, primary_key=True),
    Column("gateway", String(16), primary_key=True),
    Column("error_type", String(16), primary_key=True),
    Column("error_code", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("share", Float, nullable=False),
    Column("top_message", Text),
    Column("top_message_count", Integer, nullable=False),
)
