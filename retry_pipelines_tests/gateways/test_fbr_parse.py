"""The FBR response classifier: every wire shape of EXTERNAL_APIS.md section 1, then fuzzing.

Sample bodies are the spec's own (PRAL DI API v1.12): HTTP 200 carries success *and* rejection,
the WSO2 gateway answers 401/429 with a ``fault`` envelope, and anything that may follow FBR
issuing a number is ambiguous on a post because FBR has no idempotency key.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.gateways import http as http_module
from retry_pipelines.gateways.fbr_parse import Accepted, classify

AMBIGUOUS = Delivery.AMBIGUOUS
NOT_DELIVERED = Delivery.NOT_DELIVERED
NUMBER = "7000007DI1747119701593"
MAX_MESSAGE = 6_000
"""Failure messages are stored and shown to operators: bounded whatever FBR sends back."""

# --- spec sample bodies -------------------------------------------------------------------------

SUCCESS = {
    "invoiceNumber": NUMBER,
    "dated": "2025-05-13 12:01:41",
    "validationResponse": {
        "statusCode": "00",
        "status": "Valid",
        "error": "",
        "invoiceStatuses": [
            {
                "itemSNo": "1",
                "statusCode": "00",
                "status": "Valid",
                "invoiceNo": f"{NUMBER}-1",
                "errorCode": "",
                "error": "",
            },
            {
                "itemSNo": "2",
                "statusCode": "00",
                "status": "Valid",
                "invoiceNo": f"{NUMBER}-2",
                "errorCode": "",
                "error": "",
            },
        ],
    },
}

HEADER_REJECTION = {
    "dated": "2025-05-13 13:09:05",
    "validationResponse": {
        "statusCode": "01",
        "status": "Invalid",
        "errorCode": "0052",
        "error": "Provide proper HS Code with invoice no. null",
        "invoiceStatuses": None,
    },
}

ITEM_REJECTION = {
    "dated": "2025-05-13 13:10:00",
    "validationResponse": {
        "statusCode": "00",
        "status": "invalid",
        "error": "",
        "invoiceStatuses": [
            {
                "itemSNo": "1",
                "statusCode": "01",
                "status": "Invalid",
                "invoiceNo": None,
                "errorCode": "0046",
                "error": "Provide rate.",
            }
        ],
    },
}

VALIDATE_SUCCESS = {
    "dated": "2025-05-13 12:01:41",
    "validationResponse": {
        "statusCode": "00",
        "status": "Valid",
        "error": "",
        "invoiceStatuses": [
            {"itemSNo": "1", "statusCode": "00", "status": "Valid", "invoiceNo": None}
        ],
    },
}

WSO2_INVALID = {
    "fault": {
        "code": 900901,
        "message": "Invalid Credentials",
        "description": "Access failure for API: /di_data/v1, version: v1 status: (900901)",
    }
}
WSO2_MISSING = {
    "fault": {
        "code": 900902,
        "message": "Missing Credentials",
        "description": "Required OAuth credentials not provided.",
    }
}
WSO2_THROTTLED = {"fault": {"code": 900800, "message": "Message throttled out"}}

HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def encode(value) -> bytes:
    return json.dumps(value).encode()


_DROP = object()


def variant(base: dict, **changes) -> dict:
    """A deep copy of a sample; ``validationResponse__x`` and ``item0__x`` reach inside."""
    data = copy.deepcopy(base)
    for key, value in changes.items():
        if key.startswith("validationResponse__"):
            data["validationResponse"][key.split("__", 1)[1]] = value
        elif key.startswith("item"):
            index, field = key[4:].split("__", 1)
            data["validationResponse"]["invoiceStatuses"][int(index)][field] = value
        elif value is _DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def failure(result) -> Failure:
    assert isinstance(result, Failure), f"expected a Failure, got {result!r}"
    return result


# --- success ------------------------------------------------------------------------------------


def test_post_success_is_accepted_with_number_date_and_item_numbers():
    result = classify(200, {"Content-Type": "application/json"}, encode(SUCCESS), is_post=True)
    assert result == Accepted(NUMBER, "2025-05-13 12:01:41", (f"{NUMBER}-1", f"{NUMBER}-2"))


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            variant(SUCCESS, validationResponse__invoiceStatuses=None),
            Accepted(NUMBER, "2025-05-13 12:01:41", ()),
            id="no-item-statuses",
        ),
        pytest.param(
            variant(SUCCESS, dated=_DROP),
            Accepted(NUMBER, None, (f"{NUMBER}-1", f"{NUMBER}-2")),
            id="no-dated",
        ),
        pytest.param(
            variant(SUCCESS, item1__invoiceNo=None),
            Accepted(NUMBER, "2025-05-13 12:01:41", (f"{NUMBER}-1",)),
            id="item-without-number-skipped",
        ),
        pytest.param(
            variant(SUCCESS, invoiceNumber=f"  {NUMBER}\n"),
            Accepted(NUMBER, "2025-05-13 12:01:41", (f"{NUMBER}-1", f"{NUMBER}-2")),
            id="number-whitespace-stripped",
        ),
    ],
)
def test_post_success_variants(body, expected):
    assert classify(200, {}, encode(body), is_post=True) == expected


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(VALIDATE_SUCCESS, id="spec-shape-without-number"),
        pytest.param(SUCCESS, id="number-present-is-ignored"),
    ],
)
def test_validate_success_needs_no_number(body):
    result = classify(200, {}, encode(body), is_post=False)
    assert isinstance(result, Accepted)
    assert result.invoice_number == ""
    assert result.item_numbers == ()
    assert result.dated == body["dated"]


# --- every failure shape, as a table ------------------------------------------------------------

# (status, headers, body, is_post, error_type, delivery, error_code, retry_after, message parts)
FAILURE_CASES = [
    # FBR rejections in an HTTP 200: the data is at fault, FBR issued nothing.
    pytest.param(
        200, {}, encode(HEADER_REJECTION), True,
        ErrorType.VALIDATION, NOT_DELIVERED, "0052", None, ["Provide proper HS Code"],
        id="header-rejection-post",
    ),
    pytest.param(
        200, {}, encode(HEADER_REJECTION), False,
        ErrorType.VALIDATION, NOT_DELIVERED, "0052", None, ["Provide proper HS Code"],
        id="header-rejection-validate",
    ),
    pytest.param(
        200, {}, encode(variant(HEADER_REJECTION, validationResponse__error="")), True,
        ErrorType.VALIDATION, NOT_DELIVERED, "0052", None, ["Invalid"],
        id="header-rejection-empty-error-uses-status",
    ),
    # Header 01 with empty error fields: the reason and code are the first failed item's.
    pytest.param(
        200, {},
        encode(
            variant(
                ITEM_REJECTION, validationResponse__statusCode="01",
                validationResponse__errorCode="", validationResponse__error="",
            )
        ),
        True, ErrorType.VALIDATION, NOT_DELIVERED, "0046", None, ["item 1: Provide rate."],
        id="header-01-empty-error-falls-back-to-item",
    ),
    pytest.param(
        200, {},
        encode(
            variant(
                ITEM_REJECTION, validationResponse__statusCode="01",
                validationResponse__errorCode="", validationResponse__error="",
                item0__errorCode="",
            )
        ),
        True, ErrorType.VALIDATION, NOT_DELIVERED, "ITEM_INVALID", None, ["item 1"],
        id="header-01-empty-error-item-without-code",
    ),
    pytest.param(
        200, {},
        encode(
            variant(
                HEADER_REJECTION, validationResponse__errorCode="", validationResponse__error="",
            )
        ),
        True, ErrorType.VALIDATION, NOT_DELIVERED, "REJECTED_NO_CODE", None,
        ["without a reason", "'Invalid'"],
        id="header-01-with-no-reason-anywhere",
    ),
    pytest.param(
        200, {}, encode(ITEM_REJECTION), True,
        ErrorType.VALIDATION, NOT_DELIVERED, "0046", None, ["item 1", "Provide rate."],
        id="item-rejection-post",
    ),
    pytest.param(
        200, {}, encode(ITEM_REJECTION), False,
        ErrorType.VALIDATION, NOT_DELIVERED, "0046", None, ["item 1", "Provide rate."],
        id="item-rejection-validate",
    ),
    pytest.param(
        200, {},
        encode(
            variant(
                SUCCESS, invoiceNumber=_DROP, validationResponse__status="invalid",
                item1__statusCode="01", item1__errorCode="0052", item1__invoiceNo=None,
                item1__error="HS code does not match sale type",
            )
        ),
        True,
        ErrorType.VALIDATION, NOT_DELIVERED, "0052", None,
        ["item 2", "HS code does not match sale type"],
        id="second-item-rejected-names-item-2",
    ),
    pytest.param(
        200, {}, encode(variant(ITEM_REJECTION, item0__errorCode="")), True,
        ErrorType.VALIDATION, NOT_DELIVERED, "ITEM_INVALID", None, ["item 1"],
        id="item-rejection-without-code",
    ),
    # 0401/0402: token not authorised for this seller/buyer: configuration, never retried.
    pytest.param(
        200, {}, encode(variant(HEADER_REJECTION, validationResponse__errorCode="0401")), True,
        ErrorType.PERMANENT, NOT_DELIVERED, "0401", None, [],
        id="header-0401-permanent",
    ),
    pytest.param(
        200, {}, encode(variant(HEADER_REJECTION, validationResponse__errorCode="0402")), True,
        ErrorType.PERMANENT, NOT_DELIVERED, "0402", None, [],
        id="header-0402-permanent",
    ),
    pytest.param(
        200, {}, encode(variant(ITEM_REJECTION, item0__errorCode="0401")), True,
        ErrorType.PERMANENT, NOT_DELIVERED, "0401", None, ["item 1"],
        id="item-0401-permanent",
    ),
    pytest.param(
        200, {}, encode(variant(ITEM_REJECTION, item0__errorCode="0402")), False,
        ErrorType.PERMANENT, NOT_DELIVERED, "0402", None, ["item 1"],
        id="item-0402-validate-permanent",
    ),
    # A number *and* a failed item: FBR may have issued the invoice: hold, never re-post.
    pytest.param(
        200, {}, encode(variant(ITEM_REJECTION, invoiceNumber=NUMBER)), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "NUMBER_WITH_ITEM_ERRORS", None,
        [NUMBER, "item 1", "Provide rate."],
        id="number-with-item-error-post-held",
    ),
    pytest.param(
        200, {}, encode(variant(ITEM_REJECTION, invoiceNumber=NUMBER)), False,
        ErrorType.UNKNOWN, NOT_DELIVERED, "NUMBER_WITH_ITEM_ERRORS", None, [NUMBER],
        id="number-with-item-error-validate",
    ),
    # statusCode 00 but no number on a post: FBR's answer is incomplete, the outcome unknown.
    pytest.param(
        200, {}, encode(variant(SUCCESS, invoiceNumber=_DROP)), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "NO_NUMBER", None, [],
        id="status-00-number-missing-post",
    ),
    pytest.param(
        200, {}, encode(variant(SUCCESS, invoiceNumber="")), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "NO_NUMBER", None, [],
        id="status-00-number-empty-post",
    ),
    pytest.param(
        200, {}, encode(variant(SUCCESS, invoiceNumber=None)), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "NO_NUMBER", None, [],
        id="status-00-number-null-post",
    ),
    pytest.param(
        200, {}, encode(variant(SUCCESS, invoiceNumber="   ")), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "NO_NUMBER", None, [],
        id="status-00-number-blank-post",
    ),
    pytest.param(
        200, {}, encode(variant(HEADER_REJECTION, validationResponse__statusCode="99")), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_SHAPE", None, ["'99'"],
        id="unrecognised-status-code-post",
    ),
    pytest.param(
        200, {}, encode(variant(HEADER_REJECTION, validationResponse__statusCode="99")), False,
        ErrorType.UNKNOWN, NOT_DELIVERED, "BAD_SHAPE", None, ["'99'"],
        id="unrecognised-status-code-validate",
    ),
    # WSO2 gateway faults: the request never reached FBR.
    pytest.param(
        401, {}, encode(WSO2_INVALID), True,
        ErrorType.TOKEN_EXPIRED, NOT_DELIVERED, "900901", None, ["Invalid Credentials"],
        id="wso2-401-invalid-credentials",
    ),
    pytest.param(
        401, {}, encode(WSO2_MISSING), True,
        ErrorType.TOKEN_EXPIRED, NOT_DELIVERED, "900902", None, ["Missing Credentials"],
        id="wso2-401-missing-credentials",
    ),
    pytest.param(
        401, {}, encode(WSO2_MISSING), False,
        ErrorType.TOKEN_EXPIRED, NOT_DELIVERED, "900902", None, ["Missing Credentials"],
        id="wso2-401-validate",
    ),
    pytest.param(
        401, {}, b"Unauthorized", True,
        ErrorType.TOKEN_EXPIRED, NOT_DELIVERED, "HTTP_401", None, ["Unauthorized"],
        id="401-plain-text",
    ),
    pytest.param(
        401, {}, b"", True,
        ErrorType.TOKEN_EXPIRED, NOT_DELIVERED, "HTTP_401", None, ["HTTP 401"],
        id="401-empty",
    ),
    pytest.param(
        401, {}, b"[1, 2]", True,
        ErrorType.TOKEN_EXPIRED, NOT_DELIVERED, "HTTP_401", None, [],
        id="401-json-array",
    ),
    pytest.param(
        403, {}, b"<html>Forbidden</html>", True,
        ErrorType.TOKEN_EXPIRED, NOT_DELIVERED, "HTTP_403", None, ["Forbidden"],
        id="403-post",
    ),
    pytest.param(
        403, {}, b"", False,
        ErrorType.TOKEN_EXPIRED, NOT_DELIVERED, "HTTP_403", None, ["HTTP 403"],
        id="403-validate-empty",
    ),
    pytest.param(
        403, {}, encode({"fault": {"code": 900908, "message": "Resource forbidden "}}), True,
        ErrorType.TOKEN_EXPIRED, NOT_DELIVERED, "900908", None,
        ["Resource forbidden", "FBR_API_TOKEN", "FBR_API_BASE_URL"],
        id="403-wso2-900908-wrong-token-or-environment",
    ),
    # Throttling: never reached FBR; honour Retry-After.
    pytest.param(
        429, {"Retry-After": "5"}, encode(WSO2_THROTTLED), True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "900800", 5.0, ["Message throttled out"],
        id="429-wso2-fault-retry-after-seconds",
    ),
    pytest.param(
        429, {"retry-after": "1.5"}, b"", True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "HTTP_429", 1.5, ["HTTP 429"],
        id="429-lowercase-header-fractional",
    ),
    pytest.param(
        429, {"RETRY-AFTER": "0"}, b"", False,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "HTTP_429", 0.0, [],
        id="429-uppercase-header-zero",
    ),
    pytest.param(
        429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, b"", True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "HTTP_429", 0.0, [],
        id="429-http-date-in-the-past",
    ),
    pytest.param(
        429, {}, b"", True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "HTTP_429", None, [],
        id="429-without-retry-after",
    ),
    pytest.param(
        429, {"Retry-After": "soon"}, b"", True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "HTTP_429", None, [],
        id="429-garbage-retry-after",
    ),
    pytest.param(
        429, {"Retry-After": "-10"}, b"", True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "HTTP_429", 0.0, [],
        id="429-negative-retry-after",
    ),
    pytest.param(
        429, {"Retry-After": "inf"}, b"", True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "HTTP_429", None, [],
        id="429-infinite-retry-after",
    ),
    pytest.param(
        429, {}, encode({"fault": {"code": 900802, "message": "Message throttled out"}}), True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "900802", None, ["Message throttled out"],
        id="429-wso2-fault-without-retry-after",
    ),
    pytest.param(
        429, {}, encode({"code": "900804", "message": "Message throttled out"}), True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "900804", None, ["Message throttled out"],
        id="429-wso2-flat-without-next-access-time",
    ),
    # Server errors: on a post FBR may already have issued a number.
    pytest.param(
        500, {}, b"Contact Administrator", True,
        ErrorType.TRANSIENT, AMBIGUOUS, "HTTP_500", None, ["Contact Administrator"],
        id="500-post-ambiguous",
    ),
    pytest.param(
        500, {}, b"Contact Administrator", False,
        ErrorType.TRANSIENT, NOT_DELIVERED, "HTTP_500", None, ["Contact Administrator"],
        id="500-validate",
    ),
    pytest.param(
        502, {"Content-Type": "text/html"}, HTML_502, True,
        ErrorType.TRANSIENT, AMBIGUOUS, "HTTP_502", None, ["502 Bad Gateway"],
        id="502-html-post-ambiguous",
    ),
    pytest.param(
        502, {"Content-Type": "text/html"}, HTML_502, False,
        ErrorType.TRANSIENT, NOT_DELIVERED, "HTTP_502", None, ["502 Bad Gateway"],
        id="502-html-validate",
    ),
    pytest.param(
        504, {}, b"", True,
        ErrorType.TRANSIENT, AMBIGUOUS, "HTTP_504", None, ["empty body"],
        id="504-post-ambiguous",
    ),
    pytest.param(
        504, {}, b"", False,
        ErrorType.TRANSIENT, NOT_DELIVERED, "HTTP_504", None, [],
        id="504-validate",
    ),
    pytest.param(
        503, {}, b"Service Unavailable", True,
        ErrorType.TRANSIENT, NOT_DELIVERED, "HTTP_503", None, ["Service Unavailable"],
        id="503-post-not-delivered",
    ),
    pytest.param(
        503, {"Retry-After": "30"}, b"", True,
        ErrorType.TRANSIENT, NOT_DELIVERED, "HTTP_503", 30.0, ["HTTP 503"],
        id="503-with-retry-after",
    ),
    # WSO2's hard limit answers 503 itself: a throttle, so the gateway pauses.
    pytest.param(
        503, {}, encode({"fault": {"code": 900801, "message": "API Limit Reached"}}), True,
        ErrorType.RATE_LIMIT, NOT_DELIVERED, "900801", None, ["API Limit Reached"],
        id="503-wso2-hard-limit-is-a-throttle",
    ),
    pytest.param(
        503, {}, encode({"fault": {"code": 101503, "message": "Error connecting to the back end"}}),
        True, ErrorType.TRANSIENT, NOT_DELIVERED, "101503", None, ["back end"],
        id="503-wso2-backend-fault-stays-transient",
    ),
    # Other statuses: a wrong URL or request, not something a retry fixes.
    pytest.param(
        404, {}, b"<html>Not Found</html>", True,
        ErrorType.PERMANENT, NOT_DELIVERED, "HTTP_404", None, ["404", "Not Found"],
        id="404-permanent",
    ),
    pytest.param(
        400, {}, b'{"error": "bad request"}', True,
        ErrorType.PERMANENT, NOT_DELIVERED, "HTTP_400", None, ["400", "bad request"],
        id="400-permanent",
    ),
    pytest.param(
        400, {}, b"", False,
        ErrorType.PERMANENT, NOT_DELIVERED, "HTTP_400", None, [],
        id="400-validate",
    ),
    # A mangled HTTP 200 on a post: FBR may have issued a number we cannot read.
    pytest.param(
        200, {}, b"", True,
        ErrorType.UNKNOWN, AMBIGUOUS, "EMPTY_BODY", None, [],
        id="200-empty-post",
    ),
    pytest.param(
        200, {}, b" \r\n\t ", True,
        ErrorType.UNKNOWN, AMBIGUOUS, "EMPTY_BODY", None, [],
        id="200-whitespace-post",
    ),
    pytest.param(
        200, {"Content-Type": "text/html"}, b"<html><body>Maintenance</body></html>", True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_JSON", None, ["Maintenance"],
        id="200-html-post",
    ),
    pytest.param(
        200, {}, encode([SUCCESS]), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_SHAPE", None, [],
        id="200-json-array-post",
    ),
    pytest.param(
        200, {}, b'"7000007DI1747119701593"', True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_SHAPE", None, [],
        id="200-json-string-post",
    ),
    pytest.param(
        200, {}, b"null", True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_SHAPE", None, [],
        id="200-json-null-post",
    ),
    pytest.param(
        200, {}, encode(SUCCESS)[:40], True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_JSON", None, [],
        id="200-truncated-json-post",
    ),
    pytest.param(
        200, {}, b"\xff\xfe\x00garbage\x80", True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_JSON", None, [],
        id="200-invalid-utf8-post",
    ),
    pytest.param(
        200, {}, encode({"invoiceNumber": NUMBER}), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_SHAPE", None, [],
        id="200-number-without-validation-response-post",
    ),
    pytest.param(
        200, {}, encode(variant(SUCCESS, validationResponse="Valid")), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_SHAPE", None, [],
        id="200-validation-response-not-object-post",
    ),
    pytest.param(
        200, {}, encode(WSO2_INVALID), True,
        ErrorType.UNKNOWN, AMBIGUOUS, "BAD_SHAPE", None, [],
        id="200-wso2-fault-post",
    ),
    pytest.param(
        200, {}, b"", False,
        ErrorType.UNKNOWN, NOT_DELIVERED, "EMPTY_BODY", None, [],
        id="200-empty-validate",
    ),
    pytest.param(
        200, {}, b"<html></html>", False,
        ErrorType.UNKNOWN, NOT_DELIVERED, "BAD_JSON", None, [],
        id="200-html-validate",
    ),
    pytest.param(
        200, {}, b"[]", False,
        ErrorType.UNKNOWN, NOT_DELIVERED, "BAD_SHAPE", None, [],
        id="200-json-array-validate",
    ),
    pytest.param(
        200, {}, encode(VALIDATE_SUCCESS)[:-3], False,
        ErrorType.UNKNOWN, NOT_DELIVERED, "BAD_JSON", None, [],
        id="200-truncated-json-validate",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    (
        "status",
        "headers",
        "body",
        "is_post",
        "error_type",
        "delivery",
        "error_code",
        "retry_after",
        "message_parts",
    ),
    FAILURE_CASES,
)
def test_failure_shapes(
    status, headers, body, is_post, error_type, delivery, error_code, retry_after, message_parts
):
    result = failure(classify(status, headers, body, is_post=is_post))
    assert result.error_type is error_type
    assert result.delivery is delivery
    assert result.error_code == error_code
    assert result.http_status == status
    assert result.retry_after == retry_after
    assert result.message
    for part in message_parts:
        assert part in result.message


class _FrozenDatetime(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime(2025, 5, 13, 12, 0, 0, tzinfo=tz or UTC)


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        pytest.param(429, ErrorType.RATE_LIMIT, id="429"),
        pytest.param(503, ErrorType.TRANSIENT, id="503"),
    ],
)
def test_retry_after_http_date_in_the_future(monkeypatch, status, error_type):
    monkeypatch.setattr(http_module, "datetime", _FrozenDatetime)
    headers = {"Retry-After": "Tue, 13 May 2025 12:01:30 GMT"}
    result = failure(classify(status, headers, b"", is_post=True))
    assert result.error_type is error_type
    assert result.delivery is NOT_DELIVERED
    assert result.retry_after == pytest.approx(90.0)


def test_item_message_lists_at_most_five_failed_items():
    items = [
        {"itemSNo": str(n), "statusCode": "01", "errorCode": f"00{n:02d}", "error": f"bad {n}"}
        for n in range(1, 9)
    ]
    body = variant(ITEM_REJECTION, validationResponse__invoiceStatuses=items)
    result = failure(classify(200, {}, encode(body), is_post=True))
    assert result.error_code == "0001"
    assert all(f"item {n}: bad {n}" in result.message for n in range(1, 6))
    assert "item 6" not in result.message


def test_items_that_are_not_objects_are_ignored():
    statuses = ["junk", 7, None, *SUCCESS["validationResponse"]["invoiceStatuses"]]
    body = variant(SUCCESS, validationResponse__invoiceStatuses=statuses)
    result = classify(200, {}, encode(body), is_post=True)
    assert result == Accepted(NUMBER, "2025-05-13 12:01:41", (f"{NUMBER}-1", f"{NUMBER}-2"))


def test_item_without_status_code_is_a_failed_item():
    body = variant(ITEM_REJECTION, item0__statusCode=None)
    result = failure(classify(200, {}, encode(body), is_post=True))
    assert result.error_type is ErrorType.VALIDATION
    assert result.delivery is NOT_DELIVERED


# A rejection that still carries an invoiceNumber is FBR's evidence that it issued the invoice:
# it is held, never called not delivered (a fix-and-re-post would create a second fiscal invoice).
@pytest.mark.parametrize(
    "error_code",
    [pytest.param("0052", id="data-error"), pytest.param("0401", id="auth-error")],
)
def test_post_with_number_but_header_rejection_is_not_declared_undelivered(error_code):
    body = variant(HEADER_REJECTION, invoiceNumber=NUMBER, validationResponse__errorCode=error_code)
    result = failure(classify(200, {}, encode(body), is_post=True))
    assert result.delivery is AMBIGUOUS


# --- bounded work and bounded messages on hostile bodies ----------------------------------------

HUGE_TEXT = b"The quick brown fox jumps over the lazy dog. " * 25_000  # > 1 MB
DEEP_ARRAY = b"[" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000
DEEP_CLOSED = b"[" * 100_000 + b"]" * 100_000
HUGE_ERROR = encode(
    variant(HEADER_REJECTION, validationResponse__error="x" * 2_000_000)
)  # > 1 MB of valid JSON


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(HUGE_TEXT, id="1MB-text"),
        pytest.param(DEEP_ARRAY, id="deep-open-array"),
        pytest.param(DEEP_OBJECT, id="deep-open-object"),
        pytest.param(DEEP_CLOSED, id="deep-closed-array"),
        pytest.param(HUGE_ERROR, id="1MB-json-error-field"),
    ],
)
@pytest.mark.parametrize("status", [200, 401, 403, 429, 500, 502, 503, 404])
@pytest.mark.parametrize("is_post", [True, False], ids=["post", "validate"])
def test_huge_and_deep_bodies_are_classified(body, status, is_post):
    result = failure(classify(status, {}, body, is_post=is_post))
    assert result.http_status == status
    assert len(result.message) <= MAX_MESSAGE
    assert not result.message.startswith("unparseable"), result.message  # no parser crash
    if status == 200 and body is not HUGE_ERROR:
        assert result.error_type is ErrorType.UNKNOWN
        assert result.delivery is (AMBIGUOUS if is_post else NOT_DELIVERED)


def test_huge_error_field_is_truncated_but_kept_as_validation():
    result = failure(classify(200, {}, HUGE_ERROR, is_post=True))
    assert result.error_type is ErrorType.VALIDATION
    assert result.error_code == "0052"
    assert result.message.startswith("xxx")
    assert len(result.message) <= MAX_MESSAGE


def test_worst_case_messages_stay_bounded():
    long = "é\u200b" * 20_000
    items = [
        {"itemSNo": long, "statusCode": "01", "errorCode": long, "error": long} for _ in range(200)
    ]
    with_number = variant(
        ITEM_REJECTION, invoiceNumber=long, validationResponse__invoiceStatuses=items
    )
    odd_status = variant(
        HEADER_REJECTION, validationResponse__statusCode="\U000e0000" * 20_000,
        validationResponse__error=long,
    )  # fmt: skip
    fault = {"fault": {"code": long, "message": long}}
    for status, body in [
        (200, with_number),
        (200, odd_status),
        (200, variant(ITEM_REJECTION, validationResponse__invoiceStatuses=items)),
        (401, fault),
        (429, fault),
    ]:
        result = failure(classify(status, {}, encode(body), is_post=True))
        assert len(result.message) <= MAX_MESSAGE, (status, len(result.message))
        assert len(result.error_code or "") <= MAX_MESSAGE


# --- fuzzing ------------------------------------------------------------------------------------

FIELDS = [
    "invoiceNumber",
    "validationResponse",
    "statusCode",
    "invoiceStatuses",
    "errorCode",
    "itemSNo",
    "invoiceNo",
    "error",
    "status",
    "dated",
    "fault",
    "code",
    "message",
]
NEVER_AMBIGUOUS_TYPES = {
    ErrorType.VALIDATION,
    ErrorType.PERMANENT,
    ErrorType.TOKEN_EXPIRED,
    ErrorType.RATE_LIMIT,
}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["00", "01", "0401", "0402", "0052", "", " ", "Valid", "invalid", NUMBER])
)
keys = st.sampled_from(FIELDS) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)

codes = st.sampled_from(["00", "01", "0401", "0402", "0046", "", None, 0, 1, "99"]) | json_values
items = st.fixed_dictionaries(
    {},
    optional={
        "itemSNo": st.sampled_from(["1", "2", 3, None, ""]) | json_values,
        "statusCode": codes,
        "status": st.sampled_from(["Valid", "Invalid", "invalid"]) | json_values,
        "invoiceNo": st.sampled_from([f"{NUMBER}-1", None, "", " "]) | json_values,
        "errorCode": codes,
        "error": st.text(max_size=60) | json_values,
    },
)
shaped_bodies = st.fixed_dictionaries(
    {},
    optional={
        "invoiceNumber": st.sampled_from([NUMBER, "", "  ", None, 0, "x"]) | json_values,
        "dated": st.sampled_from(["2025-05-13 12:01:41", "", None]) | json_values,
        "validationResponse": st.fixed_dictionaries(
            {},
            optional={
                "statusCode": codes,
                "status": st.sampled_from(["Valid", "Invalid", "invalid"]) | json_values,
                "errorCode": codes,
                "error": st.text(max_size=60) | json_values,
                "invoiceStatuses": st.none() | st.lists(items | json_values, max_size=6),
            },
        )
        | json_values,
        "fault": st.fixed_dictionaries(
            {}, optional={"code": codes, "message": st.text(max_size=40) | json_values}
        )
        | json_values,
    },
)
headers = st.dictionaries(
    st.sampled_from(["Retry-After", "retry-after", "Content-Type"]) | st.text(max_size=12),
    st.text(max_size=40)
    | st.sampled_from(["5", "0", "-1", "1.5", "nan", "inf", "Wed, 21 Oct 2015 07:28:00 GMT"])
    | st.integers(-100, 10**6).map(str),
    max_size=4,
)
statuses = st.integers(min_value=100, max_value=599)
html_pages = st.builds(
    lambda title, text: (
        f"<!DOCTYPE html><html><head><title>{title}</title></head>"
        f"<body><h1>{title}</h1><p>{text}</p></body></html>"
    ).encode(),
    st.text(max_size=30),
    st.text(max_size=200),
)
SUCCESS_BYTES = encode(SUCCESS)


def check_invariants(result, status: int, is_post: bool) -> None:
    """What must hold for every response, however broken."""
    assert isinstance(result, Accepted | Failure)
    if isinstance(result, Accepted):
        assert status == 200
        if is_post:
            assert result.invoice_number
            assert result.invoice_number == result.invoice_number.strip()
        else:
            assert result.invoice_number == ""
        return
    assert result.http_status == status
    assert isinstance(result.message, str)
    assert 0 < len(result.message) <= MAX_MESSAGE
    assert result.retry_after is None or 0 <= result.retry_after < float("inf")
    if not is_post:
        assert result.delivery is NOT_DELIVERED
    elif result.error_type not in NEVER_AMBIGUOUS_TYPES and not (
        status == 503 or 400 <= status < 500
    ):
        assert result.delivery is AMBIGUOUS, result


FUZZ = settings(
    deadline=None,
    max_examples=300,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(status=statuses, headers=headers, body=st.binary(max_size=2_000), is_post=st.booleans())
def test_fuzz_random_bytes(status, headers, body, is_post):
    check_invariants(classify(status, headers, body, is_post=is_post), status, is_post)


@FUZZ
@given(
    status=st.sampled_from([200, 200, 200, 401, 429, 500, 503]) | statuses,
    headers=headers,
    value=json_values,
    is_post=st.booleans(),
)
def test_fuzz_random_json(status, headers, value, is_post):
    result = classify(status, headers, encode(value), is_post=is_post)
    check_invariants(result, status, is_post)


@FUZZ
@given(value=shaped_bodies, is_post=st.booleans())
def test_fuzz_response_shaped_json(value, is_post):
    result = classify(200, {}, encode(value), is_post=is_post)
    check_invariants(result, 200, is_post)
    if isinstance(result, Accepted):
        # Success requires that no item carries anything but statusCode "00".
        response = value["validationResponse"]
        listed = response.get("invoiceStatuses")
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, dict):
                assert str(item.get("statusCode")).strip() == "00"


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(SUCCESS_BYTES) - 1), is_post=st.booleans())
def test_fuzz_truncated_success_body(cut, is_post):
    result = classify(200, {}, SUCCESS_BYTES[:cut], is_post=is_post)
    check_invariants(result, 200, is_post)
    # A prefix of a JSON object is never complete JSON: never a success, always held on a post.
    assert isinstance(result, Failure)
    assert result.error_type is ErrorType.UNKNOWN


@FUZZ
@given(
    status=st.sampled_from([200, 401, 403, 429, 500, 502, 503, 504, 404]) | statuses,
    body=html_pages,
    is_post=st.booleans(),
)
def test_fuzz_html_documents(status, body, is_post):
    result = classify(status, {"Content-Type": "text/html"}, body, is_post=is_post)
    check_invariants(result, status, is_post)
    assert isinstance(result, Failure)


@FUZZ
@given(status=statuses, headers=headers, body=st.binary(max_size=500), is_post=st.booleans())
def test_fuzz_status_decides_before_body(status, headers, body, is_post):
    """Gateway statuses classify the same whatever the body and headers say (random bytes are
    never WSO2's hard-limit fault, which makes a 503 a RATE_LIMIT)."""
    result = classify(status, headers, body, is_post=is_post)
    expected = {
        401: (ErrorType.TOKEN_EXPIRED, NOT_DELIVERED),
        403: (ErrorType.TOKEN_EXPIRED, NOT_DELIVERED),
        429: (ErrorType.RATE_LIMIT, NOT_DELIVERED),
        503: (ErrorType.TRANSIENT, NOT_DELIVERED),
    }.get(status)
    if expected is None and status >= 500:
        expected = (ErrorType.TRANSIENT, AMBIGUOUS if is_post else NOT_DELIVERED)
    elif expected is None and not 200 <= status < 300:  # any 2xx body is read
        expected = (ErrorType.PERMANENT, NOT_DELIVERED)
    if expected is not None:
        result = failure(result)
        assert (result.error_type, result.delivery) == expected
