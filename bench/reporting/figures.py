"""The pages' figures: a registry of renderers, each a saved run's rows in, Markdown out.

A page (README.md, docs/) holds no hand-typed measurement: it marks a block with the run file
and the figure it shows, and ``python -m bench.pages`` fills the block from this registry
(docs/develop/docs.md). Every renderer formats what the terminal summary, the story and the
verdicts already compute (bench/analysis/summary.py, story.py, verdicts.py), or a row's saved
figure as saved (``in-flight``; ``harness-overhead`` gives its rows' lowest and highest); none
computes a figure of its own, so a page cannot say one thing and the terminal another (design
rule 13).

A renderer is called with the run, the rows its block selected (``key=value`` words in the
marker, matched against each row's ``extra_info``) and the block's own parameters.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bench.analysis import connection_costs
from bench.analysis import spread as spread_of
from bench.analysis.results import Run
from bench.analysis.story import story_lines
from bench.analysis.summary import (
    DECOMPOSITION_COLUMNS,
    MEMORY_COLUMNS,
    Row,
    decomposition,
    format_bytes,
    memory_cells,
    reached_in_flight,
    reference_for,
    verdict_lines,
)
from bench.analysis.verdicts import speedup
from bench.reporting import markdown, provenance
from bench.reporting.context import portable
from bench.scenarios import LADDER_MODELS

# A pool of C is "about C" times faster than sequential when every pool's ratio is within these
# fractions of C: below, something other than the waves costs time (a pool's start, the client's
# CPU); above 1.05 C, the pools beat the bound ceil(N / C) delays allows, and the words say so.
ABOUT_C = (0.8, 1.05)


class FigureError(ValueError):
    """A block asks for something its run cannot give; the message says what."""


def markdown_table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    return "\n".join(markdown.table(header, body))


def markdown_list(items: list[str]) -> str:
    # Verdict lines pad their labels into columns for the terminal; a list item needs no padding.
    return "\n".join("- " + " ".join(item.split()) for item in items)


def _one_workload(rows: list[Row], figure: str) -> list[Row]:
    groups = {row.group for row in rows}
    if len(groups) != 1:
        raise FigureError(f"{figure} shows one workload; the block selects {len(groups)}: {sorted(groups)}")
    return rows


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def ladder_table(run: Run, rows: list[Row]) -> str:
    """The headline: each rung's models with the raw client, and how many requests each had in flight."""
    header = (
        "in flight (delay)",
        "model",
        "reached in flight",
        "wall time (ideal)",
        "rounds",
        "memory per waiting request",
        "CPU per request",
        "OS threads",
    )
    ladder = [r for r in rows if r.info.get("scenario") == "ladder"]
    if not ladder:
        raise FigureError("ladder-table: the run has no row of the ladder (the story scenario)")
    body = []
    for requests in sorted({r.info["requests"] for r in ladder}):
        rung = sorted((r for r in ladder if r.info["requests"] == requests), key=_ladder_order)
        for position, row in enumerate(rung):
            info = row.info
            body.append(
                (
                    f"{requests:,} ({info['delay_ms']:,} ms)" if position == 0 else "",
                    row.strategy if row.valid else f"{row.strategy}, INVALID: {info.get('invalid_reason')}",
                    _of(reached_in_flight(info), info["max_in_flight_allowed"]),
                    _seconds(row.median_seconds)
                    + (f" ({info['ideal_seconds']:.3f})" if position == 0 else ""),
                    str(len(row.round_seconds)),
                    format_bytes(info["peak_rss_per_inflight_bytes"]),
                    "-" if info["cpu_per_request_ms"] is None else f"{info['cpu_per_request_ms']:.2f} ms",
                    "-" if info["os_threads_peak"] is None else f"{info['os_threads_peak']:,}",
                )
            )
    return markdown_table(header, body)


def _ladder_order(row: Row) -> int:
    return LADDER_MODELS.index(row.strategy) if row.strategy in LADDER_MODELS else len(LADDER_MODELS)


def _of(reached: int | None, asked: int) -> str:
    return f"{'-' if reached is None else f'{reached:,}'} of {asked:,}"


def story(run: Run, rows: list[Row]) -> str:
    """The closing summary of the default run, as the terminal prints it."""
    lines = story_lines(rows)
    if not lines:
        raise FigureError("story: the run holds neither the seed's comparison nor the ladder")
    return lines[0][0].upper() + lines[0][1:] + "\n\n" + markdown_list(lines[1:])


def memory_table(run: Run, rows: list[Row]) -> str:
    """The terminal's "memory, CPU and latency per round" table of one workload, after its instrument line."""
    rows = _one_workload(rows, "memory-table")
    capacity = next((r.info["instrument_capacity"] for r in rows if r.info.get("instrument_capacity")), None)
    table = markdown_table(MEMORY_COLUMNS, [memory_cells(row.info) for row in rows])
    invalid = [f"INVALID {row.label}: {row.info['invalid_reason']}" for row in rows if not row.valid]
    return (
        (f"Instrument: {capacity}\n\n" if capacity else "")
        + table
        + ("\n\n" + markdown_list(invalid) if invalid else "")
    )


