"""``make demo``: the FBR and PayPal jobs end to end on the embedded default (SQLite + local
sandboxes), through ``dagster job execute`` on the local instance (the runs then show in
``make dev``). ``fbr`` and ``paypal`` hold the two halves, ``summary`` what they print; the
counts come from ``store.summaries``. Needs the ``sandbox`` extra.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from retry_pipelines.demo.fbr import SANDBOX_TOKEN, run_fbr_demo
from retry_pipelines.demo.jobs import execute_job
from retry_pipelines.demo.paypal import run_paypal_demo
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine, redacted

__all__ = ["DEMO_DATABASE", "SANDBOX_TOKEN", "execute_job", "run_demo"]

DEMO_DATABASE = Path(".retry_pipelines") / "demo.db"


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
    fbr_ok = run_fbr_demo(engine, env, f"DEMO{stamp}", count, max_runs)
    print("\n== PayPal payout batches ==")
    paypal_ok = run_paypal_demo(engine, env, f"demo-{stamp}", batches)
    print(
        f"\nthe runs are in the Dagster instance at {dagster_home}; to browse them with this data:"
        f"\n  RETRY_PIPELINES_DATABASE_URL={env['RETRY_PIPELINES_DATABASE_URL']} make dev"
    )
    return 0 if fbr_ok and paypal_ok else 1
