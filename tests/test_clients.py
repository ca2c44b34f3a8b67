"""Every strategy with every client it can use: exactly N requests, every failure counted, no cap, no hang.

The pairs run side by side (one worker process each, started and driven concurrently), so the
whole matrix costs seconds, not minutes; each pair still has its own process, URL and counts.
How a client times out, fails to connect or resends depends on the client, its API and
whether the worker is patched, not on the model: those checks run one pair per (client, API,
patched); exactly N requests and the count of 500s are checked for every pair.
"""

from __future__ import annotations

import itertools
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest
from werkzeug import Response

from bench.analysis.summary import row_label
from bench.clients import CLIENTS, clients_for
from bench.clients.http11 import ProtocolError, ResponseReader
from bench.harness.worker_process import WorkerError, WorkerProcess
from bench.strategies import STRATEGIES, Fanout
from bench.targets import DELAY
from bench.workload import Workload, fault_query

PAIRS = [
    (strategy, client) for strategy in STRATEGIES.values() for client in clients_for(strategy, tuple(CLIENTS))
]
# One pair for each way a client can run: its API, in a patched worker or not, in a pool process or not.
_MODES: dict[tuple, tuple] = {}
for _strategy, _client in PAIRS:  # the first pair of each mode, in registry order
    _MODES.setdefault(
        (_client.name, _strategy.api, _strategy.gevent, _strategy.processes), (_strategy, _client)
    )
PER_CLIENT_MODE = list(_MODES.values())
# The matrix checks counts, not threads: polling 40-odd workers every 1 ms from this process
# (pytest-httpserver's too) starved it of the GIL and tripled the tests' time.
SAMPLE_INTERVAL_S = 0.05
UNBOUNDED = [(strategy, client) for strategy, client in PAIRS if strategy.fanout is Fanout.PER_REQUEST]


def label(pair) -> str:
    return row_label(pair[0].name, pair[1])


def run_side_by_side(pairs, workload_for) -> dict[str, dict]:
    """One round of each pair, each in its own worker, all at once; results by strategy[client]."""
    workers = [
        WorkerProcess(strategy, client, workload_for((strategy, client)), sample_interval_s=SAMPLE_INTERVAL_S)
        for strategy, client in pairs
    ]
    with ExitStack() as stack, ThreadPoolExecutor(len(workers)) as pool:
        for worker in workers:
            stack.callback(worker.__exit__, None, None, None)
        list(pool.map(WorkerProcess.__enter__, workers))
        results = list(pool.map(WorkerProcess.measure_round, workers))
    return {label(pair): result for pair, result in zip(pairs, results, strict=True)}


def test_the_matrix_covers_every_client_in_every_model_it_serves():
    # The database's drivers have their matrix in tests/test_db.py.
    assert {client.name for _, client in PAIRS} == {c.name for c in CLIENTS.values() if c.target == DELAY}
    by_label = {label(pair) for pair in PAIRS}
    assert "gevent-joinall[geventhttpclient]" in by_label
    assert "threads[geventhttpclient]" not in by_label
    assert "threads[aiohttp]" not in by_label
    assert {"threads[httpx]", "asyncio-gather[httpx]", "asyncio-gather[raw]", "gevent-pool[raw]"} <= by_label