def verdicts(run: Run, rows: list[Row]) -> str:
    """The terminal's verdict lines of one workload: each row against sequential, then head to head."""
    return markdown_list(verdict_lines(_one_workload(rows, "verdicts")))


def pair(run: Run, rows: list[Row], a: str, b: str) -> str:
    """One head-to-head line of a workload's verdicts, ``b vs a``, word for word."""
    rows = _one_workload(rows, "pair")
    prefix = f"{b} vs {a}: "
    line = next((line for line in verdict_lines(rows) if line.startswith(prefix)), None)
    if line is None:
        raise FigureError(f"pair: the verdicts of {rows[0].group!r} have no line {prefix!r}")
    return f"{rows[0].group}: {line}."


def speedups(run: Run, rows: list[Row]) -> str:
    """Against sequential, the pools (C in flight) and the unbounded models (N in flight), in one sentence each.

    The ratios are the verdicts' own (median over median, bench/analysis/verdicts.py).
    """
    rows = [r for r in _one_workload(rows, "speedups") if r.valid]
    sequential = [r for r in rows if reference_for(r, rows) is r]
    if not sequential:
        raise FigureError(f"speedups: {rows[0].group!r} has no valid sequential row")
    info = sequential[0].info
    requests, concurrency = info["requests"], info["concurrency"]
    ratios: dict[str, list[tuple[str, float]]] = {"pool": [], "unbounded": [], "capped": []}
    for row in rows:
        reference = reference_for(row, rows)
        if reference is row or reference is None:
            continue
        ratio = speedup(reference.round_groups, row.round_groups).ratio
        allowed = row.info["max_in_flight_allowed"]
        kind = "unbounded" if allowed >= requests else "pool" if allowed == concurrency else "capped"
        label = row.label if kind != "capped" else f"{row.label} ({allowed} in flight at most)"
        ratios[kind].append((label, ratio))
    sentences = []
    if pool := ratios["pool"]:
        low, high = min(r for _, r in pool), max(r for _, r in pool)
        waves = math.ceil(requests / concurrency)
        within = ABOUT_C[0] * concurrency <= low and high <= ABOUT_C[1] * concurrency
        about = "about C" if within else "not about C"
        sentences.append(
            f"A pool of C={concurrency} runs {requests} requests in ceil(N / C) = {waves} delays, so it "
            f"beat sequential by {_range(low, high)}x ({about}): " + _listing(pool) + "."
        )
    if unbounded := ratios["unbounded"]:
        low, high = min(r for _, r in unbounded), max(r for _, r in unbounded)
        sentences.append(
            f"With every request in flight at once (N={requests}), the models beat sequential by "
            f"{_range(low, high)}x: " + _listing(unbounded) + "."
        )
    if capped := ratios["capped"]:
        sentences.append("Capped below C by the model itself: " + _listing(capped) + ".")
    return "\n\n".join(sentences)


def _range(low: float, high: float) -> str:
    return f"{low:.1f}" if f"{low:.1f}" == f"{high:.1f}" else f"{low:.1f}-{high:.1f}"


def _listing(ratios: list[tuple[str, float]]) -> str:
    return ", ".join(f"{label} {ratio:.2f}x" for label, ratio in ratios)


def capacities(run: Run, rows: list[Row]) -> str:
    """Each workload's instrument line: what the preflight found the delay server holds (bench/harness/preflight.py)."""
    lines = {}
    for row in rows:
        if capacity := row.info.get("instrument_capacity"):
            lines.setdefault(row.group, capacity)
    if not lines:
        raise FigureError("capacities: no row of the selection records the instrument's capacity")
    return markdown_list([f"{group}: {capacity}" for group, capacity in lines.items()])


def connection_cells(run: Run, rows: list[Row]) -> str:
    """The connections scenario's cell-by-cell CPU table, then each row's verdict from keep-alive on."""
    table = connection_costs.cost_table(rows)
    if not table:
        raise FigureError("connection-cells: the run has no valid row of the connections scenario")
    return markdown_table(table[0], table[1:]) + "\n\n" + markdown_list(connection_costs.verdict_lines(rows))


def source(run: Run, rows: list[Row]) -> str:
    """What the page's figures come from: the file, its command, its rows, when and at which commit."""
    context = run.context
    record = context.get(provenance.KEY) or {}
    commit = (record.get("start") or {}).get("commit")
    valid = sum(row.valid for row in run.rows)
    took = provenance.duration_seconds(context)
    facts = [
        f"`{run.path.as_posix()}`",
        f"made with `{portable(context['command'])}`" if context.get("command") else "command not recorded",
        f"{len(run.rows)} rows, {valid} VALID",
        f"{context.get('cpu_count', '?')} CPUs, {context.get('platform', '?')}",
        f"ended {run.datetime[:16].replace('T', ' ')} UTC" if run.datetime else "date not recorded",
        f"took {_duration(took)}"
        if took is not None
        else "duration not recorded (saved before runs recorded their start)",
        f"at commit {commit[:10]}" if commit else "start commit not recorded",
    ]
    return "Source: " + "; ".join(facts) + "."


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def client_cost(run: Run, rows: list[Row]) -> str:
    """The terminal's "the model's cost and the client's" table of one workload: each row's CPU per
    request and memory per waiting request, beside the same model with the raw client (the floor)."""
    rows = _one_workload(rows, "client-cost")
    table = decomposition(rows)
    if len({cells[1] for cells in table}) < 2:
        raise FigureError(
            f"client-cost: {rows[0].group!r} has no valid raw row beside another client of the same model"
        )
    return markdown_table(DECOMPOSITION_COLUMNS, table)


