"""How a submitting op reports its run: alerts and pauses in the log, the summary as metadata.
A run that failed part-way fails its step, naming the error, with the summary attached."""

import asyncio
from collections.abc import Coroutine
from typing import Any

import dagster as dg

from retry_pipelines.engine.pipeline import PipelineError, RunSummary


def run_and_report(context: dg.OpExecutionContext, run: Coroutine[Any, Any, RunSummary]) -> dict:
    """Run the pipeline; its summary becomes the op's output metadata, or, when it failed, the
    metadata of the step's failure."""
    try:
        summary = asyncio.run(run)
    except PipelineError as exc:
        _log(context, exc.summary)
        raise dg.Failure(
            description=str(exc),
            metadata=_metadata(exc.summary),
            allow_retries=False,
        ) from None
    _log(context, summary)
    context.add_output_metadata(_metadata(summary))
    return summary.as_metadata()


def _log(context: dg.OpExecutionContext, summary: RunSummary) -> None:
    for alert in summary.alerts:
        context.log.error(alert)
    if summary.paused_until:
        context.log.warning(
            f"gateway {summary.gateway} paused until {summary.paused_until.isoformat()}"
        )
    if summary.stopped_because:
        context.log.warning(f"{summary.gateway}: stopped sending: {summary.stopped_because}")
    context.log.info(
        f"{summary.gateway}: claimed {summary.claimed}, succeeded {summary.succeeded}, retry "
        f"scheduled {summary.retry_scheduled}, dead-lettered {summary.dead}, held {summary.held}, "
        f"handed back unsent {summary.released}, interrupted {summary.interrupted}"
    )


def _metadata(summary: RunSummary) -> dict:
    metadata = summary.as_metadata()
    counts = [(k, v) for k, v in metadata.items() if isinstance(v, int) and not isinstance(v, bool)]
    table = "| outcome | count |\n|---|---:|\n" + "\n".join(f"| {k} | {v} |" for k, v in counts)
    return {
        **{k: v for k, v in metadata.items() if not isinstance(v, dict | list)},
        "errors_by_type": dg.MetadataValue.json(metadata["errors_by_type"]),
        "summary": dg.MetadataValue.md(table),
    }
