"""What happened inside a round, derived from every task's start and end times."""

from __future__ import annotations

from bench.workload import Outcome
from servers.percentile import percentile

# The report draws one bar per request; past a few thousand bars nobody can see them anyway.
TIMELINE_MAX_BARS = 2000


def max_in_flight(outcomes: list[Outcome]) -> int:
    """The most tasks open at one instant (a task ending at t is closed before one starting at t)."""
    events = sorted([(o.started, 1) for o in outcomes] + [(o.finished, -1) for o in outcomes])
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def round_details(outcomes: list[Outcome], round_started: float, with_timeline: bool = False) -> dict:
    latencies_ms = sorted((o.finished - o.started) * 1000 for o in outcomes if o.ok)
    details = {
        "latency_p50_ms": percentile(latencies_ms, 50),
        "latency_p99_ms": percentile(latencies_ms, 99),
        "client_max_in_flight": max_in_flight(outcomes),
    }
    if with_timeline:
        step = max(1, -(-len(outcomes) // TIMELINE_MAX_BARS))
        details["timeline"] = {
            "every_nth_request": step,
            "requests": [
                [
                    round((o.started - round_started) * 1000, 3),
                    round((o.finished - round_started) * 1000, 3),
                    o.ok,
                ]
                for o in outcomes[::step]
            ],
        }
    return details
