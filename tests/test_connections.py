"""--bench-connection, --bench-tls, --bench-host: what reaches the server, counted by the server.

A small threaded HTTP/1.1 server is the referee here: it counts the connections it accepted
and, per pair (each pair has its own path), the requests and the connections they came on.
It honours ``Connection: close`` the way the delay server must: it answers, says
``Connection: close`` and closes its side first (issue 17). The real delay server is the
referee too: its ``/stats`` ``connections_accepted``, one pair at a time (issue 17, item 7).
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest
from test_clients import (  # tests/ is on sys.path (rootdir conftest)
    PER_CLIENT_MODE,
    label,
    run_side_by_side,
    started_workers,
)

from bench.clients import CLIENTS, clients_for
from bench.harness.local_ca import local_ca
from bench.strategies import STRATEGIES
from bench.workload import NEW, REUSE, Workload
from servers.tls import server_context

NEW_PAIRS = [
    (strategy, client)
    for strategy in STRATEGIES.values()
    for client in clients_for(strategy, tuple(CLIENTS), NEW)
]
# Every client in every way it runs (its API, patched or not, in a pool process or not): the
# test_clients matrix's modes, plus urllib's. Dozens of workers at once on a shared 2-core
# machine can take longer than a worker's start-up deadline, so not every pair.
NEW_PER_MODE = [pair for pair in NEW_PAIRS if pair in PER_CLIENT_MODE or pair[1].name == "urllib"]


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

    def handle_error(self, request, client_address) -> None:
        pass  # a client that refused our certificate: counted by the client, not logged here

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
        self.send_response(500 if "fail" in self.path else 200)
        self.send_header("Content-Length", "2")
        if self.close_connection:  # the request said Connection: close
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format, *args) -> None:  # no line per request
        pass


@contextmanager
def serving(context: ssl.SSLContext | None = None):
    server = CountingServer(context)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def counting_server():
    with serving() as server:
        yield server


@pytest.fixture(scope="module")
def authority():
    with local_ca() as ca:
        yield ca


@pytest.fixture
def tls_counting_server(authority):
    with serving(server_context(authority.cert_file, authority.key_file)) as server:
        yield server


def run_pairs(pairs, server, n: int, connection: str, ca_file: str = "") -> dict[str, dict]:
    return run_side_by_side(
        pairs,
        lambda pair: Workload(
            f"{server.url}/{label(pair)}",
            requests=n,
            delay_ms=0,
            concurrency=3,
            timeout_s=10,
            connection=connection,
            ca_file=ca_file,
        ),
    )


def test_urllib_serves_the_blocking_models_with_new_connections_only():
    by_label = {label(pair) for pair in NEW_PAIRS}
    assert {"gevent-joinall[urllib]", "gevent-pool[urllib]", "threads[urllib]"} <= by_label
    assert "asyncio-gather[urllib]" not in by_label
    assert [name for name, client in CLIENTS.items() if not client.connects(REUSE)] == ["urllib"]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "TLS"])
def test_n_requests_in_new_mode_make_n_connections_for_every_client(request, tls):
    """Counted by the delay server itself, for every client in every way it runs; with TLS, the
    seed's workload (https, a full handshake per request), every client verifying the local CA.
    The workers start together, then each pair's round runs alone between a reset of /stats and
    a read of it, so the server's counts are that pair's."""
    server = request.getfixturevalue("tls_delay_server" if tls else "plain_delay_server")
    n = 5

    def workload_for(pair):
        return Workload(
            server.base_url,
            requests=n,
            delay_ms=0,
            concurrency=3,
            timeout_s=10,
            connection=NEW,
            ca_file=server.ca_file,
        )

    with started_workers(NEW_PER_MODE, workload_for) as workers:
        for pair, worker in zip(NEW_PER_MODE, workers, strict=True):
            server.reset_stats()
            result = worker.measure_round()
            stats = server.stats()
            assert (result["ok"], result["errors"]) == (n, 0), (label(pair), result["error_samples"])
            assert stats["served"] == n, label(pair)
            # /stats is read on a connection of its own, accepted after the reset: one more.
            assert stats["connections_accepted"] == n + 1, label(pair)


def test_a_failed_tls_handshake_is_still_an_accepted_connection(tls_delay_server):
    """asyncio and uvloop call connection_made only after the handshake: the server counts on accept."""
    port = int(tls_delay_server.base_url.rsplit(":", 1)[1])
    tls_delay_server.reset_stats()
    with local_ca() as stranger, pytest.raises(ssl.SSLCertVerificationError):
        get_and_read_to_eof(port, "127.0.0.1", ssl.create_default_context(cafile=stranger.ca_file))
    stats = tls_delay_server.stats()
    assert (stats["connections_accepted"], stats["served"]) == (2, 0)  # the refused one and this read


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


def test_a_client_trusting_another_ca_counts_every_request_as_an_error(tls_counting_server):
    """One pair per way each client runs (its API, patched or not, in a pool process or not)."""
    n = 3
    pairs = {NEW: NEW_PER_MODE, REUSE: PER_CLIENT_MODE}
    with local_ca() as stranger:
        results = {
            connection: run_pairs(
                pairs[connection],
                tls_counting_server,
                n,
                connection,
                ca_file=stranger.ca_file,
            )
            for connection in (NEW, REUSE)
        }
    for connection, by_pair in results.items():
        for name, result in by_pair.items():
            assert (result["ok"], result["errors"]) == (0, n), (connection, name)
    # Every handshake failed: not one request reached the server (httpx on trio says only "ConnectError").
    assert sum(tls_counting_server.requests.values()) == 0
    assert tls_counting_server.accepted > 0


def get_and_read_to_eof(port: int, host: str, context: ssl.SSLContext) -> tuple[str, ssl.SSLSession, bytes]:
    """One ``Connection: close`` GET, read until the server closes its side."""
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(b"GET /delay?ms=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(4096):  # b"": the server closed first
            answer += chunk
        return tls.version(), tls.session, answer


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_the_delay_server_serves_tls_13_on_both_loopbacks_and_closes_first(tls_delay_server, host):
    port = int(tls_delay_server.base_url.rsplit(":", 1)[1])
    version, session, answer = get_and_read_to_eof(
        port, host, ssl.create_default_context(cafile=tls_delay_server.ca_file)
    )
    assert tls_delay_server.base_url.startswith("https://")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"connection: close" in answer.lower()
    assert version == "TLSv1.3"
    assert not session.has_ticket  # no resumption: every new connection is a full handshake


def test_the_delay_server_refuses_tls_12(tls_delay_server):
    port = int(tls_delay_server.base_url.rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=tls_delay_server.ca_file)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        get_and_read_to_eof(port, "127.0.0.1", context)


def test_a_name_row_resolves_the_name_through_its_model(delay_server):
    """Counted inside each worker, on the model's own path (bench/harness/resolver.py)."""
    n = 5
    port = delay_server.base_url.rsplit(":", 1)[1]
    pairs = NEW_PER_MODE
    results = run_side_by_side(
        pairs,
        lambda pair: Workload(
            f"http://localhost:{port}", requests=n, delay_ms=0, concurrency=3, timeout_s=10, connection=NEW
        ),
    )
    for (strategy, client), (name, result) in zip(pairs, results.items(), strict=True):
        assert (result["ok"], result["errors"]) == (n, 0), (name, result["error_samples"])
        # libuv's C resolver, other processes, clients that resolve in C or Rust
        if strategy.loop == "uvloop" or strategy.processes or not client.patch_reaches_io:
            assert result["resolver_calls"] is None, name
        elif client.name == "aiohttp":  # its DNS cache: one lookup for the round, however many connect
            assert result["resolver_calls"] == 1, name
        else:  # raw, requests, urllib3, httpx, geventhttpclient, urllib: no cache, a lookup per connection
            assert result["resolver_calls"] == n, (name, result["resolver_calls"])


