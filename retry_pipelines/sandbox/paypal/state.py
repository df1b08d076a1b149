"""The PayPal sandbox's state: tokens, records, and the one place a batch is created.

A payout batch must be created once, whatever the wire does. PayPal's guard is the
``sender_batch_id`` (a reuse within 30 days is refused with a link to the original batch) plus
the ``PayPal-Request-Id`` header (a repeat returns the first answer). ``create`` keeps both
promises by construction:

- Order of checks for a create that meets no fault (after the header checks in ``app``):
  ``PayPal-Request-Id`` replay -> JSON (400 ``INVALID_REQUEST``) -> schema and business
  validation (400 ``VALIDATION_ERROR``, see ``validation``) -> simulated errors -> duplicate
  ``sender_batch_id`` (400 ``USER_BUSINESS_ERROR``, the detail's ``link`` names the original) ->
  create (201). Dedupe and creation happen under one lock without awaiting, so two batches for
  one ``sender_batch_id`` cannot happen. A batch without ``sender_batch_id`` is not deduped.
- A repeated ``PayPal-Request-Id`` (kept ``request_id_ttl_seconds``) returns the first request's
  201 byte for byte, whatever the new body says; only 201 answers are remembered, so a request
  id whose first use was refused is processed afresh.
- Tokens survive ``/_sandbox/reset``; everything else is cleared. ``expire_tokens`` (``POST
  /_sandbox/expire-tokens``) ends every token at once.

``/_sandbox/stats`` shows that a retrying client never made a second batch
(``sender_batch_ids_created_more_than_once``) and how often it tried
(``duplicate_create_attempts``).
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from retry_pipelines.sandbox.control import SandboxState
from retry_pipelines.sandbox.paypal.batches import Batch, Payouts, created_body
from retry_pipelines.sandbox.paypal.config import PaypalSandboxConfig
from retry_pipelines.sandbox.paypal.dialect import PaypalDialect, dumps, error, error_name, link
from retry_pipelines.sandbox.paypal.validation import (
    VALIDATION_MESSAGE,
    simulated_error,
    validate_create_request,
)
from retry_pipelines.sandbox.wire import UNPARSEABLE, bearer_token

DUPLICATE_ISSUE = "Batch with given sender_batch_id already exists"
NOT_WELL_FORMED = "Request is not well-formed, syntactically incorrect, or violates schema."


@dataclass(frozen=True, slots=True)
class _Stored:
    """A remembered 201 for a ``PayPal-Request-Id``."""

    payout_batch_id: str
    status: int
    body: bytes
    at: float


@dataclass(slots=True)
class Answer:
    """What processing a create produced (the record fields come along)."""

    outcome: str
    status: int
    body: bytes
    created: bool = False
    payout_batch_id: str | None = None
    error_name: str | None = None


class PaypalSandboxState(SandboxState):
    """Tokens, batches, records and counters of one app. Methods are safe from any thread."""

    config: PaypalSandboxConfig
    dialect: PaypalDialect

    def __init__(self, config: PaypalSandboxConfig) -> None:
        self.clock = config.clock
        self._tokens: dict[str, float] = {}
        super().__init__(config, PaypalDialect(config.faults.seed))

    def _clear(self) -> None:
        """Forget batches, request ids and counters; tokens stay valid."""
        self._payouts = Payouts(self.config)
        self._request_ids: dict[str, _Stored] = {}
        self._counts: Counter[str] = Counter()

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
        token = bearer_token(authorization)
        if token is None:
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

    def stats(self) -> dict[str, Any]:
        counts = self.log.counts("route")
        with self._lock:
            created = self._payouts.counts()
            mine = Counter(self._counts)
        return {
            "requests": counts.pop("requests"),
            **created,
            "duplicate_create_attempts": mine["duplicate_create_attempts"],
            "request_id_replays": mine["request_id_replays"],
            "tokens_issued": mine["tokens_issued"],
            **counts,
        }

    def create(self, payload: Any, request_id: str | None, base: str) -> Answer:
        """Replay, refuse or create (``payload`` is the parsed body, or ``UNPARSEABLE``).

        Everything happens under the lock and nothing here awaits: two batches for one
        ``sender_batch_id`` (or one ``PayPal-Request-Id``) cannot come about.
        """
        sender_batch_id = sender_batch_id_of(payload)
        with self._lock:
            now = self.clock()
            existing = self._payouts.existing(sender_batch_id, now)
            replay = self._replay(request_id, now, existing)
            if replay is not None:
                return replay
            refusal = _refusal(payload)
            if refusal is not None:
                return refusal
            if existing is not None:
                self._counts["duplicate_create_attempts"] += 1
                status, body = _duplicate(existing.payout_batch_id, base)
                return Answer(
                    "duplicate",
                    status,
                    body,
                    payout_batch_id=existing.payout_batch_id,
                    error_name="USER_BUSINESS_ERROR",
                )
            batch = self._payouts.new_batch(payload, sender_batch_id, now)
            body = dumps(created_body(batch, base))
            if request_id is not None:
                self._request_ids[request_id] = _Stored(batch.payout_batch_id, 201, body, now)
            return Answer("created", 201, body, created=True, payout_batch_id=batch.payout_batch_id)

    def _replay(self, request_id: str | None, now: float, existing: Batch | None) -> Answer | None:
        stored = None if request_id is None else self._request_ids.get(request_id)
        if stored is None or now - stored.at > self.config.request_id_ttl_seconds:
            return None
        self._counts["request_id_replays"] += 1
        if existing is not None:
            self._counts["duplicate_create_attempts"] += 1
        return Answer(
            "replayed", stored.status, stored.body, payout_batch_id=stored.payout_batch_id
        )

    def batch_body(
        self, batch_id: str, base: str, query: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        with self._lock:
            return self._payouts.batch_body(batch_id, base, query, self.clock())

    def item_body(self, item_id: str, base: str) -> dict[str, Any] | None:
        with self._lock:
            return self._payouts.item_body(item_id, base, self.clock())

    def cancel(self, item_id: str, base: str) -> tuple[str, int, dict[str, Any]]:
        with self._lock:
            return self._payouts.cancel(item_id, base, self.clock())


def _refusal(payload: Any) -> Answer | None:
    """The answer to a body that cannot create a batch, None for one that can."""
    if not isinstance(payload, dict):
        what = "not valid JSON" if payload is UNPARSEABLE else "not a JSON object"
        detail = {"location": "body", "issue": f"The request body is {what}."}
        status, body = error(400, "INVALID_REQUEST", NOT_WELL_FORMED, details=[detail])
        return Answer("rejected", status, body, error_name="INVALID_REQUEST")
    problems = validate_create_request(payload)
    if problems:
        status, body = error(400, "VALIDATION_ERROR", VALIDATION_MESSAGE, details=problems)
        return Answer("rejected", status, body, error_name="VALIDATION_ERROR")
    simulated = simulated_error(payload)
    if simulated is not None:
        status, body = simulated
        return Answer("simulated_error", status, body, error_name=error_name(body))
    return None


def sender_batch_id_of(payload: Any) -> str | None:
    """The body's ``sender_batch_header.sender_batch_id``, None if absent or empty."""
    header = payload.get("sender_batch_header") if isinstance(payload, dict) else None
    value = header.get("sender_batch_id") if isinstance(header, dict) else None
    return value if isinstance(value, str) and value else None


def _duplicate(original: str, base: str) -> tuple[int, bytes]:
    detail = {
        "field": "SENDER_BATCH_ID",
        "location": "body",
        "issue": DUPLICATE_ISSUE,
        "link": [link(f"{base}/v1/payments/payouts/{original}", "self")],
    }
    return error(400, "USER_BUSINESS_ERROR", "User business error.", details=[detail])
