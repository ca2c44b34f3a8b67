"""The CPU-bound control's task: pure-Python work of a fixed size, in place of a request."""

from __future__ import annotations

import time

from bench.workload import Outcome, Workload


def spin(iterations: int) -> int:
    """Pure-Python arithmetic that holds the GIL throughout.

    Not hashlib: it releases the GIL on buffers over 2 KiB, so threads would run it in
    parallel and the control would no longer show what the GIL does to CPU-bound work.
    """
    total = 0
    for i in range(iterations):
        total += i * i % 7
    return total


def cpu_task(workload: Workload, asynchronous: bool):
    def work(url: str) -> Outcome:
        started = time.perf_counter()
        spin(workload.cpu_iterations)
        return Outcome(True, started, time.perf_counter())

    async def work_async(url: str) -> Outcome:
        return work(url)

    return work_async if asynchronous else work


def calibrate_spin(target_ms: float) -> int:
    """How many ``spin`` iterations take ``target_ms`` here (best of a few tries of ~20 ms)."""
    iterations = 200_000
    best = min(_timed(spin, iterations) for _ in range(3))
    return max(1, round(iterations * target_ms / 1000 / best))


def _timed(fn, *args) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started
