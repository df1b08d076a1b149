"""Shared benchmark plumbing: a PostgreSQL database to measure on, timing, and output."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A server URL: $RETRY_PIPELINES_BENCH_PG_URL, $RETRY_PIPELINES_TEST_PG_URL or a throwaway."""
    url = os.environ.get("RETRY_PIPELINES_BENCH_PG_URL") or os.environ.get(
        "RETRY_PIPELINES_TEST_PG_URL"
    )
    if url:
        yield url
        return
    from retry_pipelines_tests.support import pgserver

    reason = pgserver.unavailable_reason()
    if reason:
        raise SystemExit(f"no PostgreSQL for the benchmark: {reason}")
    with tempfile.TemporaryDirectory() as tmp, pgserver.ThrowawayPostgres(Path(tmp)) as server:
        yield server.url


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    from retry_pipelines_tests.support.databases import create_database, drop_database

    url = create_database(server_url, prefix="rp_bench")
    try:
        yield url
    finally:
        drop_database(url)


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def write_results(name: str, results: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **results,
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def print_table(title: str, header: tuple[str, ...], rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(f"\n{title}")
    print(line.format(*header))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))
