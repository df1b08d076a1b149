"""The demo launches its runs in the ``retry_pipelines`` code location (so a job's Runs tab in the
UI lists them), prints progress while they execute, and leaves the report assets materialized:
``retry_metrics`` with figures on two days (two points on its Plots tab)."""

import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from retry_pipelines.demo.fbr import seed_two_days
from retry_pipelines.demo.launch import DemoUiError, Launcher, RunStatus, wait_with_progress
from retry_pipelines.demo.local import REPOSITORY_LABEL, dagster_home, launcher_home
from retry_pipelines.demo.reports import (
    DAILY_REPORTS,
    SNAPSHOTS,
    materialize_reports,
    report_days,
)
from retry_pipelines.demo.summary import progress
from retry_pipelines.reports.metrics import retry_metrics
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.summaries import invoice_counts

ROOT = Path(__file__).resolve().parents[2]
UI_RUNS_TAG = ".dagster/repository"
"""The tag a job's Runs tab filters on (with the job name): ``__repository__@LOCATION``."""


class FakeEvent:
    """An event set once ``ends_at`` seconds of a fake clock passed; waiting advances it."""

    def __init__(self, ends_at: float):
        self.now = 0.0
        self.ends_at = ends_at

    def clock(self) -> float:
        return self.now

    def wait(self, timeout: float | None = None) -> bool:
        if self.now + timeout >= self.ends_at:
            self.now = self.ends_at
            return True
        self.now += timeout
        return False


def test_progress_is_reported_at_least_every_interval():
    event = FakeEvent(ends_at=47.0)
    reports: list[float] = []
    ended = wait_with_progress(
        event, every=5.0, timeout=600.0, report=reports.append, clock=event.clock
    )
    assert ended
    assert reports == [5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 45.0]
    gaps = [b - a for a, b in zip([0.0, *reports], [*reports, 47.0], strict=True)]
    assert max(gaps) <= 5.0


def test_waiting_gives_up_at_the_timeout():
    event = FakeEvent(ends_at=1e9)
    reports: list[float] = []
    assert not wait_with_progress(
        event, every=4.0, timeout=10.0, report=reports.append, clock=event.clock
    )
    assert reports == [4.0, 8.0]
    assert event.now == 10.0


def test_run_status_polls_until_the_run_is_final():
    answers = iter(["QUEUED", "STARTING", "STARTED", "STARTED", "SUCCESS"])
    event = FakeEvent(ends_at=1e9)
    status = RunStatus(lambda: next(answers), poll=0.5, clock=event.clock, sleep=event.wait)
    assert not status.wait(1.0)  # three answers in a second: not final yet
    assert status.status == "STARTED"
    assert status.wait(10.0)
    assert status.status == "SUCCESS"


def test_progress_counts_items_done_and_left():
    counts = {("pending", "NETWORK"): 3, ("processing", "-"): 1, ("submitted", "-"): 6}
    assert progress(counts, ("pending", "processing"), "invoices") == "6 invoices done, 4 left"


def test_seeding_spreads_attempts_over_yesterday_and_today(engine):
    now = datetime.now(UTC)
    seeded = seed_two_days(engine, "TWO", 20, now)
    assert seeded.count == 20 == sum(seeded.by_kind.values())
    assert sum(invoice_counts(engine, "TWO").values()) == 20
    today = now.date()
    frame = retry_metrics(engine, today - timedelta(days=1), today + timedelta(days=1))
    attempts = {(row.day, row.gateway): row.attempts for row in frame.itertuples()}
    assert attempts[(today - timedelta(days=1), "fbr")] == 5
    assert attempts[(today, "fbr")] == 15


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The report jobs launched once, as the demo does, on seeded failures of two days."""
    tmp = tmp_path_factory.mktemp("demo_launch")
    url = f"sqlite:///{tmp / 'app.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    today = datetime.now(UTC).date()
    seed_two_days(engine, "PLOT", 8, datetime.now(UTC))
    home = tmp / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    home = dagster_home({"DAGSTER_HOME": str(home)})
    lines: list[str] = []
    env = {**os.environ, "RETRY_PIPELINES_DATABASE_URL": url}
    launcher = Launcher(
        launcher_home(home), ROOT / "workspace.yaml", env, every=0.5, out=lines.append
    )
    with launcher:
        ok = materialize_reports(launcher, today, progress=lambda: "counting")
        refused = launcher.launch("no_such_job")
    engine.dispose()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield {"ok": ok, "refused": refused, "lines": lines, "instance": instance, "today": today}


def test_runs_belong_to_the_code_location(launched):
    assert launched["ok"]
    instance = launched["instance"]
    for job in (DAILY_REPORTS, *(job for job, _ in SNAPSHOTS)):
        listed = instance.get_runs(
            filters=dg.RunsFilter(job_name=job, tags={UI_RUNS_TAG: REPOSITORY_LABEL})
        )
        assert listed, f"{job}: no run the UI lists under the job"
        for run in listed:
            assert run.status == dg.DagsterRunStatus.SUCCESS
            assert run.remote_job_origin.location_name == "retry_pipelines"
            assert run.tags["dagster/code_location"] == "retry_pipelines"


def test_retry_metrics_has_figures_on_two_days(launched):
    instance, today = launched["instance"], launched["today"]
    days = [(today - timedelta(days=1)).isoformat(), today.isoformat()]
    assert instance.get_materialized_partitions(dg.AssetKey("retry_metrics")) >= set(days)
    for day in days:
        [record] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("retry_metrics"), asset_partitions=[day]),
            limit=1,
        ).records
        metadata = record.asset_materialization.metadata
        assert metadata["fbr/attempts"].value > 0, day
    for _, asset in SNAPSHOTS:
        assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None, asset


def test_progress_is_printed_while_runs_execute(launched):
    lines = launched["lines"]
    for job in (DAILY_REPORTS, *(job for job, _ in SNAPSHOTS)):
        mine = [line for line in lines if f" {job} " in line]
        assert mine, f"no progress line for {job}"
        assert all(line.rstrip().endswith(": counting") for line in mine)


def test_a_launch_the_code_location_refuses_ends_without_a_run(launched):
    refused = launched["refused"]
    assert refused.status == "not launched"
    assert not refused.ok
    assert any("no_such_job" in message for message in refused.messages), refused.messages
    assert not launched["instance"].get_runs(filters=dg.RunsFilter(job_name="no_such_job"))


def test_report_days_end_today():
    assert report_days(date(2026, 12, 1)) == ["2026-11-30", "2026-12-01"]


def test_a_code_location_that_does_not_load_is_named(tmp_path):
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: retry_pipelines_no_such_module\n"
        "      location_name: retry_pipelines\n"
    )
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    lines: list[str] = []
    with (
        Launcher(launcher_home(home), workspace, dict(os.environ), out=lines.append) as launcher,
        pytest.raises(DemoUiError) as caught,
    ):
        launcher.launch("refresh_retry_backlog")
    assert "the code location retry_pipelines did not load" in str(caught.value)
    assert "retry_pipelines_no_such_module" in str(caught.value)
