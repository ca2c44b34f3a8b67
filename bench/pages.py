"""The pages' figures from committed runs: ``python -m bench.pages [--check]``.

A page (README.md, docs/**/*.md) marks each measured table or sentence as a block::

    <!-- figures: results/baseline/baseline.json ladder-table scenario=ladder -->
    (filled by this command)
    <!-- /figures -->

naming the run file and a figure of bench/reporting/figures.py; ``key=value`` words select the
rows (matched against their ``extra_info``). Without ``--check`` every block is re-rendered in
place. With ``--check`` nothing is written and the exit status is 1 when a block differs from
what its run gives (the page, the block and the first differing line are named), when a cited
run's summary disagrees with its own rounds, or when a cited run fails the provenance rule
(bench/reporting/provenance.py: a clean tree at one commit, an ancestor of HEAD). Committed run
files that no page cites are listed, not failed: they are to be cited or removed. Exit status 2:
a block that cannot be rendered (an unknown figure, a missing file, no row selected).

Why marked blocks rather than a docs-build plugin: the README is read on GitHub, outside the
docs site, so its figures must be in the committed text; the same blocks in docs/ keep one
mechanism, and ``git diff`` after a re-made run shows exactly which figures moved.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.analysis.results import ResultsError, Run, load_run
from bench.reporting import provenance
from bench.reporting.figures import FigureError, render

ROOT = Path(__file__).resolve().parent.parent
OPEN = re.compile(r"^<!-- figures: (?P<words>.+?) -->$")
CLOSE = "<!-- /figures -->"
# The generated report is the report's own page (bench/report.py), not one of these.
NOT_PAGES = ("docs/report/",)
# Run files a page may cite, and that are listed when none does.
RUN_FILES = ("results/baseline/*.json", "results/runs/*.json")
# The median pytest-benchmark saved against the one its rounds give: both are float64 from the
# same numbers, so anything beyond rounding means one of them was changed.
SUMMARY_TOLERANCE = 1e-9


class PagesError(ValueError):
    """A page or a block that cannot be rendered; the message names the page and the line."""


@dataclass
class Block:
    page: str  # relative to the root
    line: int  # of the opening marker, 1-based
    run: str  # the run file, relative to the root
    figure: str
    words: dict[str, str]
    start: int  # index of the first line inside the block
    end: int  # index of the closing marker

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}: figure {self.figure} of {self.run}"


def pages(root: Path) -> list[Path]:
    found = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [p for p in found if p.is_file() and not p.relative_to(root).as_posix().startswith(NOT_PAGES)]


def blocks_of(page: str, lines: list[str]) -> list[Block]:
    """The page's blocks; a marker inside a fenced code block is an example, not a block."""
    found, i, fenced = [], 0, False
    while i < len(lines):
        if lines[i].lstrip().startswith("```"):
            fenced = not fenced
        opening = None if fenced else OPEN.match(lines[i].strip())
        if opening:
            try:
                run, figure, *rest = shlex.split(opening["words"])
                words = dict(word.split("=", 1) for word in rest)
            except ValueError:
                raise PagesError(
                    f"{page}:{i + 1}: a block opens with <!-- figures: RUN FIGURE [key=value ...] -->"
                ) from None
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == CLOSE), None)
            if end is None or any(OPEN.match(line.strip()) for line in lines[i + 1 : end]):
                raise PagesError(f"{page}:{i + 1}: the block is not closed by {CLOSE} before the next one")
            found.append(Block(page, i + 1, run, figure, words, i + 1, end))
            i = end
        i += 1
    return found


