"""Claiming due work items under a lease, so no two workers ever hold the same item.

PostgreSQL: one statement. A CTE picks the eligible rows in due order and locks them with
``FOR UPDATE SKIP LOCKED`` (concurrent claimers skip each other's rows instead of waiting), and an
``UPDATE ... FROM`` it marks them ``processing`` with a lease and returns them. Eligibility (due,
attempts left, no live lease, not too old) is inside the CTE, so selection and locking cannot
disagree.

SQLite: ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING``. Every transaction here begins
``IMMEDIATE`` (see ``db.py``), so the statement runs under the database's single write lock.

A worker renews its leases while requests are in flight. A lease that runs out (a crashed or
stalled worker) is swept back: to ``pending``, or, when an attempt was left ``in_flight`` and the
queue cannot safely resend (FBR), to the queue's ``interrupted_status``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Engine,
    Integer,
    RowMapping,
    Text,
    Update,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    or_,
    select,
    update,
)

from retry_pipelines.store.queues import WorkQueue


@functools.cache
def _claim_template(
    queue: WorkQueue, dialect: str, with_max_age: bool, with_ids: bool, attempted: bool | None
) -> Update:
    """Built once per queue and dialect; the values are bound at execution. ``attempted``: only
    first attempts (False) or only retries (True)."""
    t = queue.items
    now = bindparam("now", type_=t.c.next_attempt_at.type)
    eligible = [
        _is(t.c.status, queue.ready),
        t.c.next_attempt_at <= now,
        t.c.counted_attempts < bindparam("max_attempts"),
        or_(t.c.lease_expires_at.is_(None), t.c.lease_expires_at < now),
    ]
    if with_max_age:
        eligible.append(t.c.created_at >= bindparam("oldest", type_=t.c.created_at.type))
    if with_ids:
        eligible.append(t.c.id.in_(bindparam("only_ids", expanding=True)))
    if attempted is not None:
        eligible.append(t.c.attempt_count > 0 if attempted else t.c.attempt_count == 0)
    candidates = (
        select(t.c.id)
        .where(*eligible)
        .order_by(t.c.next_attempt_at)
        .limit(bindparam("limit", type_=Integer))
    )
    if dialect == "postgresql":
        due = candidates.with_for_update(skip_locked=True).cte("due")
        # Not ``UPDATE ... FROM due``: on mid-sized tables the planner hash-joins that with a
        # sequential scan of the whole table. One array of ids makes it primary-key lookups.
        ids = select(func.array_agg(due.c.id)).scalar_subquery()
        stmt = update(t).where(t.c.id == func.any(cast(ids, ARRAY(BigInteger))))
    else:
        stmt = update(t).where(t.c.id.in_(candidates.scalar_subquery()))
    return stmt.values(
        status=queue.processing,
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("lease_until", type_=t.c.lease_expires_at.type),
        updated_at=now,
    ).returning(*queue.claim_columns)


def claim_statement(
    queue: WorkQueue,
    dialect: str,
    *,
    owner: str,
    limit: int,
    now: datetime,
    max_attempts: int,
    max_age: timedelta | None = None,
    lease: timedelta | None = None,
    only_ids: Sequence[int] | None = None,
    attempted: bool | None = None,
) -> tuple[Update, dict]:
    """The single statement that selects, locks and leases up to ``limit`` due items, and the
    values to execute it with."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    params = {
        "now": now,
        "max_attempts": max_attempts,
        "limit": limit,
        "owner": owner,
        "lease_until": now + (lease or queue.lease),
    }
    if max_age is not None:
        params["oldest"] = now - max_age
    if only_ids is not None:
        params["only_ids"] = list(only_ids)
    template = _claim_template(queue, dialect, max_age is not None, only_ids is not None, attempted)
    return template, params


def claim(engine: Engine, queue: WorkQueue, **options) -> list[RowMapping]:
    """Claim due items for ``options["owner"]`` (see ``claim_statement``), in due order."""
    stmt, params = claim_statement(queue, engine.dialect.name, **options)
    with engine.begin() as conn:
        rows = conn.execute(stmt, params).mappings().all()
    return sorted(rows, key=lambda r: (r["next_attempt_at"], r["id"]))


def renew(
    engine: Engine,
    queue: WorkQueue,
    ids: Sequence[int],
    *,
    owner: str,
    now: datetime,
    lease: timedelta | None = None,
) -> int:
    """Extend ``owner``'s live leases on ``ids``; returns how many it still holds."""
    if not ids:
        return 0
    t = queue.items
    stmt = (
        update(t)
        .where(held_by(queue, owner, now), id_in(t.c.id, ids, engine.dialect.name))
        .values(lease_expires_at=now + (lease or queue.lease), updated_at=now)
    )
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount


def release(
    engine: Engine, queue: WorkQueue, ids: Sequence[int], *, owner: str, now: datetime
) -> int:
    """Hand unattempted claimed items back, due at once and with nothing spent.

    An item with an attempt in flight is never handed back, whatever the caller asks: its request
    may have gone out. It keeps its lease, and the sweep settles it once the lease expires (held,
    or resent with the same ids where the gateway dedupes)."""
    if not ids:
        return 0
    t, a = queue.items, queue.attempts
    in_flight = exists().where(queue.fk == t.c.id, a.c.outcome == "in_flight")
    stmt = (
        update(t)
        .where(
            _is(t.c.status, queue.processing),
            t.c.lease_owner == owner,
            id_in(t.c.id, ids, engine.dialect.name),
            ~in_flight,
        )
        .values(status=queue.ready, lease_owner=None, lease_expires_at=None, updated_at=now)
    )
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount


