"""State machines of invoices, payout batches and payout items.

Each machine lists the transitions the system makes on its own and, separately, the ones only an
operator may make through an audited admin job. A state with no automatic way out is terminal:
only an allowed admin override moves an item out of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class IllegalTransition(ValueError):
    """A status change the state machine does not allow."""


class InvoiceStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    SUBMITTED = "submitted"
    NEEDS_RECONCILIATION = "needs_reconciliation"
    DEAD = "dead"
    ABANDONED = "abandoned"


class BatchStatus(StrEnum):
    PENDING = "pending"
    """Recorded (phase 1) and due for submission or a retry."""
    PROCESSING = "processing"
    """Claimed by a worker that is submitting it (phase 2)."""
    SUBMITTED = "submitted"
    """Accepted by PayPal; reconciliation polls it until PayPal reports a final status."""
    COMPLETED = "completed"
    DENIED = "denied"
    CANCELED = "canceled"
    DEAD = "dead"
    NEEDS_RECONCILIATION = "needs_reconciliation"
    """Retries ran out after an attempt PayPal may have processed: the batch may exist on PayPal,
    so it is held, never dead-lettered. A manual retry adopts it (the same ``sender_batch_id`` is
    refused as a duplicate that links to the original, for 30 days) or an operator cancels it."""


class ItemStatus(StrEnum):
    QUEUED = "queued"
    """Recorded locally; PayPal has not reported on it yet."""
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    UNCLAIMED = "UNCLAIMED"
    RETURNED = "RETURNED"
    ONHOLD = "ONHOLD"
    BLOCKED = "BLOCKED"
    REFUNDED = "REFUNDED"
    REVERSED = "REVERSED"


def _edges(spec: Mapping[StrEnum, set[StrEnum]]) -> dict[str, frozenset[str]]:
    return {str(k): frozenset(str(v) for v in vs) for k, vs in spec.items()}


@dataclass(frozen=True)
class StateMachine:
    name: str
    states: frozenset[str]
    automatic: Mapping[str, frozenset[str]]
    admin: Mapping[str, frozenset[str]]

    @classmethod
    def build(
        cls,
        name: str,
        states: type[StrEnum],
        automatic: Mapping[StrEnum, set[StrEnum]],
        admin: Mapping[StrEnum, set[StrEnum]],
    ) -> StateMachine:
        machine = cls(name, frozenset(s.value for s in states), _edges(automatic), _edges(admin))
        unknown = {
            s
            for edges in (machine.automatic, machine.admin)
            for k, vs in edges.items()
            for s in {k, *vs}
        } - machine.states
        if unknown:
            raise ValueError(f"{name}: transitions name unknown states {sorted(unknown)}")
        return machine

    @property
    def terminal(self) -> frozenset[str]:
        return frozenset(s for s in self.states if not self.automatic.get(s))

    def can(self, src: str, dst: str, *, admin: bool = False) -> bool:
        if dst in self.automatic.get(src, frozenset()):
            return True
        return admin and dst in self.admin.get(src, frozenset())

    def require(self, src: str, dst: str, *, admin: bool = False) -> None:
        for state in (src, dst):
            if state not in self.states:
                raise IllegalTransition(
                    f"{self.name}: unknown status {state!r}; "
                    f"known: {', '.join(sorted(self.states))}"
                )
        if self.can(src, dst, admin=admin):
            return
        allowed = set(self.automatic.get(src, ()))
        if admin:
            allowed |= self.admin.get(src, frozenset())
        allowed = sorted(allowed)
        kind = "an admin override" if admin else "an automatic transition"
        raise IllegalTransition(
            f"{self.name}: {src} -> {dst} is not {kind}; from {src} "
            f"{'allowed: ' + ', '.join(allowed) if allowed else 'none is allowed'}"
        )


_I = InvoiceStatus
INVOICE = StateMachine.build(
    "invoice",
    InvoiceStatus,
    automatic={
        _I.PENDING: {_I.PROCESSING, _I.DEAD},
        _I.PROCESSING: {_I.PENDING, _I.SUBMITTED, _I.DEAD, _I.NEEDS_RECONCILIATION},
    },
    admin={
        _I.DEAD: {_I.PENDING, _I.ABANDONED},
        _I.NEEDS_RECONCILIATION: {_I.SUBMITTED, _I.PENDING, _I.ABANDONED},
        _I.PENDING: {_I.ABANDONED},
    },
)

_B = BatchStatus
BATCH = StateMachine.build(
    "payout batch",
    BatchStatus,
    automatic={
        _B.PENDING: {_B.PROCESSING, _B.DEAD},
        _B.PROCESSING: {
            _B.PENDING,
            _B.SUBMITTED,
            _B.COMPLETED,
            _B.DENIED,
            _B.DEAD,
            _B.NEEDS_RECONCILIATION,
        },
        _B.SUBMITTED: {_B.COMPLETED, _B.DENIED, _B.CANCELED},
    },
    admin={
        _B.DEAD: {_B.PENDING, _B.CANCELED},
        _B.PENDING: {_B.CANCELED, _B.DEAD},
        _B.SUBMITTED: {_B.COMPLETED, _B.CANCELED},
        _B.NEEDS_RECONCILIATION: {_B.PENDING, _B.CANCELED},
    },
)

_S = ItemStatus
# Reconciliation sees snapshots, so an item may skip statuses between two polls: any status that
# is not yet final may move to any status PayPal reports.
_REPORTED = {s for s in ItemStatus if s is not _S.QUEUED}
ITEM = StateMachine.build(
    "payout item",
    ItemStatus,
    automatic={
        _S.QUEUED: _REPORTED,
        _S.PENDING: _REPORTED - {_S.PENDING},
        _S.ONHOLD: _REPORTED - {_S.ONHOLD},
        _S.UNCLAIMED: _REPORTED - {_S.UNCLAIMED},
        _S.SUCCESS: {_S.REFUNDED, _S.REVERSED},
    },
    admin={},
)

FINAL_ITEM_STATUSES = frozenset(
    s.value for s in (_S.SUCCESS, _S.FAILED, _S.RETURNED, _S.BLOCKED, _S.REFUNDED, _S.REVERSED)
)
"""Item statuses after which reconciliation stops polling (PENDING, ONHOLD, UNCLAIMED are not)."""
