"""The closing summary of the default run (``story``): at most ten lines, all from this run.

Every number and every "wins / the same / not resolved / loses" below is computed from the run's
own rows and their intervals over worker processes, read against each figure's equivalence
margin (``bench/analysis/verdicts.py``); nothing is canned. The intervals of one workload's lines
share one 95% (Bonferroni over its comparisons in the summary), so a line here can leave
unresolved what the workload's own table, with fewer comparisons, resolves.

What it tells (issue 16): the seed's comparison against sequential and head to head; what one
waiting request costs each model (memory and CPU, raw client) at the ladder's top rung; how the
models' time compares there; how their efficiency moved up the ladder; and what that makes of
the seed's claim that coroutines beat threads on IO.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from bench.analysis.summary import Row, format_bytes, head_to_heads, reached_in_flight, reference_for
from bench.analysis.verdicts import (
    DECIDING_PROCESSES,
    MIN_ROUNDS_FOR_INTERVAL,
    Margins,
    Speedup,
    Verdict,
    _times,
    speedup,
    within,
)
from bench.names import LADDER_MODELS, UNIT

# Eight lines of findings, and two that name what they leave out (issue 22: the story hides
# nothing): the rows that ran but are not in the figures, and the rows that never ran.
MAX_LINES = 10
# Cheaper model second: the comparisons the ladder's figures answer.
LADDER_PAIRS = [("threads", "gevent-joinall"), ("gevent-joinall", "asyncio-gather")]


@dataclass(frozen=True)
class Figure:
    """A per-request figure, its per-process values, and the words for less and more of it."""

    key: str
    noun: str
    less: str
    more: str
    # Whether a head to head in this figure needs DECIDING_PROCESSES a side to be decided: time
    # and CPU, whose close pairs flipped between identical default runs; memory per waiting
    # request hardly moves from one process to the next, and its verdicts replicated.
    needs_processes: bool = True

    def groups(self, row: Row) -> list[list[float]]:
        if self.key == "seconds":
            return row.round_groups
        # Runs saved before the per-process figures: one value, no interval.
        return row.info.get(f"{self.key}_by_process") or [[row.info[self.key]]]


TIME = Figure("seconds", "time", "faster", "slower")
MEMORY = Figure("peak_rss_per_inflight_bytes", "memory", "less memory", "more memory", needs_processes=False)
CPU = Figure("cpu_per_request_ms", "CPU", "less CPU", "more CPU")


def decided(s: Speedup, figure: Figure, head_to_head: bool = False) -> bool:
    """Whether the line's verdict replicates (``Speedup.decided``): memory, or a time against
    sequential, always; a head to head in time or CPU only with processes enough or a wide gap."""
    return not (head_to_head and figure.needs_processes) or s.decided


def verdict(s: Speedup, figure: Figure, head_to_head: bool = False) -> str:
    """'1.4x less memory', 'the same CPU within ±25% (1.03x)', '1.63x in CPU, not resolved
    (interval 0.80-3.20)', '1.02x in time, not decided by 3 processes a side (...)' for a
    ``head_to_head`` the run has too few processes for: ``s.ratio`` is the first's figure over
    the second's. A line that decides nothing names no direction: which side its ratio falls
    is the noise it did not resolve."""
    ratio = f"{_times(s.ratio)} {figure.less}" if s.ratio > 1 else f"{_times(1 / s.ratio)} {figure.more}"
    plain = f"{s.ratio:.2f}x in {figure.noun}"
    if s.verdict is Verdict.NOT_RANKED:
        return f"{plain}, too few rounds to rank"
    if not decided(s, figure, head_to_head):
        return f"{plain}, {s.not_decided()}"
    if s.verdict is Verdict.EQUIVALENT:
        return f"the same {figure.noun} within {within(s.margin)} ({s.ratio:.2f}x)"
    if s.verdict is Verdict.UNDETERMINED:
        return f"{plain}, not resolved by this run (interval {s.low:.2f}-{s.high:.2f})"
    return ratio


def outcome(s: Speedup, figure: Figure, head_to_head: bool = False) -> str:
    """How the second of a comparison fared, for the seed's claim: 'the same time (within ±5%)',
    'win in memory (2.1x less memory)', 'CPU not resolved by this run (1.63x, interval 0.80-3.20)',
    'time not decided by 3 processes a side (1.02x, ...)'."""
    if s.verdict is not Verdict.NOT_RANKED and not decided(s, figure, head_to_head):
        return f"{figure.noun} {s.not_decided(f'{s.ratio:.2f}x, ')}"
    if s.verdict is Verdict.EQUIVALENT:
        return f"the same {figure.noun} (within {within(s.margin)})"
    if s.verdict is Verdict.DIFFERENT:
        return f"{'win' if s.ratio > 1 else 'lose'} in {figure.noun} ({verdict(s, figure)})"
    if s.verdict is Verdict.UNDETERMINED:
        return f"{figure.noun} not resolved by this run ({s.ratio:.2f}x, interval {s.low:.2f}-{s.high:.2f})"
    return f"{figure.noun} not ranked (too few rounds)"


class Comparisons:
    """Every interval of the summary, computed once; a workload's lines share one 95%.

    As in the workload's own verdict table (Bonferroni within a workload): the seed's
    comparison and a rung of the ladder are different workloads, asking different questions.
    Each figure is read against its own margin, as the run recorded it.
    """

    def __init__(self, wanted: list[tuple[Row, Row, Figure]]) -> None:
        per_workload = Counter(a.group for a, _, _ in wanted)
        self.margins = Margins.of([row.info for a, b, _ in wanted for row in (a, b)])
        margin = {TIME: self.margins.time, MEMORY: self.margins.memory, CPU: self.margins.cpu}
        self.results = {
            (a.label, b.label, f.key, a.group): speedup(
                f.groups(a), f.groups(b), per_workload[a.group], margin[f]
            )
            for a, b, f in wanted
        }

    def __call__(self, a: Row, b: Row, figure: Figure) -> Speedup:
        return self.results[(a.label, b.label, figure.key, a.group)]


def held(row: Row) -> bool:
    """The row reached every request in flight its model allows, in every round (its worst vs
    max_in_flight_allowed): only then are its costs the rung's (issue 22, item 4)."""
    reached, asked = reached_in_flight(row.info), row.info.get("max_in_flight_allowed")
    return reached is None or asked is None or reached >= asked