def finish(
    engine: Engine,
    queue: WorkQueue,
    ids: Sequence[int],
    *,
    owner: str,
    status: str,
    now: datetime,
) -> int:
    """Move items ``owner`` still holds to ``status`` and free them; returns how many moved."""
    queue.machine.require(queue.processing, status)
    if not ids:
        return 0
    t = queue.items
    stmt = (
        update(t)
        .where(held_by(queue, owner, now), id_in(t.c.id, ids, engine.dialect.name))
        .values(status=status, lease_owner=None, lease_expires_at=None, updated_at=now)
    )
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount


@dataclass(frozen=True)
class SweepResult:
    returned: tuple[int, ...]
    """Items whose lease expired with no request in flight: back to ``pending``."""
    interrupted: tuple[int, ...]
    """Items whose lease expired with a request in flight: to the queue's interrupted status."""

    @property
    def count(self) -> int:
        return len(self.returned) + len(self.interrupted)


def sweep_expired(
    engine: Engine, queue: WorkQueue, *, now: datetime, max_attempts: int | None = None
) -> SweepResult:
    """Take back every item whose lease has expired, and say how many and which.

    An item whose request was in flight goes to the queue's ``interrupted_status``. Where that is
    the ready state (PayPal: resending with the same ids is safe), an item whose budget of
    ``max_attempts`` is already spent goes to the queue's ``held_status`` instead: it can no
    longer be claimed, and its last request may have been processed.
    """
    t = queue.items
    expired = and_(_is(t.c.status, queue.processing), t.c.lease_expires_at < now)
    why = "worker lost its lease while a request was in flight"
    return _take_back(engine, queue, expired, now=now, max_attempts=max_attempts, why=why)


def take_back_owned(
    engine: Engine,
    queue: WorkQueue,
    ids: Sequence[int],
    *,
    owner: str,
    now: datetime,
    why: str,
    max_attempts: int | None = None,
) -> SweepResult:
    """What the sweep would do to ``owner``'s items ``ids``, now rather than after the lease: a
    run ending with requests whose outcome it never learned puts them in the queue's safe state
    at once (see ``sweep_expired``); items with nothing in flight go back to the queue."""
    if not ids:
        return SweepResult(returned=(), interrupted=())
    t = queue.items
    owned = and_(
        _is(t.c.status, queue.processing),
        t.c.lease_owner == owner,
        id_in(t.c.id, ids, engine.dialect.name),
    )
    return _take_back(engine, queue, owned, now=now, max_attempts=max_attempts, why=why)


def _interrupted_status(queue: WorkQueue, max_attempts: int | None, why: str):
    """The status and reason for an item taken back with a request in flight."""
    t = queue.items
    status = bindparam(None, queue.interrupted_status, type_=t.c.status.type)
    reason = bindparam(None, why, type_=Text)
    if max_attempts is not None and queue.interrupted_status == queue.ready:
        spent = t.c.counted_attempts >= max_attempts
        status = case((spent, queue.held_status), else_=status)
        reason = case(
            (
                spent,
                f"{why}, during the last allowed attempt; it may have been "
                "processed: held for a manual retry (which adopts the batch if the gateway has it)",
            ),
            else_=reason,
        )
    return status, reason


def _take_back(
    engine: Engine,
    queue: WorkQueue,
    which,
    *,
    now: datetime,
    max_attempts: int | None,
    why: str,
) -> SweepResult:
    t, a = queue.items, queue.attempts
    in_flight = exists().where(queue.fk == t.c.id, a.c.outcome == "in_flight")
    freed = {"lease_owner": None, "lease_expires_at": None, "updated_at": now}
    status, reason = _interrupted_status(queue, max_attempts, why)
    with engine.begin() as conn:
        interrupted = conn.execute(
            update(t)
            .where(which, in_flight)
            .values(status=status, status_reason=reason, **freed)
            .returning(t.c.id)
        ).scalars()
        interrupted = tuple(sorted(interrupted))
        if interrupted:
            conn.execute(
                update(a)
                .where(
                    id_in(queue.fk, interrupted, engine.dialect.name), a.c.outcome == "in_flight"
                )
                .values(
                    outcome="interrupted",
                    finished_at=now,
                    error_type="UNKNOWN",
                    delivery="ambiguous",
                    error_message=f"outcome never recorded: {why}",
                )
            )
        returned = conn.execute(
            update(t).where(which).values(status=queue.ready, **freed).returning(t.c.id)
        ).scalars()
        return SweepResult(returned=tuple(sorted(returned)), interrupted=interrupted)


def count_expired(engine: Engine, queue: WorkQueue, *, now: datetime) -> int:
    t = queue.items
    stmt = select(func.count()).where(_is(t.c.status, queue.processing), t.c.lease_expires_at < now)
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def id_in(column, ids: Sequence[int], dialect: str):
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY``), which is far cheaper to
    send, parse and plan than hundreds of separate parameters."""
    if dialect == "postgresql":
        return column == func.any(bindparam(None, list(ids), type_=ARRAY(BigInteger)))
    return column.in_(ids)


def _is(column, value: str):
    """``column = 'value'`` with the value inlined, so the planner can match the partial indexes
    even when the driver runs the statement as a prepared, generically planned one."""
    return column == bindparam(None, value, literal_execute=True)


def held_by(queue: WorkQueue, owner: str, now: datetime):
    t = queue.items
    return and_(
        _is(t.c.status, queue.processing),
        t.c.lease_owner == owner,
        t.c.lease_expires_at >= now,
    )
