"""``retry-pipelines payout record FILE``, run as a user runs it: the recorded batch on stdout, and
every refusal (the identity rule, a bad file) one line on stderr with exit code 2."""

from __future__ import annotations

import json

from retry_pipelines_tests.hostile.test_cli import _cli, _user_error

ITEMS = [
    {"receiver": "alice@example.com", "value": "12.50", "currency": "USD", "sender_item_id": "p1"},
    {"receiver": "bob@example.com", "value": "7.25", "currency": "USD", "sender_item_id": "p2"},
]


def test_record_then_the_same_file_again_is_refused(db_url, tmp_path):
    path = tmp_path / "batch.json"
    path.write_text(json.dumps({"cycle_id": "2026-11-W48", "items": ITEMS}))
    proc = _cli("--database-url", db_url, "payout", "record", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "recorded payout batch 1 (2026-11-W48-" in proc.stdout
    assert "2 item(s), total 19.75 USD" in proc.stdout

    line = _user_error(_cli("--database-url", db_url, "payout", "record", str(path)))
    assert line.startswith("retry-pipelines: cycle 2026-11-W48: the same batch is already in")
    assert "nothing was written" in line


def test_a_csv_needs_its_cycle_and_a_bad_row_is_named(db_url, tmp_path):
    path = tmp_path / "batch.csv"
    path.write_text("receiver,value,currency,sender_item_id\na@example.com,1.00,USD,p1\n")
    assert "--cycle" in _user_error(_cli("--database-url", db_url, "payout", "record", str(path)))
    path.write_text("receiver,value,currency,sender_item_id\na@example.com,1.001,USD,p1\n")
    line = _user_error(
        _cli("--database-url", db_url, "payout", "record", str(path), "--cycle", "c")
    )
    assert "line 2: amount '1.001' must be positive with at most 2 decimals" in line
    assert "nothing was recorded" in line
    ok = _cli("--database-url", db_url, "payout", "record", str(path).replace("batch", "none"))
    assert "cannot read" in _user_error(ok)
