"""The bulk settle job as real Dagster runs on both databases: a dry run with no CSV lists the held
invoices with a template, problems are named by line in a table and fail the run (after the good
rows were applied, in a real run), each applied row audited with the run id."""

from datetime import UTC, datetime

import dagster as dg
import pytest
import yaml
from sqlalchemy import select, update

from retry_pipelines.defs.fbr.settle import resolve_held_invoices
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.store import tables
from retry_pipelines.store.db import make_engine
from retry_pipelines_tests.support.factories import insert_invoices

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
OP = "settle_held_invoices_from_csv"
WHO = {"admin_id": "ops-amna", "reason": "numbers checked on IRIS"}
HEADER = "reference,fbr_invoice_number\n"
NUMBER = "1234567DI1763629200001"


@pytest.fixture
def db(db_url):
    engine = make_engine(db_url)
    yield db_url, engine
    engine.dispose()


def _held(engine, count: int = 3) -> list[int]:
    ids = insert_invoices(engine, count + 1, now=NOW, status="needs_reconciliation")
    with engine.begin() as conn:  # the last one is dead: never listed, never settled
        t = tables.invoices
        conn.execute(update(t).where(t.c.id == ids[-1]).values(status="dead"))
    return ids[:-1]


def _run(url: str, **config):
    return resolve_held_invoices.execute_in_process(
        run_config={"ops": {OP: {"config": {**WHO, **config}}}},
        resources={"db": DatabaseResource(url=url)},
        raise_on_error=False,
    )


def _output_metadata(result) -> dict:
    [output] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_OUTPUT]
    return output.step_output_data.metadata


def _failure(result):
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return failure.step_failure_data.user_failure_data


def _records(value) -> list[dict]:
    return [record.data for record in value.records]


def _statuses(engine) -> dict[str, str]:
    with engine.connect() as conn:
        t = tables.invoices
        return dict(conn.execute(select(t.c.reference, t.c.status)).all())


def _audit(engine):
    with engine.connect() as conn:
        t = tables.admin_audit
        return conn.execute(select(t).order_by(t.c.id)).mappings().all()


def test_a_dry_run_without_a_csv_lists_the_held_invoices_with_a_template(db):
    url, engine = db
    ids = _held(engine)
    result = _run(url)

    assert result.success
    assert result.output_for_node(OP) == []
    metadata = _output_metadata(result)
    assert (metadata["held_count"].value, metadata["held_shown"].value) == (3, 3)
    held = _records(metadata["held_invoices"])
    assert [(r["id"], r["reference"]) for r in held] == [
        (ids[0], "INV-0000000"),
        (ids[1], "INV-0000001"),
        (ids[2], "INV-0000002"),
    ]
    assert held[0]["since"] == NOW.isoformat()
    summary = metadata["summary"].value
    assert "**3 invoice(s) held**" in summary
    snippet = summary[summary.index("```yaml\n") + 8 : summary.rindex("```")]
    assert yaml.safe_load(snippet) == {
        "ops": {
            OP: {
                "config": {
                    "admin_id": "your-admin-id",
                    "reason": "numbers checked on IRIS",
                    "dry_run": True,
                    "csv_text": HEADER + "INV-0000000,\nINV-0000001,\nINV-0000002,\n",
                }
            }
        }
    }
    assert "then with `dry_run: false`" in summary
    unfilled = resolve_held_invoices.execute_in_process(  # the snippet is valid launchpad config
        run_config=yaml.safe_load(snippet),
        resources={"db": DatabaseResource(url=url)},
        raise_on_error=False,
    )
    problems = {r["problem"] for r in _records(_failure(unfilled).metadata["refused_rows"])}
    assert problems == {
        "fbr_invoice_number is empty: give the number IRIS shows, or not_found if FBR issued none"
    }
    assert _audit(engine) == []


def test_a_dry_run_with_problems_fails_naming_them_by_line_and_changes_nothing(db):
    url, engine = db
    ids = _held(engine)
    before = _statuses(engine)
    text = HEADER + f"INV-0000000,{NUMBER}\nINV-0000404,not_found\n\nINV-0000001,not_found\n"
    result = _run(url, csv_text=text)

    assert not result.success
    failure = _failure(result)
    assert failure.description == (
        "dry run: 1 of 3 row(s) refused, nothing was changed: see the refused_rows table in this "
        "failure's metadata; fix or remove those lines and launch the dry run again"
    )
    metadata = failure.metadata
    assert _records(metadata["refused_rows"]) == [
        {"line": 3, "reference": "INV-0000404", "problem": "no invoice has reference 'INV-0000404'"}
    ]
    assert _records(metadata["valid_rows"]) == [
        {"line": 2, "reference": "INV-0000000", "invoice_id": ids[0], "new_status": "submitted"},
        {"line": 5, "reference": "INV-0000001", "invoice_id": ids[1], "new_status": "pending"},
    ]
    counts = {k: metadata[k].value for k in ("rows", "valid", "applied", "refused")}
    assert counts == {"rows": 3, "valid": 2, "applied": 0, "refused": 1}
    assert _statuses(engine) == before
    assert _audit(engine) == []


