"""The connections scenario across its cells: what a new connection, a name lookup and TLS add, per model.

Rows are compared within a cell by the usual tables; here each (strategy, client) is followed
from cell to cell (issue 17): its CPU per request in each cell and what each cell added to the
one before, then one verdict per row from keep-alive to the last cell it ran in, on CPU (the
robust figure on a shared machine) and on wall time (with its interval, as everywhere).
"""

from __future__ import annotations

from bench.analysis.verdicts import Margins, speedup

SCENARIO = "connections"
# The cells in the order each adds one cost (bench/scenarios.py, CONNECTION_CELLS).
CELLS = ("reuse/plain/ip", "new/plain/ip", "new/plain/name", "new/TLS/name")
# What each cell adds to the one before it, said in words.
ADDED = {"new/plain/ip": "a new connection", "new/plain/name": "a name lookup", "new/TLS/name": "TLS"}
LOOPBACK_NAME = "localhost"


def cell_of(info: dict) -> str:
    host = "name" if info.get("host") == LOOPBACK_NAME else "ip"
    return f"{info.get('connection', 'reuse')}/{'TLS' if info.get('tls') else 'plain'}/{host}"


def by_row(rows) -> dict[str, dict[str, object]]:
    """{strategy[client]: {cell: row}}, valid rows of the connections scenario only, in run order."""
    table: dict[str, dict[str, object]] = {}
    for row in rows:
        if row.info.get("scenario") == SCENARIO and row.valid:
            table.setdefault(row.label, {})[cell_of(row.info)] = row
    return table


def cost_table(rows) -> list[tuple[str, ...]]:
    """A header and one line per (strategy, client): CPU per request per cell, each with what it added."""
    table = [("row", *(f"{cell} CPU/req" for cell in CELLS), "median s per cell")]
    for label, cells in by_row(rows).items():
        line, before = [label], None
        for cell in CELLS:
            row = cells.get(cell)
            if row is None:  # INVALID or not run: the next cell has nothing to add to
                line.append("-")
                before = None
                continue
            cpu = row.info["cpu_per_request_ms"]
            line.append(f"{cpu:.3f} ms" + (f" ({cpu - before:+.3f})" if before is not None else ""))
            before = cpu
        line.append(" / ".join(f"{cells[c].median_seconds:.3f}" if c in cells else "-" for c in CELLS))
        table.append(tuple(line))
    return table if len(table) > 1 else []


def verdict_lines(rows) -> list[str]:
    """Per row: the last cell it ran in against keep-alive, in CPU per request and in wall time."""
    rows_by_label = by_row(rows)
    pairs = []
    for label, cells in rows_by_label.items():
        ran = [cell for cell in CELLS if cell in cells]
        if len(ran) > 1 and ran[0] == CELLS[0]:
            pairs.append((label, cells[ran[0]], ran[-1], cells[ran[-1]]))
    lines = []
    margin = Margins.of([row.info for row in rows]).time
    for label, first, last_cell, last in pairs:
        added = ", ".join(ADDED[cell] for cell in CELLS[1 : CELLS.index(last_cell) + 1])
        cpu_more = last.info["cpu_per_request_ms"] - first.info["cpu_per_request_ms"]
        wall = speedup(first.round_groups, last.round_groups, len(pairs), margin).describe(
            f"{label} on reuse"
        )
        lines.append(
            f"{label}: {added} per request ({last_cell}) costs {cpu_more:+.3f} ms CPU per request "
            f"over reuse ({last.info['cpu_per_request_ms']:.3f} vs {first.info['cpu_per_request_ms']:.3f} ms); "
            f"wall time: {wall}"
        )
    return lines
