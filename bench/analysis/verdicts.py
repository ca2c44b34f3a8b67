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

The interval is then read against a practical-equivalence margin m (issue 26), one per figure
(time, memory, CPU: their noise differs; docs/reference/statistics.md, "Margins"):

- DIFFERENT: the interval lies wholly outside [1/(1+m), 1+m] ("1.10x faster");
- EQUIVALENT: it lies wholly inside ("the same time within ±5%");
- UNDETERMINED: neither ("1.63x, not resolved by this run"). An interval that excludes 1 but
  reaches inside the margin is undetermined too: the run sees a difference but cannot say
  whether it matters, and a 2% gap called "faster" in one run and "the same" in the next is
  the flip this reading exists to stop;
- NOT_RANKED: too few rounds for an interval at all.

With one process on a side there is no between-process noise to see: the interval then
resamples rounds, and the line says so.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from enum import Enum
from statistics import NormalDist
from typing import NamedTuple

BOOTSTRAP_RESAMPLES = 2000
# For all the comparisons of one workload together (Bonferroni), not for each line alone.
FAMILY_CONFIDENCE = 0.95
SEED = 20180802  # the seed post's date; any fixed value makes verdicts reproducible
# With fewer rounds than this on a side, resampling cannot say anything about the noise.
MIN_ROUNDS_FOR_INTERVAL = 3

Groups = Sequence[Sequence[float]]  # round times, one sequence per worker process

# The practical-equivalence margins, from the spread of identical work on the 2-core development
# machine (python -m bench.analysis.spread, docs/reference/statistics.md "Margins"): A/A twins
# and five repeated runs moved a head-to-head ratio by at most 2.7% in time, 3.2% in memory per
# waiting request, but 23% in CPU per request (CPU time moves with what else the cores run).
# Each margin sits above what identical work showed, so twins can come out the same.
DEFAULT_TIME_MARGIN = 0.05
DEFAULT_MEMORY_MARGIN = 0.10
DEFAULT_CPU_MARGIN = 0.25
# Threads, greenlets and tasks waiting on the same delay finish within a few % of each other, so
# a head to head in time between them sits near the ±5% margin, where its verdict turns on the
# interval's edge: five identical default runs (3 processes a side at the seed, 5 at the 1,000
# rung) called the same pairs "faster", "the same" and "not resolved" by turns
# (docs/reference/statistics.md, "What a run decides"). Below this many processes a side such a
# pair is called different only when its interval clears twice the margin, never the same, and
# otherwise says the run does not decide it (``Speedup.decided``), so its words replicate
# (issue 26); `--bench-scenario seed` runs the seed's peers with this many.
DECIDING_PROCESSES = 20
# Where a saved row records the margins it was judged with (--bench-margin).
MARGINS_KEY = "equivalence_margins"


class Verdict(Enum):
    DIFFERENT = "different"
    EQUIVALENT = "equivalent"
    UNDETERMINED = "undetermined"
    NOT_RANKED = "not ranked"  # under MIN_ROUNDS_FOR_INTERVAL rounds: no interval


class Margins(NamedTuple):
    """The practical-equivalence margin of each figure, as a fraction (0.05: ±5%)."""

    time: float = DEFAULT_TIME_MARGIN
    memory: float = DEFAULT_MEMORY_MARGIN
    cpu: float = DEFAULT_CPU_MARGIN

    @classmethod
    def of(cls, infos: Sequence[Mapping]) -> Margins:
        """The margins a run's rows were judged with; the defaults for runs saved before them."""
        recorded = next((info[MARGINS_KEY] for info in infos if info.get(MARGINS_KEY)), None)
        return cls(**recorded) if recorded else cls()

    def describe(self) -> str:
        return f"{within(self.time)} in time, {within(self.memory)} in memory, {within(self.cpu)} in CPU"


