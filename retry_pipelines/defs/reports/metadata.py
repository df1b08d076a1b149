"""Turning report frames and check findings into Dagster metadata and check results."""

import math
from datetime import date

import dagster as dg
import pandas as pd

from retry_pipelines.reports.checks import Finding


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
