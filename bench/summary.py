"""The tables printed after pytest-benchmark's own: memory and CPU side by side, then speedups.

pytest-benchmark's table shows time only; these read the same rows' ``extra_info``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby

REFERENCE = "sequential"


@dataclass(frozen=True)
class Row:
    group: str
    median_seconds: float
    info: dict

    @property
    def strategy(self) -> str:
        return self.info["strategy"]


def rows_from_session(benchmarks) -> list[Row]:
    """The suite's rows among pytest-benchmark's finished benchmarks, in run order."""
    return [
        Row(bench.group or "", bench.stats.median, bench.extra_info)
        for bench in benchmarks
        if bench.stats and not bench.has_error and "strategy" in bench.extra_info
    ]


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def memory_table(rows: list[Row]) -> list[str]:
    header = (
        "strategy",
        "peak RSS",
        "RSS/request",
        "1st round",
        "CPU/request",
        "OS threads",
        "ok/errors",
        "patched",
    )
    lines = [header]
    for row in rows:
        info = row.info
        lines.append(
            (
                row.strategy,
                format_bytes(info["peak_rss_bytes"]),
                format_bytes(info["peak_rss_per_request_bytes"]),
                format_bytes(info["peak_rss_first_round_bytes"]),
                f"{info['cpu_per_request_ms']:.2f} ms",
                str(info["os_threads_peak"]),
                f"{info['ok']}/{info['errors']}" + ("" if info["valid"] else "  INVALID"),
                "yes" if info["monkey_patched"] else "no",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]


def speedup_lines(rows: list[Row]) -> list[str]:
    reference = next((row for row in rows if row.strategy == REFERENCE), None)
    width = max(len(row.strategy) for row in rows) + 1
    lines = []
    for row in rows:
        label = f"{row.strategy + ':':<{width}}"
        timing = f"median {row.median_seconds:.3f} s, ideal {row.info['ideal_seconds']:.3f} s"
        if not row.info["valid"]:
            lines.append(f"{label} INVALID, not compared: {row.info['invalid_reason']}")
        elif row is reference:
            lines.append(f"{label} the reference ({timing})")
        elif reference is None:
            lines.append(f"{label} no speedup: sequential was not run ({timing})")
        elif not reference.info["valid"]:
            lines.append(f"{label} no speedup: the sequential row is INVALID ({timing})")
        else:
            ratio = reference.median_seconds / row.median_seconds
            verdict = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            lines.append(f"{label} {verdict} than sequential ({timing})")
    return lines


def render(rows: list[Row]) -> list[str]:
    out = []
    for group, members in groupby(sorted(rows, key=lambda r: r.group), key=lambda r: r.group):
        members = list(members)
        first = members[0].info
        workload = (
            f"N={first['requests']} GETs of D={first['delay_ms']} ms, pools of C={first['concurrency']}"
        )
        out += ["", f"memory and CPU per round: {group}  [{workload}]"]
        out += memory_table(members)
        out += ["", f"speedup (median wall time): {group}"]
        out += speedup_lines(members)
    return out
