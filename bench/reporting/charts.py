"""The report's pictures, drawn with matplotlib from a run's rows. Each function writes one PNG.

Every chart has a title, axis labels with units and a legend, and is 1000 px wide. A strategy
keeps its colour in every chart, in registry order, so the eye can follow it.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed

import matplotlib.pyplot as plt
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from bench.analysis.summary import REFERENCE, Row
from bench.clients import CLIENTS
from bench.strategies import STRATEGIES

WIDTH_IN, DPI = 10, 100  # 1000 px wide
MIB = 1024 * 1024
# tab10 and then tab20's lighter shades: a colour of its own for each of up to 20 strategies.
_PALETTE = plt.get_cmap("tab10").colors + plt.get_cmap("tab20").colors[1::2]
COLOURS = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(STRATEGIES)}
# Lines that coincide (the pools take the same time) stay apart by their markers.
_MARKERS = "osD^vPX*"
MARKERS = {name: _MARKERS[i % len(_MARKERS)] for i, name in enumerate(STRATEGIES)}


def colour(strategy: str):
    return COLOURS.get(strategy, "black")


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _strategy_legend(fig, names: list[str], extra: list | None = None) -> None:
    handles = [Patch(color=colour(name), label=name) for name in names] + (extra or [])
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), frameon=False, fontsize=9)


def headline(ladder: dict[int, list[Row]], path: Path) -> Path:
    """What one waiting request costs each model, memory and CPU, against requests in flight (log x).

    From the ladder: one line per model, all with the raw client, so the gap between lines is
    the model's own cost. x is the most requests the model really had in flight in its worst
    round: a model too slow to send them all before the first answers sits left of its rung.
    """
    fig, (memory_ax, cpu_ax) = plt.subplots(1, 2, figsize=(WIDTH_IN, 4.6))
    lines: dict[str, list[Row]] = {}
    for _, rows in sorted(ladder.items()):
        for row in rows:
            if row.valid and row.info.get("client_max_in_flight"):
                lines.setdefault(row.label, []).append(row)
    for label, rows in lines.items():
        strategy = rows[0].strategy
        style = {
            "color": colour(strategy),
            "marker": MARKERS.get(strategy, "o"),
            "markersize": 7,
            "label": label,
        }
        in_flight = [row.info["client_max_in_flight"] for row in rows]
        memory_ax.plot(in_flight, [row.info["peak_rss_per_inflight_bytes"] / 1024 for row in rows], **style)
        cpu_ax.plot(in_flight, [row.info["cpu_per_request_ms"] for row in rows], **style)
    memory_ax.set_ylabel("memory per waiting request (KiB)")
    memory_ax.set_title("memory: peak RSS above the idle worker / in flight", fontsize=9)
    cpu_ax.set_ylabel("CPU per request (ms, user + sys)")
    cpu_ax.set_title("CPU: the worker's CPU time / requests", fontsize=9)
    for ax in (memory_ax, cpu_ax):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))  # 1,000, not 10^3
        ax.set_ylim(bottom=0)
        ax.set_xlabel("requests in flight (measured, log scale)")
        ax.grid(alpha=0.3, which="both")
    client = next((rows[0].client for rows in lines.values()), "raw")
    fig.suptitle(f"What one waiting request costs each model ({client} client: the gap is the model's own)")
    handles, labels = memory_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=max(1, len(labels)), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    return _save(fig, path)


def side_by_side(groups: dict[str, list[Row]], path: Path) -> Path:
    """Wall time and peak memory per strategy, a row of two panels per workload, sequential as reference.

    Horizontal bars, so that every ``strategy[client]`` label reads level beside its bar.
    """
    heights = [len(rows) + 2 for rows in groups.values()]
    fig, axes = plt.subplots(
        len(groups),
        2,
        figsize=(WIDTH_IN, 0.26 * sum(heights) + 1.0),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    for (time_ax, memory_ax), (group, rows) in zip(axes, groups.items(), strict=True):
        y = range(len(rows))
        colours = [colour(row.strategy) for row in rows]
        # A row with no timed round (INVALID) gets an empty bar.
        medians = [row.median_seconds or 0.0 for row in rows]
        low = [m - (row.min_seconds or m) for m, row in zip(medians, rows, strict=True)]
        high = [(row.max_seconds or m) - m for m, row in zip(medians, rows, strict=True)]
        bars = time_ax.barh(y, medians, xerr=[low, high], capsize=2, color=colours)
        memory = [(row.info.get("peak_rss_above_idle_bytes") or 0) / MIB for row in rows]
        memory_bars = memory_ax.barh(y, memory, color=colours)
        for ax_bars, ax in ((bars, time_ax), (memory_bars, memory_ax)):
            _mark_reference_and_invalid(ax, ax_bars, rows)
        reference = next((row for row in rows if row.strategy == REFERENCE), None)
        if reference and reference.median_seconds is not None:
            time_ax.axvline(reference.median_seconds, color="grey", linestyle="--", linewidth=1)
        # Log scale only when sequential dwarfs the rest; a narrow range reads better linear.
        timed = [row for row in rows if row.round_seconds]
        spread = max((row.max_seconds for row in timed), default=1.0) / max(
            min((row.median_seconds for row in timed), default=1.0), 1e-9
        )
        time_ax.set_xscale("log" if spread > 10 else "linear")
        time_ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))  # 0.1, not 10^-1
        time_ax.set_yticks(list(y), [row.label for row in rows], fontsize=8)
        memory_ax.set_yticks(list(y), [])
        time_ax.set_title(group, fontsize=9, loc="left")
        for ax in (time_ax, memory_ax):
            ax.invert_yaxis()  # the first row on top, as in the tables
            ax.grid(axis="x", alpha=0.3)
            ax.tick_params(axis="x", labelsize=8)
    axes[-1][0].set_xlabel("wall time per round (s); median, whiskers min-max; dashed: sequential")
    axes[-1][1].set_xlabel("peak RSS above the idle worker (MiB)")
    fig.suptitle("Side by side: wall time and peak memory per strategy[client]")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _save(fig, path)


def _mark_reference_and_invalid(ax, bars, rows: list[Row]) -> None:
    for bar, row in zip(bars, rows, strict=True):
        if row.strategy == REFERENCE:
            bar.set_edgecolor("black")
            bar.set_linewidth(1.5)
        if not row.valid:
            bar.set_hatch("//")
            ax.annotate(
                " INVALID", (bar.get_width(), bar.get_y() + bar.get_height() / 2), va="center", fontsize=7
            )


def scaling(sweep: dict[int, list[Row]], path: Path) -> Path:
    """Wall time and peak memory against N, log-log, one line per strategy (the sweep scenario)."""
    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(WIDTH_IN, 5))
    by_strategy: dict[str, list[tuple[int, Row]]] = {}
    for n, rows in sorted(sweep.items()):
        for row in rows:
            if row.valid:
                by_strategy.setdefault(row.label, []).append((n, row))
    for name, points in by_strategy.items():
        ns = [n for n, _ in points]
        strategy = points[0][1].strategy
        style = {
            "color": colour(strategy),
            "marker": MARKERS.get(strategy, "o"),
            "markersize": 7,
            "alpha": 0.85,
            "label": name,
        }
        time_ax.plot(ns, [row.median_seconds for _, row in points], **style)
        memory_ax.plot(
            ns, [max(row.info["peak_rss_above_idle_bytes"], 1) / MIB for _, row in points], **style
        )
    time_ax.set_ylabel("median wall time per round (s)")
    memory_ax.set_ylabel("peak RSS above idle worker (MiB)")
    for ax, title in ((time_ax, "time grows with N"), (memory_ax, "memory grows with N")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("requests per round, N (log scale)")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    delay = next(iter(sweep.values()))[0].info["delay_ms"]
    fig.suptitle(
        f"Scaling: N GETs of {delay} ms each (sweep scenario; missing points were skipped or invalid)"
    )
    handles, labels = time_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.1, 1, 0.95))
    return _save(fig, path)


def timeline(rows: list[Row], group: str, path: Path) -> Path:
    """One round per strategy, every request a bar from its start to its end."""
    rows = [row for row in rows if row.info.get("timeline")]
    # Each strategy on its own time axis: sequential's staircase would squash the others' waves.
    fig, axes = plt.subplots(len(rows), 1, figsize=(WIDTH_IN, 1.45 * len(rows) + 1.5), squeeze=False)
    for ax, row in zip((a[0] for a in axes), rows, strict=True):
        spans = row.info["timeline"]["requests"]
        step = row.info["timeline"]["every_nth_request"]
        for index, (start, end, ok) in enumerate(spans):
            ax.hlines(index * step, start, end, color=colour(row.strategy) if ok else "red", linewidth=1.2)
        round_ms = max(end for _, end, _ in spans)
        ax.set_ylabel("request #", fontsize=8)
        ax.set_title(
            f"{row.label}: {row.info['client_max_in_flight']} in flight at most; round took {round_ms:.0f} ms",
            fontsize=9,
            loc="left",
            pad=2,
        )
        ax.set_xlim(0, round_ms * 1.02)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[-1][0].set_xlabel("time since the round started (ms); each panel has its own time scale")
    fig.suptitle(f"Timeline of one round: {group}")
    extra = [Line2D([], [], color="red", label="failed request")]
    _strategy_legend(fig, [row.strategy for row in rows], extra)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return _save(fig, path)


def cpu_control(io_rows: list[Row], io_group: str, cpu_rows: list[Row], cpu_group: str, path: Path) -> Path:
    """Speedup over sequential on IO beside the same on CPU-bound work: the GIL's half of the story."""
    tallest = max(len(io_rows), len(cpu_rows))
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH_IN, 0.3 * tallest + 1.6))
    for ax, rows, group, kind in (
        (axes[0], io_rows, io_group, "IO-bound"),
        (axes[1], cpu_rows, cpu_group, "CPU-bound"),
    ):
        reference = next((row for row in rows if row.strategy == REFERENCE and row.valid), None)
        shown = [
            row for row in rows if row.valid and reference
        ]  # one sequential row: the CPU task has no client
        speedups = [reference.median_seconds / row.median_seconds for row in shown] if reference else []
        y = range(len(shown))
        ax.barh(y, speedups, color=[colour(row.strategy) for row in shown])
        for i, value in enumerate(speedups):
            ax.annotate(f" {value:.1f}x", (value, i), va="center", fontsize=8)
        ax.axvline(1, color="grey", linestyle="--", linewidth=1)
        ax.set_xlim(0, max([*speedups, 1]) * 1.2)  # room for the value labels
        ax.set_yticks(list(y), [row.label for row in shown], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("speedup over sequential (x); dashed: as fast as sequential")
        ax.set_title(f"{kind}: {group}", fontsize=9, loc="left")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Where coroutines win, and where nothing does: IO against CPU-bound work")
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return _save(fig, path)


def clients(rows: list[Row], group: str, path: Path) -> Path:
    """Grouped bars: per model, one bar per client, for CPU per request, memory per waiting request, time.

    The raw client's bar is the model's own cost; what another client's bar adds is the client's.
    """
    rows = [row for row in rows if row.valid and row.info.get("kind", "io") == "io"]
    models = list(dict.fromkeys(row.strategy for row in rows))
    client_names = [name for name in CLIENTS if any(row.client == name for row in rows)]
    client_colour = {name: _PALETTE[(i + 3) % len(_PALETTE)] for i, name in enumerate(client_names)}
    panels = (
        ("CPU per request (ms)", lambda row: row.info["cpu_per_request_ms"]),
        (
            "memory per waiting request (KiB)",
            lambda row: (row.info["peak_rss_per_inflight_bytes"] or 0) / 1024,
        ),
        ("median wall time per round (s)", lambda row: row.median_seconds),
    )
    fig, axes = plt.subplots(len(panels), 1, figsize=(WIDTH_IN, 9.5), sharex=True)
    width = 0.8 / max(1, len(client_names))
    for ax, (title, value) in zip(axes, panels, strict=True):
        for offset, name in enumerate(client_names):
            xs, heights = [], []
            for x, model in enumerate(models):
                row = next((r for r in rows if r.strategy == model and r.client == name), None)
                if row is not None:
                    xs.append(x - 0.4 + width * (offset + 0.5))
                    heights.append(value(row))
            ax.bar(xs, heights, width, color=client_colour[name], label=name)
        ax.set_ylabel(title, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(range(len(models)), models, rotation=20, ha="right", fontsize=9)
    axes[-1].set_xlabel("concurrency model")
    fig.suptitle(
        f"Model or client? Each model with each client: {group}\nthe raw client's bar is the model's own cost"
    )
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.94))
    return _save(fig, path)
