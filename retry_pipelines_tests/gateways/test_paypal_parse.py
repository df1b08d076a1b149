"""PayPal create outcomes, row by row from the retry table in specs/EXTERNAL_APIS.md section 2."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.gateways.paypal_parse import Created, classify_create

AMBIGUOUS, NOT_DELIVERED = Delivery.AMBIGUOUS, Delivery.NOT_DELIVERED
BASE = "https://api-m.sandbox.paypal.com"


def error(name, message="boom", **extra):
    return json.dumps({"name": name, "message": message, "debug_id": "d1", **extra}).encode()


DUPLICATE = error(
    "USER_BUSINESS_ERROR",
    "User business error.",
    details=[
        {
            "field": "SENDER_BATCH_ID",
            "location": "body",
            "issue": "Batch with given sender_batch_id already exists",
            "link": [{"href": f"{BASE}/v1/payments/payouts/5UXD2E8A7EBQJ", "rel": "self"}],
        }
    ],
)


def test_created_batch():
    body = json.dumps(
        {"batch_header": {"payout_batch_id": "FYXMPQTX4JC9N", "batch_status": "PENDING"}}
    ).encode()
    assert classify_create(201, {}, body) == Created("FYXMPQTX4JC9N", "PENDING")


def test_duplicate_sender_batch_id_adopts_the_linked_batch():
    assert classify_create(400, {}, DUPLICATE) == Created("5UXD2E8A7EBQJ", None, adopted=True)


def test_duplicate_without_a_link_is_not_a_new_batch():
    body = error(
        "USER_BUSINESS_ERROR",
        details=[{"issue": "Batch with given sender_batch_id already exists"}],
    )
    result = classify_create(400, {}, body)
    assert isinstance(result, Failure)
    assert (result.error_type, result.error_code) == (ErrorType.PERMANENT, "DUPLICATE_WITHOUT_LINK")


@pytest.mark.parametrize(
    ("status", "body", "headers", "error_type", "delivery", "code"),
    [
        (
            500,
            error("INTERNAL_SERVER_ERROR"),
            {},
            ErrorType.TRANSIENT,
            AMBIGUOUS,
            "INTERNAL_SERVER_ERROR",
        ),
        (500, b"<html>oops</html>", {}, ErrorType.TRANSIENT, AMBIGUOUS, "HTTP_500"),
        (
            503,
            error("SERVICE_UNAVAILABLE"),
            {},
            ErrorType.TRANSIENT,
            NOT_DELIVERED,
            "SERVICE_UNAVAILABLE",
        ),
        (
            429,
            error("RATE_LIMIT_REACHED"),
            {"Retry-After": "7"},
            ErrorType.RATE_LIMIT,
            NOT_DELIVERED,
            "RATE_LIMIT_REACHED",
        ),
        (
            401,
            error("AUTHENTICATION_FAILURE"),
            {},
            ErrorType.TOKEN_EXPIRED,
            NOT_DELIVERED,
            "AUTHENTICATION_FAILURE",
        ),
        (
            400,
            error("USER_BUSINESS_ERROR", details=[{"issue": "try a different sender_batch_ID"}]),
            {},
            ErrorType.PERMANENT,
            NOT_DELIVERED,
            "USER_BUSINESS_ERROR",
        ),
        (400, error("INVALID_REQUEST"), {}, ErrorType.VALIDATION, NOT_DELIVERED, "INVALID_REQUEST"),
        (
            400,
            error("VALIDATION_ERROR"),
            {},
            ErrorType.VALIDATION,
            NOT_DELIVERED,
            "VALIDATION_ERROR",
        ),
        (
            400,
            error("NON_HOLDING_CURRENCY"),
            {},
            ErrorType.VALIDATION,
            NOT_DELIVERED,
            "NON_HOLDING_CURRENCY",
        ),
        (403, error("NOT_AUTHORIZED"), {}, ErrorType.PERMANENT, NOT_DELIVERED, "NOT_AUTHORIZED"),
        (403, error("SENDER_LOCKED"), {}, ErrorType.PERMANENT, NOT_DELIVERED, "SENDER_LOCKED"),
        (
            422,
            error("INSUFFICIENT_FUNDS"),
            {},
            ErrorType.PERMANENT,
            NOT_DELIVERED,
            "INSUFFICIENT_FUNDS",
        ),
        (
            400,
            error("RATE_LIMIT_VALIDATION_FAILURES"),
            {},
            ErrorType.TRANSIENT,
            NOT_DELIVERED,
            "RATE_LIMIT_VALIDATION_FAILURES",
        ),
        (
            409,
            error("PREVIOUS_REQUEST_IN_PROGRESS"),
            {},
            ErrorType.TRANSIENT,
            NOT_DELIVERED,
            "PREVIOUS_REQUEST_IN_PROGRESS",
        ),
        (409, error("RESOURCE_CONFLICT"), {}, ErrorType.TRANSIENT, AMBIGUOUS, "RESOURCE_CONFLICT"),
        (201, b"", {}, ErrorType.UNKNOWN, AMBIGUOUS, "BAD_SHAPE"),
        (
            201,
            b'{"batch_header": {"payout_batch_id": ',
            {},
            ErrorType.UNKNOWN,
            AMBIGUOUS,
            "BAD_SHAPE",
        ),
    ],
)
def test_failures(status, body, headers, error_type, delivery, code):
    result = classify_create(status, headers, body)
    assert isinstance(result, Failure)
    assert (result.error_type, result.delivery, result.error_code, result.http_status) == (
        error_type,
        delivery,
        code,
        status,
    )
    if status == 429:
        assert result.retry_after == 7.0


@settings(deadline=None, max_examples=300)
@given(st.integers(100, 599), st.binary(max_size=2000))
def test_never_raises_and_never_invents_a_batch(status, body):
    result = classify_create(status, {}, body)
    assert isinstance(result, Created | Failure)
    if isinstance(result, Created):
        assert result.payout_batch_id


def test_oauth_shaped_refusal_on_the_api_names_the_oauth_error():
    body = json.dumps(
        {"error": "invalid_token", "error_description": "Token signature verification failed"}
    ).encode()
    result = classify_create(401, {}, body)
    assert isinstance(result, Failure)
    assert (result.error_type, result.error_code) == (ErrorType.TOKEN_EXPIRED, "invalid_token")
    assert result.message == "invalid_token: Token signature verification failed"


def test_message_carries_the_issues_of_details_and_the_debug_id():
    details = [{"field": f"items[{n}].receiver", "issue": f"bad {n}"} for n in range(5)]
    result = classify_create(400, {}, error("VALIDATION_ERROR", "see details", details=details))
    assert isinstance(result, Failure)
    assert result.message == (
        "VALIDATION_ERROR: see details (items[0].receiver: bad 0; items[1].receiver: bad 1; "
        "items[2].receiver: bad 2) [debug_id d1]"
    )


def test_an_error_without_a_message_reads_as_its_name_and_debug_id():
    body = b'{"name":"INTERNAL_SERVICE_ERROR","debugId":"1635acf4b1f6c"}'
    result = classify_create(503, {}, body)
    assert isinstance(result, Failure)
    assert result.message == "INTERNAL_SERVICE_ERROR: no message [debug_id 1635acf4b1f6c]"
