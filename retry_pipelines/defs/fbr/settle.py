"""Settle many held FBR invoices at once from a CSV an operator filled in from IRIS
(``engine.fbr.settle``): a path on the code location's machine or the CSV inline, dry run by
default.

Every row is checked first and each problem is named by its line; a real run then applies each
good row in its own audited transaction. A run that refused any row fails, naming the count and
the ``refused_rows`` table in the failure's metadata (the rows it applied stay applied and
audited), so an operator sees red whenever a line still needs work; a dry run with problems fails
the same way before anything is applied. A dry run given no rows lists the held invoices with a
CSV template to fill in."""

import re
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.fbr import settle
from retry_pipelines.lib.admin import (
    AdminConfig,
    actor,
    admin_failure,
    refused_as_failure,
    table_metadata,
)
from retry_pipelines.lib.tags import FBR, gateway_tags

TABLE_ROWS = 500
"""Rows of each output table; the counts beside them are exact."""
REFUSED_COLUMNS = {"line": "int", "reference": "string", "problem": "string"}
SETTLED_COLUMNS = {
    "line": "int",
    "reference": "string",
    "invoice_id": "int",
    "new_status": "string",
}
HELD_COLUMNS = {
    "id": "int",
    "reference": "string",
    "since": "string",
    "error_type": "string",
    "error_code": "string",
    "error_message": "string",
    "attempts": "int",
}
MiB = 1024 * 1024
OP_NAME = "settle_held_invoices_from_csv"


class ResolveHeldInvoicesConfig(AdminConfig):
    """Give exactly one of csv_path or csv_text; give neither (dry run) to list the held
    invoices with a CSV template."""

    csv_path: str | None = Field(
        default=None,
        description="A CSV file on the code location's machine: header "
        "reference,fbr_invoice_number, one held invoice a line; UTF-8, at most "
        f"{settle.MAX_BYTES // MiB} MB and {settle.MAX_ROWS:,} rows.",
    )
    csv_text: str | None = Field(
        default=None,
        description="The same CSV inline. fbr_invoice_number is the number IRIS shows (marks "
        "the invoice submitted) or not_found (FBR issued none: released for re-post).",
    )
    dry_run: bool = Field(
        default=True,
        description="true: check every row and apply nothing (no CSV: list the held invoices); "
        "false: apply the good rows, each audited.",
    )


def _settled_rows(report: settle.SettleReport) -> list[dict[str, Any]]:
    return [vars(s) for s in report.settled[:TABLE_ROWS]]


def _summary(report: settle.SettleReport) -> str:
    counts = f"{report.rows} row(s): {report.valid} valid, {len(report.refused)} refused"
    if report.dry_run:
        then = (
            "fix or remove the lines in `refused_rows`, then launch the dry run again"
            if report.refused
            else "launch again with `dry_run: false` to apply them, each in its own audited "
            "transaction"
        )
        return f"Dry run, nothing was changed. {counts}. Next: {then}."
    done = f"Applied {report.applied} row(s), each audited. {counts}."
    if report.refused:
        return f"{done} Next: correct the lines in `refused_rows` and launch again with only them."
    return done


def settle_metadata(report: settle.SettleReport) -> dict[str, Any]:
    """Counts, the refused and the settled rows as tables, and a Markdown summary."""
    settled = "valid_rows" if report.dry_run else "applied_rows"
    refused = [vars(r) for r in report.refused[:TABLE_ROWS]]
    return {
        "dry_run": report.dry_run,
        "rows": report.rows,
        "valid": report.valid,
        "applied": report.applied,
        "refused": len(report.refused),
        "refused_rows": table_metadata(refused, REFUSED_COLUMNS),
        settled: table_metadata(_settled_rows(report), SETTLED_COLUMNS),
        "summary": dg.MetadataValue.md(_summary(report)),
    }


def _fence(text: str) -> str:
    """A Markdown code fence longer than any run of backticks in ``text``."""
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _held_summary(held: settle.Held) -> str:
    if not held.total:
        return "No invoice is held for reconciliation: nothing to settle."
    csv_lines = "".join(f"        {line}\n" for line in held.template().splitlines())
    snippet = (
        f"ops:\n  {OP_NAME}:\n    config:\n      admin_id: your-admin-id\n"
        "      reason: numbers checked on IRIS\n      dry_run: true\n      csv_text: |\n"
        f"{csv_lines}"
    )
    fence = _fence(snippet)
    return (
        f"**{held.total} invoice(s) held** for reconciliation (their post may have reached FBR); "
        f"the {len(held.rows)} held longest are in `held_invoices` and in the launchpad "
        "config below.\n\n"
        "For each, look the reference up on IRIS and write after its comma the number IRIS "
        "shows, or `not_found` if FBR issued none. Launch this job with that config (or save the "
        "CSV lines as a UTF-8 file and give `csv_path` instead of `csv_text`): first as it is "
        "(`dry_run: true`: every line is checked, nothing changes), then with `dry_run: false`."
        f"\n\n{fence}yaml\n{snippet}{fence}"
    )


def held_metadata(held: settle.Held) -> dict[str, Any]:
    """The held invoices as a table, their exact count, and a Markdown guide with a template."""
    return {
        "dry_run": True,
        "held_count": held.total,
        "held_shown": len(held.rows),
        "held_invoices": table_metadata(held.rows, HELD_COLUMNS),
        "summary": dg.MetadataValue.md(_held_summary(held)),
    }


def _refusal(report: settle.SettleReport) -> str:
    count = f"{len(report.refused)} of {report.rows} row(s) refused"
    if report.dry_run:
        return (
            f"dry run: {count}, nothing was changed: see the refused_rows table in this "
            "failure's metadata; fix or remove those lines and launch the dry run again"
        )
    return (
        f"{count}, {report.applied} applied and audited: see the refused_rows table in this "
        "failure's metadata; correct those lines and launch again with only them"
    )


@dg.op(
    name=OP_NAME,
    description="Check every row of a CSV of held invoices, then settle the good ones.",
)
def settle_held_invoices_from_csv(
    context: dg.OpExecutionContext, config: ResolveHeldInvoicesConfig, db: DatabaseResource
) -> list[int]:
    with refused_as_failure():
        report = settle.settle_held_invoices(
            db.engine,
            actor(context, db, config.admin_id, config.reason),
            now=datetime.now(UTC),
            csv_path=config.csv_path,
            csv_text=config.csv_text,
            dry_run=config.dry_run,
        )
    if report.held is not None:
        context.add_output_metadata(held_metadata(report.held))
        context.log.info(f"{report.held.total} invoice(s) held for reconciliation")
        return []
    metadata = settle_metadata(report)
    if report.refused:
        raise admin_failure(_refusal(report), metadata)
    context.add_output_metadata(metadata)
    verb = "would settle" if report.dry_run else "settled"
    context.log.info(f"{verb} {len(report.settled)} held invoice(s)")
    return [s.invoice_id for s in report.settled]


@dg.job(
    tags=gateway_tags(FBR),
    description="Settle held FBR invoices in bulk from a CSV (reference, FBR number or "
    "not_found); dry run first; a dry run with no CSV lists the held invoices.",
)
def resolve_held_invoices():
    settle_held_invoices_from_csv()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[resolve_held_invoices])
