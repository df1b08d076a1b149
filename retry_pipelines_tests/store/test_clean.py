"""The store's text boundary (``store.clean``): what any gateway says becomes a storable text."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from retry_pipelines.domain.scrub import MAX_MESSAGE_LENGTH, REDACTED, scrub
from retry_pipelines.store import tables
from retry_pipelines.store.clean import (
    TEXT_LIMIT,
    UnstorableIdentifier,
    clean_json,
    clean_row,
    clean_text,
    unstorable_identifiers,
    unstorable_json_paths,
)

SECRET = "tok_9f8e7d6c5b4a39281706"
MARKER = re.compile(r"…\[truncated ([\d,]+) chars\]$")


@pytest.mark.parametrize(
    ("raw", "multiline", "expected"),
    [
        pytest.param("a\x00b", True, "ab", id="nul-removed"),
        pytest.param("a\x01\x07\x1b[31mb\x7f", True, "a[31mb", id="c0-and-del-removed"),
        pytest.param("a\x85b\x9fc", True, "abc", id="c1-removed"),
        pytest.param("line 1\nline 2\tx", True, "line 1\nline 2\tx", id="newline-tab-kept"),
        pytest.param("line 1\nline 2\tx", False, "line 1 line 2 x", id="single-line-spaces"),
        pytest.param("a\r\nb\rc", True, "a\nb\nc", id="carriage-returns-become-newlines"),
        pytest.param("a\udc80\udcffb", True, "a\ufffd\ufffdb", id="lone-surrogates"),
        pytest.param("\ud83d\ude00", True, "\U0001f600", id="surrogate-pair-joined"),
        pytest.param("سیلز ٹیکس ✓", True, "سیلز ٹیکس ✓", id="unicode-kept"),
    ],
)
def test_clean_text_removes_what_no_row_should_hold(raw, multiline, expected):
    assert clean_text(raw, limit=100, multiline=multiline) == expected


def test_invalid_utf8_decoded_with_surrogateescape_becomes_replacement_characters():
    raw = b"upstream said \xff\xfe\x00 then \xc3(".decode("utf-8", "surrogateescape")
    cleaned = clean_text(raw, limit=100)
    assert cleaned == "upstream said \ufffd\ufffd then \ufffd("
    cleaned.encode("utf-8")  # does not raise


def test_long_text_is_cut_with_a_marker_that_counts_what_was_dropped():
    text = "x" * 10_000
    cleaned = clean_text(text, limit=64)
    assert len(cleaned) <= 64
    dropped = int(MARKER.search(cleaned).group(1).replace(",", ""))
    kept = len(cleaned) - len(MARKER.search(cleaned).group(0))
    assert kept + dropped == len(text)
    assert cleaned == "x" * kept + f"…[truncated {dropped:,} chars]"


def test_short_columns_get_a_plain_ellipsis():
    assert clean_text("abcdefghijklmnopqrstuvwxyz", limit=16) == "abcdefghijklmno…"
    assert clean_text("abc", limit=16) == "abc"
    assert clean_text("abc", limit=0) == ""


def test_a_secret_straddling_the_cut_is_redacted_whole():
    limit = 2000
    for at in range(limit - 40, limit + 5):  # the secret starts before, at and after the cut
        text = "e" * at + SECRET + " tail" * 2000
        cleaned = clean_text(text, limit=limit, secrets=(SECRET,))
        assert len(cleaned) <= limit
        assert SECRET[:8] not in cleaned, at


def test_a_secret_split_by_control_characters_is_still_redacted():
    split = SECRET[:5] + "\x00" + SECRET[5:12] + "\x1b" + SECRET[12:]
    assert clean_text(f"header: {split}", limit=200, secrets=(SECRET,)) == f"header: {REDACTED}"


def test_credential_shapes_are_redacted_without_being_told():
    cleaned = clean_text("GET /x Authorization: Bearer abcdefghij123456 failed", limit=200)
    assert "abcdefghij123456" not in cleaned


def test_none_stays_none_and_other_values_become_text():
    assert clean_text(None, limit=10) is None
    assert clean_text(404, limit=10) == "404"


def test_clean_row_uses_each_columns_own_limit():
    row = clean_row(
        tables.invoice_attempts,
        {
            "error_code": "E" * 100,
            "error_message": "m\x00" * 10_000,
            "outcome": "failure",
            "http_status": 500,
            "latency_ms": 1.5,
            "finished_at": datetime(2026, 1, 5, tzinfo=UTC),
            "b_attempt_id": 7,
        },
    )
    assert len(row["error_code"]) <= 64
    assert row["error_code"].startswith("E" * 30)
    assert MARKER.search(row["error_code"])
    assert len(row["error_message"]) <= MAX_MESSAGE_LENGTH
    assert "\x00" not in row["error_message"]
    # untouched: values that are not text, and keys that are not columns
    assert row["outcome"] == "failure"
    assert (row["http_status"], row["latency_ms"], row["b_attempt_id"]) == (500, 1.5, 7)
    assert row["finished_at"] == datetime(2026, 1, 5, tzinfo=UTC)


def test_text_columns_without_a_length_get_the_default_cap():
    row = clean_row(tables.gateway_state, {"pause_reason": "r" * 50_000})
    assert len(row["pause_reason"]) <= TEXT_LIMIT
    assert len(row["pause_reason"]) > MAX_MESSAGE_LENGTH


def test_single_line_columns_lose_newlines_multiline_ones_keep_them():
    row = clean_row(
        tables.invoice_attempts, {"error_code": "A\nB", "error_message": "first\nsecond"}
    )
    assert row == {"error_code": "A B", "error_message": "first\nsecond"}


def test_secrets_are_redacted_from_every_text_column():
    row = clean_row(
        tables.invoices,
        {"last_error_code": SECRET, "status_reason": f"why: {SECRET}"},
        secrets=(SECRET,),
    )
    assert row == {"last_error_code": REDACTED, "status_reason": f"why: {REDACTED}"}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("F" * 100, "100 characters; the column holds 64", id="too-long"),
        pytest.param("1234567DI\x001763629200000", "control characters", id="nul"),
        pytest.param("1234567DI\udc801763629200000", "control characters", id="surrogate"),
    ],
)
def test_identifiers_are_never_cut_or_cleaned_but_refused(value, problem):
    with pytest.raises(UnstorableIdentifier, match=problem) as raised:
        clean_row(tables.invoices, {"fbr_invoice_number": value})
    assert raised.value.value == value
    assert raised.value.column == "fbr_invoice_number"
    assert unstorable_identifiers(tables.invoices, {"fbr_invoice_number": value}).keys() == {
        "fbr_invoice_number"
    }


def test_a_fitting_identifier_is_stored_exactly_even_if_it_looks_like_a_secret():
    number = "1234567DI1763629200000"
    row = clean_row(tables.invoices, {"fbr_invoice_number": number}, secrets=(number,))
    assert row == {"fbr_invoice_number": number}
    assert unstorable_identifiers(tables.invoices, {"fbr_invoice_number": number}) == {}


def test_clean_json_cleans_strings_and_keys_and_keeps_the_rest():
    doc = {"a\x00": ["x\x00y", 1, None, {"k": "v\udc80"}], "n": 2.5, "ok": True}
    assert clean_json(doc) == {"a": ["xy", 1, None, {"k": "v\ufffd"}], "n": 2.5, "ok": True}


def test_unstorable_json_paths_name_where_the_bad_text_is():
    doc = {"buyer": "ok", "items": [{"d": "fine"}, {"d": "bad\x00"}], "x\udc80": 1}
    assert unstorable_json_paths(doc) == ["$.items[1].d", "$.'x\\udc80' (a key)"]
    assert unstorable_json_paths({"a": "\x01 other controls are storable"}) == []


def test_scrub_keeps_its_old_contract():
    assert scrub(None) is None
    cut = scrub("y" * 5000)
    assert len(cut) == MAX_MESSAGE_LENGTH
    assert cut.endswith("…")
    assert scrub(f"t {SECRET}", (SECRET,)) == f"t {REDACTED}"


# Every code point, lone surrogates and controls included.
_ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=()), max_size=3000)
_SECRETS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=40)


@given(
    before=_ANY_TEXT,
    after=_ANY_TEXT,
    secret=_SECRETS,
    limit=st.integers(0, 2500),
    multiline=st.booleans(),
    split_at=st.integers(0, 40),
    splitter=st.sampled_from(["", "\x00", "\x1b", "\x85", "\r"]),
)
def test_clean_text_properties(before, after, secret, limit, multiline, split_at, splitter):
    # A secret must not be part of the fixed words the cleaner itself writes.
    assume(secret not in "[REDACTED]" and secret not in "truncated chars")
    noisy_secret = secret[:split_at] + splitter + secret[split_at:]
    text = before + noisy_secret + after
    cleaned = clean_text(text, limit=limit, secrets=(secret,), multiline=multiline)
    assert len(cleaned) <= limit
    assert "\x00" not in cleaned
    cleaned.encode("utf-8")  # always encodes: no lone surrogate is left
    assert secret not in cleaned
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", cleaned)
    if not multiline:
        assert "\n" not in cleaned
        assert "\t" not in cleaned
