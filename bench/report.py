"""The report: ``python -m bench.report [RESULTS.json ...] [--out DIR]``.

Writes ``report.md``, a self-contained ``report.html`` and the PNG charts into DIR (default
``results/report/``) from one or more saved runs (default: the newest under ``results/``).
The report is built in a temporary folder and moved into place only when complete, so bad
input (exit status 2, one-line reason) never leaves a partial report behind.
"""

from __future__ import annotations

import argparse
import base64
import html
import shutil
import sys
import tempfile
from pathlib import Path

from bench.analysis.results import ResultsError, Run, load_run, newest_saved_run
from bench.analysis.story import story_lines
from bench.analysis.summary import (
    DECOMPOSITION_COLUMNS,
    MEMORY_COLUMNS,
    Row,
    decomposition,
    memory_cells,
    verdict_heading,
    verdict_lines,
)
from bench.analysis.verdicts import Margins
from bench.reporting import charts, markdown, versions_report
from bench.reporting.context import portable

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
DEFAULT_OUT = RESULTS_DIR / "report"
# The committed runs the committed report (DEFAULT_OUT) is drawn from, relative to the project's
# root: ``python -m bench.pages --check`` re-builds its text from them.
COMMITTED_RUNS = ("results/baseline/baseline.json", "results/runs/qsc.json", "results/runs/connections.json")

QUESTION = (
    "When a Python program waits on the network, how much do coroutines buy over sequential code "
    "and threads, in wall time, memory and CPU?"
)
# The IO workload whose rounds the timeline shows and the CPU control stands beside: the seed's
# comparison (story, the default), else quick, else the first.
FIRST_IO = ("seed", "quick")
HEADLINE = "headline.png"

# A report is a list of blocks, rendered once as Markdown and once as HTML.
# ("h1"|"h2"|"h3"|"p", text) · ("table", header, rows) · ("list", items) · ("image", title, filename)


def merge(runs: list[Run]) -> dict[str, list[Row]]:
    """Rows by workload; a later file's row replaces an earlier one of the same workload and strategy[client].

    Runs of different Pythons are never merged: each Python's rows make workloads of their own.
    """
    several = versions_report.several_pythons(runs)
    groups: dict[str, dict[str, Row]] = {}
    for run in runs:
        suffix = f" [Python {versions_report.python_version(run)}]" if several else ""
        for row in run.rows:
            groups.setdefault(row.group + suffix, {})[row.label] = row
    return {group: list(rows.values()) for group, rows in groups.items()}


def _scenario(rows: list[Row]) -> str:
    return rows[0].info.get("scenario", "")


def _models_with_several_clients(rows: list[Row]) -> bool:
    labels = {(row.strategy, row.client) for row in rows if row.valid}
    return len(labels) > len({strategy for strategy, _ in labels})


def draw_charts(groups: dict[str, list[Row]], out: Path) -> list[tuple[str, str]]:
    """Draw every chart the data allows; return (title, filename) pairs."""
    drawn = []
    ladder = {rows[0].info["requests"]: rows for rows in groups.values() if _scenario(rows) == "ladder"}
    if any(row.valid for rows in ladder.values() for row in rows):
        charts.headline(ladder, out / "headline.png")
        drawn.append(
            ("What one waiting request costs each model, against requests in flight", "headline.png")
        )

    main_groups = {
        g: rows for g, rows in groups.items() if _scenario(rows) not in ("sweep", "ladder")
    } or groups
    charts.side_by_side(main_groups, out / "side_by_side.png")
    drawn.append(("Side by side: wall time and peak memory", "side_by_side.png"))

    sweep = {rows[0].info["requests"]: rows for rows in groups.values() if _scenario(rows) == "sweep"}
    if sweep:
        charts.scaling(sweep, out / "scaling.png")
        drawn.append(("Scaling with N (sweep)", "scaling.png"))

    io_groups = [(g, rows) for g, rows in main_groups.items() if rows[0].info.get("kind", "io") == "io"]
    io_groups.sort(
        key=lambda item: FIRST_IO.index(s) if (s := _scenario(item[1])) in FIRST_IO else len(FIRST_IO)
    )
    if io_groups and any(row.info.get("timeline") for row in io_groups[0][1]):
        charts.timeline(io_groups[0][1], io_groups[0][0], out / "timeline.png")
        drawn.append(("Timeline of one round", "timeline.png"))

    several_clients = [(g, rows) for g, rows in io_groups if _models_with_several_clients(rows)]
    if several_clients:
        group, rows = max(several_clients, key=lambda item: len(item[1]))
        charts.clients(rows, group, out / "clients.png")
        drawn.append(("Model or client: each model with each client", "clients.png"))

    cpu = next(((g, rows) for g, rows in groups.items() if rows[0].info.get("kind") == "cpu"), None)
    if cpu and io_groups:
        charts.cpu_control(io_groups[0][1], io_groups[0][0], cpu[1], cpu[0], out / "cpu_control.png")
        drawn.append(("CPU-bound control beside IO", "cpu_control.png"))
    return drawn


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"  # None: a row with no timed round


def _efficiency_cell(info: dict) -> str:
    """ideal / median; where the client's CPU bound is the larger limit, the median against it too."""
    if info["efficiency"] is None:
        return "-"
    if info.get("efficiency_bound") == "cpu":
        return f"{info['efficiency']:.2f} ({info['efficiency_vs_bound']:.2f} of the CPU bound)"
    return f"{info['efficiency']:.2f}"


