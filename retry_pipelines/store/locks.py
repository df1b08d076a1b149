"""Named processing locks with an owner and an expiry (e.g. one per payout cycle).

A lock is a row: taking it inserts the row, or takes over one whose expiry has passed, in a single
statement; a live lock held by someone else is refused with its holder and expiry, so an operator
sees who holds it and until when. Expiry makes a crashed holder harmless.

Owners and run ids are cleaned and bounded for their columns (``store.clean``), the same way by
every function here, so a long owner still releases what it took. A key is an identifier: one
that does not fit its column exactly raises ``store.clean.UnstorableIdentifier`` (a
``ValueError``) rather than being cut into another lock's key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from retry_pipelines.store.clean import clean_value
from retry_pipelines.store.tables import processing_locks


@dataclass(frozen=True)
class LockHolder:
    key: str
    owner: str
    run_id: str | None
    acquired_at: datetime
    expires_at: datetime


class LockHeld(RuntimeError):
    def __init__(self, holder: LockHolder):
        self.holder = holder
        run = f" (run {holder.run_id})" if holder.run_id else ""
        super().__init__(
            f"{holder.key} is locked by {holder.owner}{run} until {holder.expires_at.isoformat()}"
        )


def acquire(
    engine: Engine,
    key: str,
    *,
    owner: str,
    now: datetime,
    ttl: timedelta,
    run_id: str | None = None,
    reentrant: bool = True,
) -> LockHolder:
    """Take ``key`` for ``ttl``, or renew it if ``owner`` already holds it (unless not
    ``reentrant``: then a live lock is refused whoever holds it); raises ``LockHeld``."""
    t = processing_locks
    key, owner = _key(key), _owner(owner)
    run_id = clean_value(t.c.run_id, run_id)
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(t).values(
        lock_key=key, owner=owner, run_id=run_id, acquired_at=now, expires_at=now + ttl
    )
    takeable = t.c.expires_at <= now
    if reentrant:
        takeable = takeable | (t.c.owner == owner)
    stmt = stmt.on_conflict_do_update(
        index_elements=["lock_key"],
        set_={
            "owner": stmt.excluded.owner,
            "run_id": stmt.excluded.run_id,
            "acquired_at": stmt.excluded.acquired_at,
            "expires_at": stmt.excluded.expires_at,
        },
        where=takeable,
    ).returning(t.c.owner)
    with engine.begin() as conn:
        taken = conn.execute(stmt).scalar_one_or_none()
        if taken is None:
            row = conn.execute(select(t).where(t.c.lock_key == key)).one()
            raise LockHeld(LockHolder(key, row.owner, row.run_id, row.acquired_at, row.expires_at))
    return LockHolder(key, owner, run_id, now, now + ttl)


def release(engine: Engine, key: str, *, owner: str) -> bool:
    t = processing_locks
    key, owner = _key(key), _owner(owner)
    with engine.begin() as conn:
        return bool(conn.execute(delete(t).where(t.c.lock_key == key, t.c.owner == owner)).rowcount)


def holder(engine: Engine, key: str, *, now: datetime) -> LockHolder | None:
    t = processing_locks
    key = _key(key)
    with engine.connect() as conn:
        row = conn.execute(select(t).where(t.c.lock_key == key, t.c.expires_at > now)).first()
    return LockHolder(key, row.owner, row.run_id, row.acquired_at, row.expires_at) if row else None


def _key(key: str) -> str:
    return clean_value(processing_locks.c.lock_key, key)


def _owner(owner: str) -> str:
    return clean_value(processing_locks.c.owner, owner)
