"""The instance and database ``make demo`` and ``make dev`` share (``demo.local``), the pause file
of the demo's automations (``demo.automations``, with a stand-in for the GraphQL API), and the
``retry-pipelines dev`` command built on them: no Dagster process is started here."""

import shutil
from pathlib import Path

import pytest
import yaml

from retry_pipelines.cli import build_parser, dev_command, main
from retry_pipelines.config import DATABASE_URL_ENV, DEFAULT_SQLITE_PATH
from retry_pipelines.demo import automations
from retry_pipelines.demo.automations import PAUSE_FILE, Automation, paused_note, read_pause_file
from retry_pipelines.demo.launch import DemoUiError
from retry_pipelines.demo.local import (
    DEMO_DATABASE,
    LOCATION,
    OLD_LAUNCHER_DIR,
    LocalSetupError,
    dagster_home,
    dev_database,
    remove_demo_database,
    remove_old_launcher,
    require_project_files,
)
from retry_pipelines.store import migrate
from retry_pipelines.store.db import make_engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A working directory laid out like the project's root."""
    for name in ("workspace.yaml", "dagster.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_an_earlier_demos_launcher_folder_is_removed_but_not_the_homes_storage(project):
    home = dagster_home({"DAGSTER_HOME": str(project / "home")})
    assert remove_old_launcher(home) is False
    (home / "storage" / "run1").mkdir(parents=True)
    old = home / OLD_LAUNCHER_DIR
    old.mkdir()
    (old / "dagster.yaml").write_text("run_coordinator: {}\n")
    (old / "storage").symlink_to(home / "storage", target_is_directory=True)
    assert remove_old_launcher(home) is True
    assert not old.exists()
    assert (home / "storage" / "run1").is_dir()


class FakeApi:
    """The webserver's answers to the restore mutations: ``refuse`` names what it refuses,
    ``gone`` what no longer exists."""

    def __init__(self, refuse=(), gone=()):
        self.refuse, self.gone = set(refuse), set(gone)
        self.calls: list[tuple[str, str]] = []

    def query(self, text, variables):
        field = text.split("(")[1].split("{")[-1].strip()  # e.g. resetSensor
        name = variables["selector"].get("sensorName") or variables["selector"]["scheduleName"]
        self.calls.append((field, name))
        if name in self.refuse:
            return {field: {"__typename": "UnauthorizedError", "message": "read-only"}}
        if name in self.gone:
            return {field: {"__typename": "SensorNotFoundError", "message": "no such sensor"}}
        done = "Sensor" if field.endswith("Sensor") else "ScheduleStateResult"
        return {field: {"__typename": done}}


def _leave_paused(home, listed):
    automations._write(home, listed)


def test_restore_resets_what_ran_by_default_and_starts_what_was_started_by_hand(tmp_path):
    assert automations.restore(FakeApi().query, tmp_path) is None  # no file, nothing to do
    _leave_paused(
        tmp_path,
        [
            Automation("sensor", "stuck_locks_sensor", default=True),
            Automation("schedule", "retry_failed_invoices_schedule", default=False),
            Automation("sensor", "renamed_sensor", default=True),
        ],
    )
    api = FakeApi(gone={"renamed_sensor"})
    assert automations.restore(api.query, tmp_path) == 3
    assert api.calls == [
        ("resetSensor", "stuck_locks_sensor"),
        ("startSchedule", "retry_failed_invoices_schedule"),
        ("resetSensor", "renamed_sensor"),
    ]
    assert not (tmp_path / PAUSE_FILE).exists()


def test_a_refused_restore_stays_in_the_pause_file(tmp_path):
    _leave_paused(
        tmp_path,
        [Automation("sensor", "a_sensor", True), Automation("schedule", "a_schedule", True)],
    )
    with pytest.raises(DemoUiError) as caught:
        automations.restore(FakeApi(refuse={"a_schedule"}).query, tmp_path)
    assert "a_schedule: UnauthorizedError read-only" in str(caught.value)
    assert read_pause_file(tmp_path / PAUSE_FILE) == [Automation("schedule", "a_schedule", True)]


def test_an_unreadable_pause_file_is_named(tmp_path):
    (tmp_path / PAUSE_FILE).write_text("{not json")
    with pytest.raises(DemoUiError) as caught:
        automations.restore(FakeApi().query, tmp_path)
    assert str(tmp_path / PAUSE_FILE) in str(caught.value)
    assert "in the UI" in str(caught.value)


def test_dagster_home_links_the_project_instance_file(project):
    home = project / "fresh_home"
    (home).mkdir()
    (home / "dagster.yaml").symlink_to(project / "gone.yaml")  # a dangling link is replaced
    assert dagster_home({"DAGSTER_HOME": str(home)}) == home
    assert (home / "dagster.yaml").resolve() == project / "dagster.yaml"
    assert dagster_home({}) == project / ".dagster_home"
    assert (project / ".dagster_home" / "dagster.yaml").is_file()


def test_dev_database_order(project):
    default = f"sqlite:///{(project / DEFAULT_SQLITE_PATH)}"
    url, why = dev_database(None, {})
    assert url == default
    assert why.startswith("the default")
    DEMO_DATABASE.parent.mkdir()
    DEMO_DATABASE.write_bytes(b"")
    url, why = dev_database(None, {})
    assert url == f"sqlite:///{project / DEMO_DATABASE}"
    assert why.startswith("the demo's")
    assert DATABASE_URL_ENV in why
    assert str(DEMO_DATABASE) in why
    assert dev_database(None, {DATABASE_URL_ENV: "sqlite:///x.db"}) == (
        "sqlite:///x.db",
        f"from {DATABASE_URL_ENV}",
    )
    assert dev_database("sqlite:///y.db", {DATABASE_URL_ENV: "sqlite:///x.db"})[0] == (
        "sqlite:///y.db"
    )


def test_remove_demo_database_takes_its_wal_files(project):
    assert remove_demo_database() is False
    DEMO_DATABASE.parent.mkdir()
    files = [DEMO_DATABASE, Path(f"{DEMO_DATABASE}-wal"), Path(f"{DEMO_DATABASE}-shm")]
    for name in files:
        name.write_bytes(b"x")
    assert remove_demo_database() is True
    assert not any(name.exists() for name in files)


def test_project_files_are_required(tmp_path):
    with pytest.raises(LocalSetupError) as caught:
        require_project_files(tmp_path)
    assert "workspace.yaml and dagster.yaml not found" in str(caught.value)
    assert "project's root" in str(caught.value)


def test_dev_command_opens_the_demo_database_and_says_so(project, capsys):
    DEMO_DATABASE.parent.mkdir()
    empty = make_engine(f"sqlite:///{project / DEMO_DATABASE}")
    empty.connect().close()  # an empty, unmigrated demo database
    empty.dispose()
    environ = {"PATH": "/usr/bin", "DAGSTER_HOME": str(project / "home")}
    command, env = dev_command(None, ["--", "-p", "3001"], environ)
    assert command[1:] == ["dev", "-w", "workspace.yaml", "-p", "3001"]
    assert Path(command[0]).name == "dagster"
    assert env[DATABASE_URL_ENV] == f"sqlite:///{project / DEMO_DATABASE}"
    assert env["DAGSTER_HOME"] == str(project / "home")
    assert env["PATH"] == "/usr/bin"
    engine = make_engine(env[DATABASE_URL_ENV])
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()
    out = capsys.readouterr().out
    assert f"database: sqlite:///{project / DEMO_DATABASE} (the demo's" in out
    assert "http://127.0.0.1:3000" in out
    assert "automations" not in out


def test_dev_says_in_one_line_how_to_restore_automations_a_demo_left_paused(project, capsys):
    home = dagster_home({"DAGSTER_HOME": str(project / "home")})
    assert paused_note(home) is None
    _leave_paused(home, [Automation("sensor", "stuck_locks_sensor", default=True)])
    dev_command(None, [], {"PATH": "/usr/bin", "DAGSTER_HOME": str(home)})
    [line] = [line for line in capsys.readouterr().out.splitlines() if "automations" in line]
    assert line == paused_note(home)
    assert str(home / PAUSE_FILE) in line
    assert "`make demo` restores them" in line


def test_dev_outside_the_project_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["dev"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert "run this from the project's root" in err[0]


def test_dev_passes_arguments_after_the_double_dash():
    args = build_parser().parse_args(["dev", "--", "-p", "3001"])
    assert args.func.__name__ == "cmd_dev"
    assert args.dagster_args[-2:] == ["-p", "3001"]


def test_the_location_is_the_workspaces():
    [entry] = yaml.safe_load((ROOT / "workspace.yaml").read_text())["load_from"]
    assert entry["python_module"]["location_name"] == LOCATION
