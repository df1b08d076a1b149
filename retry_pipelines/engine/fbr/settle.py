"""Settling many held invoices at once from a CSV an operator filled in from IRIS.

The file is UTF-8 (a byte order mark is allowed), at most ``MAX_BYTES`` and ``MAX_ROWS`` rows,
with a header naming exactly the columns ``reference`` and ``fbr_invoice_number`` (any order, any
case) and one held invoice a line:

* ``reference``: the invoice's own reference, exactly as stored;
* ``fbr_invoice_number``: the number IRIS shows for it (the invoice is marked submitted with that
  number), or ``not_found`` when FBR never issued one (the invoice is released for re-post).

There is no ``action`` column and no way to abandon in bulk: giving up on an invoice is a
deliberate decision about one invoice (``resolve_held_invoice`` with ``action: abandon``), and a
column that could be misread or misfilled must not decide it for hundreds.

A file that cannot be read as a whole (too big, not UTF-8, not CSV, a wrong header, too many
rows) is refused with ``SettleFileError`` and nothing is applied. Otherwise every row is checked
first and each problem is named by its line; then, unless it is a dry run, each good row is
applied in its own audited transaction by ``admin.resolve_held_invoice`` (the same action, the
same audit row as a single resolve), and a row refused then (the invoice changed meanwhile) is
reported by its line while the others go on.
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from retry_pipelines.domain.fbr_reference import fbr_number_problem
from retry_pipelines.domain.json_limits import read_bounded_text
from retry_pipelines.domain.states import InvoiceStatus
from retry_pipelines.engine.actor import Actor, AdminError
from retry_pipelines.engine.fbr.admin import RESOLUTIONS, resolve_held_invoice, shown
from retry_pipelines.store import invoices as store
from retry_pipelines.store.clean import clean_text, identifier_problem
from retry_pipelines.store.tables import invoices

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 50_000
COLUMNS = ("reference", "fbr_invoice_number")
NOT_FOUND = "not_found"
"""The ``fbr_invoice_number`` that says FBR issued no number: release the invoice for re-post."""
HELD_LISTED = 500
"""Held invoices a listing shows (the total is always exact)."""
SHOWN_TEXT = 80
"""Characters of a value from the file that a problem quotes."""
SHOWN_LINES = 5


class SettleFileError(AdminError):
    """The CSV cannot be read as a whole; nothing in it was applied."""


@dataclass(frozen=True)
class Row:
    """One line of the file, its cells stripped."""

    line: int
    reference: str
    number: str

    @property
    def action(self) -> str:
        return "release" if self.number.lower() == NOT_FOUND else "mark_submitted"

    @property
    def fbr_invoice_number(self) -> str | None:
        return None if self.action == "release" else self.number


@dataclass(frozen=True)
class Refused:
    line: int
    reference: str
    """As the file gives it, cleaned and bounded for showing."""
    problem: str


@dataclass(frozen=True)
class Settled:
    line: int
    reference: str
    invoice_id: int
    new_status: str
    """The status the invoice got (a dry run: would get)."""


@dataclass(frozen=True)
class Held:
    """The held invoices, longest held first: ``rows`` (at most ``HELD_LISTED``, as
    ``admin.shown``) of ``total``."""

    total: int
    rows: list[dict[str, Any]]

    def template(self) -> str:
        """A CSV to fill in: the header and one line per listed invoice, the number left blank."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([row["reference"], ""] for row in self.rows)
        return out.getvalue()


@dataclass
class SettleReport:
    """What a settle run did (a dry run: would do). ``held`` lists the held invoices when the
    run was given no rows."""

    dry_run: bool
    rows: int = 0
    settled: list[Settled] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    valid: int = 0
    """Rows that passed every check before anything was applied."""
    held: Held | None = None

    @property
    def applied(self) -> int:
        return 0 if self.dry_run else len(self.settled)


def settle_held_invoices(
    engine: Engine,
    actor: Actor,
    *,
    now: datetime,
    csv_path: str | None = None,
    csv_text: str | None = None,
    dry_run: bool = True,
) -> SettleReport:
    """Check every row of the CSV given as a path or as text (exactly one), then apply the good
    ones unless ``dry_run``. A dry run given no rows (no CSV, or only a header) lists the held
    invoices instead; a real run refuses it. ``SettleFileError`` when the file is refused whole."""
    rows, refused = read_rows(csv_path, csv_text)
    if not rows and not refused:
        if not dry_run:
            raise SettleFileError(
                "the CSV holds no rows: give one line per held invoice "
                f"({','.join(COLUMNS)}), or run with dry_run: true to list the held invoices"
            )
        return SettleReport(dry_run=True, held=held_invoices(engine))
    good, problems = check_rows(engine, rows)
    report = SettleReport(dry_run, len(rows) + len(refused), valid=len(good))
    report.refused = refused + problems
    if dry_run:
        report.settled = [Settled(r.line, _display(r.reference), i, _target(r)) for r, i in good]
    else:
        report.settled, late = apply_rows(engine, actor, good, now=now)
        report.refused += late
    report.refused.sort(key=lambda r: r.line)
    return report


