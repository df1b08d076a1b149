"""Reading a payout batch from a JSON or CSV file: bounded, every problem named by line or path,
and a batch refused whole (nothing recorded) when any row is bad."""

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from retry_pipelines.engine.paypal import intake
from retry_pipelines.engine.paypal.intake import (
    PayoutFileError,
    inline_payout,
    read_payout_file,
)
from retry_pipelines.engine.paypal.recording import (
    MAX_ITEMS,
    PayoutItem,
    PayoutRejected,
    record_batch,
)
from retry_pipelines.store import tables

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
HEADER = "receiver,value,currency,sender_item_id,recipient_type,note\n"
ITEM = {
    "receiver": "alice@example.com",
    "value": "12.50",
    "currency": "USD",
    "sender_item_id": "p1",
}


def _write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def _refusal(path, **kwargs) -> str:
    with pytest.raises(PayoutFileError) as caught:
        read_payout_file(path, **kwargs)
    assert isinstance(caught.value, PayoutRejected)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_good_json_file(tmp_path):
    document = {
        "cycle_id": "2026-11-W48",
        "email_subject": "Your payout",
        "items": [
            ITEM,
            {**ITEM, "receiver": "+15550100", "sender_item_id": "p2", "recipient_type": "PHONE"},
            {**ITEM, "receiver": "bob@example.com", "sender_item_id": "p3", "note": "thanks\n!"},
        ],
    }
    batch = read_payout_file(_write(tmp_path, "batch.json", json.dumps(document)))
    assert batch.cycle_id == "2026-11-W48"
    assert batch.email_subject == "Your payout"
    assert batch.email_message is None
    assert batch.items == [
        PayoutItem("alice@example.com", "12.50", "USD", "p1"),
        PayoutItem("+15550100", "12.50", "USD", "p2", "PHONE"),
        PayoutItem("bob@example.com", "12.50", "USD", "p3", note="thanks\n!"),
    ]


def test_a_good_csv_file_with_a_bom_crlf_and_optional_columns(tmp_path):
    text = (
        HEADER.replace("\n", "\r\n")
        + "alice@example.com,12.50,USD,p1,,\r\n"
        + '\r\n +15550100 ,7,USD,p2,PHONE,"a note, with a comma"\r\n'
    )
    path = _write(tmp_path, "batch.csv", b"\xef\xbb\xbf" + text.encode())
    batch = read_payout_file(path, cycle_id="c1")
    assert batch.cycle_id == "c1"
    assert batch.items == [
        PayoutItem("alice@example.com", "12.50", "USD", "p1"),
        PayoutItem("+15550100", "7", "USD", "p2", "PHONE", "a note, with a comma"),
    ]


def test_a_csv_without_its_cycle_is_refused(tmp_path):
    path = _write(tmp_path, "batch.csv", HEADER + "a@example.com,1.00,USD,p1,,\n")
    assert "--cycle" in _refusal(path)


def test_every_bad_csv_row_is_named_by_line_and_field(tmp_path):
    rows = [
        "a@example.com,12.50,USD,p1,,",  # line 2: good
        "b@example.com,12.345,USD,p2,,",  # line 3: amount
        "c@example.com,3.00,USD,p1,,",  # line 4: repeats line 2
        "d@example.com,,USD,p4,,",  # line 5: value empty
        "e@example.com,1.00,EUR,p5,,",  # line 6: second currency
        "f@example.com,1.00,USD,p6,FAX,",  # line 7: recipient type
        "g@example.com,1.00,USD",  # line 8: too few fields
        "x" * 128 + ",1.00,USD,p8,,",  # line 9: receiver too long
    ]
    message = _refusal(_write(tmp_path, "bad.csv", HEADER + "\n".join(rows) + "\n"), cycle_id="c")
    assert message.startswith(f"{tmp_path / 'bad.csv'}: 7 problem(s), nothing was recorded: ")
    for expected in [
        "line 3: amount '12.345' must be positive with at most 2 decimals",
        "line 4: sender_item_id 'p1' repeats line 2",
        "line 5, value: is empty",
        "line 6: currency 'EUR' differs from 'USD' (line 2)",
        "line 7: recipient_type must be one of",
        "line 8: has 3 fields, the header 6",
        "line 9: receiver must be 1..127 characters",
    ]:
        assert expected in message
    assert "line 2" not in message.replace("(line 2)", "").replace("repeats line 2", "")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("receiver,value,currency\n", "line 1: the header has no sender_item_id column"),
        ("receiver,value,currency,sender_item_id,amount\n", "line 1: column 'amount' is not"),
        ("receiver,value,value,currency,sender_item_id\n", "line 1: column 'value' appears twice"),
    ],
)
def test_a_bad_csv_header_is_named(tmp_path, header, expected):
    path = _write(tmp_path, "bad.csv", header + "a@example.com,1.00,USD,p1,x\n")
    assert expected in _refusal(path, cycle_id="c")


