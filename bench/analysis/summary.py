"""The tables printed after pytest-benchmark's own: memory and CPU side by side, then verdicts.

pytest-benchmark's table shows time only; these read the same rows' ``extra_info`` and raw
round times. Everything here is plain data in, lines of text out, so the report reuses it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from itertools import groupby
from typing import NamedTuple

from bench.analysis import connection_costs
from bench.analysis.verdicts import Margins, speedup, within
from bench.names import PSS_METHOD_PREFIX, TWIN_SUFFIX, row_label

REFERENCE = "sequential"
# Models compared head to head, beside their comparison with sequential: at the same client
# wherever both ran with one, otherwise (each with its own default client) across clients.
PEERS = [
    ("threads", "gevent-joinall"),
    ("threadpool", "gevent-pool"),
    ("gevent-joinall", "asyncio-gather"),
    ("gevent-pool", "asyncio-bounded"),
    # The models users pick instead: another loop under the same asyncio code, another
    # library's tasks, C processes in place of C threads or greenlets, and to_thread's default
    # executor against a pool sized to C.
    ("asyncio-gather", "asyncio-uvloop"),
    ("asyncio-gather", "trio-nursery"),
    ("asyncio-bounded", "trio-bounded"),
    ("threadpool", "processpool"),
    ("gevent-pool", "processpool"),
    ("threadpool", "asyncio-to-thread"),
]
# The floor of client cost (bench/clients/raw.py): a model's own cost is its cost with this client.
FLOOR_CLIENT = "raw"


@dataclass(frozen=True)
class Row:
    group: str
    round_seconds: list[float]
    info: dict

    @property
    def strategy(self) -> str:
        return self.info["strategy"]

    @property
    def client(self) -> str | None:
        return self.info.get("client")

    @property
    def label(self) -> str:
        return row_label(self.strategy, self.client)

    @property
    def round_groups(self) -> list[list[float]]:
        """Round times by worker process; a run saved before processes were recorded is one process."""
        return self.info.get("rounds_by_process") or [self.round_seconds]

    @property
    def median_seconds(self) -> float | None:
        """None for a row that has no timed round (always INVALID)."""
        return statistics.median(self.round_seconds) if self.round_seconds else None

    @property
    def min_seconds(self) -> float | None:
        return min(self.round_seconds, default=None)

    @property
    def max_seconds(self) -> float | None:
        return max(self.round_seconds, default=None)

    @property
    def valid(self) -> bool:
        return bool(self.info.get("valid"))


def rows_from_session(benchmarks) -> list[Row]:
    """The suite's rows among pytest-benchmark's finished benchmarks, in run order.

    A row with no timed round is there too, with no round times (bench/analysis/results.py, unmeasured_rows).
    """
    return [
        Row(bench.group or "", list(bench.stats.data), bench.extra_info)
        for bench in benchmarks
        if "strategy" in bench.extra_info and (bench.stats or bench.has_error)
    ]


def reached_in_flight(info: dict) -> int | None:
    """The most requests the client had in flight in the row's worst round (runs saved before
    that figure give the best round's)."""
    return info.get("client_reached_in_flight", info.get("client_max_in_flight"))


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
    if info.get("serialized"):
        marks.append(info["serialized"])
    elif info.get("cpu_bound"):
        marks.append(f"cpu-bound ({reached_in_flight(info)} of {info['max_in_flight_allowed']} in flight)")
    if info["monkey_patched"]:
        marks.append("patched")
    if info.get("fetch"):  # --bench-fetch: nothing outside the worker counted its calls
        marks.append("no referee: counted by the worker")
    if (info.get("memory_method") or "").startswith(PSS_METHOD_PREFIX):  # older runs sampled it mid-round
        marks.append(f"memory: summed PSS of {info['processes_peak']} processes")
    if info.get("server_cpu_note"):
        marks.append(info["server_cpu_note"])
    return ", ".join(marks)