class Speedup(NamedTuple):
    ratio: float  # median(reference) / median(candidate): > 1 means the candidate is faster
    low: float
    high: float
    processes: int = 0  # the fewer of the two sides' worker processes
    confidence: float = FAMILY_CONFIDENCE  # this line's own level: 1 - 0.05 / comparisons
    margin: float = DEFAULT_TIME_MARGIN  # practical equivalence: within [1/(1+m), 1+m]

    @property
    def has_interval(self) -> bool:
        return not math.isnan(self.low)

    @property
    def significant(self) -> bool:
        """The interval excludes 1 (statistics alone; the verdict also asks whether it matters)."""
        return self.has_interval and not (self.low <= 1.0 <= self.high)

    @property
    def verdict(self) -> Verdict:
        if not self.has_interval:
            return Verdict.NOT_RANKED
        if self.processes == 1:
            # Rounds of one process are blind to the noise between processes (design rule 8):
            # such an interval can neither call two rows the same nor different.
            return Verdict.UNDETERMINED
        edge = 1 + self.margin
        if self.low > edge or self.high < 1 / edge:
            return Verdict.DIFFERENT
        if self.low >= 1 / edge and self.high <= edge:
            return Verdict.EQUIVALENT
        return Verdict.UNDETERMINED

    @property
    def decided(self) -> bool:
        """For a head to head in time: whether its verdict replicates, with ``DECIDING_PROCESSES``
        a side, or with fewer past twice the margin (beyond 1.10x at ±5%); one process a side,
        or too few rounds, already say they rank nothing."""
        if self.processes >= DECIDING_PROCESSES or self.processes <= 1 or not self.has_interval:
            return True
        guard = 1 + 2 * self.margin
        return self.low > guard or self.high < 1 / guard

    def not_decided(self, ratio: str = "") -> str:
        """'not decided by 3 processes a side (1.02x, interval 0.97-1.08; a verdict within ±5% takes 20)'."""
        return (
            f"not decided by {self.processes} processes a side ({ratio}interval {self.low:.2f}-{self.high:.2f}; "
            f"a verdict within {within(self.margin)} takes {DECIDING_PROCESSES})"
        )

    def describe_head_to_head(self, reference: str) -> str:
        """``describe`` in time, or, when the run has too few processes to decide it, the ratio
        and its interval with what it would take."""
        if self.decided:
            return self.describe(reference)
        return f"{self.ratio:.2f}x against {reference}, {self.not_decided()}"

    @property
    def interval(self) -> str:
        """'99.2% CI 0.80-3.20', and the caveat of a single process."""
        text = f"{_percent(self.confidence)} CI {self.low:.2f}-{self.high:.2f}"
        return text + (", one process: blind to between-process noise" if self.processes == 1 else "")

    def describe(self, reference: str, noun: str = "time") -> str:
        """The verdict in words; ``noun``: what the ratio compares (time, or a cost: memory, CPU)."""
        ratio = self.ratio if self.ratio >= 1 else 1 / self.ratio
        less, more = ("faster", "slower") if noun == "time" else (f"less {noun}", f"more {noun}")
        direction = less if self.ratio >= 1 else more
        verdict = self.verdict
        if verdict is Verdict.NOT_RANKED:
            return (
                f"{_times(ratio)} {direction} than {reference} "
                f"(under {MIN_ROUNDS_FOR_INTERVAL} rounds: no confidence interval, not ranked)"
            )
        if verdict is Verdict.EQUIVALENT:
            return (
                f"the same {noun} as {reference} within {within(self.margin)} "
                f"({self.ratio:.2f}x, {self.interval})"
            )
        if verdict is Verdict.UNDETERMINED:
            return (
                f"{self.ratio:.2f}x against {reference}, not resolved by this run "
                f"({self.interval}, reaching across the {within(self.margin)} margin)"
            )
        if self.ratio >= 1:
            return f"{_times(ratio)} {direction} than {reference} ({self.interval})"
        # The interval is of the ratio as computed (reference / candidate), below 1 here.
        of = "speedup" if noun == "time" else "ratio"
        return f"{_times(ratio)} {direction} than {reference} ({of} {self.interval})"


def _percent(level: float) -> str:
    return f"{level * 100:.3g}%"


def within(margin: float) -> str:
    """'±5%'."""
    return f"±{_percent(margin)}"


