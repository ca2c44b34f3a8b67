"""Python versions side by side: the report's versions table and ``versions.png``, and the gate's rule.

Runs of different Pythons are different measurements: their rows are never merged into one
table, and each Python's speedup is taken against that Python's own sequential row. A row is
identified by its workload (pytest-benchmark group), strategy and HTTP client.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.analysis.results import Run
from bench.analysis.summary import Row, format_bytes, reference_for
from bench.reporting import charts

# (key, the chart's axis label, the table's column label)
FIGURES = (
    ("speedup", "speedup over sequential (x)", "speedup"),
    ("cpu_ms", "CPU per request (ms)", "CPU/request"),
    ("memory", "memory per waiting request (KiB)", "memory/waiting request"),
)


def python_version(run: Run) -> str:
    """The client's Python, as pytest-benchmark recorded it (machine_info), else as this suite did."""
    return str(run.machine.get("python_version") or run.context.get("python") or "unknown")


def python_implementation(run: Run) -> str:
    return str(run.machine.get("python_implementation") or "CPython")


def _version_key(version: str) -> tuple:
    return tuple(int(part) if part.isdigit() else 0 for part in re.split(r"[.+a-z]+", version) if part)


def python_versions(runs: list[Run]) -> list[str]:
    return sorted({python_version(run) for run in runs}, key=_version_key)


def several_pythons(runs: list[Run]) -> bool:
    return len(python_versions(runs)) > 1


def row_figures(row: Row, rows: list[Row]) -> dict[str, float | None]:
    """Speedup over the sequential row of the same run and client, CPU ms and KiB per waiting request."""
    reference = reference_for(row, rows)
    reference = reference if reference and reference.valid else None
    memory = row.info.get("peak_rss_per_inflight_bytes")
    if row.info.get("kind") == "cpu":
        memory = None  # nothing waits in the CPU control: the figure would mean nothing (as in the verdicts)
    return {
        "speedup": reference.median_seconds / row.median_seconds if reference and row.valid else None,
        "cpu_ms": row.info.get("cpu_per_request_ms") if row.valid else None,
        "memory": memory / 1024 if memory is not None and row.valid else None,
    }


def by_workload(runs: list[Run]) -> dict[str, dict[str, dict[str, Row]]]:
    """workload -> Python version -> row label -> row; a later run of the same Python replaces a row."""
    table: dict[str, dict[str, dict[str, Row]]] = {}
    for run in runs:
        version = python_version(run)
        for group, rows in run.groups().items():
            for row in rows:
                table.setdefault(group, {}).setdefault(version, {})[row.label] = row
    return table


def _cell(name: str, value: float | None, row: Row | None) -> str:
    if row is None:
        return "-"
    if not row.valid:
        return "INVALID"
    if value is None:
        return "-"
    if name == "speedup":
        return f"{value:.1f}x"
    if name == "cpu_ms":
        return f"{value:.2f} ms"
    return format_bytes(value * 1024)


def versions_tables(runs: list[Run]) -> dict[str, tuple[tuple[str, ...], list[tuple[str, ...]]]]:
    """One table per workload: a row per strategy, for each figure a column per Python."""
    versions = python_versions(runs)
    tables = {}
    for group, per_version in by_workload(runs).items():
        labels: list[str] = []
        for version in versions:
            labels += [label for label in per_version.get(version, {}) if label not in labels]
        header = ("strategy", *(f"{column} {v}" for _, _, column in FIGURES for v in versions))
        body = []
        for label in labels:
            cells = [label]
            for name, _, _ in FIGURES:
                for version in versions:
                    rows = per_version.get(version, {})
                    row = rows.get(label)
                    value = row_figures(row, list(rows.values()))[name] if row else None
                    cells.append(_cell(name, value, row))
            body.append(tuple(cells))
        tables[group] = (header, body)
    return tables


def python_facts(context: dict) -> list[str]:
    """The client's and the delay server's interpreters, as a saved run recorded them.

    Their versions only: where an interpreter lives on the machine that ran is no one else's
    business and reproduces nothing (issue 16).
    """
    facts = []
    for side in ("client", "server"):
        python = context.get(f"{side}_python")
        if python:
            facts.append(f"{side} Python: `{' '.join(python['version'].split())}`")
    return facts


def _server_pythons(runs: list[Run]) -> list[str]:
    seen = []
    for run in runs:
        server = run.context.get("server_python") or {}
        text = server.get("version", "?").split()[0] if server else None
        if text and text not in seen:
            seen.append(text)
    return seen


def blocks(runs: list[Run]) -> list[tuple]:
    """The report's "Python versions side by side" section; nothing when the runs share one Python."""
    if not several_pythons(runs):
        return []
    servers = _server_pythons(runs)
    server_text = (
        f"The delay server ran under one interpreter for every run: {servers[0]}, so only the client's Python changed."
        if len(servers) == 1
        else "The delay server's Python: "
        + (", ".join(servers) if servers else "not recorded (runs made before bench.versions)")
        + "."
    )
    out: list[tuple] = [
        ("h2", "Python versions side by side"),
        (
            "p",
            f"Client Pythons: {', '.join(python_versions(runs))}. {server_text} Each Python's rows are "
            "its own run: the speedup divides that Python's sequential median by the strategy's; rows of "
            "different Pythons are never merged.",
        ),
    ]
    for group, (header, body) in versions_tables(runs).items():
        out += [("h3", f"Versions: {group}"), ("table", header, body)]
    return out


