"""Fault plans for the local sandboxes: which wire-level failure a request meets, reproducibly.

A retrying client is only as good as the failures it has been tested against, and a flaky test
is worse than none. So every sandbox start takes a ``FaultPlan`` (fault kind -> probability, a
seed, added latency) and one seeded ``FaultChooser`` decides per request. ``choose()`` always
consumes exactly one uniform draw, so request *n* meets the same draw for a given seed whatever
the probabilities are: the same seed replays the same fault sequence for the same request
sequence, and two plans with one seed can be compared request by request.

The kinds are a shared vocabulary of wire behaviours (HTTP status, body, timing, connection),
not of one API; each sandbox says which kinds it implements (``FaultPlan.require``). The FBR
sandbox implements ``FAULT_KINDS``; ``MORE_FAULT_KINDS`` came later with the PayPal sandbox, and
``ALL_FAULT_KINDS`` (both) is what a plan may name.

An *outage* overrides the plan at runtime: ``FaultChooser.start_outage("http_503", requests=40)``
makes the next 40 requests (or every request until ``end_outage()`` when ``requests`` is None)
meet that fault. The draw is still consumed, so the plan's sequence resumes where it would have
been. The sandboxes expose it as ``/_sandbox/outage``.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

FAULT_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "http_500": "HTTP 500 with a JSON error body; not processed",
        "html_502": "HTTP 502 with an HTML proxy page; not processed",
        "rate_limit": "HTTP 429 (or the gateway's 503) with a throttle body; not processed",
        "fault_401": "HTTP 401 Invalid Credentials although the token is right; not processed",
        "read_timeout": "hang before processing, then 504 with an empty body; not processed",
        "response_lost": "process, then hang and answer an empty 200: the client cannot know",
        "malformed_json": "process, then answer 200 with truncated JSON",
        "empty_body": "HTTP 200 with an empty body (proxy artefact); not processed",
        "connection_drop": "close the connection without any response; not processed",
    }
)
"""The original fault kinds (all implemented by the FBR sandbox), with their wire behaviour."""

MORE_FAULT_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "http_503": "HTTP 503 with a JSON error body; not processed",
        "insufficient_funds": "HTTP 422 INSUFFICIENT_FUNDS (PayPal); not processed",
        "forbidden": "HTTP 403 from the gateway: wrong token or environment (FBR); not processed",
    }
)
"""Kinds added later; each sandbox names the ones it implements (FBR: http_503, forbidden)."""

ALL_FAULT_KINDS: Mapping[str, str] = MappingProxyType({**FAULT_KINDS, **MORE_FAULT_KINDS})
"""Every fault kind a sandbox may implement, with the wire behaviour it stands for."""

_TOLERANCE = 1e-9


def _known(kinds: Collection[str]) -> str:
    return ", ".join(sorted(kinds))


@dataclass(frozen=True, kw_only=True)
class FaultPlan:
    """Per-start fault configuration: ``faults`` maps a kind of ``ALL_FAULT_KINDS`` to a chance."""

    latency_ms: float = 0.0
    """Added to every API request (not to control endpoints)."""
    latency_jitter_ms: float = 0.0
    """Uniform extra latency in ``[0, latency_jitter_ms]``, drawn from its own seeded stream."""
    seed: int = 0
    faults: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        faults = dict(self.faults)
        unknown = sorted(set(faults) - set(ALL_FAULT_KINDS))
        if unknown:
            raise ValueError(
                f"unknown fault kind(s) {', '.join(unknown)}; "
                f"known kinds: {_known(ALL_FAULT_KINDS)}"
            )
        for kind, p in faults.items():
            if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p):
                raise ValueError(f"fault {kind}: probability must be a finite number, got {p!r}")
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"fault {kind}: probability must be within [0, 1], got {p}")
        total = sum(faults.values())
        if total > 1.0 + _TOLERANCE:
            raise ValueError(f"fault probabilities sum to {total:g}; the sum must be at most 1")
        for name in ("latency_ms", "latency_jitter_ms"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        object.__setattr__(self, "faults", MappingProxyType(faults))

    @classmethod
    def parse(
        cls,
        spec: str | None,
        *,
        seed: int = 0,
        latency_ms: float = 0.0,
        latency_jitter_ms: float = 0.0,
        known: Collection[str] | None = None,
    ) -> FaultPlan:
        """Parse ``"http_500=0.05,html_502=0.05"``; ``known`` narrows the accepted kinds."""
        known = ALL_FAULT_KINDS if known is None else known
        faults: dict[str, float] = {}
        for part in (spec or "").split(","):
            part = part.strip()
            if not part:
                continue
            kind, sep, value = part.partition("=")
            kind, value = kind.strip(), value.strip()
            if not sep or not kind:
                raise ValueError(f"fault {part!r}: expected kind=probability, e.g. http_500=0.05")
            if kind not in known:
                raise ValueError(f"unknown fault kind {kind!r}; known kinds: {_known(known)}")
            if kind in faults:
                raise ValueError(f"fault {kind} is given twice")
            try:
                faults[kind] = float(value)
            except ValueError:
                raise ValueError(f"fault {kind}: probability {value!r} is not a number") from None
        return cls(
            faults=faults, seed=seed, latency_ms=latency_ms, latency_jitter_ms=latency_jitter_ms
        )

    def require(self, supported: Collection[str]) -> None:
        """Raise ValueError if the plan uses a kind this sandbox does not implement."""
        missing = sorted(k for k, p in self.faults.items() if p > 0 and k not in supported)
        if missing:
            raise ValueError(
                f"fault kind(s) {', '.join(missing)} not supported here; "
                f"supported: {_known(supported)}"
            )

    @property
    def spec(self) -> str:
        """The plan's faults in ``parse`` syntax (empty when there are none)."""
        return ",".join(f"{k}={p:g}" for k, p in self.faults.items() if p > 0)

    def chooser(self) -> FaultChooser:
        return FaultChooser(self)


