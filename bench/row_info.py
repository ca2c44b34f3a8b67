"""Reduce a strategy's measured rounds to the ``extra_info`` of its pytest-benchmark row.

How each per-round figure becomes one number (the README's "How figures are reduced"):
peak memory and OS threads take the worst measured round (a peak is a peak); CPU time and
harness overhead take the median round; ok and errors are those of the worst round, and the
row is valid only if every round had ok == N. Warm rounds reuse memory the previous round
freed (allocator arenas, glibc's cache of thread stacks), so the warm-up round's peak is kept
too, as the cold cost.
"""

from __future__ import annotations

import statistics
from collections import Counter

from bench.strategies import Strategy
from bench.workload import Workload


def row_info(
    strategy: Strategy, workload: Workload, monkey_patched: bool, first_round: dict, rounds: list[dict]
) -> dict:
    """``first_round`` is the untimed warm-up: its memory is the cold cost, before any reuse."""
    n = workload.requests
    worst = max(rounds, key=lambda r: r["errors"])
    max_in_flight = strategy.fanout.max_in_flight(n, workload.concurrency)
    cpu_seconds = statistics.median(r["cpu_seconds"] for r in rounds)
    peak_rss = max(r["peak_rss_bytes"] for r in rounds)
    info = {
        "strategy": strategy.name,
        "requests": n,
        "delay_ms": workload.delay_ms,
        "concurrency": workload.concurrency,
        "max_in_flight_allowed": max_in_flight,
        "timeout_s": workload.timeout_s,
        "rounds": len(rounds),
        "ok": worst["ok"],
        "errors": worst["errors"],
        "errors_all_rounds": sum(r["errors"] for r in rounds),
        "peak_rss_bytes": peak_rss,
        "peak_rss_per_request_bytes": peak_rss / n,
        "peak_rss_first_round_bytes": first_round["peak_rss_bytes"],
        "cpu_seconds": cpu_seconds,
        "cpu_per_request_ms": cpu_seconds / n * 1000,
        "os_threads_peak": max(r["os_threads_peak"] for r in rounds),
        "monkey_patched": monkey_patched,
        "ideal_seconds": workload.ideal_seconds(max_in_flight),
        "worker_wall_seconds": [r["wall_seconds"] for r in rounds],
        "harness_overhead_ms": statistics.median(r["round_trip_seconds"] - r["wall_seconds"] for r in rounds)
        * 1000,
    }
    info["valid"], info["invalid_reason"] = _validity(rounds, n)
    return info


def _validity(rounds: list[dict], n: int) -> tuple[bool, str | None]:
    failed_rounds = [r for r in rounds if r["ok"] != n]
    if not failed_rounds:
        return True, None
    samples = Counter()
    for r in failed_rounds:
        samples.update(r["error_samples"])
    reasons = "; ".join(f"{message} (x{count})" for message, count in samples.most_common(3))
    failed = sum(r["errors"] for r in failed_rounds)
    return (
        False,
        f"{failed} of {n * len(rounds)} requests failed in {len(failed_rounds)} of {len(rounds)} rounds: {reasons}",
    )
