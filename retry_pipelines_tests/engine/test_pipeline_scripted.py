"""The pipeline driven by a scripted, in-process submit step, for both queues on both databases:
each outcome a gateway can give (accepted, transient, rate limit with Retry-After, refused token,
ambiguous timeout, permanent) lands as the item state, attempt row, counted budget, gateway pause
and summary the policy says."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from retry_pipelines.domain.policy import FBR_DEFAULT, PAYPAL_DEFAULT
from retry_pipelines.engine.pipeline import RunOptions, run_pipeline
from retry_pipelines.store import pauses, tables
from retry_pipelines.store.queues import INVOICES, PAYOUTS
from retry_pipelines_tests.support.factories import insert_batches, insert_invoices
from retry_pipelines_tests.support.submitters import (
    ScriptedSubmitter,
    ambiguous_timeout,
    fbr_accepted,
    paypal_created,
    permanent,
    rate_limited,
    token_refused,
    transient,
)

QUEUES = {
    "fbr": (INVOICES, FBR_DEFAULT, insert_invoices, tables.invoice_attempts, "invoice_id"),
    "paypal": (PAYOUTS, PAYPAL_DEFAULT, insert_batches, tables.payout_attempts, "batch_id"),
}
HELD = "needs_reconciliation"


def _run(engine, gateway: str, script: dict, **options):
    """One run of ``gateway``'s queue with the scripted step keyed by item id."""
    queue, policy, *_ = QUEUES[gateway]
    submit = ScriptedSubmitter(script, key=lambda row: row["id"])
    options = RunOptions(**{"batch_size": 10, "max_in_flight": 1, **options})
    summary = asyncio.run(run_pipeline(engine, queue, submit, policy, options))
    return summary, submit


def _items(engine, gateway: str) -> dict[int, dict]:
    t = QUEUES[gateway][0].items
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(select(t)).mappings()}


def _attempts(engine, gateway: str) -> dict[int, list[dict]]:
    _, _, _, table, fk = QUEUES[gateway]
    found: dict[int, list[dict]] = {}
    with engine.connect() as conn:
        for r in conn.execute(select(table).order_by(table.c.id)).mappings():
            found.setdefault(r[fk], []).append(dict(r))
    return found


def _accepted(gateway: str, n: int):
    return (
        fbr_accepted(f"700000{n}DI1747119701593") if gateway == "fbr" else paypal_created(f"PB{n}")
    )


@pytest.mark.parametrize("gateway", ["fbr", "paypal"])
def test_each_item_outcome_lands_as_its_policy_says(engine, gateway):
    now = datetime.now(UTC)
    ok, flaky, lost, refused = QUEUES[gateway][2](engine, 4, now=now)
    script = {
        ok: _accepted(gateway, 1),
        flaky: transient(),
        lost: ambiguous_timeout(),
        refused: permanent(),
    }
    summary, submit = _run(engine, gateway, script)

    assert sorted(submit.calls) == sorted(script)
    assert (summary.claimed, summary.attempted, summary.succeeded) == (4, 4, 1)
    assert summary.dead == 1
    assert summary.by_error_type == {"TRANSIENT": 1, "NETWORK": 1, "PERMANENT": 1}
    assert summary.paused_until is None
    assert not summary.errors
    items, attempts = _items(engine, gateway), _attempts(engine, gateway)

    assert items[ok]["status"] == "submitted"
    if gateway == "fbr":
        assert items[ok]["fbr_invoice_number"] == "7000001DI1747119701593"
    else:
        assert (items[ok]["paypal_batch_id"], items[ok]["paypal_batch_status"]) == (
            "PB1",
            "PENDING",
        )
    assert items[flaky]["status"] == "pending"
    assert items[flaky]["next_attempt_at"] > now
    assert items[refused]["status"] == "dead"
    if gateway == "fbr":  # no idempotency key: a post that may have landed waits for a person
        assert items[lost]["status"] == HELD
        assert (summary.held, summary.retry_scheduled) == (1, 1)
    else:  # PayPal dedupes on the batch's fixed sender_batch_id: resending is safe
        assert items[lost]["status"] == "pending"
        assert (summary.held, summary.retry_scheduled) == (0, 2)
    for item_id in script:
        assert items[item_id]["counted_attempts"] == 1
        assert items[item_id]["lease_owner"] is None
        [attempt] = attempts[item_id]
        assert attempt["attempt_number"] == 1
        assert attempt["counts_against_budget"]
        assert attempt["finished_at"] is not None
    assert attempts[ok][0]["outcome"] == "success"
    for item_id, (error_type, code, delivery) in {
        flaky: ("TRANSIENT", "HTTP_503", "not_delivered"),
        lost: ("NETWORK", "ReadTimeout", "ambiguous"),
        refused: ("PERMANENT", "0052", "not_delivered"),
    }.items():
        attempt = attempts[item_id][0]
        assert attempt["outcome"] == "failure"
        assert (attempt["error_type"], attempt["error_code"], attempt["delivery"]) == (
            error_type,
            code,
            delivery,
        )
    assert pauses.current_pause(engine, gateway, now=now) is None


