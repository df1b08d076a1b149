"""Classify PayPal Payouts responses: a created (or adopted) batch, or a taxonomy failure.

PayPal deduplicates on ``sender_batch_id`` for 30 days, so an ambiguous create (timeout, 500,
connection lost) is retried with the *same* ``sender_batch_id`` and ``PayPal-Request-Id``. The
answer "Batch with given sender_batch_id already exists" then means an earlier attempt created the
batch: the linked batch is adopted, never replaced by a new id. ``classify_create`` never raises.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.gateways.http import header, parse_retry_after, snippet, text

DUPLICATE_ISSUE = "batch with given sender_batch_id already exists"
VALIDATION_NAMES = frozenset({"INVALID_REQUEST", "VALIDATION_ERROR", "NON_HOLDING_CURRENCY"})
LATER_NAMES = frozenset(
    {
        "RATE_LIMIT_VALIDATION",
        "RATE_LIMIT_VALIDATION_FAILURES",
        "PREVIOUS_REQUEST_IN_PROGRESS",
        "REQUEST_TIMEOUT_EXCEEDED",
    }
)
"""Documented as "later, with backoff" whatever the HTTP status (which is unconfirmed)."""


@dataclass(frozen=True, slots=True)
class Created:
    payout_batch_id: str
    batch_status: str | None
    adopted: bool = False
    """True when PayPal said the batch already existed and we took over the linked one."""


def classify_create(status: int, headers: Mapping[str, str], body: bytes) -> Created | Failure:
    """The outcome of ``POST /v1/payments/payouts``."""
    try:
        return _classify_create(status, headers, body)
    except Exception as exc:  # a parser bug must not lose the attempt: retry with the same ids
        return Failure(
            ErrorType.UNKNOWN,
            f"unparseable PayPal response (HTTP {status}): {type(exc).__name__}",
            Delivery.AMBIGUOUS,
            f"HTTP_{status}",
            http_status=status,
        )


def _classify_create(status: int, headers: Mapping[str, str], body: bytes) -> Created | Failure:
    data = _json(body)
    if 200 <= status < 300:
        batch_header = data.get("batch_header") if isinstance(data, dict) else None
        batch_id = (
            text(batch_header.get("payout_batch_id")) if isinstance(batch_header, dict) else ""
        )
        if not batch_id:
            return Failure(
                ErrorType.UNKNOWN,
                f"HTTP {status} without a payout_batch_id: {snippet(body) or 'empty body'}",
                Delivery.AMBIGUOUS,
                "BAD_SHAPE",
                http_status=status,
            )
        return Created(batch_id, text(batch_header.get("batch_status")) or None)

    name, message = _error_text(data, body)
    code = name or f"HTTP_{status}"
    summary = f"{name or f'HTTP {status}'}: {message or 'no message'}"

    def failure(error_type: ErrorType, delivery: Delivery, **extra: Any) -> Failure:
        return Failure(error_type, summary, delivery, code, http_status=status, **extra)

    if status == 400 and name == "USER_BUSINESS_ERROR":
        duplicate, original = _duplicate_batch(data)
        if original:
            return Created(original, None, adopted=True)
        if duplicate:
            return Failure(
                ErrorType.PERMANENT,
                "sender_batch_id already used, but PayPal named no batch to adopt: find it on "
                "PayPal by the sender_batch_id and override this batch's status",
                Delivery.AMBIGUOUS,
                "DUPLICATE_WITHOUT_LINK",
                http_status=status,
            )
        return failure(ErrorType.PERMANENT, Delivery.NOT_DELIVERED)
    if name in LATER_NAMES:
        return failure(ErrorType.TRANSIENT, Delivery.NOT_DELIVERED)
    if status == 401:
        return failure(ErrorType.TOKEN_EXPIRED, Delivery.NOT_DELIVERED)
    if status == 429:
        retry_after = parse_retry_after(header(headers, "retry-after"))
        return failure(ErrorType.RATE_LIMIT, Delivery.NOT_DELIVERED, retry_after=retry_after)
    if status == 503:
        return failure(ErrorType.TRANSIENT, Delivery.NOT_DELIVERED)
    if status == 409:
        return failure(ErrorType.TRANSIENT, Delivery.AMBIGUOUS)
    if status >= 500:
        return failure(ErrorType.TRANSIENT, Delivery.AMBIGUOUS)
    if status == 400 and name in VALIDATION_NAMES:
        return failure(ErrorType.VALIDATION, Delivery.NOT_DELIVERED)
    return failure(ErrorType.PERMANENT, Delivery.NOT_DELIVERED)


def _error_text(data: Any, body: bytes) -> tuple[str, str]:
    """``(name, message)`` of a PayPal error: ``name``/``message`` (REST), else OAuth's
    ``error``/``error_description`` (a refused token on the API itself). The message adds the
    first issues of ``details`` (where the reason of a VALIDATION_ERROR is) and the debug id
    PayPal support asks for; a body that is not an error object reads as a bounded snippet."""
    if not isinstance(data, dict):
        return "", snippet(body)
    name = text(data.get("name"), 100) or text(data.get("error"), 100)
    message = text(data.get("message")) or text(data.get("error_description"))
    details = data.get("details")
    issues = [
        ": ".join(p for p in (text(d.get("field"), 100), text(d.get("issue"), 300)) if p)
        for d in (details[:3] if isinstance(details, list) else [])
        if isinstance(d, dict)
    ]
    issues = [i for i in issues if i]
    if issues:
        message = f"{message} ({'; '.join(issues)})" if message else "; ".join(issues)
    debug_id = text(data.get("debug_id"), 40) or text(data.get("debugId"), 40)
    if debug_id:
        message = f"{message or 'no message'} [debug_id {debug_id}]"
    return name, message or snippet(body)


def _duplicate_batch(data: Any) -> tuple[bool, str | None]:
    """Whether the error says the sender_batch_id was already used, and the original batch id."""
    details = data.get("details") if isinstance(data, dict) else None
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        if DUPLICATE_ISSUE not in text(detail.get("issue")).lower():
            continue
        for key in ("link", "links"):
            links = detail.get(key)
            for link in links if isinstance(links, list) else []:
                href = text(link.get("href")) if isinstance(link, dict) else ""
                batch_id = href.rstrip("/").rsplit("/", 1)[-1] if "/payouts/" in href else ""
                if batch_id:
                    return True, batch_id
        return True, None
    return False, None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except (ValueError, RecursionError):
        return None
