"""Asserting a real-world sample's ``expected`` against an outcome of the project's parsers."""

from __future__ import annotations

from retry_pipelines.domain.errors import Failure
from retry_pipelines.domain.scrub import MAX_MESSAGE_LENGTH
from retry_pipelines.gateways.fbr_parse import Accepted
from retry_pipelines.gateways.paypal_parse import Created
from retry_pipelines.store import tables
from retry_pipelines.store.clean import clean_value
from retry_pipelines_tests.support.realworld import Sample

BARE_WORDS = frozenset({"", "invalid", "rejected", "error", "failed", "01", "no message"})
"""What a recorded message or code must never be on its own: it says nothing of the reason."""


def assert_expected(sample: Sample, result: object) -> None:
    """``result`` is the outcome ``sample.expected`` names (accepted, created, adopted, failure)."""
    expected, kind = sample.expected, sample.kind
    where = f"{sample.id}: {result!r}"
    if kind == "accepted":
        assert isinstance(result, Accepted), where
        assert result.invoice_number == expected["invoice_number"], where
    elif kind in ("created", "adopted"):
        assert isinstance(result, Created), where
        assert result.payout_batch_id == expected["payout_batch_id"], where
        assert result.adopted is (kind == "adopted"), where
    elif kind == "failure":
        assert isinstance(result, Failure), where
        assert result.error_type.value in expected["error_type"], where
        assert result.delivery.value in expected["delivery"], where
        if "error_code" in expected:
            assert result.error_code == expected["error_code"], where
        if "message_contains" in expected:
            assert expected["message_contains"] in result.message, where
    else:
        raise AssertionError(f"{sample.id}: no response outcome for kind {kind!r}")


def assert_recordable(sample: Sample, failure: object, table: str) -> tuple[str, str]:
    """The code and message ``failure`` leaves in ``table``'s ``error_code``/``error_message``
    after the store's boundary cleaner: non-empty, bounded, and more than a bare status word.
    Returns them."""
    assert isinstance(failure, Failure), f"{sample.id}: {failure!r}"
    columns = getattr(tables, table).c
    code = clean_value(columns.error_code, failure.error_code)
    message = clean_value(columns.error_message, failure.message)
    assert isinstance(code, str), code
    assert isinstance(message, str), message
    assert code.strip().lower() not in BARE_WORDS, f"{sample.id}: code {code!r}"
    assert message.strip().lower() not in BARE_WORDS, f"{sample.id}: message {message!r}"
    assert len(code) <= columns.error_code.type.length
    assert len(message) <= MAX_MESSAGE_LENGTH
    if "error_code" in sample.expected:
        assert code == sample.expected["error_code"], sample.id
    if "message_contains" in sample.expected:
        assert sample.expected["message_contains"] in message, sample.id
    return code, message
