"""payout identity that never expires: one live or completed batch per (cycle, checksum) and one
per (cycle, sender_item_id), enforced by unique constraints

``identity_generation`` is 0 for a batch recorded normally, n for the n-th audited re-pay, and
NULL once the batch is canceled or denied (its identity is released). Unique constraints treat
NULLs as distinct on both backends, so released rows never conflict.

Rows that already break the rule (the same batch recorded twice after the old one-minute window)
are not a reason to fail the upgrade: the later row of each conflict is left out of the constraint
(its generation stays NULL) and listed in ``payout_identity_conflicts`` for an operator, who
cancels one of the two (``retry-pipelines db upgrade`` prints them).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import logging
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from retry_pipelines.store.types import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The later batch of each (cycle, checksum) pair and the later item of each (cycle,
# sender_item_id) pair among rows that hold an identity, with the earliest one it repeats. Plain
# correlated subqueries: valid on both backends.
BATCH_CONFLICTS = """
INSERT INTO payout_identity_conflicts
    (kind, cycle_id, batch_id, earlier_batch_id, sender_item_id, found_at)
SELECT 'batch', b.cycle_id, b.id, MIN(e.id), NULL, :found_at
FROM payout_batches b JOIN payout_batches e
  ON e.cycle_id = b.cycle_id AND e.checksum = b.checksum AND e.id < b.id
 AND e.identity_generation IS NOT NULL
WHERE b.identity_generation IS NOT NULL
GROUP BY b.cycle_id, b.id
"""
ITEM_CONFLICTS = """
INSERT INTO payout_identity_conflicts
    (kind, cycle_id, batch_id, earlier_batch_id, sender_item_id, found_at)
SELECT 'item', i.cycle_id, i.batch_id, MIN(e.batch_id), i.sender_item_id, :found_at
FROM payout_items i JOIN payout_items e
  ON e.cycle_id = i.cycle_id AND e.sender_item_id = i.sender_item_id AND e.batch_id < i.batch_id
 AND e.identity_generation IS NOT NULL
WHERE i.identity_generation IS NOT NULL
GROUP BY i.cycle_id, i.batch_id, i.sender_item_id
"""


def upgrade() -> None:
    op.create_table(
        "payout_identity_conflicts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("cycle_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", Id, nullable=False),
        sa.Column("earlier_batch_id", Id, nullable=False),
        sa.Column("sender_item_id", sa.String(length=63), nullable=True),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_identity_conflicts")),
    )
    # Only native ALTERs on payout_batches: on SQLite a batch "recreate" drops the table, and the
    # drop cascades (ON DELETE CASCADE) to every item and attempt row.
    op.add_column("payout_batches", sa.Column("identity_generation", sa.Integer(), nullable=True))
    op.add_column("payout_batches", sa.Column("repay_of", Id, nullable=True))
    op.drop_index("ix_payout_batches_cycle_checksum", "payout_batches")
    op.add_column("payout_items", sa.Column("cycle_id", sa.String(length=64), nullable=True))
    op.add_column("payout_items", sa.Column("identity_generation", sa.Integer(), nullable=True))
    _backfill()
    _report_and_exempt_conflicts()
    with op.batch_alter_table("payout_items") as batch:  # nothing references payout_items
        batch.alter_column("cycle_id", existing_type=sa.String(length=64), nullable=False)
    op.create_index(
        "uq_payout_items_identity",
        "payout_items",
        ["cycle_id", "sender_item_id", "identity_generation"],
        unique=True,
    )
    op.create_index(
        "uq_payout_batches_identity",
        "payout_batches",
        ["cycle_id", "checksum", "identity_generation"],
        unique=True,
    )


def _backfill() -> None:
    op.execute(
        "UPDATE payout_batches SET identity_generation = 0 "
        "WHERE status NOT IN ('canceled', 'denied')"
    )
    op.execute(
        "UPDATE payout_items SET cycle_id = (SELECT b.cycle_id FROM payout_batches b "
        "WHERE b.id = payout_items.batch_id), identity_generation = (SELECT "
        "b.identity_generation FROM payout_batches b WHERE b.id = payout_items.batch_id)"
    )


def _report_and_exempt_conflicts() -> None:
    op.create_index("ix_tmp_payout_items_identity", "payout_items", ["cycle_id", "sender_item_id"])
    conn = op.get_bind()
    found_at = sa.bindparam("found_at", datetime.now(UTC), type_=UTCDateTime)
    conn.execute(sa.text(BATCH_CONFLICTS).bindparams(found_at))
    conn.execute(sa.text(ITEM_CONFLICTS).bindparams(found_at))
    op.execute(
        "UPDATE payout_batches SET identity_generation = NULL WHERE id IN "
        "(SELECT batch_id FROM payout_identity_conflicts WHERE kind = 'batch')"
    )
    op.execute(
        "UPDATE payout_items SET identity_generation = NULL WHERE EXISTS (SELECT 1 FROM "
        "payout_identity_conflicts c WHERE c.kind = 'item' AND c.batch_id = payout_items.batch_id "
        "AND c.sender_item_id = payout_items.sender_item_id)"
    )
    op.drop_index("ix_tmp_payout_items_identity", "payout_items")
    found = conn.execute(sa.text("SELECT COUNT(*) FROM payout_identity_conflicts")).scalar_one()
    if found:
        log.warning(
            "payout identity: %d existing conflicts (a batch or a sender_item_id recorded twice "
            "for a cycle) are listed in payout_identity_conflicts; cancel one of each pair",
            found,
        )


def downgrade() -> None:
    op.drop_index("uq_payout_batches_identity", "payout_batches")
    op.drop_index("uq_payout_items_identity", "payout_items")
    for table, column in (
        ("payout_batches", "repay_of"),
        ("payout_batches", "identity_generation"),
        ("payout_items", "identity_generation"),
        ("payout_items", "cycle_id"),
    ):
        op.drop_column(table, column)  # native on SQLite >= 3.35: no recreate, no cascade
    op.create_index(
        "ix_payout_batches_cycle_checksum", "payout_batches", ["cycle_id", "checksum", "created_at"]
    )
    op.drop_table("payout_identity_conflicts")
