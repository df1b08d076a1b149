"""Hostile intake: every problem is named and nothing good is lost.

Non-ASCII digits, references that differ only by spaces or case, repeated keys, control
characters, numbers too long to be amounts, deep nesting, oversized files and device files. Each
bad invoice is refused with its field named; the good ones beside it are queued; a file that
cannot be read at all is refused with one clear error, never a traceback or a MemoryError.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from sqlalchemy import select

from retry_pipelines.domain.invoice_payload import check_invoice_payload
from retry_pipelines.domain.json_limits import (
    JsonFileError,
    nesting_depth,
    parse_json,
    read_json_file,
)
from retry_pipelines.engine.fbr.intake import enqueue_invoices
from retry_pipelines.engine.fbr.seed import invoice_payload
from retry_pipelines.store import tables

REALWORLD = Path(__file__).resolve().parents[3] / "shared/realworld/fbr"


def arabic(text: str) -> str:
    """``text`` with its ASCII digits as Arabic-Indic digits (U+0660..U+0669)."""
    return text.translate({48 + d: 0x660 + d for d in range(10)})


def fullwidth(text: str) -> str:
    """``text`` with its ASCII digits and letters as fullwidth forms (U+FF10.., U+FF21..)."""
    table = {48 + d: 0xFF10 + d for d in range(10)}
    table.update({65 + c: 0xFF21 + c for c in range(26)})
    return text.translate(table)


ARABIC_1234567 = arabic("1234567")
FULLWIDTH_1234567 = fullwidth("1234567")


def good_payload(n: int = 1) -> dict:
    return invoice_payload(random.Random(n), n, seller_ntn="1234567", error=None)


def stored_references(engine) -> list[str]:
    with engine.connect() as conn:
        query = select(tables.invoices.c.reference).order_by(tables.invoices.c.reference)
        return conn.execute(query).scalars().all()


def refused_fields(refusal) -> set[str]:
    return {p.field for p in refusal.problems}


def huge_quantity(digits: int) -> str:
    """A good payload's JSON text whose first quantity is an integer of ``digits`` digits."""
    text = json.dumps(with_change("items.0.quantity", "QTY"))
    return text.replace('"QTY"', "9" * digits)


def with_change(path: str, value) -> dict:
    payload = good_payload(3)
    *parents, last = path.split(".")
    target = payload
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    target[last] = value
    return payload


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        pytest.param("sellerNTNCNIC", ARABIC_1234567, "sellerNTNCNIC", id="arabic-indic NTN"),
        pytest.param("sellerNTNCNIC", FULLWIDTH_1234567, "sellerNTNCNIC", id="fullwidth NTN"),
        pytest.param("buyerNTNCNIC", arabic("3" * 13), "buyerNTNCNIC", id="arabic-indic CNIC"),
        pytest.param(
            "items.0.hsCode", arabic("0101.2100"), "items[0].hsCode", id="arabic-indic HS"
        ),
        pytest.param(
            "items.0.hsCode", fullwidth("0101.2100"), "items[0].hsCode", id="fullwidth HS"
        ),
        pytest.param(
            "items.0.quantity", arabic("12"), "items[0].quantity", id="arabic-indic quantity"
        ),
        pytest.param("items.0.rate", arabic("18%"), "items[0].rate", id="arabic-indic rate"),
        pytest.param("invoiceDate", arabic("2026-11-20"), "invoiceDate", id="arabic-indic date"),
    ],
)
def test_non_ascii_digits_are_refused_by_field(engine, path, value, field):
    result = enqueue_invoices(
        engine, [("GOOD-1", good_payload()), ("BAD-1", with_change(path, value))]
    )
    assert list(result.queued) == ["GOOD-1"]
    [refusal] = result.refused
    assert field in refused_fields(refusal), str(refusal)
    assert stored_references(engine) == ["GOOD-1"]


def test_a_400_digit_quantity_refuses_that_invoice_and_queues_the_good_one(engine, tmp_path):
    bad = huge_quantity(400)
    text = f'[{{"reference": "GOOD-1", "payload": {json.dumps(good_payload())}}},'
    text += f'{{"reference": "BAD-1", "payload": {bad}}}]'
    entries = parse_json(text)
    result = enqueue_invoices(engine, [(e["reference"], e["payload"]) for e in entries])
    assert list(result.queued) == ["GOOD-1"]
    [refusal] = result.refused
    assert any(
        p.field == "items[0].quantity" and "400 digits" in p.message for p in refusal.problems
    ), str(refusal)
    assert stored_references(engine) == ["GOOD-1"]


