"""``make demo``: the FBR and PayPal jobs end to end on the embedded default (SQLite + local
sandboxes), through ``dagster job execute`` on the local instance (the runs then show in
``make dev``).

FBR: seeds failed invoices under a reference prefix of its own (so it never touches other rows),
starts the FBR sandbox with a mix of faults, runs ``retry_failed_invoices`` until nothing is due,
and prints the invoices by state and error type before and after, with the sandbox's own count of
invoices it processed more than once.

PayPal: records a payout cycle's batches (phase 1), starts the PayPal sandbox with faults, runs
``retry_payout_batches`` until nothing is due and then ``reconcile_payout_batches`` until no batch
or item is left to poll, and prints batches and items by state before and after, the sandbox's own
count of batches created per ``sender_batch_id``, and whether every batch PayPal created is
completed here with the same PayPal batch id or held for reconciliation.
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

from retry_pipelines.engine.fbr.seed import DEFAULT_SELLER_NTN, seed_invoices
from retry_pipelines.engine.paypal import NON_FINAL_ITEMS
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine, redacted
from retry_pipelines.store.tables import invoices, payout_batches, payout_items

DEMO_FAULTS = (
    "http_500=0.03,html_502=0.03,rate_limit=0.03,fault_401=0.02,read_timeout=0.02,"
    "response_lost=0.03,malformed_json=0.02,connection_drop=0.02"
)
SANDBOX_TOKEN = "demo-sandbox-token"
PAYOUTS_ROUTE = "/v1/payments/payouts"
ITEM_ROUTE = "/v1/payments/payouts-item/{payout_item_id}"
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


def _table(engine, t, where) -> dict[tuple[str, str], int]:
    """Rows of ``t`` matching ``where``, counted by status and last error type."""
    stmt = (
        select(t.c.status, func.coalesce(t.c.last_error_type, "-"), func.count())
        .where(where)
        .group_by(t.c.status, t.c.last_error_type)
    )
    with engine.connect() as conn:
        return {(s, e): n for s, e, n in conn.execute(stmt).all()}


def _totals(counts: dict[tuple[str, str], int]) -> dict[str, int]:
    by_state: dict[str, int] = {}
    for (status, _), n in counts.items():
        by_state[status] = by_state.get(status, 0) + n
    return by_state


def _render(title: str, counts: dict[tuple[str, str], int], noun: str = "invoices") -> str:
    lines = [title, f"  {'state':<22} {'last error type':<16} {noun:>8}"]
    for (status, error), n in sorted(counts.items()):
        lines.append(f"  {status:<22} {error:<16} {n:>8}")
    totals = sorted(_totals(counts).items())
    lines.append("  totals: " + ", ".join(f"{s} {n}" for s, n in totals))
    return "\n".join(lines)


def _due(engine, t, where) -> int:
    stmt = select(func.count()).where(
        where, t.c.status == "pending", t.c.next_attempt_at <= datetime.now(UTC)
    )
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def _run_until(job, env, config_file, *, max_runs, settle, done) -> bool:
    """Run ``job`` through ``dagster job execute`` until ``done()`` (at most ``max_runs`` times,
    ``settle`` seconds apart, as its schedule would); False if a run failed."""
    for run in range(1, max_runs + 1):
        started = time.monotonic()
        proc = execute_job(job, env, config_file=config_file)
        status = "succeeded" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
        print(f"run {run}: {job} {status} in {time.monotonic() - started:.1f} s")
        if proc.returncode != 0:
            print(proc.stdout[-2000:] + proc.stderr[-2000:])
            return False
        time.sleep(settle)
        if done():
            break
    return True


def _write_config(text: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as config_file:
        config_file.write(text)
    return config_file.name


DEMO_DATABASE = Path(".retry_pipelines") / "demo.db"

PAYPAL_FAULTS = (
    "http_500=0.06,http_503=0.04,rate_limit=0.02,read_timeout=0.03,response_lost=0.06,"
    "malformed_json=0.02,connection_drop=0.02"
)
PAYPAL_CLIENT = ("demo-paypal-client", "demo-paypal-secret-5e1b")
PAYPAL_RUN_CONFIG = """ops:
  submit_due_batches:
    config:
      batch_size: 20
      max_in_flight: 8
      time_budget_seconds: 15
      base_delay_seconds: 0.5
      max_delay_seconds: 1
      cooldown_seconds: 1
