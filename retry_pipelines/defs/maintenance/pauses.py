"""Lift a gateway pause (a rate limit or a failed token) before it ends, once the cause is fixed.

The sensors and schedules skip a paused gateway until the pause ends; this admin job ends it now,
audited like every admin action."""

from enum import Enum

import dagster as dg
from pydantic import Field

from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.actor import audit
from retry_pipelines.lib.admin import AdminConfig, admin_action
from retry_pipelines.store import pauses


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

    def resume(actor, now) -> str | None:
        pause = pauses.current_pause(db.engine, gateway, now=now)
        pauses.resume(db.engine, gateway, now=now)
        lifted = {"paused_until": pause.until.isoformat(), "reason": pause.reason} if pause else {}
        with db.engine.begin() as conn:
            audit(
                conn,
                actor,
                "resume_gateway",
                gateway,
                "paused" if pause else None,
                "resumed",
                now,
                details=lifted,
                entity="gateway",
            )
        return lifted.get("paused_until")

    until = admin_action(
        context,
        config,
        db,
        resume,
        lambda until: {"gateway": gateway, "was_paused_until": until or "not paused"},
    )
    context.log.info(f"gateway {gateway} resumed" + (f" (paused until {until})" if until else ""))
    return until


@dg.job(description="Resume a paused gateway (fbr or paypal) now (admin; audited).")
def resume_gateway():
    resume_one_gateway()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[resume_gateway])
