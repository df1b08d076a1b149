"""What a run left for a person (``store.attention``) and what caused a pause
(``store.pauses.pause_kind``), on both backends."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.engine.paypal.recording import PayoutItem, record_batch
from retry_pipelines.store import attention, claims, pauses, tables
from retry_pipelines.store.attempts import record_outcome, start_attempt
from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RUN = "run-aaaa"
LATER_RUN = "run-bbbb"
REFUSED = Failure(ErrorType.VALIDATION, "HS code unknown", error_code="0052")
LOST = Failure(ErrorType.UNKNOWN, "no answer", Delivery.AMBIGUOUS, "BAD_JSON")


def _attempt(engine, queue, item, *, run_id, now, status, failure):
    """One attempt of ``item`` by ``run_id`` that moves it to ``status``."""
    claims.claim(engine, queue, owner="w", limit=1, now=now, max_attempts=9, only_ids=[item])
    attempt = start_attempt(engine, queue, item, owner="w", now=now, run_id=run_id)
    record_outcome(engine, queue, attempt, owner="w", now=now, new_status=status, failure=failure)


def _left(engine, run_id=RUN, **kw):
    kw.setdefault("started", NOW - timedelta(minutes=1))
    kw.setdefault("ended", NOW + timedelta(minutes=10))
    return attention.left_by_run(engine, run_id, **kw)


@pytest.mark.parametrize(
    ("error_type", "kind"),
    [
        (ErrorType.TOKEN_EXPIRED, pauses.CREDENTIALS),
        (ErrorType.RATE_LIMIT, pauses.RATE_LIMIT),
        *(
            (t, pauses.OTHER)
            for t in ErrorType
            if t not in (ErrorType.TOKEN_EXPIRED, ErrorType.RATE_LIMIT)
        ),
    ],
)
def test_a_pause_reason_is_classified_by_the_failure_it_was_written_from(engine, error_type, kind):
    """The recorder stores ``Failure.summary()`` as the reason: read back, it gives the cause,
    whatever the message holds (control characters, a secret, another error type's name)."""
    failure = Failure(error_type, "refused\x00 RATE_LIMIT token=abcd1234secret", error_code="401")
    pauses.pause(
        engine,
        "fbr",
        until=NOW + timedelta(minutes=15),
        reason=failure.summary(),
        now=NOW,
        secrets=("abcd1234secret",),
    )
    [pause] = pauses.paused(engine, now=NOW)
    assert pause.reason.startswith(f"{error_type.value} 401: ")
    assert "abcd1234secret" not in pause.reason
    assert pause.kind == kind == pauses.pause_kind(Failure(error_type, "x").summary())


@pytest.mark.parametrize(
    "reason",
    [None, "", "token refused", "TOKEN_EXPIRED_SOON: x", "token_expired 401: x", "paused by hand"],
)
def test_a_reason_not_written_from_a_failure_is_other(reason):
    assert pauses.pause_kind(reason) == pauses.OTHER


def test_items_a_run_left_held_or_dead_are_counted_and_listed(engine):
    a, b, c, d, e = insert_invoices(engine, 5, now=NOW - timedelta(days=3))
    _attempt(engine, INVOICES, a, run_id=RUN, now=NOW, status="dead", failure=REFUSED)
    _attempt(engine, INVOICES, b, run_id=RUN, now=NOW, status="needs_reconciliation", failure=LOST)
    # Retried by a later run, which dead-letters it: that run's, not this one's.
    _attempt(engine, INVOICES, c, run_id=RUN, now=NOW, status="pending", failure=LOST)
    _attempt(engine, INVOICES, c, run_id=LATER_RUN, now=NOW, status="dead", failure=REFUSED)
    # Another run's; and this run's attempt outside the run's time window.
    _attempt(engine, INVOICES, d, run_id=LATER_RUN, now=NOW, status="dead", failure=REFUSED)
    old = NOW - timedelta(days=2)
    _attempt(engine, INVOICES, e, run_id=RUN, now=old, status="dead", failure=REFUSED)
    [batch] = insert_batches(engine, 1, now=NOW - timedelta(hours=1))
    _attempt(
        engine, PAYOUTS, batch, run_id=RUN, now=NOW, status="needs_reconciliation", failure=LOST
    )

    left = _left(engine)
    assert left.counts == {
        ("fbr", "dead"): 1,
        ("fbr", "needs_reconciliation"): 1,
        ("paypal", "needs_reconciliation"): 1,
    }
    assert left.total == 3
    assert [(i.gateway, i.item_id, i.status) for i in left.items] == [
        ("fbr", a, "dead"),
        ("fbr", b, "needs_reconciliation"),
        ("paypal", batch, "needs_reconciliation"),
    ]
    assert (left.items[0].reference, left.items[0].error_type, left.items[0].error_code) == (
        "INV-0000000",
        "VALIDATION",
        "0052",
    )
    assert (left.items[1].outcome, left.items[1].error_code) == ("failure", "BAD_JSON")
    assert left.items[2].reference == "SB-0000000"
    assert _left(engine, LATER_RUN).counts == {("fbr", "dead"): 2}

    short = _left(engine, limit=1)
    assert (short.total, len(short.items)) == (3, 1)


def test_items_a_sweep_held_are_named_by_id(engine):
    """The sweep keeps the attempt of the run that lost its lease: the sweeping run names them."""
    held, pending = insert_invoices(engine, 2, now=NOW - timedelta(hours=1))
    claims.claim(
        engine, INVOICES, owner="gone", limit=2, now=NOW, max_attempts=9, lease=timedelta(seconds=1)
    )
    start_attempt(engine, INVOICES, held, owner="gone", now=NOW, run_id="crashed")
    result = claims.sweep_expired(engine, INVOICES, now=NOW + timedelta(minutes=1))
    assert (result.interrupted, result.returned) == ((held,), (pending,))

    left = _left(engine, "sweeping-run", swept={"fbr": [held, pending], "paypal": []})
    assert left.counts == {("fbr", "needs_reconciliation"): 1}
    [item] = left.items
    assert (item.item_id, item.outcome, item.error_type) == (held, "interrupted", "UNKNOWN")
    assert _left(engine, "sweeping-run").total == 0


def test_unresolved_payout_items_are_those_of_batches_completed_before_the_horizon(engine):
    recorded = []
    for n, completed in enumerate((NOW - timedelta(days=40), NOW - timedelta(days=2))):
        items = [
            PayoutItem(f"a{n}@example.com", "1.00", "USD", f"c{n}-1"),
            PayoutItem(f"b{n}@example.com", "2.00", "USD", f"c{n}-2"),
        ]
        recorded.append(record_batch(engine, cycle_id=f"cycle-{n}", items=items, now=NOW))
        batch = recorded[-1].id
        with engine.begin() as conn:
            conn.execute(
                update(tables.payout_batches)
                .where(tables.payout_batches.c.id == batch)
                .values(status="completed", completed_at=completed)
            )
            conn.execute(
                update(tables.payout_items)
                .where(tables.payout_items.c.batch_id == batch)
                .values(status="UNCLAIMED", payout_item_id=f"PI-{n}")
            )
            conn.execute(
                update(tables.payout_items)
                .where(tables.payout_items.c.sender_item_id == f"c{n}-2")
                .values(status="SUCCESS")
            )
    found = attention.unresolved_payout_items(
        engine, ("ONHOLD", "PENDING", "UNCLAIMED"), horizon=NOW - timedelta(days=31)
    )
    assert [(i.batch_id, i.sender_item_id, i.status, i.payout_item_id) for i in found] == [
        (recorded[0].id, "c0-1", "UNCLAIMED", "PI-0")
    ]
    assert found[0].sender_batch_id == recorded[0].sender_batch_id
    assert found[0].batch_completed_at == NOW - timedelta(days=40)
