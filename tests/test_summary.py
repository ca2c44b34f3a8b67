"""The figures the suite derives: reductions over rounds, validity, the bound, and the tables."""

import pytest

from bench.analysis.row_info import efficiency, efficiency_vs_bound, lateness_limit_ms, row_info
from bench.analysis.summary import Row, decomposition, efficiency_text, format_bytes, render, verdict_lines
from bench.clients import clients_for
from bench.strategies import STRATEGIES
from bench.workload import Workload

WORKLOAD = Workload("http://127.0.0.1:1", requests=10, delay_ms=100, concurrency=2)


def a_round(ok=10, wall=0.5, cpu=0.02, peak=4096, threads=3, in_flight=2, lateness=1.0, **extra):
    return {
        "ok": ok,
        "errors": 10 - ok,
        "wall_seconds": wall,
        "round_trip_seconds": wall + 0.0004,
        "cpu_seconds": cpu,
        "peak_rss_bytes": peak,
        "peak_rss_above_idle_bytes": peak * 2,
        "os_threads_peak": threads,
        "error_samples": {},
        "client_max_in_flight": in_flight,
        "latency_p50_ms": 101.0,
        "latency_p99_ms": 109.0,
        "server_lateness_p99_ms": lateness,
        "server_max_in_flight": in_flight,
        "listen_overflows": 0,
    } | extra


def info_for(strategy="threadpool", rounds=None, warmup=None):
    return row_info(
        STRATEGIES[strategy],
        clients_for(STRATEGIES[strategy])[0],
        WORKLOAD,
        False,
        warmup or [a_round()],
        rounds or [a_round()],
    )


def test_row_info_reduces_rounds_as_documented():
    rounds = [
        a_round(cpu=0.01, peak=100),
        a_round(cpu=0.03, peak=300),
        a_round(cpu=0.02, peak=200, threads=5),
    ]
    info = info_for(rounds=rounds, warmup=[a_round(peak=9999)])
    assert info["peak_rss_bytes"] == 300  # worst round
    assert info["peak_rss_above_idle_bytes"] == 600
    assert info["peak_rss_per_inflight_bytes"] == 300  # 600 above idle / 2 in flight
    assert info["peak_rss_first_round_bytes"] == 9999
    assert info["cpu_seconds"] == pytest.approx(0.02)  # median round
    assert info["cpu_per_request_ms"] == pytest.approx(2.0)
    assert info["os_threads_peak"] == 5
    assert info["ideal_seconds"] == pytest.approx(0.5)  # ceil(10 / 2) waves of 100 ms
    assert info["harness_overhead_ms"] == pytest.approx(0.4)
    assert (info["ok"], info["errors"], info["valid"], info["invalid_reason"]) == (10, 0, True, None)


def test_one_failed_request_makes_the_row_invalid_with_its_reason():
    failed = a_round(ok=9, error_samples={"HTTP 500": 1})
    info = info_for("threads", rounds=[a_round(in_flight=10), failed, a_round(in_flight=10)])
    assert (info["ok"], info["errors"], info["errors_all_rounds"]) == (9, 1, 1)
    assert info["valid"] is False
    assert info["invalid_reason"] == "1 of 30 requests failed in 1 of 3 rounds: HTTP 500 (x1)"


def test_a_late_server_makes_the_row_invalid():
    assert lateness_limit_ms(100) == 20  # the floor
    assert lateness_limit_ms(1000) == 100  # 10% of D
    info = info_for(rounds=[a_round(lateness=19.0), a_round(lateness=21.0)])
    assert info["valid"] is False
    assert (
        "the server fell behind: its responses left 21 ms late (p99), over the 20 ms allowed"
        in info["invalid_reason"]
    )


def test_listen_queue_overflows_make_the_row_invalid():
    info = info_for(rounds=[a_round(listen_overflows=3)])
    assert info["invalid_reason"] == "the kernel dropped 3 connections on a full listen queue"


def test_cpu_bound_is_a_label_not_invalid():
    info = info_for("threads", rounds=[a_round(in_flight=4)])  # asked for N = 10 at once
    assert (info["valid"], info["cpu_bound"]) == (True, True)
    assert not info_for("threads", rounds=[a_round(in_flight=10)])["cpu_bound"]


def test_ideal_seconds_per_fanout():
    assert WORKLOAD.ideal_seconds(1) == pytest.approx(1.0)
    assert WORKLOAD.ideal_seconds(3) == pytest.approx(0.4)  # ceil(10 / 3) = 4 waves
    assert WORKLOAD.ideal_seconds(10) == pytest.approx(0.1)


