"""Circuit breakers in the database, so every run and host sees the same one per gateway.

Each change reads the gateway's row under a lock (``SELECT ... FOR UPDATE`` on PostgreSQL; on
SQLite every transaction begins ``IMMEDIATE`` and so already holds the write lock), applies one
pure transition of ``domain.breaker`` and writes the row back together with one
``breaker_changes`` row per state change, all in one transaction: two processes can never both
trip, half-open or close the same breaker from the same state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine, RowMapping, select, update
from sqlalchemy.dialects import postgresql, sqlite

from retry_pipelines.domain import breaker as machine
from retry_pipelines.domain.breaker import (
    Admission,
    Breaker,
    BreakerConfig,
    BreakerState,
    Change,
    Step,
    Verdict,
)
from retry_pipelines.domain.errors import ErrorType
from retry_pipelines.store.clean import clean_value
from retry_pipelines.store.tables import breaker_changes, gateway_breakers

T = TypeVar("T")
_FIELDS = tuple(Breaker.__dataclass_fields__)


@dataclass(frozen=True)
class ChangeRow:
    id: int
    gateway: str
    at: datetime
    from_state: str
    to_state: str
    reason: str
    open_until: datetime | None
    run_id: str | None


def _to_breaker(row: RowMapping | None) -> Breaker:
    if row is None:
        return Breaker()
    values = {name: row[name] for name in _FIELDS}
    values["state"] = BreakerState(values["state"])
    values["reason"] = values["reason"] or ""
    return Breaker(**values)


def _locked(conn: Connection, gateway: str, now: datetime) -> Breaker:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(
        dialect.insert(gateway_breakers)
        .values(gateway=gateway, updated_at=now)
        .on_conflict_do_nothing(index_elements=["gateway"])
    )
    stmt = select(gateway_breakers).where(gateway_breakers.c.gateway == gateway)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return _to_breaker(conn.execute(stmt).mappings().one())


def _transact(
    engine: Engine,
    gateway: str,
    now: datetime,
    run_id: str | None,
    transition: Callable[[Breaker], tuple[Step, T]],
) -> tuple[Breaker, tuple[Change, ...], T]:
    with engine.begin() as conn:
        current = _locked(conn, gateway, now)
        step, result = transition(current)
        new = step.breaker
        if new != current:
            values = asdict(new)
            values["state"] = new.state.value
            values["reason"] = clean_value(gateway_breakers.c.reason, new.reason) or ""
            conn.execute(
                update(gateway_breakers)
                .where(gateway_breakers.c.gateway == gateway)
                .values(**values, updated_at=now)
            )
        for change in step.changes:
            conn.execute(
                breaker_changes.insert().values(
                    gateway=gateway,
                    at=change.at,
                    from_state=change.from_state.value,
                    to_state=change.to_state.value,
                    reason=clean_value(breaker_changes.c.reason, change.reason) or "",
                    open_until=change.open_until,
                    run_id=run_id,
                )
            )
    return new, step.changes, result


def admit(
    engine: Engine,
    gateway: str,
    config: BreakerConfig,
    *,
    now: datetime,
    run_id: str | None = None,
) -> tuple[Breaker, Admission, tuple[Change, ...]]:
    """Before a claim: what may be claimed (probe slots taken in half-open)."""
    new, changes, admission = _transact(
        engine, gateway, now, run_id, lambda b: machine.admit(b, now, config)
    )
    return new, admission, changes


def claimed(
    engine: Engine,
    gateway: str,
    config: BreakerConfig,
    *,
    first: int,
    retries: int,
    granted: int,
    now: datetime,
    run_id: str | None = None,
) -> Breaker:
    def step(b: Breaker) -> tuple[Step, None]:
        return machine.claimed(b, now, config, first=first, retries=retries, granted=granted), None

    return _transact(engine, gateway, now, run_id, step)[0]


def finished(
    engine: Engine,
    gateway: str,
    config: BreakerConfig,
    *,
    error_type: ErrorType | None,
    message: str = "",
    retry_after: float | None = None,
    now: datetime,
    run_id: str | None = None,
) -> tuple[Breaker, Verdict, tuple[Change, ...]]:
    """A call ended (``error_type`` ``None``: success); returns whether it counts for the item."""

    def step(b: Breaker) -> tuple[Step, Verdict]:
        return machine.finished(
            b, now, config, error_type=error_type, message=message, retry_after=retry_after
        )

    new, changes, verdict = _transact(engine, gateway, now, run_id, step)
    return new, verdict, changes


Ended = tuple[ErrorType | None, str, float | None]
"""One ended call: its error type (``None``: success), message and ``Retry-After``."""


def finished_many(
    engine: Engine,
    gateway: str,
    config: BreakerConfig,
    ended: Sequence[Ended],
    *,
    now: datetime,
    run_id: str | None = None,
) -> tuple[Breaker, list[Verdict], tuple[Change, ...]]:
    """Several calls ended: each applied in order, all in one transaction (a busy run's group
    commit). Returns the breaker after the last, each call's verdict and every state change."""

    def step(b: Breaker) -> tuple[Step, list[Verdict]]:
        changes: tuple[Change, ...] = ()
        verdicts = []
        for error_type, message, retry_after in ended:
            one, verdict = machine.finished(
                b, now, config, error_type=error_type, message=message, retry_after=retry_after
            )
            b, changes = one.breaker, changes + one.changes
            verdicts.append(verdict)
        return Step(b, changes), verdicts

    new, changes, verdicts = _transact(engine, gateway, now, run_id, step)
    return new, verdicts, changes


def current(engine: Engine, gateway: str) -> Breaker:
    """The stored breaker (closed when the gateway has none yet)."""
    with engine.connect() as conn:
        row = (
            conn.execute(select(gateway_breakers).where(gateway_breakers.c.gateway == gateway))
            .mappings()
            .first()
        )
    return _to_breaker(row)


def all_breakers(engine: Engine) -> dict[str, Breaker]:
    with engine.connect() as conn:
        rows = conn.execute(select(gateway_breakers).order_by(gateway_breakers.c.gateway))
        return {r["gateway"]: _to_breaker(r) for r in rows.mappings()}


def changes(
    engine: Engine,
    *,
    after_id: int | None = None,
    since: datetime | None = None,
    gateway: str | None = None,
    limit: int = 100,
) -> list[ChangeRow]:
    """State-change rows in id order, after ``after_id`` (or at/after ``since``)."""
    t = breaker_changes
    stmt = select(t).order_by(t.c.id).limit(limit)
    if after_id is not None:
        stmt = stmt.where(t.c.id > after_id)
    if since is not None:
        stmt = stmt.where(t.c.at >= since)
    if gateway is not None:
        stmt = stmt.where(t.c.gateway == gateway)
    with engine.connect() as conn:
        return [ChangeRow(**row) for row in conn.execute(stmt).mappings()]


def reset(engine: Engine, gateway: str) -> None:
    """Forget a gateway's breaker (closed, empty window); its history stays."""
    with engine.begin() as conn:
        conn.execute(gateway_breakers.delete().where(gateway_breakers.c.gateway == gateway))
