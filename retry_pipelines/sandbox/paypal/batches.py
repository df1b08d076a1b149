"""The batches and items one PayPal sandbox created: how they progress and how they read.

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
  BALANCE. ``time_closed`` appears once the batch is final and no item is UNCLAIMED. Item
  ``errors`` carry a ``debug_id``, because the spec's ``error`` schema requires one.
- GET batch: ``page`` >= 1 (default 1), ``page_size`` 1..1000 (default 1000); ``total_items`` and
  ``total_pages`` appear only with ``total_required=true``; links are ``self``, ``next`` and
  ``previous`` and keep the query. ``fields`` is a comma-separated list of top-level keys to keep
  (batch_header, items, links, total_items, total_pages). Bad query values get 400
  ``VALIDATION_ERROR`` with ``location`` "query" (``batch_query``).
"""

from __future__ import annotations

import json
import math
import random
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from types import MappingProxyType
from typing import Any
from urllib.parse import urlencode

from retry_pipelines.sandbox.paypal import dialect
from retry_pipelines.sandbox.paypal.config import ZERO_DECIMAL_CURRENCIES, PaypalSandboxConfig
from retry_pipelines.sandbox.paypal.dialect import INFORMATION_LINK, error, link

FORCED_OUTCOMES: Mapping[str, str] = MappingProxyType(
    {"fail": "FAILED", "unclaimed": "UNCLAIMED", "success": "SUCCESS"}
)
"""Receiver local part (before ``@`` and any ``+tag``, case-insensitive) -> forced outcome."""

BATCH_FIELDS = ("batch_header", "items", "links", "total_items", "total_pages")
MAX_PAGE_SIZE = 1000

_ID_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(slots=True, eq=False)
class Item:
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
class Batch:
    payout_batch_id: str
    sender_batch_id: str | None
    sender_batch_header: dict[str, Any]
    created_at: datetime
    created_mono: float
    currency: str
    amount: Decimal
    items: list[Item]


