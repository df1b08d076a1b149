"""How an alert sensor's tick goes, the same for every alert sensor: skip while the webhook is not
configured; read the events after the cursor (on a first tick, only recent ones); send each
event's alert in order, moving the cursor past each event handled, within a time budget."""

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import dagster as dg

from retry_pipelines.alerts import Alert, Delivery, send
from retry_pipelines.defs.alerts.resources import AlertWebhookResource

Event = TypeVar("Event")

TICK_BUDGET_SECONDS = 30.0
"""No new delivery starts after this long in one tick: with one delivery's worst case (3
attempts of at most 5 s, plus backoff) the tick still ends well within Dagster's 60 s sensor
timeout, so its cursor is saved and a slow receiver cannot make every tick resend the same
alerts."""
FIRST_TICK_LOOKBACK = timedelta(hours=24)
"""With no cursor yet (a new or reset sensor), only events this recent are alerted on, so
switching the sensor on does not replay the instance's whole history."""


def deliver(
    context: dg.SensorEvaluationContext, webhook: AlertWebhookResource, alert: Alert
) -> Delivery | dg.SkipReason:
    """Send ``alert``, logging the outcome; a skip when the webhook is not configured."""
    settings = webhook.settings()
    if settings is None:
        return dg.SkipReason(webhook.not_configured_reason())
    delivery = send(alert, settings, secrets=webhook.known_secrets())
    message = f"alert {alert.id} to {settings.destination}: {delivery.describe()}"
    (context.log.info if delivery.delivered else context.log.error)(message)
    return delivery


def send_in_order(
    context: dg.SensorEvaluationContext,
    webhook: AlertWebhookResource,
    pending: Iterable[tuple[int, Alert | None]],
    done: str,
) -> dg.SkipReason:
    """Send each event's alert (``None``: nothing to send) in order, moving the cursor past each
    event handled. Stops with the cursor before an event whose alert was not delivered (the next
    tick sends it again) and once the tick's time budget is spent; else says ``N {done}``."""
    sent = 0
    started = time.monotonic()
    for cursor, alert in pending:
        if alert is not None:
            if time.monotonic() - started > TICK_BUDGET_SECONDS:
                return dg.SkipReason(f"{sent} alert(s) sent; the rest wait for the next tick")
            outcome = deliver(context, webhook, alert)
            if isinstance(outcome, dg.SkipReason):
                return outcome
            if not outcome.delivered:
                return dg.SkipReason(f"{sent} alert(s) sent; {alert.subject}: {outcome.describe()}")
            sent += 1
        context.update_cursor(str(cursor))
    return dg.SkipReason(f"{sent} {done}")


def alert_tick(
    context: dg.SensorEvaluationContext,
    webhook: AlertWebhookResource,
    *,
    read: Callable[[int | None, datetime | None], Sequence[Event]],
    alerts: Callable[[Sequence[Event]], Iterable[tuple[int, Alert | None]]],
    none_new: str,
    done: Callable[[int], str],
) -> dg.SkipReason:
    """One tick of an alert sensor whose cursor is the id of the last event handled.

    ``read(after, since)`` returns the events after id ``after``, or, with no cursor yet, those
    since ``since``; ``alerts(events)`` pairs each event's id with its alert (or None). The tick
    skips with ``none_new`` when nothing was read, else with ``done(events read)`` after the
    alerts were sent (``send_in_order``)."""
    if webhook.settings() is None:
        return dg.SkipReason(webhook.not_configured_reason())
    after = int(context.cursor) if context.cursor else None
    since = None if after is not None else datetime.now(UTC) - FIRST_TICK_LOOKBACK
    events = read(after, since)
    if not events:
        return dg.SkipReason(none_new)
    return send_in_order(context, webhook, alerts(events), done(len(events)))
