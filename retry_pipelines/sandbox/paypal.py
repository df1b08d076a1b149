"""A local PayPal Payouts v1 server: real HTTP, OAuth tokens, PayPal's shapes, injected faults.

A payout batch must be created once, whatever the wire does. PayPal's guard is the
``sender_batch_id`` (a reuse within 30 days is refused with a link to the original batch) plus
the ``PayPal-Request-Id`` header (a repeat returns the first answer). This server keeps both
promises by construction and records every request, so ``/_sandbox/stats`` can show that a
retrying client never made a second batch (``sender_batch_ids_created_more_than_once``) and how
often it tried (``duplicate_create_attempts``). Its response bodies follow PayPal's OpenAPI file
(``payments_payouts_batch_v1.json``, v1.9); the tests validate them against it.

Endpoints: ``POST /v1/oauth2/token`` (HTTP Basic ``client_id:secret``, form
``grant_type=client_credentials``), ``POST /v1/payments/payouts``,
``GET /v1/payments/payouts/{id}``, ``GET /v1/payments/payouts-item/{payout_item_id}`` and
``POST /v1/payments/payouts-item/{payout_item_id}/cancel``, plus the control endpoints under
``/_sandbox/`` (no token, no faults, no latency).

Decisions where PayPal's spec is silent or where the sandbox must be predictable:

- Tokens are random (``A21AA`` + 64 URL-safe characters) and live ``token_ttl_seconds``;
  ``expires_in`` reports ``expires_in_seconds`` if set, else the TTL rounded up (so a client can be
  told 9 h while the server lets the token lapse sooner). ``POST /_sandbox/expire-tokens`` ends
  every token at once. Tokens survive ``/_sandbox/reset``; everything else is cleared.
  ``/_sandbox/outage`` switches an outage on and off at runtime (see the FBR sandbox).
- A missing, unknown or expired bearer token gets PayPal's OAuth-style 401 ``invalid_token`` on
  every payouts endpoint, before any fault is drawn.
- Only ``POST /v1/payments/payouts`` meets faults, and each authenticated create consumes exactly
  one draw, so the fault sequence is a function of the create attempts alone. Latency applies to
  every ``/v1`` request. Faults that "do not create" answer before the body is looked at;
  ``response_lost`` and ``malformed_json`` process the request normally first (create, replay or
  refuse) and then hang, or cut the body in half. ``response_lost`` finally answers the status it
  would have sent (201 for a create) with an empty body; ``read_timeout`` answers an empty 504.
- Order of checks for a create that meets no fault: ``PayPal-Request-Id`` length (1..1000) and
  media type (415) -> ``PayPal-Request-Id`` replay -> JSON (400 ``INVALID_REQUEST``) -> schema
  and business validation (400 ``VALIDATION_ERROR`` with one ``details`` entry per problem) ->
  simulated errors -> duplicate ``sender_batch_id`` (400 ``USER_BUSINESS_ERROR``, the detail's
  ``link`` names the original) -> create (201). Dedupe and creation happen under one lock without
  awaiting, so two batches for one ``sender_batch_id`` cannot happen.
- A repeated ``PayPal-Request-Id`` (kept ``request_id_ttl_seconds``) returns the first request's
  201 byte for byte, whatever the new body says; only 201 answers are remembered, so a request
  id whose first use was refused is processed afresh.
- ``sender_batch_id`` is optional in the spec, so a batch without one (or with ``""``) is created
  without dedupe. Validation beyond the schema (all ``VALIDATION_ERROR``): a recipient type must
  be given (item or header) and be EMAIL, PHONE or PAYPAL_ID (the response schema's enum); an EMAIL
  receiver needs an ``@``; ``recipient_wallet`` must be PAYPAL, VENMO or RECIPIENT_SELECTED;
  ``amount.currency`` is three capital letters, ``amount.value`` a positive decimal string with at
  most two decimals (none for JPY, HUF, TWD); all items of a batch share one currency.
- Simulated errors follow PayPal's test values: a code in ``items[0].note`` answers instead of
  creating -- ERRPYO001 403 SENDER_RESTRICTED, 002 403 SENDER_EMAIL_UNCONFIRMED, 003 403
  AUTHORIZATION_ERROR, 005 422 INSUFFICIENT_FUNDS, 006 500 INTERNAL_ERROR, 010 400
  VALIDATION_ERROR, 011 403 REQUIRED_SCOPE_MISSING, 012 403 SENDER_LOCKED, 014 400
  USER_BUSINESS_ERROR (HTTP statuses from third-party probes). Other codes create normally.
- Progression is driven by the time since creation (``config.clock``, monotonic by default): the
  batch is PENDING, then PROCESSING after ``processing_after_seconds``, then SUCCESS after
  ``final_after_seconds`` (also when items failed). Items stay PENDING until the batch is final,
  then take their outcome: SUCCESS, FAILED (``errors.name`` RECEIVER_ACCOUNT_INVALID) or UNCLAIMED
  (RECEIVER_UNREGISTERED); an UNCLAIMED item becomes RETURNED ``unclaimed_return_after_seconds``
  after the batch is final (PayPal returns unclaimed funds after 30 days). The receiver's local
  part (before ``@`` and any ``+tag``) forces the outcome: ``fail@…`` -> FAILED,
  ``unclaimed@…`` -> UNCLAIMED, ``success@…`` -> SUCCESS; otherwise it is drawn from
  ``item_outcomes`` (the remainder is SUCCESS) by a generator seeded with the fault plan's seed,
  the ``sender_batch_id`` (or the batch's serial number) and the item's index: the same batch gets
  the same outcomes on every run, whatever else happens.
- Cancel: an UNCLAIMED item becomes RETURNED (200); a RETURNED one gets 400
  ``ITEM_ALREADY_CANCELLED``; any other status 400 ``ITEM_INCORRECT_STATUS``.
- Fees: ``payout_item_fee`` is ``fee_rate`` of the amount (0 once FAILED or RETURNED); the
  batch's ``fees`` are 0 while PENDING, then the sum of the item fees. ``funding_source`` is
  BALANCE. ``time_closed`` appears once the batch is final and no item is UNCLAIMED.
- GET batch: ``page`` >= 1 (default 1), ``page_size`` 1..1000 (default 1000); ``total_items`` and
  ``total_pages`` appear only with ``total_required=true``; links are ``self``, ``next`` and
  ``previous`` and keep the query. ``fields`` is a comma-separated list of top-level keys to keep
  (batch_header, items, links, total_items, total_pages). Bad query values get 400
  ``VALIDATION_ERROR`` with ``location`` "query". Unknown ids get 404 ``INVALID_RESOURCE_ID``.
- Error bodies are built in ``paypal_dialect``: the spec's envelope (``name``, ``message``,
  ``debug_id``, ``links``) except where recorded answers differ (401, 404, 429, and the rotating
  500/503 shapes; ``/_sandbox/dialect`` pins one). The 429 carries no ``Retry-After``, as
  recorded, so ``retry_after_seconds`` does not apply here. Item ``errors`` carry a
  ``debug_id``, because the spec's ``error`` schema requires one.
- HATEOAS links point at this server (``public_base_url`` overrides), so a client can follow them.
- ``connection_drop`` and the hangs reuse the FBR sandbox's transport helpers (see ``fbr.py``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import random
import re
import secrets
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from retry_pipelines.sandbox import paypal_dialect as dialect
from retry_pipelines.sandbox.faults import FaultPlan
from retry_pipelines.sandbox.fbr import (
    _RAW_SEND,
    _client_gone_within,
    _DroppedConnection,
    outage_route,
)
from retry_pipelines.sandbox.paypal_dialect import INFORMATION_LINK, PaypalDialect
from retry_pipelines.sandbox.paypal_dialect import dumps as _dumps
from retry_pipelines.sandbox.paypal_dialect import error as _error
from retry_pipelines.sandbox.paypal_dialect import link as _link
from retry_pipelines.sandbox.paypal_dialect import response as _raw_json
from retry_pipelines.sandbox.variants import dialect_route

TOKEN_PATH = "/v1/oauth2/token"
PAYOUTS_PATH = "/v1/payments/payouts"
BATCH_PATH = "/v1/payments/payouts/{id}"
ITEM_PATH = "/v1/payments/payouts-item/{payout_item_id}"
CANCEL_PATH = "/v1/payments/payouts-item/{payout_item_id}/cancel"
"""Route templates, spelled as in PayPal's OpenAPI file (also the keys of ``by_path``)."""

