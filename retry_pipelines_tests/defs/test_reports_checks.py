"""Each report check passes on healthy data and fails on crafted bad data."""

import base64
import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import insert

from retry_pipelines.defs.fbr.resources import FbrResource
from retry_pipelines.defs.reports.assets import retry_backlog, retry_metrics
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.store import claims, tokens
from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines.store.tables import retry_metrics_daily
from retry_pipelines_tests.defs.test_definitions import _expire_some_leases
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices
from retry_pipelines_tests.support.report_data import add_attempts, at, fail, ok

DAY = date(2026, 11, 10)
"""The day the checks are about: one of the report partitions (from 2026-11-01)."""


def _resources(engine, token: str | None = None, expires_on: str | None = None):
    return {
        "db": DatabaseResource(url=engine.url.render_as_string(hide_password=False)),
        "fbr": FbrResource(base_url="http://127.0.0.1:9", token=token, token_expires_on=expires_on),
    }


def _checks(result) -> dict:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _backlog_checks(engine, token: str | None = None, expires_on: str | None = None):
    result = dg.materialize([retry_backlog], resources=_resources(engine, token, expires_on))
    assert result.success
    return result, _checks(result)


def _metrics_checks(engine):
    result = dg.materialize(
        [retry_metrics], partition_key=DAY.isoformat(), resources=_resources(engine)
    )
    assert result.success
    return _checks(result)


def _day_of(engine, failures: int, successes: int):
    """One FBR invoice per attempt on DAY: ``failures`` failed, ``successes`` succeeded."""
    ids = insert_invoices(engine, failures + successes, now=at(DAY, 0))
    for i, invoice in enumerate(ids):
        attempt = (
            fail(at(DAY, 8), "TRANSIENT", "502", "Bad Gateway", 10)
            if i < failures
            else ok(at(DAY, 8), 10)
        )
        add_attempts(engine, INVOICES, invoice, [attempt])


def test_failure_rate_passes_at_or_below_the_threshold(engine):
    _day_of(engine, failures=5, successes=5)  # 5 / 10 = 50%: not above 50%
    check = _metrics_checks(engine)["failure_rate_below_threshold"]
    assert check.passed
    assert check.metadata["fbr/failure_rate"].value == pytest.approx(0.5)


