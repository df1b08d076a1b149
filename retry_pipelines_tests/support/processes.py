"""One harness for concurrency claims: several OS processes released together at a barrier.

Each process runs ``target(*args, barrier, out)``: it waits at the barrier, does its work and
writes its outcome to the file ``out``. The harness joins them all (killing any still alive after
``timeout``), asserts each exited cleanly and returns the outcomes in order.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from pathlib import Path


def run_at_barrier(
    target: Callable[..., None],
    arg_lists: Sequence[Sequence[object]],
    out_dir: Path,
    *,
    timeout: float = 300,
) -> list[str]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(arg_lists))
    outs = [out_dir / f"process-{n}.out" for n in range(len(arg_lists))]
    procs = [
        ctx.Process(target=target, args=(*args, barrier, str(out)))
        for args, out in zip(arg_lists, outs, strict=True)
    ]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join(timeout=timeout)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    codes = [proc.exitcode for proc in procs]
    assert codes == [0] * len(procs), f"worker exit codes {codes}"
    return [out.read_text() for out in outs]