PAYPAL_FAULT_KINDS = frozenset(
    {
        "http_500",
        "http_503",
        "rate_limit",
        "read_timeout",
        "response_lost",
        "malformed_json",
        "connection_drop",
        "insufficient_funds",
    }
)
NOT_CREATING_FAULTS = frozenset(PAYPAL_FAULT_KINDS - {"response_lost", "malformed_json"})
"""Faults that answer before the request is processed: no batch can come of them."""

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_APP_ID = "APP-80W284485P519543T"
SCOPE = (
    "https://uri.paypal.com/payments/payouts "
    "https://uri.paypal.com/services/payments/payouts-item/reverse"
)
THIRTY_DAYS = 30 * 24 * 3600.0
MAX_ITEMS = 15000
MAX_PAGE_SIZE = 1000
MAX_BODY_BYTES = 16 * 1024 * 1024

ITEM_OUTCOMES = ("SUCCESS", "FAILED", "UNCLAIMED")
FORCED_OUTCOMES: Mapping[str, str] = MappingProxyType(
    {"fail": "FAILED", "unclaimed": "UNCLAIMED", "success": "SUCCESS"}
)
"""Receiver local part (before ``@`` and any ``+tag``, case-insensitive) -> forced outcome."""

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
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "HUF", "TWD"})
BATCH_FIELDS = ("batch_header", "items", "links", "total_items", "total_pages")

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

DUPLICATE_ISSUE = "Batch with given sender_batch_id already exists"
VALIDATION_MESSAGE = "Invalid request - see details"
NOT_WELL_FORMED = "Request is not well-formed, syntactically incorrect, or violates schema."

_ID_ALPHABET = string.ascii_uppercase + string.digits
_LINE = re.compile(r"^.*$")
"""The spec's pattern for every free-text field (``re.search``, as JSON Schema applies it)."""
_LANGUAGE = re.compile(r"^[a-z]{2}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}))?$")
_CURRENCY = re.compile(r"[A-Z]{3}")
_AMOUNT = re.compile(r"[0-9]{1,10}(\.[0-9]{1,2})?")
_ERRPYO = re.compile(r"ERRPYO[0-9]{3}")
_UNPARSEABLE = object()
_TOLERANCE = 1e-9


