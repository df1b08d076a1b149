"""Taking new invoices in: each is checked, and either queued or refused with its reasons.

A refused invoice is never half-stored, and one bad invoice never costs the good ones beside it:
the good ones are queued together in one transaction, and each refusal is returned to the caller
with every problem found (see ``domain.invoice_payload``). A reference already queued is refused
as a duplicate, so sending the same file twice queues nothing twice. (Two intakes racing on one
new reference: the second fails on the unique reference as a whole and stores nothing.)

A payload is stored exactly as it will be posted, so text the database cannot hold faithfully
(a NUL character, which PostgreSQL ``jsonb`` refuses, or invalid UTF-8 as lone surrogates) is
refused with the paths where it occurs, never cleaned into a different invoice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from retry_pipelines.domain.invoice_payload import Problem, check_invoice_payload
from retry_pipelines.store import tables
from retry_pipelines.store.clean import unstorable_json_paths

MAX_REFERENCE = tables.invoices.c.reference.type.length


@dataclass(frozen=True)
class Refusal:
    reference: str
    problems: tuple[Problem, ...]

    def __str__(self) -> str:
        return f"{self.reference}: " + "; ".join(map(str, self.problems))


@dataclass
class IntakeResult:
    queued: dict[str, int] = field(default_factory=dict)
    """reference -> invoice id"""
    refused: list[Refusal] = field(default_factory=list)


def enqueue_invoices(
    engine: Engine, invoices: Iterable[tuple[Any, Any]], *, now: datetime | None = None
) -> IntakeResult:
    """Queue each ``(reference, payload)`` that passes the checks, due now; refuse the rest."""
    now = now or datetime.now(UTC)
    result = IntakeResult()
    accepted: dict[str, dict] = {}
    for position, (reference, payload) in enumerate(invoices):
        problems = _reference_problems(reference)
        label = reference if not problems else f"#{position + 1}"
        if not problems and reference in accepted:
            problems = [Problem("reference", "appears twice in this intake")]
        problems += check_invoice_payload(payload)
        problems += _text_problems(payload)
        if problems:
            result.refused.append(Refusal(label, tuple(problems)))
        else:
            accepted[reference] = payload
    if not accepted:
        return result

    t = tables.invoices
    with engine.begin() as conn:
        known = {
            reference
            for chunk in _chunks(list(accepted))
            for reference in conn.execute(
                select(t.c.reference).where(t.c.reference.in_(chunk))
            ).scalars()
        }
        for reference in sorted(known):
            del accepted[reference]
            result.refused.append(Refusal(reference, (Problem("reference", "is already queued"),)))
        if accepted:
            rows = [
                {
                    "reference": reference,
                    "seller_ntn": payload["sellerNTNCNIC"],
                    "payload": payload,
                    "status": "pending",
                    "next_attempt_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
                for reference, payload in accepted.items()
            ]
            conn.execute(insert(t), rows)
            for chunk in _chunks(list(accepted)):
                ids = conn.execute(select(t.c.reference, t.c.id).where(t.c.reference.in_(chunk)))
                result.queued.update(dict(ids.all()))
    return result


def _chunks(values: list, size: int = 1000):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _text_problems(payload: Any) -> list[Problem]:
    paths = unstorable_json_paths(payload)
    if not paths:
        return []
    where = ", ".join(paths)
    return [Problem("payload", f"holds a NUL character or invalid UTF-8 text at {where}")]


def _reference_problems(reference: Any) -> list[Problem]:
    if not isinstance(reference, str) or not reference.strip():
        return [Problem("reference", "must be non-empty text")]
    if len(reference) > MAX_REFERENCE:
        return [Problem("reference", f"is {len(reference)} chars; at most {MAX_REFERENCE}")]
    if not reference.isprintable():
        return [Problem("reference", "must be printable text")]
    return []
