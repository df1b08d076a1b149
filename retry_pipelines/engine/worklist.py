"""The operator worklist: every item that waits for a person, both gateways, with the launchpad
run config that settles it. Read-only; the ``operator_worklist`` asset shows it in the UI.

Per gateway, an item is *held* (its queue's ``held_status``, ``needs_reconciliation``: the request
may have reached the gateway, so nothing resends it on its own) or *dead* (dead-lettered). How
each kind is settled is one table, ``SETTLE``: the admin job, its op, the config field naming the
item and the fixed fields, from which every row's launchpad snippet (one line of YAML flow text)
is generated.

``read_worklist`` reads the exact counts and the fingerprint *before* the rows: a change that
lands between the two reads makes the live fingerprint differ from the one stored with the
materialization, so the sensor refreshes again instead of keeping a stale list."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from retry_pipelines.domain.scrub import CUT, redact
from retry_pipelines.store import worklist as store
from retry_pipelines.store.queues import QUEUES

ASSET_NAME = "operator_worklist"
ROW_LIMIT = 500
"""At most this many rows are listed (the counts are always exact)."""
TEXT_LIMIT = 300
"""Characters of an error message or status reason shown in a row (one line)."""
KINDS = ("held", "dead")
GATEWAYS = tuple(QUEUES)
ADMIN_ID = "YOUR_ID"
REASON = "WHY"
FBR_NUMBER = "FBR_NUMBER_FROM_IRIS"
"""Placeholders in the snippets. The job refuses each until it is replaced: a reason needs at
least 5 characters and an FBR number its shape (an allowlist, when set, refuses YOUR_ID)."""


@dataclass(frozen=True)
class Action:
    """One way to settle an item: run ``job`` with ``op``'s config naming the item in
    ``id_field`` (a one-element list if ``as_list``) plus the ``fixed`` fields."""

    job: str
    op: str
    id_field: str
    fixed: tuple[tuple[str, Any], ...] = ()
    as_list: bool = False

    def config(self, item_id: int, *, admin_id: str = ADMIN_ID, reason: str = REASON) -> dict:
        named = [item_id] if self.as_list else item_id
        return {self.id_field: named, **dict(self.fixed), "admin_id": admin_id, "reason": reason}

    def run_config(self, item_id: int, **who: str) -> dict:
        return {"ops": {self.op: {"config": self.config(item_id, **who)}}}

    def snippet(self, item_id: int) -> str:
        """The launchpad run config on one line: ``ops: {op: {config: {...}}}`` (YAML)."""
        return f"ops: {flow(self.run_config(item_id)['ops'])}"


@dataclass(frozen=True)
class Settle:
    """How one kind of item of one gateway is settled: ``first``, else ``then``; the texts are
    the summary's "how to settle" line."""

    item: str
    what: str
    first: Action
    first_when: str
    then: Action | None = None
    then_when: str = ""
    note: str = ""


_RESOLVE, _RESOLVE_OP = "resolve_held_invoice", "resolve_one_held_invoice"
_RETRY = Action("manual_retry_payout_batch", "retry_one_payout_batch", "batch_id")
_CANCEL = Action(
    "override_payout_batch_status",
    "override_one_payout_batch",
    "batch_id",
    (("new_status", "canceled"),),
)

SETTLE: dict[tuple[str, str], Settle] = {
    ("fbr", "held"): Settle(
        item="invoice",
        what="invoices whose post may have reached FBR; nothing re-posts them on its own. Look "
        "each reference up in IRIS",
        first=Action(
            _RESOLVE,
            _RESOLVE_OP,
            "invoice_id",
            (("action", "mark_submitted"), ("fbr_invoice_number", FBR_NUMBER)),
        ),
        first_when="Found: set fbr_invoice_number to the number IRIS shows",
        then=Action(_RESOLVE, _RESOLVE_OP, "invoice_id", (("action", "release"),)),
        then_when="Not found: release it to be posted again",
        note="To give one up, use `action: abandon`; to settle many at once, "
        "`resolve_held_invoices` with a CSV of reference and FBR number (or not_found).",
    ),
    ("fbr", "dead"): Settle(
        item="invoice",
        what="invoices FBR refused, or whose retries ran out",
        first=Action(
            "requeue_dead_invoices",
            "requeue_matching_dead_invoices",
            "invoice_ids",
            (("dry_run", False),),
            as_list=True,
        ),
        first_when="Fix what the error names (invoice data or configuration), then requeue it "
        "with a fresh retry budget",
    ),
    ("paypal", "held"): Settle(
        item="payout batch",
        what="payout batches PayPal may have created; nothing resends them on its own",
        first=_RETRY,
        first_when="Retry it: the resend carries the same sender_batch_id, so a batch PayPal "
        "already made is adopted, not paid again",
        then=_CANCEL,
        then_when="It must not be paid: cancel it",
    ),
    ("paypal", "dead"): Settle(
        item="payout batch",
        what="payout batches PayPal refused, or whose retries ran out",
        first=_RETRY,
        first_when="Fix what the error names, then retry it with a fresh retry budget",
        then=_CANCEL,
        then_when="It must not be paid: cancel it",
    ),
}


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_YAML_WORDS = frozenset({"true", "false", "yes", "no", "on", "off", "null", "y", "n"})


