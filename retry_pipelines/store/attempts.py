"""Recording attempts: a row before the request; its outcome and the item's next state after.

``start_attempt`` writes the ``in_flight`` row and spends one attempt from the item's budget in the
same transaction, fenced by the lease: a worker that lost its lease cannot start. So after any
crash the database shows which requests may have gone out. ``record_outcome`` closes the attempt
and moves the item in one transaction; a gateway-level failure gives the budget back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, update

from retry_pipelines.domain.errors import Failure
from retry_pipelines.domain.scrub import scrub
from retry_pipelines.store.claims import held_by
from retry_pipelines.store.queues import WorkQueue


class LeaseLost(RuntimeError):
    """The worker no longer holds the item: its lease expired and was swept, or another took it."""


@dataclass(frozen=True, slots=True)
class StartedAttempt:
    attempt_id: int
    item_id: int
    attempt_number: int
    started_at: datetime


def start_attempt(
    engine: Engine,
    queue: WorkQueue,
    item_id: int,
    *,
    owner: str,
    now: datetime,
    run_id: str | None = None,
) -> StartedAttempt:
    t = queue.items
    with engine.begin() as conn:
        number = conn.execute(
            update(t)
            .where(t.c.id == item_id, held_by(queue, owner, now))
            .values(
                attempt_count=t.c.attempt_count + 1,
                counted_attempts=t.c.counted_attempts + 1,
                last_attempt_at=now,
                updated_at=now,
            )
            .returning(t.c.attempt_count)
        ).scalar_one_or_none()
        if number is None:
            raise LeaseLost(f"{queue.name} item {item_id} is no longer held by {owner}")
        attempt_id = conn.execute(
            insert(queue.attempts)
            .values(
                {
                    queue.attempt_fk: item_id,
                    "attempt_number": number,
                    "started_at": now,
                    "outcome": "in_flight",
                    "owner": owner,
                    "run_id": run_id,
                }
            )
            .returning(queue.attempts.c.id)
        ).scalar_one()
    return StartedAttempt(attempt_id, item_id, number, now)


def record_outcome(
    engine: Engine,
    queue: WorkQueue,
    attempt: StartedAttempt,
    *,
    owner: str,
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
) -> None:
    """Close ``attempt`` and move its item to ``new_status``, in one transaction.

    The attempt row is always closed: it is history, even if the lease was lost meanwhile. The
    item moves only if ``owner`` still holds it; otherwise ``LeaseLost`` is raised after commit,
    leaving the item to whoever swept it.
    """
    queue.machine.require(queue.processing, new_status)
    t, a = queue.items, queue.attempts
    message = scrub(failure.message if failure else None, secrets)
    attempt_values = {
        "finished_at": now,
        "outcome": "failure" if failure else "success",
        "error_type": failure.error_type.value if failure else None,
        "error_code": failure.error_code if failure else None,
        "error_message": message,
        "delivery": failure.delivery.value if failure else None,
        "http_status": http_status
        if http_status is not None
        else getattr(failure, "http_status", None),
        "latency_ms": latency_ms,
        "counts_against_budget": counts_against_budget,
    }
    item_values: dict[str, Any] = {
        "status": new_status,
        "updated_at": now,
        "status_reason": scrub(reason, secrets),
        **(fields or {}),
    }
    if not counts_against_budget:
        item_values["counted_attempts"] = t.c.counted_attempts - 1
    if failure:
        item_values |= {
            "last_error_type": failure.error_type.value,
            "last_error_code": failure.error_code,
            "last_error_message": message,
        }
    if next_attempt_at is not None:
        item_values["next_attempt_at"] = next_attempt_at
    if new_status != queue.processing:
        item_values |= {"lease_owner": None, "lease_expires_at": None}
    with engine.begin() as conn:
        conn.execute(update(a).where(a.c.id == attempt.attempt_id).values(attempt_values))
        moved = conn.execute(
            update(t)
            .where(
                t.c.id == attempt.item_id,
                t.c.status == queue.processing,
                t.c.lease_owner == owner,
            )
            .values(item_values)
        ).rowcount
    if not moved:
        raise LeaseLost(
            f"{queue.name} item {attempt.item_id}: attempt {attempt.attempt_number} recorded, "
            f"but {owner} no longer holds the item, so its status was left as the sweep set it"
        )
