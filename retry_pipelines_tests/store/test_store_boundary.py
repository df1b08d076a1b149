"""The store boundary on both backends: whatever a gateway says, the row is written, bounded and
clean, and one bad outcome never costs the others in its group commit."""

from __future__ import annotations

import ast
import asyncio
import random
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import DataError, OperationalError

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.domain.scrub import MAX_MESSAGE_LENGTH, REDACTED
from retry_pipelines.engine.actor import Actor, AdminError
from retry_pipelines.engine.fbr import requeue_dead_invoices, resolve_held_invoice
from retry_pipelines.engine.fbr.intake import enqueue_invoices
from retry_pipelines.engine.fbr.seed import invoice_payload
from retry_pipelines.engine.paypal.reconcile import reconcile
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.engine.pipeline import writer as writer_module
from retry_pipelines.engine.pipeline.writer import AttemptWriter
from retry_pipelines.reports.errors import COLUMNS, error_distribution
from retry_pipelines.reports.storage import ERRORS_REPORT, read_report, write_report
from retry_pipelines.store import claims, locks, pauses, tables
from retry_pipelines.store.attempts import record_many, record_outcome, start_attempt
from retry_pipelines.store.clean import TEXT_LIMIT, UnstorableIdentifier
from retry_pipelines.store.queues import INVOICES
from retry_pipelines_tests.support.factories import insert_invoices

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SECRET = "sk_live_51HxQ2eZvKYlo2C0a9Bc"
OWNER = "w1"
BAD_TEXT = (
    ("C" * 100, "a 100-char error code"),
    ("C" * 10_000, "a 10 kB error code"),
)


def _claimed(engine, count: int) -> list[int]:
    ids = insert_invoices(engine, count, now=NOW)
    rows = claims.claim(engine, INVOICES, owner=OWNER, limit=count, now=NOW, max_attempts=6)
    assert {r["id"] for r in rows} == set(ids)
    return ids


def _started(engine, count: int):
    return [
        start_attempt(engine, INVOICES, i, owner=OWNER, now=NOW) for i in _claimed(engine, count)
    ]


def _failure(message="upstream said no", code="0052", **kw) -> Failure:
    return Failure(ErrorType.TRANSIENT, message, Delivery.NOT_DELIVERED, code, 500, **kw)


def _retry(failure: Failure) -> dict:
    return {
        "owner": OWNER,
        "now": NOW,
        "new_status": "pending",
        "failure": failure,
        "next_attempt_at": NOW + timedelta(minutes=1),
        "reason": "retry scheduled",
    }


def _rows(engine, item_id: int):
    with engine.connect() as conn:
        item = conn.execute(select(tables.invoices).where(tables.invoices.c.id == item_id)).one()
        attempt = conn.execute(
            select(tables.invoice_attempts).where(tables.invoice_attempts.c.invoice_id == item_id)
        ).one()
    return item, attempt


def _assert_clean(text: str | None, limit: int) -> None:
    assert text is not None
    assert len(text) <= limit
    assert "\x00" not in text
    text.encode("utf-8")


# Attempt outcomes: codes and messages a gateway may send.


@pytest.mark.parametrize(("code", "what"), BAD_TEXT, ids=[w for _, w in BAD_TEXT])
def test_an_oversized_error_code_is_stored_cut_with_a_marker(engine, code, what):
    [attempt] = _started(engine, 1)
    record_outcome(engine, INVOICES, attempt, **_retry(_failure(code=code)))
    item, row = _rows(engine, attempt.item_id)
    assert item.status == "pending"
    assert row.outcome == "failure"
    for stored in (row.error_code, item.last_error_code):
        _assert_clean(stored, 64)
        assert stored.startswith("C" * 30)
        assert f"[truncated {len(code) - stored.index('…'):,} chars]" in stored


@pytest.mark.parametrize(
    ("message", "kept"),
    [
        pytest.param("x" * 10_000, "x" * 1000, id="10-kB"),
        pytest.param("500 body: <html>\x00\x00</html>", "500 body: <html></html>", id="nul-bytes"),
        pytest.param("a\x1b[2Jb\x07c\x7fd\x85e", "a[2Jbcde", id="control-chars"),
        pytest.param("bad \udcff\udcfe utf-8", "bad \ufffd\ufffd utf-8", id="lone-surrogates"),
        pytest.param(
            b"raw \xff\xc3( bytes".decode("utf-8", "surrogateescape"),
            "raw \ufffd\ufffd( bytes",
            id="invalid-utf8",
        ),
        pytest.param("line 1\r\nline 2\tend", "line 1\nline 2\tend", id="newlines-kept"),
    ],
)
def test_any_error_message_is_stored_clean_and_bounded(engine, message, kept):
    [attempt] = _started(engine, 1)
    record_outcome(engine, INVOICES, attempt, **_retry(_failure(message=message)))
    item, row = _rows(engine, attempt.item_id)
    assert item.status == "pending"
    for stored in (row.error_message, item.last_error_message):
        _assert_clean(stored, MAX_MESSAGE_LENGTH)
        assert stored.startswith(kept)


