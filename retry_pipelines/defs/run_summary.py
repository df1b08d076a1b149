"""How a submitting op reports its run: alerts and pauses in the log, the summary as metadata."""

import dagster as dg

from retry_pipelines.engine.pipeline import RunSummary


def report(context: dg.OpExecutionContext, summary: RunSummary) -> dict:
    for alert in summary.alerts:
        context.log.error(alert)
    if summary.paused_until:
        context.log.warning(
            f"gateway {summary.gateway} paused until {summary.paused_until.isoformat()}"
        )
    metadata = summary.as_metadata()
    counts = [(k, v) for k, v in metadata.items() if isinstance(v, int) and not isinstance(v, bool)]
    table = "| outcome | count |\n|---|---:|\n" + "\n".join(f"| {k} | {v} |" for k, v in counts)
    context.add_output_metadata(
        {
            **{k: v for k, v in metadata.items() if not isinstance(v, dict | list)},
            "errors_by_type": dg.MetadataValue.json(metadata["errors_by_type"]),
            "summary": dg.MetadataValue.md(table),
        }
    )
    context.log.info(
        f"{summary.gateway}: claimed {summary.claimed}, succeeded {summary.succeeded}, retry "
        f"scheduled {summary.retry_scheduled}, dead-lettered {summary.dead}, held {summary.held}"
    )
    return metadata
