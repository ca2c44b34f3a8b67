"""Speedups with confidence intervals that see the noise between processes, not only within one.

Rounds of one worker process are not independent samples of a strategy: each process has its
own address layout, hash seed and CPU placement, and the same CPU task has been measured at
3.9 ms in one worker and 6.9 ms in another of the same run. An interval that resamples the
rounds of one process claims differences that do not replicate (design rule 8).

So the interval is a **hierarchical percentile bootstrap** of the ratio of medians: each
side's rounds come grouped by the worker process that ran them; a resample draws that many
processes with replacement, then, within each drawn process, its rounds with replacement;
the ratio is median(reference resample) / median(candidate resample); 2,000 resamples, and
the middle 95% is the interval. With one round per process it is the plain bootstrap over
processes; with one process it degenerates to resampling rounds, and says so. When the
interval contains 1 the two are within noise and are not ranked. Seeded: the same rounds
always give the same verdict.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from typing import NamedTuple

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 20180802  # the seed post's date; any fixed value makes verdicts reproducible
# With fewer rounds than this on a side, resampling cannot say anything about the noise.
MIN_ROUNDS_FOR_INTERVAL = 3

Groups = Sequence[Sequence[float]]  # round times, one sequence per worker process


class Speedup(NamedTuple):
    ratio: float  # median(reference) / median(candidate): > 1 means the candidate is faster
    low: float
    high: float
    processes: int = 0  # the fewer of the two sides' worker processes

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
        if self.processes == 1:
            ci += ", one process: blind to between-process noise"
        if not self.significant:
            return f"no significant difference from {reference} ({self.ratio:.2f}x, {ci})"
        if self.ratio >= 1:
            return f"{_times(self.ratio)} faster than {reference} ({ci})"
        return f"{_times(1 / self.ratio)} slower than {reference} (speedup {ci})"


def _times(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 2 else f"{ratio:.1f}x"


def _as_groups(rounds: Sequence[float] | Groups) -> list[list[float]]:
    """Round times grouped by process; a flat list is the rounds of one process (older runs)."""
    if rounds and isinstance(rounds[0], int | float):
        return [list(rounds)]
    return [list(group) for group in rounds if len(group)]


def _resample(groups: list[list[float]], rng: random.Random) -> list[float]:
    drawn = rng.choices(groups, k=len(groups))
    return [value for group in drawn for value in rng.choices(group, k=len(group))]


def speedup(reference: Sequence[float] | Groups, candidate: Sequence[float] | Groups) -> Speedup:
    """How many times faster ``candidate`` ran than ``reference``, with a hierarchical bootstrap interval."""
    reference_groups, candidate_groups = _as_groups(reference), _as_groups(candidate)
    reference_all = [value for group in reference_groups for value in group]
    candidate_all = [value for group in candidate_groups for value in group]
    if not reference_all or not candidate_all:
        raise ValueError("a speedup needs at least one round on each side")
    ratio = statistics.median(reference_all) / statistics.median(candidate_all)
    processes = min(len(reference_groups), len(candidate_groups))
    if min(len(reference_all), len(candidate_all)) < MIN_ROUNDS_FOR_INTERVAL:
        return Speedup(ratio, math.nan, math.nan, processes)
    rng = random.Random(SEED)
    ratios = sorted(
        statistics.median(_resample(reference_groups, rng))
        / statistics.median(_resample(candidate_groups, rng))
        for _ in range(BOOTSTRAP_RESAMPLES)
    )
    tail = (1 - CONFIDENCE) / 2
    low = ratios[int(tail * BOOTSTRAP_RESAMPLES)]
    high = ratios[int((1 - tail) * BOOTSTRAP_RESAMPLES) - 1]
    return Speedup(ratio, low, high, processes)
