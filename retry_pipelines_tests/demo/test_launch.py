"""The demo launches its runs in the ``retry_pipelines`` code location (so a job's Runs tab in the
UI lists them) through a webserver on the project's instance, where they wait in the queue until
the daemon starts them; it pauses the code location's automations meanwhile and restores each as
it was; it prints progress while runs execute, and leaves the report assets materialized:
``retry_metrics`` with figures on two days (two points on its Plots tab).

One webserver and one daemon serve the whole module (``launched``): each start costs 20-40 s on
two cores."""

import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from retry_pipelines.demo import automations, launch
from retry_pipelines.demo.automations import PAUSE_FILE, automation_states, read_pause_file
from retry_pipelines.demo.fbr import seed_two_days
from retry_pipelines.demo.launch import DemoUiError, Launcher, RunStatus, wait_with_progress
from retry_pipelines.demo.local import REPOSITORY_LABEL, dagster_home
from retry_pipelines.demo.reports import (
    DAILY_REPORTS,
    SNAPSHOTS,
    materialize_reports,
    report_days,
)
from retry_pipelines.demo.services import running_dagster
from retry_pipelines.demo.summary import progress
from retry_pipelines.reports.metrics import retry_metrics
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine
from retry_pipelines.store.summaries import invoice_counts

ROOT = Path(__file__).resolve().parents[2]
UI_RUNS_TAG = ".dagster/repository"
"""The tag a job's Runs tab filters on (with the job name): ``__repository__@LOCATION``."""
STARTED_BY_HAND = "retry_failed_invoices_schedule"
"""Stopped by default; started by hand here, so restored by starting it, not by a reset."""
STOPPED_BY_DEFAULT = "retry_payout_batches_schedule"
QUEUED_ONLY = "release_stuck_locks"
"""Launched before the daemon runs: it stays queued until the launch gives up."""
START_SCHEDULE = """mutation Start($selector: ScheduleSelector!) {
  startSchedule(scheduleSelector: $selector) { __typename } }"""


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


def _statuses(launcher: Launcher) -> dict[str, tuple[str, bool]]:
    """Each automation's (status, whether that is its default from code), asked through GraphQL."""
    found = automation_states(launcher.query)
    return {name: (state.status, state.automation.default) for name, state in found.items()}


def _queued_launch(launcher: Launcher):
    """A launch with no daemon running, given up after 2 s instead of 120."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(launch, "QUEUE_TIMEOUT", 2.0)
        return launcher.launch(QUEUED_ONLY)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """As the demo does after a demo that was killed while its automations were paused (with one
    schedule started by hand before it): the webserver, a launch that no daemon dequeues, then the
    daemon with the automations paused, the report jobs and a refused launch, then the
    automations restored. Their statuses and the pause file are noted at each stage."""
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
    seen: dict = {"lines": lines, "today": today, "home": home}
    with Launcher(home, ROOT / "workspace.yaml", env, every=0.5, out=lines.append) as launcher:
        launcher.wait_until_ready()
        selector = {**automations.SELECTOR, "scheduleName": STARTED_BY_HAND}
        launcher.query(START_SCHEDULE, {"selector": selector})
        seen["before"] = _statuses(launcher)
        seen["queued"] = _queued_launch(launcher)
        automations.pause(launcher.query, home)  # a demo killed before it restored them
        seen["left"] = _statuses(launcher)
        seen["left_file"] = read_pause_file(home / PAUSE_FILE)
        with running_dagster(launcher, out=lines.append):
            seen["during"] = _statuses(launcher)
            seen["during_file"] = read_pause_file(home / PAUSE_FILE)
            seen["ok"] = materialize_reports(launcher, today, progress=lambda: "counting")
            seen["refused"] = launcher.launch("no_such_job")
        seen["after"] = _statuses(launcher)
    engine.dispose()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield {**seen, "instance": instance}


def test_automations_are_paused_during_the_demo_and_restored_after(launched):
    before, during, after = launched["before"], launched["during"], launched["after"]
    assert before["stuck_locks_sensor"] == ("RUNNING", True)
    assert before[STARTED_BY_HAND] == ("RUNNING", False)
    assert before[STOPPED_BY_DEFAULT] == ("STOPPED", True)
    running = {name for name, (status, _) in before.items() if status == "RUNNING"}
    assert len(running) > 5  # the retry and alert sensors, the worklist's, the report schedules
    assert all(status == "STOPPED" for status, _ in during.values()), during
    assert after == before  # each as it was: by default or started by hand
    assert not (launched["home"] / PAUSE_FILE).exists()
    assert {a.name for a in launched["during_file"]} == running
    lines = launched["lines"]
    assert f"automations of retry_pipelines paused for the demo: {len(running)}; restored" in lines


def test_automations_a_killed_demo_left_paused_are_restored_by_the_next_start(launched):
    left, left_file = launched["left"], launched["left_file"]
    running = {name for name, (status, _) in launched["before"].items() if status == "RUNNING"}
    assert {name for name, (status, _) in left.items() if status == "RUNNING"} == set()
    assert {(a.name, a.default) for a in left_file} == {
        (name, launched["before"][name][1]) for name in running
    }
    expected = f"restored {len(running)} automations of retry_pipelines that an interrupted demo"
    assert any(line.startswith(expected) for line in launched["lines"]), launched["lines"]
    # restored before pausing anew, so the new pause found them running and restored them after
    assert {a.name for a in launched["during_file"]} == running


def test_a_run_no_daemon_dequeues_fails_its_launch_naming_the_daemon_log(launched):
    queued = launched["queued"]
    assert queued.status == "timed out"
    assert not queued.ok
    assert str(launched["home"] / "daemon.log") in queued.messages[0]
    assert "still queued" in queued.messages[0]
    run = launched["instance"].get_run_by_id(queued.run_id)
    assert run.status == dg.DagsterRunStatus.CANCELED  # a later daemon will not start it


def test_runs_belong_to_the_code_location(launched):
    assert launched["ok"]
    instance = launched["instance"]
    for job in (DAILY_REPORTS, *(job for job, _ in SNAPSHOTS)):
        listed = instance.get_runs(
            filters=dg.RunsFilter(job_name=job, tags={UI_RUNS_TAG: REPOSITORY_LABEL})
        )  # launched through the webserver, started by the daemon
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
        Launcher(home, workspace, dict(os.environ), out=lines.append) as launcher,
        pytest.raises(DemoUiError) as caught,
    ):
        launcher.launch("refresh_retry_backlog")
    assert "the code location retry_pipelines did not load" in str(caught.value)
    assert "retry_pipelines_no_such_module" in str(caught.value)
