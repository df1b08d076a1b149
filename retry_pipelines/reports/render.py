"""Markdown tables for report metadata (no extra dependency)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date

import pandas as pd


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1 else f"{value:,.1f}"
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 120 else text[:119] + "…"


def markdown_table(frame: pd.DataFrame, columns: Sequence[str] | None = None) -> str:
    columns = list(columns or frame.columns)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in columns]
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---:" if n else "---" for n in numeric) + "|",
    ]
    for row in frame[columns].itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if frame.empty:
        lines.append("| " + " | ".join("-" for _ in columns) + " |")
    return "\n".join(lines)
