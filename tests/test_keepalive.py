"""Keep-alive means kept (issue 22): the warm-up opens every connection a round reuses, at once.

The delay server's ``gather=K`` barrier holds the warm-up's requests until K are in flight over
all its workers (or W ms pass); then, for every client in every model it serves, a keep-alive
round opens no connection, by the server's own count. A round that does is INVALID.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from contextlib import ExitStack

import pytest
from test_clients import PAIRS, label, started_workers  # tests/ is on sys.path (rootdir conftest)

from bench.analysis.row_info import invalid_reasons
from bench.clients import CLIENTS
from bench.harness import rounds
from bench.harness.rounds import RoundRecorder
from bench.harness.worker_process import WorkerProcess
from bench.strategies import STRATEGIES
from bench.targets import DELAY
from bench.workload import NEW, REUSE, Workload
from servers.process import running_delay_server

# Each pair's round: N requests (C for the pools), a short delay so the sequential row stays quick.
# N stays above every cap a model has (C, asyncio.to_thread's executor of min(32, cpu + 4)), so
# each model's warm-up still opens its own count of connections: a pool's C, the others' N.
N, C, DELAY_MS = 60, 20, 5
KEEPALIVE_CLIENTS = sorted({client.name for _, client in PAIRS})


def _port(server) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


def _send(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return sock


def _status(sock: socket.socket) -> bytes:
    with sock:
        return sock.recv(4096).split(b"\r\n", 1)[0]


def _wait_for_in_flight(server, count: int) -> None:
    deadline = time.monotonic() + 10
    while server.stats()["in_flight"] < count:
        assert time.monotonic() < deadline, f"never {count} in flight: {server.stats()['in_flight']}"
        time.sleep(0.01)


def assert_only_the_kth_releases(server, k: int, already_in_flight: int = 0) -> None:
    """K-1 gather requests wait (W is a minute), unanswered; the K-th releases them all."""
    port = _port(server)
    with ExitStack() as stack:
        waiting = [stack.enter_context(_send(port, f"/delay?ms=60000&gather={k}")) for _ in range(k - 1)]
        _wait_for_in_flight(server, already_in_flight + k - 1)
        readable, _, _ = select.select(waiting, [], [], 0.3)
        assert readable == [], f"answered with {k - 1} gather requests waiting"
        last = _send(port, f"/delay?ms=60000&gather={k}")
        statuses = [_status(sock) for sock in [*waiting, last]]  # each recv times out after 30 s
    assert statuses == [b"HTTP/1.1 200 OK"] * k


def test_gather_answers_k_requests_together_across_both_workers(delay_server):
    k = 24  # over 2 workers by the kernel's hash: all on one has a chance of 2**-23
    delay_server.reset_stats()
    assert_only_the_kth_releases(delay_server, k)
    stats = delay_server.stats()
    assert stats["workers"] == 2
    assert all(served > 0 for served in stats["served_per_worker"]), stats["served_per_worker"]
    assert (stats["served"], stats["max_in_flight"]) == (k, k)


def test_gather_counts_only_gather_requests(delay_server):
    """Another client's request in flight (a killed worker's, its answer not due) does not stand in
    for a gather request: K-1 of them plus it once released the barrier one short, and the K-th,
    arriving after, waited its whole W."""
    with _send(_port(delay_server), "/delay?ms=1500") as other:
        _wait_for_in_flight(delay_server, 1)
        assert_only_the_kth_releases(delay_server, 3, already_in_flight=1)
        assert _status(other) == b"HTTP/1.1 200 OK"  # ended: nothing left in flight


def test_a_gather_request_whose_client_reset_counts_no_more(delay_server):
    """A warm-up cut short (its worker killed) resets its connections: their gather requests must
    not stand in for the next warm-up's, which they did until their W ran out (outside review)."""
    k = 3
    gone = _send(_port(delay_server), f"/delay?ms=60000&gather={k}")
    _wait_for_in_flight(delay_server, 1)
    gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
    gone.close()
    deadline = time.monotonic() + 10
    while delay_server.stats()["in_flight"]:
        assert time.monotonic() < deadline, "the reset request never left the server's in-flight count"
        time.sleep(0.01)
    assert_only_the_kth_releases(delay_server, k)


def test_gather_answers_after_w_when_k_never_comes(delay_server):
    port = _port(delay_server)
    started = time.monotonic()
    socks = [_send(port, "/delay?ms=300&gather=1000") for _ in range(3)]
    assert [_status(sock) for sock in socks] == [b"HTTP/1.1 200 OK"] * 3
    assert time.monotonic() - started >= 0.3


def test_gather_refuses_faults():
    from servers.app import BadRequest, _Query, parse_delay_query

    with pytest.raises(BadRequest, match="warm-up barrier"):
        parse_delay_query(_Query.parse("ms=10&gather=5&drop=0.5"))
    assert parse_delay_query(_Query.parse("ms=10&gather=5"))["gather"] == 5


def _pair_workload(pair, server) -> Workload:
    return Workload(server.base_url, requests=N, delay_ms=DELAY_MS, concurrency=C, timeout_s=20)


