"""Classify FBR DI responses into an accepted invoice or a taxonomy failure.

FBR answers HTTP 200 even when it rejects an invoice, so the body decides: success only when
``invoiceNumber`` is present and every item has ``statusCode`` "00". The WSO2 gateway in front
answers 401/429 faults itself (the invoice certainly did not reach FBR). A 500, 502 or 504 on a
post, a timeout or a mangled 200 body may come after FBR issued a number: those are ambiguous,
because FBR has no idempotency key and a blind re-post could create a second fiscal invoice.

``classify`` never raises: every byte sequence maps to an outcome.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.gateways.http import header, parse_retry_after, snippet, text

AUTH_CODES = frozenset({"0401", "0402"})
"""NTN/CNIC malformed, or no authorised token for that seller: data or configuration."""


@dataclass(frozen=True, slots=True)
class Accepted:
    invoice_number: str
    dated: str | None
    item_numbers: tuple[str, ...]


def classify(
    status: int, headers: Mapping[str, str], body: bytes, *, is_post: bool
) -> Accepted | Failure:
    """The outcome of one FBR response. ``is_post``: the call issues numbers (has side effects)."""
    try:
        return _classify(status, headers, body, is_post=is_post)
    except Exception as exc:  # a parser bug must not lose the attempt: hold it as ambiguous
        return Failure(
            ErrorType.UNKNOWN,
            f"unparseable FBR response (HTTP {status}): {type(exc).__name__}",
            Delivery.AMBIGUOUS if is_post else Delivery.NOT_DELIVERED,
            f"HTTP_{status}",
            http_status=status,
        )


def _ambiguity(is_post: bool) -> Delivery:
    return Delivery.AMBIGUOUS if is_post else Delivery.NOT_DELIVERED


def _classify(status: int, headers: Mapping[str, str], body: bytes, *, is_post: bool):
    code = f"HTTP_{status}"
    if status == 401:
        fault = _wso2_fault(body)
        return Failure(
            ErrorType.TOKEN_EXPIRED,
            f"gateway refused the token: {fault[1] or snippet(body) or 'HTTP 401'}",
            Delivery.NOT_DELIVERED,
            fault[0] or code,
            http_status=status,
        )
    if status == 403:
        return Failure(
            ErrorType.TOKEN_EXPIRED,
            f"forbidden (token scope or server IP not allowlisted): {snippet(body) or 'HTTP 403'}",
            Delivery.NOT_DELIVERED,
            code,
            http_status=status,
        )
    if status == 429:
        fault = _wso2_fault(body)
        return Failure(
            ErrorType.RATE_LIMIT,
            f"throttled: {fault[1] or 'HTTP 429'}",
            Delivery.NOT_DELIVERED,
            fault[0] or code,
            http_status=status,
            retry_after=parse_retry_after(header(headers, "retry-after")),
        )
    if status == 503:
        return Failure(
            ErrorType.TRANSIENT,
            f"service unavailable: {snippet(body) or 'HTTP 503'}",
            Delivery.NOT_DELIVERED,
            code,
            http_status=status,
            retry_after=parse_retry_after(header(headers, "retry-after")),
        )
    if status >= 500:
        return Failure(
            ErrorType.TRANSIENT,
            f"server error HTTP {status}: {snippet(body) or 'empty body'}",
            _ambiguity(is_post),
            code,
            http_status=status,
        )
    if not 200 <= status < 300:
        return Failure(
            ErrorType.PERMANENT,
            f"unexpected HTTP {status} (check FBR_API_BASE_URL and the request): {snippet(body)}",
            Delivery.NOT_DELIVERED,
            code,
            http_status=status,
        )
    return _classify_body(body, status, is_post=is_post)


def _classify_body(body: bytes, status: int, *, is_post: bool) -> Accepted | Failure:
    def unknown(message: str, code: str) -> Failure:
        return Failure(ErrorType.UNKNOWN, message, _ambiguity(is_post), code, http_status=status)

    if not body.strip():
        return unknown(f"HTTP {status} with an empty body", "EMPTY_BODY")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return unknown(f"HTTP {status} with a body that is not JSON: {snippet(body)}", "BAD_JSON")
    if not isinstance(data, dict):
        return unknown(
            f"HTTP {status} with JSON that is not an object: {snippet(body)}", "BAD_SHAPE"
        )
    response = data.get("validationResponse")
    if not isinstance(response, dict):
        return unknown(f"HTTP {status} without a validationResponse", "BAD_SHAPE")

    number = text(data.get("invoiceNumber"))
    header_code = text(response.get("statusCode"))
    items = response.get("invoiceStatuses")
    items = [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []
    failed = [i for i in items if text(i.get("statusCode")) != "00"]

    if number and header_code != "00":
        return unknown(
            f"FBR issued {number} yet answered statusCode {header_code!r} "
            f"({text(response.get('errorCode'))}: {text(response.get('error'))}); "
            "reconcile before re-posting",
            "NUMBER_WITH_REJECTION",
        )
    if header_code == "01" or (header_code != "00" and not number):
        error_code = text(response.get("errorCode")) or text(header_code) or "UNKNOWN"
        message = text(response.get("error")) or text(response.get("status")) or "rejected"
        error_type = ErrorType.PERMANENT if error_code in AUTH_CODES else ErrorType.VALIDATION
        if header_code != "01":
            return unknown(f"unrecognised statusCode {header_code!r}: {message}", "BAD_SHAPE")
        return Failure(error_type, message, Delivery.NOT_DELIVERED, error_code, http_status=status)
    if failed:
        first = failed[0]
        message = "; ".join(
            f"item {text(i.get('itemSNo')) or '?'}: {text(i.get('error')) or 'invalid'}"
            for i in failed[:5]
        )
        if number:
            return unknown(
                f"FBR issued {number} yet rejected items ({message}); reconcile before re-posting",
                "NUMBER_WITH_ITEM_ERRORS",
            )
        error_code = text(first.get("errorCode")) or "ITEM_INVALID"
        error_type = ErrorType.PERMANENT if error_code in AUTH_CODES else ErrorType.VALIDATION
        return Failure(error_type, message, Delivery.NOT_DELIVERED, error_code, http_status=status)
    if not is_post:
        return Accepted("", text(data.get("dated")) or None, ())
    if not number:
        return unknown("statusCode 00 but no invoiceNumber", "NO_NUMBER")
    item_numbers = tuple(n for n in (text(i.get("invoiceNo")) for i in items) if n)
    return Accepted(number, text(data.get("dated")) or None, item_numbers)


def _wso2_fault(body: bytes) -> tuple[str | None, str | None]:
    try:
        fault = json.loads(body).get("fault")
    except (ValueError, AttributeError, RecursionError):
        return None, None
    if not isinstance(fault, dict):
        return None, None
    return text(fault.get("code")) or None, text(fault.get("message")) or None
