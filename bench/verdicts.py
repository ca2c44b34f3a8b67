"""Speedups with confidence intervals, from the raw round times.

The interval is a percentile bootstrap of the ratio of medians: resample each strategy's
round times with replacement, take median(reference) / median(candidate), repeat, and keep
the middle 95%. When that interval contains 1 the two are within noise of each other and
are not ranked. The resampling is seeded, so the same rounds always give the same verdict.
"""

from __future__ import annotations

import math
import random
import statistics
from typing import NamedTuple

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 20180802  # the seed post's date; any fixed value makes verdicts reproducible
# With fewer rounds than this on a side, resampling cannot say anything about the noise.
MIN_ROUNDS_FOR_INTERVAL = 3


class Speedup(NamedTuple):
    ratio: float  # median(reference) / median(candidate): > 1 means the candidate is faster
    low: float
    high: float

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.low)

    @property
    def significant(self) -> bool:
        return self.has_interval and not (self.low <= 1.0 <= self.high)

    def describe(self, reference: str) -> str:
        if not self.has_interval:
            ratio = self.ratio if self.ratio >= 1 else 1 / self.ratio
            direction = "faster" if self.ratio >= 1 else "slower"
            return (
                f"{_times(ratio)} {direction} than {reference} "
                f"(under {MIN_ROUNDS_FOR_INTERVAL} rounds: no confidence interval, not ranked)"
            )
        ci = f"95% CI {self.low:.2f}-{self.high:.2f}"
        if not self.significant:
            return f"no significant difference from {reference} ({self.ratio:.2f}x, {ci})"
        if self.ratio >= 1:
            return f"{_times(self.ratio)} faster than {reference} ({ci})"
        return f"{_times(1 / self.ratio)} slower than {reference} (speedup {ci})"


def _times(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 2 else f"{ratio:.1f}x"


def speedup(reference: list[float], candidate: list[float]) -> Speedup:
    """How many times faster ``candidate`` ran than ``reference``, with a bootstrap interval."""
    if not reference or not candidate:
        raise ValueError("a speedup needs at least one round on each side")
    ratio = statistics.median(reference) / statistics.median(candidate)
    if min(len(reference), len(candidate)) < MIN_ROUNDS_FOR_INTERVAL:
        return Speedup(ratio, math.nan, math.nan)
    rng = random.Random(SEED)
    ratios = sorted(
        statistics.median(rng.choices(reference, k=len(reference)))
        / statistics.median(rng.choices(candidate, k=len(candidate)))
        for _ in range(BOOTSTRAP_RESAMPLES)
    )
    tail = (1 - CONFIDENCE) / 2
    low = ratios[int(tail * BOOTSTRAP_RESAMPLES)]
    high = ratios[int((1 - tail) * BOOTSTRAP_RESAMPLES) - 1]
    return Speedup(ratio, low, high)
