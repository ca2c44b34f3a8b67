"""The tables printed after pytest-benchmark's own: memory and CPU side by side, then verdicts.

pytest-benchmark's table shows time only; these read the same rows' ``extra_info`` and raw
round times. Everything here is plain data in, lines of text out, so the report reuses it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from itertools import groupby

from bench.verdicts import speedup

REFERENCE = "sequential"
# Strategies compared head to head, beside their comparison with sequential.
PEERS = [
    ("threads", "gevent-joinall"),
    ("threadpool", "gevent-pool"),
    ("gevent-joinall", "asyncio-aiohttp"),
    ("gevent-pool", "asyncio-aiohttp-bounded"),
]


@dataclass(frozen=True)
class Row:
    group: str
    round_seconds: list[float]
    info: dict

    @property
    def strategy(self) -> str:
        return self.info["strategy"]

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.round_seconds)

    @property
    def valid(self) -> bool:
        return bool(self.info.get("valid"))


def rows_from_session(benchmarks) -> list[Row]:
    """The suite's rows among pytest-benchmark's finished benchmarks, in run order."""
    return [
        Row(bench.group or "", list(bench.stats.data), bench.extra_info)
        for bench in benchmarks
        if bench.stats and not bench.has_error and "strategy" in bench.extra_info
    ]


def format_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB"):
        if abs(count) < 1024:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def notes(info: dict) -> str:
    marks = []
    if not info["valid"]:
        marks.append("INVALID")
    if info.get("cpu_bound"):
        marks.append(
            f"cpu-bound ({info['client_max_in_flight']} of {info['max_in_flight_allowed']} in flight)"
        )
    if info["monkey_patched"]:
        marks.append("patched")
    if info.get("client", "requests") != "requests":
        marks.append(f"client: {info['client']}")
    return ", ".join(marks)


MEMORY_COLUMNS = (
    "strategy",
    "peak RSS",
    "per request",
    "per in-flight",
    "1st round",
    "in flight",
    "CPU/request",
    "p50/p99 ms",
    "OS threads",
    "ok/errors",
    "notes",
)


def memory_cells(info: dict) -> tuple[str, ...]:
    return (
        info["strategy"],
        format_bytes(info["peak_rss_above_idle_bytes"]),
        format_bytes(info["peak_rss_per_request_bytes"]),
        format_bytes(info["peak_rss_per_inflight_bytes"]),
        format_bytes(info["peak_rss_first_round_bytes"]),
        str(info["client_max_in_flight"] if info["client_max_in_flight"] is not None else "-"),
        "-" if info["cpu_per_request_ms"] is None else f"{info['cpu_per_request_ms']:.2f} ms",
        f"{_ms(info['latency_p50_ms'])}/{_ms(info['latency_p99_ms'])}",
        str(info["os_threads_peak"] if info["os_threads_peak"] is not None else "-"),
        f"{info['ok']}/{info['errors']}",
        notes(info),
    )


def align(lines: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    last = len(widths) - 1
    return [
        "  ".join(
            cell.ljust(w) if i in (0, last) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]


def memory_table(rows: list[Row]) -> list[str]:
    lines = align([MEMORY_COLUMNS] + [memory_cells(row.info) for row in rows])
    # The reason belongs with the table too, not only with the verdicts.
    lines += [f"  INVALID {row.strategy}: {row.info['invalid_reason']}" for row in rows if not row.valid]
    return lines


def verdict_lines(rows: list[Row]) -> list[str]:
    by_name = {row.strategy: row for row in rows}
    reference = by_name.get(REFERENCE)
    width = max(len(row.strategy) for row in rows) + 1
    lines = []
    for row in rows:
        info = row.info
        label = f"{row.strategy + ':':<{width}}"
        if not row.valid:
            lines.append(f"{label} INVALID, not compared: {info['invalid_reason']}")
            continue
        facts = f"median {row.median_seconds:.3f} s, ideal {info['ideal_seconds']:.3f} s, " + efficiency_text(
            info
        )
        if info.get("peak_rss_per_inflight_bytes") is not None and info["kind"] == "io":
            facts += f", {format_bytes(info['peak_rss_per_inflight_bytes'])} per waiting request"
        if info.get("cpu_bound"):
            facts += (
                f"; cpu-bound: {info['client_max_in_flight']} of {info['max_in_flight_allowed']} in flight"
            )
        if row is reference:
            lines.append(f"{label} the reference ({facts})")
        elif reference is None:
            lines.append(f"{label} no speedup: sequential was not run ({facts})")
        elif not reference.valid:
            lines.append(f"{label} no speedup: the sequential row is INVALID ({facts})")
        else:
            lines.append(
                f"{label} {speedup(reference.round_seconds, row.round_seconds).describe(REFERENCE)}, {facts}"
            )
    for slower, faster in PEERS:
        a, b = by_name.get(slower), by_name.get(faster)
        if a and b and a.valid and b.valid:
            lines.append(
                f"{faster} vs {slower}: {speedup(a.round_seconds, b.round_seconds).describe(slower)}"
            )
    if any(row.info.get("client") == "aiohttp" for row in rows):
        lines.append(
            "note: the asyncio rows use aiohttp's HTTP client, the others requests; "
            "their CPU per request differs, so part of any gap is the client, not the concurrency model."
        )
    return lines


def efficiency_text(info: dict) -> str:
    if info["efficiency"] is None:
        return "efficiency unknown"
    text = f"efficiency {info['efficiency']:.2f}"
    if info["efficiency_bound"] == "cpu":
        text += " (bound by client CPU, not by the delay)"
    return text


def render(rows: list[Row]) -> list[str]:
    out = []
    for group, members in groupby(sorted(rows, key=lambda r: r.group), key=lambda r: r.group):
        members = list(members)
        out += ["", f"memory, CPU and latency per round: {group}"]
        out += memory_table(members)
        out += ["", f"verdicts (median wall time, bootstrap 95% CI over rounds): {group}"]
        out += verdict_lines(members)
    return out