def test_a_secret_in_a_long_message_is_redacted_even_where_the_cut_falls(engine):
    attempts = _started(engine, 5)
    for attempt, at in zip(attempts, range(MAX_MESSAGE_LENGTH - 40, 3000, 10), strict=False):
        message = "e" * at + SECRET + " and more" * 500
        failure = _failure(message=message)
        record_outcome(engine, INVOICES, attempt, **_retry(failure), secrets=(SECRET,))
        item, row = _rows(engine, attempt.item_id)
        for stored in (row.error_message, item.last_error_message):
            _assert_clean(stored, MAX_MESSAGE_LENGTH)
            assert SECRET[:6] not in stored


def test_one_group_commit_takes_every_odd_outcome_at_once(engine):
    attempts = _started(engine, 4)
    odd = [
        _failure(code="C" * 100),
        _failure(message="nul \x00 here"),
        _failure(message="\udc80" * 50, code="\x00\x01"),
        _failure(message=f"token={SECRET}"),
    ]
    outcomes = [
        (a, {k: v for k, v in _retry(f).items() if k != "owner"})
        for a, f in zip(attempts, odd, strict=True)
    ]
    with engine.begin() as conn:
        moved = record_many(conn, INVOICES, outcomes, owner=OWNER)
    assert moved == [True] * 4
    for attempt in attempts:
        item, row = _rows(engine, attempt.item_id)
        assert (item.status, row.outcome) == ("pending", "failure")
        _assert_clean(row.error_message, MAX_MESSAGE_LENGTH)
        _assert_clean(row.error_code, 64)
        assert SECRET not in row.error_message


# Identifiers: an issued number is never cut and never lost.


@pytest.mark.parametrize(
    "number",
    [
        pytest.param("1234567DI" + "9" * 91, id="100-chars"),
        pytest.param("1234567DI\x001763629200000", id="nul"),
        pytest.param("1234567DI\udc801763629200000", id="surrogate"),
    ],
)
def test_an_unstorable_fbr_number_holds_the_invoice_with_the_full_number(engine, number):
    [attempt] = _started(engine, 1)
    record_outcome(
        engine,
        INVOICES,
        attempt,
        owner=OWNER,
        now=NOW,
        new_status="submitted",
        fields={"fbr_invoice_number": number, "submitted_at": NOW},
    )
    item, row = _rows(engine, attempt.item_id)
    assert item.status == "needs_reconciliation"
    assert item.fbr_invoice_number is None
    assert item.submitted_at == NOW
    assert (item.lease_owner, row.outcome) == (None, "success")
    for text in (item.status_reason, row.error_message):
        _assert_clean(text, 10_000)
        literal = text.split("exactly as received: ", 1)[1]
        assert ast.literal_eval(literal) == number


def test_a_fitting_fbr_number_is_stored_exactly(engine):
    [attempt] = _started(engine, 1)
    number = "1234567DI" + "9" * 55  # 64 characters: the column's size
    record_outcome(
        engine,
        INVOICES,
        attempt,
        owner=OWNER,
        now=NOW,
        new_status="submitted",
        fields={"fbr_invoice_number": number, "submitted_at": NOW},
    )
    item, row = _rows(engine, attempt.item_id)
    assert (item.status, item.fbr_invoice_number, item.status_reason) == ("submitted", number, None)
    assert row.error_message is None


# The writer: a group that still fails is written one by one.


async def _through_writer(engine, item_ids, outcomes):
    writer = AttemptWriter(engine, INVOICES, owner=OWNER, run_id="run-1")
    started = await asyncio.gather(*(writer.start(i, NOW) for i in item_ids))
    results = await asyncio.gather(
        *(writer.record(a, **kw) for a, kw in zip(started, outcomes, strict=True)),
        return_exceptions=True,
    )
    return writer, started, results


def _outcome(failure: Failure | None = None, **kw) -> dict:
    if failure is None:
        return {"now": NOW, "new_status": "submitted", **kw}
    base = {k: v for k, v in _retry(failure).items() if k != "owner"}
    return base | kw


