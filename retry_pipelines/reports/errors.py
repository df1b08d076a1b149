"""Daily error distribution per gateway: error type x error code, with counts, shares and the most
frequent (scrubbed) message, aggregated in SQL (``store.reports``).

Per UTC day (of ``started_at``) and gateway, over failed attempts (``failure`` and
``interrupted``): ``failures`` of each (error type, error code), their ``share`` of the gateway's
failures that day, and the group's most frequent message with its count (ties: the message that
sorts first). A missing error code is reported as ``''``.

Codes and messages are cleaned and bounded for the report's columns (``store.clean``). Attempts
are cleaned when recorded, so codes already fit; rows written before that (SQLite keeps any
length) could be cut to one same code: such groups are merged (counts and shares added, the more
frequent top message kept), so a day's rows keep distinct keys.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from sqlalchemy import Engine

from retry_pipelines.store import reports as store
from retry_pipelines.store.clean import clean_value
from retry_pipelines.store.queues import QUEUES
from retry_pipelines.store.tables import error_distribution_daily

COLUMNS = (
    "day",
    "gateway",
    "error_type",
    "error_code",
    "failures",
    "share",
    "top_message",
    "top_message_count",
)


def error_distribution(engine: Engine, start: date, end: date) -> pd.DataFrame:
    """Rows for every (day, gateway, error type, error code) with failures in ``[start, end)``,
    columns ``COLUMNS``, ordered by day, gateway and failures (most first)."""
    rows: dict[tuple, dict] = {}
    c = error_distribution_daily.c
    for gateway, queue in QUEUES.items():
        for r in store.error_groups(engine, queue, start, end):
            row = {
                "day": r["day"],
                "gateway": gateway,
                "error_type": clean_value(c.error_type, r["error_type"]),
                "error_code": clean_value(c.error_code, r["error_code"]),
                "failures": int(r["failures"]),
                "share": r["failures"] / r["day_failures"],
                # Stored messages are scrubbed when recorded; scrub again on the way out.
                "top_message": clean_value(c.top_message, r["message"]) or None,
                "top_message_count": int(r["n"]),
            }
            key = (row["day"], gateway, row["error_type"], row["error_code"])
            rows[key] = _merged(rows[key], row) if key in rows else row
    frame = pd.DataFrame(list(rows.values()), columns=list(COLUMNS))
    frame = frame.astype({"failures": "int64", "share": "float64", "top_message_count": "int64"})
    return frame.sort_values(
        ["day", "gateway", "failures", "error_type", "error_code"],
        ascending=[True, True, False, True, True],
        ignore_index=True,
    )


def _merged(a: dict, b: dict) -> dict:
    """Two groups whose codes were cut to the same key, as one."""
    top = min(a, b, key=lambda r: (-r["top_message_count"], r["top_message"] or ""))
    return top | {"failures": a["failures"] + b["failures"], "share": a["share"] + b["share"]}
