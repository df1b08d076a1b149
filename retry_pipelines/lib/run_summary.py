"""How a submitting op reports its run: alerts and pauses in the log, the summary as metadata.
A run that failed part-way fails its step, naming the error, with the summary attached.

Every text reported (log lines, metadata, the failure's description) is scrubbed of the run's
known secrets in every form (``domain.scrub``): the gateway resources' credentials and the
secrets the environment holds; an unexpected error that quotes one fails the step with its
scrubbed text alone. Settings that break the deployment rules (a token with a newline, say) fail
the step in one line, naming the setting, before anything is claimed.

A run that ends while its gateway is paused for refused credentials (a token or client
credentials the gateway refused: ``store.pauses.CREDENTIALS``), whether it met the refusal or
found the pause, stopped sending because of it and fails too: in one line naming the cause, the
setting to check and ``resume_gateway``, with its summary attached. Nothing more is sent to the
gateway until a person fixes the setting. A run that waited out a short pause and went on
succeeds as before."""

import asyncio
import os
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from retry_pipelines.alerts.payload import secrets_from_env
from retry_pipelines.domain.deployment import UnsafeConfiguration
from retry_pipelines.domain.scrub import redact
from retry_pipelines.engine.pipeline import PipelineError, RunSummary
from retry_pipelines.store.pauses import CREDENTIALS, pause_kind

GATEWAY_RESOURCES = ("fbr", "paypal")
CREDENTIAL_SETTINGS = {
    "fbr": ("FBR_API_TOKEN",),
    "paypal": ("PAYPAL_CLIENT_ID", "PAYPAL_CLIENT_SECRET"),
}
"""The settings a gateway's refused credentials come from."""
REASON_CHARS = 300
"""Characters of a pause reason quoted in a one-line failure."""


def credentials_setting(gateway: str) -> str:
    """The setting(s) to check when ``gateway`` refuses the credentials, as operators name them."""
    return " and ".join(CREDENTIAL_SETTINGS.get(gateway, (f"the {gateway} credentials",)))


def credentials_stop(summary: RunSummary) -> str | None:
    """Why the run failed, in one line, when it ended with its gateway paused for refused
    credentials (so it could send nothing more); None otherwise: no pause, a pause that ended
    while the run went on, or a rate-limit pause (it ends on its own)."""
    until, ended = summary.paused_until, summary.finished_at or datetime.now(UTC)
    if until is None or until <= ended or pause_kind(summary.pause_reason) != CREDENTIALS:
        return None
    reason = " ".join((summary.pause_reason or "").split())
    if len(reason) > REASON_CHARS:
        reason = reason[: REASON_CHARS - 1] + "…"
    gateway = summary.gateway
    return (
        f"{gateway} refused the credentials ({reason}), so the run stopped sending and the "
        f"gateway is paused until {summary.paused_until.isoformat()}: check "
        f"{credentials_setting(gateway)}, then run resume_gateway with gateway: {gateway}"
    )


def known_secrets(context: dg.OpExecutionContext) -> tuple[str, ...]:
    """The credentials of the op's gateway resources and those in the environment."""
    found: list[str] = list(secrets_from_env(os.environ))
    for name in GATEWAY_RESOURCES:
        resource = getattr(context.resources, name, None)
        if resource is not None and hasattr(resource, "known_secrets"):
            found += resource.known_secrets()
    return tuple(dict.fromkeys(s for s in found if s))


def run_and_report(context: dg.OpExecutionContext, run: Coroutine[Any, Any, RunSummary]) -> dict:
    """Run the pipeline; its summary becomes the op's output metadata, or, when it failed, the
    metadata of the step's failure."""
    secrets = known_secrets(context)
    try:
        summary = asyncio.run(run)
    except UnsafeConfiguration as exc:
        raise dg.Failure(description=redact(str(exc), secrets), allow_retries=False) from None
    except PipelineError as exc:
        _log(context, exc.summary, secrets)
        raise dg.Failure(
            description=redact(str(exc), secrets),
            metadata=_metadata(exc.summary, secrets),
            allow_retries=False,
        ) from None
    except Exception as exc:
        described = f"{type(exc).__name__}: {exc}"
        if redact(described, secrets) == described:
            raise
        # the error quotes a credential: fail with its scrubbed text, never its traceback
        raise dg.Failure(description=redact(described, secrets), allow_retries=False) from None
    _log(context, summary, secrets)
    refused = credentials_stop(summary)
    if refused is not None:
        raise dg.Failure(
            description=redact(refused, secrets),
            metadata=_metadata(summary, secrets),
            allow_retries=False,
        )
    context.add_output_metadata(_metadata(summary, secrets))
    return _clean(summary.as_metadata(), secrets)


def _clean(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` (the summary's metadata) with every string in it redacted."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {_clean(k, secrets): _clean(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v, secrets) for v in value]
    return value


def _log(context: dg.OpExecutionContext, summary: RunSummary, secrets: tuple[str, ...]) -> None:
    def say(level, text: str) -> None:
        level(redact(text, secrets))

    for alert in summary.alerts:
        say(context.log.error, alert)
    if summary.paused_until:
        say(
            context.log.warning,
            f"gateway {summary.gateway} paused until {summary.paused_until.isoformat()}",
        )
    if summary.stopped_because:
        say(context.log.warning, f"{summary.gateway}: stopped sending: {summary.stopped_because}")
    context.log.info(
        f"{summary.gateway}: claimed {summary.claimed}, succeeded {summary.succeeded}, retry "
        f"scheduled {summary.retry_scheduled}, dead-lettered {summary.dead}, held {summary.held}, "
        f"handed back unsent {summary.released}, interrupted {summary.interrupted}"
    )


def _metadata(summary: RunSummary, secrets: tuple[str, ...] = ()) -> dict:
    metadata = _clean(summary.as_metadata(), secrets)
    counts = [(k, v) for k, v in metadata.items() if isinstance(v, int) and not isinstance(v, bool)]
    table = "| outcome | count |\n|---|---:|\n" + "\n".join(f"| {k} | {v} |" for k, v in counts)
    return {
        **{k: v for k, v in metadata.items() if not isinstance(v, dict | list)},
        "errors_by_type": dg.MetadataValue.json(metadata["errors_by_type"]),
        "summary": dg.MetadataValue.md(table),
    }
