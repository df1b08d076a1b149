import re

import pytest

from retry_pipelines.domain.errors import (
    GATEWAY_LEVEL,
    NEVER_RETRIED,
    Delivery,
    ErrorType,
    Failure,
)


def test_error_sets():
    assert {ErrorType.PERMANENT, ErrorType.VALIDATION} == NEVER_RETRIED
    assert {ErrorType.RATE_LIMIT, ErrorType.TOKEN_EXPIRED} == GATEWAY_LEVEL
    assert not NEVER_RETRIED & GATEWAY_LEVEL


@pytest.mark.parametrize("error_type", list(ErrorType))
def test_gateway_level_and_ambiguous_flags(error_type):
    failure = Failure(error_type, "x")
    assert failure.gateway_level is (error_type in GATEWAY_LEVEL)
    assert failure.delivery is Delivery.NOT_DELIVERED
    assert not failure.ambiguous
    assert Failure(error_type, "x", delivery=Delivery.AMBIGUOUS).ambiguous


@pytest.mark.parametrize(
    ("failure", "summary"),
    [
        (Failure(ErrorType.VALIDATION, "bad NTN", error_code="0052"), "VALIDATION 0052: bad NTN"),
        (Failure(ErrorType.NETWORK, "read timeout"), "NETWORK: read timeout"),
        (Failure(ErrorType.TRANSIENT, "oops", error_code=""), "TRANSIENT: oops"),
    ],
)
def test_summary(failure, summary):
    assert failure.summary() == summary


def test_retry_after_must_not_be_negative():
    with pytest.raises(
        ValueError, match=re.escape("retry_after must be finite and >= 0 seconds, got -1.0")
    ):
        Failure(ErrorType.RATE_LIMIT, "slow down", retry_after=-1.0)
    assert Failure(ErrorType.RATE_LIMIT, "slow down", retry_after=0.0).retry_after == 0.0
