"""Checks of the backlog snapshot: stuck leases, duplicate submissions, the FBR token's expiry,
circuit breakers stuck open."""

import os
from datetime import UTC, datetime

import dagster as dg

from retry_pipelines.defs.reports.assets import retry_backlog
from retry_pipelines.defs.reports.metadata import check_result
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.reports import checks
from retry_pipelines.reports.backlog import backlog, duplicate_successes
from retry_pipelines.reports.tokens import fbr_token_expiry, recorded_expiry


@dg.asset_check(
    asset=retry_backlog,
    description="No lease has expired while its item is still processing.",
)
def no_stuck_leases(db: DatabaseResource) -> dg.AssetCheckResult:
    snapshot = backlog(db.engine, now=datetime.now(UTC))
    return check_result("no_stuck_leases", checks.no_stuck_leases(snapshot))


@dg.asset_check(
    asset=retry_backlog,
    description="No invoice or payout batch has more than one successful attempt.",
)
def no_duplicate_submissions(db: DatabaseResource) -> dg.AssetCheckResult:
    found = duplicate_successes(db.engine)
    return check_result("no_duplicate_submissions", checks.no_duplicate_submissions(found))


@dg.asset_check(
    asset=retry_backlog,
    description="The FBR token stays valid for more than 14 days (FBR_API_TOKEN_EXPIRES_AT, the "
    "token's JWT exp claim, or the expiry a run recorded).",
)
def fbr_token_not_expiring(db: DatabaseResource) -> dg.AssetCheckResult:
    now = datetime.now(UTC)
    try:
        expiry = fbr_token_expiry(os.environ, recorded_expiry(db.engine))
    except ValueError as exc:  # a malformed date; the message names the variable, not the token
        return dg.AssetCheckResult(passed=False, description=str(exc))
    return check_result("fbr_token_not_expiring", checks.token_expiry(expiry, now=now))


@dg.asset_check(
    asset=retry_backlog,
    description="No gateway's circuit breaker has been open (or half-open) for longer than "
    "30 minutes in one stretch; asset_check_alert_sensor alerts when it fails.",
)
def breaker_not_stuck_open(db: DatabaseResource) -> dg.AssetCheckResult:
    snapshot = backlog(db.engine, now=datetime.now(UTC))
    return check_result("breaker_not_stuck_open", checks.breaker_not_stuck_open(snapshot))


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        asset_checks=[
            no_stuck_leases,
            no_duplicate_submissions,
            fbr_token_not_expiring,
            breaker_not_stuck_open,
        ]
    )