def _refuse_poison(monkeypatch):
    """The database refuses any group holding a message with POISON (as it would a value no
    cleaning foresaw); the rest of the writer and store run for real."""
    real = writer_module.record_many
    calls = []

    def record(conn, queue, outcomes, *, owner):
        if outcomes:
            calls.append(len(outcomes))
        if any("POISON" in (kw.get("failure") or _failure()).message for _, kw in outcomes):
            raise DataError("UPDATE invoice_attempts ...", {}, Exception("refused"))
        return real(conn, queue, outcomes, owner=owner)

    monkeypatch.setattr(writer_module, "record_many", record)
    return calls


def test_one_bad_outcome_in_a_flush_costs_only_itself(engine, monkeypatch):
    calls = _refuse_poison(monkeypatch)
    ids = _claimed(engine, 4)
    outcomes = [
        _outcome(_failure(message="first", code="E1")),
        _outcome(_failure(message="POISON " + "p" * 50, code="E2")),
        _outcome(fields={"fbr_invoice_number": "1234567DI1", "submitted_at": NOW}),
        _outcome(_failure(message="fourth", code="E4")),
    ]
    writer, _, results = asyncio.run(_through_writer(engine, ids, outcomes))
    assert results == [True, True, True, True]
    assert writer.flushes == 2  # the starts, then the records: one group each
    assert calls == [4, 1, 1, 1, 1, 1]  # the group, each op alone, POISON once more with safe texts

    good = {i: _rows(engine, i) for i in (ids[0], ids[2], ids[3])}
    for i, message, code in ((ids[0], "first", "E1"), (ids[3], "fourth", "E4")):
        item, row = good[i]
        assert (item.status, item.last_error_message, item.last_error_code) == (
            "pending",
            message,
            code,
        )
        assert (row.outcome, row.error_message, row.error_code) == ("failure", message, code)
        assert (row.http_status, row.run_id, row.owner) == (500, "run-1", OWNER)
        assert item.next_attempt_at == NOW + timedelta(minutes=1)
    item, row = good[ids[2]]
    assert (item.status, item.fbr_invoice_number, row.outcome) == (
        "submitted",
        "1234567DI1",
        "success",
    )

    item, row = _rows(engine, ids[1])
    assert item.status == "pending"  # moved as decided: the attempt is closed, nothing is lost
    assert row.outcome == "failure"
    assert row.error_type == "TRANSIENT"
    assert row.error_code is None
    assert row.error_message.startswith("outcome could not be stored as received (DataError)")
    assert "POISON" not in row.error_message
    assert item.last_error_message == row.error_message
    assert item.status_reason == row.error_message
    assert item.lease_owner is None


def test_a_bad_success_keeps_its_issued_values_in_the_note_and_is_held(engine):
    ids = _claimed(engine, 2)
    outcomes = [
        _outcome(fields={"fbr_invoice_number": "1234567DI7", "submitted_at": "yesterday"}),
        _outcome(_failure(message="fine")),
    ]
    _, _, results = asyncio.run(_through_writer(engine, ids, outcomes))
    assert results == [True, True]
    item, row = _rows(engine, ids[0])
    assert item.status == "needs_reconciliation"
    assert item.fbr_invoice_number is None
    assert "fbr_invoice_number='1234567DI7'" in item.status_reason
    assert row.outcome == "success"
    assert row.error_message == item.status_reason
    assert _rows(engine, ids[1])[0].status == "pending"


def test_an_outcome_that_cannot_be_stored_even_safely_fails_alone(engine):
    ids = _claimed(engine, 3)
    naive = datetime(2026, 1, 5, 12, 0)  # refused by the column type, whatever the texts
    outcomes = [
        _outcome(_failure(message="one")),
        _outcome(_failure(message="two"), fields={"submitted_at": naive}),
        _outcome(_failure(message="three")),
    ]
    _, _, results = asyncio.run(_through_writer(engine, ids, outcomes))
    assert (results[0], results[2]) == (True, True)
    assert isinstance(results[1], Exception)
    assert "naive datetime" in str(results[1])
    assert _rows(engine, ids[0])[0].status == "pending"
    assert _rows(engine, ids[2])[0].status == "pending"
    item, row = _rows(engine, ids[1])
    assert (item.status, row.outcome) == ("processing", "in_flight")  # the sweep settles it


