"""Admin actions are exact: concurrent runs change and audit each row once, FBR numbers are checked
(shape, and one number for one invoice), outputs serialise, a blank allowlist is refused."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select, update

from retry_pipelines.defs.fbr.admin import requeue_dead_invoices, resolve_held_invoice
from retry_pipelines.defs.paypal.admin import override_payout_batch_status
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.domain.fbr_reference import fbr_number_problem
from retry_pipelines.engine.actor import ADMIN_ALLOWLIST_ENV, Actor, AdminError
from retry_pipelines.engine.fbr import admin
from retry_pipelines.engine.paypal import admin as payout_admin
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.factories import insert_invoices
from retry_pipelines_tests.support.processes import run_at_barrier

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
REASON = "sale types corrected in the ERP"
SPEC_NUMBER = "7000007DI1747119701593"  # PRAL v1.12 sample, 22 characters
SANDBOX_NUMBER = "5419764DIZLLXVR750188"  # observed sandbox number, 21 alphanumeric characters


@pytest.fixture(autouse=True)
def _no_allowlist(monkeypatch):
    monkeypatch.delenv(ADMIN_ALLOWLIST_ENV, raising=False)


def _requeue_worker(url: str, admin_id: str, barrier, out: str) -> None:
    engine = make_engine(url)
    barrier.wait()
    ids = admin.requeue_dead_invoices(
        engine, Actor(admin_id, REASON), now=datetime.now(UTC), error_code="0052"
    )
    Path(out).write_text(json.dumps(ids))
    engine.dispose()


def _override_worker(url: str, batch_id: int, admin_id: str, barrier, out: str) -> None:
    engine = make_engine(url)
    barrier.wait()
    try:
        payout_admin.override_status(
            engine,
            Actor(admin_id, REASON),
            batch_id=batch_id,
            new_status="canceled",
            now=datetime.now(UTC),
        )
        result = "changed"
    except AdminError as exc:
        result = f"refused: {exc}"
    Path(out).write_text(result)
    engine.dispose()


def _race(target, args_for, tmp_path, processes=2):
    return run_at_barrier(target, [args_for(n) for n in range(processes)], tmp_path, timeout=120)


def _audits(engine):
    with engine.connect() as conn:
        return conn.execute(select(tables.admin_audit).order_by(tables.admin_audit.c.id)).all()


def _set(engine, ids, **values):
    with engine.begin() as conn:
        conn.execute(update(tables.invoices).where(tables.invoices.c.id.in_(ids)).values(values))


def test_two_processes_requeue_each_dead_invoice_once_with_one_audit_row(db_url, tmp_path):
    engine = make_engine(db_url)
    ids = insert_invoices(engine, 300, now=NOW, status="dead")
    _set(engine, ids, last_error_code="0052")
    outs = _race(_requeue_worker, lambda n: (db_url, f"ops-{n}"), tmp_path)
    per_run = [json.loads(o) for o in outs]
    requeued = Counter(i for run in per_run for i in run)
    assert set(requeued) == set(ids)
    assert max(requeued.values()) == 1, "an invoice was requeued by both runs"
    audits = _audits(engine)
    assert len(audits) == len(ids)
    assert Counter(int(a.entity_id) for a in audits) == Counter(ids)
    for n, run in enumerate(per_run):  # each run audits exactly what it reports
        assert sorted(int(a.entity_id) for a in audits if a.admin_id == f"ops-{n}") == run
    with engine.connect() as conn:
        statuses = set(conn.execute(select(tables.invoices.c.status)).scalars())
    assert statuses == {"pending"}
    engine.dispose()


def test_two_processes_override_one_batch_once_with_one_audit_row(db_url, tmp_path):
    engine = make_engine(db_url)
    items = [PayoutItem("a@example.com", "10.00", "USD", "p1")]
    batch = record_batch(engine, cycle_id="cycle-race", items=items, now=NOW)
    with engine.begin() as conn:
        conn.execute(update(tables.payout_batches).values(status="dead"))
    outs = _race(_override_worker, lambda n: (db_url, batch.id, f"ops-{n}"), tmp_path)
    assert sorted(o.split(":")[0] for o in outs) == ["changed", "refused"]
    assert len(_audits(engine)) == 1
    engine.dispose()


def test_requeue_reports_and_audits_only_what_it_changed(engine):
    ids = insert_invoices(engine, 3, now=NOW, status="dead")
    _set(engine, ids, last_error_code="0052")
    actor = Actor("ops-amna", REASON)
    assert admin.requeue_dead_invoices(engine, actor, now=NOW, error_code="0052") == ids
    assert admin.requeue_dead_invoices(engine, actor, now=NOW, error_code="0052") == []
    assert len(_audits(engine)) == 3


@pytest.mark.parametrize(
    "number",
    [SPEC_NUMBER, SANDBOX_NUMBER, "1234567DI1763629200000123456", f"{SPEC_NUMBER}-1"],
)
def test_numbers_fbr_issues_are_accepted(number):
    assert fbr_number_problem(number) is None


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("oops", "13..64 characters, this one 4"),
        ("1234567DI 123456789012", "not ' '"),
        ("1234567DI\t123456789012", r"not '\t'"),
        ("\u0661\u0662\u0663\u0664\u0665\u0666\u0667DI1747119701593", "ASCII letters"),
        ("1234567DI17471197015\u00e93", "ASCII letters"),
        ("-1234567DI17471197015", "only between"),
        ("ABCDEFGHIJKLMNOPQRSTU", "contains digits"),
        ("7" * 65, "13..64 characters"),
    ],
)
def test_bad_fbr_numbers_are_refused_and_change_nothing(engine, number, message):
    [held] = insert_invoices(engine, 1, now=NOW, status="needs_reconciliation")
    with pytest.raises(AdminError, match="fbr_invoice_number") as raised:
        admin.resolve_held_invoice(
            engine,
            Actor("ops-amna", "found on IRIS"),
            invoice_id=held,
            action="mark_submitted",
            now=NOW,
            fbr_invoice_number=number,
        )
    if len(number) <= 64:
        assert message in str(raised.value)
    with engine.connect() as conn:
        row = conn.execute(select(tables.invoices)).mappings().one()
    assert (row["status"], row["fbr_invoice_number"]) == ("needs_reconciliation", None)
    assert _audits(engine) == []


def test_a_number_recorded_for_another_invoice_is_refused(engine):
    first, second = insert_invoices(engine, 2, now=NOW, status="needs_reconciliation")
    actor = Actor("ops-amna", "found on IRIS")
    kwargs = {"action": "mark_submitted", "now": NOW, "fbr_invoice_number": SPEC_NUMBER}
    assert admin.resolve_held_invoice(engine, actor, invoice_id=first, **kwargs) == "submitted"
    with pytest.raises(AdminError, match=f"already recorded for invoice {first}"):
        admin.resolve_held_invoice(engine, actor, invoice_id=second, **kwargs)
    with engine.connect() as conn:
        rows = dict(conn.execute(select(tables.invoices.c.id, tables.invoices.c.status)).all())
    assert rows == {first: "submitted", second: "needs_reconciliation"}
    assert len(_audits(engine)) == 1


def test_resolve_returns_a_plain_string(engine):
    [held] = insert_invoices(engine, 1, now=NOW, status="needs_reconciliation")
    status = admin.resolve_held_invoice(
        engine, Actor("ops-amna", "no number on IRIS"), invoice_id=held, action="release", now=NOW
    )
    assert type(status) is str
    assert status == "pending"


def _config(op, **values):
    return {"ops": {op: {"config": values}}}


def test_resolve_job_succeeds_with_serialisable_metadata(sqlite_url, sqlite_engine):
    [held] = insert_invoices(sqlite_engine, 1, now=NOW, status="needs_reconciliation")
    result = resolve_held_invoice.execute_in_process(
        run_config=_config(
            "resolve_one_held_invoice",
            invoice_id=held,
            action="mark_submitted",
            fbr_invoice_number=SANDBOX_NUMBER,
            admin_id="ops-bilal",
            reason="found on IRIS",
        ),
        resources={"db": DatabaseResource(url=sqlite_url)},
    )
    assert result.success
    assert result.output_for_node("resolve_one_held_invoice") == "submitted"
    [output] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    metadata = {k: v.value for k, v in output.step_output_data.metadata.items()}
    assert metadata["new_status"] == "submitted"
    assert type(metadata["new_status"]) is str
    json.dumps(metadata)
    [audit] = _audits(sqlite_engine)
    assert (audit.run_id, audit.to_status) == (result.run_id, "submitted")


@pytest.mark.parametrize("value", ["", " ", " , ,"])
def test_a_blank_allowlist_refuses_every_admin_job(monkeypatch, sqlite_url, sqlite_engine, value):
    [dead] = insert_invoices(sqlite_engine, 1, now=NOW, status="dead")
    _set(sqlite_engine, [dead], last_error_code="0052")
    monkeypatch.setenv(ADMIN_ALLOWLIST_ENV, value)
    resources = {"db": DatabaseResource(url=sqlite_url)}
    result = requeue_dead_invoices.execute_in_process(
        run_config=_config(
            "requeue_matching_dead_invoices",
            admin_id="anyone",
            reason=REASON,
            error_code="0052",
            dry_run=False,
        ),
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "names no admin id" in failure.step_failure_data.error.cause.message
    override = override_payout_batch_status.execute_in_process(
        run_config=_config(
            "override_one_payout_batch",
            batch_id=1,
            new_status="canceled",
            admin_id="anyone",
            reason=REASON,
        ),
        resources=resources,
        raise_on_error=False,
    )
    assert not override.success
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(tables.invoices.c.status)).scalar_one() == "dead"
        assert conn.execute(select(func.count()).select_from(tables.admin_audit)).scalar() == 0