def flow(value: Any) -> str:
    """``value`` (dicts, lists, ints, bools, strings) as YAML flow text on one line."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{flow(k)}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def one_line(text: str | None, limit: int = TEXT_LIMIT) -> str:
    """``text`` on one line, credential shapes redacted, at most ``limit`` characters."""
    if not text:
        return ""
    text = " ".join(redact(text).split())
    return text if len(text) <= limit else text[: limit - len(CUT)] + CUT


@dataclass(frozen=True)
class WorkItem:
    gateway: str
    kind: str
    id: int
    reference: str
    since: datetime
    attempts: int
    counted_attempts: int
    error_type: str
    error_code: str
    error_message: str
    reason: str

    @property
    def settle(self) -> Settle:
        return SETTLE[(self.gateway, self.kind)]

    def record(self) -> dict[str, Any]:
        """The row as plain values, in ``COLUMNS`` order."""
        settle = self.settle
        return {
            "gateway": self.gateway,
            "kind": self.kind,
            "id": self.id,
            "reference": self.reference,
            "since": self.since.isoformat(timespec="seconds"),
            "attempts": self.attempts,
            "counted_attempts": self.counted_attempts,
            "error_type": self.error_type,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "reason": self.reason,
            "job": settle.first.job,
            "launchpad": settle.first.snippet(self.id),
            "alt_job": settle.then.job if settle.then else "",
            "alt_launchpad": settle.then.snippet(self.id) if settle.then else "",
        }


COLUMNS: dict[str, tuple[str, str]] = {
    "gateway": ("string", "fbr (an invoice) or paypal (a payout batch)"),
    "kind": ("string", "held (needs_reconciliation: may have reached the gateway) or dead"),
    "id": ("int", "the item's id, as the admin jobs take it"),
    "reference": ("string", "the invoice reference (fbr) or sender_batch_id (paypal)"),
    "since": ("string", "when it entered this status (UTC, ISO 8601)"),
    "attempts": ("int", "attempts made in all"),
    "counted_attempts": ("int", "attempts counted against its current retry budget"),
    "error_type": ("string", "type of the last error"),
    "error_code": ("string", "gateway code or HTTP status of the last error"),
    "error_message": ("string", f"the last error, one line, first {TEXT_LIMIT} characters"),
    "reason": ("string", "why it has this status, one line"),
    "job": ("string", "the job that settles it"),
    "launchpad": ("string", "run config for that job: paste it, replace YOUR_ID and WHY"),
    "alt_job": ("string", "the other job that settles it, if any"),
    "alt_launchpad": ("string", "run config for the other job"),
}
"""The columns of a worklist row: type and description."""


def _item(gateway: str, kind: str, row: dict[str, Any]) -> WorkItem:
    return WorkItem(
        gateway=gateway,
        kind=kind,
        id=int(row["id"]),
        reference=row["name"],
        since=row["updated_at"],
        attempts=int(row["attempt_count"]),
        counted_attempts=int(row["counted_attempts"]),
        error_type=one_line(row["last_error_type"]),
        error_code=one_line(row["last_error_code"]),
        error_message=one_line(row["last_error_message"]),
        reason=one_line(row["status_reason"]),
    )


@dataclass(frozen=True)
class Worklist:
    rows: list[WorkItem]
    """Held first, then dead; oldest first within each; at most the limit read."""
    counts: dict[tuple[str, str], int]
    """(gateway, kind) -> items, exact."""
    oldest: dict[tuple[str, str], WorkItem] = field(default_factory=dict)
    """(gateway, kind) -> its longest-waiting item, for each kind that has one."""
    fingerprint: str = ""

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def figures(self) -> dict[str, int]:
        """``{gateway}/{kind}`` counts and ``total``, every one present."""
        return _named_counts(self.counts)


def _named_counts(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    named = {f"{g}/{k}": counts.get((g, k), 0) for g in GATEWAYS for k in KINDS}
    return {**named, "total": sum(named.values())}


def _fingerprint(figures: dict[tuple[str, str], store.StatusFigures]) -> str:
    parts = []
    for (gateway, kind), f in sorted(figures.items()):
        first = f.first_updated_at.isoformat() if f.first_updated_at else "-"
        last = f.last_updated_at.isoformat() if f.last_updated_at else "-"
        parts.append(f"{gateway}/{kind}:{f.count}:{f.id_sum}:{f.attempt_sum}:{first}:{last}")
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:16]


def _figures(engine: Engine) -> dict[tuple[str, str], store.StatusFigures]:
    with engine.connect() as conn:
        return {
            (name, kind): figures
            for name, queue in QUEUES.items()
            for kind, figures in store.figures(conn, queue).items()
        }


def fingerprint(engine: Engine) -> str:
    """A short text that changes whenever an item enters or leaves the worklist or a listed item
    is written (its count, id sum, attempt sum and ``updated_at`` range per gateway and kind),
    and stays the same otherwise. One aggregate query per gateway."""
    return _fingerprint(_figures(engine))


def attention_counts(engine: Engine) -> dict[str, int]:
    """How many items wait for a person: ``fbr/held``, ``fbr/dead``, ``paypal/held``,
    ``paypal/dead`` and ``total``, exact, each present (0 when none)."""
    return _named_counts({key: f.count for key, f in _figures(engine).items()})


def worklist_link(ui_base_url: str) -> str:
    """The worklist asset's page in the Dagster UI served at ``ui_base_url``."""
    return f"{ui_base_url.rstrip('/')}/assets/{ASSET_NAME}"


