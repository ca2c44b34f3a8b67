"""The regression gate: ``python -m bench.compare BASELINE.json CURRENT.json``.

For every workload (pytest-benchmark group) and strategy in both runs it shows, baseline ->
current with the change in %: the speedup over sequential, the efficiency (ideal / median; for
a row bound by its client's CPU, the median against that bound), the peak memory per waiting
request and the median wall time. It exits 1 when a machine-independent figure
regressed past its limit (speedup or efficiency fell, memory per waiting request rose), when
a row of CURRENT is INVALID, or when a row of BASELINE is missing from CURRENT; 0 otherwise.

A regression is a change past its limit that the runs can tell from noise (issue 26): its point
is past the limit and its interval over worker processes (bench/analysis/verdicts.py, the two
runs' rounds resampled by process) excludes "no change". A change whose point is past the limit
but whose interval holds "no change" is *not resolved*: the table says so and the gate lists it,
and passes unless --fail-unresolved (two runs of a few processes cannot tell it from noise; rerun
both with more --bench-processes). A figure with fewer than 3 rounds on a side has no interval
and is judged on its point, as before. A workload of the baseline that the current run does not
have (a rung the preflight did not certify there, or a changed workload) is listed as not
compared, never passed over in silence; --fail-missing-workload fails on it.

It exits 2 on unusable input, and when the two runs ran on different Python versions (feature version,
e.g. 3.11 against 3.12) unless --allow-python-mismatch. Seconds depend on the machine and are
gated only with --gate-seconds; so are the speedup and efficiency of a pool of processes,
which move with the number of cores.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from typing import NamedTuple

from bench.analysis import story
from bench.analysis.results import ResultsError, Run, load_run
from bench.analysis.summary import Row, format_bytes, reference_for
from bench.analysis.verdicts import Speedup, speedup
from bench.reporting.versions_report import python_mismatch

# Both from two identical runs of the CI workload on the 2-core development machine
# (docs/reference/results-and-gate.md, "How the gate's limits were chosen"): about twice the largest change seen between them.
# IO speedups and efficiencies moved by up to 9.3% (threads), so a 20% fall is not noise.
DEFAULT_MAX_REGRESSION = 0.20
# A row's peak moved by up to 541 KiB (processpool's sampled PSS; other rows up to 120 KiB):
# a rise smaller than this in the row's total peak is noise, whatever its %.
MEMORY_NOISE_FLOOR_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Figure:
    name: str
    higher_is_better: bool
    machine_independent: bool


SPEEDUP = Figure("speedup", higher_is_better=True, machine_independent=True)
EFFICIENCY = Figure("efficiency", higher_is_better=True, machine_independent=True)
MEMORY = Figure("memory", higher_is_better=False, machine_independent=True)
SECONDS = Figure("seconds", higher_is_better=False, machine_independent=False)
FIGURES = (SPEEDUP, EFFICIENCY, MEMORY, SECONDS)
LABELS = {
    "speedup": "speedup vs sequential",
    "efficiency": "efficiency",
    "memory": "memory per waiting request",
    "seconds": "median wall time",
}


def figures_of(row: Row, rows: list[Row]) -> dict[str, float | None]:
    reference = reference_for(row, rows)
    reference = reference if reference and reference.valid else None
    return {
        "speedup": reference.median_seconds / row.median_seconds if reference else None,
        # ideal / median (issue 22, item 3; runs saved before read so by results.migrate).
        "efficiency": row.info.get("efficiency"),
        "memory": row.info.get("peak_rss_per_inflight_bytes"),
        "seconds": row.median_seconds,
    }


def cpu_bound(info: dict) -> bool:
    """The client's CPU time over its cores, not the delay, was the larger limit of the row."""
    return info.get("efficiency_bound") == "cpu"


def uses_several_cores(info: dict) -> bool:
    """A pool of processes: its speed and efficiency move with the machine's cores (issue 19, item 6).

    Runs saved before ``efficiency_cores`` existed are known by their process count.
    """
    return (info.get("efficiency_cores") or 1) > 1 or (info.get("processes_peak") or 1) > 1


def change(before: float | None, after: float | None) -> float | None:
    if before is None or after is None or before == 0:
        return None
    return (after - before) / before


