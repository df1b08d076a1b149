"""The Dagster processes the demo runs, as ``make dev`` does: the webserver (``demo.launch``) and
``dagster-daemon run``, both on the project's instance in ``$DAGSTER_HOME``, whose run queue
(``QueuedRunCoordinator`` in the project's ``dagster.yaml``) the daemon drains.

Start-up, in ``running_dagster``: the webserver until the code location is loaded; the
automations a killed demo left paused are restored; the code location's sensors and schedules
are paused (``demo.automations``); then the daemon starts, its output in ``daemon.log`` beside
``webserver.log`` in the home. At the end, also on an error: the daemon is stopped first (so no
sensor or schedule tick comes in between), then the automations are restored while the
webserver still serves, then (by ``Launcher``) the webserver is stopped.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from retry_pipelines.demo import automations
from retry_pipelines.demo.launch import Launcher, stop_group
from retry_pipelines.demo.local import LOCATION


class Daemon:
    """``dagster-daemon run`` for the launcher's workspace, instance and environment, in a
    process group of its own (with its code server and the runs it starts); ``with`` starts and
    stops it."""

    def __init__(self, launcher: Launcher):
        self._launcher = launcher
        self.log = launcher.daemon_log
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Daemon:
        command = [str(Path(sys.executable).parent / "dagster-daemon"), "run"]
        command += ["-w", str(self._launcher.workspace)]
        with self.log.open("w") as log:
            self._proc = subprocess.Popen(
                command,
                env=self._launcher.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def __exit__(self, *_exc) -> None:
        if self._proc is not None and self._proc.poll() is None:
            stop_group(self._proc)
        self._proc = None


@contextmanager
def paused_automations(launcher: Launcher, out: Callable[[str], None] = print) -> Iterator[None]:
    """The code location's running automations paused (see the module's docstring), once the
    webserver has loaded it and what an interrupted demo left paused is restored."""
    launcher.wait_until_ready()
    leftover = automations.restore(launcher.query, launcher.home)
    if leftover is not None:
        out(f"restored {leftover} automations of {LOCATION} that an interrupted demo left paused")
    try:
        automations.pause(launcher.query, launcher.home)
        yield
    finally:
        restored = automations.restore(launcher.query, launcher.home) or 0
        out(f"automations of {LOCATION} paused for the demo: {restored}; restored")


@contextmanager
def running_dagster(launcher: Launcher, out: Callable[[str], None] = print) -> Iterator[Daemon]:
    """With ``launcher``'s webserver started: its automations paused and the daemon running."""
    with paused_automations(launcher, out), Daemon(launcher) as daemon:
        yield daemon