def test_efficiency_is_ideal_over_median_and_the_cpu_bound_is_its_own_figure():
    assert efficiency(ideal_seconds=0.1, median_seconds=0.2) == pytest.approx(0.5)
    assert efficiency_vs_bound(ideal_seconds=0.1, cpu_bound=0.05, median_seconds=0.2) == (
        pytest.approx(0.5),
        "delay",
    )
    assert efficiency_vs_bound(ideal_seconds=0.1, cpu_bound=0.15, median_seconds=0.2) == (
        pytest.approx(0.75),
        "cpu",
    )


def test_a_cpu_bound_rows_text_names_both_figures():
    info = {
        "efficiency": 2.0 / 7.275,
        "efficiency_bound": "cpu",
        "efficiency_vs_bound": 5.7 / 7.275,
        "cpu_bound_seconds": 5.7,
        "efficiency_cores": 1,
    }
    assert efficiency_text(info) == (
        "efficiency 0.27 (bound by client CPU: 0.78 of its CPU bound, 5.700 s, its CPU on 1 core)"
    )


def row(strategy, seconds, valid=True):
    info = info_for(strategy, rounds=[a_round(in_flight=10)])
    info.update(valid=valid, invalid_reason=None if valid else "3 of 10 requests failed")
    info["rounds_by_process"] = [[value] for value in seconds]  # one round per worker process
    return Row("io", seconds, info)


def test_verdicts_compare_with_sequential_and_never_claim_invalid_rows():
    lines = verdict_lines(
        [
            row("sequential", [1.0, 1.01, 0.99, 1.02, 0.98]),
            row("threads", [0.1, 0.101, 0.099, 0.1, 0.1]),
            row("threadpool", [2.0], valid=False),
        ]
    )
    assert lines[0].startswith("sequential[requests]: the reference")
    assert lines[1].startswith("threads[requests]:    10.0x faster than sequential[requests] (95% CI ")
    assert lines[2] == "threadpool[requests]: INVALID, not compared: 3 of 10 requests failed"


def test_peers_within_noise_are_not_resolved():
    """With processes enough to decide (20 a side) the interval is read: too wide, not resolved."""
    noisy = [0.10, 0.12, 0.11, 0.13, 0.10]
    lines = verdict_lines([row("threads", noisy * 4), row("gevent-joinall", noisy[::-1] * 4)])
    assert any(
        line.startswith(
            "gevent-joinall[requests] vs threads[requests]: 1.00x against threads[requests], not resolved"
        )
        for line in lines
    )


def test_peers_on_too_few_processes_are_not_decided_whatever_their_interval():
    """Issue 26: a head to head in time on 5 processes a side says the run does not decide it,
    tight (a 2% gap) or noisy alike, unless the gap clears twice the margin."""
    tight = verdict_lines([row("threads", [0.102] * 5), row("gevent-joinall", [0.100] * 5)])
    noisy = verdict_lines(
        [
            row("threads", [0.10, 0.12, 0.11, 0.13, 0.10]),
            row("gevent-joinall", [0.11, 0.10, 0.12, 0.11, 0.13]),
        ]
    )
    for lines in (tight, noisy):
        assert any(
            line.startswith("gevent-joinall[requests] vs threads[requests]: ")
            and "not decided by 5 processes a side" in line
            for line in lines
        ), lines
    wide = verdict_lines([row("threads", [0.2] * 5), row("gevent-joinall", [0.1] * 5)])
    assert any(line.startswith("gevent-joinall[requests] vs threads[requests]: 2.0x faster") for line in wide)


def test_no_speedup_without_a_valid_reference():
    assert "sequential was not run" in verdict_lines([row("threads", [0.1])])[0]
    lines = verdict_lines([row("sequential", [1.0], valid=False), row("threads", [0.1])])
    assert "sequential[requests] is INVALID" in lines[1]


def test_render_prints_both_tables_per_group():
    text = "\n".join(render([row("sequential", [1.0, 1.0]), row("gevent-pool", [0.5, 0.5])]))
    assert "memory, CPU and latency per round: io" in text
    assert (
        "verdicts (median wall time; intervals over worker processes, 95% for the whole table; "
        "the same: the interval lies within ±5%; not resolved: it reaches across ±5%): io" in text
    )
    assert "gevent-pool[requests]: 2.0x faster than sequential[requests]" in text


def client_row(strategy, client, seconds, cpu_ms, memory_bytes):
    info = info_for(strategy, rounds=[a_round(in_flight=10)])
    info.update(client=client, cpu_per_request_ms=cpu_ms, peak_rss_per_inflight_bytes=memory_bytes)
    info["rounds_by_process"] = [[value] for value in seconds]
    return Row("io", seconds, info)