class Change(NamedTuple):
    """A figure's current / baseline, with the interval of that ratio (nan: too few rounds)."""

    ratio: float
    low: float = math.nan
    high: float = math.nan

    @classmethod
    def of(cls, s: Speedup) -> Change:
        return cls(s.ratio, s.low, s.high)

    def log_half_width(self) -> float:
        return math.log(self.high / self.ratio)

    def times(self, other: Change, sign: int) -> Change:
        """This change times ``other`` (sign 1) or over it (sign -1); their widths add in quadrature."""
        ratio = self.ratio * other.ratio**sign
        half = math.hypot(self.log_half_width(), other.log_half_width())
        return Change(ratio, ratio * math.exp(-half), ratio * math.exp(half))

    def with_width_of(self, other: Change) -> Change:
        half = other.log_half_width()
        return Change(self.ratio, self.ratio * math.exp(-half), self.ratio * math.exp(half))


def changes_of(base: Row, base_rows: list[Row], now: Row, current_rows: list[Row], comparisons: int):
    """Each figure's change (current / baseline) with its interval over the two runs' processes.

    The wall time's and the memory's are resampled directly; the speedup's is the row's and
    its sequential row's together; the efficiency's is its wall time's (ideal / median).
    """
    before, after = figures_of(base, base_rows), figures_of(now, current_rows)

    def resampled(figure: story.Figure, a: Row, b: Row) -> Change:
        # speedup(reference, candidate) is median(reference) / median(candidate): current / baseline.
        return Change.of(speedup(figure.groups(b), figure.groups(a), comparisons))

    seconds = resampled(story.TIME, base, now)
    changes = {"seconds": seconds}
    if before["memory"] and after["memory"]:
        changes["memory"] = resampled(story.MEMORY, base, now)
    if before["efficiency"] and after["efficiency"]:
        changes["efficiency"] = Change(after["efficiency"] / before["efficiency"]).with_width_of(seconds)
    base_ref, now_ref = reference_for(base, base_rows), reference_for(now, current_rows)
    if before["speedup"] and after["speedup"]:
        # speedup = reference seconds / row seconds, so its change is the reference's over the row's.
        changes["speedup"] = resampled(story.TIME, base_ref, now_ref).times(seconds, -1)
    return changes


@dataclass
class Comparison:
    tables: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    # Changes past a limit that the two runs could not tell from noise (see the module's docstring).
    unresolved: list[str] = field(default_factory=list)
    # Workloads of the baseline the current run does not have: not compared, and said so.
    missing_workloads: list[str] = field(default_factory=list)


def compare_runs(baseline: Run, current: Run, limits: dict[str, float], gate_seconds: bool) -> Comparison:
    base_groups, current_groups = baseline.groups(), current.groups()
    common = [group for group in base_groups if group in current_groups]
    if not common:
        raise ResultsError(
            f"no workload in common between {baseline.path} ({', '.join(base_groups)}) "
            f"and {current.path} ({', '.join(current_groups)})"
        )
    result = Comparison()
    result.missing_workloads = [group for group in base_groups if group not in current_groups]
    for group in common:
        base_rows, current_rows = base_groups[group], current_groups[group]
        by_name = {row.label: row for row in current_rows}
        table = []
        for base in base_rows:
            now = by_name.get(base.label)
            if now is None:
                result.failures.append(
                    f"{group} / {base.label}: in the baseline, missing from the current run"
                )
                table.append((base.label, "missing", "", "", "", "FAIL"))
                continue
            table.append(
                _compare_row(group, base, base_rows, now, current_rows, limits, gate_seconds, result)
            )
        for now in current_rows:
            if now.label not in {b.label for b in base_rows}:
                table.append((now.label, "new: not in the baseline", "", "", "", ""))
        result.tables[group] = table
    return result


