"""The PayPal sandbox's configuration and the constants PayPal's API fixes.

Tokens are random (``A21AA`` + 64 URL-safe characters) and live ``token_ttl_seconds``;
``expires_in`` reports ``expires_in_seconds`` if set, else the TTL rounded up (so a client can be
told 9 h while the server lets the token lapse sooner). HATEOAS links point at this server
(``public_base_url`` overrides), so a client can follow them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType

from retry_pipelines.sandbox.faults import FaultPlan

PAYPAL_FAULT_KINDS = frozenset(
    {
        "http_500",
        "http_503",
        "rate_limit",
        "read_timeout",
        "response_lost",
        "malformed_json",
        "connection_drop",
        "insufficient_funds",
    }
)
NOT_CREATING_FAULTS = frozenset(PAYPAL_FAULT_KINDS - {"response_lost", "malformed_json"})
"""Faults that answer before the request is processed: no batch can come of them."""

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"
DEFAULT_APP_ID = "APP-80W284485P519543T"
SCOPE = (
    "https://uri.paypal.com/payments/payouts "
    "https://uri.paypal.com/services/payments/payouts-item/reverse"
)
THIRTY_DAYS = 30 * 24 * 3600.0
ITEM_OUTCOMES = ("SUCCESS", "FAILED", "UNCLAIMED")
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "HUF", "TWD"})


_TOLERANCE = 1e-9


@dataclass(frozen=True, kw_only=True)
class PaypalSandboxConfig:
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    app_id: str = DEFAULT_APP_ID
    token_ttl_seconds: float = 32400.0
    """How long an issued token is accepted."""
    expires_in_seconds: int | None = None
    """What the token answer reports as ``expires_in``; None: the TTL rounded up."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    retry_after_seconds: int = 1
    """Accepted for symmetry with the FBR sandbox; PayPal's recorded 429 has no Retry-After."""
    hang_seconds: float = 30.0
    processing_after_seconds: float = 1.0
    final_after_seconds: float = 2.0
    unclaimed_return_after_seconds: float = THIRTY_DAYS
    """An UNCLAIMED item becomes RETURNED this long after its batch is final (PayPal: 30 days)."""
    item_outcomes: Mapping[str, float] = field(default_factory=dict, hash=False)
    """Chance of each item outcome (SUCCESS, FAILED, UNCLAIMED); the remainder is SUCCESS."""
    fee_rate: Decimal = Decimal("0.02")
    dedupe_window_seconds: float = THIRTY_DAYS
    request_id_ttl_seconds: float = THIRTY_DAYS
    public_base_url: str | None = None
    """Base of HATEOAS links; None: the URL the request came in on."""
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    """Seconds, monotonic: drives progression and token expiry (tests may pass their own)."""

    def __post_init__(self) -> None:
        for name in ("client_id", "client_secret", "app_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{name} must be a non-empty string")
        if ":" in self.client_id:
            raise ValueError("client_id must not contain ':' (HTTP Basic could not carry it)")
        for name in SECONDS_FIELDS:
            _require_seconds(name, getattr(self, name))
        if self.processing_after_seconds > self.final_after_seconds:
            raise ValueError("processing_after_seconds must not exceed final_after_seconds")
        _require_count("retry_after_seconds", self.retry_after_seconds)
        if self.expires_in_seconds is not None:  # None: derived from token_ttl_seconds
            _require_count("expires_in_seconds", self.expires_in_seconds)
        object.__setattr__(self, "item_outcomes", _item_outcomes(self.item_outcomes))
        object.__setattr__(self, "fee_rate", _fee_rate(self.fee_rate))
        self.faults.require(PAYPAL_FAULT_KINDS)

    @property
    def expires_in(self) -> int:
        if self.expires_in_seconds is not None:
            return self.expires_in_seconds
        return math.ceil(self.token_ttl_seconds)


SECONDS_FIELDS = (
    "token_ttl_seconds",
    "hang_seconds",
    "processing_after_seconds",
    "final_after_seconds",
    "unclaimed_return_after_seconds",
    "dedupe_window_seconds",
    "request_id_ttl_seconds",
)
"""The durations of ``PaypalSandboxConfig``: each a finite number >= 0."""


def _require_seconds(name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _require_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")


def _item_outcomes(given: Mapping[str, float]) -> Mapping[str, float]:
    outcomes = dict(given)
    unknown = sorted(set(outcomes) - set(ITEM_OUTCOMES))
    if unknown:
        raise ValueError(
            f"unknown item outcome(s) {', '.join(unknown)}; known: {', '.join(ITEM_OUTCOMES)}"
        )
    for outcome, p in outcomes.items():
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 <= p <= 1.0:
            raise ValueError(f"item outcome {outcome}: chance must be within [0, 1], got {p!r}")
    if sum(outcomes.values()) > 1.0 + _TOLERANCE:
        raise ValueError("item outcome chances must sum to at most 1")
    return MappingProxyType(outcomes)


def _fee_rate(given: object) -> Decimal:
    try:
        fee_rate = Decimal(given)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"fee_rate must be a decimal, got {given!r}") from None
    if not fee_rate.is_finite() or not 0 <= fee_rate <= 1:
        raise ValueError("fee_rate must be within [0, 1]")
    return fee_rate
