"""``retry-pipelines``: operate the app database and the local sandbox from a shell.

A user error (a bad URL, file, revision, id or value) is one line on stderr and exit code 2; ``-v``
also prints the traceback. Destructive commands need an explicit target and ``--yes``."""

from __future__ import annotations

import argparse
import decimal
import os
import sys
import traceback
from collections.abc import Mapping
from datetime import UTC, datetime

from retry_pipelines.config import DATABASE_URL_ENV, database_url
from retry_pipelines.store.db import make_engine, redacted

MAX_ID = 2**63 - 1
"""The largest id a BIGINT column holds (SQLite and PostgreSQL alike)."""


class CliError(Exception):
    """A refusal of the command line itself; the message says what to do instead."""


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line on stderr (exit 2), like every other user error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _engine(args):
    return make_engine(database_url(args.database_url))


def _row_id(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= number <= MAX_ID:
        raise argparse.ArgumentTypeError(f"an id is within 1..{MAX_ID}, got {value}")
    return number


def cmd_db_upgrade(args) -> int:
    from retry_pipelines.store import migrate

    engine = _engine(args)
    migrate.upgrade(engine, args.revision)
    print(f"{redacted(engine)}: at revision {migrate.current_revision(engine)}")
    _print_payout_conflicts(engine)
    return 0


def _print_payout_conflicts(engine) -> None:
    """Batches recorded twice before payout identity was enforced: each needs a person."""
    from sqlalchemy import inspect

    from retry_pipelines.store import payouts

    if not inspect(engine).has_table("payout_identity_conflicts"):
        return
    found = payouts.conflicts(engine)
    if not found:
        return
    print(
        f"{len(found)} payout batch(es) repeat an earlier one (PayPal would pay them again); "
        "cancel the one not wanted with the override_payout_batch_status job:"
    )
    for conflict in found:
        print(f"  {conflict.render()}")


def cmd_db_downgrade(args) -> int:
    from retry_pipelines.store import migrate

    engine = _engine(args)
    steps = migrate.downgrade_steps(engine, args.revision)  # refuses an unknown revision
    if steps == 0:
        print(f"{redacted(engine)}: at revision {migrate.current_revision(engine) or 'base'}")
        return 0
    if (args.revision == "base" or steps > 1) and not args.yes:
        raise CliError(
            f"downgrading {redacted(engine)} to {args.revision} undoes {steps} revision(s) and "
            "drops their tables and data; nothing was changed: add --yes to confirm"
        )
    migrate.downgrade(engine, args.revision)
    print(f"{redacted(engine)}: at revision {migrate.current_revision(engine) or 'base'}")
    return 0


def cmd_status(args) -> int:
    from retry_pipelines.engine.status import all_status, render
    from retry_pipelines.store import migrate

    kind = getattr(args, "kind", None)
    if kind == "payout" and args.batch_id is not None:
        try:  # a payout batch is named by id only, checked before the database is opened
            args.batch_id = _row_id(args.batch_id)
        except argparse.ArgumentTypeError as exc:
            args.status_parser.error(f"argument batch_id: {exc}")
    engine = _engine(args)
    if migrate.current_revision(engine) != migrate.head_revision():
        print(
            f"{redacted(engine)} is not migrated: run `retry-pipelines db upgrade`", file=sys.stderr
        )
        return 2
    if getattr(args, "kind", None) == "payout":
        from retry_pipelines.engine.paypal.admin import batch_report

        if args.batch_id is None:
            print("usage: retry-pipelines status payout BATCH_ID", file=sys.stderr)
            return 2
        print(batch_report(engine, args.batch_id, now=datetime.now(UTC)).render())
        return 0
    if kind == "invoice":
        return _print_invoice_history(engine, args.batch_id)
    print(f"database: {redacted(engine)}")
    print(render(all_status(engine, now=datetime.now(UTC))))
    return 0


def _print_invoice_history(engine, key: str | None) -> int:
    """``status invoice ID|REFERENCE``: an all-digit key is an id first, then a reference."""
    from retry_pipelines.engine.history import item_history

    if key is None:
        print("usage: retry-pipelines status invoice ID|REFERENCE", file=sys.stderr)
        return 2
    print(item_history(engine, "fbr", key).render())  # unknown: UnknownItem, one line, exit 2
    return 0


def cmd_seed(args) -> int:
    from retry_pipelines.engine.fbr.seed import seed_invoices

    engine = _engine(args)
    summary = seed_invoices(
        engine,
        args.count,
        seed=args.seed,
        invalid_share=args.invalid_share,
        reference_prefix=args.prefix,
    )
    print(f"seeded {summary.count} failed invoices into {redacted(engine)}: {summary.by_kind}")
    return 0


def cmd_enqueue(args) -> int:
    """Queue invoices from a JSON file: a list of ``{"reference": ..., "payload": {...}}``."""
    from retry_pipelines.domain.json_limits import JsonFileError, read_json_file
    from retry_pipelines.engine.fbr.intake import enqueue_invoices

    try:
        entries = read_json_file(args.file)  # bounded: size, nesting, regular files only
    except (OSError, JsonFileError) as exc:
        print(f"retry-pipelines: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        print(
            f"retry-pipelines: {args.file} must hold a JSON list of "
            '{"reference": ..., "payload": {...}} objects; nothing was queued',
            file=sys.stderr,
        )
        return 2
    result = enqueue_invoices(
        _engine(args),
        [(e.get("reference"), e.get("payload"), _entry_defects(e)) for e in entries],
    )
    print(f"queued {len(result.queued)}, refused {len(result.refused)}")
    for refusal in result.refused:
        print(f"refused {refusal}")
    return 1 if result.refused else 0


def _entry_defects(entry: dict) -> list[tuple[str, str]]:
    """A key the entry itself repeats (``reference`` twice) refuses that entry only."""
    return [("entry", f"repeats the key {key!r}") for key in getattr(entry, "duplicate_keys", ())]


def cmd_payout_record(args) -> int:
    """Record a payout batch from a JSON or CSV file (phase 1); a refusal records nothing."""
    from retry_pipelines.engine.paypal.intake import read_payout_file
    from retry_pipelines.engine.paypal.recording import record_batch

    batch = read_payout_file(args.file, cycle_id=args.cycle)  # PayoutRejected: one line, exit 2
    recorded = record_batch(
        _engine(args),
        cycle_id=batch.cycle_id,
        items=batch.items,
        now=datetime.now(UTC),
        email_subject=batch.email_subject,
        email_message=batch.email_message,
    )
    print(
        f"recorded payout batch {recorded.id} ({recorded.sender_batch_id}) in cycle "
        f"{batch.cycle_id}: {len(batch.items)} item(s), total {recorded.total_value} "
        f"{batch.items[0].currency}; due for submission by retry_payout_batches"
    )
    return 0


def cmd_sandbox(args) -> int:
    if _sandbox_missing():
        return 2
    from retry_pipelines.sandbox.__main__ import main as sandbox_main

    return sandbox_main(args.sandbox_args) or 0


def cmd_demo(args) -> int:
    if _sandbox_missing() or _webserver_missing():
        return 2
    from retry_pipelines.demo.launch import DemoUiError
    from retry_pipelines.demo.run import run_demo

    # Unless a database is named, the demo makes a fresh one of its own (see run_demo).
    given = args.database_url or os.environ.get(DATABASE_URL_ENV)
    try:
        return run_demo(given, count=args.count)
    except DemoUiError as exc:
        print(f"retry-pipelines: demo: {exc}", file=sys.stderr)
        return 1


def cmd_dev(args) -> int:
    """``make dev``: ``dagster dev`` on the local instance, opening the app database that
    ``demo.local.dev_database`` chooses (the demo's after ``make demo``), named first."""
    if _webserver_missing():
        return 2
    command, env = dev_command(args.database_url, args.dagster_args, os.environ)
    sys.stdout.flush()
    os.execve(command[0], command, env)  # replaces this process; returns only by raising
    return 0


def _webserver_missing() -> bool:
    """Say so in one line when the ``webserver`` extra (the Dagster UI) is not installed."""
    from importlib.util import find_spec

    if find_spec("dagster_webserver") is not None:
        return False
    print(
        "retry-pipelines: the Dagster UI needs dagster-webserver, which this install lacks: "
        "pip install 'retry_pipelines[webserver]'",
        file=sys.stderr,
    )
    return True


def dev_command(
    given: str | None, dagster_args: list[str], environ: Mapping[str, str]
) -> tuple[list[str], dict[str, str]]:
    """The ``dagster dev`` command and its environment, once the chosen app database is migrated
    and the instance directory exists; prints which database and instance it opens and why, and
    how to restore automations an interrupted demo left paused (``demo.automations``)."""
    from pathlib import Path

    from retry_pipelines.demo.automations import paused_note
    from retry_pipelines.demo.local import (
        WORKSPACE,
        dagster_home,
        dev_database,
        require_project_files,
    )
    from retry_pipelines.demo.tour import UI_URL
    from retry_pipelines.store import migrate

    require_project_files()
    url, why = dev_database(given, environ)
    engine = make_engine(url)
    migrate.upgrade(engine)
    home = dagster_home(environ)
    print(f"database: {redacted(engine)} ({why})")
    _print_payout_conflicts(engine)
    print(f"Dagster instance: {home}; the UI will be at {UI_URL} (or the port given with -p)")
    if note := paused_note(home):
        print(note)
    env = {
        **environ,
        DATABASE_URL_ENV: engine.url.render_as_string(hide_password=False),
        "DAGSTER_HOME": str(home),
    }
    engine.dispose()
    extra = dagster_args[1:] if dagster_args[:1] == ["--"] else dagster_args
    dagster = str(Path(sys.executable).parent / "dagster")
    return [dagster, "dev", "-w", str(WORKSPACE), *extra], env


def _sandbox_missing() -> bool:
    """Say so in one line when the ``sandbox`` extra is not installed (a production install)."""
    from retry_pipelines.sandbox import missing_requirement

    reason = missing_requirement()
    if reason:
        print(f"retry-pipelines: {reason}", file=sys.stderr)
    return reason is not None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="retry-pipelines", description=__doc__)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="print the traceback of an error too"
    )
    parser.add_argument(
        "--database-url",
        help=f"SQLAlchemy URL of the app database (default: ${DATABASE_URL_ENV}, else SQLite "
        "under .retry_pipelines/)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="schema migrations").add_subparsers(
        dest="db_command", required=True
    )
    up = db.add_parser("upgrade", help="migrate the app database to a revision (default head)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=cmd_db_upgrade)
    down = db.add_parser(
        "downgrade",
        help="migrate the app database down to REVISION (base, a revision id, or -N steps); "
        "base or more than one step drops tables and needs --yes",
    )
    down.add_argument("revision", help="base, a revision id such as 0003, or -1")
    down.add_argument(
        "--yes", action="store_true", help="confirm a downgrade to base or by more than one step"
    )
    down.set_defaults(func=cmd_db_downgrade)

    status = sub.add_parser(
        "status", help="items by gateway and state, one payout batch, or one invoice's history"
    )
    status.add_argument(
        "kind",
        nargs="?",
        choices=["payout", "invoice"],
        help="show one payout batch, or one invoice with its attempts and audit rows",
    )
    status.add_argument(
        "batch_id", nargs="?", help="a payout batch id, or an invoice id or reference"
    )
    status.set_defaults(func=cmd_status, status_parser=status)

    seed = sub.add_parser("seed", help="insert realistic failed invoices (valid and invalid)")
    seed.add_argument("--count", type=int, default=200)
    seed.add_argument("--seed", type=int, default=7)
    seed.add_argument("--invalid-share", type=float, default=0.15)
    seed.add_argument("--prefix", default="INV")
    seed.set_defaults(func=cmd_seed)

    enqueue = sub.add_parser(
        "enqueue", help="queue FBR invoices from a JSON file, refusing bad ones with the reasons"
    )
    enqueue.add_argument("file", help='a JSON list of {"reference": ..., "payload": {...}}')
    enqueue.set_defaults(func=cmd_enqueue)

    payout = sub.add_parser("payout", help="payout batches").add_subparsers(
        dest="payout_command", required=True
    )
    record = payout.add_parser(
        "record",
        help="record a payout batch from a JSON or CSV file (all or nothing; the same batch or "
        "payee twice in a cycle is refused)",
    )
    record.add_argument(
        "file",
        help='JSON {"cycle_id": ..., "items": [...]} or CSV with a header '
        "receiver,value,currency,sender_item_id[,recipient_type][,note]",
    )
    record.add_argument("--cycle", help="the payout cycle (required for CSV)")
    record.set_defaults(func=cmd_payout_record)

    sandbox = sub.add_parser(
        "sandbox", help="serve a local FBR or PayPal sandbox (`retry-pipelines sandbox -- --help`)"
    )
    sandbox.add_argument("sandbox_args", nargs=argparse.REMAINDER)
    sandbox.set_defaults(func=cmd_sandbox)

    demo = sub.add_parser(
        "demo",
        help="seed invoices and payout batches; launch the retry and reconcile jobs on the "
        "sandboxes and the report assets, in the code location `make dev` shows",
    )
    demo.add_argument("--count", type=int, default=300)
    demo.set_defaults(func=cmd_demo)

    dev = sub.add_parser(
        "dev",
        help="the Dagster UI (dagster dev) on the local instance; opens the demo's database "
        f"after `make demo` unless --database-url or ${DATABASE_URL_ENV} names one",
    )
    dev.add_argument(
        "dagster_args",
        nargs=argparse.REMAINDER,
        help="passed on to dagster dev after --, e.g. `retry-pipelines dev -- -p 3001`",
    )
    dev.set_defaults(func=cmd_dev)
    return parser


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors a user's input causes (a refusal that says why), as opposed to bugs."""
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError
    from sqlalchemy.exc import ArgumentError, DataError, OperationalError

    return (
        CliError,
        ValueError,  # includes AdminError and PayoutRejected
        decimal.DecimalException,
        OverflowError,
        OSError,  # FileNotFoundError, PermissionError, ...
        ArgumentError,  # a --database-url that is not a URL, or names an unknown driver
        OperationalError,  # a database that cannot be reached or opened
        DataError,
        CommandError,
        RevisionError,
    )


def _one_line(exc: BaseException, database_url: str | None) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy's wrapper: the driver's own message
    text = str(orig if orig is not None else exc) or type(exc).__name__
    if database_url and database_url in text:  # never echo a password
        try:
            shown = redacted(database_url)
        except Exception:  # not even a URL: do not echo it at all
            shown = "the --database-url given"
        text = text.replace(database_url, shown)
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:497] + "..."


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except _user_errors() as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"retry-pipelines: {_one_line(exc, args.database_url)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