@dataclass(frozen=True, kw_only=True)
class PaypalSandboxConfig:
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    app_id: str = DEFAULT_APP_ID
    token_ttl_seconds: float = 32400.0
    """How long an issued token is accepted."""
    expires_in_seconds: int | None = None
    """What the token answer reports as ``expires_in``; None: the TTL rounded up."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    retry_after_seconds: int = 1
    """Accepted for symmetry with the FBR sandbox; PayPal's recorded 429 has no Retry-After."""
    hang_seconds: float = 30.0
    processing_after_seconds: float = 1.0
    final_after_seconds: float = 2.0
    unclaimed_return_after_seconds: float = THIRTY_DAYS
    """An UNCLAIMED item becomes RETURNED this long after its batch is final (PayPal: 30 days)."""
    item_outcomes: Mapping[str, float] = field(default_factory=dict, hash=False)
    """Chance of each item outcome (SUCCESS, FAILED, UNCLAIMED); the remainder is SUCCESS."""
    fee_rate: Decimal = Decimal("0.02")
    dedupe_window_seconds: float = THIRTY_DAYS
    request_id_ttl_seconds: float = THIRTY_DAYS
    public_base_url: str | None = None
    """Base of HATEOAS links; None: the URL the request came in on."""
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    """Seconds, monotonic: drives progression and token expiry (tests may pass their own)."""

    def __post_init__(self) -> None:
        for name in ("client_id", "client_secret", "app_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string")
        if ":" in self.client_id:
            raise ValueError("client_id must not contain ':' (HTTP Basic could not carry it)")
        for name in (
            "token_ttl_seconds",
            "hang_seconds",
            "processing_after_seconds",
            "final_after_seconds",
            "unclaimed_return_after_seconds",
            "dedupe_window_seconds",
            "request_id_ttl_seconds",
        ):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.processing_after_seconds > self.final_after_seconds:
            raise ValueError("processing_after_seconds must not exceed final_after_seconds")
        for name in ("retry_after_seconds", "expires_in_seconds"):
            value = getattr(self, name)
            if value is None and name == "expires_in_seconds":
                continue  # derived from token_ttl_seconds
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        outcomes = dict(self.item_outcomes)
        unknown = sorted(set(outcomes) - set(ITEM_OUTCOMES))
        if unknown:
            raise ValueError(
                f"unknown item outcome(s) {', '.join(unknown)}; known: {', '.join(ITEM_OUTCOMES)}"
            )
        for outcome, p in outcomes.items():
            if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
                raise ValueError(f"item outcome {outcome}: chance must be within [0, 1], got {p!r}")
        if sum(outcomes.values()) > 1.0 + _TOLERANCE:
            raise ValueError("item outcome chances must sum to at most 1")
        object.__setattr__(self, "item_outcomes", MappingProxyType(outcomes))
        try:
            fee_rate = Decimal(self.fee_rate)
        except (InvalidOperation, TypeError, ValueError):
            raise ValueError(f"fee_rate must be a decimal, got {self.fee_rate!r}") from None
        if not fee_rate.is_finite() or not 0 <= fee_rate <= 1:
            raise ValueError("fee_rate must be within [0, 1]")
        object.__setattr__(self, "fee_rate", fee_rate)
        self.faults.require(PAYPAL_FAULT_KINDS)

    @property
    def expires_in(self) -> int:
        if self.expires_in_seconds is not None:
            return self.expires_in_seconds
        return math.ceil(self.token_ttl_seconds)


# --- the model ---------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Item:
    payout_item_id: str
    transaction_id: str
    payout_batch_id: str
    sender_batch_id: str | None
    detail: dict[str, Any]
    currency: str
    value: Decimal
    fee: Decimal
    outcome: str
    error: dict[str, Any] | None
    returned_at: datetime | None = None


@dataclass(slots=True, eq=False)
class _Batch:
    payout_batch_id: str
    sender_batch_id: str | None
    sender_batch_header: dict[str, Any]
    created_at: datetime
    created_mono: float
    currency: str
    amount: Decimal
    items: list[_Item]


@dataclass(frozen=True, slots=True)
class _Stored:
    """A remembered 201 for a ``PayPal-Request-Id``."""

    payout_batch_id: str
    status: int
    body: bytes
    at: float


@dataclass(slots=True)
class _Answer:
    """What processing a create produced (the record fields come along)."""

    outcome: str
    status: int
    body: bytes
    created: bool = False
    payout_batch_id: str | None = None
    error_name: str | None = None


