"""Transport-error certainty, Retry-After parsing and body snippets shared by both gateways."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.gateways.fbr_parse import classify
from retry_pipelines.gateways.http import parse_retry_after, snippet, transport_failure

AMBIGUOUS = Delivery.AMBIGUOUS
NOT_DELIVERED = Delivery.NOT_DELIVERED
NOW = datetime(2025, 5, 13, 12, 0, 0, tzinfo=UTC)
REQUEST = httpx.Request("POST", "https://gw.fbr.gov.pk/di_data/v1/di/postinvoicedata")

# --- transport_failure --------------------------------------------------------------------------

BEFORE_SENDING = [
    pytest.param(httpx.ConnectError("[Errno 111] Connection refused"), id="ConnectError"),
    pytest.param(
        httpx.ConnectError("[Errno -2] Name or service not known", request=REQUEST),
        id="ConnectError-dns-with-request",
    ),
    pytest.param(httpx.ConnectTimeout("timed out connecting"), id="ConnectTimeout"),
    pytest.param(httpx.PoolTimeout("no connection free in the pool"), id="PoolTimeout"),
]

MAYBE_SENT = [
    pytest.param(httpx.ReadTimeout("The read operation timed out"), id="ReadTimeout"),
    pytest.param(httpx.ReadTimeout("timed out", request=REQUEST), id="ReadTimeout-with-request"),
    pytest.param(httpx.ReadError("[Errno 104] Connection reset by peer"), id="ReadError"),
    pytest.param(
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        id="RemoteProtocolError",
    ),
    pytest.param(httpx.WriteTimeout("write timed out"), id="WriteTimeout"),
    pytest.param(httpx.WriteError("[Errno 32] Broken pipe"), id="WriteError"),
    pytest.param(httpx.CloseError("close failed"), id="CloseError"),
]


@pytest.mark.parametrize("exc", BEFORE_SENDING)
@pytest.mark.parametrize("side_effects", [True, False], ids=["post", "validate"])
def test_errors_before_sending_are_never_delivered(exc, side_effects):
    result = transport_failure(exc, side_effects=side_effects)
    name = type(exc).__name__
    assert result == Failure(ErrorType.NETWORK, f"{name}: {exc}", NOT_DELIVERED, name)
    assert str(exc) in result.message


@pytest.mark.parametrize("exc", MAYBE_SENT)
@pytest.mark.parametrize(
    ("side_effects", "delivery"),
    [pytest.param(True, AMBIGUOUS, id="post"), pytest.param(False, NOT_DELIVERED, id="validate")],
)
def test_errors_after_sending_may_have_been_processed(exc, side_effects, delivery):
    result = transport_failure(exc, side_effects=side_effects)
    name = type(exc).__name__
    assert result.error_type is ErrorType.NETWORK
    assert result.delivery is delivery
    assert result.error_code == name
    assert result.message == f"{name}: {exc}"
    assert result.http_status is None
    assert result.retry_after is None


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(RuntimeError("event loop is closed"), id="RuntimeError"),
        pytest.param(ValueError("bad"), id="ValueError"),
        pytest.param(OSError(24, "Too many open files"), id="OSError"),
    ],
)
@pytest.mark.parametrize(
    ("side_effects", "delivery"),
    [pytest.param(True, AMBIGUOUS, id="post"), pytest.param(False, NOT_DELIVERED, id="validate")],
)
def test_other_exceptions_are_unknown(exc, side_effects, delivery):
    result = transport_failure(exc, side_effects=side_effects)
    name = type(exc).__name__
    assert result.error_type is ErrorType.UNKNOWN
    assert result.delivery is delivery
    assert result.error_code == name
    assert result.message.startswith(f"{name}: ")


def test_transport_failure_of_a_subclass_follows_its_base():
    class TlsHandshakeFailed(httpx.ConnectError):
        pass

    class SlowRead(httpx.ReadTimeout):
        pass

    connect = transport_failure(TlsHandshakeFailed("handshake"), side_effects=True)
    read = transport_failure(SlowRead("slow"), side_effects=True)
    assert (connect.error_type, connect.delivery) == (ErrorType.NETWORK, NOT_DELIVERED)
    assert (read.error_type, read.delivery) == (ErrorType.NETWORK, AMBIGUOUS)
    assert connect.error_code == "TlsHandshakeFailed"


# --- parse_retry_after --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("5", 5.0, id="seconds"),
        pytest.param("0", 0.0, id="zero"),
        pytest.param("1.5", 1.5, id="fractional"),
        pytest.param(" 7 ", 7.0, id="padded"),
        pytest.param("120", 120.0, id="two-minutes"),
        pytest.param("-3", 0.0, id="negative-clamped"),
        pytest.param("-0.5", 0.0, id="negative-fraction-clamped"),
        pytest.param("Tue, 13 May 2025 12:01:30 GMT", 90.0, id="http-date-future"),
        pytest.param("Tue, 13 May 2025 17:01:30 +0500", 90.0, id="http-date-with-offset"),
        pytest.param("Tue, 13 May 2025 12:01:30 -0000", 90.0, id="http-date-naive-is-utc"),
        pytest.param("Wed, 14 May 2025 12:00:00 GMT", 86_400.0, id="http-date-next-day"),
        pytest.param("Tue, 13 May 2025 11:59:00 GMT", 0.0, id="http-date-past-clamped"),
        pytest.param("Wed, 21 Oct 2015 07:28:00 GMT", 0.0, id="http-date-long-past"),
    ],
)
def test_parse_retry_after_values(value, expected):
    assert parse_retry_after(value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param("soon", id="word"),
        pytest.param("5 seconds", id="seconds-with-unit"),
        pytest.param("Tue, 13 May 2025", id="date-without-time"),
        pytest.param("Tue, 32 May 2025 12:00:00 GMT", id="impossible-date"),
        pytest.param("Tue, 13 May 2025 12:00:00 +9999", id="impossible-offset"),
        pytest.param("inf", id="inf"),
        pytest.param("-inf", id="minus-inf"),
        pytest.param("Infinity", id="infinity"),
        pytest.param("nan", id="nan"),
        pytest.param("NaN", id="NaN"),
        pytest.param("1e400", id="overflows-to-inf"),
    ],
)
def test_parse_retry_after_unusable_is_none(value):
    assert parse_retry_after(value, now=NOW) is None


# parsedate_to_datetime raises OverflowError for dates whose fields do not fit; unusable means None.
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Mon, 01 Jan 2024 00:00:00 +9999999999999", id="huge-offset"),
        pytest.param("Mon, 01 Jan 99999999999999999999 00:00:00 GMT", id="huge-year"),
        pytest.param("Mon, 99999999999999999999 Jan 2024 00:00:00 GMT", id="huge-day"),
        pytest.param("Mon, 01 Jan 2024 99999999999999999999:00:00 GMT", id="huge-hour"),
    ],
)
def test_parse_retry_after_overflowing_date_is_none(value):
    assert parse_retry_after(value, now=NOW) is None


# A throttled or unavailable post is certainly not delivered whatever its Retry-After says.
@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        pytest.param(429, ErrorType.RATE_LIMIT, id="429"),
        pytest.param(503, ErrorType.TRANSIENT, id="503"),
    ],
)
def test_classify_survives_overflowing_retry_after(status, error_type):
    headers = {"Retry-After": "Mon, 01 Jan 2024 00:00:00 +9999999999999"}
    result = classify(status, headers, b"", is_post=True)
    assert isinstance(result, Failure)
    assert result.error_type is error_type
    assert result.delivery is NOT_DELIVERED
    assert result.retry_after is None


def test_parse_retry_after_defaults_now_to_the_clock():
    """Without ``now`` a date decades ahead is still decades away (no clock read in the test)."""
    seconds = parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT")
    assert seconds is not None
    assert seconds > 50 * 365 * 86_400


@settings(deadline=None, max_examples=300, database=None)
@given(st.text(max_size=60))
def test_fuzz_parse_retry_after_text(value):
    seconds = parse_retry_after(value, now=NOW)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


@settings(deadline=None, max_examples=300, database=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_fuzz_parse_retry_after_numbers(number):
    assert parse_retry_after(repr(number), now=NOW) == max(number, 0.0)


@settings(deadline=None, max_examples=300, database=None)
@given(
    st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2090, 1, 1),
        timezones=st.just(UTC),
    )
)
def test_fuzz_parse_retry_after_http_dates(when):
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    expected = max((when.replace(microsecond=0) - NOW).total_seconds(), 0.0)
    assert parse_retry_after(header, now=NOW) == pytest.approx(expected)
    assert parse_retry_after(header, now=NOW + timedelta(days=50_000)) == 0.0


# --- snippet ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "limit", "expected"),
    [
        pytest.param(b"", 300, "", id="empty"),
        pytest.param(b"  Contact  Administrator \r\n", 300, "Contact Administrator", id="spaces"),
        pytest.param(b"<h1>502</h1>\n<p>Bad\tGateway</p>", 300, "<h1>502</h1> <p>Bad Gateway</p>",
                     id="html-whitespace-collapsed"),
        pytest.param(b"abcdef", 3, "abc…", id="cut-with-ellipsis"),
        pytest.param(b"abc", 3, "abc", id="exactly-limit-no-ellipsis"),
        pytest.param(b"ok \xff\xfe", 300, "ok \ufffd\ufffd", id="invalid-utf8-replaced"),
    ],
)  # fmt: skip
def test_snippet(body, limit, expected):
    assert snippet(body, limit) == expected


@settings(deadline=None, max_examples=300, database=None)
@given(st.binary(max_size=2_000), st.integers(min_value=0, max_value=500))
def test_fuzz_snippet_is_bounded_single_line(body, limit):
    text = snippet(body, limit)
    assert len(text) <= limit + 1
    assert "\n" not in text
    assert text == text.strip()