def test_models_are_compared_at_the_same_client_and_clients_within_a_model():
    rows = [
        client_row("threads", "raw", [0.20] * 5, 0.5, 30 * 1024),
        client_row("threads", "httpx", [0.30] * 5, 2.5, 50 * 1024),
        client_row("gevent-joinall", "raw", [0.10] * 5, 0.1, 20 * 1024),
        client_row("gevent-joinall", "httpx", [0.36] * 5, 3.0, 45 * 1024),
    ]
    lines = verdict_lines(rows)
    assert any(
        line.startswith("gevent-joinall[raw] vs threads[raw]: 2.0x faster than threads[raw]")
        for line in lines
    )
    assert any(line.startswith("gevent-joinall[httpx] vs threads[httpx]: 1.20x slower") for line in lines)
    assert not any("gevent-joinall[httpx] vs threads[raw]" in line for line in lines), "never across clients"
    assert any(line.startswith("threads[httpx] vs threads[raw]: 1.50x slower") for line in lines)
    assert not any(line.startswith("note: a comparison across clients") for line in lines)


def test_peer_models_with_different_default_clients_are_compared_with_a_note():
    rows = [
        client_row("gevent-joinall", "requests", [0.3] * 5, 1.5, 1),
        client_row("asyncio-gather", "aiohttp", [0.2] * 5, 0.2, 1),
    ]
    lines = verdict_lines(rows)
    assert any(
        line.startswith("asyncio-gather[aiohttp] vs gevent-joinall[requests]: 1.50x faster") for line in lines
    )
    assert lines[-1].startswith("note: a comparison across clients")


def test_decomposition_splits_each_cost_into_the_models_and_the_clients():
    rows = [
        client_row("threads", "raw", [0.20] * 5, 0.5, 30 * 1024),
        client_row("threads", "httpx", [0.30] * 5, 2.5, 50 * 1024),
        client_row("asyncio-gather", "aiohttp", [0.2] * 5, 0.2, 8 * 1024),  # no raw row: left out
    ]
    assert decomposition(rows) == [
        ("threads", "raw", "0.200", "0.500 ms", "0.500 ms", "+0.000 ms", "30.0 KiB", "30.0 KiB", "+0 B"),
        (
            "threads",
            "httpx",
            "0.300",
            "2.500 ms",
            "0.500 ms",
            "+2.000 ms",
            "50.0 KiB",
            "30.0 KiB",
            "+20.0 KiB",
        ),
    ]
    assert "the model's cost and the client's" in "\n".join(render(rows))


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(2048) == "2.0 KiB"
    assert format_bytes(3 * 1024 * 1024) == "3.0 MiB"
    assert format_bytes(None) == "-"


def test_aa_twins_are_also_judged_in_memory_and_cpu_per_request():
    """Identical work must come out the same in what a request costs, not only in time."""

    def twin_row(strategy, memory, cpu):
        info = info_for("threads", rounds=[a_round(in_flight=10)])  # the twin: the same module
        info.update(
            strategy=strategy,
            valid=True,
            invalid_reason=None,
            # 20 processes a side: enough to decide a head to head in time (DECIDING_PROCESSES).
            rounds_by_process=[[0.1 * f] for f in (1.0, 1.01, 0.99, 1.0, 1.005)] * 4,
            peak_rss_per_inflight_bytes_by_process=[[memory * f] for f in (1.0, 1.01, 0.99, 1.0, 1.005)],
            cpu_per_request_ms_by_process=[[cpu * f] for f in (1.0, 1.02, 0.98, 1.01, 0.99)],
        )
        return Row("io", [0.1] * 20, info)

    lines = verdict_lines([twin_row("threads", 8000, 0.5), twin_row("threads-twin", 8000, 0.5)])
    assert (
        "threads-twin[requests] vs threads[requests]: the same time as threads[requests] within ±5%"
        in lines[2]
    )
    assert lines[3].startswith(
        "threads-twin[requests] vs threads[requests], memory per waiting request: the same memory as "
        "threads[requests] within ±10% (1.00x, 98.3% CI"
    )
    assert lines[4].startswith(
        "threads-twin[requests] vs threads[requests], CPU per request: the same CPU as"
    )
    doubled = verdict_lines([twin_row("threads", 8000, 0.5), twin_row("threads-twin", 16000, 0.5)])
    assert "memory per waiting request: 2.0x more memory than threads[requests] (ratio 98.3% CI" in doubled[3]
