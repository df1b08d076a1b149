"""retry_payout_batches and reconcile_payout_batches as real Dagster runs against the PayPal
sandbox over HTTP: in process on both databases, and through the dagster CLI."""

import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from sqlalchemy import func, select

from retry_pipelines.defs.paypal.resources import PaypalResource
from retry_pipelines.defs.paypal.retry import reconcile_payout_batches, retry_payout_batches
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.demo import execute_job
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.paypal import CLIENT_ID, CLIENT_SECRET, running_paypal

ROOT = Path(__file__).resolve().parents[2]
FAST_RUN = {
    "ops": {
        "submit_due_batches": {
            "config": {
                "base_delay_seconds": 0.01,
                "max_delay_seconds": 0.05,
                "cooldown_seconds": 0.05,
                "max_in_flight": 4,
            }
        }
    }
}


def _record(engine, n: int, cycle: str = "2026-11-W48") -> None:
    now = datetime.now(UTC)
    for b in range(n):
        items = [
            PayoutItem(f"payee{b}@example.com", "10.00", "USD", f"b{b}-1"),
            PayoutItem("unclaimed@example.com", "2.50", "USD", f"b{b}-2"),
        ]
        record_batch(engine, cycle_id=f"{cycle}-{b}", items=items, now=now)
    # One batch PayPal refuses for good (sandbox test value ERRPYO005: 422 INSUFFICIENT_FUNDS).
    refused = [PayoutItem("payee@example.com", "99.00", "USD", "r-1", note="ERRPYO005")]
    record_batch(engine, cycle_id=f"{cycle}-refused", items=refused, now=now)


def _counts(engine, table):
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.status, func.count()).group_by(table.c.status))
        return dict(rows.all())


def _output_metadata(result, step):
    [output] = [
        e
        for e in result.all_node_events
        if e.step_key == step and e.event_type_value == "STEP_OUTPUT"
    ]
    return output.step_output_data.metadata


def _resources(db_url, server):
    return {
        "db": DatabaseResource(url=db_url),
        "paypal": PaypalResource(
            base_url=server.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
        ),
    }


def test_retry_then_reconcile_in_process(db_url):
    engine = make_engine(db_url)
    _record(engine, 3)
    instance = dg.DagsterInstance.ephemeral()
    with running_paypal(final_after=0.2) as (server, sandbox):
        resources = _resources(db_url, server)
        submitted = retry_payout_batches.execute_in_process(
            run_config=FAST_RUN, resources=resources, instance=instance
        )
        assert _counts(engine, tables.payout_batches) == {"submitted": 3, "dead": 1}
        # The sandbox reports a batch final 0.2 s (monotonic) after creating it, and every batch
        # was created before the submit run returned: after 0.25 s all three are final, however
        # busy the machine, so one reconcile run sees them all. (Polling until the first batch is
        # final let a run see only the batches created earliest.)
        time.sleep(0.25)
        runs = [reconcile_payout_batches.execute_in_process(resources=resources, instance=instance)]
        stats = sandbox.stats()
    assert submitted.success
    assert all(r.success for r in runs)
    assert submitted.dagster_run.tags["retry_pipelines/gateway"] == "paypal"
    summary = _output_metadata(submitted, "submit_due_batches")
    assert (summary["claimed"].value, summary["succeeded"].value) == (4, 3)
    assert summary["dead_lettered"].value == 1
    assert summary["errors_by_type"].value == {"PERMANENT": 1}
    assert "| succeeded | 3 |" in summary["summary"].value
    assert _output_metadata(submitted, "sweep_payout_leases")["returned"].value == 0

    last = _output_metadata(runs[-1], "reconcile_submitted_batches")
    assert last["polled"].value == 3
    assert last["finished"].value == {"completed": 3}
    # The batch is SUCCESS with each unclaimed item still open: polled in the same run.
    assert (last["items_updated"].value, last["items_polled"].value) == (6, 3)
    assert last["items_unresolved"].value == 0
    assert _counts(engine, tables.payout_batches) == {"completed": 3, "dead": 1}
    assert _counts(engine, tables.payout_items) == {"SUCCESS": 3, "UNCLAIMED": 3, "queued": 1}
    assert stats["batches_created"] == 3
    logs = "\n".join(
        e.message or "" for r in (submitted, *runs) for e in instance.all_logs(r.run_id)
    )
    assert CLIENT_SECRET not in logs
    engine.dispose()


def test_retry_payout_batches_through_dagster_cli(sqlite_url, sqlite_engine, tmp_path):
    _record(sqlite_engine, 2)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    config = tmp_path / "run.yaml"
    config.write_text(
        "ops:\n  submit_due_batches:\n    config:\n      base_delay_seconds: 0.01\n"
        "      max_delay_seconds: 0.05\n"
    )
    with running_paypal() as (server, sandbox):
        env = {
            **os.environ,
            "DAGSTER_HOME": str(home),
            "RETRY_PIPELINES_DATABASE_URL": sqlite_url,
            "PAYPAL_API_BASE_URL": server.url,
            "PAYPAL_CLIENT_ID": CLIENT_ID,
            "PAYPAL_CLIENT_SECRET": CLIENT_SECRET,
        }
        proc = execute_job("retry_payout_batches", env, cwd=tmp_path, config_file=str(config))
        stats = sandbox.stats()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert _counts(sqlite_engine, tables.payout_batches) == {"submitted": 2, "dead": 1}
    assert stats["batches_created"] == 2
    instance = dg.DagsterInstance.from_config(str(home))
    [run] = instance.get_runs()
    assert (run.job_name, run.status) == ("retry_payout_batches", dg.DagsterRunStatus.SUCCESS)
    assert run.tags["retry_pipelines/gateway"] == "paypal"
    [materialized] = [
        e
        for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_OUTPUT)
        if e.step_key == "submit_due_batches"
    ]
    metadata = materialized.dagster_event.step_output_data.metadata
    assert (metadata["succeeded"].value, metadata["dead_lettered"].value) == (2, 1)
    logs = "\n".join(e.message or "" for e in instance.all_logs(run.run_id))
    assert CLIENT_SECRET not in logs, "the client secret must never reach the event log"
    assert CLIENT_SECRET not in proc.stdout + proc.stderr