def _compare_row(group, base, base_rows, now, current_rows, limits, gate_seconds, result) -> tuple[str, ...]:
    if not now.valid:
        result.failures.append(
            f"{group} / {now.label}: INVALID in the current run: {now.info.get('invalid_reason')}"
        )
        return (now.label, "INVALID", "", "", "", "FAIL")
    if not base.valid:
        return (now.label, "baseline INVALID: not compared", "", "", "", "")
    before, after = figures_of(base, base_rows), figures_of(now, current_rows)
    # Every figure of every row of the workload shares one 95% (Bonferroni), as the verdicts do.
    changes = changes_of(base, base_rows, now, current_rows, len(base_rows) * len(FIGURES))
    against_cpu = cpu_bound(base.info) or cpu_bound(now.info)
    if against_cpu:
        # ideal / median of a row bound by its client's CPU moves with the machine's speed: the
        # gate holds its median against that bound instead, and says so.
        before["efficiency"], after["efficiency"] = (
            base.info.get("efficiency_vs_bound"),
            now.info.get("efficiency_vs_bound"),
        )
    cells, verdict = [now.label], "ok"
    for figure in FIGURES:
        delta = change(before[figure.name], after[figure.name])
        worse = delta is not None and (-delta if figure.higher_is_better else delta) > limits[figure.name]
        if worse and figure is MEMORY:
            rise = now.info["peak_rss_above_idle_bytes"] - base.info["peak_rss_above_idle_bytes"]
            # The figure shown is the worst round's; its interval is of the median over processes.
            # One round's outlier moves the first and not the second: a worsening is one only
            # where both are past the limit.
            median = changes.get("memory")
            worse = rise > MEMORY_NOISE_FLOOR_BYTES and (
                median is None or median.ratio - 1 > limits["memory"]
            )
        resolved = not worse or _resolved(changes.get(figure.name), figure, limits[figure.name])
        # On CPU-bound work every strategy is expected at ~1x sequential: a change in that
        # ratio is noise, not a regression (efficiency is still gated there).
        cpu_speedup = figure is SPEEDUP and now.info.get("kind") == "cpu"
        independent = figure.machine_independent and not (
            figure in (SPEEDUP, EFFICIENCY)
            and (uses_several_cores(base.info) or uses_several_cores(now.info))
        )
        gated = (independent or gate_seconds) and not cpu_speedup
        label = LABELS[figure.name] + (
            " against the client's CPU bound" if against_cpu and figure is EFFICIENCY else ""
        )
        what = (
            f"{group} / {now.label}: {label} {_fmt(figure, before[figure.name])} -> "
            f"{_fmt(figure, after[figure.name])} ({delta:+.0%}, limit {limits[figure.name]:.0%})"
            if delta is not None
            else ""
        )
        if worse and gated and resolved:
            verdict = "FAIL"
            result.failures.append(what)
        elif worse and gated:
            interval = changes[figure.name]
            result.unresolved.append(
                f"{what}: not resolved, the change's interval {interval.low:.2f}-{interval.high:.2f}x "
                "reaches back inside the limit"
            )
        mark = ("REGRESSED" if resolved else "NOT RESOLVED") if worse and gated else ""
        cells.append(_cell(figure, before[figure.name], after[figure.name], delta, mark))
    cells.append(verdict)
    return tuple(cells)


def _resolved(change: Change | None, figure: Figure, limit: float) -> bool:
    """Whether a change whose point is past the limit is a worsening the runs can tell from
    noise: its interval excludes "no change" on the worse side. Asking the whole interval to lie
    past the limit let a 54% slowdown (interval 0.53-0.80 against a 25% limit) pass as not
    resolved. A figure with no interval is judged on its point (the caller found it past the limit)."""
    if change is None or math.isnan(change.low):
        return True
    return change.high < 1 if figure.higher_is_better else change.low > 1


def _fmt(figure: Figure, value: float | None) -> str:
    if value is None:
        return "-"
    if figure is SPEEDUP:
        return f"{value:.1f}x"
    if figure is EFFICIENCY:
        return f"{value:.2f}"
    if figure is MEMORY:
        return format_bytes(value)
    return f"{value:.3f} s"


def _cell(figure: Figure, before, after, delta, mark: str) -> str:
    text = f"{_fmt(figure, before)} -> {_fmt(figure, after)}"
    if delta is not None:
        text += f" ({delta:+.1%})"
    return text + (f" {mark}" if mark else "")


HEADER = ("strategy[client]", *(LABELS[f.name] for f in FIGURES), "gate")


def render_text(comparison: Comparison) -> list[str]:
    lines = []
    for group, table in comparison.tables.items():
        rows = [HEADER, *(row + ("",) * (len(HEADER) - len(row)) for row in table)]
        widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
        lines += ["", group]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return lines


