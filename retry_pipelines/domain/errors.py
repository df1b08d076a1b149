"""The error taxonomy every failed attempt is classified into.

A failure carries two independent facts: *what kind* of error it was (which decides whether and
when to retry) and *whether the request may have been processed* (which decides whether a retry is
safe at all). FBR posts have no idempotency key, so an ambiguous FBR failure must not be re-posted
blindly; PayPal batches are deduplicated by ``sender_batch_id``, so an ambiguous PayPal failure is
retried with the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorType(StrEnum):
    TRANSIENT = "TRANSIENT"
    PERMANENT = "PERMANENT"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    VALIDATION = "VALIDATION"
    NETWORK = "NETWORK"
    RATE_LIMIT = "RATE_LIMIT"
    UNKNOWN = "UNKNOWN"


class Delivery(StrEnum):
    """Whether the remote side may have acted on the request."""

    NOT_DELIVERED = "not_delivered"
    AMBIGUOUS = "ambiguous"


NEVER_RETRIED = frozenset({ErrorType.PERMANENT, ErrorType.VALIDATION})
"""The item's own data or account is at fault: a retry can only fail the same way."""

GATEWAY_LEVEL = frozenset({ErrorType.RATE_LIMIT, ErrorType.TOKEN_EXPIRED})
"""The gateway, not the item, is at fault: these attempts do not spend the item's retry budget."""


@dataclass(frozen=True, slots=True)
class Failure:
    """One classified failed attempt."""

    error_type: ErrorType
    message: str
    delivery: Delivery = Delivery.NOT_DELIVERED
    error_code: str | None = None
    http_status: int | None = None
    retry_after: float | None = None
    """Seconds the gateway asked us to wait (``Retry-After``), if it said."""

    def __post_init__(self) -> None:
        if self.retry_after is not None and not 0 <= self.retry_after < float("inf"):
            raise ValueError(f"retry_after must be finite and >= 0 seconds, got {self.retry_after}")

    @property
    def gateway_level(self) -> bool:
        return self.error_type in GATEWAY_LEVEL

    @property
    def ambiguous(self) -> bool:
        return self.delivery is Delivery.AMBIGUOUS

    def summary(self) -> str:
        code = f" {self.error_code}" if self.error_code else ""
        return f"{self.error_type.value}{code}: {self.message}"
