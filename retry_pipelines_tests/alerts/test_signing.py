"""The signature scheme: what verify accepts, and each way it refuses, with its own error."""

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retry_pipelines.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    FutureTimestamp,
    MalformedHeader,
    MissingHeader,
    SignatureMismatch,
    StaleTimestamp,
    sign,
    signing,
    verify,
)

SECRET = "whsec-test-1"
AT = 1_764_675_000
BODY = b'{"kind":"run_failure"}'


def test_scheme_is_hmac_sha256_over_timestamp_dot_body():
    headers = sign(BODY, SECRET, timestamp=AT)
    assert headers == {
        TIMESTAMP_HEADER: "1764675000",
        SIGNATURE_HEADER: "v1=81f8b105d9a5eb3697ee553da92d2d3ce20a3eab69e22ee1ea6676f768e8686c",
    }


def test_a_fresh_signature_verifies_with_any_header_case():
    headers = sign(BODY, SECRET, timestamp=AT)
    verify(BODY, headers, SECRET, now=AT)
    verify(BODY, {k.lower(): v for k, v in headers.items()}, SECRET, now=AT + 10)


def test_a_tampered_body_is_rejected():
    headers = sign(BODY, SECRET, timestamp=AT)
    with pytest.raises(SignatureMismatch, match="signature does not match"):
        verify(BODY.replace(b"run", b"fun"), headers, SECRET, now=AT)


def test_a_wrong_secret_is_rejected():
    headers = sign(BODY, SECRET, timestamp=AT)
    with pytest.raises(SignatureMismatch):
        verify(BODY, headers, "another-secret", now=AT)


def test_a_changed_timestamp_is_a_mismatch_not_a_fresh_request():
    headers = {**sign(BODY, SECRET, timestamp=AT - 3600), TIMESTAMP_HEADER: str(AT)}
    with pytest.raises(SignatureMismatch):
        verify(BODY, headers, SECRET, now=AT)


def test_stale_timestamps_are_rejected_beyond_the_tolerance():
    headers = sign(BODY, SECRET, timestamp=AT)
    verify(BODY, headers, SECRET, now=AT + 300)
    with pytest.raises(StaleTimestamp, match="301 s old, more than the 300 s allowed"):
        verify(BODY, headers, SECRET, now=AT + 301)
    verify(BODY, headers, SECRET, now=AT + 900, tolerance_seconds=900)


def test_future_timestamps_are_rejected_beyond_the_tolerance():
    headers = sign(BODY, SECRET, timestamp=AT)
    verify(BODY, headers, SECRET, now=AT - 300)
    with pytest.raises(FutureTimestamp, match="301 s in the future"):
        verify(BODY, headers, SECRET, now=AT - 301)


@pytest.mark.parametrize("missing", [TIMESTAMP_HEADER, SIGNATURE_HEADER])
def test_missing_headers_are_named(missing):
    headers = sign(BODY, SECRET, timestamp=AT)
    del headers[missing]
    with pytest.raises(MissingHeader, match=f"missing header {missing}"):
        verify(BODY, headers, SECRET, now=AT)


@pytest.mark.parametrize("stamp", ["", "abc", "-5", "1.5", "1e9", "17646750001234", " 12 34"])
def test_malformed_timestamps_are_rejected(stamp):
    headers = {**sign(BODY, SECRET, timestamp=AT), TIMESTAMP_HEADER: stamp}
    with pytest.raises(MalformedHeader, match=TIMESTAMP_HEADER):
        verify(BODY, headers, SECRET, now=AT)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "expected scheme=value"),
        ("deadbeef", "expected scheme=value"),
        ("v1=xyz", "64 lowercase hex"),
        ("v1=" + "A" * 64, "64 lowercase hex"),
        ("v0=" + "a" * 64, "no v1 signature"),
    ],
)
def test_malformed_signature_headers_are_rejected(value, problem):
    headers = {**sign(BODY, SECRET, timestamp=AT), SIGNATURE_HEADER: value}
    with pytest.raises(MalformedHeader, match=problem):
        verify(BODY, headers, SECRET, now=AT)


def test_any_matching_v1_entry_is_accepted_for_secret_rotation():
    good = sign(BODY, SECRET, timestamp=AT)[SIGNATURE_HEADER]
    old = sign(BODY, "old-secret", timestamp=AT)[SIGNATURE_HEADER]
    headers = {TIMESTAMP_HEADER: str(AT), SIGNATURE_HEADER: f"v0=zz, {old}, {good}"}
    verify(BODY, headers, SECRET, now=AT)


def test_signatures_are_compared_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signing.hmac, "compare_digest", spy)
    headers = sign(BODY, SECRET, timestamp=AT)
    verify(BODY, headers, SECRET, now=AT)
    with pytest.raises(SignatureMismatch):
        verify(BODY + b" ", headers, SECRET, now=AT)
    expected = hmac.new(SECRET.encode(), b"1764675000." + BODY, hashlib.sha256).hexdigest()
    assert calls[0] == (expected.encode(), expected.encode())
    assert len(calls) == 2


def test_an_empty_secret_is_refused_on_both_sides():
    with pytest.raises(ValueError, match="secret is required"):
        sign(BODY, "", timestamp=AT)
    with pytest.raises(ValueError, match="secret is required"):
        verify(BODY, sign(BODY, SECRET, timestamp=AT), "", now=AT)


secrets = st.text(min_size=1, max_size=64)
stamps = st.integers(min_value=0, max_value=10**11)


@given(body=st.binary(max_size=2048), secret=secrets, at=stamps)
def test_property_every_signed_body_verifies(body, secret, at):
    verify(body, sign(body, secret, timestamp=at), secret, now=at)


@given(body=st.binary(min_size=1, max_size=2048), secret=secrets, at=stamps, data=st.data())
def test_property_any_single_byte_change_fails(body, secret, at, data):
    headers = sign(body, secret, timestamp=at)
    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    byte = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != body[index]))
    changed = body[:index] + bytes([byte]) + body[index + 1 :]
    with pytest.raises(SignatureMismatch):
        verify(changed, headers, secret, now=at)
