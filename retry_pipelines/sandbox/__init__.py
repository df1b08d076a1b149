"""Local FBR and PayPal servers (real HTTP) with fault injection: demo, tests, benchmarks.

``fbr`` and ``paypal`` are the two gateways; what they share lives beside them: ``faults`` (the
fault plan), ``variants`` (rotating response shapes), ``wire`` (dropped connections, hangs),
``control`` (the request log and the ``/_sandbox/`` endpoints) and ``server`` (uvicorn in a
thread or a subprocess). They need the ``sandbox`` extra (starlette, uvicorn); a production
install has neither, and nothing outside this package and ``demo`` imports them.
"""

from __future__ import annotations

import importlib.util

REQUIREMENTS = ("starlette", "uvicorn")
INSTALL_HINT = "pip install 'retry_pipelines[sandbox]'"


def missing_requirement() -> str | None:
    """A one-line reason the sandboxes cannot run here, None if they can."""
    missing = [name for name in REQUIREMENTS if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return f"the sandboxes need {' and '.join(missing)}, which this install lacks: {INSTALL_HINT}"