def test_an_unreachable_database_fails_the_group_without_row_by_row_retries(engine, monkeypatch):
    calls = []

    def down(conn, queue, outcomes, *, owner):
        if not outcomes:
            return []
        calls.append(len(outcomes))
        raise OperationalError("UPDATE ...", {}, Exception("server closed the connection"))

    ids = _claimed(engine, 3)

    async def run():
        writer = AttemptWriter(engine, INVOICES, owner=OWNER)
        started = await asyncio.gather(*(writer.start(i, NOW) for i in ids))
        monkeypatch.setattr(writer_module, "record_many", down)
        return await asyncio.gather(
            *(writer.record(a, **_outcome(_failure())) for a in started),
            return_exceptions=True,
        )

    results = asyncio.run(run())
    assert calls == [3]
    assert all(isinstance(r, OperationalError) for r in results)


# Other writers of text.


def test_pause_reasons_are_clean_bounded_and_free_of_secrets(engine):
    reason = f"429 from FBR: key={SECRET} \x00" + "r" * 10_000
    until = NOW + timedelta(minutes=5)
    pauses.pause(engine, "fbr", until=until, reason=reason, now=NOW, secrets=(SECRET,))
    pause = pauses.current_pause(engine, "fbr", now=NOW)
    assert pause.until == until
    _assert_clean(pause.reason, TEXT_LIMIT)
    assert pause.reason.startswith(f"429 from FBR: key={REDACTED} r")
    assert SECRET not in pause.reason


def test_breaker_reasons_are_clean_and_bounded(engine):
    from retry_pipelines.domain.breaker import BreakerConfig
    from retry_pipelines.store import breakers

    config = BreakerConfig(failure_threshold=2, failure_rate=0.0, cooldown_seconds=60, probes=1)
    message = "503 \x00 body " + "b\udc80" * 5000
    for _ in range(20):  # enough to trip, by count or by failures in a row
        breakers.finished(
            engine, "fbr", config, error_type=ErrorType.TRANSIENT, message=message, now=NOW
        )
    changes = breakers.changes(engine, gateway="fbr")
    assert [(c.from_state, c.to_state) for c in changes][:1] == [("closed", "open")]
    for change in changes:
        _assert_clean(change.reason, TEXT_LIMIT)
    _assert_clean(breakers.current(engine, "fbr").reason, TEXT_LIMIT)


def test_audit_rows_and_status_reasons_are_clean_and_bounded(engine, monkeypatch):
    monkeypatch.delenv("RETRY_PIPELINES_ADMIN_IDS", raising=False)
    [dead] = insert_invoices(engine, 1, now=NOW, status="dead")
    with engine.begin() as conn:
        conn.execute(update(tables.invoices).values(last_error_code="E"))
    actor = Actor("ops-" + "a" * 300, "data fixed \x00 password=hunter2hunter2 " + "w" * 9000)
    assert requeue_dead_invoices(engine, actor, now=NOW, error_code="E\x00") == [dead]
    with engine.connect() as conn:
        audit = conn.execute(select(tables.admin_audit)).one()
        reason = conn.execute(select(tables.invoices.c.status_reason)).scalar_one()
    _assert_clean(audit.reason, TEXT_LIMIT)
    _assert_clean(audit.admin_id, 128)
    assert "hunter2hunter2" not in audit.reason
    assert audit.details == {"error_code": "E", "error_type": None}
    _assert_clean(reason, MAX_MESSAGE_LENGTH)
    assert reason.startswith("requeued by ops-aaa")


def test_an_operator_given_fbr_number_that_does_not_fit_is_refused(engine, monkeypatch):
    monkeypatch.delenv("RETRY_PIPELINES_ADMIN_IDS", raising=False)
    [held] = insert_invoices(engine, 1, now=NOW, status="needs_reconciliation")
    with pytest.raises(AdminError, match="100 characters; the column holds 64"):
        resolve_held_invoice(
            engine,
            Actor("ops", "found on IRIS"),
            invoice_id=held,
            action="mark_submitted",
            now=NOW,
            fbr_invoice_number="7" * 100,
        )
    assert _rows_status(engine) == {held: "needs_reconciliation"}


def _rows_status(engine):
    with engine.connect() as conn:
        return dict(conn.execute(select(tables.invoices.c.id, tables.invoices.c.status)).all())