def test_a_real_run_from_a_path_applies_the_good_rows_and_fails_naming_the_rest(db, tmp_path):
    url, engine = db
    ids = _held(engine)
    path = tmp_path / "iris.csv"
    path.write_text(HEADER + f"INV-0000000,{NUMBER}\nINV-0000001,not_found\nINV-0000003,1\n")
    with engine.connect() as conn:
        t = tables.invoices
        dead = conn.execute(select(t.c.id).where(t.c.reference == "INV-0000003")).scalar_one()
    result = _run(url, csv_path=str(path), dry_run=False)

    assert not result.success
    failure = _failure(result)
    assert failure.description == (
        "1 of 3 row(s) refused, 2 applied and audited: see the refused_rows table in this "
        "failure's metadata; correct those lines and launch again with only them"
    )
    assert _records(failure.metadata["refused_rows"]) == [
        {
            "line": 4,
            "reference": "INV-0000003",
            "problem": "fbr_invoice_number '1' is not an FBR invoice number: an FBR invoice "
            f"number has 13..64 characters, this one 1; invoice {dead} is dead, not "
            "needs_reconciliation: nothing to settle",
        }
    ]
    assert _records(failure.metadata["applied_rows"]) == [
        {"line": 2, "reference": "INV-0000000", "invoice_id": ids[0], "new_status": "submitted"},
        {"line": 3, "reference": "INV-0000001", "invoice_id": ids[1], "new_status": "pending"},
    ]
    assert failure.metadata["applied"].value == 2
    assert _statuses(engine)["INV-0000000"] == "submitted"
    assert _statuses(engine)["INV-0000001"] == "pending"
    audit = [
        (a["action"], a["entity_id"], a["from_status"], a["to_status"], a["run_id"], a["details"])
        for a in _audit(engine)
    ]
    assert audit == [
        (
            "resolve:mark_submitted",
            str(ids[0]),
            "needs_reconciliation",
            "submitted",
            result.run_id,
            {"fbr_invoice_number": NUMBER},
        ),
        ("resolve:release", str(ids[1]), "needs_reconciliation", "pending", result.run_id, None),
    ]
    assert {(a["admin_id"], a["reason"]) for a in _audit(engine)} == {
        ("ops-amna", "numbers checked on IRIS")
    }


def test_a_real_run_with_only_good_rows_succeeds(sqlite_url, sqlite_engine):
    ids = _held(sqlite_engine)
    result = _run(sqlite_url, csv_text=HEADER + "INV-0000002,not_found\n", dry_run=False)

    assert result.success
    assert result.output_for_node(OP) == [ids[2]]
    metadata = _output_metadata(result)
    assert {k: metadata[k].value for k in ("rows", "valid", "applied", "refused")} == {
        "rows": 1,
        "valid": 1,
        "applied": 1,
        "refused": 0,
    }
    assert _records(metadata["refused_rows"]) == []
    assert metadata["summary"].value == (
        "Applied 1 row(s), each audited. 1 row(s): 1 valid, 0 refused."
    )
    assert _statuses(sqlite_engine)["INV-0000002"] == "pending"


@pytest.mark.parametrize(
    ("config", "description"),
    [
        (
            {"csv_text": "INV-0000000,not_found\n", "dry_run": False},
            "csv_text, line 1: column 'inv-0000000' is not expected; column 'not_found' is not "
            "expected; the header has no reference column; the header has no fbr_invoice_number "
            "column: the header must be reference,fbr_invoice_number; nothing was applied",
        ),
        (
            {"csv_text": HEADER, "csv_path": "/tmp/iris.csv"},
            "give exactly one of csv_path or csv_text, not both",
        ),
        (
            {"dry_run": False},
            "the CSV holds no rows: give one line per held invoice (reference,fbr_invoice_number), "
            "or run with dry_run: true to list the held invoices",
        ),
    ],
)
def test_a_csv_refused_whole_fails_in_one_line_and_applies_nothing(
    sqlite_url, sqlite_engine, config, description
):
    _held(sqlite_engine)
    before = _statuses(sqlite_engine)
    result = _run(sqlite_url, **config)

    assert not result.success
    assert _failure(result).description == description
    assert _statuses(sqlite_engine) == before
    assert _audit(sqlite_engine) == []


def test_a_file_too_big_or_not_utf8_fails_in_one_line(sqlite_url, sqlite_engine, tmp_path):
    _held(sqlite_engine)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(HEADER.encode() + b"INV-0000000,not_found\nCAF\xc9,not_found\n")
    big = tmp_path / "big.csv"
    big.write_bytes(HEADER.encode() + b"INV-0000000,not_found\n" + b" " * (5 * 1024 * 1024))

    not_utf8 = _failure(_run(sqlite_url, csv_path=str(latin1), dry_run=False)).description
    too_big = _failure(_run(sqlite_url, csv_path=str(big), dry_run=False)).description

    assert not_utf8 == (
        f"'{latin1}' is not UTF-8 text (byte 54); save it as UTF-8 CSV; nothing was applied"
    )
    assert too_big == f"{big} is larger than 5,242,880 bytes; nothing was applied"
    assert _statuses(sqlite_engine)["INV-0000000"] == "needs_reconciliation"
    assert _audit(sqlite_engine) == []
