"""``attention_alert_sensor``: alerts for what only a person can settle, each sent once through
the signed webhook. After each run of a job that moves items (``MONITORED_JOBS``) ends (success,
failure or cancel): one ``items_need_attention`` alert if the run left items held or dead
(``store.attention.left_by_run``: counts per gateway and status, up to ``LISTED`` items with
their last error, the worklist link), and one ``reconcile_unresolved`` alert if a reconcile run
reported more unresolved payout items than the threshold *and* some of them became unresolved
since the previous reconcile run (their batch's polling window ended in between), so the same
items are alerted on once, not every 15 minutes. Credentials pauses: ``pause_alerts``.

The sensor reads the instance's run-end events (``RUN_SUCCESS``, ``RUN_FAILURE``,
``RUN_CANCELED``) after its cursor, the storage id of the last one handled: a run ends with one
such event and ids only grow, so each run is handled once, and the cursor passes a run only once
its alerts were delivered (a ``run_status_sensor`` watches one status, and Dagster moves its
cursor past a run whatever the delivery did). Alert ids: ``attention:{run_id}``,
``reconcile-unresolved:{run_id}``. It skips, naming the variable, while the webhook or a setting
of its own is unset or invalid.
"""

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
from pydantic import Field

from retry_pipelines.alerts import Alert
from retry_pipelines.alerts.payload import (
    ITEMS_NEED_ATTENTION,
    RECONCILE_UNRESOLVED,
)
from retry_pipelines.defs.alerts.resources import AlertWebhookResource
from retry_pipelines.defs.resources import DatabaseResource
from retry_pipelines.engine.paypal.reconcile import ITEM_POLL_WINDOW, NON_FINAL_ITEMS
from retry_pipelines.lib.alerting import alert_tick
from retry_pipelines.store import attention

UI_URL_ENV = "RETRY_PIPELINES_UI_URL"
DEFAULT_UI_URL = "http://localhost:3000"
THRESHOLD_ENV = "RETRY_PIPELINES_UNRESOLVED_ALERT_THRESHOLD"
MAX_THRESHOLD = 10_000_000
WORKLIST_ASSET = "operator_worklist"

MONITORED_JOBS = frozenset(
    {
        "retry_failed_invoices",
        "retry_payout_batches",
        "reconcile_payout_batches",
        "release_stuck_locks",
    }
)
RUN_ENDS = {
    dg.DagsterEventType.RUN_SUCCESS: dg.DagsterRunStatus.SUCCESS,
    dg.DagsterEventType.RUN_FAILURE: dg.DagsterRunStatus.FAILURE,
    dg.DagsterEventType.RUN_CANCELED: dg.DagsterRunStatus.CANCELED,
}
"""The events that end a run, and the run status each stands for."""
RUN_BATCH = 20
"""Run-end events read per tick and kind; more wait for the next tick."""
LISTED = 20
"""Items named in one alert (the counts are always exact)."""
MAX_SWEPT_IDS = 10_000
"""Item ids of one sweep looked up per gateway."""
CLOCK_SLACK = timedelta(minutes=10)
"""Margin around a run's start and end when its attempts are looked up by start time (the run's
process and the instance may keep slightly different clocks)."""
STATUS_WORDS = {"needs_reconciliation": "held for reconciliation", "dead": "dead"}


