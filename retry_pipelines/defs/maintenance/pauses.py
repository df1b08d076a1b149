"""Lift a gateway pause (a rate limit or a failed token) before it ends, once the cause is fixed.

The sensors and schedules skip a paused gateway until the pause ends; this admin job ends it now,
audited in the same transaction (``engine.maintenance.resume_gateway``)."""

from enum import Enum

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine import maintenance
from retry_pipelines.lib.admin import AdminConfig, admin_action
from retry_pipelines.store.pauses import Pause


class Gateway(Enum):
    fbr = "fbr"
    paypal = "paypal"


class ResumeGatewayConfig(AdminConfig):
    """Which gateway to resume now; its pause, if any, ends and is recorded in the audit row."""

    gateway: Gateway = Field(description="The gateway whose pause is lifted: fbr or paypal.")


@dg.op(description="End one gateway's pause now and audit who lifted it, why, and which pause.")
def resume_one_gateway(
    context: dg.OpExecutionContext, config: ResumeGatewayConfig, db: DatabaseResource
) -> str | None:
    gateway = config.gateway.value
    pause = admin_action(
        context,
        config,
        db,
        lambda actor, now: maintenance.resume_gateway(db.engine, actor, gateway, now=now),
        lambda ended: {"gateway": gateway, "was_paused_until": _until(ended) or "not paused"},
    )
    context.log.info(f"gateway {gateway} resumed (paused until {_until(pause) or 'not paused'})")
    return _until(pause)


def _until(pause: Pause | None) -> str | None:
    return pause.until.isoformat() if pause else None


@dg.job(description="Resume a paused gateway (fbr or paypal) now (admin; audited).")
def resume_gateway():
    resume_one_gateway()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[resume_gateway])