def time_table(rows: list[Row]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    header = ("strategy", "client", "median s", "min s", "max s", "rounds", "ideal s", "efficiency", "valid")
    body = [
        (
            row.strategy,
            row.client or "-",
            _seconds(row.median_seconds),
            _seconds(row.min_seconds),
            _seconds(row.max_seconds),
            str(len(row.round_seconds)),
            f"{row.info['ideal_seconds']:.3f}",
            _efficiency_cell(row.info),
            "yes" if row.valid else f"INVALID: {row.info.get('invalid_reason')}",
        )
        for row in rows
    ]
    return header, body


def build(runs: list[Run], drawn: list[tuple[str, str]], groups: dict[str, list[Row]]) -> list[tuple]:
    """The answer first (the closing summary, the headline chart), then the seed's comparison, then the rest."""
    blocks: list[tuple] = [("h1", "Concurrency benchmark report"), ("p", QUESTION)]
    images = [("image", title, filename) for title, filename in drawn]
    # The headline chart, then this run's answer in words, then the seed's comparison and the rest.
    headline = images[:1] if drawn and drawn[0][1] == HEADLINE else []
    blocks += headline
    if closing := story_lines([row for rows in groups.values() for row in rows]):
        blocks += [("p", closing[0][0].upper() + closing[0][1:]), ("list", closing[1:])]
    blocks += images[len(headline) :]
    blocks.append(("h2", "Runs"))
    for run in runs:
        context, machine = run.context, run.machine
        cpu = machine.get("cpu", {}) if isinstance(machine.get("cpu"), dict) else {}
        blocks.append(("h3", f"Run {run.path.name}"))
        command = context.get("command")
        facts = [
            f"date: {run.datetime or 'unknown'}",
            f"reproduce with: `{portable(command)}`"
            if command
            else "reproduce with: unknown (saved without this suite context)",
            f"machine: {context.get('cpu_count', cpu.get('count', '?'))} CPUs ({cpu.get('brand_raw', 'unknown CPU')}), "
            f"{context.get('platform', machine.get('system', '?'))}",
            f"Python {context.get('python', machine.get('python_version', '?'))}",
            f"verdicts read against the equivalence margins {Margins.of([row.info for row in run.rows]).describe()}",
        ]
        facts += versions_report.python_facts(context)
        versions = context.get("versions", {})
        if versions:
            facts.append("packages: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
        blocks.append(("list", facts))
    blocks += versions_report.blocks(runs)
    blocks.append(("h2", "Workloads"))
    for group, rows in groups.items():
        blocks.append(("h3", group))
        blocks.append(("p", "Wall time per round (timed from the parent process):"))
        blocks.append(("table", *time_table(rows)))
        blocks.append(("p", "Memory, CPU and latency per round:"))
        blocks.append(("table", MEMORY_COLUMNS, [memory_cells(row.info) for row in rows]))
        heading = verdict_heading(rows)
        blocks.append(("p", f"{heading[0].upper()}{heading[1:]}:"))
        blocks.append(("list", verdict_lines(rows)))
        split = decomposition(rows)
        if len({cells[1] for cells in split}) > 1:
            blocks.append(
                ("p", "The model's cost and the client's (model = the same strategy with the raw client):")
            )
            blocks.append(("table", DECOMPOSITION_COLUMNS, split))
    return blocks


def markdown_of(runs: list[Run], drawn: list[tuple[str, str]]) -> str:
    """The report's Markdown for these runs, given the charts drawn (title, filename)."""
    return to_markdown(build(runs, drawn, merge(runs)))


def to_markdown(blocks: list[tuple]) -> str:
    out = []
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3"):
            out += ["#" * int(kind[1]) + " " + content[0], ""]
        elif kind == "p":
            out += [content[0], ""]
        elif kind == "list":
            out += [f"- {item}" for item in content[0]] + [""]
        elif kind == "table":
            out += [*markdown.table(*content), ""]
        elif kind == "image":
            out += [f"![{content[0]}]({content[1]})", ""]
    return "\n".join(out)


def to_html(blocks: list[tuple], images: Path) -> str:
    out = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Concurrency benchmark report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
        "td:not(:first-child){text-align:right}img{max-width:100%}code{background:#f4f4f4}</style></head><body>",
    ]
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{kind}>{_inline(content[0])}</{kind}>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in content[0]) + "</ul>")
        elif kind == "table":
            header, rows = content
            out.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            out += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
            out.append("</table>")
        elif kind == "image":
            data = base64.b64encode((images / content[1]).read_bytes()).decode()
            out.append(
                f"<figure><img alt='{html.escape(content[0])}' src='data:image/png;base64,{data}'></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out)


def _inline(text: str) -> str:
    """HTML-escape, then turn `code` spans into <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{part}</code>" if i % 2 else part for i, part in enumerate(parts))


def write_report(runs: list[Run], out: Path) -> list[Path]:
    """Build the whole report beside ``out`` and swap it in; return the files written."""
    groups = merge(runs)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        drawn = draw_charts(groups, staging) + versions_report.draw(runs, staging)
        blocks = build(runs, drawn, groups)
        (staging / "report.md").write_text(to_markdown(blocks))
        (staging / "report.html").write_text(to_html(blocks, staging))
        staging.chmod(0o755)  # mkdtemp makes it private; a report is for reading
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(out.iterdir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report",
        description="Write report.md, report.html and PNG charts from saved runs of pytest bench/.",
    )
    parser.add_argument(
        "results",
        nargs="*",
        help="pytest-benchmark JSON files (default: the newest saved run under results/)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    try:
        paths = args.results or [newest_saved_run(RESULTS_DIR)]
        runs = [load_run(path) for path in paths]
    except ResultsError as exc:
        print(f"bench.report: {exc}", file=sys.stderr)
        return 2
    for path in write_report(runs, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