class AttentionAlertsResource(dg.ConfigurableResource):
    """Where the alerts link to and when an unresolved reconcile alerts. Config holds only the
    names of the variables; their values are read at each tick."""

    ui_url_env: str = Field(
        default=UI_URL_ENV,
        description="Name of the variable holding the Dagster UI's address, for the worklist "
        f"and run links in alerts (unset: {DEFAULT_UI_URL}).",
    )
    threshold_env: str = Field(
        default=THRESHOLD_ENV,
        description="Name of the variable holding how many unresolved payout items a reconcile "
        "run may leave without an alert (unset: 0, any item alerts).",
    )

    def ui_url(self) -> str:
        """The Dagster UI's base URL (default ``DEFAULT_UI_URL``); ``ValueError`` naming the
        variable when it is not an http(s) URL."""
        raw = (dg.EnvVar(self.ui_url_env).get_value() or "").strip() or DEFAULT_UI_URL
        shape_ok = raw.startswith(("http://", "https://")) and len(raw) <= 500
        if not shape_ok or any(c.isspace() or not c.isprintable() for c in raw):
            raise ValueError(
                f"{self.ui_url_env} must be the Dagster UI's http(s) address, e.g. "
                f"{DEFAULT_UI_URL}; got {raw[:60]!r}"
            )
        return raw.rstrip("/")

    def unresolved_threshold(self) -> int:
        """Unresolved payout items a reconcile run may leave without an alert (default 0: any
        unresolved item alerts); ``ValueError`` naming the variable when it is not a whole number
        within [0, ``MAX_THRESHOLD``]."""
        raw = (dg.EnvVar(self.threshold_env).get_value() or "").strip()
        if not raw:
            return 0
        if raw.isascii() and raw.isdigit() and int(raw) <= MAX_THRESHOLD:
            return int(raw)
        raise ValueError(
            f"{self.threshold_env} must be a whole number of payout items from 0 to "
            f"{MAX_THRESHOLD} (0: any unresolved item alerts); got {raw[:40]!r}"
        )


def worklist_url(ui_url: str) -> str:
    return f"{ui_url}/assets/{WORKLIST_ASSET}"


# -- which runs ended ------------------------------------------------------------------------------


def finished_runs(
    instance: dg.DagsterInstance, after: int | None, since: datetime | None, limit: int = RUN_BATCH
) -> list[dg.EventLogRecord]:
    """Run-end events after storage id ``after`` (with none, since ``since``), oldest first. Each
    kind is read up to ``limit``; where one kind had more, the merged list stops at its last
    event, so no event of another kind is passed over."""
    found, cut = [], None
    for event_type in RUN_ENDS:
        result = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(
                event_type,
                after_storage_id=after,
                after_timestamp=since.timestamp() if after is None and since else None,
            ),
            limit=limit,
            ascending=True,
        )
        found += result.records
        if result.has_more and result.records:
            last = result.records[-1].storage_id
            cut = last if cut is None else min(cut, last)
    found.sort(key=lambda r: r.storage_id)
    return [r for r in found if cut is None or r.storage_id <= cut]