class PaypalSandboxState:
    """Tokens, batches, records and counters of one app. Methods are safe from any thread."""

    def __init__(self, config: PaypalSandboxConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.chooser = config.faults.chooser()
        self.dialect = PaypalDialect(config.faults.seed)
        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}
        self._clear()

    def _clear(self) -> None:
        self._records: list[dict[str, Any]] = []
        self._seq = 0
        self._serial = 0
        self._batches: dict[str, _Batch] = {}
        self._items: dict[str, _Item] = {}
        self._by_sender_batch_id: dict[str, list[_Batch]] = {}
        self._request_ids: dict[str, _Stored] = {}
        self._counts: Counter[str] = Counter()

    def reset(self) -> None:
        """Forget records, batches and ids and replay the fault sequence; tokens stay valid."""
        with self._lock:
            self._clear()
        self.chooser.reset()
        self.dialect.reset()

    # --- tokens ---

    def credentials_ok(self, client_id: str, secret: str) -> bool:
        id_ok = secrets.compare_digest(client_id.encode(), self.config.client_id.encode())
        secret_ok = secrets.compare_digest(secret.encode(), self.config.client_secret.encode())
        return id_ok and secret_ok

    def issue_token(self) -> str:
        token = "A21AA" + secrets.token_urlsafe(48)
        now = self.clock()
        with self._lock:
            # forget tokens an hour past expiry (until then they are refused as "expired")
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now - 3600}
            self._tokens[token] = now + self.config.token_ttl_seconds
            self._counts["tokens_issued"] += 1
        return token

    def check_bearer(self, authorization: str | None) -> str | None:
        """None if the header holds an issued, unexpired token, else what is wrong with it."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return "missing"
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            return "unknown"
        return None if self.clock() < expiry else "expired"

    def expire_tokens(self) -> int:
        """Let every issued token lapse now (they then get 401 as expired); how many were live."""
        now = self.clock()
        with self._lock:
            live = sum(1 for expiry in self._tokens.values() if expiry > now)
            self._tokens = dict.fromkeys(self._tokens, now)
        return live

    # --- records ---

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def log(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)

    def update(self, record: dict[str, Any], **changes: Any) -> None:
        with self._lock:
            record.update(changes)

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._records if r["seq"] > since]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            records = [dict(r) for r in self._records]
            batches = list(self._batches.values())
            per_id = [len(b) for b in self._by_sender_batch_id.values()]
            counts = Counter(self._counts)
        return {
            "requests": len(records),
            "batches_created": len(batches),
            "items_created": sum(len(b.items) for b in batches),
            "distinct_sender_batch_ids": len(per_id),
            "sender_batch_ids_created_more_than_once": sum(1 for n in per_id if n > 1),
            "duplicate_create_attempts": counts["duplicate_create_attempts"],
            "request_id_replays": counts["request_id_replays"],
            "tokens_issued": counts["tokens_issued"],
            "by_outcome": dict(Counter(r["outcome"] for r in records)),
            "by_fault": dict(Counter(r["fault"] for r in records if r["fault"])),
            "by_path": dict(Counter(r["route"] for r in records)),
            "by_status": dict(Counter(str(r["status"]) for r in records)),
        }

    # --- payouts ---

    def create(self, payload: Any, request_id: str | None, base: str) -> _Answer:
        """Replay, refuse or create (``payload`` is the parsed body, or ``_UNPARSEABLE``).

        Everything happens under the lock and nothing here awaits: two batches for one
        ``sender_batch_id`` (or one ``PayPal-Request-Id``) cannot come about.
        """
        sender_batch_id = _sender_batch_id(payload)
        with self._lock:
            now = self.clock()
            existing = self._existing(sender_batch_id, now)
            if request_id is not None:
                stored = self._request_ids.get(request_id)
                if stored is not None and now - stored.at <= self.config.request_id_ttl_seconds:
                    self._counts["request_id_replays"] += 1
                    if existing is not None:
                        self._counts["duplicate_create_attempts"] += 1
                    return _Answer(
                        "replayed",
                        stored.status,
                        stored.body,
                        payout_batch_id=stored.payout_batch_id,
                    )
            if not isinstance(payload, dict):
                what = "not valid JSON" if payload is _UNPARSEABLE else "not a JSON object"
                detail = {"location": "body", "issue": f"The request body is {what}."}
                status, body = _error(400, "INVALID_REQUEST", NOT_WELL_FORMED, details=[detail])
                return _Answer("rejected", status, body, error_name="INVALID_REQUEST")
            problems = validate_create_request(payload)
            if problems:
                status, body = _error(400, "VALIDATION_ERROR", VALIDATION_MESSAGE, details=problems)
                return _Answer("rejected", status, body, error_name="VALIDATION_ERROR")
            simulated = _simulated_error(payload)
            if simulated is not None:
                status, body = simulated
                return _Answer("simulated_error", status, body, error_name=_name_of(body))
            if existing is not None:
                self._counts["duplicate_create_attempts"] += 1
                status, body = _duplicate(existing.payout_batch_id, base)
                return _Answer(
                    "duplicate",
                    status,
                    body,
                    payout_batch_id=existing.payout_batch_id,
                    error_name="USER_BUSINESS_ERROR",
                )
            batch = self._new_batch(payload, sender_batch_id, now)
            body = _dumps(_created_body(batch, base))
            if request_id is not None:
                self._request_ids[request_id] = _Stored(batch.payout_batch_id, 201, body, now)
            return _Answer(
                "created", 201, body, created=True, payout_batch_id=batch.payout_batch_id
            )

    def _existing(self, sender_batch_id: str | None, now: float) -> _Batch | None:
        if not sender_batch_id:
            return None
        for batch in reversed(self._by_sender_batch_id.get(sender_batch_id, [])):
            if now - batch.created_mono <= self.config.dedupe_window_seconds:
                return batch
        return None

    def _new_id(self, length: int) -> str:
        while True:
            candidate = "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
            if candidate not in self._batches and candidate not in self._items:
                return candidate

    def _new_batch(
        self, payload: dict[str, Any], sender_batch_id: str | None, now: float
    ) -> _Batch:
        self._serial += 1
        header = payload["sender_batch_header"]
        batch_id = self._new_id(13)
        created_at = datetime.now(UTC).replace(microsecond=0)
        key = sender_batch_id if sender_batch_id else f"#{self._serial}"
        items: list[_Item] = []
        for index, raw_item in enumerate(payload["items"]):
            detail, currency, value = _item_detail(raw_item, header)
            outcome = self._outcome(key, index, raw_item["receiver"])
            items.append(
                _Item(
                    payout_item_id=self._new_id(13),
                    transaction_id=self._new_id(17),
                    payout_batch_id=batch_id,
                    sender_batch_id=sender_batch_id,
                    detail=detail,
                    currency=currency,
                    value=value,
                    fee=_quantize(value * self.config.fee_rate, currency),
                    outcome=outcome,
                    error=_item_error(outcome),
                )
            )
            self._items[items[-1].payout_item_id] = items[-1]
        echoed = {
            k: header[k]
            for k in ("sender_batch_id", "recipient_type", "email_subject", "email_message")
            if k in header
        }
        currency = items[0].currency
        batch = _Batch(
            payout_batch_id=batch_id,
            sender_batch_id=sender_batch_id,
            sender_batch_header=echoed,
            created_at=created_at,
            created_mono=now,
            currency=currency,
            amount=_quantize(sum((i.value for i in items), Decimal(0)), currency),
            items=items,
        )
        self._batches[batch_id] = batch
        if sender_batch_id:
            self._by_sender_batch_id.setdefault(sender_batch_id, []).append(batch)
        return batch

    def _outcome(self, key: str, index: int, receiver: str) -> str:
        local = receiver.strip().lower().partition("@")[0].partition("+")[0]
        forced = FORCED_OUTCOMES.get(local)
        if forced is not None:
            return forced
        r = random.Random(f"{self.config.faults.seed}/outcome/{key}/{index}").random()
        bound = 0.0
        for outcome, p in self.config.item_outcomes.items():
            bound += p
            if r < bound:
                return outcome
        return "SUCCESS"

    def _batch_status(self, batch: _Batch, now: float) -> str:
        elapsed = now - batch.created_mono
        if elapsed >= self.config.final_after_seconds:
            return "SUCCESS"
        if elapsed >= self.config.processing_after_seconds:
            return "PROCESSING"
        return "PENDING"

    def _item_status(self, item: _Item, batch: _Batch, now: float) -> str:
        if item.returned_at is not None:
            return "RETURNED"
        if self._batch_status(batch, now) != "SUCCESS":
            return "PENDING"
        if item.outcome == "UNCLAIMED" and now - batch.created_mono >= (
            self.config.final_after_seconds + self.config.unclaimed_return_after_seconds
        ):
            item.returned_at = datetime.now(UTC).replace(microsecond=0)  # funds returned
            return "RETURNED"
        return item.outcome

    def batch_body(
        self, batch_id: str, base: str, query: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """The GET body for one page (``query`` as ``_batch_query`` makes it), None if unknown."""
        page, page_size = query["page"], query["page_size"]
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                return None
            now = self.clock()
            status = self._batch_status(batch, now)
            statuses = [self._item_status(item, batch, now) for item in batch.items]
            final_at = batch.created_at + timedelta(seconds=self.config.final_after_seconds)
            header: dict[str, Any] = {
                "payout_batch_id": batch.payout_batch_id,
                "batch_status": status,
                "time_created": _timestamp(batch.created_at),
            }
            if status == "SUCCESS":
                header["time_completed"] = _timestamp(final_at)
                if "UNCLAIMED" not in statuses:
                    returned = [i.returned_at for i in batch.items if i.returned_at is not None]
                    header["time_closed"] = _timestamp(max([final_at, *returned]))
            fees = Decimal(0)
            if status != "PENDING":
                fees = sum(
                    (_current_fee(i, s) for i, s in zip(batch.items, statuses, strict=True)),
                    Decimal(0),
                )
            header |= {
                "sender_batch_header": dict(batch.sender_batch_header),
                "funding_source": "BALANCE",
                "amount": _money(batch.amount, batch.currency),
                "fees": _money(_quantize(fees, batch.currency), batch.currency),
            }
            start = (page - 1) * page_size
            chosen = list(zip(batch.items, statuses, strict=True))[start : start + page_size]
            items = [self._item_body(i, s, base, batch, in_batch=True) for i, s in chosen]
        total = len(batch.items)
        total_pages = max(1, math.ceil(total / page_size))
        body: dict[str, Any] = {}
        if query["total_required"]:
            body |= {"total_items": total, "total_pages": total_pages}
        body |= {"batch_header": header, "items": items}
        body["links"] = _page_links(f"{base}/v1/payments/payouts/{batch_id}", query, total_pages)
        if query["fields"]:
            body = {k: v for k, v in body.items() if k in query["fields"]}
        return body

    def _item_body(
        self, item: _Item, status: str, base: str, batch: _Batch, *, in_batch: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"payout_item_id": item.payout_item_id}
        if status in ("SUCCESS", "UNCLAIMED", "RETURNED"):
            body["transaction_id"] = item.transaction_id
        body["transaction_status"] = status
        body["payout_item_fee"] = _money(_current_fee(item, status), item.currency)
        body["payout_batch_id"] = item.payout_batch_id
        if not in_batch and item.sender_batch_id:
            body["sender_batch_id"] = item.sender_batch_id
        body["payout_item"] = dict(item.detail)
        if status != "PENDING":
            final_at = batch.created_at + timedelta(seconds=self.config.final_after_seconds)
            body["time_processed"] = _timestamp(item.returned_at or final_at)
        if status != "PENDING" and item.error is not None:
            body["errors"] = dict(item.error)
        item_href = f"{base}/v1/payments/payouts-item/{item.payout_item_id}"
        if in_batch:
            body["links"] = [_link(item_href, "item")]
        else:
            body["links"] = [
                _link(item_href, "self"),
                _link(f"{base}/v1/payments/payouts/{item.payout_batch_id}", "batch"),
            ]
        return body

    def item_body(self, item_id: str, base: str) -> dict[str, Any] | None:
        with self._lock:
            item = self._items.get(item_id)
            if item is None:
                return None
            batch = self._batches[item.payout_batch_id]
            status = self._item_status(item, batch, self.clock())
            return self._item_body(item, status, base, batch, in_batch=False)

    def cancel(self, item_id: str, base: str) -> tuple[str, int, dict[str, Any]]:
        """(outcome, HTTP status, body) of cancelling an item."""
        with self._lock:
            item = self._items.get(item_id)
            if item is None:
                status, body = dialect.not_found()
                return "not_found", status, json.loads(body)
            batch = self._batches[item.payout_batch_id]
            status = self._item_status(item, batch, self.clock())
            if status == "UNCLAIMED":
                item.returned_at = datetime.now(UTC).replace(microsecond=0)
                return (
                    "cancelled",
                    200,
                    self._item_body(item, "RETURNED", base, batch, in_batch=False),
                )
        if status == "RETURNED":
            name, issue = "ITEM_ALREADY_CANCELLED", "The payout item has already been cancelled."
        else:
            name = "ITEM_INCORRECT_STATUS"
            issue = f"Only UNCLAIMED payout items can be cancelled; this one is {status}."
        detail = {"field": "transaction_status", "location": "path", "issue": issue}
        code, body = _error(400, name, issue, details=[detail])
        return "cancel_refused", code, json.loads(body)


# --- the app -----------------------------------------------------------------------------------


class _PaypalApp(Starlette):
    """Keeps the server's own ``send`` in the scope, for ``connection_drop``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[_RAW_SEND] = send
        await super().__call__(scope, receive, send)


