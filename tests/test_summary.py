"""The figures the suite derives: reductions over rounds, validity, and the printed verdicts."""

import pytest

from bench.row_info import row_info
from bench.strategies import STRATEGIES
from bench.summary import Row, format_bytes, render, speedup_lines
from bench.workload import Workload

WORKLOAD = Workload("http://127.0.0.1:1", requests=10, delay_ms=100, concurrency=2)


def a_round(ok=10, wall=0.5, cpu=0.02, peak=4096, threads=3, samples=None):
    return {
        "ok": ok,
        "errors": 10 - ok,
        "wall_seconds": wall,
        "round_trip_seconds": wall + 0.0004,
        "cpu_seconds": cpu,
        "peak_rss_bytes": peak,
        "os_threads_peak": threads,
        "error_samples": samples or {},
    }


def test_row_info_reduces_rounds_as_documented():
    rounds = [
        a_round(cpu=0.01, peak=100),
        a_round(cpu=0.03, peak=300),
        a_round(cpu=0.02, peak=200, threads=5),
    ]
    info = row_info(STRATEGIES["threadpool"], WORKLOAD, False, a_round(peak=9999), rounds)
    assert info["peak_rss_bytes"] == 300  # worst round
    assert info["peak_rss_first_round_bytes"] == 9999
    assert info["cpu_seconds"] == pytest.approx(0.02)  # median round
    assert info["cpu_per_request_ms"] == pytest.approx(2.0)
    assert info["os_threads_peak"] == 5
    assert info["ideal_seconds"] == pytest.approx(0.5)  # ceil(10 / 2) waves of 100 ms
    assert info["harness_overhead_ms"] == pytest.approx(0.4)
    assert (info["ok"], info["errors"], info["valid"], info["invalid_reason"]) == (10, 0, True, None)


def test_one_failed_request_makes_the_row_invalid_with_its_reason():
    rounds = [a_round(), a_round(ok=9, samples={"HTTP 500": 1}), a_round()]
    info = row_info(STRATEGIES["threads"], WORKLOAD, False, a_round(), rounds)
    assert (info["ok"], info["errors"], info["errors_all_rounds"]) == (9, 1, 1)
    assert info["valid"] is False
    assert info["invalid_reason"] == "1 of 30 requests failed in 1 of 3 rounds: HTTP 500 (x1)"


def test_ideal_seconds_per_fanout():
    assert WORKLOAD.ideal_seconds(1) == pytest.approx(1.0)
    assert WORKLOAD.ideal_seconds(3) == pytest.approx(0.4)  # ceil(10 / 3) = 4 waves
    assert WORKLOAD.ideal_seconds(10) == pytest.approx(0.1)


def row(strategy, median, valid=True):
    info = row_info(STRATEGIES[strategy], WORKLOAD, False, a_round(), [a_round()])
    info.update(valid=valid, invalid_reason=None if valid else "3 of 10 requests failed")
    return Row("io", median, info)


def test_speedups_are_relative_to_sequential_and_never_claimed_for_invalid_rows():
    lines = speedup_lines([row("sequential", 1.0), row("threads", 0.1), row("threadpool", 2.0, valid=False)])
    assert lines[0].startswith("sequential: the reference")
    assert "threads:    10.0x faster than sequential" in lines[1]
    assert lines[2] == "threadpool: INVALID, not compared: 3 of 10 requests failed"


def test_no_speedup_without_a_valid_reference():
    assert "sequential was not run" in speedup_lines([row("threads", 0.1)])[0]
    lines = speedup_lines([row("sequential", 1.0, valid=False), row("threads", 0.1)])
    assert "the sequential row is INVALID" in lines[1]


def test_render_prints_both_tables_per_group():
    text = "\n".join(render([row("sequential", 1.0), row("gevent-pool", 0.5)]))
    assert "memory and CPU per round: io" in text
    assert "speedup (median wall time): io" in text
    assert "gevent-pool: 2.0x faster than sequential" in text


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(2048) == "2.0 KiB"
    assert format_bytes(3 * 1024 * 1024) == "3.0 MiB"