def step_outputs(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[Any]]:
    """Every output metadata value of the run's steps, by key."""
    values: dict[str, list[Any]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        data = entry.dagster_event.step_output_data if entry.dagster_event else None
        for key, value in (data.metadata if data else {}).items():
            values.setdefault(key, []).append(getattr(value, "value", value))
    return values


def swept_ids(outputs: dict[str, list[Any]]) -> dict[str, list[int]]:
    """The items a lease sweep of the run took back with a request in flight
    (``interrupted_ids``: gateway -> ids, as ``sweep_expired_leases`` reports them)."""
    ids: dict[str, list[int]] = {}
    for value in outputs.get("interrupted_ids", []):
        for gateway, listed in (value if isinstance(value, dict) else {}).items():
            if isinstance(gateway, str) and isinstance(listed, list):
                kept = [i for i in listed if isinstance(i, int) and not isinstance(i, bool)]
                ids.setdefault(gateway, []).extend(kept)
    return {g: v[:MAX_SWEPT_IDS] for g, v in ids.items()}


def unresolved_count(outputs: dict[str, list[Any]]) -> int | None:
    """``items_unresolved`` as a reconcile step reported it, if one did."""
    counts = [v for v in outputs.get("items_unresolved", []) if isinstance(v, int)]
    return max(counts) if counts else None


# -- the alerts --------------------------------------------------------------------------------


def _run_window(record: dg.RunRecord | None, fallback: float) -> tuple[datetime, datetime]:
    """When the run started (or was created) and ended; ``fallback``: its run-end event's time."""
    started = ended = fallback
    if record is not None:
        started = record.start_time or record.create_timestamp.timestamp()
        ended = record.end_time or fallback
    return datetime.fromtimestamp(started, UTC), datetime.fromtimestamp(ended, UTC)


def _run_details(record: dg.EventLogRecord, ui_url: str) -> dict[str, Any]:
    entry = record.event_log_entry
    status = RUN_ENDS.get(entry.dagster_event.event_type) if entry.dagster_event else None
    return {
        "run_id": entry.run_id,
        "job_name": entry.job_name,
        "run_status": status.value if status else None,
        "run_url": f"{ui_url}/runs/{entry.run_id}",
    }


def _counts_text(left: attention.Attention) -> str:
    by_gateway: dict[str, list[str]] = {}
    for (gateway, status), n in sorted(left.counts.items()):
        by_gateway.setdefault(gateway, []).append(f"{n} {STATUS_WORDS.get(status, status)}")
    return "; ".join(f"{g}: {', '.join(parts)}" for g, parts in by_gateway.items())


def attention_alert(
    record: dg.EventLogRecord, left: attention.Attention, ended: datetime, ui_url: str
) -> Alert | None:
    """The run's ``items_need_attention`` alert, or None when it left nothing held or dead."""
    if not left.total:
        return None
    run = _run_details(record, ui_url)
    worklist, unlisted = worklist_url(ui_url), left.total - len(left.items)
    counts: dict[str, dict[str, int]] = {}
    for (gateway, status), n in left.counts.items():
        counts.setdefault(gateway, {})[status] = n
    summary = (
        f"Run {run['run_id']} of {run['job_name']} left {_counts_text(left)}. Each waits for a "
        f"person: open the worklist at {worklist}; its row for each item gives the admin job and "
        "the launchpad config that settles it."
    )
    return Alert(
        id=f"attention:{run['run_id']}",
        kind=ITEMS_NEED_ATTENTION,
        subject=f"{left.total} item(s) held or dead after a {run['job_name']} run",
        summary=summary + (f" {unlisted} more are not listed here." if unlisted > 0 else ""),
        occurred_at=ended,
        details={
            **run,
            "worklist_url": worklist,
            "counts": counts,
            "total": left.total,
            "items": [_item(i) for i in left.items],
            "not_listed": max(unlisted, 0),
        },
    )


def _item(item: attention.HeldOrDead) -> dict[str, Any]:
    return {
        "gateway": item.gateway,
        "id": item.item_id,
        "reference": item.reference,
        "status": item.status,
        "last_outcome": item.outcome,
        "last_error_type": item.error_type,
        "last_error_code": item.error_code,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def unresolved_alert(
    record: dg.EventLogRecord,
    count: int,
    threshold: int,
    items: Sequence[attention.UnresolvedItem],
    ended: datetime,
    ui_url: str,
) -> Alert:
    """The reconcile run's ``reconcile_unresolved`` alert: ``count`` items past the window."""
    run = _run_details(record, ui_url)
    days = ITEM_POLL_WINDOW.days
    summary = (
        f"Reconcile run {run['run_id']} reported {count} payout item(s) still "
        f"{', '.join(NON_FINAL_ITEMS)} more than {days} days after their batch completed "
        f"(alert threshold {threshold}); reconcile no longer polls them. Look each one up on "
        "PayPal by its payout_item_id. RETURNED, REFUNDED, FAILED or BLOCKED there: the payee "
        "was not paid; pay again with repay_payout_batch (batch_id and sender_item_ids below). "
        "SUCCESS: nothing to pay. Still PENDING or ONHOLD: ask PayPal support about the item."
    )
    return Alert(
        id=f"reconcile-unresolved:{run['run_id']}",
        kind=RECONCILE_UNRESOLVED,
        subject=f"{count} payout item(s) still not final after {days} days",
        summary=summary,
        occurred_at=ended,
        details={
            **run,
            "items_unresolved": count,
            "threshold": threshold,
            "items": [{**vars(i), "batch_completed_at": _iso(i.batch_completed_at)} for i in items],
            "not_listed": max(count - len(items), 0),
        },
    )


def run_alerts(
    instance: dg.DagsterInstance,
    db: DatabaseResource,
    record: dg.EventLogRecord,
    *,
    ui_url: str,
    threshold: int,
) -> list[Alert]:
    """What one ended run needs a person for: none, one or both alerts."""
    entry = record.event_log_entry
    if entry.job_name not in MONITORED_JOBS:
        return []
    started, ended = _run_window(instance.get_run_record_by_id(entry.run_id), entry.timestamp)
    outputs = step_outputs(instance, entry.run_id)
    left = attention.left_by_run(
        db.engine,
        entry.run_id,
        started=started - CLOCK_SLACK,
        ended=ended + CLOCK_SLACK,
        swept=swept_ids(outputs),
        limit=LISTED,
    )
    found = [attention_alert(record, left, ended, ui_url)]
    count = unresolved_count(outputs)
    if count is not None and count > threshold:
        previous = previous_run_start(instance, entry.job_name, entry.run_id)
        items = attention.unresolved_payout_items(
            db.engine,
            NON_FINAL_ITEMS,
            horizon=started - ITEM_POLL_WINDOW,
            after=previous - ITEM_POLL_WINDOW if previous else None,
            limit=LISTED,
        )
        if items:  # only items that became unresolved since the previous run alert again
            found.append(unresolved_alert(record, count, threshold, items, ended, ui_url))
    return [a for a in found if a is not None]


def previous_run_start(instance: dg.DagsterInstance, job_name: str, run_id: str) -> datetime | None:
    """When the run of ``job_name`` created before ``run_id`` started (None: there is none)."""
    this = instance.get_run_record_by_id(run_id)
    if this is None:
        return None
    earlier = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, created_before=this.create_timestamp), limit=3
    )
    for record in earlier:
        if record.dagster_run.run_id != run_id:
            started = record.start_time or record.create_timestamp.timestamp()
            return datetime.fromtimestamp(started, UTC)
    return None