def create_paypal_app(config: PaypalSandboxConfig) -> Starlette:
    """The sandbox as an ASGI app; its ``PaypalSandboxState`` is ``app.state.paypal``."""
    routes = [
        Route(TOKEN_PATH, _token, methods=["POST"]),
        Route(PAYOUTS_PATH, _create, methods=["POST"]),
        Route(BATCH_PATH, _get_batch, methods=["GET"]),
        Route(ITEM_PATH, _get_item, methods=["GET"]),
        Route(CANCEL_PATH, _cancel_item, methods=["POST"]),
        Route("/_sandbox/health", _health, methods=["GET"]),
        Route("/_sandbox/stats", _stats, methods=["GET"]),
        Route("/_sandbox/requests", _requests, methods=["GET"]),
        Route("/_sandbox/reset", _reset, methods=["POST"]),
        Route("/_sandbox/expire-tokens", _expire_tokens, methods=["POST"]),
        outage_route(_state, PAYPAL_FAULT_KINDS),
        dialect_route(lambda request: _state(request).dialect.variants),
    ]
    app = _PaypalApp(routes=routes, max_body_size=MAX_BODY_BYTES)
    app.state.paypal = PaypalSandboxState(config)
    return app


def _state(request: Request) -> PaypalSandboxState:
    return request.app.state.paypal


