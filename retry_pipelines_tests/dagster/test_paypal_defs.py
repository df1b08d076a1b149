"""PayPal names, crons, pool and tags are pinned; the payout sensor decides like the FBR one."""

from datetime import UTC, datetime

import dagster as dg

from retry_pipelines.definitions import defs
from retry_pipelines.defs.paypal.retry import (
    retryable_payout_batches_sensor,
    submit_due_batches,
)
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.payouts import PayoutItem, record_batch


def test_paypal_names_crons_pool_and_tags():
    loaded = defs()
    job = loaded.resolve_job_def("retry_payout_batches")
    assert job.tags["retry_pipelines/gateway"] == "paypal"
    assert submit_due_batches.pool == "paypal_api"
    crons = {
        name: loaded.resolve_schedule_def(name).cron_schedule
        for name in ("retry_payout_batches_schedule", "reconcile_payout_batches_schedule")
    }
    assert crons == {
        "retry_payout_batches_schedule": "*/10 * * * *",
        "reconcile_payout_batches_schedule": "*/15 * * * *",
    }
    for name in (
        "reconcile_payout_batches",
        "manual_retry_payout_batch",
        "override_payout_batch_status",
        "repay_payout_batch",
    ):
        assert loaded.resolve_job_def(name).name == name
    assert "retry_pipelines/gateway" not in loaded.resolve_job_def("manual_retry_payout_batch").tags


def _evaluate(url):
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"db": DatabaseResource(url=url)}
    ) as context:
        return retryable_payout_batches_sensor(context), context


def test_payout_sensor_skips_then_requests(sqlite_url, sqlite_engine):
    skip, _ = _evaluate(sqlite_url)
    assert skip.skip_message == "nothing due"
    items = [PayoutItem("a@example.com", "5.00", "USD", "i-1")]
    record_batch(sqlite_engine, cycle_id="c1", items=items, now=datetime.now(UTC))
    request, context = _evaluate(sqlite_url)
    assert request.run_key == f"retry_payout_batches-{context.cursor}"
    assert request.tags["due_items"] == "1"