"""


def run_demo(
    database_url: str | None, *, count: int = 300, max_runs: int = 4, batches: int = 60
) -> int:
    """``database_url``: where to seed; by default a demo database of its own, made anew, so no
    state (a gateway pause, earlier rows) carries over from a previous demo."""
    if database_url is None:
        DEMO_DATABASE.unlink(missing_ok=True)
        database_url = f"sqlite:///{DEMO_DATABASE.resolve()}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    print(f"database: {redacted(engine)}")
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    dagster_home.mkdir(parents=True, exist_ok=True)
    if not (dagster_home / "dagster.yaml").exists():
        (dagster_home / "dagster.yaml").symlink_to(Path("dagster.yaml").resolve())
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "RETRY_PIPELINES_DATABASE_URL": engine.url.render_as_string(hide_password=False),
    }
    stamp = f"{datetime.now(UTC):%Y%m%d%H%M%S}"
    print("\n== FBR invoices ==")
    fbr_ok = _fbr(engine, env, f"DEMO{stamp}", count, max_runs)
    print("\n== PayPal payout batches ==")
    paypal_ok = _paypal(engine, env, f"demo-{stamp}", batches)
    print(
        f"\nthe runs are in the Dagster instance at {dagster_home}; to browse them with this data:"
        f"\n  RETRY_PIPELINES_DATABASE_URL={env['RETRY_PIPELINES_DATABASE_URL']} make dev"
    )
    return 0 if fbr_ok and paypal_ok else 1


def _fbr(engine, env: dict[str, str], prefix: str, count: int, max_runs: int) -> bool:
    from retry_pipelines.sandbox.server import SandboxProcess

    seeded = seed_invoices(engine, count, seed=42, reference_prefix=prefix)
    mine = invoices.c.reference.like(f"{prefix}%")
    print(f"seeded {seeded.count} failed invoices ({prefix}-*): {seeded.by_kind}\n")
    print(_render("before", _table(engine, invoices, mine)) + "\n")
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
    config_file = _write_config(RUN_CONFIG)
    env = {**env, "FBR_API_TOKEN": SANDBOX_TOKEN}
    with SandboxProcess(sandbox_args) as sandbox:
        env["FBR_API_BASE_URL"] = sandbox.url
        print(f"FBR sandbox at {sandbox.url} with faults {DEMO_FAULTS}")
        ran = _run_until(
            "retry_failed_invoices",
            env,
            config_file,
            max_runs=max_runs,
            settle=2.5,  # let the short demo cooldown pass, as the schedule would
            done=lambda: not _due(engine, invoices, mine),
        )
        stats = sandbox.stats()
    os.unlink(config_file)
    if not ran:
        return False

    after = _table(engine, invoices, mine)
    print("\n" + _render("after", after))
    totals = _totals(after)
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
    return reconciled and stats["processed_more_than_once"] == 0


def _record_cycle(engine, cycle: str, batches: int) -> int:
    """Phase 1: one payout cycle's batches, 3 to 6 items each; a few meet forced outcomes
    (``unclaimed@``, ``fail@``) and one is refused by PayPal for insufficient funds."""
    now = datetime.now(UTC)
    items_total = 0
    for b in range(batches):
        items = [
            PayoutItem(f"payee{b}-{i}@example.com", f"{10 + b % 7}.{i}5", "USD", f"{b}-{i}")
            for i in range(3 + b % 4)
        ]
        if b % 5 == 0:
            items[-1] = PayoutItem("unclaimed@example.com", "4.00", "USD", f"{b}-u")
        if b % 9 == 0:
            items[0] = PayoutItem("fail@example.com", "6.00", "USD", f"{b}-f")
        if b == batches - 1:
            items[0] = PayoutItem("payee@example.com", "99.00", "USD", f"{b}-n", note="ERRPYO005")
        record_batch(engine, cycle_id=f"{cycle}-{b:03d}", items=items, now=now)
        items_total += len(items)
    return items_total


def _items(engine, mine) -> dict[str, int]:
    i, b = payout_items, payout_batches
    stmt = (
        select(i.c.status, func.count())
        .join(b, b.c.id == i.c.batch_id)
        .where(mine)
        .group_by(i.c.status)
    )
    with engine.connect() as conn:
        return dict(conn.execute(stmt).all())


def _render_items(title: str, counts: dict[str, int]) -> str:
    return f"{title}: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))


def _submitted(engine, mine) -> int:
    """Batches reconciliation still has to poll until PayPal calls them final."""
    b = payout_batches
    with engine.connect() as conn:
        return conn.execute(
            select(func.count()).where(mine, b.c.status == "submitted")
        ).scalar_one()


def _paypal(engine, env: dict[str, str], cycle: str, batches: int) -> bool:
    from retry_pipelines.sandbox.server import SandboxProcess

    b = payout_batches
    mine = b.c.cycle_id.like(f"{cycle}-%")
    items_total = _record_cycle(engine, cycle, batches)
    print(f"recorded {batches} payout batches with {items_total} items (cycle {cycle}-*)\n")
    print(_render("before", _table(engine, b, mine), "batches"))
    print(_render_items("  items", _items(engine, mine)) + "\n")
    client_id, secret = PAYPAL_CLIENT
    sandbox_args = [
        "--gateway",
        "paypal",
        "--client-id",
        client_id,
        "--client-secret",
        secret,
        "--faults",
        PAYPAL_FAULTS,
        "--seed",
        "42",
        "--latency-ms",
        "20",
        "--retry-after",
        "1",
        "--hang-seconds",
        "1",
        "--processing-after",
        "1",
        "--final-after",
        "2",
    ]
    config_file = _write_config(PAYPAL_RUN_CONFIG)
    env = {**env, "PAYPAL_CLIENT_ID": client_id, "PAYPAL_CLIENT_SECRET": secret}
    with SandboxProcess(sandbox_args) as sandbox:
        env["PAYPAL_API_BASE_URL"] = sandbox.url
        print(f"PayPal sandbox at {sandbox.url} with faults {PAYPAL_FAULTS}")
        ran = _run_until(
            "retry_payout_batches",
            env,
            config_file,
            max_runs=3,
            settle=1.5,  # the demo's 1 s cooldown
            done=lambda: not _due(engine, b, mine),
        ) and _run_until(
            "reconcile_payout_batches",
            env,
            None,
            max_runs=2,
            settle=0.0,
            done=lambda: not _submitted(engine, mine),
        )
        stats = sandbox.stats()
        created = {
            r["sender_batch_id"]: r["payout_batch_id"]
            for r in sandbox.requests()
            if r["route"] == PAYOUTS_ROUTE and r["created"]
        }
    os.unlink(config_file)
    if not ran:
        return False

    after = _table(engine, b, mine)
    print("\n" + _render("after", after, "batches"))
    print(_render_items("  items", _items(engine, mine)))
    with engine.connect() as conn:
        ours = {
            sender: (status, paypal_id)
            for sender, status, paypal_id in conn.execute(
                select(b.c.sender_batch_id, b.c.status, b.c.paypal_batch_id).where(mine)
            )
        }
    same_id = sum(1 for s, p in created.items() if ours.get(s) == ("completed", p))
    held = sum(1 for s in created if ours.get(s, ("",))[0] == "needs_reconciliation")
    lost = len(created) - same_id - held
    print(
        f"\nsandbox: {stats['requests']} requests, {stats['batches_created']} batches created for "
        f"{stats['distinct_sender_batch_ids']} sender_batch_ids, "
        f"{stats['sender_batch_ids_created_more_than_once']} created more than once; "
        f"faults {stats['by_fault']}"
    )
    open_items = sum(_items(engine, mine & payout_items.c.status.in_(NON_FINAL_ITEMS)).values())
    print(
        f"items polled one by one after their batch completed: "
        f"{stats['by_path'].get(ITEM_ROUTE, 0)}; {open_items} not final yet stay polled by "
        f"every reconcile run until final or 31 days (PayPal returns unclaimed funds after 30)"
    )
    print(
        f"PayPal's batches: {same_id} completed here with the same PayPal batch id + {held} held "
        f"= {same_id + held} {'==' if not lost else '!='} created {len(created)}"
    )
    totals = _totals(after)
    accounted = sum(totals.values())
    reconciled = accounted == batches and not lost
    print(
        f"reconciliation: completed {totals.get('completed', 0)} + dead {totals.get('dead', 0)} "
        f"+ held {totals.get('needs_reconciliation', 0)} + pending {totals.get('pending', 0)} "
        f"+ submitted {totals.get('submitted', 0)} = {accounted} "
        f"{'==' if accounted == batches else '!='} recorded {batches}"
    )
    return reconciled and stats["sender_batch_ids_created_more_than_once"] == 0
