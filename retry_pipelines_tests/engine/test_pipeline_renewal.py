"""A failed lease renewal (a database blip) must not end renewal for the rest of the run: with a
gateway slower than the lease, the run's leases would run out and its outcomes be lost."""

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import OperationalError

from retry_pipelines.domain.policy import FBR_DEFAULT
from retry_pipelines.engine.pipeline import RunOptions, Submission, run_pipeline
from retry_pipelines.store import claims
from retry_pipelines.store.queues import INVOICES
from retry_pipelines_tests.support.factories import insert_invoices


async def slow_submit(row):
    """A gateway slower than the lease (2 s per post, lease 0.6 s): only renewal keeps it."""
    await asyncio.sleep(2.0)
    return Submission(None, 200, 2000.0, {"fbr_invoice_number": f"FBR-{row['id']}"})


def test_one_failed_renewal_does_not_stop_renewing(engine, monkeypatch):
    insert_invoices(engine, 4, now=datetime.now(UTC))
    real_renew, calls = claims.renew, []

    def renew(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE invoices SET lease_expires_at", {}, Exception("blip"))
        return real_renew(*args, **kwargs)

    monkeypatch.setattr(claims, "renew", renew)
    options = RunOptions(batch_size=4, max_in_flight=4, lease=timedelta(seconds=0.6))
    summary = asyncio.run(run_pipeline(engine, INVOICES, slow_submit, FBR_DEFAULT, options))
    assert len(calls) > 1, "renewal must go on after the failed one"
    assert (summary.succeeded, summary.lease_lost) == (4, 0)