def test_every_bad_json_item_is_named_by_path(tmp_path):
    document = {
        "cycle_id": "c1",
        "extra": 1,
        "items": [
            ITEM,
            {**ITEM, "sender_item_id": "p2", "value": 12.5},
            {**ITEM, "sender_item_id": "p3", "colour": "red"},
            {"receiver": "b@example.com", "value": "1.00", "currency": "USD"},
            "p5",
            {**ITEM, "sender_item_id": "p6", "receiver": "a\x00b"},
        ],
    }
    message = _refusal(_write(tmp_path, "bad.json", json.dumps(document)))
    for expected in [
        "extra: is not a field of a payout file",
        'items[1].value: must be text (a string amount like "12.50"), got float',
        "items[2].colour: is not a field of an item",
        "items[3].sender_item_id: is missing",
        "items[4]: must be an object",
        "items[5].receiver: holds a control character, NUL or invalid UTF-8 text",
    ]:
        assert expected in message


def test_a_repeated_key_in_json_is_named(tmp_path):
    text = '{"cycle_id": "c1", "items": [{"receiver": "a@x.com", "value": "1.00", "value": "9.00",'
    text += ' "currency": "USD", "sender_item_id": "p1"}]}'
    assert "items[0]: repeats the key 'value'" in _refusal(_write(tmp_path, "dup.json", text))


def test_the_files_cycle_and_the_commands_must_agree(tmp_path):
    path = _write(tmp_path, "b.json", json.dumps({"cycle_id": "c1", "items": [ITEM]}))
    assert read_payout_file(path, cycle_id="c1").cycle_id == "c1"
    assert "cycle_id: the file says 'c1', the command 'c2'" in _refusal(path, cycle_id="c2")
    other = _write(tmp_path, "n.json", json.dumps({"items": [ITEM]}))
    assert read_payout_file(other, cycle_id="c9").cycle_id == "c9"


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("big.json", b" " * 2048, "is larger than 1,024 bytes"),
        ("latin.csv", HEADER.encode() + b"caf\xe9@x.com,1.00,USD,p1,,\n", "is not UTF-8 text"),
        ("list.json", b"[]", "must hold a JSON object"),
        ("broken.json", b'{"items": [', "is not valid JSON"),
        ("empty.csv", HEADER.encode(), "holds no items"),
    ],
)
def test_a_file_that_cannot_be_a_batch_is_refused_whole(tmp_path, name, data, expected):
    path = _write(tmp_path, name, data)
    assert expected in _refusal(path, cycle_id="c", max_bytes=1024)


def test_more_rows_than_a_batch_holds_are_refused(tmp_path):
    rows = "".join(f"p{n}@example.com,1.00,USD,p{n},,\n" for n in range(MAX_ITEMS + 1))
    path = _write(tmp_path, "many.csv", HEADER + rows)
    assert f"more than {MAX_ITEMS:,} items" in _refusal(path, cycle_id="c")


def test_the_default_size_cap_is_16_mb(tmp_path):
    assert intake.MAX_FILE_BYTES == 16 * 1024 * 1024
    path = _write(tmp_path, "huge.json", b" " * (intake.MAX_FILE_BYTES + 1))
    assert "is larger than 16,777,216 bytes" in _refusal(path)


def test_a_missing_file_and_a_directory_are_refused(tmp_path):
    assert "cannot read" in _refusal(tmp_path / "nope.csv", cycle_id="c")
    assert "is not a regular file" in _refusal(tmp_path, cycle_id="c")


def test_inline_items_get_the_same_checks():
    batch = inline_payout("c1", [ITEM], email_message="hi")
    assert batch.items == [PayoutItem("alice@example.com", "12.50", "USD", "p1")]
    with pytest.raises(PayoutFileError) as caught:
        inline_payout(" ", [{**ITEM, "value": "-1"}])
    assert "cycle_id: is required" in str(caught.value)
    assert "items[0]: amount '-1' must be positive" in str(caught.value)


def _batches(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(tables.payout_batches)).scalar_one()


def test_a_file_read_goes_through_phase_1_and_its_identity_rule(engine, tmp_path):
    path = _write(tmp_path, "b.csv", HEADER + "a@example.com,1.00,USD,p1,,\nb@x.com,2,USD,p2,,\n")
    batch = read_payout_file(path, cycle_id="c1")
    recorded = record_batch(engine, cycle_id=batch.cycle_id, items=batch.items, now=NOW)
    assert recorded.total_value == "3.00"
    again = read_payout_file(path, cycle_id="c1")
    with pytest.raises(PayoutRejected, match="the same batch is already in batch"):
        record_batch(engine, cycle_id=again.cycle_id, items=again.items, now=NOW)
    assert _batches(engine) == 1
