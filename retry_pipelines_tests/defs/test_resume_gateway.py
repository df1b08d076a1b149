"""An operator lifts a gateway pause from the launchpad: the pause ends and the audit row says who,
why and which pause."""

from datetime import UTC, datetime, timedelta

import dagster as dg
from sqlalchemy import select

from retry_pipelines.defs.maintenance.pauses import resume_gateway
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.store import pauses, tables


def _resume(url, **config):
    return resume_gateway.execute_in_process(
        run_config={"ops": {"resume_one_gateway": {"config": config}}},
        resources={"db": DatabaseResource(url=url)},
        raise_on_error=False,
    )


def test_resume_lifts_the_pause_and_audits_it(sqlite_url, sqlite_engine):
    now = datetime.now(UTC)
    until = now + timedelta(hours=1)
    pauses.pause(sqlite_engine, "fbr", until=until, reason="TOKEN_EXPIRED 401", now=now)
    result = _resume(sqlite_url, gateway="fbr", admin_id="ops-amna", reason="token renewed")
    assert result.success
    assert pauses.current_pause(sqlite_engine, "fbr", now=datetime.now(UTC)) is None
    with sqlite_engine.connect() as conn:
        [audit] = conn.execute(select(tables.admin_audit)).mappings()
    assert (audit["action"], audit["entity_type"], audit["entity_id"]) == (
        "resume_gateway",
        "gateway",
        "fbr",
    )
    assert (audit["from_status"], audit["to_status"], audit["run_id"]) == (
        "paused",
        "resumed",
        result.run_id,
    )
    assert audit["details"]["reason"] == "TOKEN_EXPIRED 401"


def test_resume_refuses_an_actor_without_a_reason(sqlite_url, sqlite_engine):
    now = datetime.now(UTC)
    pauses.pause(sqlite_engine, "paypal", until=now + timedelta(hours=1), reason="429", now=now)
    result = _resume(sqlite_url, gateway="paypal", admin_id="ops-amna", reason="")
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "reason is required" in failure.step_failure_data.error.cause.message
    assert pauses.current_pause(sqlite_engine, "paypal", now=datetime.now(UTC)) is not None
