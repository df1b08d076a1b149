"""The instance and database ``make demo`` and ``make dev`` share (``demo.local``), and the
``retry-pipelines dev`` command built on them: no Dagster process is started here."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from retry_pipelines.cli import build_parser, dev_command, main
from retry_pipelines.config import DATABASE_URL_ENV, DEFAULT_SQLITE_PATH
from retry_pipelines.demo.local import (
    DEMO_DATABASE,
    LAUNCHER_DIR,
    LOCATION,
    LocalSetupError,
    dagster_home,
    dev_database,
    launcher_config,
    launcher_home,
    remove_demo_database,
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


@dg.asset
def probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"n": 1})


def test_launcher_instance_launches_at_once_into_the_homes_storage(project):
    home = dagster_home({"DAGSTER_HOME": str(project / "home")})
    launcher = launcher_home(home)
    assert launcher == home / LAUNCHER_DIR
    with dg.DagsterInstance.from_config(str(launcher)) as demo_side:
        assert not isinstance(demo_side.run_coordinator, dg.QueuedRunCoordinator)
        result = dg.materialize([probe], instance=demo_side)
    assert result.success
    with dg.DagsterInstance.from_config(str(home)) as dev_side:
        assert isinstance(dev_side.run_coordinator, dg.QueuedRunCoordinator)
        [run] = dev_side.get_runs()
        assert run.run_id == result.run_id
        event = dev_side.get_latest_materialization_event(dg.AssetKey("probe"))
        assert event is not None
        assert event.run_id == result.run_id
    # compute logs and step outputs land in the home's storage, where the UI looks
    assert (launcher / "storage").resolve() == home / "storage"
    assert (home / "storage" / result.run_id).is_dir()


def test_launcher_config_keeps_pools_and_named_storage():
    base = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    config = launcher_config(base, Path("/srv/home"))
    assert config["concurrency"]["pools"] == base["concurrency"]["pools"]
    assert config["run_coordinator"]["class"] == "DefaultRunCoordinator"
    assert config["storage"] == {"sqlite": {"base_dir": "/srv/home"}}
    postgres = {"storage": {"postgres": {"postgres_url": {"env": "PG"}}}, "run_queue": {}}
    config = launcher_config(postgres, Path("/srv/home"))
    assert config["storage"] == postgres["storage"]
    assert "run_queue" not in config


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
