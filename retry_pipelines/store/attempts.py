"""Recording attempts: a row before the request; its outcome and the item's next state after.

``start_attempt`` writes the ``in_flight`` row and spends one attempt from the item's budget in the
same transaction, fenced by the lease: a worker that lost its lease cannot start. So after any
crash the database shows which requests may have gone out. ``record_outcome`` closes the attempt
and moves the item in one transaction; a gateway-level failure gives the budget back.

Every text reaches its row through ``store.clean`` (bounded per column, control characters and
invalid UTF-8 removed, secrets redacted), so no gateway answer can fail the write of an outcome.
An identifier a gateway issued that cannot be stored exactly as received (an FBR invoice number
longer than its column) is never cut: the item is held for an operator with the full value in its
``status_reason``. ``fallback_outcome`` is the last resort of the group writer
(``engine.writer``) for an outcome the database still refuses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from retry_pipelines.domain.errors import Failure
from retry_pipelines.store.claims import held_by, id_in
from retry_pipelines.store.clean import clean_row, keep_whole, unstorable_identifiers
from retry_pipelines.store.queues import WorkQueue


class LeaseLost(RuntimeError):
    """The worker no longer holds the item: its lease expired and was swept, or another took it."""


@dataclass(frozen=True, slots=True)
class StartedAttempt:
    attempt_id: int
    item_id: int
    attempt_number: int
    started_at: datetime


def start_attempts(
    conn: Connection,
    queue: WorkQueue,
    item_ids: Sequence[int],
    *,
    owner: str,
    now: datetime,
    run_id: str | None = None,
) -> dict[int, StartedAttempt]:
    """In ``conn``'s transaction: spend one attempt of each item ``owner`` still holds and write
    its ``in_flight`` row. Items no longer held are left out of the result."""
    if not item_ids:
        return {}
    t = queue.items
    numbers = dict(
        conn.execute(
            update(t)
            .where(id_in(t.c.id, item_ids, conn.dialect.name), held_by(queue, owner, now))
            .values(
                attempt_count=t.c.attempt_count + 1,
                counted_attempts=t.c.counted_attempts + 1,
                last_attempt_at=now,
                updated_at=now,
            )
            .returning(t.c.id, t.c.attempt_count)
        ).all()
    )
    if not numbers:
        return {}
    rows = [
        clean_row(
            queue.attempts,
            {
                queue.attempt_fk: item_id,
                "attempt_number": number,
                "started_at": now,
                "outcome": "in_flight",
                "owner": owner,
                "run_id": run_id,
            },
        )
        for item_id, number in numbers.items()
    ]
    inserted = conn.execute(
        insert(queue.attempts).returning(
            queue.attempts.c.id, queue.fk, sort_by_parameter_order=True
        ),
        rows,
    ).all()
    return {
        item_id: StartedAttempt(attempt_id, item_id, numbers[item_id], now)
        for attempt_id, item_id in inserted
    }


def start_attempt(
    engine: Engine,
    queue: WorkQueue,
    item_id: int,
    *,
    owner: str,
    now: datetime,
    run_id: str | None = None,
) -> StartedAttempt:
    with engine.begin() as conn:
        started = start_attempts(conn, queue, [item_id], owner=owner, now=now, run_id=run_id)
    if item_id not in started:
        raise LeaseLost(f"{queue.name} item {item_id} is no longer held by {owner}")
    return started[item_id]


def _outcome_values(
    queue: WorkQueue,
    *,
    now: datetime,
    new_status: str,
    failure: Failure | None = None,
    counts_against_budget: bool = True,
    next_attempt_at: datetime | None = None,
    reason: str | None = None,
    http_status: int | None = None,
    latency_ms: float | None = None,
    fields: Mapping[str, Any] | None = None,
    secrets: tuple[str, ...] = (),
    note: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The attempt row's and the item's new values for one outcome, every text cleaned for its
    column (``store.clean``: bounded, no control characters, secrets redacted).

    An identifier in ``fields`` that cannot be stored as received (say an FBR invoice number
    longer than its column) is not written to its column: the item is held (``held_status``)
    and the full value goes, as a string literal, into a ``note``. A note is written whole into
    the item's ``status_reason`` (and a success attempt's ``error_message``), never cut."""
    queue.machine.require(queue.processing, new_status)
    fields = dict(fields or {})
    held = _unstorable_identifiers_note(queue, fields)
    if held:
        new_status = queue.held_status
        note = f"{note}; {held}" if note else held
    attempt_values = clean_row(
        queue.attempts,
        {
            "finished_at": now,
            "outcome": "failure" if failure else "success",
            "error_type": failure.error_type.value if failure else None,
            "error_code": _text(failure.error_code) if failure else None,
            "error_message": failure.message if failure else None,
            "delivery": failure.delivery.value if failure else None,
            "http_status": http_status
            if http_status is not None
            else getattr(failure, "http_status", None),
            "latency_ms": latency_ms,
            "counts_against_budget": counts_against_budget,
        },
        secrets=secrets,
    )
    item_values = clean_row(
        queue.items,
        {
            "status": new_status,
            "updated_at": now,
            "status_reason": reason,
            "refund_budget": 0 if counts_against_budget else 1,
            **fields,
        },
        secrets=secrets,
    )
    if note:
        item_values["status_reason"] = keep_whole(note)
        if not failure:
            attempt_values["error_message"] = item_values["status_reason"]
    if failure:  # cleaned once, for the attempt; the item's columns have the same limits
        item_values |= {
            "last_error_type": attempt_values["error_type"],
            "last_error_code": attempt_values["error_code"],
            "last_error_message": attempt_values["error_message"],
        }
    if next_attempt_at is not None:
        item_values["next_attempt_at"] = next_attempt_at
    if new_status != queue.processing:
        item_values |= {"lease_owner": None, "lease_expires_at": None}
    return attempt_values, item_values


