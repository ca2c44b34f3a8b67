"""The server's CPU per request and per connection divide by what they should (issue 22, item 5)."""

import pytest

from bench.analysis import summary
from bench.analysis.row_info import row_info
from bench.clients import CLIENTS
from bench.strategies import STRATEGIES
from bench.workload import Workload

WORKLOAD = Workload("http://127.0.0.1:1", requests=10, delay_ms=100, concurrency=10)


def a_round(server_cpu: float, idle: float | None, accepted: int = 0) -> dict:
    return {
        "ok": 10,
        "errors": 0,
        "error_samples": {},
        "wall_seconds": 1.0,
        "round_trip_seconds": 1.0,
        "cpu_seconds": 0.01,
        "peak_rss_bytes": 4096,
        "peak_rss_above_idle_bytes": 4096,
        "os_threads_peak": 1,
        "client_max_in_flight": 10,
        "server_requests": 10,
        "server_cpu_seconds": server_cpu,
        "server_empty_window_cpu_seconds": idle,
        "server_connections_accepted": accepted,
    }


def info_of(*rounds: dict) -> dict:
    return row_info(STRATEGIES["sequential"], CLIENTS["raw"], WORKLOAD, False, [], list(rounds))


def test_the_servers_cpu_per_request_subtracts_an_empty_windows_cost():
    """The seed's sequential row: 10 requests over a second, most of the server's CPU its wake-ups."""
    info = info_of(a_round(0.0196, 0.0150), a_round(0.0200, 0.0160))
    assert info["server_cpu_per_request_gross_us"] == pytest.approx((0.0196 + 0.0200) / 20 * 1e6)
    assert info["server_cpu_per_request_us"] == pytest.approx((0.0396 - 0.0310) / 20 * 1e6)
    assert info["server_empty_window_cpu_seconds"] == pytest.approx(0.031)
    note = info["server_cpu_note"]
    assert note == (
        "server CPU mostly idle cost: an empty window costs 31.0 of its 39.6 ms, "
        "too low a rate for its CPU per request to be its code's"
    )
    assert note in summary.notes(info), "the summary's notes column says it"


def test_a_busy_server_is_not_noted_and_an_old_round_subtracts_nothing():
    assert info_of(a_round(0.100, 0.002))["server_cpu_note"] is None
    old = info_of(a_round(0.100, None))
    assert old["server_cpu_per_request_us"] == pytest.approx(0.100 / 10 * 1e6)
    assert old["server_cpu_note"] is None


def test_cpu_per_connection_needs_half_of_n_connections():
    """A keep-alive round's one or two accepted connections are no denominator (qsc.json: 226,441 µs)."""
    assert info_of(a_round(0.2264, 0.0, accepted=1))["server_cpu_per_connection_us"] is None
    assert info_of(a_round(0.2264, 0.0, accepted=4))["server_cpu_per_connection_us"] is None
    new_connections = info_of(a_round(0.0005, 0.0, accepted=10))
    assert new_connections["server_cpu_per_connection_us"] == pytest.approx(50.0)
    assert info_of(a_round(0.0005, 0.0, accepted=5))["server_cpu_per_connection_us"] == pytest.approx(100.0)
