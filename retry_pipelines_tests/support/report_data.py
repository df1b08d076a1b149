"""Attempt histories for the report tests: written straight into the attempt tables."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Engine, func, insert, select, update

from retry_pipelines.store.queues import INVOICES, PAYOUTS, WorkQueue
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

DAY = date(2026, 3, 10)
"""The day the scenario's figures are about."""


def at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute, second), UTC)


def ok(started_at: datetime, latency_ms: float | None = None) -> dict:
    return {"started_at": started_at, "outcome": "success", "latency_ms": latency_ms}


def fail(
    started_at: datetime,
    error_type: str,
    code: str | None,
    message: str,
    latency_ms: float | None = None,
) -> dict:
    return {
        "started_at": started_at,
        "outcome": "failure",
        "error_type": error_type,
        "error_code": code,
        "error_message": message,
        "latency_ms": latency_ms,
    }


def in_flight(started_at: datetime) -> dict:
    return {"started_at": started_at, "outcome": "in_flight"}


EMPTY = dict.fromkeys(("error_type", "error_code", "error_message", "latency_ms"))


def add_attempts(engine: Engine, queue: WorkQueue, item_id: int, attempts: list[dict]) -> None:
    """Append ``attempts`` to the item's history, numbered after its existing ones."""
    a = queue.attempts
    with engine.begin() as conn:
        last = conn.execute(
            select(func.coalesce(func.max(a.c.attempt_number), 0)).where(queue.fk == item_id)
        ).scalar_one()
        rows = [
            {
                **EMPTY,
                queue.attempt_fk: item_id,
                "attempt_number": last + i,
                "finished_at": None
                if row["outcome"] == "in_flight"
                else row["started_at"] + timedelta(seconds=1),
                **row,
            }
            for i, row in enumerate(attempts, start=1)
        ]
        conn.execute(insert(a), rows)


def set_status(
    engine: Engine, queue: WorkQueue, item_id: int, status: str, updated_at: datetime, **values
) -> None:
    t = queue.items
    with engine.begin() as conn:
        conn.execute(
            update(t)
            .where(t.c.id == item_id)
            .values(status=status, updated_at=updated_at, **values)
        )


def seed_scenario(engine: Engine, day: date = DAY) -> None:
    """The attempts behind the figures the report tests assert (see ``test_report_sql``)."""
    before = at(day, 0) - timedelta(days=5)
    a, b, c, d, e, g, f = insert_invoices(engine, 7, now=before)
    add_attempts(
        engine,
        INVOICES,
        a,
        [
            fail(at(day, 9), "TRANSIENT", "500", "Internal Server Error", 100),
            ok(at(day, 9, 5), 200),
        ],
    )
    add_attempts(engine, INVOICES, b, [ok(at(day, 10), 300)])
    # Written before scrubbing existed: the report must not show the secret.
    add_attempts(
        engine,
        INVOICES,
        c,
        [fail(at(day, 11), "VALIDATION", "0019", "Invalid HS code; token=abcd1234secret", 400)],
    )
    add_attempts(engine, INVOICES, d, [fail(at(day, 12), "NETWORK", None, "read timeout", 500)])
    add_attempts(engine, INVOICES, e, [in_flight(at(day, 13))])
    add_attempts(
        engine,
        INVOICES,
        g,
        [
            fail(at(day, 14), "TRANSIENT", "500", "Internal Server Error", 600),
            fail(at(day, 14, 30), "TRANSIENT", "500", "upstream timeout", 700),
        ],
    )
    # The neighbouring days' attempts must not leak into the day.
    add_attempts(
        engine,
        INVOICES,
        f,
        [
            ok(at(day, 0) - timedelta(seconds=1), 10_000),
            fail(at(day, 0) + timedelta(days=1), "TRANSIENT", "500", "Internal Server Error", 1),
        ],
    )
    for item, status, when in (
        (a, "submitted", at(day, 9, 5)),
        (b, "submitted", at(day, 10)),
        (c, "dead", at(day, 11)),
        (d, "needs_reconciliation", at(day, 12)),
        (e, "processing", at(day, 13)),
        (f, "dead", at(day, 0) + timedelta(days=1)),
    ):
        set_status(engine, INVOICES, item, status, when)

    b1, b2, b3, b4, b5 = insert_batches(engine, 5, now=before)
    unavailable = ("TRANSIENT", "INTERNAL_SERVICE_ERROR", "Service unavailable")
    add_attempts(
        engine,
        PAYOUTS,
        b1,
        [
            fail(at(day, 9), *unavailable, 50),
            fail(at(day, 9, 10), *unavailable, 70),
            ok(at(day, 9, 20), 90),
        ],
    )
    add_attempts(
        engine,
        PAYOUTS,
        b2,
        [fail(at(day, 10), "PERMANENT", "INSUFFICIENT_FUNDS", "Sender lacks funds", 60)],
    )
    add_attempts(engine, PAYOUTS, b3, [ok(at(day, 11), 80)])
    add_attempts(engine, PAYOUTS, b4, [ok(at(day, 12), 40)])
    for item, status, when in (
        (b1, "submitted", at(day, 9, 20)),
        (b2, "dead", at(day, 10)),
        (b3, "completed", at(day, 11)),
        (b4, "submitted", at(day, 12)),
        (b5, "needs_reconciliation", at(day, 13)),  # crafted: held, its attempts long gone
    ):
        set_status(engine, PAYOUTS, item, status, when)