def in_flight(run: Run, rows: list[Row]) -> str:
    """How many requests each row had open at once, by the client's count (from the moment its
    fetch is entered) and by the target's own (the referee: the delay server's ``/stats``, the
    database's sleeping backends); the worst round of each, as saved."""
    header = (
        "row",
        "requests",
        "in flight, the client's count",
        "in flight, the target's count",
        "the target counted, each round",
    )
    body = [
        (
            row.label if row.valid else f"{row.label}, INVALID",
            f"{row.info['requests']:,}",
            _count(row.info.get("client_max_in_flight")),
            _count(row.info.get("server_max_in_flight")) if row.info.get("fetch") is None else "no referee",
            _each_round(row.info.get("server_requests_by_round"))
            if row.info.get("fetch") is None
            else "no referee",
        )
        for row in _one_workload(rows, "in-flight")
    ]
    return markdown_table(header, body)


def _each_round(counts: list | None) -> str:
    """'300 in each of 5 rounds', or each count; '-' for runs saved before the counts were."""
    if not counts or None in counts:
        return "-"
    if len(set(counts)) == 1:
        return f"{counts[0]:,} in each of {len(counts)} round{'s' if len(counts) > 1 else ''}"
    return ", ".join(f"{count:,}" for count in counts)


def _count(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def harness_overhead(run: Run, rows: list[Row]) -> str:
    """What the harness adds to a round's timed span, by workload size: the range of the rows'
    ``harness_overhead_ms`` (the parent's timed span less the worker's own, median over rounds)."""
    by_size: dict[int, list[float]] = {}
    for row in rows:
        if row.info.get("harness_overhead_ms") is not None:
            by_size.setdefault(row.info["requests"], []).append(row.info["harness_overhead_ms"])
    if not by_size:
        raise FigureError("harness-overhead: no row of the selection records harness_overhead_ms")
    return markdown_list(
        [
            f"{requests:,} requests a round: {_ms_range(min(values), max(values))} over {len(values)} "
            f"row{'s' if len(values) > 1 else ''}"
            for requests, values in sorted(by_size.items())
        ]
    )


def _ms_range(low: float, high: float) -> str:
    return f"{low:.2f} ms" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f} ms"


@dataclass(frozen=True)
class Figure:
    render: Callable[..., str]
    params: tuple[str, ...] = ()  # the block's own words; every other key=value selects rows


def spread(run: Run, rows: list[Row]) -> str:
    """How far identical work moved in an A/A run: the twins' ratios and intervals, and how far one
    worker process strays from its row (``python -m bench.analysis.spread``, the margins' data)."""
    lines = spread_of.aa_lines_of(run) + spread_of.process_lines_of([run])
    if not lines:
        raise FigureError("spread: the run has no A/A twins (COROUTINE_BENCH_AA_TWIN)")
    return "```text\n" + "\n".join(lines) + "\n```"


FIGURES: dict[str, Figure] = {
    "source": Figure(source),
    "ladder-table": Figure(ladder_table),
    "story": Figure(story),
    "memory-table": Figure(memory_table),
    "verdicts": Figure(verdicts),
    "pair": Figure(pair, ("a", "b")),
    "speedups": Figure(speedups),
    "connection-cells": Figure(connection_cells),
    "capacities": Figure(capacities),
    "spread": Figure(spread),
    "harness-overhead": Figure(harness_overhead),
    "client-cost": Figure(client_cost),
    "in-flight": Figure(in_flight),
}


def render(run: Run, name: str, words: dict[str, str]) -> str:
    """The Markdown of figure ``name`` from ``run``; ``words``: the block's key=value words."""
    figure = FIGURES.get(name)
    if figure is None:
        raise FigureError(f"no figure {name!r} (known: {', '.join(FIGURES)})")
    params = {key: value for key, value in words.items() if key in figure.params}
    missing = [key for key in figure.params if key not in params]
    if missing:
        raise FigureError(f"{name} needs {', '.join(f'{key}=' for key in missing)}")
    filters = {key: value for key, value in words.items() if key not in figure.params}
    rows = [row for row in run.rows if all(_matches(row.info.get(k), v) for k, v in filters.items())]
    if not rows:
        raise FigureError(f"{name}: no row of {run.path.as_posix()} has {_words(filters)}")
    return figure.render(run, rows, **params).strip()


def _matches(value, wanted: str) -> bool:
    return str(value).lower() == wanted.lower()


def _words(filters: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in filters.items()) or "any row"
