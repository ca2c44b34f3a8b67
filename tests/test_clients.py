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
from contextlib import ExitStack, contextmanager

import pytest
from referee_server import DROP, FAIL, OK, running_referee_server
from werkzeug import Response

from bench.analysis.row_info import serialized_note
from bench.analysis.summary import row_label
from bench.clients import CLIENTS, clients_for
from bench.clients.http11 import ProtocolError, ResponseReader
from bench.harness.worker_process import WorkerError, WorkerProcess
from bench.options import BenchOptions
from bench.scenarios import SCENARIOS
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
# Starting a worker is CPU work (imports): 40-odd at once on a loaded 2-core machine each took
# longer than the harness's startup timeout (seen at load average 70). A few at a time start
# as fast, and each start only competes with a few of ours; the rounds still run side by side.
STARTING_AT_ONCE = 4
UNBOUNDED = [
    (strategy, client)
    for strategy, client in PAIRS
    if strategy.fanout is Fanout.PER_REQUEST and not client.runs_serialized(strategy)
]
# libcurl resends a request whose reused connection closed before any answer ("Connection
# died, retrying a fresh connect": Curl_retry_request), and has no option to turn it off;
# PycURL does not either. Only a server that drops requests on purpose sees it.
RESENDS_ON_A_DEAD_CONNECTION = {"pycurl"}
# Where gevent's patch cannot reach the client's IO (libcurl, reqwest on tokio): trap rows.
TRAPS = [(strategy, client) for strategy, client in PAIRS if client.runs_serialized(strategy)]


def label(pair) -> str:
    return row_label(pair[0].name, pair[1])


def segment(pair) -> str:
    """The pair's own path on a referee server (a label has brackets, which clients may quote)."""
    return f"p{PAIRS.index(pair)}"


@contextmanager
def started_workers(pairs, workload_for):
    """Each pair's worker, started a few at a time (the slow part on a loaded machine), stopped after."""
    workers = [
        WorkerProcess(strategy, client, workload_for((strategy, client)), sample_interval_s=SAMPLE_INTERVAL_S)
        for strategy, client in pairs
    ]
    with ExitStack() as stack, ThreadPoolExecutor(len(workers)) as pool:
        for worker in workers:
            stack.callback(worker.__exit__, None, None, None)
        starting = threading.BoundedSemaphore(STARTING_AT_ONCE)

        def start(worker: WorkerProcess) -> None:
            # In this pool's threads, which live to the end: a worker dies with the thread that
            # started it (PR_SET_PDEATHSIG, servers/lifetime.py), not only with this process.
            with starting:
                worker.__enter__()

        list(pool.map(start, workers))
        yield workers


def run_side_by_side(pairs, workload_for) -> dict[str, dict]:
    """One round of each pair, each in its own worker, all at once; results by strategy[client]."""
    with started_workers(pairs, workload_for) as workers, ThreadPoolExecutor(len(workers)) as pool:
        results = list(pool.map(WorkerProcess.measure_round, workers))
    return {label(pair): result for pair, result in zip(pairs, results, strict=True)}


def test_the_matrix_covers_every_client_in_every_model_it_serves():
    # urllib cannot keep a connection: tests/test_connections.py runs it, with new connections.
    # The database's drivers have their matrix in tests/test_db.py.
    assert {client.name for _, client in PAIRS} == {
        c.name for c in CLIENTS.values() if c.target == DELAY and c.name != "urllib"
    }
    by_label = {label(pair) for pair in PAIRS}
    assert "gevent-joinall[geventhttpclient]" in by_label
    assert "threads[geventhttpclient]" not in by_label
    assert "threads[aiohttp]" not in by_label
    assert {"threads[httpx]", "asyncio-gather[httpx]", "asyncio-gather[raw]", "gevent-pool[raw]"} <= by_label
    assert {
        "threads[pycurl]",
        "asyncio-uvloop[pycurl]",
        "threads[pyreqwest]",
        "asyncio-gather[pyreqwest]",
    } <= by_label
    assert {label(pair) for pair in TRAPS} == {
        f"{strategy}[{client}]"
        for strategy in ("gevent-joinall", "gevent-pool")
        for client in ("pycurl", "pyreqwest")
    }


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


