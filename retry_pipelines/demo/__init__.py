"""``make demo``: the FBR and PayPal jobs end to end on the embedded default (SQLite + local
sandboxes), launched in the ``retry_pipelines`` code location on the local instance, so the runs,
the report assets and the operator worklist show in ``make dev``'s UI.

``run`` holds the whole demo, ``fbr`` and ``paypal`` its two halves, ``reports`` the assets
after them, ``launch`` how runs are launched and followed, ``services`` the Dagster webserver and
daemon it runs, ``automations`` the sensors and schedules it pauses meanwhile, ``local`` the
instance and database it shares with ``make dev``, ``jobs`` ``execute_job`` (``dg launch --job``)
and the demo's repeated runs, ``summary`` and ``tour`` what it prints; the counts come from
``store.summaries``. Needs the ``sandbox`` extra; names are imported on first use, so
``local`` and ``automations`` (used by ``retry-pipelines dev``) work without it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DEMO_DATABASE": "retry_pipelines.demo.local",
    "SANDBOX_TOKEN": "retry_pipelines.demo.fbr",
    "execute_job": "retry_pipelines.demo.jobs",
    "run_demo": "retry_pipelines.demo.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)