class Runs:
    """Each cited run loaded once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._runs: dict[str, Run] = {}

    def __call__(self, block: Block) -> Run:
        if block.run not in self._runs:
            try:
                run = load_run(self.root / block.run)
            except ResultsError as exc:
                raise PagesError(f"{block.where}: {str(exc).replace(str(self.root) + '/', '')}") from None
            run.path = Path(block.run)
            self._runs[block.run] = run
        return self._runs[block.run]


def rendered(block: Block, runs: Runs) -> list[str]:
    try:
        text = render(runs(block), block.figure, block.words)
    except FigureError as exc:
        raise PagesError(f"{block.where}: {exc}") from None
    return ["", *text.splitlines(), ""]


def update(root: Path) -> list[str]:
    """Re-render every block in place; return the pages that changed."""
    runs, changed = Runs(root), []
    for path in pages(root):
        page = path.relative_to(root).as_posix()
        lines = path.read_text().splitlines()
        for block in reversed(blocks_of(page, lines)):  # from the end: earlier indices stay put
            lines[block.start : block.end] = rendered(block, runs)
        text = "\n".join(lines) + "\n"
        if text != path.read_text():
            path.write_text(text)
            changed.append(page)
    return changed


def figure_problems(root: Path) -> tuple[list[str], dict[str, list[Block]]]:
    """Blocks that differ from their runs, and the blocks citing each run file."""
    runs, problems, cited = Runs(root), [], {}
    for path in pages(root):
        page = path.relative_to(root).as_posix()
        lines = path.read_text().splitlines()
        for block in blocks_of(page, lines):
            cited.setdefault(block.run, []).append(block)
            want, have = rendered(block, runs), lines[block.start : block.end]
            if want != have:
                problems.append(f"{block.where} differs from its run: {_first_difference(have, want)}")
    return problems, cited


def _first_difference(have: list[str], want: list[str]) -> str:
    for n, (old, new) in enumerate(zip(have, want, strict=False)):
        if old != new:
            return f"block line {n}: the page has {old!r}, the run gives {new!r}"
    longer, which = (have, "the page has") if len(have) > len(want) else (want, "the run gives")
    return f"block line {min(len(have), len(want))}: {which} more: {longer[min(len(have), len(want))]!r}"


def summary_problems(run: Run, document_rows: list[dict]) -> list[str]:
    """Benchmarks whose saved median, min or max is not what their own rounds give."""
    problems = []
    for bench in document_rows:
        stats = bench.get("stats") or {}
        data = stats.get("data") or []
        if not data:
            continue
        for name, value in (("median", statistics.median(data)), ("min", min(data)), ("max", max(data))):
            saved = stats.get(name)
            if saved is not None and abs(saved - value) > SUMMARY_TOLERANCE * max(1.0, abs(value)):
                problems.append(
                    f"{run.path.as_posix()}: {bench.get('name')}: saved {name} {saved:.6f} s, "
                    f"its rounds give {value:.6f} s"
                )
    return problems


def run_problems(root: Path, cited: dict[str, list[Block]], check_provenance: bool = True) -> list[str]:

    problems = []
    for name, blocks in sorted(cited.items()):
        path = root / name
        run = load_run(path)
        run.path = Path(name)
        found = summary_problems(run, json.loads(path.read_text())["benchmarks"])
        if check_provenance:
            found += [f"{name}: {problem}" for problem in provenance.cited_run_problems(run.context, root)]
        figures = ", ".join(f"{b.page}:{b.line} {b.figure}" for b in blocks)
        problems += [f"{problem} (cited by {figures})" for problem in found]
    return problems


def uncited(root: Path, cited: dict[str, list[Block]]) -> list[str]:
    """Committed run files no page cites."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "--", *RUN_FILES], capture_output=True, text=True, check=False
    ).stdout.split()
    return [name for name in listed if name not in cited]


def report_problems(root: Path) -> list[str]:
    """The committed report's text against the one its committed runs give now (its charts are
    not compared: they draw the same figures). None to check where there is no report."""
    from bench import report  # its charts pull in matplotlib; only this check needs it

    committed = root / report.DEFAULT_OUT.relative_to(report.RESULTS_DIR.parent) / "report.md"
    if not committed.exists():
        return []
    text = committed.read_text()
    drawn = re.findall(r"^!\[(.*)\]\((.*)\)$", text, re.MULTILINE)
    fresh = report.markdown_of([load_run(root / name) for name in report.COMMITTED_RUNS], drawn)
    for number, (old, new) in enumerate(zip(text.splitlines(), fresh.splitlines(), strict=False), 1):
        if old != new:
            return [
                f"{committed.relative_to(root)}:{number} differs from what {', '.join(report.COMMITTED_RUNS)} "
                f"give now (run `python -m bench.report {' '.join(report.COMMITTED_RUNS)}`):\n"
                f"  committed: {old}\n  now:       {new}"
            ]
    if text.splitlines() != fresh.splitlines():
        return [f"{committed.relative_to(root)} has not the length its runs give now"]
    return []


def check(root: Path, check_provenance: bool = True) -> tuple[list[str], list[str]]:
    """(problems that fail the check, committed run files no page cites)."""
    problems, cited = figure_problems(root)
    problems += run_problems(root, cited, check_provenance) + report_problems(root)
    return problems, uncited(root, cited)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pages",
        description="Fill the pages' figure blocks from the run files they name, or check that they match.",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 when a page or a run fails"
    )
    parser.add_argument(
        "--no-provenance",
        action="store_true",
        help="with --check: skip the provenance rule (for a run being re-made; CI never skips it)",
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    try:
        if not args.check:
            for page in update(root):
                print(f"bench.pages: rendered {page}")
            return 0
        problems, not_cited = check(root, not args.no_provenance)
    except (PagesError, ResultsError) as exc:
        print(f"bench.pages: {exc}", file=sys.stderr)
        return 2
    for name in not_cited:
        print(f"bench.pages: {name} is cited by no page (cite it or remove it)")
    for problem in problems:
        print(f"bench.pages: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
