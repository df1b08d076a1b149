"""The payout sensor decides like the FBR one; PayPal admin runs queue behind PayPal runs."""

from datetime import UTC, datetime

import dagster as dg

from retry_pipelines.definitions import defs
from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.paypal.retry import retryable_payout_batches_sensor
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.lib.tags import GATEWAY_TAG


def test_paypal_admin_jobs_wait_for_a_paypal_run_in_flight():
    """Every admin job carries its gateway's tag, as FBR's always did (this used to pin the
    opposite): the instance runs one run per tag value, so a manual retry, override or re-pay
    launched while retry_payout_batches is in flight waits for it instead of racing it for the
    same batch (a manual retry would be refused by the cycle lock anyway)."""
    loaded = defs()
    for name in (
        "retry_payout_batches",
        "manual_retry_payout_batch",
        "override_payout_batch_status",
        "repay_payout_batch",
    ):
        assert loaded.resolve_job_def(name).tags[GATEWAY_TAG] == "paypal", name


def _evaluate(url):
    with dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "db": DatabaseResource(url=url),
            "paypal": PaypalResource(
                base_url="http://127.0.0.1:9", client_id="c", client_secret="s"
            ),
        },
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
