"""What a run left for a person: the items it moved to held or dead, and payout items that
reconcile no longer polls. Read-only; the alert sensors in ``defs/alerts/attention.py`` send it.

An item counts for a run when it is held (its queue's ``held_status``) or dead now and its latest
attempt (``attempt_number`` = the item's ``attempt_count``) is one the run made: the recorder, or
the run's own settling of requests it never heard back from, wrote that attempt with the run's id.
Items a lease sweep held keep the attempt of the run that lost its lease, so a sweeping run names
them by id (``swept``). An item settled or retried since is no longer counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, and_, false, func, or_, select, true

from retry_pipelines.store.claims import id_in
from retry_pipelines.store.queues import QUEUES, WorkQueue
from retry_pipelines.store.tables import payout_batches, payout_items

DEAD = "dead"
REFERENCE = {"fbr": "reference", "paypal": "sender_batch_id"}
"""The column an operator knows an item by, per queue."""


@dataclass(frozen=True)
class HeldOrDead:
    gateway: str
    item_id: int
    reference: str
    status: str
    outcome: str | None
    """Of the latest attempt: ``failure`` or ``interrupted`` (outcome never learned)."""
    error_type: str | None
    error_code: str | None


@dataclass(frozen=True)
class Attention:
    counts: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """(gateway, status) -> items, exact."""
    items: tuple[HeldOrDead, ...] = ()
    """At most the limit asked for, by gateway then id."""

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def left_by_run(
    engine: Engine,
    run_id: str,
    *,
    started: datetime,
    ended: datetime,
    swept: Mapping[str, Sequence[int]] | None = None,
    limit: int = 20,
) -> Attention:
    """Items held or dead whose latest attempt run ``run_id`` made (started within
    [``started``, ``ended``], which keeps the read on the attempts' start-time index), or which
    the run's lease sweep took back (``swept``: gateway -> item ids)."""
    counts: Counter = Counter()
    items: list[HeldOrDead] = []
    with engine.connect() as conn:
        for queue in QUEUES.values():
            ids = list((swept or {}).get(queue.name, ()))
            source, where = _held_or_dead(queue, run_id, started, ended, ids, conn.dialect.name)
            t = queue.items
            for status, n in conn.execute(
                select(t.c.status, func.count())
                .select_from(source)
                .where(where)
                .group_by(t.c.status)
            ):
                counts[(queue.name, status)] += n
            if len(items) < limit:
                items += _listed(conn, queue, source, where, limit - len(items))
    return Attention(dict(counts), tuple(items))


def _held_or_dead(queue: WorkQueue, run_id, started, ended, ids, dialect: str):
    t, a = queue.items, queue.attempts
    latest = t.outerjoin(a, and_(queue.fk == t.c.id, a.c.attempt_number == t.c.attempt_count))
    by_run = and_(a.c.run_id == run_id, a.c.started_at >= started, a.c.started_at <= ended)
    named = id_in(t.c.id, ids, dialect) if ids else false()
    return latest, and_(t.c.status.in_([queue.held_status, DEAD]), or_(by_run, named))


def _listed(conn, queue: WorkQueue, source, where, limit: int) -> list[HeldOrDead]:
    t, a = queue.items, queue.attempts
    rows = conn.execute(
        select(
            t.c.id,
            t.c[REFERENCE[queue.name]].label("reference"),
            t.c.status,
            a.c.outcome,
            a.c.error_type,
            a.c.error_code,
        )
        .select_from(source)
        .where(where)
        .order_by(t.c.id)
        .limit(limit)
    )
    return [
        HeldOrDead(queue.name, r.id, r.reference, r.status, r.outcome, r.error_type, r.error_code)
        for r in rows
    ]


@dataclass(frozen=True)
class UnresolvedItem:
    sender_batch_id: str
    batch_id: int
    sender_item_id: str
    status: str
    payout_item_id: str | None
    batch_completed_at: datetime | None


def unresolved_payout_items(
    engine: Engine,
    statuses: Sequence[str],
    *,
    horizon: datetime,
    after: datetime | None = None,
    limit: int = 20,
) -> list[UnresolvedItem]:
    """Items in ``statuses`` of batches that completed at or before ``horizon`` (those reconcile
    no longer polls), and after ``after`` when given, oldest batch first, at most ``limit``."""
    b, t = payout_batches, payout_items
    stmt = (
        select(
            b.c.sender_batch_id,
            t.c.batch_id,
            t.c.sender_item_id,
            t.c.status,
            t.c.payout_item_id,
            b.c.completed_at,
        )
        .join(b, b.c.id == t.c.batch_id)
        .where(b.c.status == "completed", t.c.status.in_(statuses), b.c.completed_at <= horizon)
        .where(b.c.completed_at > after if after is not None else true())
        .order_by(b.c.completed_at, t.c.id)
        .limit(limit)
    )
    with engine.connect() as conn:
        return [UnresolvedItem(*row) for row in conn.execute(stmt)]
