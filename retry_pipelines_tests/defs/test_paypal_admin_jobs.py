"""The payout admin jobs as real Dagster runs with their typed launchpad config: the batch report in
the op's output metadata, and an audit row carrying the run id."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select, update

from retry_pipelines.defs.paypal.admin import (
    ManualRetryConfig,
    OverrideStatusConfig,
    RepayConfig,
    manual_retry_payout_batch,
    override_payout_batch_status,
    repay_payout_batch,
)
from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.paypal.retry import retry_payout_batches
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.domain.states import BATCH
from retry_pipelines.engine.paypal.recording import PayoutItem, PayoutRejected, record_batch
from retry_pipelines.store import tables
from retry_pipelines_tests.support.paypal import CLIENT_ID, CLIENT_SECRET, running_paypal

ITEMS = [
    PayoutItem("alice@example.com", "12.50", "USD", "inv-1"),
    PayoutItem("bob@example.com", "7.25", "USD", "inv-2"),
]


def _config(op, **values):
    return {"ops": {op: {"config": values}}}


def _report(result, step):
    [output] = [
        e
        for e in result.all_node_events
        if e.step_key == step and e.event_type_value == "STEP_OUTPUT"
    ]
    return output.step_output_data.metadata["report"].value


def _batch(engine, batch_id):
    with engine.connect() as conn:
        return (
            conn.execute(
                select(tables.payout_batches).where(tables.payout_batches.c.id == batch_id)
            )
            .mappings()
            .one()
        )


def _audit(engine):
    with engine.connect() as conn:
        return conn.execute(select(tables.admin_audit).order_by(tables.admin_audit.c.id)).mappings()


def test_manual_retry_job_adopts_a_held_batch(sqlite_url, sqlite_engine):
    batch_id = record_batch(
        sqlite_engine, cycle_id="2026-11-W48", items=ITEMS, now=datetime.now(UTC)
    ).id
    # seed 1: the first create's response is lost after PayPal created the batch; then clean.
    with running_paypal("response_lost=0.5", seed=1, hang_seconds=1.0) as (server, sandbox):
        resources = {
            "db": DatabaseResource(url=sqlite_url),
            "paypal": PaypalResource(
                base_url=server.url,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                read_timeout_seconds=0.3,
            ),
        }
        retry_payout_batches.execute_in_process(
            run_config=_config("submit_due_batches", max_retries=0), resources=resources
        )
        held = _batch(sqlite_engine, batch_id)
        with sqlite_engine.begin() as conn:  # the one-minute cooldown has passed
            conn.execute(
                update(tables.payout_batches).values(
                    last_attempt_at=held["last_attempt_at"] - timedelta(minutes=2)
                )
            )
        result = manual_retry_payout_batch.execute_in_process(
            run_config=_config(
                "retry_one_payout_batch",
                batch_id=batch_id,
                admin_id="finance-sara",
                reason="PayPal shows the batch; adopt it",
                max_retries=1,
                base_delay_seconds=1.0,
            ),
            resources=resources,
        )
        [created] = [r for r in sandbox.requests() if r["created"]]
    assert held["status"] == "needs_reconciliation"
    assert result.success
    assert result.output_for_node("retry_one_payout_batch") == "submitted"
    batch = _batch(sqlite_engine, batch_id)
    assert batch["paypal_batch_id"] == created["payout_batch_id"]
    report = _report(result, "retry_one_payout_batch")
    assert f"payout batch {batch_id} ({batch['sender_batch_id']}), cycle 2026-11-W48" in report
    assert f"status submitted; PayPal {created['payout_batch_id']} PENDING" in report
    assert "items: queued 2" in report
    assert "attempts 2 (1 counted)" in report
    # The lost response: an ambiguous attempt; then the resend PayPal answered with its batch.
    assert "attempt 1: failure NETWORK ReadTimeout ambiguous HTTP - at " in report
    assert "attempt 2: success HTTP 201 at " in report
    assert CLIENT_SECRET not in report
    [audit] = _audit(sqlite_engine)
    assert (
        audit["action"],
        audit["entity_id"],
        audit["from_status"],
        audit["to_status"],
        audit["admin_id"],
        audit["run_id"],
    ) == (
        "manual_retry",
        str(batch_id),
        "needs_reconciliation",
        "pending",
        "finance-sara",
        result.run_id,
    )
    assert audit["details"] == {"max_retries": 1, "base_delay": 1.0, "max_delay": 300.0}


def test_override_job_reports_and_audits_and_refuses_a_forbidden_move(sqlite_url, sqlite_engine):
    batch_id = record_batch(sqlite_engine, cycle_id="c-1", items=ITEMS, now=datetime.now(UTC)).id
    with sqlite_engine.begin() as conn:
        conn.execute(update(tables.payout_batches).values(status="dead"))
    resources = {"db": DatabaseResource(url=sqlite_url)}
    base = {"batch_id": batch_id, "admin_id": "finance-ali", "reason": "voided (case 8842)"}
    result = override_payout_batch_status.execute_in_process(
        run_config=_config("override_one_payout_batch", new_status="canceled", **base),
        resources=resources,
    )
    assert result.output_for_node("override_one_payout_batch") == "canceled"
    report = _report(result, "override_one_payout_batch")
    assert "status canceled" in report
    assert "items: queued 2" in report
    assert "attempts 0 (0 counted)" in report
    assert "reason: override by finance-ali: voided (case 8842)" in report
    refused = override_payout_batch_status.execute_in_process(
        run_config=_config("override_one_payout_batch", new_status="pending", **base),
        resources=resources,
        raise_on_error=False,
    )
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.error.cause.cls_name == "AdminError"
    assert failure.step_failure_data.user_failure_data.description == (
        "payout batch: canceled -> pending is not an admin override; from canceled none is allowed"
    )
    [audit] = _audit(sqlite_engine)
    assert (audit["action"], audit["from_status"], audit["to_status"], audit["run_id"]) == (
        "override",
        "dead",
        "canceled",
        result.run_id,
    )
    assert (
        _batch(sqlite_engine, batch_id)["status_reason"]
        == "override by finance-ali: voided (case 8842)"
    )


def test_repay_job_records_an_audited_new_batch_and_refuses_a_live_one(sqlite_url, sqlite_engine):
    now = datetime.now(UTC)
    batch_id = record_batch(sqlite_engine, cycle_id="c-1", items=ITEMS, now=now).id
    resources = {"db": DatabaseResource(url=sqlite_url)}
    base = {"batch_id": batch_id, "admin_id": "finance-ali", "reason": "bank returned inv-2"}
    refused = repay_payout_batch.execute_in_process(
        run_config=_config("repay_one_payout_batch", **base),
        resources=resources,
        raise_on_error=False,
    )
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert (
        "is pending: only a completed batch is re-paid"
        in failure.step_failure_data.error.cause.message
    )

    with sqlite_engine.begin() as conn:
        conn.execute(update(tables.payout_batches).values(status="completed"))
    result = repay_payout_batch.execute_in_process(
        run_config=_config("repay_one_payout_batch", sender_item_ids=["inv-2"], **base),
        resources=resources,
    )
    new_id = result.output_for_node("repay_one_payout_batch")
    new = _batch(sqlite_engine, new_id)
    assert (new["status"], new["repay_of"], new["total_value"]) == ("pending", batch_id, "7.25")
    assert "items: queued 1" in _report(result, "repay_one_payout_batch")
    [audit] = _audit(sqlite_engine)
    assert (audit["action"], audit["entity_id"], audit["run_id"]) == (
        "repay",
        str(batch_id),
        result.run_id,
    )
    assert audit["details"]["new_batch_id"] == new_id
    with pytest.raises(PayoutRejected, match="'inv-2' is already in batch"):
        record_batch(sqlite_engine, cycle_id="c-1", items=ITEMS[1:], now=now + timedelta(days=1))


def test_new_status_is_an_enum_of_the_admin_targets(sqlite_url, sqlite_engine):
    batch_id = record_batch(sqlite_engine, cycle_id="c-2", items=ITEMS, now=datetime.now(UTC)).id
    [field] = [
        f for name, f in OverrideStatusConfig.to_fields_dict().items() if name == "new_status"
    ]
    targets = sorted(set().union(*BATCH.admin.values()))
    assert [v.config_value for v in field.config_type.enum_values] == targets
    assert targets == ["canceled", "completed", "dead", "pending"]
    base = {"batch_id": batch_id, "admin_id": "finance-ali", "reason": "voided (case 8842)"}
    resources = {"db": DatabaseResource(url=sqlite_url)}
    for refused in ("archived", "needs_reconciliation", "CANCELED"):
        with pytest.raises(dg.DagsterInvalidConfigError, match="new_status"):
            override_payout_batch_status.execute_in_process(
                run_config=_config("override_one_payout_batch", new_status=refused, **base),
                resources=resources,
            )
    result = override_payout_batch_status.execute_in_process(
        run_config=_config("override_one_payout_batch", new_status="dead", **base),
        resources=resources,
    )
    assert result.output_for_node("override_one_payout_batch") == "dead"
    assert _batch(sqlite_engine, batch_id)["status"] == "dead"


def test_a_retry_policy_out_of_bounds_fails_in_one_line_before_any_call(sqlite_url, sqlite_engine):
    batch_id = record_batch(sqlite_engine, cycle_id="c-3", items=ITEMS, now=datetime.now(UTC)).id
    paypal = PaypalResource(base_url="http://127.0.0.1:9", client_id="c", client_secret="s")
    result = manual_retry_payout_batch.execute_in_process(
        run_config=_config(
            "retry_one_payout_batch",
            batch_id=batch_id,
            admin_id="finance-sara",
            reason="retry after the fix",
            max_retries=500,
        ),
        resources={"db": DatabaseResource(url=sqlite_url), "paypal": paypal},
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.step_failure_data.user_failure_data.description == (
        "invalid run config for ManualRetryConfig: max_retries must be a finite number >= 0 and "
        "<= 100, got 500"
    )
    assert _batch(sqlite_engine, batch_id)["attempt_count"] == 0
    assert list(_audit(sqlite_engine)) == []


@pytest.mark.parametrize("config", [ManualRetryConfig, OverrideStatusConfig, RepayConfig])
def test_every_launchpad_field_has_a_description(config):
    fields = config.to_fields_dict()
    assert {name for name, field in fields.items() if not field.description} == set()
