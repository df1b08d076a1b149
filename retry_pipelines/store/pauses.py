"""Gateway pauses, shared by every run and host: a rate limit or refused credentials stop the
whole gateway until a time, recorded in ``gateway_state``.

What caused a pause is read from its reason (``pause_kind``): the one writer of pauses, the
pipeline's recorder, stores the failure that caused it as ``Failure.summary()``, which begins with
its error type: ``TOKEN_EXPIRED`` (a refused token or credentials) or ``RATE_LIMIT``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, case, select
from sqlalchemy.dialects import postgresql, sqlite

from retry_pipelines.domain.errors import ErrorType
from retry_pipelines.store.clean import clean_value
from retry_pipelines.store.tables import gateway_state

CREDENTIALS = "credentials"
"""A pause for a refused token or refused credentials: a person must fix a setting."""
RATE_LIMIT = "rate_limit"
"""A pause the gateway asked for; it ends on its own."""
OTHER = "other"
"""A pause whose reason names neither (e.g. one set by hand)."""

_KINDS = {ErrorType.TOKEN_EXPIRED.value: CREDENTIALS, ErrorType.RATE_LIMIT.value: RATE_LIMIT}
_FIRST_WORD = re.compile(r"\s*([A-Z_]+)(?=[\s:]|$)")


def pause_kind(reason: str | None) -> str:
    """``CREDENTIALS``, ``RATE_LIMIT`` or ``OTHER``, from the error type a pause's reason begins
    with (``Failure.summary()``: ``"TOKEN_EXPIRED 401: ..."``, ``"RATE_LIMIT 900800: ..."``)."""
    match = _FIRST_WORD.match(reason or "")
    return _KINDS.get(match.group(1), OTHER) if match else OTHER


@dataclass(frozen=True)
class Pause:
    gateway: str
    until: datetime
    reason: str

    @property
    def kind(self) -> str:
        """What caused the pause (``pause_kind``)."""
        return pause_kind(self.reason)


def upsert_state(engine: Engine, gateway: str, values: dict, update: dict) -> None:
    """Insert the gateway's ``gateway_state`` row with ``values``, or set ``update`` on it."""
    with engine.begin() as conn:
        _upsert(conn, gateway, values, update)


def _upsert(conn: Connection, gateway: str, values: dict, update: dict) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(gateway_state).values(gateway=gateway, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["gateway"], set_=update))


def pause(
    engine: Engine,
    gateway: str,
    *,
    until: datetime,
    reason: str,
    now: datetime,
    secrets: Iterable[str | None] = (),
) -> None:
    """Pause ``gateway`` until ``until``; a later pause already in place is kept. The reason is
    cleaned and bounded (``store.clean``), ``secrets`` redacted."""
    reason = clean_value(gateway_state.c.pause_reason, reason or "", secrets=secrets) or ""
    t = gateway_state
    later = t.c.paused_until.is_(None) | (t.c.paused_until < until)
    upsert_state(
        engine,
        gateway,
        {"paused_until": until, "pause_reason": reason, "updated_at": now},
        {
            "paused_until": case((later, until), else_=t.c.paused_until),
            "pause_reason": case((later, reason), else_=t.c.pause_reason),
            "updated_at": now,
        },
    )


def current_pause(engine: Engine, gateway: str, *, now: datetime) -> Pause | None:
    stmt = select(gateway_state.c.paused_until, gateway_state.c.pause_reason).where(
        gateway_state.c.gateway == gateway, gateway_state.c.paused_until > now
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return Pause(gateway, row.paused_until, row.pause_reason or "") if row else None


def resume(engine: Engine, gateway: str, *, now: datetime) -> None:
    """End ``gateway``'s pause now, if it has one."""
    with engine.begin() as conn:
        lift(conn, gateway, now=now)


def lift(conn: Connection, gateway: str, *, now: datetime) -> Pause | None:
    """End ``gateway``'s pause now, in the caller's transaction; returns the pause it ended."""
    t = gateway_state
    row = conn.execute(
        select(t.c.paused_until, t.c.pause_reason)
        .where(t.c.gateway == gateway, t.c.paused_until > now)
        .with_for_update()
    ).first()
    cleared = {"paused_until": None, "pause_reason": None, "updated_at": now}
    _upsert(conn, gateway, cleared, cleared)
    return Pause(gateway, row.paused_until, row.pause_reason or "") if row else None


def paused(engine: Engine, *, now: datetime) -> list[Pause]:
    """Every gateway paused at ``now``, by name."""
    g = gateway_state
    stmt = (
        select(g.c.gateway, g.c.paused_until, g.c.pause_reason)
        .where(g.c.paused_until > now)
        .order_by(g.c.gateway)
    )
    with engine.connect() as conn:
        return [Pause(r.gateway, r.paused_until, r.pause_reason or "") for r in conn.execute(stmt)]
