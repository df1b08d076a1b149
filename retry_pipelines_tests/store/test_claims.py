"""Claim, renew, release, finish and sweep, on both backends."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from retry_pipelines.domain.errors import Delivery, ErrorType, Failure
from retry_pipelines.store import claims, tables
from retry_pipelines.store.attempts import LeaseLost, record_outcome, start_attempt
from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _claim(engine, owner="w1", limit=10, now=NOW, queue=INVOICES, **kw):
    kw.setdefault("max_attempts", 6)
    return claims.claim(engine, queue, owner=owner, limit=limit, now=now, **kw)


def _statuses(engine, table=tables.invoices):
    with engine.connect() as conn:
        return dict(conn.execute(select(table.c.id, table.c.status)).all())


def test_claims_only_due_items_in_due_order(engine):
    due = insert_invoices(engine, 3, now=NOW)
    insert_invoices(engine, 2, now=NOW, due_in=timedelta(minutes=5), start=100)
    rows = _claim(engine)
    # insert_invoices makes later rows due a microsecond earlier: due order is reversed id order.
    assert [r["id"] for r in rows] == sorted(due, reverse=True)
    assert set(rows[0]) >= {"id", "reference", "payload", "counted_attempts", "created_at"}
    with engine.connect() as conn:
        held = conn.execute(
            select(
                tables.invoices.c.status,
                tables.invoices.c.lease_owner,
                tables.invoices.c.lease_expires_at,
            ).where(tables.invoices.c.id.in_(due))
        ).all()
    assert set(held) == {("processing", "w1", NOW + INVOICES.lease)}


def test_limit_and_no_double_claim(engine):
    ids = insert_invoices(engine, 5, now=NOW)
    first = _claim(engine, owner="a", limit=3)
    second = _claim(engine, owner="b", limit=3)
    assert len(first) == 3
    assert len(second) == 2
    assert {r["id"] for r in first} | {r["id"] for r in second} == set(ids)
    assert _claim(engine, owner="c") == []


@pytest.mark.parametrize(
    ("status", "counted", "created_ago", "claimable"),
    [
        ("pending", 0, timedelta(0), True),
        ("pending", 5, timedelta(0), True),  # 5 < max_attempts 6: one attempt left
        ("pending", 6, timedelta(0), False),  # budget spent
        ("pending", 0, timedelta(hours=73), False),  # past the 72 h age limit
        ("dead", 0, timedelta(0), False),
        ("submitted", 0, timedelta(0), False),
        ("needs_reconciliation", 0, timedelta(0), False),
    ],
)
def test_eligibility_inside_the_claim(engine, status, counted, created_ago, claimable):
    insert_invoices(
        engine, 1, now=NOW, status=status, counted_attempts=counted, created_at=NOW - created_ago
    )
    rows = _claim(engine, max_age=timedelta(hours=72))
    assert bool(rows) is claimable


def test_live_lease_blocks_and_expired_lease_is_swept_not_stolen(engine):
    [item] = insert_invoices(engine, 1, now=NOW)
    [row] = _claim(engine, owner="a", lease=timedelta(seconds=30))
    later = NOW + timedelta(seconds=31)
    assert _claim(engine, owner="b", now=later) == []  # processing rows are never re-claimed
    result = claims.sweep_expired(engine, INVOICES, now=later)
    assert result.returned == (item,)
    assert result.interrupted == ()
    assert [r["id"] for r in _claim(engine, owner="b", now=later)] == [row["id"]]


def test_sweep_before_expiry_returns_nothing(engine):
    insert_invoices(engine, 4, now=NOW)
    _claim(engine, owner="a", lease=timedelta(seconds=30))
    assert claims.count_expired(engine, INVOICES, now=NOW + timedelta(seconds=30)) == 0
    assert claims.sweep_expired(engine, INVOICES, now=NOW + timedelta(seconds=30)).count == 0
    assert set(_statuses(engine).values()) == {"processing"}
    assert claims.count_expired(engine, INVOICES, now=NOW + timedelta(seconds=31)) == 4


def test_renew_extends_only_the_owners_live_leases(engine):
    ids = insert_invoices(engine, 2, now=NOW)
    _claim(engine, owner="a", lease=timedelta(seconds=30))
    at = NOW + timedelta(seconds=20)
    assert claims.renew(engine, INVOICES, ids, owner="b", now=at) == 0
    assert claims.renew(engine, INVOICES, ids, owner="a", now=at, lease=timedelta(minutes=1)) == 2
    assert claims.sweep_expired(engine, INVOICES, now=NOW + timedelta(seconds=40)).count == 0
    expired_at = NOW + timedelta(seconds=81)
    assert claims.renew(engine, INVOICES, ids, owner="a", now=expired_at) == 0


def test_release_returns_items_unspent(engine):
    ids = insert_invoices(engine, 3, now=NOW)
    _claim(engine, owner="a")
    assert claims.release(engine, INVOICES, ids, owner="b", now=NOW) == 0
    assert claims.release(engine, INVOICES, ids, owner="a", now=NOW) == 3
    rows = _claim(engine, owner="b")
    assert {r["counted_attempts"] for r in rows} == {0}


def test_finish_checks_the_state_machine_and_the_lease(engine):
    ids = insert_invoices(engine, 2, now=NOW)
    _claim(engine, owner="a")
    with pytest.raises(ValueError, match="processing -> abandoned"):
        claims.finish(engine, INVOICES, ids, owner="a", status="abandoned", now=NOW)
    assert claims.finish(engine, INVOICES, ids, owner="b", status="submitted", now=NOW) == 0
    assert claims.finish(engine, INVOICES, ids, owner="a", status="submitted", now=NOW) == 2
    assert set(_statuses(engine).values()) == {"submitted"}


@pytest.mark.parametrize(
    ("queue", "expected_status"), [(INVOICES, "needs_reconciliation"), (PAYOUTS, "pending")]
)
def test_sweep_holds_fbr_posts_in_flight_but_resends_paypal(engine, queue, expected_status):
    insert = insert_invoices if queue is INVOICES else insert_batches
    table = queue.items
    ids = insert(engine, 2, now=NOW)
    rows = _claim(engine, owner="a", queue=queue, lease=timedelta(seconds=30))
    in_flight = start_attempt(engine, queue, rows[0]["id"], owner="a", now=NOW)
    result = claims.sweep_expired(engine, queue, now=NOW + timedelta(minutes=1))
    assert result.interrupted == (rows[0]["id"],)
    assert set(result.returned) == set(ids) - {rows[0]["id"]}
    assert _statuses(engine, table)[rows[0]["id"]] == expected_status
    with engine.connect() as conn:
        attempt = conn.execute(
            select(queue.attempts).where(queue.attempts.c.id == in_flight.attempt_id)
        ).one()
    assert attempt.outcome == "interrupted"
    assert attempt.delivery == "ambiguous"


@pytest.mark.parametrize(
    ("spent_before", "expected"), [(2, "pending"), (3, "needs_reconciliation")]
)
def test_paypal_batch_interrupted_on_its_last_allowed_attempt_is_held(
    engine, spent_before, expected
):
    """Budget 4 (PayPal's default: 3 retries). With 2 spent, the interrupted attempt is the 3rd:
    the batch goes back to the queue. With 3 spent, it is the 4th and last: a pending batch could
    never be claimed again, and PayPal may have it, so it is held for a manual retry."""
    from sqlalchemy import update

    from retry_pipelines.engine.maintenance import sweep

    [batch] = insert_batches(engine, 1, now=NOW)
    with engine.begin() as conn:
        conn.execute(update(tables.payout_batches).values(counted_attempts=spent_before))
    _claim(engine, owner="a", queue=PAYOUTS, lease=timedelta(seconds=30))
    start_attempt(engine, PAYOUTS, batch, owner="a", now=NOW)
    result = sweep(engine, PAYOUTS, now=NOW + timedelta(minutes=1))
    assert result.interrupted == (batch,)
    assert _statuses(engine, tables.payout_batches)[batch] == expected
    claimable = _claim(engine, owner="b", queue=PAYOUTS, now=NOW + timedelta(hours=1))
    assert [r["id"] for r in claimable] == ([batch] if expected == "pending" else [])


def test_release_never_hands_back_an_item_whose_request_is_in_flight(engine):
    ids = insert_invoices(engine, 3, now=NOW)
    rows = _claim(engine, owner="a", lease=timedelta(seconds=30))
    started = rows[0]["id"]
    start_attempt(engine, INVOICES, started, owner="a", now=NOW)
    assert claims.release(engine, INVOICES, ids, owner="a", now=NOW) == 2
    assert _statuses(engine)[started] == "processing"
    # The sweep settles it once its lease has expired: held, as its post may have gone out.
    swept = claims.sweep_expired(engine, INVOICES, now=NOW + timedelta(minutes=1))
    assert swept.interrupted == (started,)
    assert _statuses(engine)[started] == "needs_reconciliation"


def test_attempt_and_next_state_are_recorded_together(engine):
    [item] = insert_invoices(engine, 1, now=NOW)
    _claim(engine, owner="a")
    attempt = start_attempt(engine, INVOICES, item, owner="a", now=NOW, run_id="run-1")
    assert attempt.attempt_number == 1
    failure = Failure(
        ErrorType.RATE_LIMIT, "slow down, Bearer abcdefgh12345", Delivery.NOT_DELIVERED, "429"
    )
    retry_at = NOW + timedelta(minutes=2)
    record_outcome(
        engine,
        INVOICES,
        attempt,
        owner="a",
        now=NOW + timedelta(seconds=1),
        new_status="pending",
        failure=failure,
        counts_against_budget=False,
        next_attempt_at=retry_at,
        http_status=429,
        latency_ms=12.5,
    )
    with engine.connect() as conn:
        inv = conn.execute(select(tables.invoices)).one()
        att = conn.execute(select(tables.invoice_attempts)).one()
    assert (inv.status, inv.attempt_count, inv.counted_attempts) == ("pending", 1, 0)
    assert inv.next_attempt_at == retry_at
    assert inv.lease_owner is None
    assert inv.last_error_type == "RATE_LIMIT"
    assert (att.outcome, att.http_status, att.run_id, att.counts_against_budget) == (
        "failure",
        429,
        "run-1",
        False,
    )
    assert "abcdefgh12345" not in att.error_message
    assert "abcdefgh12345" not in inv.last_error_message


def test_a_worker_that_lost_its_lease_cannot_move_the_item(engine):
    [item] = insert_invoices(engine, 1, now=NOW)
    _claim(engine, owner="a", lease=timedelta(seconds=30))
    attempt = start_attempt(engine, INVOICES, item, owner="a", now=NOW)
    claims.sweep_expired(engine, INVOICES, now=NOW + timedelta(minutes=1))
    with pytest.raises(LeaseLost, match="no longer holds"):
        record_outcome(
            engine,
            INVOICES,
            attempt,
            owner="a",
            now=NOW + timedelta(minutes=2),
            new_status="submitted",
            fields={"fbr_invoice_number": "1234567DI1"},
        )
    with engine.connect() as conn:
        inv = conn.execute(select(tables.invoices)).one()
        att = conn.execute(select(tables.invoice_attempts)).one()
    assert inv.status == "needs_reconciliation"
    assert inv.fbr_invoice_number is None
    assert att.outcome == "success"  # the real outcome is kept for the operator who reconciles
    with pytest.raises(LeaseLost):
        start_attempt(engine, INVOICES, item, owner="a", now=NOW + timedelta(minutes=2))
