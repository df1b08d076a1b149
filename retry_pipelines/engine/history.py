"""One item's history, the same shape for both gateways: the item, its attempts (type, code,
message, delivery certainty, latency, run id) and its audit rows. Read-only.

``item_history(engine, "fbr", "INV-1")`` names an invoice by id or reference, ``"paypal"`` a
payout batch by id or ``sender_batch_id`` (an all-digit key is an id first: ``store.history``).
An unknown item raises ``UnknownItem`` (a ``ValueError``: the CLI's one-line user error)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from retry_pipelines.store import history as store
from retry_pipelines.store import payouts as payout_store

LIMIT = 200
"""At most this many of the latest attempts and audit rows are read and shown."""

GATEWAYS = {"fbr": ("invoice", "invoice"), "paypal": ("payout batch", "payout_batch")}
"""gateway: (what its item is called, its ``admin_audit.entity_type``)."""


class UnknownItem(ValueError):
    """No item of the gateway has that id (or reference / sender_batch_id)."""


@dataclass(frozen=True)
class ItemHistory:
    gateway: str
    item: dict[str, Any]
    attempts: list[dict[str, Any]]
    attempts_total: int
    audit: list[dict[str, Any]]
    audit_total: int
    items_by_status: dict[str, int] = field(default_factory=dict)
    """A payout batch's items by status (empty for an invoice)."""

    @property
    def kind(self) -> str:
        return GATEWAYS[self.gateway][0]

    @property
    def title(self) -> str:
        name = self.item.get("reference") or self.item.get("sender_batch_id")
        return f"{self.kind} {self.item['id']} ({name}): {self.item['status']}"

    def render(self) -> str:
        lines = [self.title]
        lines += [f"  {k}: {text(v)}" for k, v in self.item.items() if k != "id" and v is not None]
        if self.items_by_status:
            counts = ", ".join(f"{s} {n}" for s, n in sorted(self.items_by_status.items()))
            lines.append(f"  items: {counts}")
        lines.append(_heading("attempts", len(self.attempts), self.attempts_total))
        lines += [f"  {attempt_line(a)}" for a in self.attempts]
        lines.append(_heading("audit rows", len(self.audit), self.audit_total))
        lines += [f"  {audit_line(a)}" for a in self.audit]
        return "\n".join(lines)


def text(value: Any) -> str:
    """One line for a value: times in ISO 8601, JSON as JSON, whitespace runs as one space."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        value = json.dumps(value, sort_keys=True, default=str)
    return " ".join(str(value).split())


def _heading(name: str, shown: int, total: int) -> str:
    if shown == total:
        return f"{name}: {total}"
    return f"{name}: {total} ({total - shown} earliest left out, the last {shown} shown)"


def attempt_line(a: dict[str, Any]) -> str:
    latency = f"{a['latency_ms']:.0f} ms" if a["latency_ms"] is not None else None
    parts = [
        f"#{a['attempt_number']}",
        text(a["started_at"]),
        a["outcome"],
        a["error_type"],
        a["error_code"],
        f"delivery {a['delivery']}" if a["delivery"] else None,
        f"HTTP {a['http_status']}" if a["http_status"] is not None else None,
        latency,
        f"run {a['run_id']}" if a["run_id"] else None,
    ]
    line = " ".join(str(p) for p in parts if p)
    return f"{line}: {text(a['error_message'])}" if a["error_message"] else line


def audit_line(a: dict[str, Any]) -> str:
    parts = [
        text(a["at"]),
        a["action"],
        f"by {a['admin_id']}",
        f"{a['from_status'] or '-'} -> {a['to_status'] or '-'}",
        f"run {a['run_id']}" if a["run_id"] else None,
        f"reason: {text(a['reason'])}",
    ]
    line = " ".join(p for p in parts if p)
    return f"{line}; details {text(a['details'])}" if a["details"] is not None else line


def item_history(engine: Engine, gateway: str, key: str, *, limit: int = LIMIT) -> ItemHistory:
    """The history of one invoice (``fbr``) or payout batch (``paypal``) named by ``key``."""
    if gateway not in GATEWAYS:
        raise ValueError(f"unknown gateway {gateway!r}: fbr or paypal")
    kind, entity = GATEWAYS[gateway]
    with engine.connect() as conn:
        if gateway == "fbr":
            item = store.find_invoice(conn, key)
            reads = store.invoice_attempts_of
        else:
            item = store.find_batch(conn, key)
            reads = store.batch_attempts_of
        if item is None:
            shown = key if len(key) <= 80 else key[:77] + "..."
            named = "id or reference" if gateway == "fbr" else "id or sender_batch_id"
            raise UnknownItem(f"no {kind} has the {named} {shown!r}")
        attempts = reads(conn, item["id"], limit=limit)
        audit = store.audit_of(conn, entity, item["id"], limit=limit)
        by_status = payout_store.items_by_status(conn, item["id"]) if gateway == "paypal" else {}
    return ItemHistory(
        gateway=gateway,
        item=item,
        attempts=attempts.rows,
        attempts_total=attempts.total,
        audit=audit.rows,
        audit_total=audit.total,
        items_by_status=by_status,
    )
