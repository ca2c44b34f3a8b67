"""The connections scenario's cross-cell table and verdicts, from synthetic rows (issue 17)."""

from bench.analysis import connection_costs
from bench.analysis.summary import Row, row_label
from bench.options import BenchOptions
from bench.scenarios import SCENARIOS


def a_row(
    label_strategy: str, client: str, cell: str, cpu_ms: float, seconds: float, valid: bool = True
) -> Row:
    connection, security, host = cell.split("/")
    info = {
        "scenario": "connections",
        "strategy": label_strategy,
        "client": client,
        "connection": connection,
        "tls": security == "TLS",
        "host": "localhost" if host == "name" else "127.0.0.1",
        "cpu_per_request_ms": cpu_ms,
        "valid": valid,
        "rounds_by_process": [[seconds] * 3, [seconds] * 3],
    }
    return Row(f"connections {cell}: 200 x 1000 ms, C=20", [seconds] * 6, info)


ROWS = [
    a_row("gevent-joinall", "raw", "reuse/plain/ip", 0.10, 1.00),
    a_row("gevent-joinall", "raw", "new/plain/ip", 0.25, 1.01),
    a_row("gevent-joinall", "raw", "new/plain/name", 0.30, 1.02),
    a_row("gevent-joinall", "raw", "new/TLS/name", 1.30, 1.20),
    a_row("trio-nursery", "raw", "reuse/plain/ip", 0.20, 1.00),
    a_row("trio-nursery", "raw", "new/plain/ip", 0.40, 1.00, valid=False),
    a_row("trio-nursery", "raw", "new/plain/name", 0.50, 1.00),
]


def test_the_table_shows_what_each_cell_adds_over_the_one_before():
    header, gevent, trio = connection_costs.cost_table(ROWS)
    assert header[0] == "row" and len(header) == 6
    assert gevent == (
        "gevent-joinall[raw]",
        "0.100 ms",
        "0.250 ms (+0.150)",
        "0.300 ms (+0.050)",
        "1.300 ms (+1.000)",
        "1.000 / 1.010 / 1.020 / 1.200",
    )
    # An INVALID cell is left out, never shown as a figure, and the cell after it adds to nothing.
    assert trio == ("trio-nursery[raw]", "0.200 ms", "-", "0.500 ms", "-", "1.000 / - / 1.000 / -")


def test_a_verdict_goes_from_keep_alive_to_the_last_cell_a_row_ran_in():
    [line, trio] = connection_costs.verdict_lines(ROWS)
    assert line.startswith(
        "gevent-joinall[raw]: a new connection, a name lookup, TLS per request (new/TLS/name) costs "
        "+1.200 ms CPU per request over reuse (1.300 vs 0.100 ms); wall time: "
    )
    assert "slower" in line
    assert trio.startswith(
        "trio-nursery[raw]: a new connection, a name lookup per request (new/plain/name) costs +0.300"
    )


def test_rows_of_other_scenarios_make_no_table():
    rows = [Row(r.group, r.round_seconds, r.info | {"scenario": "quick"}) for r in ROWS]
    assert connection_costs.cost_table(rows) == []
    assert connection_costs.verdict_lines(rows) == []


def test_the_scenario_runs_four_cells_of_its_models_with_raw_and_the_default_client(pytestconfig):
    options = BenchOptions.from_config(pytestconfig)
    shapes = SCENARIOS["connections"].shapes(options)
    assert [shape.cell.label for shape in shapes] == list(connection_costs.CELLS)
    assert len({shape.group for shape in shapes}) == 4  # each cell its own table
    labels = {row_label(s.name, c) for s, c in shapes[0].pairs(options)}
    assert labels == {
        "gevent-joinall[requests]",
        "gevent-joinall[raw]",
        "gevent-pool[requests]",
        "gevent-pool[raw]",
        "asyncio-gather[aiohttp]",
        "asyncio-gather[raw]",
        "asyncio-uvloop[aiohttp]",
        "asyncio-uvloop[raw]",
        "trio-nursery[httpx]",
        "trio-nursery[raw]",
    }
    assert all(shape.pairs(options) == shapes[0].pairs(options) for shape in shapes)
