"""The operator worklist (``engine.worklist``): which items are listed, in which order, with what
text, the launchpad snippets, the exact counts beyond the row limit and the fingerprint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import yaml
from sqlalchemy import Engine, update

from retry_pipelines.engine import worklist
from retry_pipelines.engine.actor import Actor
from retry_pipelines.engine.fbr.admin import resolve_held_invoice
from retry_pipelines.engine.paypal.admin import override_status
from retry_pipelines.engine.worklist import (
    SETTLE,
    attention_counts,
    fingerprint,
    flow,
    one_line,
    read_worklist,
    worklist_link,
)
from retry_pipelines.store import tables
from retry_pipelines.store.clean import clean_row
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACTOR = Actor("ops-ali", "checked on the gateway's portal")
TOKEN = "sk_live_4f9a8b7c6d5e4f3a2b1c"


def waiting_item(
    engine: Engine,
    gateway: str,
    status: str,
    *,
    number: int,
    since: datetime,
    error: tuple[str, str, str] = ("PERMANENT", "0401", "seller NTN unknown"),
    attempts: tuple[int, int] = (3, 2),
    reason: str | None = None,
) -> int:
    """An invoice (fbr) or payout batch (paypal) in ``status`` since ``since``, with its last
    error and attempts written as the store writes them (through ``store.clean``)."""
    make = insert_invoices if gateway == "fbr" else insert_batches
    table = tables.invoices if gateway == "fbr" else tables.payout_batches
    [item_id] = make(engine, 1, now=since, status=status, start=number)
    values = {
        "last_error_type": error[0],
        "last_error_code": error[1],
        "last_error_message": error[2],
        "attempt_count": attempts[0],
        "counted_attempts": attempts[1],
        "status_reason": reason,
        "updated_at": since,
    }
    with engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == item_id).values(clean_row(table, values)))
    return item_id


def populate(engine: Engine) -> dict[str, int]:
    """Two held invoices, one dead invoice, one held and one dead batch, and items that wait for
    nobody (pending, submitted, completed)."""
    ids = {
        "INV-0000001": waiting_item(
            engine,
            "fbr",
            "needs_reconciliation",
            number=1,
            since=NOW - timedelta(hours=3),
            error=("UNKNOWN", "TIMEOUT", "no answer within 30 s;\nthe post may have reached FBR"),
            reason="held: the post may have reached FBR",
        ),
        "INV-0000002": waiting_item(
            engine, "fbr", "needs_reconciliation", number=2, since=NOW - timedelta(hours=1)
        ),
        "INV-0000010": waiting_item(
            engine,
            "fbr",
            "dead",
            number=10,
            since=NOW - timedelta(hours=5),
            error=("PERMANENT", "0401", "Seller NTN 1234567 is not registered. " * 40),
        ),
        "SB-0000001": waiting_item(
            engine,
            "paypal",
            "needs_reconciliation",
            number=1,
            since=NOW - timedelta(hours=2),
            error=("TRANSIENT", "INTERNAL_SERVICE_ERROR", "PayPal answered 500"),
        ),
        "SB-0000005": waiting_item(
            engine,
            "paypal",
            "dead",
            number=5,
            since=NOW - timedelta(hours=4),
            error=("PERMANENT", "VALIDATION_ERROR", "receiver is not a valid email"),
        ),
    }
    insert_invoices(engine, 1, now=NOW, status="pending", start=20)
    insert_invoices(engine, 1, now=NOW, status="submitted", start=21)
    insert_batches(engine, 1, now=NOW, status="completed", start=9)
    return ids


def test_held_then_dead_oldest_first_with_reference_error_and_attempts(engine):
    ids = populate(engine)
    listed = read_worklist(engine)
    assert [(r.gateway, r.kind, r.reference) for r in listed.rows] == [
        ("fbr", "held", "INV-0000001"),
        ("paypal", "held", "SB-0000001"),
        ("fbr", "held", "INV-0000002"),
        ("fbr", "dead", "INV-0000010"),
        ("paypal", "dead", "SB-0000005"),
    ]
    first = listed.rows[0].record()
    assert first["id"] == ids["INV-0000001"]
    assert first["since"] == (NOW - timedelta(hours=3)).isoformat(timespec="seconds")
    assert (first["error_type"], first["error_code"]) == ("UNKNOWN", "TIMEOUT")
    assert first["error_message"] == "no answer within 30 s; the post may have reached FBR"
    assert first["reason"] == "held: the post may have reached FBR"
    assert (first["attempts"], first["counted_attempts"]) == (3, 2)
    assert list(first) == list(worklist.COLUMNS)
    batch = listed.rows[1].record()
    assert (batch["id"], batch["error_code"]) == (ids["SB-0000001"], "INTERNAL_SERVICE_ERROR")
    assert listed.counts == {
        ("fbr", "held"): 2,
        ("fbr", "dead"): 1,
        ("paypal", "held"): 1,
        ("paypal", "dead"): 1,
    }
    assert listed.oldest[("fbr", "held")].reference == "INV-0000001"
    assert listed.oldest[("paypal", "dead")].reference == "SB-0000005"


def test_a_long_message_is_one_bounded_line(engine):
    populate(engine)
    [dead] = [r for r in read_worklist(engine).rows if r.reference == "INV-0000010"]
    assert len(dead.error_message) == worklist.TEXT_LIMIT
    assert dead.error_message.startswith("Seller NTN 1234567 is not registered. Seller")
    assert dead.error_message.endswith("…")
    assert "\n" not in dead.error_message


def test_secrets_never_reach_a_row(engine):
    waiting_item(
        engine,
        "fbr",
        "dead",
        number=1,
        since=NOW,
        error=("PERMANENT", "401", f"refused Authorization: Bearer {TOKEN}\r\nsecret={TOKEN}"),
    )
    [batch_id] = insert_batches(engine, 1, now=NOW, status="dead", start=1)
    with engine.begin() as conn:  # written past the store boundary: the read redacts it too
        conn.execute(
            update(tables.payout_batches)
            .where(tables.payout_batches.c.id == batch_id)
            .values(last_error_message=f"token echoed: access_token={TOKEN} bearer {TOKEN}")
        )
    rows = [r.record() for r in read_worklist(engine).rows]
    assert len(rows) == 2
    for row in rows:
        assert TOKEN not in str(row)
        assert "[REDACTED]" in row["error_message"]


def test_counts_are_exact_beyond_the_row_limit(engine):
    insert_invoices(engine, 7, now=NOW - timedelta(hours=1), status="dead")
    insert_batches(engine, 4, now=NOW, status="needs_reconciliation")
    listed = read_worklist(engine, limit=5)
    assert len(listed.rows) == 5
    assert [r.kind for r in listed.rows] == ["held"] * 4 + ["dead"]
    assert listed.total == 11
    assert listed.figures() == {
        "fbr/held": 0,
        "fbr/dead": 7,
        "paypal/held": 4,
        "paypal/dead": 0,
        "total": 11,
    }
    assert attention_counts(engine) == listed.figures()
    assert "lists the 5 that waited longest" in worklist.summary(listed)


def test_nothing_waiting(engine):
    insert_invoices(engine, 2, now=NOW, status="submitted")
    listed = read_worklist(engine)
    assert listed.rows == []
    assert listed.total == 0
    assert attention_counts(engine) == {
        "fbr/held": 0,
        "fbr/dead": 0,
        "paypal/held": 0,
        "paypal/dead": 0,
        "total": 0,
    }
    assert worklist.summary(listed).startswith("Nothing waits for a person")


def test_fingerprint_changes_when_an_item_is_settled_and_only_then(engine):
    ids = populate(engine)
    before = fingerprint(engine)
    assert fingerprint(engine) == before == read_worklist(engine).fingerprint
    insert_invoices(engine, 3, now=NOW, status="pending", start=100)  # waits for nobody
    insert_batches(engine, 1, now=NOW, status="submitted", start=100)
    assert fingerprint(engine) == before

    resolve_held_invoice(
        engine, ACTOR, invoice_id=ids["INV-0000002"], action="release", now=NOW + timedelta(1)
    )
    released = fingerprint(engine)
    assert released != before
    assert [r.reference for r in read_worklist(engine).rows].count("INV-0000002") == 0

    override_status(
        engine, ACTOR, batch_id=ids["SB-0000005"], new_status="canceled", now=NOW + timedelta(2)
    )
    canceled = fingerprint(engine)
    assert canceled not in (before, released)
    assert attention_counts(engine)["total"] == 3


def test_fingerprint_changes_when_a_listed_item_is_written(engine):
    ids = populate(engine)
    before = fingerprint(engine)
    table = tables.payout_batches
    with engine.begin() as conn:  # dead again after a manual retry: same id, same status
        conn.execute(
            update(table)
            .where(table.c.id == ids["SB-0000005"])
            .values(attempt_count=4, updated_at=NOW + timedelta(hours=1))
        )
    assert fingerprint(engine) != before


def test_snippets_are_one_line_yaml_naming_the_item():
    for settle in SETTLE.values():
        for action in (settle.first, settle.then):
            if action is None:
                continue
            snippet = action.snippet(12)
            assert "\n" not in snippet
            assert snippet.startswith(f"ops: {{{action.op}: {{config: {{")
            config = yaml.safe_load(snippet)["ops"][action.op]["config"]
            assert config == action.config(12)
            assert config["admin_id"] == "YOUR_ID"
            assert config["reason"] == "WHY"
    held = SETTLE[("fbr", "held")].then.snippet(12)
    assert held == (
        "ops: {resolve_one_held_invoice: {config: {invoice_id: 12, action: release, "
        "admin_id: YOUR_ID, reason: WHY}}}"
    )
    dead = SETTLE[("fbr", "dead")].first.config(7)
    assert dead["invoice_ids"] == [7]
    assert dead["dry_run"] is False


def test_flow_quotes_what_yaml_would_misread():
    value = {"a": ["x y", "true", "No", "12", "", 'say "hi": #1', 3, False], "b": "plain_word"}
    text = flow(value)
    assert yaml.safe_load(text) == value
    assert "b: plain_word" in text


def test_one_line():
    assert one_line(None) == ""
    assert one_line("") == ""
    assert one_line("a\n\tb  c\r\n") == "a b c"
    assert one_line("x" * 20, limit=10) == "x" * 9 + "…"


def test_worklist_link():
    assert (
        worklist_link("http://127.0.0.1:3000/") == "http://127.0.0.1:3000/assets/operator_worklist"
    )
    assert worklist_link("https://ops.example/dagster") == (
        "https://ops.example/dagster/assets/operator_worklist"
    )


def test_summary_counts_oldest_items_and_how_to_settle(engine):
    ids = populate(engine)
    text = worklist.summary(read_worklist(engine))
    assert text.startswith("**5 item(s) wait for a person**: 3 held, 2 dead.")
    assert "| fbr | held | 2 | 2026-03-01T09:00:00+00:00 | invoice " in text
    assert f"payout batch {ids['SB-0000005']} (SB-0000005)" in text
    for job in (
        "resolve_held_invoice",
        "requeue_dead_invoices",
        "manual_retry_payout_batch",
        "override_payout_batch_status",
    ):
        assert f"`{job}` with `{{" in text
    assert (
        "`{invoice_id: ID, action: mark_submitted, fbr_invoice_number: FBR_NUMBER_FROM_IRIS}`"
        in (text)
    )
