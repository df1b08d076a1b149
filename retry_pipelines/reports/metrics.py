"""Daily retry metrics per gateway, aggregated in SQL (``store.reports``).

Per UTC day (of an attempt's ``started_at``) and gateway:

- ``attempts``: attempt rows started that day, whatever their outcome;
- ``successes``; ``in_flight`` (not finished yet); ``failures`` = finished - successes, where an
  ``interrupted`` attempt (its worker lost the lease) counts as a failure;
- ``success_rate`` = successes / finished attempts (None when nothing finished);
- ``avg_attempts_to_success``: the mean attempt number of that day's successful attempts (1 =
  first try);
- ``dead_lettered`` / ``held``: items that moved to ``dead`` / their queue's held status
  (``needs_reconciliation``) that day (their ``updated_at``) and are still there when the report
  runs;
- ``latency_p50_ms`` / ``latency_p95_ms``: ``percentile_cont`` of the finished attempts' latency.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import Engine

from retry_pipelines.store import reports as store
from retry_pipelines.store.queues import QUEUES
from retry_pipelines.store.reports import days

GATEWAYS = tuple(QUEUES)

COLUMNS = (
    "day",
    "gateway",
    "attempts",
    "successes",
    "failures",
    "in_flight",
    "success_rate",
    "avg_attempts_to_success",
    "dead_lettered",
    "held",
    "latency_p50_ms",
    "latency_p95_ms",
)
COUNTS = ("attempts", "successes", "failures", "in_flight", "dead_lettered", "held")


def retry_metrics(engine: Engine, start: date, end: date) -> pd.DataFrame:
    """One row per day in ``[start, end)`` and gateway (zeros on a quiet day), columns
    ``COLUMNS``."""
    grid = pd.DataFrame(
        [(d, g) for d in days(start, end) for g in GATEWAYS], columns=["day", "gateway"]
    )
    attempt_rows, item_rows = [], []
    for gateway, queue in QUEUES.items():
        for rows, stats in ((attempt_rows, store.attempt_stats), (item_rows, store.item_stats)):
            rows += [{**r, "gateway": gateway} for r in stats(engine, queue, start, end)]
    frame = grid
    for rows in (attempt_rows, item_rows):
        if rows:
            frame = frame.merge(pd.DataFrame(rows), on=["day", "gateway"], how="left")
    for name in COLUMNS:
        if name not in frame:
            frame[name] = None
    for name in ("attempts", "successes", "in_flight", "dead_lettered", "held"):
        frame[name] = frame[name].fillna(0).astype("int64")
    finished = frame["attempts"] - frame["in_flight"]
    frame["failures"] = finished - frame["successes"]
    frame["success_rate"] = (frame["successes"] / finished.where(finished > 0)).astype("float64")
    for name in ("avg_attempts_to_success", "latency_p50_ms", "latency_p95_ms"):
        frame[name] = frame[name].astype("float64")
    return frame[list(COLUMNS)].sort_values(["day", "gateway"], ignore_index=True)
