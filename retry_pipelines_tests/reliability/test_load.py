"""Load with chaos: invoices and payout batches through 4 concurrent worker processes each, on
PostgreSQL, against sandboxes injecting 20% mixed faults (CI size by default; set
``RETRY_PIPELINES_LOAD_SCALE=full`` for 50,000 invoices and 2,000 batches, as
``benchmarks/chaos.py`` runs).

What must hold for each gateway: every worker took part and exited cleanly; the final states add
up to what was seeded and are all final; the sandbox processed no invoice twice and created no
``sender_batch_id`` twice; every item's attempt history is complete, with nothing in flight.
"""

from __future__ import annotations

import pytest

from retry_pipelines_tests.support.load import (
    TABLE_HEADER,
    load_size,
    run_gateway,
    table_rows,
    unsettled,
)

pytestmark = pytest.mark.reliability

WORKERS = 4


@pytest.mark.parametrize("gateway", ["fbr", "paypal"])
def test_load_with_20_percent_faults_settles_everything_once(
    gateway, pg_engine, pg_url, tmp_path, record_property
):
    invoices, batches = load_size()
    count = invoices if gateway == "fbr" else batches
    result = run_gateway(gateway, pg_url, count, tmp_path, workers=WORKERS, seconds=480)
    record_property("load", result.as_dict() | {"sandbox": None})
    print(f"\n{TABLE_HEADER}\n{table_rows([result])[0]}")  # noqa: T201 (totals per state)

    assert result.worker_exit_codes == [0] * WORKERS
    assert all(n > 0 for n in result.attempts_per_worker), result.attempts_per_worker
    assert sum(result.final_states.values()) == count, result.final_states
    assert not unsettled(result), result.final_states
    assert result.duplicates == 0
    assert result.faults > 0.15 * sum(result.attempts_per_worker), result.sandbox["by_fault"]
    assert result.history_gaps == 0
    assert result.in_flight == 0
    if gateway == "fbr":
        assert result.final_states.get("submitted", 0) <= result.sandbox["processed"]
    else:
        assert result.final_states.get("completed", 0) <= result.sandbox["batches_created"]