def _times(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 2 else f"{ratio:.1f}x"


def _as_groups(rounds: Sequence[float] | Groups) -> list[list[float]]:
    """Round times grouped by process; a flat list is the rounds of one process (older runs)."""
    if rounds and isinstance(rounds[0], int | float):
        return [list(rounds)]
    return [list(group) for group in rounds if len(group)]


def _bootstrap_log_ratios(reference: list[list[float]], candidate: list[list[float]]) -> list[float]:
    """log(median(resampled reference) / median(resampled candidate)), BOOTSTRAP_RESAMPLES times.

    Each resample draws a side's processes with replacement, then each drawn process's rounds,
    as ``random.Random(SEED).choices`` would, one side after the other, resample after resample:
    the same draws from the same Mersenne Twister stream (numpy's MT19937 started in Python's
    state, two 32-bit words a ``random()``, ``floor(random() * n)`` a choice), so the intervals
    are the ones the plain-Python loop gave, bit for bit, in a fraction of its CPU.
    """
    import numpy as np  # imported here, not by every worker process that imports verdicts

    sides = []
    for groups in (reference, candidate):
        lengths = [len(group) for group in groups]
        offsets = [0]
        for length in lengths[:-1]:
            offsets.append(offsets[-1] + length)
        flat = np.array([value for group in groups for value in group], dtype=np.float64)
        sides.append((len(groups), lengths, offsets, flat))
    per_resample = sum(count + count * max(lengths) for count, lengths, _, _ in sides)
    generator = np.random.MT19937()
    _, words, _ = random.Random(SEED).getstate()
    generator.state = {
        "bit_generator": "MT19937",
        "state": {"key": np.array(words[:-1], dtype=np.uint32), "pos": words[-1]},
    }
    raw = generator.random_raw(2 * per_resample * BOOTSTRAP_RESAMPLES).reshape(-1, 2)
    # random.random(): (a >> 5) * 2**26 + (b >> 6), over 2**53.
    uniform = ((raw[:, 0] >> 5) * 67108864.0 + (raw[:, 1] >> 6)) * (1.0 / 9007199254740992.0)
    del raw  # sized for the most draws a resample can take: a run of many rounds makes it big

    # A side's resample that starts at draw p takes `count` draws for its processes, then as many
    # as the drawn processes have rounds: that advance, for every p at once...
    advances = []
    for count, lengths, _, _ in sides:
        rounds = np.array(lengths, dtype=np.int64)[np.floor(uniform * count).astype(np.int64)]
        window = np.concatenate(([0], np.cumsum(rounds)))
        reach = min(len(rounds), len(window) - 1 - count)
        advances.append(count + window[count : count + reach + 1] - window[: reach + 1])
    # ...then where each resample of each side starts, one after the other.
    starts = np.empty((2, BOOTSTRAP_RESAMPLES), dtype=np.int64)
    position = 0
    for resample in range(BOOTSTRAP_RESAMPLES):
        for side in (0, 1):
            starts[side, resample] = position
            position += int(advances[side][position])

    medians = []
    for side, (count, lengths, offsets, flat) in enumerate(sides):
        # (resamples, count): the processes each resample drew.
        draws = uniform[starts[side][:, None] + np.arange(count)]
        picked = np.floor(draws * float(count)).astype(np.int64)
        length = np.array(lengths, dtype=np.int64)[picked]
        # Each drawn process's round draws follow its side's process draws, in the order drawn.
        first = starts[side][:, None] + count + np.cumsum(length, axis=1) - length
        offset = np.array(offsets, dtype=np.int64)[picked]
        total = length.sum(axis=1)
        length, first, offset = length.ravel(), first.ravel(), offset.ravel()
        within = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length)
        picks = np.repeat(offset, length) + np.floor(
            uniform[np.repeat(first, length) + within] * np.repeat(length.astype(np.float64), length)
        ).astype(np.int64)
        values = flat[picks]
        # One row a resample (rows of unequal length padded past their end), sorted.
        rows = np.full((BOOTSTRAP_RESAMPLES, int(total.max())), np.inf)
        row_of = np.repeat(np.arange(BOOTSTRAP_RESAMPLES), total)
        rows[row_of, np.arange(len(values)) - np.repeat(np.cumsum(total) - total, total)] = values
        rows.sort(axis=1)
        # statistics.median: the middle value, or the mean of the two middle values.
        every = np.arange(BOOTSTRAP_RESAMPLES)
        upper = rows[every, total // 2]
        lower = rows[every, (total - 1) // 2]
        medians.append(np.where(total % 2 == 1, upper, (lower + upper) / 2))
    return [math.log(ratio) for ratio in (medians[0] / medians[1]).tolist()]


def speedup(
    reference: Sequence[float] | Groups,
    candidate: Sequence[float] | Groups,
    comparisons: int = 1,
    margin: float = DEFAULT_TIME_MARGIN,
) -> Speedup:
    """How many times faster ``candidate`` ran than ``reference``, with an interval over processes.

    ``comparisons``: how many lines share the family's 95% (Bonferroni); ``margin``: the
    practical-equivalence margin its verdict is read against.
    """
    if not margin > 0:
        raise ValueError(f"an equivalence margin must be > 0, got {margin}")
    reference_groups, candidate_groups = _as_groups(reference), _as_groups(candidate)
    reference_all = [value for group in reference_groups for value in group]
    candidate_all = [value for group in candidate_groups for value in group]
    if not reference_all or not candidate_all:
        raise ValueError("a speedup needs at least one round on each side")
    ratio = statistics.median(reference_all) / statistics.median(candidate_all)
    processes = min(len(reference_groups), len(candidate_groups))
    confidence = 1 - (1 - FAMILY_CONFIDENCE) / max(1, comparisons)
    if min(len(reference_all), len(candidate_all)) < MIN_ROUNDS_FOR_INTERVAL:
        return Speedup(ratio, math.nan, math.nan, processes, confidence, margin)
    logs = _bootstrap_log_ratios(reference_groups, candidate_groups)
    # The units are processes; with one process a side, rounds are all there is to count.
    units = (
        len(reference_groups) + len(candidate_groups)
        if processes > 1
        else len(reference_all) + len(candidate_all)
    )
    half = student_t_quantile(1 - (1 - confidence) / 2, max(1, units - 2)) * statistics.stdev(logs)
    return Speedup(ratio, ratio * math.exp(-half), ratio * math.exp(half), processes, confidence, margin)


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
