"""The topology harness's own parts: reading run records, finding a run's processes, and the
instance file it runs on (the shipped one, changed only where it says)."""

from __future__ import annotations

import subprocess
import sys

import yaml

from retry_pipelines_tests.deploy.kit import code_server_command, option
from retry_pipelines_tests.support.topology_runs import (
    RUN_KEY_TAG,
    SENSOR_TAG,
    RunLine,
    descendants,
    overlapping,
    repeated_run_keys,
)
from retry_pipelines_tests.support.topology_stack import (
    HOST,
    OVERRIDES,
    SHIPPED_INSTANCE,
    dagster_pg_env,
    instance_config,
    served_command,
)


def _run(run_id: str, start: float | None, end: float | None, **tags: str) -> RunLine:
    return RunLine(run_id, "job", "SUCCESS", created=0.0, start=start, end=end, tags=tags)


def test_overlapping_finds_runs_that_executed_at_the_same_time():
    runs = [_run("a", 0, 10), _run("b", 10, 20), _run("c", 15, None), _run("queued", None, None)]
    assert overlapping(runs, now=30) == [("b", "c")]
    assert overlapping([_run("a", 0, 10), _run("b", 10, 20)], now=30) == []
    assert overlapping([_run("a", 0, 100), _run("b", 10, 20), _run("c", 30, 40)], now=100) == [
        ("a", "b"),
        ("a", "c"),
    ]


def test_repeated_run_keys_are_counted_per_launcher():
    runs = [
        _run("a", 0, 1, **{RUN_KEY_TAG: "k1", SENSOR_TAG: "s1"}),
        _run("b", 0, 1, **{RUN_KEY_TAG: "k1", SENSOR_TAG: "s2"}),
        _run("c", 0, 1, **{RUN_KEY_TAG: "k2", SENSOR_TAG: "s1"}),
        _run("d", 0, 1, **{RUN_KEY_TAG: "k2", SENSOR_TAG: "s1"}),
        _run("manual", 0, 1),
    ]
    assert repeated_run_keys(runs) == {("s1", "k2"): 2}


def test_descendants_finds_children_and_grandchildren():
    sleeper = "import time; time.sleep(60)"
    script = (
        f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {sleeper!r}]); {sleeper}"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        found: list[int] = []
        for _ in range(100):  # until the grandchild exists
            found = descendants(parent.pid)
            if len(found) == 1:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert len(found) == 1
        assert descendants(found[0]) == []
    finally:
        for pid in descendants(parent.pid):
            subprocess.run(["kill", "-9", str(pid)], check=False)
        parent.kill()
        parent.wait()


def test_the_instance_file_is_the_shipped_one_but_for_the_named_overrides():
    shipped = yaml.safe_load(SHIPPED_INSTANCE.read_text())
    config = instance_config()
    assert config["concurrency"]["pools"]["default_limit"] == 1
    for path in OVERRIDES:
        node_a, node_b = shipped, config
        for key in path[:-1]:
            node_a, node_b = node_a[key], node_b[key]
        node_a.pop(path[-1])
        node_b.pop(path[-1])
    assert config == shipped
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_monitoring"]["enabled"] is True


def test_the_postgres_variables_come_from_the_server_url():
    env = dagster_pg_env("postgresql://app:s3cret@db.example:6543/postgres", "dagster_x")
    assert env == {
        "DAGSTER_PG_HOST": "db.example",
        "DAGSTER_PG_PORT": "6543",
        "DAGSTER_PG_USER": "app",
        "DAGSTER_PG_PASSWORD": "s3cret",
        "DAGSTER_PG_DB": "dagster_x",
    }


def test_the_code_server_runs_the_shipped_command_on_a_local_port():
    shipped, served = code_server_command(), served_command(4321)
    assert served[0].endswith("/dagster")
    assert option(served, "-h") == HOST
    assert option(served, "-p") == "4321"
    assert [option(served, f) for f in ("-m", "-a", "--location-name")] == [
        option(shipped, f) for f in ("-m", "-a", "--location-name")
    ]