def reached(row: Row) -> str:
    """'threads reached 4,369 of 10,000 in flight'."""
    info = row.info
    return (
        f"{row.strategy} reached {reached_in_flight(info):,} of {info['max_in_flight_allowed']:,} in flight"
    )


@dataclass(frozen=True)
class Skipped:
    """A row skipped before it ran (nothing saved): its workload, its label, and why."""

    scenario: str
    requests: int
    label: str
    reason: str


def story_lines(
    rows: list[Row], beyond: list[int] | None = None, skipped: list[Skipped] | None = None
) -> list[str]:
    """The closing summary; empty when the run holds neither the seed's comparison nor the ladder.

    ``skipped``: the rows of the seed and the ladder skipped before running (known to the live
    run only), named with their reasons, as every INVALID row is with its reason and owner."""
    skipped = [s for s in skipped or [] if s.scenario in ("seed", "ladder")]
    seed = [r for r in rows if r.info.get("scenario") == "seed" and r.valid]
    ran = [r for r in rows if r.info.get("scenario") == "ladder" and r.valid]
    # Costs and comparisons at a rung come only from the rows that held it.
    rungs: dict[int, dict[str, Row]] = {}
    for row in ran:
        if held(row):
            rungs.setdefault(row.info["requests"], {})[row.strategy] = row
    if not skipped and not any(r.info.get("scenario") in ("seed", "ladder") for r in rows):
        return []
    against_sequential = [(ref, r) for r in seed if (ref := reference_for(r, seed)) and ref is not r]
    seed_pairs = head_to_heads(seed)
    # The costs: the highest rung where two models held (or one, if no rung has two), so a
    # greenlet is set beside a thread or a task; comparisons need both models and rounds enough.
    top = max(rungs, key=lambda n: (min(len(rungs[n]), 2), n)) if rungs else None
    ranked = [
        n for n in rungs if all(len(r.round_seconds) >= MIN_ROUNDS_FOR_INTERVAL for r in rungs[n].values())
    ]
    compared = max(ranked or rungs, key=lambda n: (len(rungs[n]), n)) if rungs else None
    ladder_pairs = [
        (rungs[compared][a], rungs[compared][b])
        for a, b in LADDER_PAIRS
        if compared and {a, b} <= set(rungs[compared])
    ]
    compare = Comparisons(
        [(a, b, TIME) for a, b in against_sequential + seed_pairs]
        + [(a, b, f) for a, b in ladder_pairs for f in (MEMORY, CPU, TIME)]
    )
    lines = [
        f"the story, from this run (the same: the interval over processes lies within the margin, "
        f"{compare.margins.describe()}; not resolved: it reaches across the margin; not decided: a head to head "
        f"in time or CPU on fewer than {DECIDING_PROCESSES} processes a side, unless past twice the margin; "
        "95% for each workload's lines):"
    ]
    if seed:
        lines += _seed_lines(seed, against_sequential, seed_pairs, compare)
    if top:
        partial = [r for r in ran if r.info["requests"] == top and not held(r)]
        lines += _ladder_lines(rungs, top, compared, ladder_pairs, compare, beyond or [], partial, ran)
    shown_partial = {id(r) for r in ran if r.info["requests"] == top and not held(r)}
    lines += _unshown_lines(
        [r for r in ran if not held(r) and id(r) not in shown_partial],
        [r for r in rows if r.info.get("scenario") in ("seed", "ladder") and not r.valid],
        skipped,
    )
    claim = _claim(seed_pairs, ladder_pairs, compared, compare)
    if claim:
        lines.append(claim)
    return lines[:MAX_LINES]


