"""``make demo`` from start to end: a fresh demo database, the Dagster webserver and daemon on the
local instance with the code location's automations paused (``demo.services``), the FBR and
PayPal halves launched in the code location, the report assets, then where to look in the UI."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

from sqlalchemy import Engine

from retry_pipelines.config import DATABASE_URL_ENV
from retry_pipelines.demo import fbr, paypal
from retry_pipelines.demo.launch import Launcher
from retry_pipelines.demo.local import (
    DEMO_DATABASE,
    LOCATION,
    OLD_LAUNCHER_DIR,
    WORKSPACE,
    dagster_home,
    remove_demo_database,
    remove_old_launcher,
    require_project_files,
)
from retry_pipelines.demo.reports import materialize_reports
from retry_pipelines.demo.services import running_dagster
from retry_pipelines.demo.tour import render_tour
from retry_pipelines.sandbox.server import SandboxProcess
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine, redacted
from retry_pipelines.store.summaries import first_reference

HELD_OR_DEAD = ("needs_reconciliation", "dead")


def run_demo(
    database_url: str | None, *, count: int = 300, max_runs: int = 4, batches: int = 60
) -> int:
    """``database_url``: where to seed; by default a demo database of its own, made anew, so no
    state (a gateway pause, earlier rows) carries over from a previous demo. 0 if both halves
    reconcile and every run succeeded."""
    started = time.monotonic()
    require_project_files()
    engine = _demo_engine(database_url)
    home = dagster_home(os.environ)
    if remove_old_launcher(home):
        print(f"removed {home / OLD_LAUNCHER_DIR}: an earlier demo's instance, no longer used")
    stamp = f"{datetime.now(UTC):%Y%m%d%H%M%S}"
    prefix = f"DEMO{stamp}"
    with (
        SandboxProcess(fbr.SANDBOX_ARGS) as fbr_sandbox,
        SandboxProcess(paypal.sandbox_args()) as paypal_sandbox,
    ):
        env = {
            **os.environ,
            DATABASE_URL_ENV: engine.url.render_as_string(hide_password=False),
            **fbr.gateway_env(fbr_sandbox.url),
            **paypal.gateway_env(paypal_sandbox.url),
        }
        with (
            Launcher(home, WORKSPACE.resolve(), env) as launcher,
            running_dagster(launcher),
        ):
            print(
                f"runs: launched in the {LOCATION} code location of {WORKSPACE}, started by "
                f"the Dagster daemon (its output: {launcher.daemon_log})"
            )
            print("\n== FBR invoices ==")
            fbr_ok = fbr.run_fbr_demo(engine, launcher, fbr_sandbox, prefix, count, max_runs)
            print("\n== PayPal payout batches ==")
            cycle = f"demo-{stamp}"
            paypal_ok = paypal.run_paypal_demo(engine, launcher, paypal_sandbox, cycle, batches)
            print("\n== Reports and the operator worklist ==")
            reports_ok = materialize_reports(launcher, datetime.now(UTC).date())
    print(f"\nthe demo took {time.monotonic() - started:.0f} s; its runs are in {home}")
    print(_where(database_url, engine))
    print("\n" + render_tour(first_reference(engine, prefix, HELD_OR_DEAD)))
    return 0 if fbr_ok and paypal_ok and reports_ok else 1


def _demo_engine(database_url: str | None) -> Engine:
    """The named database, or the demo's own made anew (saying so when one was replaced)."""
    if database_url is None:
        if remove_demo_database():
            print(f"replacing the previous demo's database {DEMO_DATABASE}")
        database_url = f"sqlite:///{DEMO_DATABASE.resolve()}"
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    print(f"database: {redacted(engine)}")
    return engine


def _where(database_url: str | None, engine: Engine) -> str:
    if database_url is None:
        return (
            f"`make dev` opens this demo's database ({DEMO_DATABASE}) while it exists and "
            f"{DATABASE_URL_ENV} is unset; restart a `make dev` that is already running"
        )
    return f"to browse this data, run `make dev` with {DATABASE_URL_ENV} set to {redacted(engine)}"
