"""--bench-connection, --bench-tls, --bench-host: what reaches the server, counted by the server.

A small threaded HTTP/1.1 server is the referee here: it counts the connections it accepted
and, per pair (each pair has its own path), the requests and the connections they came on.
It honours ``Connection: close`` the way the delay server must: it answers, says
``Connection: close`` and closes its side first (issue 17).
"""

from __future__ import annotations

import ssl
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest
from test_clients import label, run_side_by_side  # tests/ is on sys.path (rootdir conftest)

from bench.clients import CLIENTS, clients_for
from bench.strategies import STRATEGIES
from bench.workload import NEW, REUSE, Workload

NEW_PAIRS = [
    (strategy, client)
    for strategy in STRATEGIES.values()
    for client in clients_for(strategy, tuple(CLIENTS), NEW)
]


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # every pair's requests may connect at once

    def __init__(self, context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), CountingHandler)
        self.context = context
        self.lock = threading.Lock()
        self.accepted = 0
        self.requests: Counter[str] = Counter()
        self.connections: Counter[str] = Counter()  # by the path of each connection's first request

    def get_request(self):
        sock, address = super().get_request()
        with self.lock:
            self.accepted += 1
        if self.context is not None:  # the handshake happens on the handler's thread
            sock = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    @property
    def url(self) -> str:
        scheme = "https" if self.context else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


class CountingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client asks otherwise

    def setup(self) -> None:
        super().setup()
        self.answered = 0

    def do_GET(self) -> None:
        pair = unquote(self.path.split("/")[1])  # some clients quote the brackets
        with self.server.lock:
            self.server.requests[pair] += 1
            self.server.connections[pair] += self.answered == 0
        self.answered += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        if self.close_connection:  # the request said Connection: close
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format, *args) -> None:  # no line per request
        pass


@pytest.fixture
def counting_server():
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def run_pairs(pairs, server, n: int, connection: str) -> dict[str, dict]:
    return run_side_by_side(
        pairs,
        lambda pair: Workload(
            f"{server.url}/{label(pair)}",
            requests=n,
            delay_ms=0,
            concurrency=3,
            timeout_s=10,
            connection=connection,
        ),
    )


def test_urllib_serves_the_blocking_models_with_new_connections_only():
    by_label = {label(pair) for pair in NEW_PAIRS}
    assert {"gevent-joinall[urllib]", "gevent-pool[urllib]", "threads[urllib]"} <= by_label
    assert "asyncio-gather[urllib]" not in by_label
    assert [name for name, client in CLIENTS.items() if not client.connects(REUSE)] == ["urllib"]


def test_n_requests_in_new_mode_make_n_connections_for_every_client(counting_server):
    n = 6
    results = run_pairs(NEW_PAIRS, counting_server, n, NEW)
    for name, result in results.items():
        assert (result["ok"], result["errors"]) == (n, 0), (name, result["error_samples"])
        assert counting_server.requests[name] == n, name
        assert counting_server.connections[name] == n, name
    assert counting_server.accepted == n * len(NEW_PAIRS)


def test_reuse_mode_keeps_its_connections(counting_server):
    """The contrast: the same round on keep-alive opens at most one connection per request in flight."""
    n = 6
    pairs = [
        (STRATEGIES["threadpool"], client) for client in clients_for(STRATEGIES["threadpool"], tuple(CLIENTS))
    ]
    results = run_pairs(pairs, counting_server, n, REUSE)
    for name, result in results.items():
        assert (result["ok"], counting_server.requests[name]) == (n, n), name
        assert counting_server.connections[name] <= 3, name
