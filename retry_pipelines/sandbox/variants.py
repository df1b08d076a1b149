"""Seeded rotations of response shapes, shared by the sandboxes' dialect modules.

A real API answers one condition in more than one shape (FBR's gateway throttles with four bodies;
PayPal's 500 comes with and without a ``debug_id``). A sandbox that always sends one of them tests
one path. ``Variants`` holds, per *choice* (e.g. ``"rate_limit"``), a cycle of named variants;
``next(choice)`` walks the cycle, so every variant appears once per cycle. The cycle's order is a
permutation drawn from the fault plan's seed (a variant may be listed more than once to weigh it),
optionally with a fixed first variant; ``reset()`` restarts every cycle, so a reset replays the
same shapes for the same request sequence, as it replays the same faults.

A *pin* makes ``next(choice)`` return one variant until unpinned: tests force a shape with it over
HTTP, ``POST /_sandbox/dialect`` with ``{"rate_limit": "flat_900804"}`` (``null`` unpins; ``GET``
shows the pins and the variants known). A reset drops the pins, as it ends an outage.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from typing import Any


class Variants:
    """Per-choice seeded cycles of variant names, with pins. Thread-safe."""

    def __init__(
        self,
        seed: int,
        cycles: Mapping[str, tuple[str, ...]],
        *,
        first: Mapping[str, str] | None = None,
    ) -> None:
        first = dict(first or {})
        self._orders: dict[str, tuple[str, ...]] = {}
        for choice, cycle in cycles.items():
            order = list(cycle)
            random.Random(f"{seed}/dialect/{choice}").shuffle(order)
            if choice in first:
                order.remove(first[choice])
                order.insert(0, first[choice])
            self._orders[choice] = tuple(order)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Every cycle starts again; pins are dropped."""
        with self._lock:
            self._position = dict.fromkeys(self._orders, 0)
            self._pins: dict[str, str] = {}

    def known(self) -> dict[str, list[str]]:
        """Choice -> its distinct variants, in cycle order."""
        return {c: list(dict.fromkeys(order)) for c, order in self._orders.items()}

    def next(self, choice: str) -> str:
        """The pinned variant, else the next one of the cycle."""
        with self._lock:
            pinned = self._pins.get(choice)
            if pinned is not None:
                return pinned
            order = self._orders[choice]
            position = self._position[choice]
            self._position[choice] = position + 1
            return order[position % len(order)]

    def pinned(self, choice: str) -> str | None:
        with self._lock:
            return self._pins.get(choice)

    def pin(self, choice: str, variant: str | None) -> None:
        """Always answer ``variant`` for ``choice`` (None: back to the cycle)."""
        if choice not in self._orders:
            raise ValueError(f"unknown choice {choice!r}; known: {', '.join(sorted(self._orders))}")
        if variant is not None and variant not in self._orders[choice]:
            known = ", ".join(self.known()[choice])
            raise ValueError(f"{choice}: unknown variant {variant!r}; known: {known}")
        with self._lock:
            if variant is None:
                self._pins.pop(choice, None)
            else:
                self._pins[choice] = variant

    def pins(self) -> dict[str, str]:
        with self._lock:
            return dict(self._pins)

    def describe(self) -> dict[str, Any]:
        return {"pins": self.pins(), "variants": self.known()}
