"""One definition of a percentile for the server's figures and the client's alike."""

from __future__ import annotations


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an already sorted list: the smallest value with at least
    pct% of the values at or below it. None when the list is empty."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil without float drift
    return ordered[int(rank) - 1]