def _unshown_lines(partial: list[Row], invalid: list[Row], skipped: list[Skipped]) -> list[str]:
    """What the lines above leave out, each with why: rows that held fewer than asked (at a rung
    other than the one whose costs are shown), INVALID rows (reason and whose lateness), rows
    skipped before running. At most two lines: what ran, and what did not."""
    lines = []
    ran = [f"at {r.info['requests']:,}, {reached(r)}, so its costs are not that rung's" for r in partial]
    ran += [f"{_where(r)} {r.label} INVALID: {r.info.get('invalid_reason')}" for r in invalid]
    if ran:
        lines.append("not in the figures above: " + "; ".join(ran))
    by_reason: dict[tuple[str, int, str], list[str]] = {}
    for s in skipped:
        by_reason.setdefault((s.scenario, s.requests, s.reason), []).append(s.label)
    if by_reason:
        lines.append(
            "skipped before running (nothing ran): "
            + "; ".join(
                f"{_where_of(scenario, requests)} {', '.join(labels)}: {reason}"
                for (scenario, requests, reason), labels in by_reason.items()
            )
        )
    return lines


def _where(row: Row) -> str:
    return _where_of(row.info["scenario"], row.info["requests"])


def _where_of(scenario: str, requests: int) -> str:
    return f"ladder at {requests:,}:" if scenario == "ladder" else f"{scenario}:"


def _seed_lines(seed: list[Row], against_sequential, pairs, compare: Comparisons) -> list[str]:
    info = seed[0].info
    workload = f"{info['requests']} x {info['delay_ms']} ms, pools of {info['concurrency']}"
    lines = []
    if against_sequential:
        reference = against_sequential[0][0]
        lines.append(
            f"seed ({workload}), against {reference.label} ({reference.median_seconds:.2f} s): "
            + ", ".join(f"{b.label} {verdict(compare(a, b, TIME), TIME)}" for a, b in against_sequential)
        )
    if pairs:
        across = any(a.client != b.client for a, b in pairs)
        lines.append(
            "seed, head to head: "
            + "; ".join(
                f"{b.label} vs {a.label}: {verdict(compare(a, b, TIME), TIME, True)}" for a, b in pairs
            )
            + (" (a pair with different clients mixes the model with the client)" if across else "")
        )
    return lines


