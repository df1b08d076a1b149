"""What a run learned about a gateway's token (when it was last validated, when it expires),
recorded in ``gateway_state``; never the token itself."""

from __future__ import annotations

from datetime import date, datetime, time

from sqlalchemy import Engine, select

from retry_pipelines.store.pauses import upsert_state
from retry_pipelines.store.tables import gateway_state


def record_token(
    engine: Engine,
    gateway: str,
    *,
    validated_at: datetime | None,
    expires_on: date | None,
    now: datetime,
) -> None:
    values = {"updated_at": now}
    if validated_at is not None:
        values["token_validated_at"] = validated_at
    if expires_on is not None:
        values["token_expires_at"] = datetime.combine(expires_on, time(0), tzinfo=now.tzinfo)
    upsert_state(engine, gateway, values, values)


def recorded_expiry(engine: Engine, gateway: str = "fbr") -> datetime | None:
    """The token expiry a run recorded for ``gateway``, if any."""
    stmt = select(gateway_state.c.token_expires_at).where(gateway_state.c.gateway == gateway)
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one_or_none()