def test_a_literal_address_needs_no_lookup_in_the_event_loops(delay_server):
    """The contrast: asyncio and trio skip getaddrinfo for 127.0.0.1, so a name row's count is lookups."""
    n = 3
    pairs = [(STRATEGIES[name], CLIENTS["raw"]) for name in ("asyncio-gather", "trio-nursery")]
    results = run_side_by_side(
        pairs,
        lambda pair: Workload(delay_server.base_url, requests=n, delay_ms=0, concurrency=3, connection=NEW),
    )
    for name, result in results.items():
        assert (result["ok"], result["resolver_calls"]) == (n, 0), name


def test_the_run_records_the_negotiated_tls(tls_delay_server, delay_server):
    assert tls_delay_server.negotiated_tls()["version"] == "TLSv1.3"
    assert delay_server.negotiated_tls() is None


def test_urllib_counts_a_500_as_an_error_and_reads_it(counting_server):
    """urlopen raises HTTPError for a 500; the client still reads it and returns its status."""
    pairs = [(STRATEGIES[name], CLIENTS["urllib"]) for name in ("threads", "gevent-pool")]
    results = run_side_by_side(
        pairs,
        lambda pair: Workload(
            f"{counting_server.url}/{label(pair)}/fail", requests=4, delay_ms=0, concurrency=2, connection=NEW
        ),
    )
    for name, result in results.items():
        assert (result["ok"], result["error_samples"]) == (0, {"HTTP 500": 4}), name
        assert counting_server.connections[name] == 4, name