MEMORY_COLUMNS = (
    "strategy",
    "client",
    "peak RSS",
    "per request",
    "per in-flight",
    "1st round",
    "warm-up",
    "in flight",
    "CPU/request",
    "server CPU/req",
    "p50/p99 ms",
    "OS threads",
    "processes",
    "ok/errors",
    "notes",
)


def memory_cells(info: dict) -> tuple[str, ...]:
    return (
        info["strategy"],
        info.get("client") or "-",
        format_bytes(info["peak_rss_above_idle_bytes"]),
        format_bytes(info["peak_rss_per_request_bytes"]),
        format_bytes(info["peak_rss_per_inflight_bytes"]),
        format_bytes(info["peak_rss_first_round_bytes"]),
        "-" if info.get("warmup_seconds") is None else f"{info['warmup_seconds'] * 1000:.0f} ms",
        str(info["client_max_in_flight"] if info["client_max_in_flight"] is not None else "-"),
        "-" if info["cpu_per_request_ms"] is None else f"{info['cpu_per_request_ms']:.2f} ms",
        "-"
        if info.get("server_cpu_per_request_us") is None
        else f"{info['server_cpu_per_request_us']:.0f} µs",
        f"{_ms(info['latency_p50_ms'])}/{_ms(info['latency_p99_ms'])}",
        str(info["os_threads_peak"] if info["os_threads_peak"] is not None else "-"),
        str(info.get("processes_peak") or "-"),
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
    lines += [f"  INVALID {row.label}: {row.info['invalid_reason']}" for row in rows if not row.valid]
    return lines


def reference_for(row: Row, rows: list[Row]) -> Row | None:
    """The sequential row a row is compared with: the one with the same client, if it ran."""
    sequential = [r for r in rows if r.strategy == REFERENCE]
    return next((r for r in sequential if r.client == row.client), sequential[0] if sequential else None)


def _compared_with_reference(row: Row, rows: list[Row]) -> Row | None:
    """The valid sequential row this row's speedup is taken against; None for the reference itself."""
    reference = reference_for(row, rows)
    if not row.valid or reference is None or not reference.valid or reference is row:
        return None
    return reference


def verdict_heading(rows: list[Row]) -> str:
    """What the verdict lines below it mean, for the terminal and the report alike."""
    margin = within(Margins.of([row.info for row in rows]).time)
    return (
        "verdicts (median wall time; intervals over worker processes, 95% for the whole table; "
        f"the same: the interval lies within {margin}; not resolved: it reaches across {margin})"
    )


def verdict_lines(rows: list[Row]) -> list[str]:
    width = max(len(row.label) for row in rows) + 1
    pairs = head_to_heads(rows)
    twins = _twin_costs(pairs)
    # Every interval printed for this workload shares one 95% (docs/reference/statistics.md, "Verdicts").
    comparisons = (
        sum(_compared_with_reference(row, rows) is not None for row in rows)
        + len(pairs)
        + sum(len(costs) for _, _, costs in twins)
    )
    # Each line is read against the run's margins: different, the same within them, or not resolved.
    margins = Margins.of([row.info for row in rows])
    margin = margins.time
    lines = []
    for row in rows:
        info = row.info
        label = f"{row.label + ':':<{width}}"
        if not row.valid:
            lines.append(f"{label} INVALID, not compared: {info['invalid_reason']}")
            continue
        facts = f"median {row.median_seconds:.3f} s, ideal {info['ideal_seconds']:.3f} s, " + efficiency_text(
            info
        )
        if info.get("peak_rss_per_inflight_bytes") is not None and info["kind"] == "io":
            facts += f", {format_bytes(info['peak_rss_per_inflight_bytes'])} per waiting request"
        if info.get("cpu_per_request_ms") is not None and info["kind"] == "io":
            # The regime: whether N x this, or the delay, bounds the round (it moves with the machine).
            facts += f", {info['cpu_per_request_ms']:.2f} ms CPU per request"
        if info.get("serialized"):
            facts += f"; {info['serialized']}: the patch did not reach the driver"
        elif info.get("cpu_bound"):
            facts += f"; cpu-bound: {reached_in_flight(info)} of {info['max_in_flight_allowed']} in flight"
        reference = reference_for(row, rows)
        if reference is row:
            lines.append(f"{label} the reference ({facts})")
        elif reference is None:
            lines.append(f"{label} no speedup: sequential was not run ({facts})")
        elif not reference.valid:
            lines.append(f"{label} no speedup: {reference.label} is INVALID ({facts})")
        else:
            verdict = speedup(reference.round_groups, row.round_groups, comparisons, margin)
            lines.append(f"{label} {verdict.describe(reference.label)}, {facts}")
    lines += [
        f"{b.label} vs {a.label}: "
        + speedup(a.round_groups, b.round_groups, comparisons, margin).describe_head_to_head(a.label)
        for a, b in pairs
    ]
    for a, b, costs in twins:
        for cost in costs:
            s = speedup(cost.groups(a), cost.groups(b), comparisons, getattr(margins, cost.margin))
            lines.append(f"{b.label} vs {a.label}, {cost.name}: {s.describe(a.label, cost.noun)}")
    if any(a.client != b.client and a.strategy != b.strategy for a, b in pairs):
        lines.append(
            "note: a comparison across clients (different names in brackets) mixes the model with the "
            "client's own CPU cost; run with --bench-client raw (or the clients scenario) to hold the client the same."
        )
    return lines


class Cost(NamedTuple):
    """A per-request cost recorded per worker process, and the margin it is read against."""

    key: str
    noun: str
    margin: str  # the field of Margins
    name: str

    def groups(self, row: Row) -> list[list[float]]:
        return row.info[f"{self.key}_by_process"]


# Besides time, the A/A twins are compared in what a request costs: identical work must come
# out the same in memory and CPU too (statistics.md, "The A/A check").
TWIN_COSTS = (
    Cost("peak_rss_per_inflight_bytes", "memory", "memory", "memory per waiting request"),
    Cost("cpu_per_request_ms", "CPU", "cpu", "CPU per request"),
)


def _twin_costs(pairs: list[tuple[Row, Row]]) -> list[tuple[Row, Row, list[Cost]]]:
    """The A/A pairs of an IO workload, with the costs both twins recorded per process."""
    recorded = [
        (
            a,
            b,
            [
                c
                for c in TWIN_COSTS
                if a.info.get(f"{c.key}_by_process") and b.info.get(f"{c.key}_by_process")
            ],
        )
        for a, b in pairs
        if b.strategy == a.strategy + TWIN_SUFFIX and a.info.get("kind") == "io"
    ]
    return [(a, b, costs) for a, b, costs in recorded if costs]


def head_to_heads(rows: list[Row]) -> list[tuple[Row, Row]]:
    """(a, b) pairs to compare: peer models at each client both ran with, then clients within a model.

    Two peer models that share no client (the default: requests for gevent, aiohttp for
    asyncio) are compared across clients, and the line says so.
    """
    valid = [row for row in rows if row.valid]
    pairs = []
    # The A/A check's twins (bench/strategies, COROUTINE_BENCH_AA_TWIN), from the rows themselves.
    names = dict.fromkeys(row.strategy for row in valid)
    twins = [(name.removesuffix(TWIN_SUFFIX), name) for name in names if name.endswith(TWIN_SUFFIX)]
    for slower, faster in PEERS + twins:
        a_rows = [r for r in valid if r.strategy == slower]
        b_rows = [r for r in valid if r.strategy == faster]
        same_client = [(a, b) for a in a_rows for b in b_rows if a.client == b.client]
        if same_client:
            pairs += same_client
        elif len(a_rows) == 1 and len(b_rows) == 1:
            pairs.append((a_rows[0], b_rows[0]))
    for strategy in dict.fromkeys(row.strategy for row in valid):
        model_rows = [r for r in valid if r.strategy == strategy]
        floor = next((r for r in model_rows if r.client == FLOOR_CLIENT), model_rows[0])
        pairs += [(floor, r) for r in model_rows if r is not floor]
    return pairs


DECOMPOSITION_COLUMNS = (
    "strategy",
    "client",
    "median s",
    "CPU/request",
    "model CPU",
    "client CPU",
    "per waiting request",
    "model memory",
    "client memory",
)


def decomposition(rows: list[Row]) -> list[tuple[str, ...]]:
    """Each row's CPU per request and memory per waiting request, split into the model's and the client's.

    The model's cost is what the same strategy costs with the raw client (the floor); the
    client's is the rest. Rows whose model has no valid raw row are left out.
    """
    floors = {r.strategy: r for r in rows if r.client == FLOOR_CLIENT and r.valid and r.info["kind"] == "io"}
    table = []
    for row in rows:
        floor = floors.get(row.strategy)
        if floor is None or not row.valid:
            continue
        cpu, cpu_floor = row.info["cpu_per_request_ms"], floor.info["cpu_per_request_ms"]
        memory, memory_floor = (
            row.info["peak_rss_per_inflight_bytes"],
            floor.info["peak_rss_per_inflight_bytes"],
        )
        table.append(
            (
                row.strategy,
                row.client,
                f"{row.median_seconds:.3f}",
                f"{cpu:.3f} ms",
                f"{cpu_floor:.3f} ms",
                f"{cpu - cpu_floor:+.3f} ms",
                format_bytes(memory),
                format_bytes(memory_floor),
                "-" if memory is None or memory_floor is None else _signed_bytes(memory - memory_floor),
            )
        )
    return table


def _signed_bytes(count: float) -> str:
    return ("+" if count >= 0 else "-") + format_bytes(abs(count))


def efficiency_text(info: dict) -> str:
    """``efficiency`` is ideal / median (issue 22, item 3); where the client's CPU bound is the
    larger limit, the median against that bound follows, named as such."""
    if info["efficiency"] is None:
        return "efficiency unknown"
    text = f"efficiency {info['efficiency']:.2f}"
    cores = info.get("efficiency_cores") or 1
    if info.get("efficiency_bound") == "cpu":
        on = f"{info['cpu_bound_seconds']:.3f} s, its CPU on {cores} core{'s' if cores > 1 else ''}"
        text += f" (bound by client CPU: {info['efficiency_vs_bound']:.2f} of its CPU bound, {on})"
    elif cores > 1:
        text += f" (its CPU spread over {cores} cores)"
    return text


def render(rows: list[Row]) -> list[str]:
    out = []
    for group, members in groupby(sorted(rows, key=lambda r: r.group), key=lambda r: r.group):
        members = list(members)
        if capacity := next(
            (r.info.get("instrument_capacity") for r in members if r.info.get("instrument_capacity")), None
        ):
            out += ["", f"instrument: {capacity}"]
        out += ["", f"memory, CPU and latency per round: {group}"]
        out += memory_table(members)
        out += ["", f"{verdict_heading(members)}: {group}"]
        out += verdict_lines(members)
        split = decomposition(members)
        if len({row[1] for row in split}) > 1:
            out += [
                "",
                f"the model's cost and the client's (model = the same strategy with the raw client): {group}",
            ]
            out += align([DECOMPOSITION_COLUMNS, *split])
    if costs := connection_costs.cost_table(rows):
        out += [
            "",
            "connections: CPU per request in each cell (in brackets: what the cell added to the one before)",
        ]
        out += align(costs)
        out += ["", "connections: each row from keep-alive to the last cell it ran in"]
        out += connection_costs.verdict_lines(rows)
    return out