@pytest.mark.parametrize("gateway", ["fbr", "paypal"])
def test_a_rate_limit_pauses_the_gateway_for_retry_after_without_spending_budget(engine, gateway):
    now = datetime.now(UTC)
    ids = QUEUES[gateway][2](engine, 2, now=now)
    summary, submit = _run(engine, gateway, dict.fromkeys(ids, rate_limited(120)))

    [first] = submit.calls  # the pause stops the run before the other item leaves
    [second] = set(ids) - {first}
    assert summary.by_error_type == {"RATE_LIMIT": 1}
    assert summary.paused_until is not None
    assert timedelta(seconds=110) < summary.paused_until - now < timedelta(seconds=130)
    pause = pauses.current_pause(engine, gateway, now=datetime.now(UTC))
    assert pause is not None
    assert pause.until == summary.paused_until
    items, attempts = _items(engine, gateway), _attempts(engine, gateway)
    assert items[first]["status"] == "pending"
    assert items[first]["counted_attempts"] == 0  # the gateway's fault, not the item's
    [attempt] = attempts[first]
    assert (attempt["error_type"], attempt["counts_against_budget"]) == ("RATE_LIMIT", False)
    assert items[second]["status"] == "pending"
    assert second not in attempts

    again, resumed = _run(engine, gateway, {first: transient(), second: transient()})
    assert resumed.calls == []
    assert again.claimed == 0
    pauses.resume(engine, gateway, now=datetime.now(UTC))
    assert pauses.current_pause(engine, gateway, now=datetime.now(UTC)) is None


@pytest.mark.parametrize("gateway", ["fbr", "paypal"])
def test_a_refused_token_pauses_the_gateway_and_spends_no_budget(engine, gateway):
    now = datetime.now(UTC)
    [item] = QUEUES[gateway][2](engine, 1, now=now)
    summary, _ = _run(engine, gateway, {item: token_refused()})

    policy = QUEUES[gateway][1]
    assert summary.by_error_type == {"TOKEN_EXPIRED": 1}
    assert summary.paused_until is not None
    expected = timedelta(seconds=policy.token_pause)
    assert (
        expected - timedelta(seconds=30)
        < summary.paused_until - now
        <= expected + timedelta(seconds=30)
    )
    assert pauses.current_pause(engine, gateway, now=datetime.now(UTC)) is not None
    row = _items(engine, gateway)[item]
    assert (row["status"], row["counted_attempts"]) == ("pending", 0)
    [attempt] = _attempts(engine, gateway)[item]
    assert (attempt["error_type"], attempt["counts_against_budget"]) == ("TOKEN_EXPIRED", False)


@pytest.mark.parametrize("gateway", ["fbr", "paypal"])
def test_the_last_counted_attempt_dead_letters_or_holds(engine, gateway):
    """A transient failure on the last attempt of the budget dead-letters the item; PayPal holds
    a batch an earlier attempt may have created instead (it may exist on PayPal)."""
    now = datetime.now(UTC)
    _queue, policy, insert, *_ = QUEUES[gateway]
    spent = policy.max_attempts - 1
    first, second = insert(engine, 2, now=now)
    _spend(engine, gateway, [first, second], spent, now)
    script = {first: transient(), second: ambiguous_timeout()}
    summary, _ = _run(engine, gateway, script)

    items = _items(engine, gateway)
    assert items[first]["status"] == "dead"
    assert items[first]["counted_attempts"] == policy.max_attempts
    assert items[second]["status"] == HELD  # FBR holds any ambiguous post; PayPal at the end
    assert (summary.dead, summary.held) == (1, 1)


def _spend(engine, gateway: str, ids: list[int], spent: int, now: datetime) -> None:
    """Mark ``spent`` counted attempts as already made, long enough ago for the cooldown."""
    t = QUEUES[gateway][0].items
    earlier = now - timedelta(hours=1)
    with engine.begin() as conn:
        conn.execute(
            t.update()
            .where(t.c.id.in_(ids))
            .values(counted_attempts=spent, attempt_count=spent, last_attempt_at=earlier)
        )
