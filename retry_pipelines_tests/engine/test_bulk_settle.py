"""Settling held invoices in bulk from a CSV (``engine.fbr.settle``), on both databases: every row
checked first and each problem named by its line, each good row applied in its own audited
transaction exactly like a single resolve, a file that cannot be read refused whole."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from retry_pipelines.engine.actor import Actor
from retry_pipelines.engine.fbr import settle
from retry_pipelines.engine.fbr.settle import Refused, Settled, SettleFileError
from retry_pipelines.store import tables
from retry_pipelines_tests.support.factories import insert_invoices

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ADMIN = Actor("ops-amna", "checked every reference on IRIS", run_id="run-7")
HELD = "needs_reconciliation"
RECORDED = "1234567DI1763629200009"
"""Already recorded for the submitted invoice INV-0000010."""


def _ref(i: int) -> str:
    return f"INV-{i:07d}"


@pytest.fixture
def ids(engine):
    """Eleven invoices INV-0000000..10: all held but INV-0000005 (submitted) and INV-0000010
    (submitted with the number ``RECORDED``)."""
    ids = insert_invoices(engine, 11, now=NOW, status=HELD)
    with engine.begin() as conn:
        t = tables.invoices
        conn.execute(update(t).where(t.c.id == ids[5]).values(status="submitted"))
        conn.execute(
            update(t)
            .where(t.c.id == ids[10])
            .values(status="submitted", fbr_invoice_number=RECORDED)
        )
    return ids


MIXED = "\n".join(
    [
        "reference,fbr_invoice_number",  # 1
        f"{_ref(0)},1234567DI1763629200001",  # 2: marked submitted
        f"{_ref(1)},not_found",  # 3: released
        "",  # 4: blank, skipped
        f" {_ref(2)} , NOT_FOUND ",  # 5: released (spaces and case do not matter)
        f"{_ref(3)},12345",  # 6: malformed number
        "INV-9999999,not_found",  # 7: unknown reference
        f"{_ref(5)},not_found",  # 8: not held
        f"{_ref(4)},{RECORDED}",  # 9: number recorded for another invoice
        f"{_ref(6)},1234567DI1763629200002",  # 10: the same number as line 11
        f"{_ref(7)},1234567DI1763629200002",  # 11
        f"{_ref(8)},not_found",  # 12: the same reference as line 13
        f"{_ref(8)},not_found",  # 13
        f"{_ref(9)}",  # 14: one field
        ",not_found",  # 15: no reference
    ]
)


def _expected_refusals(ids):
    dup_number = (
        "fbr_invoice_number '1234567DI1763629200002' is on lines 10, 11: "
        "one FBR number belongs to one invoice"
    )
    dup_reference = f"reference '{_ref(8)}' is on lines 12, 13: give each invoice once"
    return [
        Refused(
            6,
            _ref(3),
            "fbr_invoice_number '12345' is not an FBR invoice number: an FBR invoice number has "
            "13..64 characters, this one 5",
        ),
        Refused(7, "INV-9999999", "no invoice has reference 'INV-9999999'"),
        Refused(
            8,
            _ref(5),
            f"invoice {ids[5]} is submitted, not needs_reconciliation: nothing to settle",
        ),
        Refused(
            9,
            _ref(4),
            f"fbr_invoice_number '{RECORDED}' is already recorded for invoice {ids[10]}; "
            "one FBR number belongs to one invoice",
        ),
        Refused(10, _ref(6), dup_number),
        Refused(11, _ref(7), dup_number),
        Refused(12, _ref(8), dup_reference),
        Refused(13, _ref(8), dup_reference),
        Refused(14, _ref(9), "has 1 fields, the header 2"),
        Refused(15, "", "reference is empty"),
    ]


def _statuses(engine):
    with engine.connect() as conn:
        t = tables.invoices
        return dict(conn.execute(select(t.c.reference, t.c.status)).all())


def _audit(engine):
    with engine.connect() as conn:
        t = tables.admin_audit
        return conn.execute(select(t).order_by(t.c.id)).mappings().all()


def test_good_rows_are_applied_and_audited_and_bad_rows_named_by_line(engine, ids):
    before = _statuses(engine)
    report = settle.settle_held_invoices(engine, ADMIN, now=NOW, csv_text=MIXED, dry_run=False)

    assert report.settled == [
        Settled(2, _ref(0), ids[0], "submitted"),
        Settled(3, _ref(1), ids[1], "pending"),
        Settled(5, _ref(2), ids[2], "pending"),
    ]
    assert report.refused == _expected_refusals(ids)
    assert (report.rows, report.valid, report.applied) == (13, 3, 3)
    assert _statuses(engine) == {
        **before,
        _ref(0): "submitted",
        _ref(1): "pending",
        _ref(2): "pending",
    }
    with engine.connect() as conn:
        t = tables.invoices
        rows = {
            r.reference: r
            for r in conn.execute(select(t).where(t.c.id.in_(ids[:3]))).mappings().all()
        }
    assert rows[_ref(0)]["fbr_invoice_number"] == "1234567DI1763629200001"
    assert rows[_ref(0)]["submitted_at"] == NOW
    assert rows[_ref(1)]["next_attempt_at"] == NOW
    assert rows[_ref(1)]["fbr_invoice_number"] is None

    audit = [
        (
            a["admin_id"],
            a["reason"],
            a["run_id"],
            a["action"],
            a["entity_type"],
            a["entity_id"],
            a["from_status"],
            a["to_status"],
            a["details"],
            a["at"],
        )
        for a in _audit(engine)
    ]
    who = ("ops-amna", "checked every reference on IRIS", "run-7")
    assert audit == [
        (
            *who,
            "resolve:mark_submitted",
            "invoice",
            str(ids[0]),
            HELD,
            "submitted",
            {"fbr_invoice_number": "1234567DI1763629200001"},
            NOW,
        ),
        (*who, "resolve:release", "invoice", str(ids[1]), HELD, "pending", None, NOW),
        (*who, "resolve:release", "invoice", str(ids[2]), HELD, "pending", None, NOW),
    ]


def test_a_dry_run_checks_every_row_and_changes_nothing(engine, ids):
    before = _statuses(engine)
    report = settle.settle_held_invoices(engine, ADMIN, now=NOW, csv_text=MIXED)

    assert report.dry_run
    assert report.settled == [
        Settled(2, _ref(0), ids[0], "submitted"),
        Settled(3, _ref(1), ids[1], "pending"),
        Settled(5, _ref(2), ids[2], "pending"),
    ]
    assert report.refused == _expected_refusals(ids)
    assert (report.rows, report.valid, report.applied) == (13, 3, 0)
    assert _statuses(engine) == before
    assert _audit(engine) == []


def test_path_with_bom_and_crlf_and_inline_text_both_apply(engine, ids, tmp_path):
    path = tmp_path / "iris.csv"
    text = f"fbr_invoice_number,Reference\r\n1234567DI1763629200001,{_ref(0)}\r\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    by_path = settle.settle_held_invoices(engine, ADMIN, now=NOW, csv_path=str(path), dry_run=False)
    inline = settle.settle_held_invoices(
        engine, ADMIN, now=NOW, csv_text=f"\ufeffreference,fbr_invoice_number\n{_ref(1)},not_found"
    )
    applied = settle.settle_held_invoices(
        engine,
        ADMIN,
        now=NOW,
        csv_text=f"reference,fbr_invoice_number\n{_ref(1)},not_found",
        dry_run=False,
    )

    assert by_path.settled == [Settled(2, _ref(0), ids[0], "submitted")]
    assert by_path.refused == []
    assert inline.settled == [Settled(2, _ref(1), ids[1], "pending")]
    assert applied.settled == inline.settled
    assert [a["entity_id"] for a in _audit(engine)] == [str(ids[0]), str(ids[1])]


GOOD = f"{_ref(0)},not_found\n"
HEADER = "reference,fbr_invoice_number\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            GOOD + f"{_ref(1)},not_found\n",
            "csv_text, line 1: column 'inv-0000000' is not expected; column 'not_found' is not "
            "expected; the header has no reference column; the header has no fbr_invoice_number "
            "column: the header must be reference,fbr_invoice_number; nothing was applied",
        ),
        (
            f"\n\nreference,fbr_invoice_number,action\n{_ref(0)},not_found,abandon\n",
            "csv_text, line 3: column 'action' is not expected: the header must be "
            "reference,fbr_invoice_number; to abandon an invoice use resolve_held_invoice; "
            "nothing was applied",
        ),
        (
            "reference,Reference,fbr_invoice_number\n" + GOOD,
            "csv_text, line 1: column reference appears twice: the header must be "
            "reference,fbr_invoice_number; nothing was applied",
        ),
        (
            HEADER + GOOD + f'"{"x" * 200_000}",not_found\n',
            "csv_text, line 3: not valid CSV (field larger than field limit (131072)); "
            "nothing was applied",
        ),
        (
            HEADER + GOOD + "r,not_found\n" * settle.MAX_ROWS,
            "csv_text holds more than 50,000 rows (line 50,002); split it; nothing was applied",
        ),
        (
            HEADER + GOOD + "x" * settle.MAX_BYTES,
            "csv_text is larger than 5,242,880 bytes; split it; nothing was applied",
        ),
        (HEADER + GOOD + "\ud800,not_found\n", "csv_text is not UTF-8 text; nothing was applied"),
    ],
)
def test_inline_text_that_cannot_be_read_is_refused_whole(engine, ids, text, message):
    before = _statuses(engine)
    with pytest.raises(SettleFileError) as raised:
        settle.settle_held_invoices(engine, ADMIN, now=NOW, csv_text=text, dry_run=False)
    assert str(raised.value) == message
    assert _statuses(engine) == before
    assert _audit(engine) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"reference,fbr_invoice_number\nINV-0000000,not_found\n\xe9\n", "is not UTF-8 text"),
        (b"x" * (settle.MAX_BYTES + 1), "is larger than 5,242,880 bytes; nothing was applied"),
    ],
)
def test_a_file_too_big_or_not_utf8_is_refused_whole(engine, ids, tmp_path, content, message):
    path = tmp_path / "iris.csv"
    path.write_bytes(content)
    with pytest.raises(SettleFileError, match=message):
        settle.settle_held_invoices(engine, ADMIN, now=NOW, csv_path=str(path), dry_run=False)
    with pytest.raises(SettleFileError, match=r"cannot read '.*missing\.csv': No such file"):
        settle.settle_held_invoices(engine, ADMIN, now=NOW, csv_path=str(tmp_path / "missing.csv"))
    assert _statuses(engine)[_ref(0)] == HELD
    assert _audit(engine) == []


def test_both_sources_or_no_rows_for_a_real_run_are_refused(engine, ids):
    with pytest.raises(SettleFileError, match="give exactly one of csv_path or csv_text"):
        settle.settle_held_invoices(engine, ADMIN, now=NOW, csv_path="a.csv", csv_text="x")
    for empty in (None, "", "reference,fbr_invoice_number\n\n"):
        with pytest.raises(SettleFileError, match="the CSV holds no rows"):
            settle.settle_held_invoices(engine, ADMIN, now=NOW, csv_text=empty, dry_run=False)


def test_a_row_changed_after_the_check_is_reported_and_the_others_applied(engine, ids):
    text = f"reference,fbr_invoice_number\n{_ref(0)},not_found\n{_ref(1)},not_found\n"
    rows, refused = settle.parse_csv(text)
    good, problems = settle.check_rows(engine, rows)
    assert (refused, problems, [i for _, i in good]) == ([], [], ids[:2])
    with engine.begin() as conn:  # another operator resolves the first meanwhile
        t = tables.invoices
        conn.execute(update(t).where(t.c.id == ids[0]).values(status="abandoned"))

    settled, late = settle.apply_rows(engine, ADMIN, good, now=NOW)

    assert settled == [Settled(3, _ref(1), ids[1], "pending")]
    assert late == [
        Refused(
            2,
            _ref(0),
            f"not applied: invoice {ids[0]} is abandoned, not needs_reconciliation: "
            "nothing to resolve",
        )
    ]
    assert [a["entity_id"] for a in _audit(engine)] == [str(ids[1])]


def test_a_dry_run_given_no_rows_lists_the_held_invoices_with_a_template(engine, ids):
    with engine.begin() as conn:
        t = tables.invoices
        conn.execute(
            update(t)
            .where(t.c.id == ids[3])
            .values(
                last_error_type="NETWORK",
                last_error_code="ReadTimeout",
                last_error_message="read timed out\nafter 30 s",
                attempt_count=4,
            )
        )
    for given in ({}, {"csv_text": ""}, {"csv_text": "reference,fbr_invoice_number\n"}):
        report = settle.settle_held_invoices(engine, ADMIN, now=NOW, **given)
        assert report.held is not None
        assert report.held.total == 9
        assert [r["id"] for r in report.held.rows] == [ids[i] for i in (0, 1, 2, 3, 4, 6, 7, 8, 9)]
    shown = report.held.rows[3]
    assert (shown["reference"], shown["attempts"], shown["since"]) == (
        _ref(3),
        4,
        NOW.isoformat(),
    )
    assert (shown["error_type"], shown["error_code"], shown["error_message"]) == (
        "NETWORK",
        "ReadTimeout",
        "read timed out after 30 s",
    )
    template = report.held.template().splitlines()
    assert template[0] == "reference,fbr_invoice_number"
    assert template[1:] == [f"{_ref(i)}," for i in (0, 1, 2, 3, 4, 6, 7, 8, 9)]
    assert settle.held_invoices(engine, limit=2).rows == report.held.rows[:2]
    assert _audit(engine) == []


def test_values_from_the_file_are_shown_cleaned_and_bounded(engine, ids):
    long_reference = "R" * 500
    text = (
        "reference,fbr_invoice_number\n"
        f"{long_reference},not_found\n"
        "INV\x00-1,not_found\n"
        f"{_ref(0)},7000007DI\u0661\u0662\u0663\u0664\u0665\u0666\n"
    )
    report = settle.settle_held_invoices(engine, ADMIN, now=NOW, csv_text=text)
    first, second, third = report.refused
    assert len(first.reference) == settle.SHOWN_TEXT
    assert first.problem.startswith("reference 'RRRR")
    assert first.problem.endswith(
        "…[truncated 442 chars]' is no invoice's reference (500 characters; the column holds 64)"
    )
    assert len(first.problem) < 160
    assert second.reference == "INV-1"
    assert second.problem == (
        "reference 'INV-1' is no invoice's reference (it holds control characters or invalid text)"
    )
    digits = "".join(chr(0x661 + i) for i in range(6))  # Arabic-Indic 1..6
    assert third.problem == (
        f"fbr_invoice_number '7000007DI{digits}' is not an FBR invoice number: an FBR invoice "
        "number is ASCII letters, digits and '-', not " + ", ".join(repr(c) for c in digits[:5])
    )
    assert _audit(engine) == []
