"""The wire variants the real-world samples showed, pinned without the samples: WSO2's
``nextAccessTime``, trailing-comma bodies, the FBR number a Debit Note refers to, token answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.domain.fbr_reference import (
    FBR_INVOICE_NUMBER,
    fbr_number_problem,
    invoice_ref_problem,
)
from retry_pipelines.domain.invoice_payload import check_invoice_payload
from retry_pipelines.domain.policy import MAX_WAIT
from retry_pipelines.gateways.fbr_parse import (
    LENIENT_LIMIT,
    Accepted,
    classify,
    drop_trailing_commas,
    next_access_seconds,
)
from retry_pipelines.gateways.oauth import TokenRefused, parse_token

NOW = datetime(2026, 4, 16, 12, 0, tzinfo=UTC)


# --- WSO2 nextAccessTime ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2026-Apr-17 00:00:00+0000 UTC", 12 * 3600),
        ("2026-apr-16 12:00:30+0000", 30),
        ("2026-Apr-16 14:00:00+0200", None),  # 12:00 UTC: now, not ahead
        ("2026-Apr-16 12:01:00 -0100 UTC", 3660),
        ("2026-Apr-16 12:00:05", 5),  # no zone: UTC
        ("1776340830000", 30),  # epoch milliseconds
        ("2026-Apr-15 00:00:00+0000 UTC", None),  # past
        ("2099-Jan-01 00:00:00+0000 UTC", MAX_WAIT),  # capped
        ("2026-Feb-31 00:00:00+0000 UTC", None),
        ("2026-Foo-17 00:00:00+0000 UTC", None),
        ("2026-Apr-17 00:00:00+9999 UTC", None),
        ("tomorrow", None),
        ("", None),
        ("2026-Apr-17 00:00:00+0000 UTC" + " " * 100, None),  # over 80 characters: not read
    ],
)
def test_next_access_time(value, seconds):
    assert next_access_seconds(value, now=NOW) == seconds


def test_a_flat_throttle_past_its_next_access_time_has_no_retry_after():
    body = json.dumps({"code": "900804", "nextAccessTime": "2026-Apr-15 00:00:00+0000 UTC"})
    result = classify(429, {}, body.encode(), is_post=True, now=NOW)
    assert isinstance(result, Failure)
    assert (result.error_type, result.error_code, result.retry_after) == (
        ErrorType.RATE_LIMIT,
        "900804",
        None,
    )


def test_retry_after_header_wins_over_next_access_time():
    body = json.dumps({"code": "900804", "nextAccessTime": "2026-Apr-17 00:00:00+0000 UTC"})
    result = classify(429, {"Retry-After": "7"}, body.encode(), is_post=True, now=NOW)
    assert isinstance(result, Failure)
    assert result.retry_after == 7.0


# --- trailing commas ----------------------------------------------------------------------------

SUCCESS_WITH_COMMAS = (
    b'{"invoiceNumber":"7000007DI1747119701593","validationResponse":{"statusCode":"00",'
    b'"invoiceStatuses":[{"itemSNo":1,"statusCode":"00","invoiceNo":"7000007DI1747119701593-1",'
    b"},\n ],},}"
)


@pytest.mark.parametrize(
    ("body", "repaired"),
    [
        (b"[1, 2, ]", b"[1, 2 ]"),
        (b'{"a": 1 ,\t}', b'{"a": 1 \t}'),
        (b'{"a": "x,]", "b": "y,}",}', b'{"a": "x,]", "b": "y,}"}'),
        (b'{"a": "say \\",]\\"",}', b'{"a": "say \\",]\\""}'),
        (b'{"a": "\\\\",}', b'{"a": "\\\\"}'),
    ],
)
def test_trailing_commas_outside_strings_are_dropped(body, repaired):
    assert drop_trailing_commas(body) == repaired
    json.loads(repaired)


@pytest.mark.parametrize(
    "body",
    [b'{"a": 1}', b'{"a": "x,]"}', b"[1,,2]", b"no commas", b"[1, " + b" " * LENIENT_LIMIT + b"]"],
)
def test_nothing_else_is_repaired(body):
    assert drop_trailing_commas(body) is None


def test_a_trailing_comma_success_is_accepted_like_any_other():
    result = classify(200, {}, SUCCESS_WITH_COMMAS, is_post=True)
    number = "7000007DI1747119701593"
    assert result == Accepted(number, None, (f"{number}-1",))


def test_the_usual_rules_apply_after_the_repair():
    rejected = SUCCESS_WITH_COMMAS.replace(b'"itemSNo":1,"statusCode":"00"', b'"statusCode":"01"')
    result = classify(200, {}, rejected, is_post=True)
    assert isinstance(result, Failure)
    assert (result.error_type, result.delivery) == (ErrorType.UNKNOWN, Delivery.AMBIGUOUS)
    assert result.error_code == "NUMBER_WITH_ITEM_ERRORS"
    no_number = SUCCESS_WITH_COMMAS.replace(b'"invoiceNumber":"7000007DI1747119701593",', b"")
    result = classify(200, {}, no_number, is_post=True)
    assert isinstance(result, Failure)
    assert result.error_code == "NO_NUMBER"
    truncated = SUCCESS_WITH_COMMAS[:-3]
    result = classify(200, {}, truncated, is_post=True)
    assert isinstance(result, Failure)
    assert result.error_code == "BAD_JSON"


# --- the FBR number a Debit Note refers to ------------------------------------------------------

ACCEPTED_REFS = [
    "7000007DI1747119701593",  # PRAL v1.12 sample: NTN + DI + epoch ms (22)
    "1000000000000DI1747119701593",  # CNIC + DI + epoch ms (28)
    "5419764DIZLLXVR750188",  # observed sandbox number (21, letters in the tail)
    "1234567DI1763629200000123456",  # a longer digit tail
    "1234567DI123456",  # the shortest tail, 6
    "1234567DI" + "9" * 24,  # the longest tail, 24
]
REFUSED_REFS = [
    "",
    "INV-1762900000-123",
    "7000007DI1747119701593-1",  # an item number, not the invoice's
    "7000007di1747119701593",
    "7000007DI17471197015a3",
    " 7000007DI1747119701593",
    "7000007DI 1747119701593",
    "7000007DI12345",  # tail too short
    "1234567DI" + "9" * 25,  # tail too long
    "123456DI1747119701593",  # 6-digit NTN
    "12345678DI1747119701593",  # 8 digits
    "\u0661\u0662\u0663\u0664\u0665\u0666\u0667DI1747119701593",  # Arabic-Indic digits
    "7000007DI1747119701593\n",
]


@pytest.mark.parametrize("ref", ACCEPTED_REFS)
def test_references_to_numbers_fbr_issues_are_accepted(ref):
    assert invoice_ref_problem(ref) is None
    assert fbr_number_problem(ref) is None, "an operator may record any number a note refers to"
    payload = {"invoiceType": "Debit Note", "invoiceRefNo": ref}
    assert "invoiceRefNo" not in {p.field for p in check_invoice_payload(payload)}


@pytest.mark.parametrize("ref", [*REFUSED_REFS, None, 7000007, ["7000007DI1747119701593"]])
def test_other_references_are_refused_naming_the_field(ref):
    assert not (isinstance(ref, str) and FBR_INVOICE_NUMBER.fullmatch(ref))
    problem = invoice_ref_problem(ref)
    assert problem
    assert "FBR" in problem
    payload = {"invoiceType": "Debit Note", "invoiceRefNo": ref}
    assert "invoiceRefNo" in {p.field for p in check_invoice_payload(payload)}


def test_a_sale_invoice_reference_is_not_checked():
    payload = {"invoiceType": "Sale Invoice", "invoiceRefNo": "INV-1762900000-123"}
    assert "invoiceRefNo" not in {p.field for p in check_invoice_payload(payload)}


# --- token answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, b'{"error":"invalid_client"}', "HTTP 401"),
        (200, b"not json", "without an access_token"),
        (200, b"[]", "without an access_token"),
        (200, b"null", "without an access_token"),
        (200, b'{"expires_in": 3600}', "without an access_token"),
        (200, b'{"access_token": "t", "expires_in": "soon"}', "without an access_token"),
        (200, b'{"access_token": "", "expires_in": 3600}', "usable"),
        (200, b'{"access_token": "t", "expires_in": NaN}', "usable"),
        (200, b'{"access_token": "t", "expires_in": 1e999}', "usable"),
    ],
)
def test_unusable_token_answers_are_refused(status, body, message):
    with pytest.raises(TokenRefused, match=message):
        parse_token(status, body)


def test_a_token_answer_without_expires_in_expires_at_once():
    assert parse_token(200, b'{"access_token": "t"}') == ("t", 0.0)