def _paired(alerts_of_run: list[Alert], storage_id: int) -> Iterator[tuple[int, Alert | None]]:
    """Cursor positions for a run's alerts: before the run's event until its last alert is
    delivered (a run whose second alert fails is read again; the first is re-sent with its id)."""
    if not alerts_of_run:
        yield storage_id, None
    for n, alert in enumerate(alerts_of_run, start=1):
        yield (storage_id if n == len(alerts_of_run) else storage_id - 1), alert


@dg.sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description=(
        "After each run of retry_failed_invoices, retry_payout_batches, reconcile_payout_batches "
        "or release_stuck_locks ends, post one signed webhook alert if it left items held or dead "
        "(counts, references, last error codes, the operator_worklist link), and one if a "
        "reconcile run left more unresolved payout items than "
        "RETRY_PIPELINES_UNRESOLVED_ALERT_THRESHOLD (default 0); each run is alerted on once."
    ),
)
def attention_alert_sensor(
    context: dg.SensorEvaluationContext,
    db: DatabaseResource,
    alert_webhook: AlertWebhookResource,
    attention_alerts: AttentionAlertsResource,
):
    try:
        ui_url = attention_alerts.ui_url()
        threshold = attention_alerts.unresolved_threshold()
    except ValueError as exc:
        return dg.SkipReason(str(exc))

    def alerts(records: Sequence[dg.EventLogRecord]) -> Iterator[tuple[int, Alert | None]]:
        for record in records:
            found = run_alerts(context.instance, db, record, ui_url=ui_url, threshold=threshold)
            yield from _paired(found, record.storage_id)

    return alert_tick(
        context,
        alert_webhook,
        read=lambda after, since: finished_runs(context.instance, after, since),
        alerts=alerts,
        none_new="no run ended since the last tick",
        done=lambda read: f"attention alert(s) sent; {read} ended run(s) read",
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        sensors=[attention_alert_sensor],
        resources={"attention_alerts": AttentionAlertsResource()},
    )
