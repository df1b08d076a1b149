"""With RETRY_PIPELINES_ADMIN_IDS set, only those ids may act, in every admin job and in retention;
an allowed id's action is audited with its run id, a refused one changes and audits nothing."""

from datetime import UTC, datetime

import dagster as dg
import pytest
from sqlalchemy import select, update

from retry_pipelines.defs.fbr.admin import requeue_dead_invoices, resolve_held_invoice
from retry_pipelines.defs.paypal.admin import (
    manual_retry_payout_batch,
    override_payout_batch_status,
)
from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.reports.retention import prune_attempt_history
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.actor import ADMIN_ALLOWLIST_ENV, Actor, AdminError, parse_allowlist
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.store import tables
from retry_pipelines_tests.support.factories import insert_invoices

REASON = "checked with the finance team"


def _jobs(invoice_id: int, batch_id: int):
    """(job, op, config without admin_id) for each admin job."""
    return [
        (
            requeue_dead_invoices,
            "requeue_matching_dead_invoices",
            {"reason": REASON, "error_code": "0052", "dry_run": False},
        ),
        (
            resolve_held_invoice,
            "resolve_one_held_invoice",
            {"invoice_id": invoice_id, "action": "abandon", "reason": REASON},
        ),
        (
            override_payout_batch_status,
            "override_one_payout_batch",
            {"batch_id": batch_id, "new_status": "canceled", "reason": REASON},
        ),
        (
            manual_retry_payout_batch,
            "retry_one_payout_batch",
            {"batch_id": batch_id, "reason": REASON},
        ),
        (prune_attempt_history, "prune_old_attempts", {"keep_days": 1}),
    ]


def _audit_rows(engine):
    with engine.connect() as conn:
        return conn.execute(
            select(tables.admin_audit.c.admin_id, tables.admin_audit.c.run_id)
        ).all()


def test_ids_outside_the_allowlist_are_refused_by_every_admin_job(
    sqlite_url, sqlite_engine, monkeypatch
):
    monkeypatch.setenv(ADMIN_ALLOWLIST_ENV, "ops-amna, finance-sara")
    now = datetime.now(UTC)
    dead, held = insert_invoices(sqlite_engine, 2, now=now)
    batch_id = record_batch(
        sqlite_engine,
        cycle_id="c-9",
        items=[PayoutItem("a@example.com", "1.00", "USD", "i1")],
        now=now,
    ).id
    with sqlite_engine.begin() as conn:
        t = tables.invoices
        conn.execute(update(t).where(t.c.id == dead).values(status="dead", last_error_code="0052"))
        conn.execute(update(t).where(t.c.id == held).values(status="needs_reconciliation"))
        conn.execute(update(tables.payout_batches).values(status="dead"))
    # The refusal comes before any call: the PayPal resource points nowhere.
    paypal = PaypalResource(base_url="http://127.0.0.1:9", client_id="c", client_secret="s")
    resources = {"db": DatabaseResource(url=sqlite_url), "paypal": paypal}

    for job, op, config in _jobs(held, batch_id):
        result = job.execute_in_process(
            run_config={"ops": {op: {"config": {**config, "admin_id": "mallory"}}}},
            resources=resources,
            raise_on_error=False,
        )
        assert not result.success, job.name
        [failure] = [
            e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        cause = failure.step_failure_data.error.cause
        assert cause.cls_name == "AdminError"
        assert (
            f"'mallory' is not allowed to act: it is not in {ADMIN_ALLOWLIST_ENV}" in cause.message
        )
    assert _audit_rows(sqlite_engine) == []
    with sqlite_engine.connect() as conn:
        states = dict(conn.execute(select(tables.invoices.c.id, tables.invoices.c.status)).all())
        batch = conn.execute(select(tables.payout_batches.c.status)).scalar_one()
    assert states == {dead: "dead", held: "needs_reconciliation"}
    assert batch == "dead"

    allowed = requeue_dead_invoices.execute_in_process(
        run_config={
            "ops": {
                "requeue_matching_dead_invoices": {
                    "config": {**_jobs(held, batch_id)[0][2], "admin_id": "finance-sara"}
                }
            }
        },
        resources=resources,
    )
    assert allowed.output_for_node("requeue_matching_dead_invoices") == [dead]
    assert _audit_rows(sqlite_engine) == [("finance-sara", allowed.run_id)]


@pytest.mark.parametrize(
    ("allowlist", "admin_id", "refusal"),
    [
        (None, "anyone", None),
        ("", "anyone", "names no admin id"),
        (" , ", "x", "names no admin id"),
        ("a,b", "b", None),
        ("a,b", "c", "not allowed"),
        ("a", " a ", None),
    ],
)
def test_allowlist_parsing(monkeypatch, allowlist, admin_id, refusal):
    """The resource reads the variable when an admin op names its actor; the engine only checks
    the ids it is handed."""
    if allowlist is None:
        monkeypatch.delenv(ADMIN_ALLOWLIST_ENV, raising=False)
    else:
        monkeypatch.setenv(ADMIN_ALLOWLIST_ENV, allowlist)
    db = DatabaseResource(url="sqlite://")
    if refusal is None:
        db.actor(admin_id, REASON)
    else:
        with pytest.raises(AdminError, match=refusal):
            db.actor(admin_id, REASON)


@pytest.mark.parametrize(
    ("admin_ids", "admin_id", "refusal"),
    [("a,b", "b", None), ("a,b", "c", "not allowed"), ("", "a", "names no admin id")],
)
def test_the_resource_setting_wins_over_the_environment(monkeypatch, admin_ids, admin_id, refusal):
    monkeypatch.setenv(ADMIN_ALLOWLIST_ENV, "someone-else")
    db = DatabaseResource(url="sqlite://", admin_ids=admin_ids)
    if refusal is None:
        assert db.actor(admin_id, REASON).admin_id == admin_id
    else:
        with pytest.raises(AdminError, match=refusal):
            db.actor(admin_id, REASON)


def test_the_engine_checks_only_the_allowlist_it_is_handed(monkeypatch):
    monkeypatch.setenv(ADMIN_ALLOWLIST_ENV, "nobody")
    assert Actor("anyone", REASON).allowed is None  # the environment is not the engine's
    with pytest.raises(AdminError, match="not allowed"):
        Actor("anyone", REASON, allowed=parse_allowlist("ops-amna"))
