"""The code location loads from an installed package, with no ``pyproject.toml`` beside it (as
from a wheel in site-packages), not only from a source checkout: the package ships the loader's
project file, ``retry_pipelines/dg.toml``, which says what ``[tool.dg]`` says."""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import retry_pipelines

PACKAGE = Path(retry_pipelines.__file__).parent
LOAD = (
    "import retry_pipelines, sys\n"
    "from retry_pipelines.definitions import defs\n"
    "assert retry_pipelines.__file__.startswith(sys.argv[1]), retry_pipelines.__file__\n"
    "d = defs()\n"
    "print(len(list(d.resolve_all_job_defs())), len(d.sensors), len(d.schedules))\n"
)


def test_the_package_project_file_says_what_pyproject_says():
    shipped = tomllib.loads((PACKAGE / "dg.toml").read_text())
    pyproject = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    dg_settings = pyproject["tool"]["dg"]
    assert shipped == dg_settings
    assert "dg.toml" in pyproject["tool"]["setuptools"]["package-data"]["retry_pipelines"]


def test_the_location_loads_without_the_project_file(tmp_path):
    site = tmp_path / "site-packages"
    shutil.copytree(PACKAGE, site / "retry_pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    assert not any(p.name in ("pyproject.toml", "setup.py") for p in tmp_path.rglob("*"))
    loaded = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", LOAD, str(site)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.split() == ["18", "9", "6"]