def read_worklist(engine: Engine, *, limit: int = ROW_LIMIT) -> Worklist:
    """The worklist: exact counts and fingerprint, then at most ``limit`` rows."""
    figures = _figures(engine)
    groups: dict[tuple[str, str], list[WorkItem]] = {}
    with engine.connect() as conn:
        for name, queue in QUEUES.items():
            for kind in KINDS:
                rows = store.waiting(conn, queue, kind, limit=limit)
                groups[(name, kind)] = [_item(name, kind, row) for row in rows]
    merged = sorted(
        (item for items in groups.values() for item in items),
        key=lambda i: (KINDS.index(i.kind), i.since, i.gateway, i.id),
    )
    return Worklist(
        rows=merged[:limit],
        counts={key: f.count for key, f in figures.items()},
        oldest={key: items[0] for key, items in groups.items() if items},
        fingerprint=_fingerprint(figures),
    )


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "'")


def _fields(action: Action) -> str:
    named = ["ID"] if action.as_list else "ID"
    return f"`{action.job}` with `{flow({action.id_field: named, **dict(action.fixed)})}`"


def _headline(worklist: Worklist) -> str:
    total = worklist.total
    if not total:
        return "Nothing waits for a person: no invoice or payout batch is held or dead."
    by_kind = {k: sum(n for (_, kind), n in worklist.counts.items() if kind == k) for k in KINDS}
    line = f"**{total} item(s) wait for a person**: {by_kind['held']} held, {by_kind['dead']} dead."
    if len(worklist.rows) < total:
        return (
            f"{line} The `worklist` table lists the {len(worklist.rows)} that waited longest "
            "(held first, oldest first); the counts are exact."
        )
    return f"{line} The `worklist` table lists every one, held first, oldest first."


def _counts_table(worklist: Worklist) -> list[str]:
    lines = ["| gateway | kind | items | waiting since | oldest item |", "|---|---|---:|---|---|"]
    for gateway in GATEWAYS:
        for kind in KINDS:
            oldest = worklist.oldest.get((gateway, kind))
            since = oldest.since.isoformat(timespec="seconds") if oldest else "-"
            named = f"{oldest.settle.item} {oldest.id} ({_md(oldest.reference)})" if oldest else "-"
            count = worklist.counts.get((gateway, kind), 0)
            lines.append(f"| {gateway} | {kind} | {count} | {since} | {named} |")
    return lines


def _how_to_settle() -> list[str]:
    lines = [
        "### How to settle",
        "Open the job in a row's `job` column, paste the row's `launchpad` text into its "
        f"Launchpad, replace {ADMIN_ID} with your admin id and {REASON} with the reason (at least "
        "5 characters; both are kept in the audit row) and launch. `alt_job` with `alt_launchpad` "
        "is the other way to settle the row. operator_worklist_sensor refreshes this list within "
        "a minute of a change.",
        "",
    ]
    for (gateway, kind), s in SETTLE.items():
        line = f"- **{gateway} {kind}**: {s.what}. {s.first_when}: {_fields(s.first)}."
        if s.then:
            line += f" {s.then_when}: {_fields(s.then)}."
        lines.append(f"{line} {s.note}".rstrip())
    return lines


def summary(worklist: Worklist) -> str:
    """Markdown: the counts by gateway and kind with each one's oldest item, and how to settle."""
    return "\n".join([_headline(worklist), "", *_counts_table(worklist), "", *_how_to_settle()])