class Payouts:
    """Batches and items by id. Not thread-safe: the state calls it under its lock."""

    def __init__(self, config: PaypalSandboxConfig) -> None:
        self.config = config
        self.serial = 0
        self.batches: dict[str, Batch] = {}
        self.items: dict[str, Item] = {}
        self.by_sender_batch_id: dict[str, list[Batch]] = {}

    def counts(self) -> dict[str, int]:
        per_id = [len(b) for b in self.by_sender_batch_id.values()]
        return {
            "batches_created": len(self.batches),
            "items_created": sum(len(b.items) for b in self.batches.values()),
            "distinct_sender_batch_ids": len(per_id),
            "sender_batch_ids_created_more_than_once": sum(1 for n in per_id if n > 1),
        }

    def existing(self, sender_batch_id: str | None, now: float) -> Batch | None:
        if not sender_batch_id:
            return None
        for batch in reversed(self.by_sender_batch_id.get(sender_batch_id, [])):
            if now - batch.created_mono <= self.config.dedupe_window_seconds:
                return batch
        return None

    def _new_id(self, length: int) -> str:
        while True:
            candidate = "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))
            if candidate not in self.batches and candidate not in self.items:
                return candidate

    def new_batch(self, payload: dict[str, Any], sender_batch_id: str | None, now: float) -> Batch:
        self.serial += 1
        header = payload["sender_batch_header"]
        batch_id = self._new_id(13)
        created_at = datetime.now(UTC).replace(microsecond=0)
        key = sender_batch_id if sender_batch_id else f"#{self.serial}"
        items: list[Item] = []
        for index, raw_item in enumerate(payload["items"]):
            detail, currency, value = _item_detail(raw_item, header)
            outcome = self._outcome(key, index, raw_item["receiver"])
            items.append(
                Item(
                    payout_item_id=self._new_id(13),
                    transaction_id=self._new_id(17),
                    payout_batch_id=batch_id,
                    sender_batch_id=sender_batch_id,
                    detail=detail,
                    currency=currency,
                    value=value,
                    fee=_quantize(value * self.config.fee_rate, currency),
                    outcome=outcome,
                    error=item_error(outcome),
                )
            )
            self.items[items[-1].payout_item_id] = items[-1]
        echoed = {
            k: header[k]
            for k in ("sender_batch_id", "recipient_type", "email_subject", "email_message")
            if k in header
        }
        currency = items[0].currency
        batch = Batch(
            payout_batch_id=batch_id,
            sender_batch_id=sender_batch_id,
            sender_batch_header=echoed,
            created_at=created_at,
            created_mono=now,
            currency=currency,
            amount=_quantize(sum((i.value for i in items), Decimal(0)), currency),
            items=items,
        )
        self.batches[batch_id] = batch
        if sender_batch_id:
            self.by_sender_batch_id.setdefault(sender_batch_id, []).append(batch)
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

    def _batch_status(self, batch: Batch, now: float) -> str:
        elapsed = now - batch.created_mono
        if elapsed >= self.config.final_after_seconds:
            return "SUCCESS"
        if elapsed >= self.config.processing_after_seconds:
            return "PROCESSING"
        return "PENDING"

    def _item_status(self, item: Item, batch: Batch, now: float) -> str:
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
        self, batch_id: str, base: str, query: Mapping[str, Any], now: float
    ) -> dict[str, Any] | None:
        """The GET body for one page (``query`` as ``batch_query`` makes it), None if unknown."""
        batch = self.batches.get(batch_id)
        if batch is None:
            return None
        statuses = [self._item_status(item, batch, now) for item in batch.items]
        page, page_size = query["page"], query["page_size"]
        start = (page - 1) * page_size
        chosen = list(zip(batch.items, statuses, strict=True))[start : start + page_size]
        total = len(batch.items)
        total_pages = max(1, math.ceil(total / page_size))
        body: dict[str, Any] = {}
        if query["total_required"]:
            body |= {"total_items": total, "total_pages": total_pages}
        body["batch_header"] = self._batch_header(batch, statuses, now)
        body["items"] = [self._item_body(i, s, base, batch, in_batch=True) for i, s in chosen]
        body["links"] = _page_links(f"{base}/v1/payments/payouts/{batch_id}", query, total_pages)
        if query["fields"]:
            body = {k: v for k, v in body.items() if k in query["fields"]}
        return body

    def _batch_header(self, batch: Batch, statuses: list[str], now: float) -> dict[str, Any]:
        status = self._batch_status(batch, now)
        final_at = batch.created_at + timedelta(seconds=self.config.final_after_seconds)
        header: dict[str, Any] = {
            "payout_batch_id": batch.payout_batch_id,
            "batch_status": status,
            "time_created": timestamp(batch.created_at),
        }
        if status == "SUCCESS":
            header["time_completed"] = timestamp(final_at)
            if "UNCLAIMED" not in statuses:
                returned = [i.returned_at for i in batch.items if i.returned_at is not None]
                header["time_closed"] = timestamp(max([final_at, *returned]))
        fees = Decimal(0)
        if status != "PENDING":
            fees = sum(
                (_current_fee(i, s) for i, s in zip(batch.items, statuses, strict=True)),
                Decimal(0),
            )
        return header | {
            "sender_batch_header": dict(batch.sender_batch_header),
            "funding_source": "BALANCE",
            "amount": _money(batch.amount, batch.currency),
            "fees": _money(_quantize(fees, batch.currency), batch.currency),
        }

    def _item_body(
        self, item: Item, status: str, base: str, batch: Batch, *, in_batch: bool
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
            body["time_processed"] = timestamp(item.returned_at or final_at)
        if status != "PENDING" and item.error is not None:
            body["errors"] = dict(item.error)
        item_href = f"{base}/v1/payments/payouts-item/{item.payout_item_id}"
        if in_batch:
            body["links"] = [link(item_href, "item")]
        else:
            body["links"] = [
                link(item_href, "self"),
                link(f"{base}/v1/payments/payouts/{item.payout_batch_id}", "batch"),
            ]
        return body

    def item_body(self, item_id: str, base: str, now: float) -> dict[str, Any] | None:
        item = self.items.get(item_id)
        if item is None:
            return None
        batch = self.batches[item.payout_batch_id]
        status = self._item_status(item, batch, now)
        return self._item_body(item, status, base, batch, in_batch=False)

    def cancel(self, item_id: str, base: str, now: float) -> tuple[str, int, dict[str, Any]]:
        """(outcome, HTTP status, body) of cancelling an item."""
        item = self.items.get(item_id)
        if item is None:
            status, body = dialect.not_found()
            return "not_found", status, json.loads(body)
        batch = self.batches[item.payout_batch_id]
        status = self._item_status(item, batch, now)
        if status == "UNCLAIMED":
            item.returned_at = datetime.now(UTC).replace(microsecond=0)
            return "cancelled", 200, self._item_body(item, "RETURNED", base, batch, in_batch=False)
        if status == "RETURNED":
            name, issue = "ITEM_ALREADY_CANCELLED", "The payout item has already been cancelled."
        else:
            name = "ITEM_INCORRECT_STATUS"
            issue = f"Only UNCLAIMED payout items can be cancelled; this one is {status}."
        detail = {"field": "transaction_status", "location": "path", "issue": issue}
        code, body = error(400, name, issue, details=[detail])
        return "cancel_refused", code, json.loads(body)


def created_body(batch: Batch, base: str) -> dict[str, Any]:
    return {
        "batch_header": {
            "payout_batch_id": batch.payout_batch_id,
            "batch_status": "PENDING",
            "time_created": timestamp(batch.created_at),
            "sender_batch_header": dict(batch.sender_batch_header),
        },
        "links": [link(f"{base}/v1/payments/payouts/{batch.payout_batch_id}", "self")],
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


def item_error(outcome: str) -> dict[str, Any] | None:
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


def _current_fee(item: Item, status: str) -> Decimal:
    return Decimal(0) if status in ("FAILED", "RETURNED") else item.fee


def _quantize(value: Decimal, currency: str) -> Decimal:
    exponent = Decimal(1) if currency in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")
    return value.quantize(exponent, rounding=ROUND_HALF_UP)


def _money(value: Decimal, currency: str) -> dict[str, str]:
    return {"currency": currency, "value": str(_quantize(value, currency))}


def timestamp(moment: datetime) -> str:
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

    links = [link(at(page), "self")]
    if page < total_pages:
        links.append(link(at(page + 1), "next"))
    if page > 1:
        links.append(link(at(min(page - 1, total_pages)), "previous"))
    return links


def batch_query(params: Mapping[str, str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
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