def test_every_pair_sends_exactly_n_requests_and_counts_500s(httpserver):
    """pytest-httpserver is the referee: each pair has its own path, every third answer is a 500."""
    n = 12
    counters = {label(pair): itertools.count() for pair in PAIRS}
    lock = threading.Lock()

    def every_third_fails(request):
        with lock:
            k = next(counters[request.path.split("/")[1]])
        return Response("boom", status=500) if k % 3 == 2 else Response("ok")

    for pair in PAIRS:
        httpserver.expect_request(f"/{label(pair)}/delay").respond_with_handler(every_third_fails)

    def workload_for(pair):
        base = httpserver.url_for(f"/{label(pair)}").rstrip("/")
        return Workload(base_url=base, requests=n, delay_ms=0, concurrency=3, timeout_s=10)

    results = run_side_by_side(PAIRS, workload_for)
    received = {name: 0 for name in counters}
    for request, _ in httpserver.log:
        received[request.path.split("/")[1]] += 1
    for name, result in results.items():
        assert received[name] == n, name
        assert (result["ok"], result["errors"], result["error_samples"]) == (
            n - n // 3,
            n // 3,
            {"HTTP 500": n // 3},
        ), name


def test_every_client_counts_fails_and_drops_exactly_and_never_resends(delay_server):
    """The delay server fails and drops requests on purpose; its own counts are the referee."""
    n = 20
    delay_server.reset_stats()
    results = run_side_by_side(
        PER_CLIENT_MODE,
        lambda pair: Workload(
            delay_server.base_url, requests=n, delay_ms=0, concurrency=4, fault_query=fault_query(0.3, 0.2)
        ),
    )
    stats = delay_server.stats()
    for name, result in results.items():
        assert result["ok"] + result["errors"] == n, name
    injected = stats["failed_on_purpose"] + stats["dropped_on_purpose"]
    assert injected > 0
    # A client that resent a dropped GET would show as more requests than were sent, or fewer errors.
    assert stats["served"] + injected == n * len(PER_CLIENT_MODE), "a client retried or lost requests"
    assert sum(r["errors"] for r in results.values()) == injected
    assert sum(r["ok"] for r in results.values()) == stats["served"]


def test_every_client_ends_stalled_responses_at_its_timeout(delay_server):
    """Headers, then no body: each request gives up at the timeout, counted as an error."""
    results = run_side_by_side(
        PER_CLIENT_MODE,
        lambda pair: Workload(
            delay_server.base_url,
            requests=3,
            delay_ms=0,
            concurrency=2,
            timeout_s=1.0,
            fault_query=fault_query(stall=True),
        ),
    )
    for name, result in results.items():
        assert (result["ok"], result["errors"]) == (0, 3), name
        [message] = result["error_samples"]
        assert "imeout" in message or "timed out" in message, (name, message)


def test_every_client_counts_refused_connections():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before the workers connect
    results = run_side_by_side(
        PAIRS,
        lambda pair: Workload(f"http://127.0.0.1:{port}", requests=4, delay_ms=0, concurrency=2, timeout_s=5),
    )
    for name, result in results.items():
        assert (result["ok"], result["errors"]) == (0, 4), name


def test_no_client_pool_caps_an_unbounded_strategy(delay_server):
    """At N=200, every request of every unbounded pair is open at once: no pool queued any."""
    n = 200
    results = run_side_by_side(
        UNBOUNDED, lambda pair: Workload(delay_server.base_url, requests=n, delay_ms=4000, concurrency=10)
    )
    for name, result in results.items():
        assert (result["ok"], result["client_max_in_flight"]) == (n, n), name


def test_geventhttpclient_is_refused_outside_a_patched_worker(delay_server):
    workload = Workload(delay_server.base_url, requests=1, delay_ms=0, concurrency=1)
    refused = r"client geventhttpclient cannot serve threads .*in a patched worker only"
    with (
        pytest.raises(WorkerError, match=refused),
        WorkerProcess(STRATEGIES["threads"], CLIENTS["geventhttpclient"], workload),
    ):
        pass


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        (
            [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
            "Transfer-Encoding 'chunked'",
        ),
        ([b"HTTP/1.1 200 OK\r\n\r\n"], "no valid Content-Length"),
        ([b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n"], "malformed status line"),
        ([b"SPDY/9 200 OK\r\nContent-Length: 0\r\n\r\n"], "malformed status line"),
        ([b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 0\r\n\r\n"], "malformed header line"),
        (
            [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b""],
            "connection closed during the body (5 of 10 bytes)",
        ),
        ([b"HTTP/1.1 200 OK\r\nContent-Le", b""], "connection closed during the head"),
        ([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nlonger"], "4 bytes after a body of 2"),
        ([b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70_000], "response head over"),
    ],
)
def test_raw_reader_refuses_what_it_cannot_trust(chunks, message):
    reader = ResponseReader()
    with pytest.raises(ProtocolError, match=re.escape(message)):
        for chunk in chunks:
            reader.feed(chunk)


def test_raw_reader_reads_a_response_in_pieces():
    reader = ResponseReader()
    assert reader.feed(b"HTTP/1.1 500 Internal Server Error\r\nContent-Len") is None
    assert reader.feed(b"gth: 4\r\nConnection: close\r\n\r\nbo") is None
    response = reader.feed(b"om")
    assert (response.status, response.keep_alive) == (500, False)


BAD_ANSWERS = {
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    "malformed": b"HTTP/1.1 two hundred\r\n\r\n",
    "short-then-silent": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
    "closed": b"",
}


@pytest.fixture
def bad_server():
    """A TCP server that answers every request with BAD_ANSWERS[path] and then holds the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def serve():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            path = conn.recv(4096).split(b" ")[1].decode().split("/")[1]
            if BAD_ANSWERS[path]:
                conn.sendall(BAD_ANSWERS[path])
                held.append(conn)  # never closed until the test ends: a hang would show
            else:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_raw_client_turns_bad_answers_into_errors_never_hangs(bad_server):
    pairs = [(STRATEGIES[name], CLIENTS["raw"]) for name in ("threads", "gevent-joinall", "asyncio-gather")]
    for path in BAD_ANSWERS:
        results = run_side_by_side(
            pairs,
            lambda pair, path=path: Workload(
                f"{bad_server}/{path}", requests=2, delay_ms=0, concurrency=2, timeout_s=1.0
            ),
        )
        for name, result in results.items():
            assert (result["ok"], result["errors"]) == (0, 2), (path, name)
