"""The report figures, aggregated in SQL, are exact and the same on PostgreSQL and SQLite."""

from datetime import timedelta

import pytest

from retry_pipelines.reports.errors import error_distribution
from retry_pipelines.reports.metrics import COLUMNS, retry_metrics
from retry_pipelines_tests.support.report_data import DAY, seed_scenario

NEXT = DAY + timedelta(days=1)


@pytest.fixture
def seeded(engine):
    seed_scenario(engine)
    return engine


def _by_gateway(frame):
    return {row["gateway"]: row for row in frame.to_dict("records")}


def test_retry_metrics_of_a_day(seeded):
    frame = retry_metrics(seeded, DAY, NEXT)
    assert list(frame.columns) == list(COLUMNS)
    fbr, paypal = _by_gateway(frame)["fbr"], _by_gateway(frame)["paypal"]

    # FBR: A fail+ok, B ok, C fail, D fail, E in flight, G fail+fail = 8 attempts; F's attempts
    # (23:59:59 the day before, 00:00:00 the day after) are outside the day.
    assert fbr["attempts"] == 8
    assert fbr["in_flight"] == 1
    assert fbr["successes"] == 2
    assert fbr["failures"] == 5  # 8 - 1 in flight - 2 successes
    assert fbr["success_rate"] == pytest.approx(2 / 7)  # of 7 finished
    assert fbr["avg_attempts_to_success"] == pytest.approx(1.5)  # A on try 2, B on try 1
    assert fbr["dead_lettered"] == 1  # C (F went dead the next day)
    assert fbr["held"] == 1  # D, needs_reconciliation
    # latencies 100..700 (7 values): p50 at position 0.5*6 = 3 -> 400;
    # p95 at 0.95*6 = 5.7 -> 600 + 0.7*(700-600) = 670
    assert fbr["latency_p50_ms"] == pytest.approx(400)
    assert fbr["latency_p95_ms"] == pytest.approx(670)

    # PayPal: b1 fail, fail, ok; b2 fail; b3 ok; b4 ok = 6 attempts, 3 successes
    assert paypal["attempts"] == 6
    assert paypal["successes"] == 3
    assert paypal["failures"] == 3
    assert paypal["in_flight"] == 0
    assert paypal["success_rate"] == pytest.approx(0.5)  # 3 / 6
    assert paypal["avg_attempts_to_success"] == pytest.approx(5 / 3)  # (3 + 1 + 1) / 3
    assert paypal["dead_lettered"] == 1  # b2
    assert paypal["held"] == 1  # b5
    # sorted 40 50 60 70 80 90: p50 at 0.5*5 = 2.5 -> 60 + 0.5*10 = 65;
    # p95 at 0.95*5 = 4.75 -> 80 + 0.75*10 = 87.5
    assert paypal["latency_p50_ms"] == pytest.approx(65)
    assert paypal["latency_p95_ms"] == pytest.approx(87.5)


def test_quiet_days_get_zero_rows_and_a_range_has_one_row_per_day_and_gateway(seeded):
    start = DAY - timedelta(days=2)
    frame = retry_metrics(seeded, start, start + timedelta(days=4))
    assert len(frame) == 8  # 4 days x 2 gateways
    rows = {(r["day"], r["gateway"]): r for r in frame.to_dict("records")}
    before = rows[(DAY - timedelta(days=1), "fbr")]
    assert (before["attempts"], before["successes"], before["latency_p95_ms"]) == (1, 1, 10_000)
    after = rows[(NEXT, "fbr")]
    assert (after["attempts"], after["failures"], after["dead_lettered"]) == (1, 1, 1)
    quiet = rows[(DAY - timedelta(days=2), "paypal")]
    assert quiet["attempts"] == 0
    assert quiet["success_rate"] is None or quiet["success_rate"] != quiet["success_rate"]  # NaN
    assert rows[(DAY, "fbr")]["attempts"] == 8  # the same figures inside a longer range


def test_error_distribution_of_a_day(seeded):
    frame = error_distribution(seeded, DAY, NEXT)
    rows = {(r["gateway"], r["error_type"], r["error_code"]): r for r in frame.to_dict("records")}
    assert set(rows) == {
        ("fbr", "TRANSIENT", "500"),
        ("fbr", "VALIDATION", "0019"),
        ("fbr", "NETWORK", ""),
        ("paypal", "TRANSIENT", "INTERNAL_SERVICE_ERROR"),
        ("paypal", "PERMANENT", "INSUFFICIENT_FUNDS"),
    }
    # FBR failed 5 times that day: A1, G1, G2 are TRANSIENT 500 -> 3/5
    transient = rows[("fbr", "TRANSIENT", "500")]
    assert (transient["failures"], transient["share"]) == (3, pytest.approx(0.6))
    assert transient["top_message"] == "Internal Server Error"  # A1 and G1; G2 differs
    assert transient["top_message_count"] == 2
    validation = rows[("fbr", "VALIDATION", "0019")]
    assert (validation["failures"], validation["share"]) == (1, pytest.approx(0.2))
    assert validation["top_message"] == "Invalid HS code; token=[REDACTED]"
    assert rows[("fbr", "NETWORK", "")]["share"] == pytest.approx(0.2)
    # PayPal failed 3 times: b1 twice (2/3), b2 once (1/3)
    paypal = rows[("paypal", "TRANSIENT", "INTERNAL_SERVICE_ERROR")]
    assert (paypal["failures"], paypal["share"]) == (2, pytest.approx(2 / 3))
    assert (paypal["top_message"], paypal["top_message_count"]) == ("Service unavailable", 2)
    assert rows[("paypal", "PERMANENT", "INSUFFICIENT_FUNDS")]["share"] == pytest.approx(1 / 3)
    # ordered by day, gateway, failures (most first)
    assert list(frame["gateway"]) == ["fbr"] * 3 + ["paypal"] * 2
    assert frame["failures"].iloc[0] == 3


def test_error_distribution_of_a_quiet_day_is_empty(engine):
    frame = error_distribution(engine, DAY, NEXT)
    assert frame.empty
    assert "share" in frame.columns
