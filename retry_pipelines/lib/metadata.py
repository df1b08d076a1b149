"""Turning report frames, backlog snapshots and check findings into Dagster metadata and check
results."""

import math
from datetime import date

import dagster as dg
import pandas as pd

from retry_pipelines.reports.backlog import Backlog, BreakerFigures
from retry_pipelines.reports.checks import Finding
from retry_pipelines.reports.render import markdown_table
from retry_pipelines.store.queues import QUEUES

BREAKER_FIGURES = (
    "state",
    "open_for_seconds",
    "trips",
    "window_calls",
    "window_failures",
    "window_retries",
    "rate_factor",
)
"""Figures of each gateway's breaker shown as ``{gateway}/breaker/{figure}``."""


def numeric_metadata(frame: pd.DataFrame, columns: tuple[str, ...]) -> dict:
    """``gateway/column`` numbers of a one-day frame (one row per gateway), for the UI's plots.
    Figures that do not exist that day (a rate with no attempts) are left out."""
    out = {}
    for row in frame.to_dict("records"):
        for column in columns:
            value = row[column]
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            number = float(value) if isinstance(value, float) else int(value)
            out[f"{row['gateway']}/{column}"] = number
    return out


def table_records(frame: pd.DataFrame) -> list[dg.TableRecord]:
    def plain(value):
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, float) and math.isnan(value):
            return None
        return value.item() if hasattr(value, "item") else value

    return [dg.TableRecord({k: plain(v) for k, v in r.items()}) for r in frame.to_dict("records")]


def check_result(name: str, finding: Finding, asset_key: str | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=asset_key,
        passed=finding.passed,
        description=finding.description,
        severity=dg.AssetCheckSeverity.WARN if finding.warn_only else dg.AssetCheckSeverity.ERROR,
        metadata=finding.metadata,
    )


def backlog_metadata(snapshot: Backlog) -> dict:
    """The snapshot as ``{gateway}/...`` figures (items per status, due, leases, breaker) for the
    UI's plots, and tables of paused gateways, breakers and items by status."""
    metadata: dict = {}
    for gateway, b in snapshot.gateways.items():
        for status in sorted(QUEUES[gateway].machine.states):
            metadata[f"{gateway}/items/{status}"] = b.by_status.get(status, 0)
        metadata[f"{gateway}/due"] = b.due
        metadata[f"{gateway}/oldest_due_age_seconds"] = float(b.oldest_due_age_seconds or 0.0)
        metadata[f"{gateway}/live_leases"] = b.live_leases
        metadata[f"{gateway}/expired_leases"] = b.expired_leases
    paused = pd.DataFrame(
        [(p.gateway, p.until.isoformat(), p.reason) for p in snapshot.paused],
        columns=["gateway", "paused_until", "reason"],
    )
    metadata["paused_gateways"] = dg.MetadataValue.md(markdown_table(paused))
    for gateway, figures in snapshot.breakers.items():
        metadata.update(_breaker_figures(gateway, figures))
    metadata["breakers"] = dg.MetadataValue.md(markdown_table(_breaker_table(snapshot)))
    metadata["by_status"] = dg.MetadataValue.md(markdown_table(snapshot.by_status()))
    return metadata


def _breaker_figures(gateway: str, f: BreakerFigures) -> dict:
    figures = {name: getattr(f, name) for name in BREAKER_FIGURES}
    figures["retry_allowance"] = -1 if f.retry_allowance is None else f.retry_allowance
    return {f"{gateway}/breaker/{name}": value for name, value in figures.items()}


def _breaker_table(snapshot: Backlog) -> pd.DataFrame:
    return pd.DataFrame(
        [
            (
                f.gateway,
                f.state,
                f.open_until.isoformat() if f.open_until else "",
                f.retry_allowance if f.retry_allowance is not None else "no limit",
                f.rate_factor,
                f.reason,
            )
            for f in snapshot.breakers.values()
        ],
        columns=["gateway", "breaker", "open_until", "retries_left", "rate_factor", "reason"],
    )
