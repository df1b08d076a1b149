"""The code image's layout loads the code location: the files deploy/Dockerfile's build stage
copies, laid out under its WORKDIR and imported from there, give the `retry_pipelines`
definitions with no variable set."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from retry_pipelines_tests.deploy import kit

LOAD = """
import json
import retry_pipelines
from retry_pipelines.definitions import defs
loaded = defs()
print(json.dumps({
    "file": retry_pipelines.__file__,
    "jobs": sorted(job.name for job in loaded.resolve_all_job_defs()),
}))
"""


def _lay_out_build_stage(app: Path) -> None:
    """Copies each ``COPY source... destination`` of the build stage, relative to its WORKDIR."""
    for args in kit.read_dockerfile().stages["build"].all("COPY"):
        *sources, destination = args.split()
        for source in sources:
            origin = kit.ROOT / source
            target = app / destination / source if destination.endswith("/") else app / destination
            if origin.is_dir():
                shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, target)


def test_the_code_image_layout_loads_the_code_location(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    _lay_out_build_stage(app)
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "DAGSTER_HOME": str(tmp_path),
        "PYTHONPATH": str(app),
    }
    result = subprocess.run(
        [sys.executable, "-c", LOAD],
        capture_output=True,
        text=True,
        env=environment,
        cwd=app,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(loaded["file"]).is_relative_to(app)
    assert {"retry_failed_invoices", "retry_payout_batches"} <= set(loaded["jobs"])