def _text(value: Any) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _unstorable_identifiers_note(queue: WorkQueue, fields: dict[str, Any]) -> str | None:
    """Take out of ``fields`` the identifiers that cannot be stored as received; the note that
    keeps them (``None`` when there are none)."""
    bad = unstorable_identifiers(queue.items, fields)
    if not bad:
        return None
    kept = "; ".join(
        f"{name} ({why}), exactly as received: {fields.pop(name)!r}" for name, why in bad.items()
    )
    return (
        f"{queue.name} answered with a value that cannot be stored in its column as received, "
        f"so the item is held for an operator: {kept}"
    )


def fallback_outcome(queue: WorkQueue, kwargs: Mapping[str, Any], error: BaseException) -> dict:
    """``record_many`` arguments for an outcome that could not be stored as given (``error``):
    its failure texts (message, error code) and reason are replaced by a short safe note naming
    the error's type, so the attempt can still be closed and the item moved. Text values in
    ``fields`` (identifiers a gateway issued) are never dropped: they move into the note, as
    string literals, and the item is held for an operator instead."""
    kw = dict(kwargs)
    safe = (
        f"outcome could not be stored as received ({type(error).__name__}); its texts were "
        "replaced by this note"
    )
    if kw.get("failure") is not None:
        kw["failure"] = replace(kw["failure"], message=safe, error_code=None)
    fields = dict(kw.get("fields") or {})
    texts = {k: fields.pop(k) for k in [k for k, v in fields.items() if isinstance(v, str)]}
    note = safe
    if texts:
        values = ", ".join(f"{k}={v!r}" for k, v in texts.items())
        note = f"{safe}; held for an operator; values received: {values}"
        kw |= {"new_status": queue.held_status, "next_attempt_at": None}
    kw |= {"fields": fields, "reason": None, "note": note}
    return kw


def record_many(
    conn: Connection,
    queue: WorkQueue,
    outcomes: Sequence[tuple[StartedAttempt, dict[str, Any]]],
    *,
    owner: str,
) -> list[bool]:
    """In ``conn``'s transaction: close every attempt (always: they are history) and move each
    item ``owner`` still holds. Returns, per outcome, whether its item moved. Statements are
    batched: one read of which items are still held, then one ``executemany`` per shape."""
    if not outcomes:
        return []
    t, a = queue.items, queue.attempts
    values = [(attempt, *_outcome_values(queue, **kw)) for attempt, kw in outcomes]
    item_ids = [attempt.item_id for attempt, _, _ in values]
    still_held = select(t.c.id).where(
        id_in(t.c.id, item_ids, conn.dialect.name),
        t.c.status == queue.processing,
        t.c.lease_owner == owner,
    )
    if conn.dialect.name == "postgresql":
        still_held = still_held.with_for_update()
    held = set(conn.execute(still_held).scalars())

    conn.execute(
        update(a).where(a.c.id == bindparam("b_attempt_id")),
        [{"b_attempt_id": attempt.attempt_id, **av} for attempt, av, _ in values],
    )
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for attempt, _, iv in values:
        if attempt.item_id in held:
            shapes.setdefault(tuple(sorted(iv)), []).append({"b_item_id": attempt.item_id, **iv})
    for keys, rows in shapes.items():
        sets = {k: bindparam(k) for k in keys if k != "refund_budget"}
        sets["counted_attempts"] = t.c.counted_attempts - bindparam("refund_budget")
        stmt = (
            update(t)
            .where(
                t.c.id == bindparam("b_item_id"),
                t.c.status == queue.processing,
                t.c.lease_owner == owner,
            )
            .values(sets)
        )
        conn.execute(stmt, rows)
    return [attempt.item_id in held for attempt, _, _ in values]


def record_outcome(engine: Engine, queue: WorkQueue, attempt: StartedAttempt, **kwargs) -> None:
    """Close ``attempt`` and move its item, in one transaction (see ``record_many``).

    Raises ``LeaseLost`` after commit when the item was no longer held: the attempt is recorded,
    the item's status is left as the sweep set it.
    """
    owner = kwargs.pop("owner")
    with engine.begin() as conn:
        [moved] = record_many(conn, queue, [(attempt, kwargs)], owner=owner)
    if not moved:
        raise LeaseLost(
            f"{queue.name} item {attempt.item_id}: attempt {attempt.attempt_number} recorded, "
            f"but {owner} no longer holds the item, so its status was left as the "
            "sweep set it"
        )