def _base(request: Request) -> str:
    configured = _state(request).config.public_base_url
    return (configured or str(request.base_url)).rstrip("/")


# --- control endpoints -------------------------------------------------------------------------


async def _health(request: Request) -> Response:
    plan = _state(request).config.faults
    return JSONResponse(
        {"status": "ok", "service": "paypal", "faults": plan.spec, "seed": plan.seed}
    )


async def _stats(request: Request) -> Response:
    return JSONResponse(_state(request).stats())


async def _requests(request: Request) -> Response:
    try:
        since = int(request.query_params.get("since", "0"))
    except ValueError:
        return JSONResponse({"error": "since must be an integer"}, status_code=400)
    return JSONResponse(_state(request).requests(since))


async def _reset(request: Request) -> Response:
    _state(request).reset()
    return JSONResponse({"reset": True})


async def _expire_tokens(request: Request) -> Response:
    return JSONResponse({"expired": _state(request).expire_tokens()})


# --- the PayPal endpoints ----------------------------------------------------------------------


class _Exchange:
    """One API request: its record, and the answer that logs it."""

    def __init__(self, request: Request, route: str, *, draw_fault: bool) -> None:
        state = _state(request)
        self.state = state
        self.request = request
        self.auth_error = (
            None
            if route == TOKEN_PATH
            else state.check_bearer(request.headers.get("authorization"))
        )
        fault = state.chooser.choose() if draw_fault and self.auth_error is None else None
        self.record: dict[str, Any] = {
            "seq": state.next_seq(),
            "at": time.time(),
            "method": request.method,
            "path": request.url.path,
            "route": route,
            "status": None,
            "fault": fault,
            "outcome": None,
            "created": False,
            "payout_batch_id": None,
            "sender_batch_id": None,
            "request_id": None,
            "error_name": None,
            "retry_after": None,
            "auth": None,
        }
        self.latency = state.chooser.latency_seconds()

    @property
    def fault(self) -> str | None:
        return self.record["fault"]

    async def delay(self) -> None:
        if self.latency > 0:
            await asyncio.sleep(self.latency)

    def answer(self, outcome: str, response: Response, **fields: Any) -> Response:
        self.record.update(fields, outcome=outcome, status=response.status_code)
        if self.record["error_name"] is None and response.status_code >= 400:
            self.record["error_name"] = _name_of(bytes(response.body))
        self.state.log(self.record)
        return response

    def unauthorized(self) -> Response:
        status, body = dialect.invalid_token(self.auth_error or "missing")
        return self.answer("unauthorized", _raw_json(status, body), auth=self.auth_error)

    async def hang_then(self, response: Response) -> Response:
        """Hang ``hang_seconds`` or until the client leaves, then send ``response``."""
        self.state.update(self.record, status="pending")
        self.state.log(self.record)
        gone = await _client_gone_within(self.request, self.state.config.hang_seconds)
        self.state.update(self.record, status="dropped" if gone else response.status_code)
        return response


