"""Alerts that need a person, on real runs of the jobs against a real receiver that verifies each
signature: items a run left held or dead, a gateway paused for refused credentials (and the run
that met it failing), reconcile leaving payout items unresolved. Each is sent once."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import update

from retry_pipelines.alerts import Alert
from retry_pipelines.defs.alerts.attention import (
    THRESHOLD_ENV,
    UI_URL_ENV,
    _paired,
    attention_alert_sensor,
    finished_runs,
)
from retry_pipelines.defs.alerts.pause_alerts import gateway_pause_alert_sensor
from retry_pipelines.defs.alerts.resources import SECRET_ENV, URL_ENV
from retry_pipelines.defs.maintenance.stuck_locks import release_stuck_locks
from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.paypal.retry import reconcile_payout_batches
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.paypal.reconcile import ITEM_POLL_WINDOW
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.store import claims, pauses, tables
from retry_pipelines.store.attempts import start_attempt
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.queues import INVOICES
from retry_pipelines_tests.support.alert_receiver import SECRET, running_receiver
from retry_pipelines_tests.support.attention_alerts import (
    NOT_CONFIGURED,
    PLANTED,
    UI,
)
from retry_pipelines_tests.support.attention_alerts import fbr_run as _fbr_run
from retry_pipelines_tests.support.attention_alerts import raw as _raw
from retry_pipelines_tests.support.attention_alerts import refusing as _refusing
from retry_pipelines_tests.support.attention_alerts import tick as _tick
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.paypal import CLIENT_ID, CLIENT_SECRET, running_paypal
from retry_pipelines_tests.support.scripted import accepted, scripted_gateway


def test_a_run_that_left_items_held_and_dead_alerts_once(db_url, instance, receiver):
    engine = make_engine(db_url)
    insert_invoices(engine, 4, now=datetime.now(UTC) - timedelta(minutes=1))
    with scripted_gateway(_refusing) as (url, _):
        result = _fbr_run(instance, db_url, url)
    assert result.success
    # A secret the run never knew, stored in an error code: the alert must not carry it.
    with engine.begin() as conn:
        conn.execute(
            update(tables.invoice_attempts)
            .where(tables.invoice_attempts.c.error_code == "0052")
            .values(error_code=f"0052 {PLANTED}")
        )
    engine.dispose()

    outcome, cursor = _tick(attention_alert_sensor, instance, db_url)
    assert outcome.skip_message == "1 attention alert(s) sent; 1 ended run(s) read"
    [alert] = receiver.accepted
    run_id = result.run_id
    assert alert["id"] == f"attention:{run_id}"
    assert alert["kind"] == "items_need_attention"
    assert alert["subject"] == "3 item(s) held or dead after a retry_failed_invoices run"
    details = alert["details"]
    assert details["counts"] == {"fbr": {"dead": 2, "needs_reconciliation": 1}}
    assert details["worklist_url"] == f"{UI}/assets/operator_worklist"
    assert details["run_url"] == f"{UI}/runs/{run_id}"
    assert (details["job_name"], details["run_status"]) == ("retry_failed_invoices", "SUCCESS")
    listed = {(i["status"], i["last_error_type"], i["last_error_code"]) for i in details["items"]}
    assert listed == {
        ("dead", "VALIDATION", "0052 [REDACTED]"),
        ("needs_reconciliation", "UNKNOWN", "BAD_JSON"),
    }
    assert {i["reference"] for i in details["items"]} <= {f"INV-{n:07d}" for n in range(4)}
    assert (details["total"], details["not_listed"], len(details["items"])) == (3, 0, 3)
    assert alert["summary"].startswith(
        f"Run {run_id} of retry_failed_invoices left fbr: 2 dead, 1 held for reconciliation. "
    )
    assert f"open the worklist at {UI}/assets/operator_worklist" in alert["summary"]
    assert PLANTED not in _raw(receiver)
    assert SECRET not in _raw(receiver)

    again, same = _tick(attention_alert_sensor, instance, db_url, cursor)
    assert again.skip_message == "no run ended since the last tick"
    assert same == cursor
    assert len(receiver.raw) == 1, "sent once"


def test_a_run_that_left_nothing_for_a_person_sends_nothing(sqlite_url, instance, receiver):
    with scripted_gateway(lambda i, p: accepted(f"N{i}")) as (url, _):
        insert_invoices(make_engine(sqlite_url), 2, now=datetime.now(UTC))
        assert _fbr_run(instance, sqlite_url, url).success
    outcome, cursor = _tick(attention_alert_sensor, instance, sqlite_url)
    assert outcome.skip_message == "0 attention alert(s) sent; 1 ended run(s) read"
    assert cursor is not None
    assert receiver.raw == []


def test_items_the_lease_sweep_held_are_alerted_for_the_sweeping_run(
    sqlite_url, sqlite_engine, instance, receiver
):
    past = datetime.now(UTC) - timedelta(hours=1)
    held, _returned = insert_invoices(sqlite_engine, 2, now=past)
    lease = timedelta(minutes=1)
    claims.claim(
        sqlite_engine, INVOICES, owner="gone", limit=2, now=past, max_attempts=9, lease=lease
    )
    start_attempt(sqlite_engine, INVOICES, held, owner="gone", now=past, run_id="crashed-run")
    result = release_stuck_locks.execute_in_process(
        resources={"db": DatabaseResource(url=sqlite_url)}, instance=instance
    )
    assert result.success

    _tick(attention_alert_sensor, instance, sqlite_url)
    [alert] = receiver.accepted
    assert alert["id"] == f"attention:{result.run_id}"
    assert alert["details"]["counts"] == {"fbr": {"needs_reconciliation": 1}}
    [item] = alert["details"]["items"]
    assert (item["id"], item["reference"], item["last_outcome"]) == (
        held,
        "INV-0000000",
        "interrupted",
    )


def _unresolved_batch(engine, n: int, items: int, completed: datetime | None = None) -> None:
    """A batch PayPal completed 40 days ago (or at ``completed``) whose ``items`` payees never
    claimed the money."""
    payees = [PayoutItem(f"p{n}-{i}@example.com", "5.00", "USD", f"u{n}-{i}") for i in range(items)]
    batch = record_batch(engine, cycle_id=f"old-cycle-{n}", items=payees, now=datetime.now(UTC))
    with engine.begin() as conn:
        b, t = tables.payout_batches, tables.payout_items
        completed = completed or datetime.now(UTC) - timedelta(days=40)
        conn.execute(
            update(b).where(b.c.id == batch.id).values(status="completed", completed_at=completed)
        )
        conn.execute(
            update(t)
            .where(t.c.batch_id == batch.id)
            .values(status="UNCLAIMED", payout_item_id=f"PI-{n}")
        )


def _reconcile(instance, db_url):
    with running_paypal() as (server, _):
        paypal = PaypalResource(
            base_url=server.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        )
        result = reconcile_payout_batches.execute_in_process(
            resources={"db": DatabaseResource(url=db_url), "paypal": paypal}, instance=instance
        )
    assert result.success
    return result


def test_reconcile_leaving_items_unresolved_alerts_once_per_run(
    db_url, instance, receiver, monkeypatch
):
    engine = make_engine(db_url)
    _unresolved_batch(engine, 1, items=2)
    engine.dispose()
    result = _reconcile(instance, db_url)

    outcome, cursor = _tick(attention_alert_sensor, instance, db_url)
    assert outcome.skip_message == "1 attention alert(s) sent; 1 ended run(s) read"
    [alert] = receiver.accepted
    assert alert["id"] == f"reconcile-unresolved:{result.run_id}"
    assert alert["kind"] == "reconcile_unresolved"
    assert alert["subject"] == "2 payout item(s) still not final after 31 days"
    details = alert["details"]
    assert (details["items_unresolved"], details["threshold"]) == (2, 0)
    assert [(i["sender_item_id"], i["status"]) for i in details["items"]] == [
        ("u1-0", "UNCLAIMED"),
        ("u1-1", "UNCLAIMED"),
    ]
    assert "repay_payout_batch" in alert["summary"]
    assert _tick(attention_alert_sensor, instance, db_url, cursor)[0].skip_message == (
        "no run ended since the last tick"
    )

    monkeypatch.setenv(THRESHOLD_ENV, "2")  # not more than 2: no alert for the next run
    _reconcile(instance, db_url)
    outcome, cursor = _tick(attention_alert_sensor, instance, db_url, cursor)
    assert outcome.skip_message == "0 attention alert(s) sent; 1 ended run(s) read"
    assert len(receiver.raw) == 1

    # Over the threshold again, but the same items: they were alerted on already.
    monkeypatch.delenv(THRESHOLD_ENV)
    previous = _reconcile(instance, db_url)
    outcome, cursor = _tick(attention_alert_sensor, instance, db_url, cursor)
    assert outcome.skip_message == "0 attention alert(s) sent; 1 ended run(s) read"
    # A batch whose polling window ended after that run started: the next run alerts on it alone.
    started = datetime.fromtimestamp(instance.get_run_record_by_id(previous.run_id).start_time, UTC)
    engine = make_engine(db_url)
    _unresolved_batch(
        engine, 2, items=1, completed=started - ITEM_POLL_WINDOW + timedelta(milliseconds=1)
    )
    engine.dispose()
    result = _reconcile(instance, db_url)
    _tick(attention_alert_sensor, instance, db_url, cursor)
    alert = receiver.accepted[-1]
    assert (len(receiver.raw), alert["id"]) == (2, f"reconcile-unresolved:{result.run_id}")
    assert alert["details"]["items_unresolved"] == 3
    assert [i["sender_item_id"] for i in alert["details"]["items"]] == ["u2-0"]


@pytest.mark.parametrize(
    ("name", "value"),
    [(THRESHOLD_ENV, "-1"), (THRESHOLD_ENV, "many"), (UI_URL_ENV, "dagster.internal:3000")],
)
def test_a_bad_setting_makes_the_sensor_skip_naming_it(
    sqlite_url, instance, receiver, monkeypatch, name, value
):
    monkeypatch.setenv(name, value)
    _unresolved_batch(make_engine(sqlite_url), 1, items=1)
    _reconcile(instance, sqlite_url)
    outcome, cursor = _tick(attention_alert_sensor, instance, sqlite_url)
    assert outcome.skip_message.startswith(f"{name} must be ")
    assert repr(value) in outcome.skip_message
    assert cursor is None
    assert receiver.raw == []


def test_nothing_is_sent_while_the_webhook_is_unset(
    sqlite_url, sqlite_engine, instance, monkeypatch
):
    with running_receiver() as (_, receiver):
        for name in (URL_ENV, SECRET_ENV):
            monkeypatch.delenv(name, raising=False)
        _unresolved_batch(sqlite_engine, 1, items=1)
        _reconcile(instance, sqlite_url)
        until = datetime.now(UTC) + timedelta(minutes=15)
        pauses.pause(sqlite_engine, "fbr", until=until, reason="TOKEN_EXPIRED 401: x", now=until)
        for sensor in (attention_alert_sensor, gateway_pause_alert_sensor):
            outcome, cursor = _tick(sensor, instance, sqlite_url)
            assert (outcome.skip_message, cursor) == (NOT_CONFIGURED, None)
    assert receiver.raw == []


# -- the per-run sensor's reading and cursor -------------------------------------------------------


@dg.op
def works():
    return 1


@dg.op
def breaks():
    raise RuntimeError("boom")


@dg.job
def ok_job():
    works()


@dg.job
def bad_job():
    breaks()


def test_ended_runs_are_read_in_order_across_success_and_failure(instance):
    ran = [
        job.execute_in_process(instance=instance, raise_on_error=False).run_id
        for job in (ok_job, ok_job, bad_job, ok_job, bad_job, bad_job, ok_job)
    ]
    seen, after = [], None
    while records := finished_runs(instance, after, None, limit=1):
        seen += [r.event_log_entry.run_id for r in records]
        after = records[-1].storage_id
    assert seen == ran


def test_an_undelivered_alert_is_sent_by_the_next_tick_once(
    sqlite_url, sqlite_engine, instance, receiver
):
    past = datetime.now(UTC) - timedelta(hours=1)
    [held] = insert_invoices(sqlite_engine, 1, now=past)
    lease = timedelta(minutes=1)
    claims.claim(
        sqlite_engine, INVOICES, owner="gone", limit=1, now=past, max_attempts=9, lease=lease
    )
    start_attempt(sqlite_engine, INVOICES, held, owner="gone", now=past, run_id="crashed-run")
    ok_job.execute_in_process(instance=instance)  # ends first: nothing for a person
    run = release_stuck_locks.execute_in_process(
        resources={"db": DatabaseResource(url=sqlite_url)}, instance=instance
    )
    receiver.answers[:] = [400]

    outcome, cursor = _tick(attention_alert_sensor, instance, sqlite_url)
    assert outcome.skip_message.startswith(
        "0 alert(s) sent; 1 item(s) held or dead after a release_stuck_locks run: "
    )
    assert "HTTP 400" in outcome.skip_message
    assert cursor is not None, "the run before it was handled"
    assert receiver.accepted == []

    outcome, cursor = _tick(attention_alert_sensor, instance, sqlite_url, cursor)
    assert outcome.skip_message == "1 attention alert(s) sent; 1 ended run(s) read"
    assert [a["id"] for a in receiver.accepted] == [f"attention:{run.run_id}"]
    assert _tick(attention_alert_sensor, instance, sqlite_url, cursor)[0].skip_message == (
        "no run ended since the last tick"
    )


def test_a_run_with_two_alerts_keeps_the_cursor_before_it_until_the_last_is_sent():
    first, second = (
        Alert(f"a{n}", "reconcile_unresolved", "s", "s", datetime.now(UTC)) for n in (1, 2)
    )
    assert list(_paired([first, second], 41)) == [(40, first), (41, second)]
    assert list(_paired([], 41)) == [(41, None)]