def test_a_huge_python_int_amount_is_refused_not_overflowed(engine):
    bad = with_change("items.0.quantity", 10**400)
    result = enqueue_invoices(engine, [("GOOD-1", good_payload()), ("BAD-1", bad)])
    assert list(result.queued) == ["GOOD-1"]
    assert "items[0].quantity: exceeds" in str(result.refused[0])


def test_references_are_trimmed_and_compared_without_case(engine):
    first = enqueue_invoices(engine, [("WS-1", good_payload(1)), (" WS-1 ", good_payload(2))])
    assert list(first.queued) == ["WS-1"]
    assert "appears twice" in str(first.refused[0])
    again = enqueue_invoices(engine, [(" ws-1", good_payload(3)), ("\tWS-2 ", good_payload(4))])
    assert list(again.queued) == ["WS-2"]
    assert str(again.refused[0]) == "ws-1: reference: is already queued"
    assert stored_references(engine) == ["WS-1", "WS-2"]


def test_a_reference_not_in_normal_form_is_refused_naming_the_normal_form(engine):
    result = enqueue_invoices(
        engine, [(fullwidth("WS-1"), good_payload()), ("WS\x07-2", good_payload(2))]
    )
    assert not result.queued
    first, second = map(str, result.refused)
    assert "NFKC" in first
    assert "'WS-1'" in first
    assert "control characters" in second
    assert stored_references(engine) == []


def test_repeated_keys_refuse_the_invoice_naming_the_key(engine, tmp_path):
    good = json.dumps(good_payload())
    bad = json.dumps(good_payload(2))[:-1] + ', "sellerNTNCNIC": "7654321"}'
    item = '{"hsCode": "0101.2100", "hsCode": "0202.3000"}'
    bad_item = json.dumps(good_payload(4)).replace('"items": [', f'"items": [{item}, ', 1)
    path = tmp_path / "invoices.json"
    path.write_text(
        f'[{{"reference": "GOOD-1", "payload": {good}}},'
        f'{{"reference": "BAD-1", "payload": {bad}}},'
        f'{{"reference": "BAD-2", "payload": {bad_item}}},'
        f'{{"reference": "BAD-3", "reference": "BAD-4", "payload": {good}}}]'
    )
    from retry_pipelines.cli import _entry_defects

    entries = read_json_file(path)
    triples = [(e["reference"], e["payload"], _entry_defects(e)) for e in entries]
    result = enqueue_invoices(engine, triples)
    assert list(result.queued) == ["GOOD-1"]
    refusals = {r.reference: str(r) for r in result.refused}
    assert "payload: repeats the key 'sellerNTNCNIC'" in refusals["BAD-1"]
    assert "items[0]: repeats the key 'hsCode'" in refusals["BAD-2"]
    assert "entry: repeats the key 'reference'" in refusals["BAD-4"]


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85"])
def test_control_characters_are_refused_by_field_on_every_database(engine, char):
    bad = with_change("items.0.uoM", f"pieces{char}")
    bad["buyerAddress"] = f"Karachi{char}"
    result = enqueue_invoices(engine, [("GOOD-1", good_payload()), ("BAD-1", bad)])
    assert list(result.queued) == ["GOOD-1"]
    [refusal] = result.refused
    assert {"items[0].uoM", "buyerAddress"} <= refused_fields(refusal), str(refusal)
    assert f"U+{ord(char):04X}" in str(refusal)
    assert stored_references(engine) == ["GOOD-1"]


def test_tabs_and_line_breaks_in_text_are_kept(engine):
    payload = with_change("buyerAddress", "Plot 4\nKarachi\tSindh")
    result = enqueue_invoices(engine, [("ML-1", payload)])
    assert list(result.queued) == ["ML-1"], [str(r) for r in result.refused]


def test_an_error_while_checking_one_invoice_refuses_only_that_one(engine):
    class Hostile(dict):
        def get(self, *args):
            raise RuntimeError("boom")

    result = enqueue_invoices(engine, [("GOOD-1", good_payload()), ("BAD-1", Hostile(a=1))])
    assert list(result.queued) == ["GOOD-1"]
    assert "could not be checked: RuntimeError: boom" in str(result.refused[0])


def test_deep_nesting_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(JsonFileError, match="nests deeper than 64 levels"):
        read_json_file(path)


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps([{"reference": "R", "payload": {"note": "[" * 500 + '"{{' * 100}}])
    assert nesting_depth(text) == 3
    assert parse_json(text)[0]["payload"]["note"].startswith("[[[")
    assert nesting_depth('["unterminated \\" [[[[') == 1


def test_a_file_over_the_cap_is_refused(tmp_path):
    path = tmp_path / "big.json"
    path.write_text("[" + " " * 2000 + "]")
    with pytest.raises(JsonFileError, match="larger than 1,000 bytes"):
        read_json_file(path, max_bytes=1000)
    assert read_json_file(path, max_bytes=2002) == []


