"""The FBR sandbox's configuration and its state: credentials, token lapses, faults, numbers.

- Faults are drawn when a request arrives, after the credentials check: an unauthorized request
  meets no fault and consumes no draw. Every authenticated request consumes exactly one draw.
- ``reload_token_after=N``: after every N accepted requests the next one is refused with 401
  900901 (fault "token_reload"), as if the token had lapsed; the same token is accepted again
  afterwards, which is what a client that re-reads its token and retries once will see.
- A reset (``/_sandbox/reset``) clears records and duplicate counts and replays faults and shapes;
  FBR numbers stay unique across resets (their epoch milliseconds keep increasing).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from retry_pipelines.sandbox.control import SandboxState
from retry_pipelines.sandbox.faults import FAULT_KINDS, FaultPlan
from retry_pipelines.sandbox.fbr import dialect
from retry_pipelines.sandbox.fbr.dialect import FbrDialect
from retry_pipelines.sandbox.wire import bearer_token

FBR_FAULT_KINDS = frozenset(FAULT_KINDS) | {"http_503", "forbidden"}
"""Every kind of the shared vocabulary, a plain 503, and the gateway's 403 ``forbidden``."""

NTN = re.compile(r"[0-9]{7}([0-9]{6})?")


@dataclass(frozen=True, kw_only=True)
class FbrSandboxConfig:
    token: str
    """The only bearer token the gateway accepts."""
    authorized_ntns: frozenset[str] = frozenset()
    """Seller NTN/CNICs the token is bound to; empty accepts any well-formed one."""
    faults: FaultPlan = field(default_factory=FaultPlan)
    retry_after_seconds: int = 1
    hang_seconds: float = 30.0
    reload_token_after: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token.strip():
            raise ValueError("the sandbox needs a non-empty token")
        object.__setattr__(self, "authorized_ntns", frozenset(self.authorized_ntns))
        bad = sorted(n for n in self.authorized_ntns if not NTN.fullmatch(n))
        if bad:
            raise ValueError(f"authorized NTN/CNICs must be 7 or 13 digits: {', '.join(bad)}")
        if isinstance(self.retry_after_seconds, bool) or not isinstance(
            self.retry_after_seconds, int
        ):
            raise ValueError("retry_after_seconds must be an integer")
        if self.retry_after_seconds < 0:
            raise ValueError("retry_after_seconds must be >= 0")
        if not math.isfinite(self.hang_seconds) or self.hang_seconds < 0:
            raise ValueError("hang_seconds must be a finite number >= 0")
        if self.reload_token_after is not None and self.reload_token_after < 1:
            raise ValueError("reload_token_after must be at least 1 (or None)")
        self.faults.require(FBR_FAULT_KINDS)


@dataclass(frozen=True, slots=True)
class Admission:
    """How an arriving request is met, decided before its body is read."""

    seq: int
    at: float
    auth_error: str | None
    fault: str | None
    latency: float
    throttle: str | None = None


class FbrSandboxState(SandboxState):
    """Records and counters of one sandbox app. All methods are safe to call from any thread."""

    config: FbrSandboxConfig
    dialect: FbrDialect

    def __init__(self, config: FbrSandboxConfig) -> None:
        self._last_ms = 0
        super().__init__(config, FbrDialect(config.faults.seed))

    def _clear(self) -> None:
        self._issued: Counter[str] = Counter()
        self._accepted_since_lapse = 0

    def admit(self, authorization: str | None) -> Admission:
        """Credentials, token lapse and fault draw for an arriving request (no awaits)."""
        token = bearer_token(authorization)
        seq = self.log.next_seq()
        fault = None
        if token is None:
            auth_error = "missing"
        elif not secrets.compare_digest(token.encode(), self.config.token.encode()):
            auth_error = "invalid"
        else:
            auth_error = None
            fault = self._lapse()
        if auth_error is None and fault is None:
            fault = self.chooser.choose()
        throttle = self.dialect.throttle(seq) if fault == "rate_limit" else None
        latency = self.chooser.latency_seconds()
        return Admission(seq, time.time(), auth_error, fault, latency, throttle)

    def _lapse(self) -> str | None:
        """ "token_reload" when the token is due to lapse for this accepted request."""
        every = self.config.reload_token_after
        if every is None:
            return None
        with self._lock:
            if self._accepted_since_lapse >= every:
                self._accepted_since_lapse = 0
                return "token_reload"
            self._accepted_since_lapse += 1
        return None

    def issue_number(self, ntn: str, fingerprint: str) -> tuple[str, int]:
        """A new FBR number for ``ntn`` (either form, see ``dialect``); epoch milliseconds
        strictly increase across the app, and each form is a one-to-one function of them."""
        form = self.dialect.number_form()
        with self._lock:
            ms = max(int(time.time() * 1000), self._last_ms + 1)
            self._last_ms = ms
            self._issued[fingerprint] += 1
        return dialect.invoice_number(ntn, ms, form), ms

    def stats(self) -> dict[str, Any]:
        counts = self.log.counts("path")
        with self._lock:
            issued = list(self._issued.values())
        return {
            "requests": counts.pop("requests"),
            "processed": sum(issued),
            "processed_more_than_once": sum(1 for n in issued if n > 1),
            "distinct_processed": len(issued),
            **counts,
        }


def fingerprint(payload: Any) -> str:
    """sha256 of the canonical JSON of a payload: equal invoices, equal fingerprints."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
