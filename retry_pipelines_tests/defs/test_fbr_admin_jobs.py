"""The operator jobs run from the launchpad: typed config, audited with the Dagster run id."""

from datetime import UTC, datetime

import dagster as dg
from sqlalchemy import select, update

from retry_pipelines.defs.fbr.admin import requeue_dead_invoices, resolve_held_invoice
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.store import tables
from retry_pipelines_tests.support.factories import insert_invoices


def _config(op, **values):
    return {"ops": {op: {"config": values}}}


def test_requeue_job_dry_run_then_for_real(sqlite_url, sqlite_engine):
    ids = insert_invoices(sqlite_engine, 3, now=datetime.now(UTC))
    with sqlite_engine.begin() as conn:
        conn.execute(update(tables.invoices).values(status="dead", last_error_code="0052"))
    resources = {"db": DatabaseResource(url=sqlite_url)}
    base = {"admin_id": "ops-bilal", "reason": "sale types corrected", "error_code": "0052"}
    dry = requeue_dead_invoices.execute_in_process(
        run_config=_config("requeue_matching_dead_invoices", **base), resources=resources
    )
    assert dry.output_for_node("requeue_matching_dead_invoices") == ids
    real = requeue_dead_invoices.execute_in_process(
        run_config=_config("requeue_matching_dead_invoices", **base, dry_run=False),
        resources=resources,
    )
    assert real.output_for_node("requeue_matching_dead_invoices") == ids
    with sqlite_engine.connect() as conn:
        statuses = set(conn.execute(select(tables.invoices.c.status)).scalars())
        runs = set(conn.execute(select(tables.admin_audit.c.run_id)).scalars())
    assert statuses == {"pending"}
    assert runs == {real.run_id}


def test_resolve_job_refuses_an_invoice_that_is_not_held(sqlite_url, sqlite_engine):
    [item] = insert_invoices(sqlite_engine, 1, now=datetime.now(UTC))
    result = resolve_held_invoice.execute_in_process(
        run_config=_config(
            "resolve_one_held_invoice",
            invoice_id=item,
            action="release",
            admin_id="ops-bilal",
            reason="checked on IRIS: no number",
        ),
        resources={"db": DatabaseResource(url=sqlite_url)},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    error = failure.step_failure_data.error
    assert error.cause.cls_name == "AdminError"
    assert "is pending, not needs_reconciliation" in error.cause.message
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(tables.admin_audit)).all() == []