def test_long_lock_owners_still_release_and_long_keys_are_refused(engine):
    owner = "host-" + "o" * 300
    holder = locks.acquire(
        engine, "payout-cycle:c1", owner=owner, now=NOW, ttl=timedelta(minutes=1)
    )
    assert len(holder.owner) <= 128
    assert locks.holder(engine, "payout-cycle:c1", now=NOW).owner == holder.owner
    assert locks.release(engine, "payout-cycle:c1", owner=owner)
    with pytest.raises(UnstorableIdentifier, match="lock_key"):
        locks.acquire(engine, "k" * 200, owner="o", now=NOW, ttl=timedelta(minutes=1))


def test_report_rows_are_clean_and_bounded(engine):
    day = date(2026, 1, 5)
    frame = pd.DataFrame(
        [
            {
                "day": day,
                "gateway": "fbr",
                "error_type": "TRANSIENT",
                "error_code": "C" * 100,
                "failures": 3,
                "share": 1.0,
                "top_message": "top \x00 message " + "m" * 10_000,
                "top_message_count": 2,
            }
        ],
        columns=list(COLUMNS),
    )
    assert write_report(engine, ERRORS_REPORT, frame, day, day + timedelta(days=1), now=NOW) == {
        day: 1
    }
    [row] = read_report(engine, ERRORS_REPORT, day, day + timedelta(days=1)).to_dict("records")
    _assert_clean(row["error_code"], 64)
    _assert_clean(row["top_message"], MAX_MESSAGE_LENGTH)
    assert row["top_message"].startswith("top  message m")


def test_legacy_codes_cut_to_one_key_are_merged_in_the_error_report(sqlite_engine):
    # SQLite kept any length before the boundary existed; PostgreSQL never could.
    engine = sqlite_engine
    ids = insert_invoices(engine, 2, now=NOW)
    rows = [
        {
            "invoice_id": item_id,
            "attempt_number": 1,
            "started_at": NOW,
            "finished_at": NOW,
            "outcome": "failure",
            "error_type": "VALIDATION",
            "error_code": "X" * 80 + suffix,
            "error_message": f"bad {suffix}",
        }
        for item_id, suffix in zip(ids, "ab", strict=True)
    ]
    with engine.begin() as conn:
        conn.execute(insert(tables.invoice_attempts), rows)
    report = error_distribution(engine, NOW.date(), NOW.date() + timedelta(days=1))
    [row] = report.to_dict("records")
    assert (row["failures"], row["share"], row["top_message_count"]) == (2, 1.0, 1)
    assert len(row["error_code"]) <= 64
    assert row["top_message"] == "bad a"


def test_payout_item_errors_are_clean_and_bounded(engine):
    item = PayoutItem("payee@example.com", "10.00", "USD", "inv-1")
    batch = record_batch(engine, cycle_id="c1", items=[item], now=NOW)
    with engine.begin() as conn:
        conn.execute(
            update(tables.payout_batches).values(status="submitted", paypal_batch_id="PB1")
        )

    class Client:
        async def get_batch(self, batch_id):
            return {
                "batch_header": {"batch_status": "SUCCESS"},
                "items": [
                    {
                        "payout_item": {"sender_item_id": "inv-1"},
                        "transaction_status": "FAILED",
                        "payout_item_id": "PI1",
                        "errors": {"name": "N" * 100, "message": "bad\x00" * 3000},
                    }
                ],
            }

        async def get_item(self, item_id):
            raise AssertionError("a FAILED item is final: not polled again")

    asyncio.run(reconcile(engine, Client(), now=NOW))
    with engine.connect() as conn:
        row = conn.execute(
            select(tables.payout_items).where(tables.payout_items.c.batch_id == batch.id)
        ).one()
    assert row.status == "FAILED"
    _assert_clean(row.error_name, 64)
    _assert_clean(row.error_message, MAX_MESSAGE_LENGTH)
    assert row.error_message.startswith("badbadbad")


def test_intake_refuses_a_payload_the_database_cannot_hold_and_queues_the_good_one(engine):
    good = invoice_payload(random.Random(1), 1, seller_ntn="1234567", error=None)
    bad = invoice_payload(random.Random(2), 2, seller_ntn="1234567", error=None)
    bad["buyerBusinessName"] = "Acme\x00 Traders"
    bad["items"][0]["productDescription"] = "widget \udc80"
    result = enqueue_invoices(engine, [("GOOD-1", good), ("BAD-1", bad)], now=NOW)
    assert list(result.queued) == ["GOOD-1"]
    [refusal] = result.refused
    assert refusal.reference == "BAD-1"
    assert "$.buyerBusinessName" in str(refusal)
    assert "$.items[0].productDescription" in str(refusal)
    assert _rows_status(engine) == {result.queued["GOOD-1"]: "pending"}
