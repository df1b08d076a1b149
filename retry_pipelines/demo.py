"""``make demo``: the FBR retry job end to end on the embedded default (SQLite + local sandbox).

Seeds failed invoices under a reference prefix of its own (so it never touches other rows), starts
the FBR sandbox with a mix of faults, runs ``retry_failed_invoices`` through ``dagster job
execute`` on the local instance (the runs then show in ``make dev``) until nothing is due, and
prints the invoices by state and error type before and after, with the sandbox's own count of
invoices it processed more than once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from retry_pipelines.engine.seed import DEFAULT_SELLER_NTN, seed_invoices
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine, redacted
from retry_pipelines.store.tables import invoices

DEMO_FAULTS = (
    "http_500=0.03,html_502=0.03,rate_limit=0.03,fault_401=0.02,read_timeout=0.02,"
    "response_lost=0.03,malformed_json=0.02,connection_drop=0.02"
)
SANDBOX_TOKEN = "demo-sandbox-token"
RUN_CONFIG = """ops:
  submit_due_invoices:
    config:
      batch_size: 50
      max_in_flight: 16
      time_budget_seconds: 20
      base_delay_seconds: 1
      max_delay_seconds: 2
      cooldown_seconds: 2
      token_pause_seconds: 3
"""


def execute_job(job: str, env: dict[str, str], *, cwd=None, config_file: str | None = None):
    """``dagster job execute`` of one of this code location's jobs, as a separate process."""
    command = [
        str(Path(sys.executable).parent / "dagster"),
        "job",
        "execute",
        "-m",
        "retry_pipelines.definitions",
        "-a",
        "defs",
        "-j",
        job,
    ]
    if config_file:
        command += ["-c", config_file]
    return subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


def _table(engine, prefix: str) -> dict[tuple[str, str], int]:
    t = invoices
    stmt = (
        select(t.c.status, func.coalesce(t.c.last_error_type, "-"), func.count())
        .where(t.c.reference.like(f"{prefix}%"))
        .group_by(t.c.status, t.c.last_error_type)
    )
    with engine.connect() as conn:
        return {(s, e): n for s, e, n in conn.execute(stmt).all()}


def _render(title: str, counts: dict[tuple[str, str], int]) -> str:
    lines = [title, f"  {'state':<22} {'last error type':<16} {'invoices':>8}"]
    for (status, error), n in sorted(counts.items()):
        lines.append(f"  {status:<22} {error:<16} {n:>8}")
    by_state: dict[str, int] = {}
    for (status, _), n in counts.items():
        by_state[status] = by_state.get(status, 0) + n
    lines.append("  totals: " + ", ".join(f"{s} {n}" for s, n in sorted(by_state.items())))
    return "\n".join(lines)


def _due(engine, prefix: str) -> int:
    t = invoices
    stmt = select(func.count()).where(
        t.c.reference.like(f"{prefix}%"),
        t.c.status == "pending",
        t.c.next_attempt_at <= datetime.now(UTC),
    )
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


DEMO_DATABASE = Path(".retry_pipelines") / "demo.db"


def run_demo(database_url: str | None, *, count: int = 300, max_runs: int = 4) -> int:
    """``database_url``: where to seed; by default a demo database of its own, made anew, so no
    state (a gateway pause, earlier rows) carries over from a previous demo."""
    from retry_pipelines.sandbox.server import SandboxProcess

    if database_url is None:
        DEMO_DATABASE.unlink(missing_ok=True)
        database_url = f"sqlite:///{DEMO_DATABASE.resolve()}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    prefix = f"DEMO{datetime.now(UTC):%Y%m%d%H%M%S}"
    seeded = seed_invoices(engine, count, seed=42, reference_prefix=prefix)
    print(f"database: {redacted(engine)}")
    print(f"seeded {seeded.count} failed invoices ({prefix}-*): {seeded.by_kind}\n")
    before = _table(engine, prefix)
    print(_render("before", before) + "\n")

    dagster_home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").symlink_to(Path("dagster.yaml").resolve())
    sandbox_args = [
        "--authorized-ntn",
        DEFAULT_SELLER_NTN,
        "--token",
        SANDBOX_TOKEN,
        "--faults",
        DEMO_FAULTS,
        "--seed",
        "42",
        "--latency-ms",
        "40",
        "--retry-after",
        "1",
        "--hang-seconds",
        "6",
    ]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config_file:
        config_file.write(RUN_CONFIG)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "RETRY_PIPELINES_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "FBR_API_TOKEN": SANDBOX_TOKEN,
    }
    with SandboxProcess(sandbox_args) as sandbox:
        env["FBR_API_BASE_URL"] = sandbox.url
        print(f"FBR sandbox at {sandbox.url} with faults {DEMO_FAULTS}")
        for run in range(1, max_runs + 1):
            started = time.monotonic()
            proc = execute_job("retry_failed_invoices", env, config_file=config_file.name)
            status = "succeeded" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
            print(
                f"run {run}: retry_failed_invoices {status} in {time.monotonic() - started:.1f} s"
            )
            if proc.returncode != 0:
                print(proc.stdout[-2000:] + proc.stderr[-2000:])
                return 1
            time.sleep(2.5)  # let the short demo cooldown pass, as the schedule would
            if not _due(engine, prefix):
                break
        stats = sandbox.stats()
    os.unlink(config_file.name)

    after = _table(engine, prefix)
    print("\n" + _render("after", after))
    totals = {s: sum(n for (st, _), n in after.items() if st == s) for s, _ in after}
    accounted = sum(totals.values())
    print(
        f"\nsandbox: {stats['requests']} requests, {stats['processed']} invoices issued a number, "
        f"{stats['processed_more_than_once']} processed more than once"
    )
    reconciled = accounted == seeded.count
    print(
        f"reconciliation: submitted {totals.get('submitted', 0)} + dead {totals.get('dead', 0)} "
        f"+ held {totals.get('needs_reconciliation', 0)} + pending {totals.get('pending', 0)} "
        f"= {accounted} {'==' if reconciled else '!='} seeded {seeded.count}"
    )
    print(
        f"\nthe runs are in the Dagster instance at {dagster_home}; to browse them with this data:"
        f"\n  RETRY_PIPELINES_DATABASE_URL={env['RETRY_PIPELINES_DATABASE_URL']} make dev"
    )
    return 0 if reconciled and stats["processed_more_than_once"] == 0 else 1