def held_invoices(engine: Engine, limit: int = HELD_LISTED) -> Held:
    with engine.connect() as conn:
        total = store.status_count(conn, InvoiceStatus.NEEDS_RECONCILIATION)
        rows = store.held(conn, limit=limit)
    return Held(total, [shown(row) for row in rows])


def read_rows(csv_path: str | None, csv_text: str | None) -> tuple[list[Row], list[Refused]]:
    """The rows of the CSV given (none when neither is), and the lines refused for their shape."""
    if csv_path is not None and csv_text is not None:
        raise SettleFileError("give exactly one of csv_path or csv_text, not both")
    if csv_path is not None:
        return parse_csv(_file_text(csv_path), name=_quoted(csv_path))
    if csv_text is not None:
        return parse_csv(_inline_text(csv_text), name="csv_text")
    return [], []


def _file_text(path: str) -> str:
    return read_bounded_text(
        path,
        MAX_BYTES,
        error=SettleFileError,
        consequence="nothing was applied",
        name=_quoted(path),
        not_utf8="{name} is not UTF-8 text (byte {byte:,}); save it as UTF-8 CSV; {consequence}",
    )


def _inline_text(text: str) -> str:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise SettleFileError("csv_text is not UTF-8 text; nothing was applied") from None
    if size > MAX_BYTES:
        raise SettleFileError(
            f"csv_text is larger than {MAX_BYTES:,} bytes; split it; nothing was applied"
        )
    return text.removeprefix("\ufeff")


def parse_csv(text: str, *, name: str = "the CSV") -> tuple[list[Row], list[Refused]]:
    """The data rows of ``text`` (blank lines skipped) and the lines refused for their shape.
    ``SettleFileError`` for a wrong header, invalid CSV or more than ``MAX_ROWS`` rows."""
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[Row] = []
    refused: list[Refused] = []
    try:
        columns = _columns(reader, name)
        start = reader.line_num + 1
        if columns is None:
            return rows, refused
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) + len(refused) == MAX_ROWS:
                raise SettleFileError(
                    f"{name} holds more than {MAX_ROWS:,} rows (line {line:,}); split it; "
                    "nothing was applied"
                )
            _add_row(line, cells, columns, rows, refused)
    except csv.Error as exc:
        raise SettleFileError(
            f"{name}, line {reader.line_num:,}: not valid CSV ({exc}); nothing was applied"
        ) from None
    return rows, refused


def _columns(reader: Any, name: str) -> dict[str, int] | None:
    """Column name -> position from the header, the first line that is not blank (None when
    there is none)."""
    header = next(reader, None)
    while header is not None and not any(cell.strip() for cell in header):
        header = next(reader, None)
    if header is None:
        return None
    cells = [cell.strip().lower() for cell in header]
    problems = [f"column {_shown(c)} is not expected" for c in cells if c not in COLUMNS]
    problems += [f"column {c} appears twice" for c in COLUMNS if cells.count(c) > 1]
    problems += [f"the header has no {c} column" for c in COLUMNS if c not in cells]
    if problems:
        hint = "; to abandon an invoice use resolve_held_invoice" if "action" in cells else ""
        shown_problems = "; ".join(problems[:SHOWN_LINES])
        raise SettleFileError(
            f"{name}, line {reader.line_num}: {shown_problems}: the header must be "
            f"{','.join(COLUMNS)}{hint}; nothing was applied"
        )
    return {c: cells.index(c) for c in COLUMNS}


def _add_row(
    line: int,
    cells: list[str],
    columns: dict[str, int],
    rows: list[Row],
    refused: list[Refused],
) -> None:
    if len(cells) != len(COLUMNS):
        first = _display(cells[columns["reference"]]) if len(cells) > columns["reference"] else ""
        refused.append(Refused(line, first, f"has {len(cells)} fields, the header 2"))
        return
    reference, number = (cells[columns[c]].strip() for c in COLUMNS)
    problems = []
    if not reference:
        problems.append("reference is empty")
    if not number:
        problems.append(
            "fbr_invoice_number is empty: give the number IRIS shows, or not_found if FBR "
            "issued none"
        )
    if problems:
        refused.append(Refused(line, _display(reference), "; ".join(problems)))
        return
    rows.append(Row(line, reference, number))