@pytest.mark.parametrize("client", KEEPALIVE_CLIENTS)
def test_a_keepalive_round_opens_no_connection(client, delay_server):
    """Every model the client serves: the warm-up opens its K connections (N, or C for a pool),
    and the timed round after it opens none, by the server's count."""
    pairs = [pair for pair in PAIRS if pair[1].name == client]
    with started_workers(pairs, lambda pair: _pair_workload(pair, delay_server)) as workers:
        for pair, worker in zip(pairs, workers, strict=True):
            recorder = RoundRecorder(worker, delay_server)
            recorder.warm_up()
            recorder.record_round()
            assert recorder.failure is None, (label(pair), recorder.failure)
            [warmup], [record] = recorder.warmups, recorder.rounds
            # A trap row (gevent's patch cannot reach the client's IO) holds one connection.
            serialized = pair[1].runs_serialized(pair[0])
            expected = 1 if serialized else pair[0].fanout.max_in_flight(N, C)
            assert warmup["ok"] == pair[0].fanout.max_in_flight(N, C), (label(pair), warmup)
            assert (warmup["server_connections_accepted"], warmup.get("shortfall")) == (expected, None), (
                label(pair),
                warmup,
            )
            assert record["ok"] == N, (label(pair), record["error_samples"])
            assert record["server_connections_accepted"] == 0, label(pair)


def _round(accepted: int | None, faults: int = 0) -> dict:
    return {
        "ok": 10,
        "errors": 0,
        "error_samples": {},
        "server_requests": 10,
        "server_faults": faults,
        "server_connections_accepted": accepted,
    }


def _reasons(rounds: list[dict], connection: str = REUSE, warmups: list[dict] | None = None) -> list[str]:
    workload = Workload("http://127.0.0.1:1", requests=10, delay_ms=10, concurrency=10, connection=connection)
    info = {"server_lateness_p99_ms": 0.0, "listen_overflows": 0}
    return invalid_reasons(info, rounds, workload, warmups)


def test_a_keepalive_round_that_opens_connections_is_invalid():
    assert _reasons([_round(0), _round(0)]) == []
    assert _reasons([_round(0), _round(7)]) == ["opened 7 connections in a keep-alive round"]
    shortfall = {"shortfall": "its warm-up opened 3 of the 10 connections its rounds reuse"}
    assert _reasons([_round(7)], warmups=[shortfall]) == [
        "opened 7 connections in a keep-alive round",
        "a warm-up fell short: its warm-up opened 3 of the 10 connections its rounds reuse",
    ]
    # A connection the server dropped on purpose is reopened: that is the fault's, not the row's.
    dropped = _round(2, faults=2) | {"ok": 8, "errors": 2, "error_samples": {"dropped": 2}}
    assert not [reason for reason in _reasons([dropped]) if "connections" in reason]
    assert _reasons([_round(None)]) == []  # not counted (a database): nothing said


def test_a_new_connection_round_must_open_exactly_n():
    assert _reasons([_round(10)], connection=NEW) == []
    assert _reasons([_round(10), _round(9)], connection=NEW) == [
        "opened [10, 9] connections in its rounds, not 10 each (one per request)"
    ]


def test_every_keepalive_client_is_covered():
    # urllib has no pool (--bench-connection new only); the databases' drivers open theirs up front.
    assert set(KEEPALIVE_CLIENTS) == {
        name for name, client in CLIENTS.items() if client.target == DELAY and client.connects(REUSE)
    }


@pytest.mark.parametrize("keep_warm", [False, True], ids=["idle", "warmed again"])
def test_connections_the_server_closed_while_idle_are_reopened_before_the_round(keep_warm, monkeypatch):
    """A server that closes idle connections after 0.5 s, a worker idle for 1.5 s before its round:
    without a second warm-up the round fails on the closed connections (the raw client, like
    every client here, never retries); with it, the round succeeds and opens none."""
    monkeypatch.setattr(rounds, "KEEPALIVE_IDLE_S", 0.3)
    workload_args = {"requests": 20, "delay_ms": DELAY_MS, "concurrency": 20, "timeout_s": 10}
    with running_delay_server(extra_args=("--idle-timeout-s", "0.5")) as server:
        workload = Workload(server.base_url, **workload_args)
        with WorkerProcess(STRATEGIES["threads"], CLIENTS["raw"], workload) as worker:
            recorder = RoundRecorder(worker, server)
            recorder.warm_up()
            time.sleep(1.5)  # the server's idle timeout passes, with room for a loaded machine
            if keep_warm:
                recorder.keep_warm()
            recorder.record_round()
    [record] = recorder.rounds
    assert recorder.failure is None
    if not keep_warm:
        assert (record["ok"], record["errors"]) == (0, 20), record["error_samples"]
        assert recorder.rewarms == []
        return
    # The first found the closed connections by failing on them; the second opened them again.
    assert [(w["ok"], w["server_connections_accepted"]) for w in recorder.rewarms] == [(0, 0), (20, 20)]
    assert (record["ok"], record["server_connections_accepted"]) == (20, 0)
    assert _reasons_for(record, workload) == []


def _reasons_for(record: dict, workload: Workload) -> list[str]:
    info = {"server_lateness_p99_ms": 0.0, "listen_overflows": 0}
    return invalid_reasons(info, [record], workload)