def test_failure_rate_fails_above_the_threshold(engine):
    _day_of(engine, failures=6, successes=4)  # 6 / 10 = 60% > 50%
    check = _metrics_checks(engine)["failure_rate_below_threshold"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert "fbr 60.0%" in check.description


def _baseline(engine, failure_rate: float, days: int = 7):
    """Report rows for the ``days`` days before DAY with the given FBR failure rate."""
    rows = [
        {
            "day": DAY - timedelta(days=i),
            "gateway": "fbr",
            "attempts": 100,
            "successes": round(100 * (1 - failure_rate)),
            "failures": round(100 * failure_rate),
            "in_flight": 0,
            "success_rate": 1 - failure_rate,
            "dead_lettered": 0,
            "held": 0,
        }
        for i in range(1, days + 1)
    ]
    with engine.begin() as conn:
        conn.execute(insert(retry_metrics_daily), rows)


def test_spike_check_fails_when_the_rate_doubles_over_the_trailing_mean(engine):
    _baseline(engine, failure_rate=0.1)
    _day_of(engine, failures=6, successes=24)  # 6 / 30 = 20% >= 2 x 10% and +10 points
    check = _metrics_checks(engine)["no_error_rate_spike"]
    assert not check.passed
    assert check.metadata["fbr/trailing_mean"].value == pytest.approx(0.1)
    assert check.metadata["fbr/baseline_days"].value == 7
    assert "fbr 20.0% vs trailing mean 10.0%" in check.description


def test_spike_check_passes_below_twice_the_trailing_mean(engine):
    _baseline(engine, failure_rate=0.1)
    _day_of(engine, failures=5, successes=25)  # 5 / 30 = 16.7% < 2 x 10%
    assert _metrics_checks(engine)["no_error_rate_spike"].passed


def test_spike_check_ignores_days_outside_the_trailing_week(engine):
    _baseline(engine, failure_rate=0.4, days=1)  # the day before: 40%
    with engine.begin() as conn:  # 8 days before: 0%, outside the window
        conn.execute(
            insert(retry_metrics_daily),
            [
                {
                    "day": DAY - timedelta(days=8),
                    "gateway": "fbr",
                    "attempts": 100,
                    "successes": 100,
                    "failures": 0,
                    "in_flight": 0,
                    "success_rate": 1.0,
                    "dead_lettered": 0,
                    "held": 0,
                }
            ],
        )
    _day_of(engine, failures=15, successes=15)  # 50% < 2 x 40%
    check = _metrics_checks(engine)["no_error_rate_spike"]
    assert check.passed
    assert check.metadata["fbr/trailing_mean"].value == pytest.approx(0.4)


def test_backlog_checks_pass_on_a_healthy_queue(engine, monkeypatch):
    monkeypatch.setenv(
        "FBR_API_TOKEN_EXPIRES_AT", (datetime.now(UTC) + timedelta(days=400)).date().isoformat()
    )
    [invoice] = insert_invoices(engine, 1, now=datetime.now(UTC) - timedelta(minutes=5))
    add_attempts(engine, INVOICES, invoice, [fail(at(DAY, 1), "NETWORK", None, "reset", 1)])
    result, checks = _backlog_checks(engine)
    assert all(c.passed for c in checks.values()), {n: c.description for n, c in checks.items()}
    [event] = result.asset_materializations_for_node("retry_backlog")
    metadata = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
    assert metadata["fbr/items/pending"] == 1
    assert metadata["fbr/due"] == 1
    assert metadata["fbr/oldest_due_age_seconds"] >= 300
    assert metadata["paypal/items/pending"] == 0
    assert metadata["fbr/live_leases"] == 0


def test_stuck_lease_check_fails_on_expired_leases(engine):
    _expire_some_leases(engine)  # 3 invoices, 2 batches
    _, checks = _backlog_checks(engine)
    check = checks["no_stuck_leases"]
    assert not check.passed
    assert check.metadata["fbr/expired_leases"].value == 3
    assert check.metadata["paypal/expired_leases"].value == 2
    assert check.metadata["fbr/stuck_leases"].value == 3


def test_a_lease_that_expired_just_now_is_not_stuck(engine):
    """The sweep has not had its chance yet: reported, but the check passes."""
    recent = datetime.now(UTC) - timedelta(minutes=2)
    insert_invoices(engine, 2, now=recent)
    claims.claim(
        engine,
        INVOICES,
        owner="slow-worker",
        limit=10,
        now=recent,
        max_attempts=5,
        lease=timedelta(minutes=1),
    )
    _, checks = _backlog_checks(engine)
    check = checks["no_stuck_leases"]
    assert check.passed, check.description
    assert check.metadata["fbr/expired_leases"].value == 2
    assert check.metadata["fbr/stuck_leases"].value == 0


def test_duplicate_submission_check_fails_on_a_second_success(engine):
    [invoice] = insert_invoices(engine, 1, now=at(DAY, 0))
    [batch, other] = insert_batches(engine, 2, now=at(DAY, 0))
    add_attempts(engine, INVOICES, invoice, [ok(at(DAY, 1), 5), ok(at(DAY, 2), 5)])
    add_attempts(engine, PAYOUTS, batch, [fail(at(DAY, 1), "NETWORK", None, "x", 1)])
    add_attempts(engine, PAYOUTS, batch, [ok(at(DAY, 2), 5)])  # one success: fine
    add_attempts(engine, PAYOUTS, other, [ok(at(DAY, 2), 5)])
    _, checks = _backlog_checks(engine)
    check = checks["no_duplicate_submissions"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["fbr/items_with_duplicate_successes"].value == 1
    assert check.metadata["paypal/items_with_duplicate_successes"].value == 0
    assert check.metadata["examples"].value == {"fbr": [[invoice, 2]]}


def _jwt(exp: datetime) -> str:
    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256'})}.{part({'exp': int(exp.timestamp())})}.c2lnbmF0dXJl"


def test_token_check_fails_within_14_days_and_never_shows_the_token(sqlite_engine, monkeypatch):
    token = _jwt(datetime.now(UTC) + timedelta(days=3))
    monkeypatch.delenv("FBR_API_TOKEN_EXPIRES_AT", raising=False)
    result, checks = _backlog_checks(sqlite_engine, token=token)
    check = checks["fbr_token_not_expiring"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["source"].value == "FBR_API_TOKEN jwt exp claim"
    assert 2 < check.metadata["days_left"].value <= 3
    assert token not in repr(result.all_events)
    assert token.split(".")[1] not in repr(result.all_events)


def test_token_check_passes_beyond_14_days(sqlite_engine, monkeypatch):
    monkeypatch.setenv(
        "FBR_API_TOKEN_EXPIRES_AT", (datetime.now(UTC) + timedelta(days=15)).isoformat()
    )
    check = _backlog_checks(sqlite_engine, token="opaque-static-token")[1]
    assert check["fbr_token_not_expiring"].passed
    assert check["fbr_token_not_expiring"].metadata["source"].value == "FBR_API_TOKEN_EXPIRES_AT"


def test_token_check_reads_the_fbr_resource_expiry_first(sqlite_engine, monkeypatch):
    monkeypatch.setenv("FBR_API_TOKEN_EXPIRES_AT", "next tuesday")  # not read: the resource wins
    expires_on = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    check = _backlog_checks(sqlite_engine, token="opaque", expires_on=expires_on)[1]
    assert not check["fbr_token_not_expiring"].passed
    assert 4 < check["fbr_token_not_expiring"].metadata["days_left"].value <= 5


def test_token_check_uses_the_expiry_a_run_recorded(sqlite_engine, monkeypatch):
    monkeypatch.delenv("FBR_API_TOKEN_EXPIRES_AT", raising=False)
    now = datetime.now(UTC)
    tokens.record_token(
        sqlite_engine,
        "fbr",
        validated_at=now,
        expires_on=(now + timedelta(days=10)).date(),
        now=now,
    )
    check = _backlog_checks(sqlite_engine)[1]["fbr_token_not_expiring"]
    assert not check.passed
    assert check.metadata["source"].value == "gateway_state"


@pytest.mark.parametrize(
    ("expires_at", "expected"),
    [(None, "FBR token expiry unknown"), ("next tuesday", "must be an ISO date")],
)
def test_token_check_fails_when_expiry_is_unknown_or_malformed(
    sqlite_engine, monkeypatch, expires_at, expected
):
    if expires_at is None:
        monkeypatch.delenv("FBR_API_TOKEN_EXPIRES_AT", raising=False)
    else:
        monkeypatch.setenv("FBR_API_TOKEN_EXPIRES_AT", expires_at)
    check = _backlog_checks(sqlite_engine, token="opaque-static-token")[1]["fbr_token_not_expiring"]
    assert not check.passed
    assert expected in check.description
