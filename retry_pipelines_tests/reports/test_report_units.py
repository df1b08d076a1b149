"""Pure pieces of the reports: token expiry sources, percentile interpolation, Markdown, checks."""

import base64
import json
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from retry_pipelines.reports import checks
from retry_pipelines.reports.render import markdown_table
from retry_pipelines.reports.tokens import (
    TokenExpiry,
    fbr_token_expiry,
    jwt_expiry,
    parse_expiry,
)
from retry_pipelines.store.reports import interpolate

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


def _segment(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_jwt_exp_claim_is_read_and_anything_else_is_not_a_jwt():
    exp = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert jwt_expiry(f"{_segment({})}.{_segment({'exp': exp.timestamp()})}.sig") == exp
    assert jwt_expiry("opaque-static-token") is None
    assert jwt_expiry("a.%%%.c") is None
    assert jwt_expiry(f"a.{_segment({'exp': True})}.c") is None
    assert jwt_expiry(f"a.{_segment(['exp'])}.c") is None
    assert jwt_expiry(f"a.{_segment({'exp': 10**20})}.c") is None


def test_expiry_sources_in_order():
    recorded = NOW + timedelta(days=100)
    jwt = f"{_segment({})}.{_segment({'exp': (NOW + timedelta(days=50)).timestamp()})}.s"
    env = {"FBR_API_TOKEN_EXPIRES_AT": "2027-06-30", "FBR_API_TOKEN": jwt}
    assert fbr_token_expiry(env, recorded) == TokenExpiry(
        datetime(2027, 6, 30, tzinfo=UTC), "FBR_API_TOKEN_EXPIRES_AT"
    )
    assert fbr_token_expiry({"FBR_API_TOKEN": jwt}, recorded).source.endswith("jwt exp claim")
    assert fbr_token_expiry({}, recorded) == TokenExpiry(recorded, "gateway_state")
    assert fbr_token_expiry({}, None) == TokenExpiry(None, "unknown")


def test_parse_expiry_accepts_dates_and_datetimes_in_utc():
    assert parse_expiry("2027-06-30") == datetime(2027, 6, 30, tzinfo=UTC)
    assert parse_expiry("2027-06-30T05:00:00+05:00") == datetime(2027, 6, 30, tzinfo=UTC)
    assert parse_expiry("2027-06-30 08:00") == datetime(2027, 6, 30, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="FBR_API_TOKEN_EXPIRES_AT must be an ISO date"):
        parse_expiry("soon")


@pytest.mark.parametrize(
    ("days_left", "passed"), [(-1, False), (0.5, False), (14, False), (14.01, True), (400, True)]
)
def test_token_must_outlive_14_days(days_left, passed):
    expiry = TokenExpiry(NOW + timedelta(days=days_left), "FBR_API_TOKEN_EXPIRES_AT")
    finding = checks.token_expiry(expiry, now=NOW)
    assert finding.passed is passed
    assert not finding.warn_only
    assert finding.metadata["expires_at"] == expiry.expires_at.isoformat()


def test_unknown_token_expiry_fails_as_a_warning_naming_the_variable():
    finding = checks.token_expiry(TokenExpiry(None, "unknown"), now=NOW)
    assert (finding.passed, finding.warn_only) == (False, True)
    assert "FBR_API_TOKEN_EXPIRES_AT" in finding.description


def test_interpolation_matches_percentile_cont():
    assert interpolate(600, 700, 5.7) == pytest.approx(670)  # 0.95 * (7 - 1)
    assert interpolate(400, 400, 3.0) == 400


def _metrics(rows):
    return pd.DataFrame(rows, columns=["gateway", "successes", "failures"])


def test_spike_needs_a_baseline_and_enough_attempts():
    day = _metrics([("fbr", 10, 10), ("paypal", 1, 9)])  # 50% and 90%
    no_baseline = checks.error_rate_spike(day, {})
    assert no_baseline.passed
    assert "fbr: no earlier day to compare with" in no_baseline.description
    few = checks.error_rate_spike(day, {"fbr": (0.1, 7), "paypal": (0.1, 7)})
    assert not few.passed  # fbr: 20 finished >= 20 and 50% >= 2 x 10%
    assert "paypal: only 10 finished attempts" in few.description
    assert "paypal" not in few.description.split(";")[0]


def test_spike_needs_a_real_increase_at_tiny_rates():
    day = _metrics([("fbr", 97, 3)])  # 3% vs 1%: triple, but only +2 points
    assert checks.error_rate_spike(day, {"fbr": (0.01, 7)}).passed


def test_failure_rate_ignores_gateways_with_nothing_finished():
    finding = checks.failure_rate(_metrics([("fbr", 0, 0), ("paypal", 1, 0)]))
    assert finding.passed
    assert finding.metadata == {"threshold": 0.5, "paypal/failure_rate": 0.0}


def test_markdown_table_escapes_and_formats():
    frame = pd.DataFrame(
        {"day": [date(2026, 3, 10)], "message": ["a | b\nc"], "share": [2 / 3], "n": [1234.5]}
    )
    text = markdown_table(frame)
    assert text.splitlines()[1] == "|---|---|---:|---:|"
    assert text.splitlines()[2] == "| 2026-03-10 | a \\| b c | 0.6667 | 1,234.5 |"
    assert markdown_table(frame.iloc[0:0]).splitlines()[2] == "| - | - | - | - |"