def test_every_client_counts_fails_and_drops_exactly_and_never_resends():
    """Each pair has its own path on the referee, which fails and drops requests on purpose:
    one client's resend cannot hide another's loss in a total."""
    n = 20

    def answer(segment: str, k: int) -> str:  # of every 10 arrivals: 5 ok, 3 answered 500, 2 dropped
        return {2: FAIL, 5: FAIL, 8: FAIL, 3: DROP, 7: DROP}.get(k % 10, OK)

    with running_referee_server(answer) as referee:
        results = run_side_by_side(
            PER_CLIENT_MODE,
            lambda pair: Workload(
                referee.url_for(segment(pair)), requests=n, delay_ms=0, concurrency=4, timeout_s=10
            ),
        )
    for pair in PER_CLIENT_MODE:
        name, result = label(pair), results[label(pair)]
        if pair[1].name in RESENDS_ON_A_DEAD_CONNECTION:
            # The referee sees it (more arrivals than requests sent, where a dropped request had
            # reused a connection); the client counts each request once, by its last answer.
            assert referee.arrived[segment(pair)] >= n, name
            assert result["ok"] == referee.outcomes[segment(pair), OK], name
            assert result["ok"] + result["errors"] == n, name
            continue
        # A client that resent a dropped GET shows as more arrivals than requests sent.
        assert referee.arrived[segment(pair)] == n, (name, "a client retried or lost requests")
        assert result["ok"] == referee.outcomes[segment(pair), OK] == n // 2, name
        assert result["errors"] == n // 2, (name, result["error_samples"])
        assert result["error_samples"].get("HTTP 500") == referee.outcomes[segment(pair), FAIL], name


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


def test_no_client_pool_caps_an_unbounded_strategy():
    """At N=200, every request of every unbounded pair is open at once: no pool queued any.

    The referee holds each pair's requests until all 200 have arrived, so this needs no clock;
    a capped pool would stall until the referee's deadline and count fewer in flight.
    """
    n = 200
    with running_referee_server(release_at=n) as referee:
        results = run_side_by_side(
            UNBOUNDED,
            lambda pair: Workload(referee.url_for(segment(pair)), requests=n, delay_ms=0, concurrency=10),
        )
    for pair in UNBOUNDED:
        name, result = label(pair), results[label(pair)]
        assert referee.arrived[segment(pair)] == n, name
        assert (result["ok"], result["client_max_in_flight"]) == (n, n), name


def test_a_client_the_patch_cannot_reach_runs_serialized_under_gevent(delay_server):
    """libcurl's and tokio's sockets are not gevent's: the greenlets' requests go out one at a
    time. The row is kept and says so (issue 25), as the database's trap rows do."""
    n, delay_ms = 4, 100
    results = run_side_by_side(
        TRAPS, lambda pair: Workload(delay_server.base_url, requests=n, delay_ms=delay_ms, concurrency=n)
    )
    for pair in TRAPS:
        name, result = label(pair), results[label(pair)]
        assert (result["ok"], result["errors"]) == (n, 0), (name, result["error_samples"])
        assert result["client_max_in_flight"] == 1, name
        assert serialized_note(result["client_max_in_flight"], n) == f"serialized: 1 in flight of {n}", name


def test_a_trap_row_too_long_to_run_says_it_is_serialized():
    """The clients scenario's 2,000 x 1 s one at a time would take hours: skipped, saying why."""
    options = BenchOptions(
        requests=40,
        delay_ms=250,
        concurrency=10,
        strategies=tuple(STRATEGIES),
        rounds=3,
        scenarios=("clients",),
    )
    [shape] = SCENARIOS["clients"].shapes(options)
    reasons = {label(pair): shape.skip_reason(*pair, options) for pair in shape.pairs(options)}
    assert reasons["gevent-joinall[pycurl]"].startswith(
        "serialized (gevent's patch cannot reach its IO), estimated"
    )
    assert reasons["sequential[pycurl]"].startswith("estimated")
    assert reasons["gevent-joinall[raw]"] is None


def test_a_native_clients_own_threads_are_counted(delay_server):
    """reqwest's requests run on tokio's OS thread: the row's OS threads show it beside the loop's."""
    pairs = [(STRATEGIES["asyncio-gather"], CLIENTS[name]) for name in ("raw", "pyreqwest")]
    results = run_side_by_side(
        pairs, lambda pair: Workload(delay_server.base_url, requests=4, delay_ms=0, concurrency=4)
    )
    assert results["asyncio-gather[raw]"]["os_threads_peak"] == 1
    assert results["asyncio-gather[pyreqwest]"]["os_threads_peak"] >= 2


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
