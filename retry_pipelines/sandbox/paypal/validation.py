"""Whether a create_payout_request is acceptable: the spec's schema, then PayPal's rules.

A body that breaks the schema or the rules is answered 400 ``VALIDATION_ERROR`` with one
``details`` entry per problem. Validation beyond the schema: a recipient type must be given (item
or header) and be EMAIL, PHONE or PAYPAL_ID (the response schema's enum); an EMAIL receiver needs
an ``@``; ``recipient_wallet`` must be PAYPAL, VENMO or RECIPIENT_SELECTED; ``amount.currency``
is three capital letters, ``amount.value`` a positive decimal string with at most two decimals
(none for JPY, HUF, TWD); all items of a batch share one currency. ``sender_batch_id`` is
optional in the spec, so a batch without one (or with ``""``) is acceptable.

Simulated errors follow PayPal's test values: a code in ``items[0].note`` answers instead of
creating -- ERRPYO001 403 SENDER_RESTRICTED, 002 403 SENDER_EMAIL_UNCONFIRMED, 003 403
AUTHORIZATION_ERROR, 005 422 INSUFFICIENT_FUNDS, 006 500 INTERNAL_ERROR, 010 400
VALIDATION_ERROR, 011 403 REQUIRED_SCOPE_MISSING, 012 403 SENDER_LOCKED, 014 400
USER_BUSINESS_ERROR (HTTP statuses from third-party probes). Other codes create normally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from retry_pipelines.sandbox.paypal.config import ZERO_DECIMAL_CURRENCIES
from retry_pipelines.sandbox.paypal.dialect import error

MAX_ITEMS = 15000
RECIPIENT_TYPES = ("EMAIL", "PHONE", "PAYPAL_ID")
RECIPIENT_WALLETS = ("PAYPAL", "VENMO", "RECIPIENT_SELECTED")
PURPOSES = (
    "AWARDS",
    "PRIZES",
    "DONATIONS",
    "GOODS",
    "SERVICES",
    "REBATES",
    "CASHBACK",
    "DISCOUNTS",
    "NON_GOODS_OR_SERVICES",
)
SIMULATED_ERRORS: Mapping[str, tuple[int, str, str]] = MappingProxyType(
    {
        "ERRPYO001": (403, "SENDER_RESTRICTED", "The sender's account is restricted."),
        "ERRPYO002": (403, "SENDER_EMAIL_UNCONFIRMED", "Authorization error occurred"),
        "ERRPYO003": (403, "AUTHORIZATION_ERROR", "Authorization error occurred"),
        "ERRPYO005": (
            422,
            "INSUFFICIENT_FUNDS",
            "Sender does not have sufficient funds. Add funds and retry.",
        ),
        "ERRPYO006": (500, "INTERNAL_ERROR", "An internal error occurred."),
        "ERRPYO010": (400, "VALIDATION_ERROR", "Invalid request - see details"),
        "ERRPYO011": (403, "REQUIRED_SCOPE_MISSING", "The access token lacks a required scope."),
        "ERRPYO012": (403, "SENDER_LOCKED", "The sender's account is locked."),
        "ERRPYO014": (400, "USER_BUSINESS_ERROR", "User business error."),
    }
)
"""PayPal's documented test values for ``items[0].note``: code -> (HTTP status, name, message)."""

VALIDATION_MESSAGE = "Invalid request - see details"

_LINE = re.compile(r"^.*$")
"""The spec's pattern for every free-text field (``re.search``, as JSON Schema applies it)."""
_LANGUAGE = re.compile(r"^[a-z]{2}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}))?$")
_CURRENCY = re.compile(r"[A-Z]{3}")
_AMOUNT = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
_ERRPYO = re.compile(r"ERRPYO[0-9]{3}")


def validate_create_request(payload: Any) -> list[dict[str, str]]:
    """Problems of a create_payout_request body: the spec's schema, then PayPal's business rules.

    Each problem is an error ``details`` entry ``{field, location: "body", issue}``; the field is a
    path like ``items[0].amount.value``. An empty list means the body is acceptable.
    """
    problems = _Problems()
    if not isinstance(payload, dict):
        problems.add("", "The request body must be a JSON object.")
        return problems.details
    header = payload.get("sender_batch_header")
    header_type: str | None = None
    if "sender_batch_header" not in payload:
        problems.add("sender_batch_header", "Required field is missing.")
    elif not isinstance(header, dict):
        problems.add("sender_batch_header", "Must be an object.")
    else:
        where = "sender_batch_header"
        problems.text(header, where, "sender_batch_id", 256)
        header_type = problems.text(header, where, "recipient_type", 13)
        problems.text(header, where, "email_subject", 255)
        problems.text(header, where, "email_message", 1000)
        problems.text(header, where, "note", 1000)
        if header_type is not None and header_type not in RECIPIENT_TYPES:
            problems.add(f"{where}.recipient_type", _one_of(RECIPIENT_TYPES))
            header_type = None
    items = payload.get("items")
    if "items" not in payload:
        problems.add("items", "Required field is missing.")
    elif not isinstance(items, list):
        problems.add("items", "Must be an array.")
    elif not 1 <= len(items) <= MAX_ITEMS:
        problems.add("items", f"Must hold 1 to {MAX_ITEMS} items.")
    else:
        currencies: set[str] = set()
        for index, item in enumerate(items):
            currency = _validate_item(problems, f"items[{index}]", item, header, header_type)
            if currency is not None:
                currencies.add(currency)
        if len(currencies) > 1:
            problems.add("items", "All items of a batch must use one currency.")
    return problems.details


