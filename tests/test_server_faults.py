"""Faults on purpose, bad clients and caps: the server answers what it should and never falls over."""

import http.client
import socket
import struct
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from servers.process import running_delay_server
from tests.test_server import get


def host_port(server) -> tuple[str, int]:
    host, port = server.base_url.removeprefix("http://").split(":")
    return host, int(port)


def wait_for_in_flight(server, expected: int, timeout_s: float = 10) -> int:
    deadline = time.monotonic() + timeout_s
    while (in_flight := server.stats()["in_flight"]) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return in_flight


def test_fail_answers_500(delay_server):
    delay_server.reset_stats()
    assert get(delay_server.url_for("/delay?ms=1&fail=1")) == (500, b"failed on purpose (fail=P)\n")
    assert delay_server.stats()["failed_on_purpose"] == 1


def test_fail_rate_is_a_fraction_of_requests(delay_server):
    delay_server.reset_stats()
    statuses = [get(delay_server.url_for("/delay?fail=0.5"))[0] for _ in range(200)]
    failed = statuses.count(500)
    assert failed == delay_server.stats()["failed_on_purpose"]
    assert 40 < failed < 160  # binomial(200, 0.5): outside this is a ~1e-18 event
    assert statuses.count(200) == 200 - failed


def test_drop_closes_without_an_answer(delay_server):
    delay_server.reset_stats()
    with pytest.raises(OSError):  # RemoteDisconnected: not a byte of HTTP came back
        urllib.request.urlopen(delay_server.url_for("/delay?ms=1&drop=1"), timeout=10)
    assert delay_server.stats()["dropped_on_purpose"] == 1
    assert wait_for_in_flight(delay_server, 0) == 0


def test_stall_sends_headers_then_nothing_until_the_client_gives_up(delay_server):
    delay_server.reset_stats()
    with socket.create_connection(host_port(delay_server), timeout=5) as client:
        client.sendall(b"GET /delay?ms=0&stall=1&bytes=100 HTTP/1.1\r\nHost: x\r\n\r\n")
        head = client.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: 100" in head
        client.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.recv(1)  # the body never comes
        assert delay_server.stats()["in_flight"] == 1
    # The client hung up: the stalled handler is cancelled and leaves in_flight.
    assert wait_for_in_flight(delay_server, 0) == 0
    assert delay_server.stats()["stalled"] == 1


def test_a_client_resetting_mid_delay_frees_its_request(delay_server):
    with socket.create_connection(host_port(delay_server), timeout=5) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        client.sendall(b"GET /delay?ms=30000 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for_in_flight(delay_server, 1) == 1
    assert wait_for_in_flight(delay_server, 0) == 0


def test_a_client_closing_mid_delay_holds_its_request_until_the_answer_is_due(delay_server):
    """A FIN may be a half-close (issue 24): the answer is still written when due, and the
    closed client's RST to it ends the connection."""
    with socket.create_connection(host_port(delay_server), timeout=5) as client:
        client.sendall(b"GET /delay?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_for_in_flight(delay_server, 1) == 1
    assert delay_server.stats()["in_flight"] == 1
    assert wait_for_in_flight(delay_server, 0) == 0


def bad_request(address, payload: bytes) -> bytes:
    """Send ``payload`` and read whatever comes back before the server closes or 2 s pass."""
    with socket.create_connection(address, timeout=5) as client:
        client.sendall(payload)
        client.settimeout(2)
        try:
            return client.recv(200)
        except (TimeoutError, ConnectionResetError):
            return b""


BAD_REQUESTS = [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n",  # a TLS hello on a plain port
    b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # a 64 KiB request line
    b"GET /delay HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n",  # a 20 KiB header
    b"GET /delay HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(500)) + b"\r\n",  # 500 headers
    b"NOT HTTP AT ALL\r\n\r\n",
    b"GET /delay?ms=abc HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize(
    "payload", BAD_REQUESTS, ids=["tls", "long-line", "big-header", "many-headers", "junk", "bad-ms"]
)
def test_each_bad_request_gets_a_4xx(delay_server, payload):
    answer = bad_request(host_port(delay_server), payload)
    assert answer.startswith((b"HTTP/1.0 4", b"HTTP/1.1 4")), answer[:80]


def test_hundreds_of_bad_requests_leave_the_server_healthy(delay_server):
    """Garbage, oversized lines, half requests and clients that vanish mid-delay, all at once."""
    address = host_port(delay_server)

    def half_request_then_leave(_):
        with socket.create_connection(address, timeout=5) as client:
            client.sendall(b"GET /delay?ms=50 HTTP/1.1\r\nHo")
        return b""

    def leave_mid_delay(_):
        with socket.create_connection(address, timeout=5) as client:
            client.sendall(b"GET /delay?ms=5000 HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.05)
        return b""

    jobs = [lambda _, p=p: bad_request(address, p) for p in BAD_REQUESTS] + [
        half_request_then_leave,
        leave_mid_delay,
    ]
    with ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(lambda i: jobs[i % len(jobs)](i), range(400)))

    assert get(delay_server.url_for("/delay?ms=0")) == (200, b"")
    assert wait_for_in_flight(delay_server, 0) == 0


def test_thousands_of_connections_opened_and_closed_at_once(delay_server):
    address = host_port(delay_server)
    sockets = [socket.create_connection(address, timeout=10) for _ in range(2000)]
    for sock in sockets:
        sock.close()
    assert get(delay_server.url_for("/delay?ms=0")) == (200, b"")
    assert wait_for_in_flight(delay_server, 0) == 0


def test_connections_past_the_cap_get_503():
    """The cap counts open connections over all workers, whichever worker holds them."""
    with running_delay_server(extra_args=("--workers", "2", "--max-connections", "3")) as server:
        held = []
        try:
            for _ in range(3):  # each answered once, so surely accepted, and kept open
                connection = http.client.HTTPConnection(*host_port(server), timeout=10)
                connection.request("GET", "/delay?ms=0")
                assert connection.getresponse().read() == b""
                held.append(connection)
            answer = bad_request(host_port(server), b"GET /delay HTTP/1.1\r\nHost: x\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert b"too many connections" in answer
        finally:
            for connection in held:
                connection.close()


def test_a_stalled_partial_request_is_cut_off_by_the_idle_timeout():
    with running_delay_server(extra_args=("--idle-timeout-s", "0.5")) as server:
        with socket.create_connection(host_port(server), timeout=10) as client:
            client.sendall(b"GET /delay HTTP/1.1\r\nHo")  # and never the rest
            assert client.recv(100) == b""  # closed by the server, not by our 10 s timeout
        assert server.stats()["in_flight"] == 0
