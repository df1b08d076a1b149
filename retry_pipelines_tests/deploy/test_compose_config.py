"""docker-compose itself reads deploy/docker-compose.yaml (``config``: parse, interpolate, merge
the env file; no Docker daemon needed): the kit resolves with an env file filled in, the code
server gets every variable, and an env file left as .env.example is refused before anything
starts. Debian's docker-compose package provides the binary (.ci/run installs it)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from retry_pipelines_tests.deploy import kit

COMPOSE_BINARY = "docker-compose"
HOW_TO_RUN = "install Debian's docker-compose (apt-get install -y docker-compose) to run it"


@pytest.fixture
def compose_copy(tmp_path: Path) -> Path:
    """deploy/ copied beside a repository root of its own, so an env file can be written next to
    the compose file without touching the work tree."""
    if shutil.which(COMPOSE_BINARY) is None:
        pytest.skip(f"no {COMPOSE_BINARY} on PATH: {HOW_TO_RUN}")
    shutil.copytree(kit.DEPLOY, tmp_path / "deploy", ignore=shutil.ignore_patterns(".env"))
    return tmp_path / "deploy"


def _config(deploy: Path) -> subprocess.CompletedProcess[str]:
    # Only PATH and HOME from the test's environment: a variable set in the shell would take the
    # env file's place in compose's interpolation.
    environment = {"PATH": os.environ["PATH"], "HOME": str(deploy.parent)}
    return subprocess.run(
        [COMPOSE_BINARY, "-f", str(deploy / "docker-compose.yaml"), "config"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=deploy.parent,
        timeout=300,
        check=False,
    )


def _filled_env_file(deploy: Path) -> dict[str, str]:
    """.env.example with a placeholder value on every line it sets (commented lines stay out)."""
    assigned, _ = kit.env_example_names()
    values = {name: f"placeholder-{name.lower()}" for name in sorted(assigned)}
    text = "".join(f"{name}={value}\n" for name, value in values.items())
    (deploy / ".env").write_text(text, encoding="utf-8")
    return values


def test_compose_resolves_the_kit_and_gives_the_code_server_every_variable(compose_copy):
    values = _filled_env_file(compose_copy)
    result = _config(compose_copy)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    code = services[kit.CODE_SERVICE]["environment"]
    for name, value in values.items():
        assert code[name] == value, name
    assert code["RETRY_PIPELINES_ENV"] == "production"
    assert kit.instance_variables() <= set(code)
    assert (
        services["postgresql"]["environment"]["POSTGRES_PASSWORD"] == values["DAGSTER_PG_PASSWORD"]
    )
    for name in ("webserver", "daemon"):
        leaked = set(services[name]["environment"]) & (kit.APP_VARIABLES | kit.SECRET_VARIABLES)
        assert leaked == {"DAGSTER_PG_PASSWORD"}, name


def test_compose_refuses_an_env_file_left_as_the_example(compose_copy):
    shutil.copy(kit.ENV_EXAMPLE, compose_copy / ".env")
    result = _config(compose_copy)
    assert result.returncode != 0
    assert "set DAGSTER_PG_PASSWORD in deploy/.env" in result.stderr


def test_compose_refuses_to_run_without_the_app_database(compose_copy):
    values = _filled_env_file(compose_copy)
    del values["RETRY_PIPELINES_DATABASE_URL"]
    text = "".join(f"{name}={value}\n" for name, value in values.items())
    (compose_copy / ".env").write_text(text, encoding="utf-8")
    result = _config(compose_copy)
    assert result.returncode != 0
    assert "set RETRY_PIPELINES_DATABASE_URL in deploy/.env" in result.stderr
