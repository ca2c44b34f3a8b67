"""A row that measured the wrong thing says so: real failures and a real stalled server."""

import signal
import threading
import time

from shared_machine import assert_valid_or_the_instruments_limit
from werkzeug import Response

from bench.analysis.row_info import row_info
from bench.clients import CLIENTS
from bench.harness.rounds import RoundRecorder
from bench.harness.worker_process import WorkerProcess
from bench.strategies import STRATEGIES
from bench.workload import NEW, REUSE, Workload
from servers.process import running_delay_server


def record_one_round(strategy, workload, server=None) -> dict:
    with WorkerProcess(strategy, CLIENTS["requests"], workload) as worker:
        recorder = RoundRecorder(worker, server)
        if server:  # as every row does: its keep-alive rounds reuse what the warm-up opened
            recorder.warm_up()
        recorder.record_round()
    return row_info(strategy, CLIENTS["requests"], workload, worker.monkey_patched, [], recorder.rounds)


def test_a_failing_server_makes_the_row_invalid(httpserver):
    httpserver.expect_request("/delay").respond_with_response(Response("down", status=503))
    workload = Workload(
        httpserver.url_for("/").rstrip("/"), requests=6, delay_ms=0, concurrency=2, timeout_s=10
    )
    info = record_one_round(STRATEGIES["gevent-pool"], workload)
    assert (info["ok"], info["errors"], info["valid"]) == (0, 6, False)
    assert info["invalid_reason"] == "6 of 6 requests failed in 1 of 1 rounds: HTTP 503 (x6)"


def test_a_server_that_falls_behind_makes_the_row_invalid():
    """Freeze the server (SIGSTOP) while it holds every request: its answers leave late."""
    requests, delay_ms = 4, 500
    with running_delay_server() as server:
        workload = Workload(server.base_url, requests=requests, delay_ms=delay_ms, concurrency=requests)

        def freeze_once_all_are_waiting():
            deadline = time.monotonic() + 10
            while server.stats()["in_flight"] < requests and time.monotonic() < deadline:
                time.sleep(0.005)
            server.signal_all(signal.SIGSTOP)
            time.sleep(1.0)
            server.signal_all(signal.SIGCONT)

        with WorkerProcess(STRATEGIES["gevent-joinall"], CLIENTS["requests"], workload) as worker:
            recorder = RoundRecorder(worker, server)
            freezer = threading.Thread(target=freeze_once_all_are_waiting)
            freezer.start()
            recorder.record_round()
            freezer.join()
        info = row_info(
            STRATEGIES["gevent-joinall"], CLIENTS["requests"], workload, True, [], recorder.rounds
        )
    assert info["ok"] == requests  # every answer came, just late
    assert info["valid"] is False
    assert "the server fell behind" in info["invalid_reason"]
    assert info["server_lateness_p99_ms"] > 0.1 * delay_ms


def test_a_row_records_the_connections_its_rounds_opened_at_the_server(delay_server):
    """Issue 17: after the warm-up, a keep-alive round opens none; a new-connection round one per request."""
    for connection, opened in ((REUSE, 0), (NEW, 6)):
        workload = Workload(
            delay_server.base_url, requests=6, delay_ms=0, concurrency=1, connection=connection
        )
        with WorkerProcess(STRATEGIES["sequential"], CLIENTS["requests"], workload) as worker:
            recorder = RoundRecorder(worker, delay_server)
            recorder.warm_up()
            recorder.record_round()
        info = row_info(STRATEGIES["sequential"], CLIENTS["requests"], workload, False, [], recorder.rounds)
        assert info["ok"] == 6, info["invalid_reason"]
        assert info["server_connections_accepted"] == opened, connection


def test_a_healthy_round_has_its_server_figures(delay_server):
    """Counts and plumbing; whether it is VALID on a loaded machine is the instrument's verdict."""
    workload = Workload(delay_server.base_url, requests=5, delay_ms=200, concurrency=5)
    info = record_one_round(STRATEGIES["threads"], workload, delay_server)
    assert (info["ok"], info["errors"]) == (5, 0)
    assert_valid_or_the_instruments_limit(info)
    # 5 threads started well within the 200 ms that the server holds each request.
    assert info["server_max_in_flight"] == info["client_max_in_flight"] == 5
    assert isinstance(info["listen_overflows"], int)  # read, for the whole namespace (kernel.py)
    assert info["server_lateness_p99_ms"] is not None
    assert info["latency_p50_ms"] >= 200  # the server never answers early


def test_a_keepalive_warmup_that_fell_short_is_invalid_even_if_its_round_opened_none():
    """A pool that caps below K reuses its few connections: the round opens none, and the client's
    own in-flight count (taken as each fetch starts) never shows the cap; the warm-up's barrier
    does, by holding fewer than K at once."""
    from bench.analysis.row_info import connection_reasons
    from bench.workload import Workload

    workload = Workload("http://127.0.0.1:1", requests=200, delay_ms=10, concurrency=200)
    rounds = [{"server_connections_accepted": 0, "server_faults": 0}]
    held = [{"server_connections_accepted": 200}]
    short = [{"server_connections_accepted": 20, "shortfall": "its warm-up opened 20 of the 200 connections"}]
    assert connection_reasons(rounds, workload, held) == []
    assert connection_reasons(rounds, workload, short) == [
        "a warm-up fell short: its warm-up opened 20 of the 200 connections"
    ]
