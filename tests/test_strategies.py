"""Each strategy, in its real worker process, sends exactly N requests and counts failures right.

pytest-httpserver is the referee: it logs every request it gets, independently of the suite.
"""

import itertools
import threading

import pytest
from werkzeug import Response

from bench.strategies import STRATEGIES
from bench.worker_process import WorkerProcess
from bench.workload import Workload, fault_query

ALL = pytest.mark.parametrize("strategy", STRATEGIES.values(), ids=STRATEGIES.keys())
REQUESTS = 12
CONCURRENCY = 3


def workload_for(httpserver, requests=REQUESTS) -> Workload:
    base_url = httpserver.url_for("/").rstrip("/")
    return Workload(base_url=base_url, requests=requests, delay_ms=0, concurrency=CONCURRENCY, timeout_s=10)


def delay_requests(httpserver) -> list:
    return [request for request, _ in httpserver.log if request.path == "/delay"]


@ALL
def test_sends_exactly_n_requests_and_counts_them_ok(httpserver, strategy):
    httpserver.expect_request("/delay", query_string={"ms": "0"}).respond_with_data("")
    with WorkerProcess(strategy, workload_for(httpserver)) as worker:
        result = worker.measure_round()
    assert (result["ok"], result["errors"]) == (REQUESTS, 0)
    assert len(delay_requests(httpserver)) == REQUESTS
    httpserver.check_assertions()


@ALL
def test_counts_failed_requests_as_errors(httpserver, strategy):
    """Every third answer is a 500: the round must say exactly which share failed, and why."""
    counter = itertools.count()
    lock = threading.Lock()

    def every_third_fails(request):
        with lock:
            n = next(counter)
        return Response("boom", status=500) if n % 3 == 2 else Response("")

    httpserver.expect_request("/delay").respond_with_handler(every_third_fails)
    with WorkerProcess(strategy, workload_for(httpserver)) as worker:
        result = worker.measure_round()
    assert len(delay_requests(httpserver)) == REQUESTS
    assert (result["ok"], result["errors"]) == (REQUESTS - REQUESTS // 3, REQUESTS // 3)
    assert result["error_samples"] == {"HTTP 500": REQUESTS // 3}


@ALL
def test_refused_connections_are_errors_not_speed(strategy):
    """Nothing listens on the port: every request fails, and each failure is counted."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the worker connects
    workload = Workload(
        base_url=f"http://127.0.0.1:{port}", requests=5, delay_ms=0, concurrency=2, timeout_s=5
    )
    with WorkerProcess(strategy, workload) as worker:
        result = worker.measure_round()
    assert (result["ok"], result["errors"]) == (0, 5)
    [message] = result["error_samples"]
    assert "Connect" in message  # requests' ConnectionError, aiohttp's ClientConnectorError


@ALL
def test_stalled_responses_end_at_the_timeout_as_errors(strategy, delay_server):
    """The server sends headers and never the body: each request must give up at its timeout."""
    workload = Workload(
        delay_server.base_url,
        requests=4,
        delay_ms=0,
        concurrency=2,
        timeout_s=0.5,
        fault_query=fault_query(stall=True),
    )
    with WorkerProcess(strategy, workload) as worker:
        result = worker.measure_round()
    assert (result["ok"], result["errors"]) == (0, 4)
    [message] = result["error_samples"]
    assert "Timeout" in message or "timed out" in message, message


@ALL
def test_fail_rate_errors_match_what_the_server_injected(strategy, delay_server):
    workload = Workload(
        delay_server.base_url, requests=40, delay_ms=0, concurrency=4, fault_query=fault_query(0.3, 0.2)
    )
    with WorkerProcess(strategy, workload) as worker:
        delay_server.reset_stats()
        result = worker.measure_round()
        stats = delay_server.stats()
    assert result["ok"] + result["errors"] == 40
    assert result["errors"] == stats["failed_on_purpose"] + stats["dropped_on_purpose"]
    assert result["ok"] == stats["served"]
