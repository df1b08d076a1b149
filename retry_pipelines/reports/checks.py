"""What each asset check decides, as plain data (the Dagster layer only wraps it).

Thresholds:

- failure rate: a gateway fails the check when more than ``FAILURE_RATE_THRESHOLD`` of the day's
  finished attempts failed;
- spike: a gateway's failure rate that day is at least ``SPIKE_FACTOR`` times its mean daily rate
  over the 7 days before *and* at least ``SPIKE_MIN_INCREASE`` above it, with at least
  ``SPIKE_MIN_FINISHED`` finished attempts that day and at least one earlier day to compare with;
- token: the FBR token must stay valid for more than ``TOKEN_MIN_DAYS`` days;
- breaker: no gateway's circuit breaker has stayed away from ``closed`` (open or half-open, in
  one stretch) longer than ``BreakerConfig.stuck_open_seconds`` (30 min by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd

from retry_pipelines.domain.breaker import DEFAULT_BREAKER
from retry_pipelines.reports.backlog import STUCK_AFTER, Backlog, DuplicateSuccesses
from retry_pipelines.reports.tokens import EXPIRES_AT_ENV, TokenExpiry

FAILURE_RATE_THRESHOLD = 0.5
SPIKE_FACTOR = 2.0
SPIKE_MIN_INCREASE = 0.05
SPIKE_MIN_FINISHED = 20
SPIKE_WINDOW_DAYS = 7
TOKEN_MIN_DAYS = 14


@dataclass(frozen=True)
class Finding:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)
    warn_only: bool = False
    """A failure that asks for attention rather than signalling broken data."""


def _failure_rates(metrics: pd.DataFrame) -> dict[str, tuple[float, int]]:
    rates = {}
    for row in metrics.itertuples(index=False):
        finished = row.successes + row.failures
        if finished:
            rates[row.gateway] = (row.failures / finished, finished)
    return rates


def failure_rate(metrics: pd.DataFrame, threshold: float = FAILURE_RATE_THRESHOLD) -> Finding:
    """``metrics``: one day's rows of ``reports.metrics.retry_metrics``."""
    rates = _failure_rates(metrics)
    over = sorted(g for g, (rate, _) in rates.items() if rate > threshold)
    metadata = {"threshold": threshold, **{f"{g}/failure_rate": r for g, (r, _) in rates.items()}}
    if over:
        detail = ", ".join(f"{g} {rates[g][0]:.1%}" for g in over)
        return Finding(False, f"failure rate above {threshold:.0%}: {detail}", metadata, True)
    return Finding(True, f"every gateway's failure rate is at most {threshold:.0%}", metadata)


def error_rate_spike(
    metrics: pd.DataFrame,
    trailing: dict[str, tuple[float, int]],
    *,
    factor: float = SPIKE_FACTOR,
    min_increase: float = SPIKE_MIN_INCREASE,
    min_finished: int = SPIKE_MIN_FINISHED,
) -> Finding:
    """``trailing``: per gateway, (mean daily failure rate, days) over the days before."""
    metadata: dict = {"factor": factor, "min_increase": min_increase}
    spikes, notes = [], []
    for gateway, (rate, finished) in sorted(_failure_rates(metrics).items()):
        metadata[f"{gateway}/failure_rate"] = rate
        mean, baseline_days = trailing.get(gateway, (None, 0))
        metadata[f"{gateway}/baseline_days"] = baseline_days
        if mean is None or baseline_days == 0:
            notes.append(f"{gateway}: no earlier day to compare with")
            continue
        metadata[f"{gateway}/trailing_mean"] = mean
        if finished < min_finished:
            notes.append(f"{gateway}: only {finished} finished attempts")
            continue
        if rate >= factor * mean and rate - mean >= min_increase:
            spikes.append(f"{gateway} {rate:.1%} vs trailing mean {mean:.1%}")
    if spikes:
        summary = "error-rate spike: " + ", ".join(spikes)
        return Finding(False, "; ".join([summary, *notes]), metadata, True)
    return Finding(True, "; ".join(["no error-rate spike", *notes]), metadata)


def no_stuck_leases(snapshot: Backlog) -> Finding:
    """Fails on leases expired more than ``STUCK_AFTER`` ago; ones expired just now are normal
    (the next sweep takes them) and only reported."""
    stuck = {g: b.stuck_leases for g, b in snapshot.gateways.items()}
    metadata = {f"{g}/expired_leases": b.expired_leases for g, b in snapshot.gateways.items()}
    metadata |= {f"{g}/stuck_leases": n for g, n in stuck.items()}
    if any(stuck.values()):
        detail = ", ".join(f"{g}: {n}" for g, n in stuck.items() if n)
        minutes = int(STUCK_AFTER.total_seconds() // 60)
        return Finding(
            False,
            f"leases expired over {minutes} min ago still processing ({detail}); "
            "release_stuck_locks returns them",
            metadata,
            True,
        )
    return Finding(True, "no expired lease is still processing", metadata)


def breaker_not_stuck_open(
    snapshot: Backlog, limit_seconds: float = DEFAULT_BREAKER.stuck_open_seconds
) -> Finding:
    metadata: dict = {"limit_seconds": limit_seconds}
    stuck = []
    for g, b in snapshot.breakers.items():
        metadata[f"{g}/state"] = b.state
        metadata[f"{g}/open_for_seconds"] = b.open_for_seconds
        if b.open_for_seconds > limit_seconds:
            until = b.open_until.isoformat() if b.open_until else "unknown"
            stuck.append(
                f"{g} {b.state} for {b.open_for_seconds:.0f} s (until {until}): {b.reason}"
            )
    if stuck:
        return Finding(
            False, f"circuit breaker open past {limit_seconds:.0f} s: " + "; ".join(stuck), metadata
        )
    return Finding(True, f"no circuit breaker open longer than {limit_seconds:.0f} s", metadata)


def no_duplicate_submissions(found: dict[str, DuplicateSuccesses]) -> Finding:
    metadata: dict = {f"{g}/items_with_duplicate_successes": d.items for g, d in found.items()}
    bad = {g: d for g, d in found.items() if d.items}
    if bad:
        metadata["examples"] = {g: [list(e) for e in d.examples] for g, d in bad.items()}
        detail = ", ".join(f"{g}: {d.items}" for g, d in bad.items())
        return Finding(False, f"items submitted successfully more than once ({detail})", metadata)
    return Finding(True, "no item was submitted successfully more than once", metadata)


def token_expiry(expiry: TokenExpiry, *, now: datetime, min_days: int = TOKEN_MIN_DAYS) -> Finding:
    metadata: dict = {"source": expiry.source, "min_days": min_days}
    if expiry.expires_at is None:
        return Finding(
            False,
            f"FBR token expiry unknown: set {EXPIRES_AT_ENV} (ISO date from IRIS)",
            metadata,
            True,
        )
    days_left = (expiry.expires_at - now).total_seconds() / 86400
    metadata |= {"expires_at": expiry.expires_at.isoformat(), "days_left": round(days_left, 2)}
    if days_left <= min_days:
        state = "has expired" if days_left <= 0 else f"expires in {days_left:.1f} days"
        return Finding(False, f"FBR token {state} ({expiry.expires_at:%Y-%m-%d})", metadata)
    return Finding(True, f"FBR token valid for {days_left:.0f} more days", metadata)