class FaultChooser:
    """The seeded per-request decision. Thread-safe; ``reset()`` replays from the start."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._cumulative: list[tuple[float, str]] = []
        total = 0.0
        for kind, p in plan.faults.items():
            if p > 0:
                total += p
                self._cumulative.append((total, kind))
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Replay the plan from the start; an outage ends."""
        with self._lock:
            self._faults = random.Random(self.plan.seed)
            self._latency = random.Random(f"{self.plan.seed}/latency")
            self._outage: str | None = None
            self._outage_left: int | None = None

    def start_outage(self, kind: str, requests: int | None = None) -> None:
        """Every request meets ``kind`` (the next ``requests`` ones, or all until ended)."""
        if kind not in ALL_FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known kinds: {_known(ALL_FAULT_KINDS)}")
        if requests is not None and (isinstance(requests, bool) or requests < 1):
            raise ValueError(f"requests must be >= 1 (or None for until ended), got {requests!r}")
        with self._lock:
            self._outage, self._outage_left = kind, requests

    def end_outage(self) -> None:
        with self._lock:
            self._outage, self._outage_left = None, None

    def outage(self) -> dict[str, object]:
        """``{"fault": kind or None, "remaining": requests left or None}``."""
        with self._lock:
            return {"fault": self._outage, "remaining": self._outage_left}

    def choose(self) -> str | None:
        """The fault for the next request, or None. Always one draw from the fault stream."""
        with self._lock:
            r = self._faults.random()
            if self._outage is not None:
                kind = self._outage
                if self._outage_left is not None:
                    self._outage_left -= 1
                    if self._outage_left <= 0:
                        self._outage, self._outage_left = None, None
                return kind
        for bound, kind in self._cumulative:
            if r < bound:
                return kind
        return None

    def latency_seconds(self) -> float:
        """Latency to add to the next request (base plus seeded jitter)."""
        plan = self.plan
        extra = 0.0
        if plan.latency_jitter_ms > 0:
            with self._lock:
                extra = self._latency.uniform(0.0, plan.latency_jitter_ms)
        return (plan.latency_ms + extra) / 1000.0