async def _token(request: Request) -> Response:
    exchange = _Exchange(request, TOKEN_PATH, draw_fault=False)
    await exchange.delay()
    state = exchange.state
    body = await request.body()
    credentials = _basic(request.headers.get("authorization"))
    if credentials is None or not state.credentials_ok(*credentials):
        refused = {"error": "invalid_client", "error_description": "Client Authentication failed"}
        return exchange.answer(
            "unauthorized", JSONResponse(refused, status_code=401), error_name="invalid_client"
        )
    form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
    grant_type = (form.get("grant_type") or [""])[0]
    if grant_type != "client_credentials":
        description = "Grant Type is NULL" if not grant_type else "unsupported grant_type"
        refused = {"error": "unsupported_grant_type", "error_description": description}
        return exchange.answer(
            "rejected",
            JSONResponse(refused, status_code=400),
            error_name="unsupported_grant_type",
        )
    now = datetime.now(UTC).replace(microsecond=0)
    answer = {
        "scope": SCOPE,
        "access_token": state.issue_token(),
        "token_type": "Bearer",
        "app_id": state.config.app_id,
        "expires_in": state.config.expires_in,
        "nonce": f"{_timestamp(now)}{secrets.token_urlsafe(32)}",
    }
    return exchange.answer("token_issued", JSONResponse(answer))