def test_dev_zero_is_refused_without_reading_it():
    with pytest.raises(JsonFileError, match="/dev/zero is not a regular file"):
        read_json_file("/dev/zero")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(JsonFileError, match="not a regular file"):
        read_json_file(fifo)


def test_the_cli_refuses_an_unreadable_file_in_one_line(sqlite_url, tmp_path, capsys):
    from retry_pipelines.cli import main

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    for target in (deep, Path("/dev/zero")):
        assert main(["--database-url", sqlite_url, "enqueue", str(target)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"retry-pipelines: cannot read {target}: ")
        assert len(err.splitlines()) == 1


def _realworld(name: str) -> tuple[dict, dict]:
    [body] = REALWORLD.glob(f"{name}_*[!a].json")
    meta = json.loads(body.with_name(body.stem + ".meta.json").read_text())
    return json.loads(body.read_text()), meta


@pytest.fixture
def realworld():
    if not REALWORLD.is_dir():
        pytest.skip(f"the real-world samples are not at {REALWORLD}")
    return _realworld


def test_extra_tax_empty_string_is_taken_as_absent(engine, realworld):
    payload, meta = realworld("P5")
    assert payload["items"][0]["extraTax"] == ""
    assert meta["expected"]["accept"] == "accept"
    result = enqueue_invoices(engine, [("P5-1", payload)])
    assert list(result.queued) == ["P5-1"], [str(r) for r in result.refused]


def test_p1_is_refused_for_its_ntn_only_not_for_extra_tax(engine, realworld):
    payload, meta = realworld("P1")
    assert meta["expected"]["accept"] == "reject"
    result = enqueue_invoices(engine, [("P1-1", payload)])
    [refusal] = result.refused
    assert refused_fields(refusal) == {"sellerNTNCNIC"}, str(refusal)


@pytest.mark.parametrize("name", ["extraTax", "furtherTax", "fedPayable", "discount"])
def test_every_optional_amount_may_be_an_empty_string(name):
    assert check_invoice_payload(with_change(f"items.0.{name}", "")) == []


def test_a_required_amount_as_empty_string_is_still_refused():
    problems = check_invoice_payload(with_change("items.0.quantity", ""))
    assert [p.field for p in problems] == ["items[0].quantity"]


def test_a_mixed_file_queues_exactly_the_good_ones(engine, sqlite_url, tmp_path, capsys):
    goods = [{"reference": f"G-{i}", "payload": good_payload(i)} for i in range(5)]
    bads = [
        {"reference": "B-ntn", "payload": with_change("sellerNTNCNIC", ARABIC_1234567)},
        {"reference": " G-1 ", "payload": good_payload(9)},
        {"reference": "B-ctl", "payload": with_change("items.0.uoM", "x\x00")},
        {"reference": "B-list", "payload": [1, 2]},
    ]
    entries = goods[:2] + bads[:2] + goods[2:] + bads[2:]
    text = json.dumps(entries)[:-1] + ', {"reference": "B-big", "payload": '
    big = json.dumps(with_change("items.0.totalValues", "TV")).replace('"TV"', "1" * 50)
    text += big
    text += "}]"
    parsed = parse_json(text)
    result = enqueue_invoices(engine, [(e["reference"], e["payload"]) for e in parsed])
    assert sorted(result.queued) == [f"G-{i}" for i in range(5)]
    refused = sorted(r.reference for r in result.refused)
    assert refused == ["B-big", "B-ctl", "B-list", "B-ntn", "G-1"]
    assert stored_references(engine) == [f"G-{i}" for i in range(5)]


def test_the_cli_queues_the_good_invoice_beside_a_400_digit_quantity(sqlite_url, tmp_path, capsys):
    from retry_pipelines.cli import main

    bad = huge_quantity(400)
    path = tmp_path / "invoices.json"
    path.write_text(
        f'[{{"reference": "GOOD-1", "payload": {json.dumps(good_payload())}}},'
        f'{{"reference": "BAD-1", "payload": {bad}}},'
        f'{{"reference": "BAD-2", "reference": "BAD-3", "payload": {json.dumps(good_payload(5))}}}]'
    )
    assert main(["--database-url", sqlite_url, "enqueue", str(path)]) == 1
    out = capsys.readouterr().out
    assert "queued 1, refused 2" in out
    assert "refused BAD-1: items[0].quantity: is a number of 400 digits; at most 20" in out
    assert "refused BAD-3: entry: repeats the key 'reference'" in out


def test_a_file_one_byte_over_the_default_cap_is_refused(tmp_path):
    from retry_pipelines.domain.json_limits import MAX_FILE_BYTES

    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(JsonFileError, match=f"larger than {MAX_FILE_BYTES:,} bytes"):
        read_json_file(path)
