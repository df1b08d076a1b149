"""A production install has no ``sandbox`` extra: nothing it runs may import starlette or uvicorn.

The sandboxes and the demo serve HTTP; the code location, the engine, the store, the gateways,
the reports and the CLI's own commands do not. These tests pin that boundary, so a stray import
of a sandbox module from production code fails here instead of on a server without the extra.
"""

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
SANDBOX_ONLY = ("starlette", "uvicorn")
PRODUCTION_PACKAGES = (
    "retry_pipelines.defs",
    "retry_pipelines.engine",
    "retry_pipelines.store",
    "retry_pipelines.gateways",
    "retry_pipelines.domain",
    "retry_pipelines.reports",
    "retry_pipelines.alerts",
)
BLOCK_SANDBOX_EXTRA = "import sys\nsys.modules.update(starlette=None, uvicorn=None)\n"
"""Makes the interpreter behave as if the ``sandbox`` extra were not installed."""


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )


def test_production_modules_import_neither_starlette_nor_uvicorn():
    code = f"""
import importlib, pkgutil, sys
import retry_pipelines.cli, retry_pipelines.definitions
retry_pipelines.definitions.defs()
retry_pipelines.cli.build_parser()
for package in {PRODUCTION_PACKAGES!r}:
    module = importlib.import_module(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {set(SANDBOX_ONLY)!r})
assert not loaded, loaded
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_production_modules_load_without_the_sandbox_extra():
    proc = _python(
        BLOCK_SANDBOX_EXTRA
        + "import retry_pipelines.cli, retry_pipelines.definitions\n"
        + "retry_pipelines.definitions.defs()\n"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_starlette_and_uvicorn_are_not_core_dependencies():
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert core.isdisjoint(SANDBOX_ONLY)
    assert {_name(r) for r in extras["sandbox"]} >= set(SANDBOX_ONLY)
    assert "retry_pipelines[sandbox,webserver]" in extras["dev"]


def test_a_production_install_pulls_in_neither_starlette_nor_uvicorn():
    """The whole requirement closure of ``pip install .`` (core dependencies, their markers
    evaluated here, transitively through the installed distributions' metadata): the Dagster UI
    (dagster-webserver, dagster-graphql) is the ``webserver`` extra, since it serves HTTP."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    closure = _closure(project["dependencies"])
    assert "dagster" in closure
    assert "dagster-postgres" in closure
    assert closure.isdisjoint({*SANDBOX_ONLY, "dagster-webserver", "dagster-graphql"}), sorted(
        closure
    )


def _closure(requirements: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        if name in seen:
            continue
        seen.add(name)
        todo.extend(Requirement(r) for r in metadata.requires(name) or [])
    return seen


@pytest.mark.parametrize(
    "command", [["demo"], ["sandbox"], ["sandbox", "--", "--gateway", "paypal"]]
)
def test_sandbox_commands_without_the_extra_say_what_to_install(command):
    proc = _python(
        BLOCK_SANDBOX_EXTRA
        + "from retry_pipelines.cli import main\n"
        + f"sys.exit(main({command!r}))\n"
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "pip install 'retry_pipelines[sandbox]'" in lines[0]


def test_the_sandbox_module_without_the_extra_says_what_to_install():
    proc = _python(
        BLOCK_SANDBOX_EXTRA
        + "from retry_pipelines.sandbox.__main__ import main\n"
        + "sys.exit(main([]))\n"
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("sandbox: ")
    assert "pip install 'retry_pipelines[sandbox]'" in proc.stderr


def _name(requirement: str) -> str:
    for stop in "[<>=!~ ;":
        requirement = requirement.split(stop)[0]
    return requirement.strip().lower()
