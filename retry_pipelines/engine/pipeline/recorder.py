"""Recording one request's outcome: the attempt row, the item's next state, the run's counts, and
the gateway pause a rate limit or refused credentials call for."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Engine, RowMapping

from retry_pipelines.domain.errors import ErrorType, Failure
from retry_pipelines.domain.policy import MAX_WAIT, Decision, Outcome, RetryPolicy
from retry_pipelines.domain.scrub import scrub
from retry_pipelines.engine.pipeline.clock import Clock
from retry_pipelines.engine.pipeline.gate import FINAL, SendGate
from retry_pipelines.engine.pipeline.model import RunSummary, Submission
from retry_pipelines.engine.pipeline.writer import AttemptWriter
from retry_pipelines.store import pauses
from retry_pipelines.store.attempts import StartedAttempt
from retry_pipelines.store.queues import WorkQueue

_COUNTER = {Outcome.RETRY: "retry_scheduled", Outcome.DEAD: "dead", Outcome.HOLD: "held"}


class Recorder:
    def __init__(
        self,
        engine: Engine,
        queue: WorkQueue,
        policy: RetryPolicy,
        *,
        writer: AttemptWriter,
        gate: SendGate,
        summary: RunSummary,
        clock: Clock,
        rng: Callable[[], float],
        secrets: tuple[str, ...],
        wait_while_paused: bool,
    ) -> None:
        self.engine, self.queue, self.policy, self.writer = engine, queue, policy, writer
        self.gate, self.summary, self.clock, self.rng = gate, summary, clock, rng
        self.secrets, self.wait_while_paused = secrets, wait_while_paused

    def hold_for(self, failure: Failure | None) -> None:
        """Before the request's slot frees: a rate limit holds every send of the run at once, for
        the ``Retry-After`` asked (or a second, until the policy says how long to pause)."""
        if failure is not None and failure.error_type is ErrorType.RATE_LIMIT:
            seconds = min(failure.retry_after if failure.retry_after is not None else 1.0, MAX_WAIT)
            self.gate.hold(self.clock.now() + timedelta(seconds=seconds))

    async def record(
        self, row: RowMapping, attempt: StartedAttempt, result: Submission, *, gateway_down: bool
    ) -> None:
        now = self.clock.now()
        common = {
            "now": now,
            "http_status": result.http_status,
            "latency_ms": result.latency_ms,
            "secrets": self.secrets,
        }
        if result.failure is None:
            fields = {"submitted_at": now, **result.fields}
            await self._write(attempt, new_status="submitted", fields=fields, **common)
            self.summary.succeeded += 1
            return
        failure = result.failure
        self.summary.by_error_type[failure.error_type.value] += 1
        decision = self.policy.decide(
            failure,
            attempts_counted=row["counted_attempts"],
            created_at=row["created_at"],
            now=now,
            u=self.rng(),
            earlier_ambiguous=result.earlier_ambiguous,
            gateway_down=gateway_down,
        )
        new_status = {
            Outcome.RETRY: self.queue.ready,
            Outcome.DEAD: "dead",
            Outcome.HOLD: self.queue.held_status,
        }[decision.outcome]
        await self._write(
            attempt,
            new_status=new_status,
            failure=failure,
            counts_against_budget=decision.counts_against_budget,
            next_attempt_at=decision.next_attempt_at,
            reason=decision.reason,
            **common,
        )
        self.summary.count(_COUNTER[decision.outcome])
        if decision.pause_gateway_until is not None:
            await self._pause(failure, decision)

    async def _write(self, attempt: StartedAttempt, **kwargs) -> None:
        if not await self.writer.record(attempt, **kwargs):
            self.summary.lease_lost += 1

    async def _pause(self, failure: Failure, decision: Decision) -> None:
        until = decision.pause_gateway_until
        reason = scrub(failure.summary(), self.secrets) or ""
        if failure.error_type is ErrorType.TOKEN_EXPIRED:
            # Only a 401 is answered by re-reading the credentials and sending again; a 403
            # (wrong token or environment) or a token that cannot be had is refused at once.
            after = " after a reload" if failure.http_status == 401 else ""
            self.summary.alerts.append(
                f"{self.queue.name}: credentials refused{after} ({reason}); "
                f"gateway paused until {until.isoformat()}"
            )
        if until <= self.now():  # e.g. ``Retry-After: 0``: nothing to wait for or to store
            return
        self.gate.hold(until)
        await asyncio.to_thread(
            pauses.pause,
            self.engine,
            self.queue.name,
            until=until,
            reason=reason,
            now=self.now(),
            secrets=self.secrets,
        )
        self.note_pause(until, reason)
        if not self.wait_while_paused:
            await self.gate.block(FINAL, f"gateway paused until {until.isoformat()}: {reason}")

    def note_pause(self, until, reason: str) -> None:
        s = self.summary
        if s.paused_until is None or until > s.paused_until:
            s.paused_until, s.pause_reason = until, reason

    def now(self):
        return self.clock.now()
