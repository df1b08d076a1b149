"""The demo's printed summary: counts by state before and after, and whether they add up."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

Counts = dict[tuple[str, str], int]
"""(state, last error type) -> rows, as ``store.summaries`` counts them."""


def totals(counts: Counts) -> dict[str, int]:
    by_state: dict[str, int] = {}
    for (status, _), n in counts.items():
        by_state[status] = by_state.get(status, 0) + n
    return by_state


def progress(counts: Counts, left: Collection[str], noun: str, left_as: str = "left") -> str:
    """``"143 invoices done, 157 left"``: the slice's items outside and inside ``left``."""
    by_state = totals(counts)
    remaining = sum(n for status, n in by_state.items() if status in left)
    return f"{sum(by_state.values()) - remaining} {noun} done, {remaining} {left_as}"


def render(title: str, counts: Counts, noun: str = "invoices") -> str:
    lines = [title, f"  {'state':<22} {'last error type':<16} {noun:>8}"]
    for (status, error), n in sorted(counts.items()):
        lines.append(f"  {status:<22} {error:<16} {n:>8}")
    by_state = sorted(totals(counts).items())
    lines.append("  totals: " + ", ".join(f"{s} {n}" for s, n in by_state))
    return "\n".join(lines)


def render_items(title: str, counts: dict[str, int]) -> str:
    return f"{title}: " + ", ".join(f"{s} {n}" for s, n in sorted(counts.items()))


def fbr_report(after: Counts, stats: dict[str, Any], seeded: int) -> tuple[str, bool]:
    """The FBR sandbox's counts and the reconciliation line; True if every invoice is
    accounted for."""
    by_state = totals(after)
    accounted = sum(by_state.values())
    reconciled = accounted == seeded
    text = (
        f"sandbox: {stats['requests']} requests, {stats['processed']} invoices issued a number, "
        f"{stats['processed_more_than_once']} processed more than once\n"
        f"reconciliation: submitted {by_state.get('submitted', 0)} "
        f"+ dead {by_state.get('dead', 0)} "
        f"+ held {by_state.get('needs_reconciliation', 0)} + pending {by_state.get('pending', 0)} "
        f"= {accounted} {'==' if reconciled else '!='} seeded {seeded}"
    )
    return text, reconciled


def paypal_report(
    after: Counts,
    stats: dict[str, Any],
    *,
    created: dict[str, str],
    ours: dict[str, tuple[str, str | None]],
    recorded: int,
    items_polled: int,
    open_items: int,
) -> tuple[str, bool]:
    """The PayPal sandbox's counts, where PayPal's batches ended up here, and the
    reconciliation line; True if every batch is accounted for and none was lost."""
    same_id = sum(1 for s, p in created.items() if ours.get(s) == ("completed", p))
    held = sum(1 for s in created if ours.get(s, ("",))[0] == "needs_reconciliation")
    lost = len(created) - same_id - held
    by_state = totals(after)
    accounted = sum(by_state.values())
    text = (
        f"sandbox: {stats['requests']} requests, {stats['batches_created']} batches created for "
        f"{stats['distinct_sender_batch_ids']} sender_batch_ids, "
        f"{stats['sender_batch_ids_created_more_than_once']} created more than once; "
        f"faults {stats['by_fault']}\n"
        f"items polled one by one after their batch completed: {items_polled}; "
        f"{open_items} not final yet stay polled by every reconcile run until final or 31 days "
        f"(PayPal returns unclaimed funds after 30)\n"
        f"PayPal's batches: {same_id} completed here with the same PayPal batch id + {held} held "
        f"= {same_id + held} {'==' if not lost else '!='} created {len(created)}\n"
        f"reconciliation: completed {by_state.get('completed', 0)} "
        f"+ dead {by_state.get('dead', 0)} "
        f"+ held {by_state.get('needs_reconciliation', 0)} + pending {by_state.get('pending', 0)} "
        f"+ submitted {by_state.get('submitted', 0)} = {accounted} "
        f"{'==' if accounted == recorded else '!='} recorded {recorded}"
    )
    return text, accounted == recorded and not lost