class _Problems:
    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []

    def add(self, where: str, issue: str) -> None:
        self.details.append({"field": where, "location": "body", "issue": issue})

    def text(
        self,
        obj: dict[str, Any],
        where: str,
        key: str,
        max_length: int | None,
        *,
        min_length: int = 0,
        required: bool = False,
        pattern: re.Pattern[str] | None = _LINE,
    ) -> str | None:
        """The string at ``obj[key]`` if it meets the schema, else None (and a problem noted)."""
        path = f"{where}.{key}" if where else key
        if key not in obj:
            if required:
                self.add(path, "Required field is missing.")
            return None
        value = obj[key]
        if not isinstance(value, str):
            self.add(path, "Must be a string.")
            return None
        if len(value) < min_length or (max_length is not None and len(value) > max_length):
            self.add(path, f"Length must be {min_length} to {max_length} characters.")
            return None
        if pattern is not None and not pattern.search(value):
            self.add(path, f"Does not match the pattern {pattern.pattern}.")
            return None
        return value

    def obj(self, parent: dict[str, Any], where: str, key: str) -> dict[str, Any] | None:
        if key not in parent:
            return None
        value = parent[key]
        if not isinstance(value, dict):
            self.add(f"{where}.{key}", "Must be an object.")
            return None
        return value


def _validate_item(
    problems: _Problems,
    where: str,
    item: Any,
    header: Any,
    header_type: str | None,
) -> str | None:
    """Note the problems of one item; its currency when the amount is sound."""
    if not isinstance(item, dict):
        problems.add(where, "Must be an object.")
        return None
    own_type = problems.text(item, where, "recipient_type", 13)
    receiver = problems.text(item, where, "receiver", 127, required=True)
    problems.text(item, where, "note", 4000)
    problems.text(item, where, "sender_item_id", 63)
    wallet = problems.text(item, where, "recipient_wallet", 36)
    language = item.get("notification_language")
    if "notification_language" in item and (
        not isinstance(language, str)
        or not 2 <= len(language) <= 10
        or not _LANGUAGE.search(language)
    ):
        problems.add(f"{where}.notification_language", "Must be a language tag such as fr-FR.")
    if "purpose" in item and item["purpose"] not in PURPOSES:
        problems.add(f"{where}.purpose", _one_of(PURPOSES))
    notify = problems.obj(item, where, "alternate_notification_method")
    if notify is not None:
        phone = problems.obj(notify, f"{where}.alternate_notification_method", "phone")
        if phone is not None:
            at = f"{where}.alternate_notification_method.phone"
            for key, high, required in (
                ("country_code", 3, True),
                ("national_number", 14, True),
                ("extension_number", 15, False),
            ):
                digits = re.compile(rf"^[0-9]{{1,{high}}}?$")
                problems.text(phone, at, key, high, min_length=1, required=required, pattern=digits)
    context = problems.obj(item, where, "application_context")
    if context is not None:
        at = f"{where}.application_context"
        problems.text(context, at, "social_feed_privacy", 15, min_length=1)
        problems.text(context, at, "holler_url", 1000, min_length=1, pattern=None)
        problems.text(context, at, "logo_url", 1000, pattern=None)

    # Business rules beyond the schema (all answered with VALIDATION_ERROR).
    recipient_type = own_type if "recipient_type" in item else header_type
    if own_type is not None and own_type not in RECIPIENT_TYPES:
        problems.add(f"{where}.recipient_type", _one_of(RECIPIENT_TYPES))
    elif recipient_type is None and "recipient_type" not in item:
        header_given = isinstance(header, dict) and "recipient_type" in header
        if not header_given:
            problems.add(
                f"{where}.recipient_type",
                "Required when sender_batch_header has no recipient_type.",
            )
    if receiver is not None:
        if not receiver.strip():
            problems.add(f"{where}.receiver", "Must not be empty.")
        elif recipient_type == "EMAIL" and "@" not in receiver:
            problems.add(f"{where}.receiver", "Receiver is not a valid email address.")
    if wallet is not None and wallet not in RECIPIENT_WALLETS:
        problems.add(f"{where}.recipient_wallet", _one_of(RECIPIENT_WALLETS))
    return _validate_amount(problems, where, item)


def _validate_amount(problems: _Problems, where: str, item: dict[str, Any]) -> str | None:
    if "amount" not in item:
        problems.add(f"{where}.amount", "Required field is missing.")
        return None
    amount = problems.obj(item, where, "amount")
    if amount is None:
        return None
    at = f"{where}.amount"
    currency = problems.text(amount, at, "currency", None, required=True, pattern=None)
    value = problems.text(amount, at, "value", None, required=True, pattern=None)
    if currency is None or value is None:
        return None
    if not _CURRENCY.fullmatch(currency):
        problems.add(f"{at}.currency", "Must be a three-letter ISO 4217 currency code.")
        return None
    if not _AMOUNT.fullmatch(value) or Decimal(value) <= 0:
        problems.add(f"{at}.value", "Must be a positive amount with at most two decimals.")
        return None
    if currency in ZERO_DECIMAL_CURRENCIES and "." in value:
        problems.add(f"{at}.value", f"{currency} amounts have no decimals.")
        return None
    return currency


def _one_of(values: tuple[str, ...]) -> str:
    return f"Must be one of {', '.join(values)}."


def simulated_error(payload: dict[str, Any]) -> tuple[int, bytes] | None:
    note = payload["items"][0].get("note")
    if not isinstance(note, str):
        return None
    for code in _ERRPYO.findall(note):
        simulated = SIMULATED_ERRORS.get(code)
        if simulated is None:
            continue
        status, name, message = simulated
        details = [{"field": "items[0].note", "location": "body", "issue": f"Simulated ({code})."}]
        return error(status, name, message, details=details)
    return None
