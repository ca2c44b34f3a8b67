"""How far identical work moves: the data behind the equivalence margins (issue 26).

``python -m bench.analysis.spread --aa results/runs/aa.json --repeated results/runs/six*.json
--runs results/baseline/baseline.json`` prints, for time, memory per waiting request and CPU per
request:

- **A/A twins**: the twin's figure over the original's (the same module in workers of its own),
  with the interval the verdicts would give it, at one comparison;
- **between processes**: in every row of every run given, how far one worker process's figure
  strays from the row's median (the noise an interval sees);
- **repeated runs**: for every head-to-head pair of rows present in all the repeated runs, how
  far the ratio of the pair moved from one run to the next (the noise the interval must stay
  inside for a verdict to replicate).

A margin below the A/A and run-to-run figures would call identical work different; a margin far
above them would call real differences "the same".
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys

from bench.analysis.results import ResultsError, Run, load_run
from bench.analysis.story import CPU, MEMORY, TIME, Figure
from bench.analysis.summary import Row, head_to_heads
from bench.analysis.verdicts import speedup
from bench.names import TWIN_SUFFIX

FIGURES = (TIME, MEMORY, CPU)


def _median(figure: Figure, row: Row) -> float:
    return statistics.median(value for group in figure.groups(row) for value in group)


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def aa_lines(paths: list[str]) -> list[str]:
    return [line for path in paths for line in aa_lines_of(load_run(path))]


def aa_lines_of(run: Run) -> list[str]:
    """The twins of one run, each figure's ratio and how far its interval reaches from 1."""
    lines = []
    for group, rows in run.groups().items():
        by_strategy = {row.strategy: row for row in rows if row.valid}
        for name, twin in by_strategy.items():
            original = by_strategy.get(name.removesuffix(TWIN_SUFFIX))
            if not name.endswith(TWIN_SUFFIX) or original is None:
                continue
            for figure in FIGURES:
                if figure.key != "seconds" and not _has(figure, twin):
                    continue
                s = speedup(figure.groups(twin), figure.groups(original))
                lines.append(
                    f"A/A {group}, {figure.noun}: twin / original {s.ratio:.3f} ({_percent(s.ratio)}), "
                    f"95% CI {s.low:.3f}-{s.high:.3f} over {s.processes} processes: "
                    f"reaches {(max(1 / s.low, s.high) - 1) * 100:.1f}% from 1"
                )
    return lines


def _has(figure: Figure, row: Row) -> bool:
    """Memory and CPU per request are figures of IO rows: the CPU control waits on nothing."""
    return row.info.get("kind") == "io" and row.info.get(figure.key) is not None


def process_lines(paths: list[str]) -> list[str]:
    return process_lines_of([load_run(path) for path in paths])


def process_lines_of(runs: list[Run]) -> list[str]:
    """Per figure: the largest and the median stray of one process from its row's median."""
    strays: dict[str, list[float]] = {f.noun: [] for f in FIGURES}
    for run in runs:
        for row in run.rows:
            if not row.valid:
                continue
            for figure in FIGURES:
                if figure.key != "seconds" and not _has(figure, row):
                    continue
                per_process = [statistics.median(group) for group in figure.groups(row)]
                if len(per_process) < 2:
                    continue
                middle = statistics.median(per_process)
                strays[figure.noun] += [abs(math.log(value / middle)) for value in per_process if value > 0]
    return [
        f"between processes, {noun}: one process strays from its row's median by "
        f"{_spread(values, statistics.median)} (median), {_spread(values, max)} (largest), "
        f"over {len(values)} processes"
        for noun, values in strays.items()
        if values
    ]


def _spread(log_strays: list[float], pick) -> str:
    return f"{(math.exp(pick(log_strays)) - 1) * 100:.1f}%"


def repeated_lines(paths: list[str]) -> list[str]:
    """Per figure: how far each head-to-head ratio moved across the repeated runs (largest / smallest)."""
    runs = [load_run(path) for path in paths]
    lines = []
    for group in runs[0].groups():
        pairs_per_run = []
        for run in runs:
            rows = run.groups().get(group)
            if rows is None:
                break
            pairs_per_run.append({(a.label, b.label): (a, b) for a, b in head_to_heads(rows)})
        if len(pairs_per_run) < len(runs):
            continue
        common = set.intersection(*(set(pairs) for pairs in pairs_per_run))
        for figure in FIGURES:
            moves = []
            for key in sorted(common):
                ratios = [
                    _median(figure, a) / _median(figure, b)
                    for a, b in (pairs[key] for pairs in pairs_per_run)
                    if figure.key == "seconds" or (_has(figure, a) and _has(figure, b))
                ]
                if len(ratios) == len(runs):
                    moves.append((max(ratios) / min(ratios), key))
            if not moves:
                continue
            moves.sort()
            widest, (b_label, a_label) = moves[-1][0], moves[-1][1]
            lines.append(
                f"{len(runs)} repeated runs, {group}, {figure.noun}: a head-to-head ratio moved by "
                f"{(statistics.median(m for m, _ in moves) - 1) * 100:.1f}% (median of {len(moves)} pairs), "
                f"{(widest - 1) * 100:.1f}% at most ({a_label} vs {b_label})"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.analysis.spread",
        description="How far identical work moves in saved runs: A/A twins, worker processes, repeated runs.",
    )
    parser.add_argument("--aa", nargs="*", default=[], metavar="RUN", help="runs with A/A twins")
    parser.add_argument(
        "--repeated", nargs="*", default=[], metavar="RUN", help="runs of the same command, one after another"
    )
    parser.add_argument(
        "--runs", nargs="*", default=[], metavar="RUN", help="more runs whose processes to count"
    )
    args = parser.parse_args(argv)
    if len(args.repeated) == 1:
        parser.error("--repeated needs at least two runs to see them move")
    try:
        lines = (
            aa_lines(args.aa)
            + process_lines(args.aa + args.repeated + args.runs)
            + (repeated_lines(args.repeated) if args.repeated else [])
        )
    except ResultsError as exc:
        print(f"bench.analysis.spread: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