def render_markdown(comparison: Comparison) -> list[str]:
    lines = []
    for group, table in comparison.tables.items():
        lines += ["", f"#### {group}", "", "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
        for row in table:
            row = row + ("",) * (len(HEADER) - len(row))
            lines.append("| " + " | ".join(row) + " |")
    if comparison.missing_workloads:
        lines += [
            "",
            "Not compared (in the baseline, not in this run): " + "; ".join(comparison.missing_workloads),
        ]
    return lines


def percentage(text: str) -> float:
    """A limit as typed: '20%' or the fraction '0.2'. A bare number above 1 is refused, not guessed:
    '1' is 100%, so '1.5' cannot also mean 1.5% (issue 19, item 13)."""
    typed = text.strip()
    as_percent = typed.endswith("%")
    try:
        value = float(typed.removesuffix("%"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction such as 0.2 or a percentage such as 20%, got {text!r}"
        ) from None
    if as_percent:
        value /= 100
    elif value > 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is ambiguous: write a fraction <= 1 (0.2) or a percentage (20%)"
        )
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description="Compare two saved runs of pytest bench/ and fail on regressions of "
        "machine-independent figures (speedup, efficiency, memory per waiting request).",
    )
    parser.add_argument(
        "baseline", help="pytest-benchmark JSON of the reference run, e.g. results/baseline/baseline.json"
    )
    parser.add_argument("current", help="pytest-benchmark JSON of the run to judge")
    parser.add_argument(
        "--max-regression",
        type=percentage,
        default=DEFAULT_MAX_REGRESSION,
        metavar="PCT",
        help="the largest tolerated worsening of any gated figure, as a percentage (20%%) or a fraction "
        "<= 1 (0.2); a bare number above 1 is refused (default 20%%)",
    )
    for figure in FIGURES:
        parser.add_argument(
            f"--max-regression-{figure.name}",
            type=percentage,
            default=None,
            metavar="PCT",
            help=f"override --max-regression for {LABELS[figure.name]}",
        )
    parser.add_argument(
        "--gate-seconds", action="store_true", help="also fail when the median wall time rises past the limit"
    )
    parser.add_argument(
        "--fail-unresolved",
        action="store_true",
        help="also fail on a change past its limit whose interval over the runs' processes holds "
        "'no change' (by default listed as not resolved, and passed)",
    )
    parser.add_argument(
        "--fail-missing-workload",
        action="store_true",
        help="also fail when a workload of the baseline is missing from the current run (by default "
        "listed as not compared, and passed: a rung the preflight does not certify on this machine)",
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the tables as Markdown (for a CI job summary)"
    )
    parser.add_argument(
        "--allow-python-mismatch",
        action="store_true",
        help="compare runs of different Python versions anyway (by default that is refused with exit status 2: "
        "a changed figure would be the interpreter's doing, not the code's)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limits = {
        figure.name: args.max_regression if override is None else override
        for figure in FIGURES
        # "is None": an override of 0 (no worsening at all) is a limit, not a missing one.
        for override in [getattr(args, f"max_regression_{figure.name}")]
    }
    try:
        baseline, current = load_run(args.baseline), load_run(args.current)
        mismatch = python_mismatch(baseline, current)
        if mismatch and not args.allow_python_mismatch:
            raise ResultsError(f"{mismatch}; pass --allow-python-mismatch to compare them anyway")
        comparison = compare_runs(baseline, current, limits, args.gate_seconds)
    except ResultsError as exc:
        print(f"bench.compare: {exc}", file=sys.stderr)
        return 2
    lines = render_markdown(comparison) if args.markdown else render_text(comparison)
    print(f"baseline: {args.baseline}\ncurrent:  {args.current}")
    if mismatch:
        print(f"note: {mismatch} (compared anyway: --allow-python-mismatch)")
    print("\n".join(lines))
    print()
    if comparison.unresolved:
        print(
            f"not resolved ({len(comparison.unresolved)}): past a limit, but the runs cannot tell it from noise; "
            "rerun both with more --bench-processes"
            + (" (failing: --fail-unresolved)" if args.fail_unresolved else "")
        )
        for unresolved in comparison.unresolved:
            print(f"  - {unresolved}")
    if comparison.missing_workloads:
        print(
            f"not compared ({len(comparison.missing_workloads)}): workloads of the baseline the current run "
            "does not have" + (" (failing: --fail-missing-workload)" if args.fail_missing_workload else "")
        )
        for group in comparison.missing_workloads:
            print(f"  - {group}")
    missing = [f"{group}: missing from the current run" for group in comparison.missing_workloads]
    failures = (
        comparison.failures
        + (comparison.unresolved if args.fail_unresolved else [])
        + (missing if args.fail_missing_workload else [])
    )
    if failures:
        print(f"gate: FAIL ({len(failures)})")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print("gate: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