def markdown(runs: list[Run]) -> str:
    """The versions tables alone, as Markdown (a CI job summary)."""
    lines = []
    for kind, *content in blocks(runs):
        if kind in ("h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + content[0], ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "table":
            header, body = content
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(row) + " |" for row in body] + [""]
    return "\n".join(lines)


def text(runs: list[Run]) -> list[str]:
    """The versions tables for a terminal."""
    lines = []
    for group, (header, body) in versions_tables(runs).items():
        rows = [header, *body]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines += ["", group]
        lines += [
            "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in rows
        ]
    return lines


def draw(runs: list[Run], out: Path) -> list[tuple[str, str]]:
    """``versions.png`` when the runs hold more than one Python; return (title, filename) pairs."""
    if not several_pythons(runs):
        return []
    chart(runs, out / "versions.png")
    return [("Python versions side by side", "versions.png")]


def chart(runs: list[Run], path: Path) -> Path:
    """For each workload, the three figures per strategy, one bar per Python."""
    import matplotlib.pyplot as plt  # charts has chosen the Agg backend already

    versions = python_versions(runs)
    workloads = by_workload(runs)
    colours = plt.get_cmap("viridis")([i / max(len(versions) - 1, 1) * 0.85 for i in range(len(versions))])
    fig, axes = plt.subplots(
        len(workloads), len(FIGURES), figsize=(charts.WIDTH_IN, 3.6 * len(workloads) + 1), squeeze=False
    )
    for line, (group, per_version) in enumerate(workloads.items()):
        labels: list[str] = []
        for version in versions:
            labels += [label for label in per_version.get(version, {}) if label not in labels]
        width = 0.8 / len(versions)
        for column, (name, title, _) in enumerate(FIGURES):
            ax = axes[line][column]
            panel = {
                version: [
                    row_figures(rows[label], list(rows.values()))[name] if label in rows else None
                    for label in labels
                ]
                for version, rows in ((v, per_version.get(v, {})) for v in versions)
            }
            if all(value is None for values in panel.values() for value in values):
                ax.text(
                    0.5, 0.5, "no figure for this workload", ha="center", va="center", transform=ax.transAxes
                )
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_ylabel(title, fontsize=8)
                continue
            # Value labels only while they fit above their bars.
            labelled = len(labels) * len(versions) <= 12
            for i, version in enumerate(versions):
                rows, values = per_version.get(version, {}), panel[version]
                xs = [x + (i - (len(versions) - 1) / 2) * width for x in range(len(labels))]
                ax.bar(xs, [v or 0 for v in values], width, color=colours[i], label=f"Python {version}")
                for x, value, label in zip(xs, values, labels, strict=True):
                    if value is not None and labelled:
                        text = f"{value:.1f}" if name != "cpu_ms" else f"{value:.2f}"
                        ax.annotate(text, (x, value), ha="center", va="bottom", fontsize=6)
                    elif value is None and label in rows:  # ran, but INVALID, or its sequential row is
                        reason = "INVALID" if not rows[label].valid else "n/a"
                        ax.annotate(reason, (x, 0), ha="center", va="bottom", fontsize=6, rotation=90)
            if name == "speedup":
                ax.axhline(1, color="grey", linestyle="--", linewidth=1)
            ax.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=7)
            ax.set_ylabel(title, fontsize=8)
            ax.set_title(group if column == 0 else "", fontsize=8, loc="left")
            ax.tick_params(axis="y", labelsize=8)
            ax.grid(axis="y", alpha=0.3)
    handles, names = max((ax.get_legend_handles_labels() for ax in axes.flat), key=lambda hn: len(hn[0]))
    fig.legend(handles, names, loc="lower center", ncol=len(versions), frameon=False, fontsize=9)
    fig.suptitle(
        "Python versions side by side: speedup, CPU and memory per request (client Python; one server)"
    )
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    fig.savefig(path, dpi=charts.DPI)
    plt.close(fig)
    return path


def python_mismatch(baseline: Run, current: Run) -> str | None:
    """Why the two runs are not like with like, or None: the gate compares within one Python only.

    Python versions match on implementation and feature version (3.12): patch releases fix bugs;
    a different feature version changes the interpreter the strategies run on, so a speedup
    that moved would be the interpreter's doing, not the code's.
    """
    before, after = python_version(baseline), python_version(current)
    if "unknown" in (before, after):
        return None
    kind_before, kind_after = python_implementation(baseline), python_implementation(current)
    if (kind_before, before.split(".")[:2]) == (kind_after, after.split(".")[:2]):
        return None
    return (
        f"the baseline ran on {kind_before} {before}, the current run on {kind_after} {after}: "
        "a regression gate compares like with like"
    )
