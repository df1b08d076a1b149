"""Retention: prune raw attempt rows the daily reports have already summarized."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.lib.admin import actor as make_actor
from retry_pipelines.reports.retention import prune_attempt_history as prune


class PruneAttemptHistoryConfig(dg.Config):
    """How much attempt history to keep, and who prunes it (an audited admin action)."""

    keep_days: int = Field(
        default=90,
        ge=1,
        description="Keep the attempts of the last N UTC days (at least 1); older days are "
        "pruned only once both daily reports cover them.",
    )
    admin_id: str = Field(
        default="retention",
        description="Who prunes, recorded in each admin_audit row (must be allowed by "
        "RETRY_PIPELINES_ADMIN_IDS when that is set).",
    )


@dg.op(
    description="Delete attempt rows older than keep_days, only of days both daily reports cover "
    "and only of final items with nothing in flight; one audited transaction per day."
)
def prune_old_attempts(
    context: dg.OpExecutionContext, config: PruneAttemptHistoryConfig, db: DatabaseResource
) -> dict:
    # Deleting history is an admin action: the same checks (and allowlist) as any other.
    actor = make_actor(context, db, config.admin_id, f"retention: keep {config.keep_days} days")
    result = prune(
        db.engine,
        keep_days=config.keep_days,
        now=datetime.now(UTC),
        admin_id=actor.admin_id,
        run_id=context.run_id,
    )
    summary = {
        "keep_days": result.keep_days,
        "before": result.before.isoformat(),
        "reported_days": result.reported_days,
        "days_pruned": len(result.days_pruned),
        **{f"{g}/deleted": n for g, n in result.deleted.items()},
        **{f"{g}/kept_older": n for g, n in result.kept_older.items()},
    }
    context.add_output_metadata(
        {**summary, "pruned_days": [d.isoformat() for d in result.days_pruned]}
    )
    context.log.info(
        f"pruned {sum(result.deleted.values())} attempt rows from {len(result.days_pruned)} "
        f"day(s) before {result.before}"
    )
    return summary


@dg.job(description="Prune raw attempt history the daily reports have summarized (audited).")
def prune_attempt_history():
    prune_old_attempts()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[prune_attempt_history])
