"""Speedups with confidence intervals that see the noise between processes, not only within one.

Rounds of one worker process are not independent samples of a strategy: each process has its
own address layout, hash seed and CPU placement, and the same CPU task has been measured at
3.9 ms in one worker and 6.9 ms in another of the same run. An interval that resamples the
rounds of one process claims differences that do not replicate (design rule 8).

The ratio is median(reference rounds) / median(candidate rounds). Its interval:

1. a **hierarchical bootstrap** gives the standard error of the log of that ratio: each side's
   rounds come grouped by the worker process that ran them; a resample draws that many
   processes with replacement, then, within each drawn process, its rounds with replacement
   (2,000 resamples, seeded: the same rounds always give the same verdict);
2. the interval is exp(log ratio +- t x SE), with Student's t for the processes counted
   (df = processes on both sides - 2): with five processes a side, a percentile bootstrap is
   too narrow (it claimed "1.27x faster" on identical CPU work that 20 processes put at 0.96x);
3. the level is shared by all the comparisons of a workload (Bonferroni): with m lines, each
   interval is at 1 - 0.05 / m, so the whole table of a run is wrong at most 5% of the time.

When the interval contains 1 the two are within noise and are not ranked. With one process
on a side there is no between-process noise to see: the interval then resamples rounds, and
the line says so.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from statistics import NormalDist
from typing import NamedTuple

BOOTSTRAP_RESAMPLES = 2000
# For all the comparisons of one workload together (Bonferroni), not for each line alone.
FAMILY_CONFIDENCE = 0.95
SEED = 20180802  # the seed post's date; any fixed value makes verdicts reproducible
# With fewer rounds than this on a side, resampling cannot say anything about the noise.
MIN_ROUNDS_FOR_INTERVAL = 3

Groups = Sequence[Sequence[float]]  # round times, one sequence per worker process


class Speedup(NamedTuple):
    ratio: float  # median(reference) / median(candidate): > 1 means the candidate is faster
    low: float
    high: float
    processes: int = 0  # the fewer of the two sides' worker processes
    confidence: float = FAMILY_CONFIDENCE  # this line's own level: 1 - 0.05 / comparisons

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
        ci = f"{_percent(self.confidence)} CI {self.low:.2f}-{self.high:.2f}"
        if self.processes == 1:
            ci += ", one process: blind to between-process noise"
        if not self.significant:
            return f"no significant difference from {reference} ({self.ratio:.2f}x, {ci})"
        if self.ratio >= 1:
            return f"{_times(self.ratio)} faster than {reference} ({ci})"
        return f"{_times(1 / self.ratio)} slower than {reference} (speedup {ci})"


def _percent(level: float) -> str:
    return f"{level * 100:.3g}%"


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


def speedup(
    reference: Sequence[float] | Groups, candidate: Sequence[float] | Groups, comparisons: int = 1
) -> Speedup:
    """How many times faster ``candidate`` ran than ``reference``, with an interval over processes.

    ``comparisons``: how many lines share the family's 95% (Bonferroni).
    """
    reference_groups, candidate_groups = _as_groups(reference), _as_groups(candidate)
    reference_all = [value for group in reference_groups for value in group]
    candidate_all = [value for group in candidate_groups for value in group]
    if not reference_all or not candidate_all:
        raise ValueError("a speedup needs at least one round on each side")
    ratio = statistics.median(reference_all) / statistics.median(candidate_all)
    processes = min(len(reference_groups), len(candidate_groups))
    confidence = 1 - (1 - FAMILY_CONFIDENCE) / max(1, comparisons)
    if min(len(reference_all), len(candidate_all)) < MIN_ROUNDS_FOR_INTERVAL:
        return Speedup(ratio, math.nan, math.nan, processes, confidence)
    rng = random.Random(SEED)
    logs = [
        math.log(
            statistics.median(_resample(reference_groups, rng))
            / statistics.median(_resample(candidate_groups, rng))
        )
        for _ in range(BOOTSTRAP_RESAMPLES)
    ]
    # The units are processes; with one process a side, rounds are all there is to count.
    units = (
        len(reference_groups) + len(candidate_groups)
        if processes > 1
        else len(reference_all) + len(candidate_all)
    )
    half = student_t_quantile(1 - (1 - confidence) / 2, max(1, units - 2)) * statistics.stdev(logs)
    return Speedup(ratio, ratio * math.exp(-half), ratio * math.exp(half), processes, confidence)


def student_t_quantile(p: float, df: int) -> float:
    """Student's t quantile by the Cornish-Fisher expansion in 1/df (Abramowitz and Stegun 26.7.5).

    Within 1% of the exact value for df >= 3 at the levels used here; for df of 1 or 2 it errs
    narrow, but so few units give no interval worth reading anyway.
    """
    z = NormalDist().inv_cdf(p)
    terms = (
        z,
        (z**3 + z) / 4,
        (5 * z**5 + 16 * z**3 + 3 * z) / 96,
        (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
        (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160,
    )
    return sum(term / df**k for k, term in enumerate(terms))
