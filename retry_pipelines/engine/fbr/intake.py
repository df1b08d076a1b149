"""Taking new invoices in: each is checked, and either queued or refused with its reasons.

A refused invoice is never half-stored, and one bad invoice never costs the good ones beside it:
the good ones are queued together in one transaction, and each refusal is returned to the caller
with every problem found (see ``domain.invoice_payload``). A reference already queued is refused
as a duplicate, so sending the same file twice queues nothing twice. (Two intakes racing on one
new reference: the second fails on the unique reference as a whole and stores nothing.)

A payload is stored exactly as it will be posted, so text the database cannot hold faithfully
(a NUL character, which PostgreSQL ``jsonb`` refuses, or invalid UTF-8 as lone surrogates) is
refused with the paths where it occurs, never cleaned into a different invoice.

References are trimmed, must be printable and in Unicode NFKC form, and are compared without
regard to case, within the intake and against the references already stored (``WS-1`` and
`` ws-1 `` are one reference). Each invoice is checked on its own: an unexpected error while
checking one refuses that invoice with the error's name, never the others. Defects the file's
parser kept (a repeated key, a number too long to be an amount: ``domain.json_limits``) refuse
the invoice that holds them, naming the path.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from retry_pipelines.domain.invoice_payload import Problem, check_invoice_payload
from retry_pipelines.domain.json_limits import json_defects
from retry_pipelines.store import invoices as store
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
    engine: Engine, invoices: Iterable[tuple[Any, ...]], *, now: datetime | None = None
) -> IntakeResult:
    """Queue each ``(reference, payload)`` that passes the checks, due now; refuse the rest.

    An entry may carry a third element: problems found while reading it (``(field, message)``
    pairs or ``Problem``), which refuse it too."""
    now = now or datetime.now(UTC)
    result = IntakeResult()
    accepted: dict[str, dict] = {}
    keys: set[str] = set()
    for position, (reference, payload, *found) in enumerate(invoices):
        label, key, problems = _reference(reference, position)
        if key is not None and key in keys:
            problems = [Problem("reference", "appears twice in this intake")]
        problems += [_problem(p) for p in (found[0] if found else ())]
        problems += _payload_problems(payload)
        if problems:
            result.refused.append(Refusal(label, tuple(problems)))
        else:
            accepted[label] = payload
            keys.add(key)
    if not accepted:
        return result

    with engine.begin() as conn:
        known = {_key(r) for r in store.stored_references(conn, list(accepted))}
        for reference in sorted(r for r in accepted if _key(r) in known):
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
            result.queued.update(store.insert_invoices(conn, rows))
    return result


def _payload_problems(payload: Any) -> list[Problem]:
    """Every problem of one payload; an error while checking it is its problem, not the file's."""
    try:
        defects = [Problem(where, message) for where, message in json_defects(payload)]
        marked = {p.field for p in defects}
        checked = check_invoice_payload(payload) + _text_problems(payload)
        return defects + [p for p in checked if p.field not in marked]
    except Exception as exc:  # one odd payload must never stop the others
        message = f"could not be checked: {type(exc).__name__}: {exc}"
        return [Problem("payload", message[:300])]


def _problem(found: Any) -> Problem:
    return found if isinstance(found, Problem) else Problem(*found)


def _text_problems(payload: Any) -> list[Problem]:
    paths = unstorable_json_paths(payload)
    if not paths:
        return []
    where = ", ".join(paths)
    return [Problem("payload", f"holds a NUL character or invalid UTF-8 text at {where}")]


def _reference(reference: Any, position: int) -> tuple[str, str | None, list[Problem]]:
    """``(label, compared form, problems)``: the label is the trimmed reference, or the
    entry's position when the reference itself is refused."""
    problems = _reference_problems(reference)
    if problems:
        return f"#{position + 1}", None, problems
    trimmed = reference.strip()
    return trimmed, _key(trimmed), []


def _key(reference: str) -> str:
    """The form references are compared in: NFKC, trimmed, case folded."""
    return unicodedata.normalize("NFKC", reference).strip().casefold()


def _reference_problems(reference: Any) -> list[Problem]:
    if not isinstance(reference, str) or not reference.strip():
        return [Problem("reference", "must be non-empty text")]
    reference = reference.strip()
    if len(reference) > MAX_REFERENCE:
        return [Problem("reference", f"is {len(reference)} chars; at most {MAX_REFERENCE}")]
    if not reference.isprintable():
        return [Problem("reference", "must be printable text (no control characters)")]
    normal = unicodedata.normalize("NFKC", reference)
    if normal != reference:
        return [Problem("reference", f"must be in Unicode NFKC form, like {normal!r}")]
    return []