def _ladder_lines(
    rungs, top: int, compared: int, pairs, compare: Comparisons, beyond: list[int], partial, ran
) -> list[str]:
    """Costs at ``top`` from the rows that held it, and what the others there reached;
    comparisons at ``compared``; ``beyond``: rungs the instrument did not hold in this run (known
    to the live run only)."""
    at_top = [rungs[top][m] for m in LADDER_MODELS if m in rungs[top]]
    stops = [n for n in beyond if n > top]
    rounds = min(len(r.round_seconds) for r in at_top)
    where = f"{top:,} in flight ({at_top[0].client} client, x {at_top[0].info['delay_ms']} ms"
    where += f", {rounds} round{'s' if rounds > 1 else ''} each)"
    if stops:
        where += f"; {min(stops):,} was beyond the instrument here (named below)"
    line = f"ladder, {where}: one waiting request costs " + ", ".join(
        f"{UNIT.get(r.strategy, r.strategy)} {format_bytes(r.info['peak_rss_per_inflight_bytes'])} "
        f"and {r.info['cpu_per_request_ms']:.2f} ms CPU"
        for r in at_top
    )
    if partial:
        line += "; " + ", ".join(reached(r) for r in partial) + ", so its costs are not this rung's"
    lines = [line]
    at_compared = [rungs[compared][m] for m in LADDER_MODELS if m in rungs[compared]]
    if pairs:
        lines.append(
            f"at {compared:,}, cost: "
            + "; ".join(
                f"{UNIT.get(b.strategy, b.strategy)} against {UNIT.get(a.strategy, a.strategy)}: "
                f"{verdict(compare(a, b, MEMORY), MEMORY, True)}, {verdict(compare(a, b, CPU), CPU, True)}"
                for a, b in pairs
            )
        )
        lines.append(
            f"at {compared:,}, wall time: "
            + ", ".join(f"{r.strategy} {r.median_seconds:.2f} s" for r in at_compared)
            + f" (ideal {at_compared[0].info['ideal_seconds']:.2f} s); "
            + "; ".join(
                f"{b.strategy} vs {a.strategy}: {verdict(compare(a, b, TIME), TIME, True)}" for a, b in pairs
            )
        )
    # Efficiency from every valid row, a partial one with what it reached: where threads fall short.
    by_rung: dict[int, dict[str, Row]] = {}
    for row in ran:
        by_rung.setdefault(row.info["requests"], {})[row.strategy] = row
    if len(by_rung) > 1:
        bottom, highest = min(by_rung), max(by_rung)
        lines.append(
            f"from {bottom:,} to {highest:,} in flight, efficiency (ideal / median): "
            + ", ".join(
                f"{m} {_efficiency(by_rung[bottom][m])} -> {_efficiency(by_rung[highest][m])}"
                + ("" if held(by_rung[highest][m]) else f" ({_reached_only(by_rung[highest][m])})")
                for m in LADDER_MODELS
                if m in by_rung[bottom] and m in by_rung[highest]
            )
        )
    return lines


def _reached_only(row: Row) -> str:
    return f"{reached_in_flight(row.info):,} of {row.info['max_in_flight_allowed']:,} in flight"


def _efficiency(row: Row) -> str:
    value = row.info.get("efficiency")
    return "-" if value is None else f"{value:.2f}"


def _claim(seed_pairs, ladder_pairs, top, compare: Comparisons) -> str | None:
    """The seed's claim, greenlets beat threads on IO, judged on equivalence by this run's
    comparisons of the two: "the same time (within ±5%)" is a finding, "wins by 1.02x" is not."""
    parts = []
    seed = next(((a, b) for a, b in seed_pairs if (a.strategy, b.strategy) == LADDER_PAIRS[0]), None)
    if seed:
        a, b = seed
        parts.append(f"at the seed's scale ({b.client}): {outcome(compare(a, b, TIME), TIME, True)}")
    ladder = next(((a, b) for a, b in ladder_pairs if (a.strategy, b.strategy) == LADDER_PAIRS[0]), None)
    if ladder:
        a, b = ladder
        parts.append(
            f"at {top:,} in flight ({b.client}): "
            + ", ".join(outcome(compare(a, b, f), f, True) for f in (TIME, MEMORY, CPU))
        )
    if not parts:
        return None
    return "the seed's claim (coroutines beat threads on IO), greenlets against threads: " + "; ".join(parts)