def check_rows(engine: Engine, rows: list[Row]) -> tuple[list[tuple[Row, int]], list[Refused]]:
    """The rows that can be applied, each with its invoice id, and the others with every problem
    found: a reference or number repeated in the file, a malformed number, an unknown reference,
    an invoice not held, a number already recorded for another invoice."""
    problems: dict[int, list[str]] = defaultdict(list)
    _repeats(rows, lambda r: r.reference, "reference", "give each invoice once", problems)
    numbered = [r for r in rows if r.fbr_invoice_number]
    rule = "one FBR number belongs to one invoice"
    _repeats(numbered, lambda r: r.number, "fbr_invoice_number", rule, problems)
    for row in numbered:
        problem = _number_problem(row.number)
        if problem:
            problems[row.line].append(problem)
    found, holders = _lookup(engine, rows, problems)
    good: list[tuple[Row, int]] = []
    for row in rows:
        invoice = found.get(row.reference)
        if invoice is not None:
            problems[row.line] += _invoice_problems(row, invoice, holders)
        if not problems[row.line]:
            good.append((row, invoice["id"]))
    refused = [
        Refused(row.line, _display(row.reference), "; ".join(problems[row.line]))
        for row in rows
        if problems[row.line]
    ]
    return good, refused


def _repeats(rows, key, what: str, rule: str, problems: dict[int, list[str]]) -> None:
    lines: dict[str, list[int]] = defaultdict(list)
    for row in rows:
        lines[key(row)].append(row.line)
    for value, where in lines.items():
        if len(where) > 1:
            for line in where:
                problems[line].append(f"{what} {_shown(value)} is on lines {_lines(where)}: {rule}")


def _number_problem(number: str) -> str | None:
    column = invoices.c.fbr_invoice_number
    problem = identifier_problem(column, number) or fbr_number_problem(number)
    if problem:
        return f"fbr_invoice_number {_shown(number)} is not an FBR invoice number: {problem}"
    return None


def _lookup(
    engine: Engine, rows: list[Row], problems: dict[int, list[str]]
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """The invoices the rows name (reference -> id, status) and who holds their numbers; a
    reference that no stored reference can equal is not looked up."""
    storable: list[Row] = []
    for row in rows:
        problem = identifier_problem(invoices.c.reference, row.reference)
        if problem:
            problems[row.line].append(
                f"reference {_shown(row.reference)} is no invoice's reference ({problem})"
            )
        else:
            storable.append(row)
    numbers = [r.number for r in storable if r.fbr_invoice_number and not problems[r.line]]
    with engine.connect() as conn:
        found = store.by_references(conn, [r.reference for r in storable])
        holders = store.number_holders(conn, numbers)
    for row in storable:
        if row.reference not in found:
            problems[row.line].append(f"no invoice has reference {_shown(row.reference)}")
    return found, holders


def _invoice_problems(row: Row, invoice: dict[str, Any], holders: dict[str, int]) -> list[str]:
    problems = []
    if invoice["status"] != InvoiceStatus.NEEDS_RECONCILIATION:
        problems.append(
            f"invoice {invoice['id']} is {invoice['status']}, not needs_reconciliation: "
            "nothing to settle"
        )
    holder = holders.get(row.number) if row.fbr_invoice_number else None
    if holder is not None and holder != invoice["id"]:
        problems.append(
            f"fbr_invoice_number {_shown(row.number)} is already recorded for invoice {holder}; "
            "one FBR number belongs to one invoice"
        )
    return problems


def apply_rows(
    engine: Engine, actor: Actor, good: list[tuple[Row, int]], *, now: datetime
) -> tuple[list[Settled], list[Refused]]:
    """Each row in its own audited transaction (``resolve_held_invoice``); a row refused now is
    reported with the refusal and the others go on."""
    settled: list[Settled] = []
    refused: list[Refused] = []
    for row, invoice_id in good:
        try:
            status = resolve_held_invoice(
                engine,
                actor,
                invoice_id=invoice_id,
                action=row.action,
                now=now,
                fbr_invoice_number=row.fbr_invoice_number,
            )
        except AdminError as exc:
            refused.append(Refused(row.line, _display(row.reference), f"not applied: {exc}"))
            continue
        settled.append(Settled(row.line, row.reference, invoice_id, status))
    return settled, refused


def _target(row: Row) -> str:
    return RESOLUTIONS[row.action].value


def _display(value: str) -> str:
    """A value from the file for showing: cleaned (secrets redacted), one line, bounded."""
    return clean_text(value, limit=SHOWN_TEXT, multiline=False) or ""


def _shown(value: str) -> str:
    """A value from the file, quoted for a message (``_display``)."""
    return repr(_display(value))


def _quoted(value: str | os.PathLike) -> str:
    return _shown(os.fspath(value))


def _lines(lines: list[int]) -> str:
    listed = ", ".join(str(n) for n in lines[:SHOWN_LINES])
    more = len(lines) - SHOWN_LINES
    return listed + (f" and {more} more" if more > 0 else "")