async def _create(request: Request) -> Response:
    exchange = _Exchange(request, PAYOUTS_PATH, draw_fault=True)
    state = exchange.state
    await exchange.delay()
    payload = _parse(await request.body())
    request_id = request.headers.get("paypal-request-id")
    exchange.record["request_id"] = request_id
    exchange.record["sender_batch_id"] = _sender_batch_id(payload)
    if exchange.auth_error is not None:
        return exchange.unauthorized()

    fault = exchange.fault
    if fault in ("http_500", "http_503"):
        return exchange.answer("fault", _raw_json(*state.dialect.server_error(fault)))
    if fault == "rate_limit":
        return exchange.answer("fault", _raw_json(*dialect.rate_limited()))
    if fault == "insufficient_funds":
        code, name, message = SIMULATED_ERRORS["ERRPYO005"]
        return exchange.answer("fault", _raw_json(*_error(code, name, message)))
    if fault == "connection_drop":
        exchange.record.update(outcome="fault", status="dropped")
        state.log(exchange.record)
        return _DroppedConnection()
    if fault == "read_timeout":
        exchange.record["outcome"] = "fault"
        return await exchange.hang_then(Response(b"", status_code=504))

    if request_id is not None and not 1 <= len(request_id) <= 1000:
        detail = {"field": "PayPal-Request-Id", "location": "header", "issue": "Length 1..1000."}
        status, body = _error(400, "VALIDATION_ERROR", VALIDATION_MESSAGE, details=[detail])
        return exchange.answer("rejected", _raw_json(status, body))
    media_type = request.headers.get("content-type", "application/json").lower()
    if "json" not in media_type:
        status, body = _error(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "The server does not support the request payload's media type.",
        )
        return exchange.answer("rejected", _raw_json(status, body))

    answer = state.create(payload, request_id, _base(request))
    fields = {
        "created": answer.created,
        "payout_batch_id": answer.payout_batch_id,
        "error_name": answer.error_name,
    }
    if fault == "response_lost":
        exchange.record.update(fields, outcome=answer.outcome)
        return await exchange.hang_then(Response(b"", status_code=answer.status))
    if fault == "malformed_json":
        truncated = answer.body[: max(1, len(answer.body) // 2)]
        return exchange.answer(answer.outcome, _raw_json(answer.status, truncated), **fields)
    return exchange.answer(answer.outcome, _raw_json(answer.status, answer.body), **fields)


async def _get_batch(request: Request) -> Response:
    exchange = _Exchange(request, BATCH_PATH, draw_fault=False)
    await exchange.delay()
    if exchange.auth_error is not None:
        return exchange.unauthorized()
    batch_id = request.path_params["id"]
    query, problems = _batch_query(request.query_params)
    if problems:
        status, body = _error(400, "VALIDATION_ERROR", VALIDATION_MESSAGE, details=problems)
        return exchange.answer("rejected", _raw_json(status, body))
    body = exchange.state.batch_body(batch_id, _base(request), query)
    if body is None:
        return exchange.answer("not_found", _raw_json(*dialect.not_found()))
    return exchange.answer("read", JSONResponse(body), payout_batch_id=batch_id)


async def _get_item(request: Request) -> Response:
    exchange = _Exchange(request, ITEM_PATH, draw_fault=False)
    await exchange.delay()
    if exchange.auth_error is not None:
        return exchange.unauthorized()
    item_id = request.path_params["payout_item_id"]
    body = exchange.state.item_body(item_id, _base(request))
    if body is None:
        return exchange.answer("not_found", _raw_json(*dialect.not_found()))
    return exchange.answer("read", JSONResponse(body), payout_batch_id=body["payout_batch_id"])


async def _cancel_item(request: Request) -> Response:
    exchange = _Exchange(request, CANCEL_PATH, draw_fault=False)
    await exchange.delay()
    if exchange.auth_error is not None:
        return exchange.unauthorized()
    item_id = request.path_params["payout_item_id"]
    outcome, status, body = exchange.state.cancel(item_id, _base(request))
    return exchange.answer(
        outcome, JSONResponse(body, status_code=status), payout_batch_id=body.get("payout_batch_id")
    )


def _batch_query(params: Mapping[str, str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    problems: list[dict[str, str]] = []
    query: dict[str, Any] = {}

    def integer(name: str, default: int, low: int, high: int) -> int:
        text = params.get(name)
        if text is None:
            return default
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            problems.append(
                {"field": name, "location": "query", "issue": f"Must be an integer {low}..{high}."}
            )
            return default
        return value

    query["page"] = integer("page", 1, 1, 1000)
    query["page_size"] = integer("page_size", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    total = params.get("total_required", "false").lower()
    if total not in ("true", "false"):
        problems.append(
            {"field": "total_required", "location": "query", "issue": "Must be true or false."}
        )
    query["total_required"] = total == "true"
    fields = [f.strip() for f in params.get("fields", "").split(",") if f.strip()]
    unknown = [f for f in fields if f not in BATCH_FIELDS]
    if unknown:
        problems.append(
            {
                "field": "fields",
                "location": "query",
                "issue": f"Unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(BATCH_FIELDS)}.",
            }
        )
    query["fields"] = tuple(dict.fromkeys(fields))
    return query, problems


# --- validation --------------------------------------------------------------------------------


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


def _simulated_error(payload: dict[str, Any]) -> tuple[int, bytes] | None:
    note = payload["items"][0].get("note")
    if not isinstance(note, str):
        return None
    for code in _ERRPYO.findall(note):
        simulated = SIMULATED_ERRORS.get(code)
        if simulated is None:
            continue
        status, name, message = simulated
        details = [{"field": "items[0].note", "location": "body", "issue": f"Simulated ({code})."}]
        return _error(status, name, message, details=details)
    return None


# --- bodies ------------------------------------------------------------------------------------


def _parse(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return _UNPARSEABLE


def _sender_batch_id(payload: Any) -> str | None:
    header = payload.get("sender_batch_header") if isinstance(payload, dict) else None
    value = header.get("sender_batch_id") if isinstance(header, dict) else None
    return value if isinstance(value, str) and value else None


def _name_of(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return None
    name = (data.get("name") or data.get("error")) if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def _duplicate(original: str, base: str) -> tuple[int, bytes]:
    detail = {
        "field": "SENDER_BATCH_ID",
        "location": "body",
        "issue": DUPLICATE_ISSUE,
        "link": [_link(f"{base}/v1/payments/payouts/{original}", "self")],
    }
    return _error(400, "USER_BUSINESS_ERROR", "User business error.", details=[detail])


def _created_body(batch: _Batch, base: str) -> dict[str, Any]:
    return {
        "batch_header": {
            "payout_batch_id": batch.payout_batch_id,
            "batch_status": "PENDING",
            "time_created": _timestamp(batch.created_at),
            "sender_batch_header": dict(batch.sender_batch_header),
        },
        "links": [_link(f"{base}/v1/payments/payouts/{batch.payout_batch_id}", "self")],
    }


def _item_detail(
    item: dict[str, Any], header: dict[str, Any]
) -> tuple[dict[str, Any], str, Decimal]:
    currency = item["amount"]["currency"]
    value = _quantize(Decimal(item["amount"]["value"]), currency)
    detail: dict[str, Any] = {
        "recipient_type": item.get("recipient_type", header.get("recipient_type")),
        "amount": _money(value, currency),
    }
    for key in ("note", "receiver", "sender_item_id", "purpose"):
        if key in item:
            detail[key] = item[key]
    detail["recipient_wallet"] = item.get("recipient_wallet", "PAYPAL")
    return detail, currency, value


def _item_error(outcome: str) -> dict[str, Any] | None:
    if outcome == "FAILED":
        name, message = "RECEIVER_ACCOUNT_INVALID", "Receiver's account is invalid."
    elif outcome == "UNCLAIMED":
        name = "RECEIVER_UNREGISTERED"
        message = (
            "The receiver has no PayPal account yet; unless the payout is claimed within 30 "
            "days the funds return to the sender."
        )
    else:
        return None
    return {
        "name": name,
        "message": message,
        "debug_id": dialect.debug_id(),
        "information_link": INFORMATION_LINK,
        "details": [],
        "links": [],
    }


def _current_fee(item: _Item, status: str) -> Decimal:
    return Decimal(0) if status in ("FAILED", "RETURNED") else item.fee


def _quantize(value: Decimal, currency: str) -> Decimal:
    exponent = Decimal(1) if currency in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")
    return value.quantize(exponent, rounding=ROUND_HALF_UP)


def _money(value: Decimal, currency: str) -> dict[str, str]:
    return {"currency": currency, "value": str(_quantize(value, currency))}


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _page_links(href: str, query: Mapping[str, Any], total_pages: int) -> list[dict[str, str]]:
    """``self``, ``next`` and ``previous`` page links that keep the rest of the query."""
    page = query["page"]

    def at(number: int) -> str:
        params: dict[str, Any] = {"page": number, "page_size": query["page_size"]}
        if query["total_required"]:
            params["total_required"] = "true"
        if query["fields"]:
            params["fields"] = ",".join(query["fields"])
        return f"{href}?{urlencode(params)}"

    links = [_link(at(page), "self")]
    if page < total_pages:
        links.append(_link(at(page + 1), "next"))
    if page > 1:
        links.append(_link(at(min(page - 1, total_pages)), "previous"))
    return links


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else None
