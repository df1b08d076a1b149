"""The operator jobs run from the launchpad: typed config, audited with the Dagster run id."""

from datetime import UTC, datetime

import dagster as dg
import pytest
from sqlalchemy import select, update

from retry_pipelines.defs.fbr.admin import (
    RequeueDeadInvoicesConfig,
    ResolveHeldInvoiceConfig,
    requeue_dead_invoices,
    resolve_held_invoice,
)
from retry_pipelines.defs.fbr.settle import ResolveHeldInvoicesConfig
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
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
    assert failure.step_failure_data.user_failure_data.description == (
        f"invoice {item} is pending, not needs_reconciliation: nothing to resolve"
    )
    error = failure.step_failure_data.error
    assert error.cls_name == "Failure"
    assert error.cause.cls_name == "AdminError"
    assert error.cause.stack == []  # the refusal without the engine's frames
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(tables.admin_audit)).all() == []


REQUEUE = "requeue_matching_dead_invoices"
WHO = {"admin_id": "ops-bilal", "reason": "sale types corrected"}


def _failure(result):
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return failure.step_failure_data


def _output_metadata(result, op):
    [output] = [
        e
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_OUTPUT and e.step_key == op
    ]
    return output.step_output_data.metadata


def _dead(engine, count, **values):
    now = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    ids = insert_invoices(engine, count, now=now)
    with engine.begin() as conn:
        conn.execute(
            update(tables.invoices)
            .where(tables.invoices.c.id.in_(ids))
            .values(status="dead", last_attempt_at=now, attempt_count=4, **values)
        )
    return ids


def _statuses(engine):
    with engine.connect() as conn:
        t = tables.invoices
        return dict(conn.execute(select(t.c.id, t.c.status)).all())


def test_a_requeue_dry_run_with_no_filter_lists_every_dead_invoice(db_url):
    engine = make_engine(db_url)
    try:
        ids = _dead(
            engine,
            205,
            last_error_type="DATA",
            last_error_code="0052",
            last_error_message="sale type not allowed for this HS code " * 40,
        )
        [pending] = insert_invoices(engine, 1, now=datetime.now(UTC), start=900)
        before = _statuses(engine)
        result = requeue_dead_invoices.execute_in_process(
            run_config=_config(REQUEUE, **WHO),
            resources={"db": DatabaseResource(url=db_url)},
        )
        assert result.output_for_node(REQUEUE) == ids
        assert pending not in result.output_for_node(REQUEUE)
        metadata = _output_metadata(result, REQUEUE)
        figures = ("dry_run", "count", "dead_matching", "shown")
        assert {k: metadata[k].value for k in figures} == {
            "dry_run": True,
            "count": 205,
            "dead_matching": 205,
            "shown": 200,
        }
        records = [r.data for r in metadata["invoices"].records]
        assert len(records) == 200
        first = records[0]
        assert {k: first[k] for k in ("id", "reference", "error_type", "error_code")} == {
            "id": ids[0],
            "reference": "INV-0000000",
            "error_type": "DATA",
            "error_code": "0052",
        }
        assert (first["attempts"], first["failed_at"]) == (4, "2026-11-20T09:00:00+00:00")
        assert first["error_message"].startswith("sale type not allowed for this HS code")
        assert len(first["error_message"]) <= 300
        summary = metadata["summary"].value
        assert summary.startswith("Dry run: 205 dead invoice(s) would be requeued")
        assert "`dry_run: false` and at least one filter" in summary
        assert _statuses(engine) == before
        with engine.connect() as conn:
            assert conn.execute(select(tables.admin_audit)).all() == []
    finally:
        engine.dispose()


def test_requeue_one_invoice_by_id_and_a_real_run_without_a_filter_fails_in_one_line(db_url):
    engine = make_engine(db_url)
    try:
        ids = _dead(engine, 3, last_error_code="0052")
        resources = {"db": DatabaseResource(url=db_url)}
        refused = requeue_dead_invoices.execute_in_process(
            run_config=_config(REQUEUE, **WHO, dry_run=False),
            resources=resources,
            raise_on_error=False,
        )
        assert not refused.success
        assert _failure(refused).user_failure_data.description == (
            "name at least one filter for a real requeue: invoice_ids, error_code, error_type or "
            "a date range (a dry run with no filter lists every dead invoice)"
        )
        assert set(_statuses(engine).values()) == {"dead"}

        result = requeue_dead_invoices.execute_in_process(
            run_config=_config(REQUEUE, **WHO, invoice_ids=[ids[1]], dry_run=False),
            resources=resources,
        )
        assert result.output_for_node(REQUEUE) == [ids[1]]
        metadata = _output_metadata(result, REQUEUE)
        assert [r.data["id"] for r in metadata["invoices"].records] == [ids[1]]
        assert (metadata["count"].value, metadata["dead_matching"].value) == (1, 0)
        assert _statuses(engine) == {ids[0]: "dead", ids[1]: "pending", ids[2]: "dead"}
        with engine.connect() as conn:
            audit = conn.execute(select(tables.admin_audit)).mappings().all()
        assert [(a["entity_id"], a["to_status"], a["run_id"]) for a in audit] == [
            (str(ids[1]), "pending", result.run_id)
        ]
    finally:
        engine.dispose()


def test_an_unreadable_date_fails_the_step_with_one_line(sqlite_url, sqlite_engine):
    _dead(sqlite_engine, 1)
    result = requeue_dead_invoices.execute_in_process(
        run_config=_config(REQUEUE, **WHO, failed_after="yesterday"),
        resources={"db": DatabaseResource(url=sqlite_url)},
        raise_on_error=False,
    )
    assert not result.success
    assert _failure(result).user_failure_data.description == (
        "failed_after must be an ISO datetime like 2026-11-20T09:00:00, got 'yesterday'"
    )


def test_resolve_action_is_an_enum_of_the_resolutions(sqlite_url, sqlite_engine):
    [held] = insert_invoices(sqlite_engine, 1, now=datetime.now(UTC), status="needs_reconciliation")
    config = {"invoice_id": held, "admin_id": "ops-bilal", "reason": "given up: duplicate sale"}
    resources = {"db": DatabaseResource(url=sqlite_url)}
    with pytest.raises(dg.DagsterInvalidConfigError, match="delete"):
        resolve_held_invoice.execute_in_process(
            run_config=_config("resolve_one_held_invoice", **config, action="delete"),
            resources=resources,
        )
    result = resolve_held_invoice.execute_in_process(
        run_config=_config("resolve_one_held_invoice", **config, action="abandon"),
        resources=resources,
    )
    assert result.output_for_node("resolve_one_held_invoice") == "abandoned"
    [field] = [
        f for name, f in ResolveHeldInvoiceConfig.to_fields_dict().items() if name == "action"
    ]
    assert [v.config_value for v in field.config_type.enum_values] == [
        "mark_submitted",
        "release",
        "abandon",
    ]


@pytest.mark.parametrize(
    "config",
    [RequeueDeadInvoicesConfig, ResolveHeldInvoiceConfig, ResolveHeldInvoicesConfig],
)
def test_every_launchpad_field_has_a_description(config):
    fields = config.to_fields_dict()
    assert {name for name, field in fields.items() if not field.description} == set()
