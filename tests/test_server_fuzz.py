"""A fuzz campaign on the delay server (issue 24 item 2), against a real server process.

Hypothesis generates conversations: pipelined mixes of good requests and bad ones (methods,
targets, query strings, header counts and sizes, Upgrade, CONNECT, TLS records, random bytes),
sent in split and slow writes, ended by a half-close, a close, a reset or by nothing (the idle
timeout's turn). Each is checked against what the server must do: answer every good request
correctly and in order, never before its delay and never twice; refuse a bad one with its status
(and, where the parser gave up, close); close every connection by its idle timeout; print
nothing (no traceback); and keep answering a fresh request correctly afterwards. A second test
sends TLS garbage before and during the handshake to an HTTPS server.

Hypothesis rather than atheris: the properties are about a conversation with a separate process
(timing, splits, hang-ups, in-order answers), which hypothesis generates and shrinks to the
smallest failing one; atheris fuzzes a function in its own process, guided by coverage of
instrumented code, and would reach httptools' C parser (llhttp, itself fuzzed upstream) rather
than the server's connection handling.

The README's `pytest` runs a short form (a few dozen conversations, seconds); the long form:
``COROUTINE_BENCH_FUZZ=long pytest tests/test_server_fuzz.py -s`` (prints its tally).
"""

from __future__ import annotations

import collections
import os
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.harness.local_ca import local_ca
from servers.app import MAX_HEADERS, MAX_LINE_BYTES
from servers.process import running_delay_server

# Short enough that a conversation left open is closed within seconds, long enough that a
# loaded machine's scheduling does not cut a slow write or a TLS handshake off (at 0.5 s, one
# handshake in 1,200 was, with the machine busy; the writes below pause <= 120 ms).
IDLE_TIMEOUT_S = 1.0
# How long past its due time the server may take to close a connection, on a loaded machine.
CLOSE_MARGIN_S = 3.0
# uvloop's timers count in whole milliseconds from a clock cached per loop iteration, so a
# timer may fire up to about a millisecond before the exact monotonic instant.
TIMER_RESOLUTION_S = 0.002

PROFILES = {"short": 25, "long": 1500}
PROFILE = os.environ.get("COROUTINE_BENCH_FUZZ", "short")
if PROFILE not in PROFILES:
    raise ValueError(f"COROUTINE_BENCH_FUZZ must be one of {sorted(PROFILES)}, got {PROFILE!r}")
FUZZ_SETTINGS = settings(
    max_examples=PROFILES[PROFILE],
    deadline=None,  # a conversation waits on real timers and the idle timeout
    derandomize=PROFILE == "short",  # CI's short form is the same every run
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# What the campaign saw, for the long form's report: inputs, outcomes, failures.
TALLY: collections.Counter = collections.Counter()
OUTCOMES: collections.Counter = collections.Counter()


@dataclass(frozen=True)
class Message:
    """Bytes sent, and the answer they must get: a status, or None for bytes the parser may hold."""

    data: bytes
    status: int | None
    body: bytes | None = None  # the exact body, where known
    delay_s: float = 0.0
    closes: bool = False  # the server closes after answering it (or never reads past it)
    head_only: bool = False
    dropped: bool = False  # drop=1: closed without an answer


def host_port(server) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(server.base_url)
    return parts.hostname, parts.port


# -- the generator ---------------------------------------------------------------------------


def head(method: bytes, target: bytes, headers: list[bytes], version: bytes = b"1.1") -> bytes:
    return b"%s %s HTTP/%s\r\n%s\r\n" % (method, target, version, b"".join(h + b"\r\n" for h in headers))


@st.composite
def good_requests(draw) -> Message:
    ms, size = draw(st.integers(0, 30)), draw(st.integers(0, 2000))
    fail = draw(st.sampled_from(["", "&fail=1", "&drop=1", "&fail=0&drop=0"]))
    target = b"/delay?ms=%d&bytes=%d%s" % (ms, size, fail.encode())
    if draw(st.booleans()):
        target = b"http://127.0.0.1" + target  # absolute form (RFC 9112 3.2.2)
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.0"]))
    headers = [b"Host: x", *draw(extra_headers(room=MAX_HEADERS - 4))]
    close = draw(st.booleans())
    if close:
        headers.append(b"Connection: close")
    upgrade = draw(st.integers(0, 5)) == 0
    if upgrade:
        headers += [b"Connection: Upgrade", b"Upgrade: websocket"]
    closes = close or upgrade or version == b"1.0"
    data = head(draw(st.sampled_from([b"GET", b"POST"])), target, headers, version)
    if upgrade:
        data += draw(st.binary(max_size=40))  # the other protocol's bytes: never parsed
    if fail == "&fail=1":
        return Message(data, 500, b"failed on purpose (fail=P)\n", ms / 1000, closes)
    if fail == "&drop=1":
        return Message(data, None, None, ms / 1000, closes=True, dropped=True)
    return Message(data, 200, b"x" * size, ms / 1000, closes)


@st.composite
def extra_headers(draw, room: int) -> list[bytes]:
    count = draw(st.integers(0, min(room, 12)) | st.just(room))
    return [b"X-F%d: %s" % (i, b"v" * draw(st.integers(0, 200))) for i in range(count)]


# Well-formed HTTP that routing refuses: the status, and whether the server then closes.
REFUSED_TARGETS = [
    (b"/nowhere", 404),
    (b"*", 404),
    (b"//delay", 404),
    (b"/del%00ay", 404),
    (b"/delay?ms=-1", 400),
    (b"/delay?ms=abc", 400),
    (b"/delay?ms=", 400),
    (b"/delay?ms=99999999", 400),
    (b"/delay?ms=1&ms=2", 400),
    (b"/delay?bytes=10485761", 400),
    (b"/delay?fail=2", 400),
    (b"/delay?zz=1", 400),
    (b"/delay?%zz=1", 400),
    (b"/delay?ms=1;bytes=2", 400),
]


@st.composite
def refused_requests(draw) -> Message:
    kind = draw(st.sampled_from(["target", "method", "reset", "connect"]))
    if kind == "target":
        target, status = draw(st.sampled_from(REFUSED_TARGETS))
        return Message(head(b"GET", target, [b"Host: x"]), status)
    if kind == "method":
        method = draw(st.sampled_from([b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]))
        return Message(head(method, b"/delay", [b"Host: x"]), 405, head_only=method == b"HEAD")
    if kind == "reset":  # /stats/reset wants POST
        return Message(head(b"GET", b"/stats/reset", [b"Host: x"]), 405, closes=True)
    return Message(head(b"CONNECT", b"127.0.0.1:80", [b"Host: x"]) + b"tunnel bytes", 405, closes=True)


@st.composite
def malformed_requests(draw) -> Message:
    """Bytes the parser (or a size limit) refuses: 400, then the connection closes."""
    kind = draw(st.sampled_from(["method", "version", "header", "headers", "line", "url", "tls"]))
    if kind == "method":
        data = head(draw(st.sampled_from([b"G@T", b"get", b"FOO", b"GE T"])), b"/delay", [b"Host: x"])
    elif kind == "version":
        data = head(b"GET", b"/delay", [b"Host: x"], version=draw(st.sampled_from([b"x.1", b"1.1x", b""])))
    elif kind == "header":
        data = head(
            b"GET", b"/delay", [b"Host: x", draw(st.sampled_from([b"No colon", b"Sp ace: x", b": x"]))]
        )
    elif kind == "headers":
        data = head(b"GET", b"/delay", [b"X-H%d: y" % i for i in range(MAX_HEADERS + 1)])
    elif kind == "line":
        data = head(b"GET", b"/delay", [b"X-Big: " + b"v" * MAX_LINE_BYTES])
    elif kind == "url":
        data = head(b"GET", b"/delay?" + b"a" * (MAX_LINE_BYTES + 1), [b"Host: x"])
    else:  # a TLS ClientHello's record header sent to the plain server
        data = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + draw(st.binary(min_size=1, max_size=64))
    return Message(data, 400, closes=True)


@st.composite
def random_bytes(draw) -> Message:
    """Anything: the parser may refuse it (400) or wait for more (the idle timeout closes)."""
    return Message(draw(st.binary(min_size=1, max_size=300)), None, closes=True)


messages = st.one_of(
    good_requests(),
    good_requests(),
    good_requests(),
    refused_requests(),
    malformed_requests(),
    random_bytes(),
)


@st.composite
def conversations(draw):
    sent = draw(st.lists(messages, min_size=1, max_size=6))
    for index, message in enumerate(sent):
        if message.status is None and not message.dropped:  # what follows could complete it
            sent = sent[: index + 1]
            break
    data = b"".join(m.data for m in sent)
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=5)))
    pauses = draw(st.lists(st.sampled_from([0.0, 0.0, 0.005, 0.02]), min_size=len(cuts), max_size=len(cuts)))
    ending = draw(st.sampled_from(["wait", "half-close", "half-close", "close", "reset"]))
    return sent, cuts, pauses, ending


# -- the oracle --------------------------------------------------------------------------------


class Reader(threading.Thread):
    """Reads a connection until it closes, stamping each chunk's arrival."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.chunks: list[tuple[float, bytes]] = []
        self.closed_at: float | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            while chunk := self.sock.recv(65536):
                self.chunks.append((time.monotonic(), chunk))
        except ConnectionResetError:
            self.error = "reset"
        except OSError as exc:  # our own close or reset, or the 30 s backstop
            self.error = type(exc).__name__
        self.closed_at = time.monotonic()

    def responses(self, expected: list[Message], complete: bool) -> list[tuple[float, int, bytes, bytes]]:
        """Split what arrived into (arrival, status, head, body), reading a body unless the
        matching request was a HEAD; with ``complete`` False (we left early) a response cut
        short at the end is left out."""
        stream = b"".join(chunk for _, chunk in self.chunks)
        offsets = []
        total = 0
        for at, chunk in self.chunks:
            offsets.append((total, at))
            total += len(chunk)
        found, position = [], 0
        while position < len(stream):
            arrival = max(at for start, at in offsets if start <= position)
            end = stream.find(b"\r\n\r\n", position)
            if not complete and (end < 0 or b"Content-Length: " not in stream[position:end]):
                break
            assert stream.startswith(b"HTTP/1.1 ", position) and end > 0, (
                f"not a response: {stream[position:][:200]!r}"
            )
            head_bytes = stream[position:end]
            length = int(head_bytes.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            index = len(found)
            if index < len(expected) and expected[index].head_only:
                length = 0
            body = stream[end + 4 : end + 4 + length]
            if not complete and len(body) < length:
                break
            assert len(body) == length, f"a response cut short: {stream[position:][:200]!r}"
            found.append((arrival, int(head_bytes[9:12]), head_bytes, body))
            position = end + 4 + length
        return found


def converse(address, sent, cuts, pauses, ending) -> tuple[list[float], Reader, str]:
    data = b"".join(m.data for m in sent)
    starts, position = [], 0
    for message in sent:
        starts.append(position)
        position += len(message.data)
    first_byte_at = [0.0] * len(sent)
    client = socket.create_connection(address, timeout=30)
    reader = Reader(client)
    reader.start()
    send_error = ""
    try:
        for piece_start, piece_end, pause in zip([0, *cuts], [*cuts, len(data)], [*pauses, 0.0], strict=True):
            now = time.monotonic()
            for index, start in enumerate(starts):
                if piece_start <= start < piece_end:
                    first_byte_at[index] = now
            client.sendall(data[piece_start:piece_end])
            time.sleep(pause)
    except OSError as exc:  # the server closed first: allowed only after a closing answer
        send_error = type(exc).__name__
        for index in range(len(sent)):
            if first_byte_at[index] == 0.0:
                first_byte_at[index] = time.monotonic()
    try:
        if ending == "half-close" and not send_error:
            client.shutdown(socket.SHUT_WR)
        elif ending in ("close", "reset"):
            time.sleep(0.01)
            if ending == "reset":  # close() then sends RST, not FIN
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # Wakes the reader (a close() alone would leave it blocked in recv); RDWR also sends FIN.
            client.shutdown(socket.SHUT_RDWR if ending == "close" else socket.SHUT_RD)
    except OSError as exc:  # the server closed (or reset) first
        send_error = send_error or type(exc).__name__
    if ending in ("close", "reset"):
        client.close()
    reader.join(timeout=60)
    assert not reader.is_alive(), "the reader never returned"
    if ending not in ("close", "reset"):
        client.close()
    return first_byte_at, reader, send_error


def expected_answers(sent: list[Message]) -> tuple[list[Message], Message | None]:
    """The messages answered in order, up to the first that closes; and that last one if it may
    go unanswered (bytes the parser may hold, or a drop)."""
    answered = []
    for message in sent:
        if message.status is None:
            return answered, message
        answered.append(message)
        if message.closes:
            break
    return answered, None


def check_conversation(sent, first_byte_at, reader, send_error, ending) -> str:
    expected, loose = expected_answers(sent)
    stayed = ending not in ("close", "reset")  # else what arrived is a prefix of the answers due
    found = reader.responses(expected + ([loose] if loose else []), complete=stayed)
    if stayed:
        if loose is None:
            assert len(found) == len(expected), f"{len(found)} answers for {len(expected)} due: {found}"
        elif loose.dropped:
            assert len(found) == len(expected)
        else:  # the parser may refuse the bytes (one 400) or wait for more (then the idle timeout)
            assert len(found) in (len(expected), len(expected) + 1)
            if len(found) > len(expected):
                assert found[-1][1] == 400
    assert len(found) <= len(expected) + (1 if loose else 0), "answered more than was asked"
    previous_arrival = 0.0
    for index, (arrival, status, head_bytes, body) in enumerate(found[: len(expected)]):
        message = expected[index]
        assert status == message.status, (index, message, head_bytes)
        if message.body is not None:
            assert body == message.body, (index, message.data[:80], len(body))
        early = first_byte_at[sent.index(message)] + message.delay_s - TIMER_RESOLUTION_S - arrival
        assert early <= 0, f"answered {early * 1000:.1f} ms before its delay: {message.data[:80]!r}"
        assert arrival >= previous_arrival
        previous_arrival = arrival
        assert (b"Connection: close" in head_bytes) == message.closes, head_bytes
    # Never a hang: closed by the due answers plus the idle timeout (or at once after a close).
    if stayed and not send_error:
        last_due = max([first_byte_at[sent.index(m)] + m.delay_s for m in expected] + [first_byte_at[-1]])
        waited = reader.closed_at - last_due
        assert waited <= IDLE_TIMEOUT_S + CLOSE_MARGIN_S, f"the connection stayed open {waited:.2f} s"
    statuses = tuple(status for _, status, _, _ in found)
    return (
        f"{ending}: {statuses}"
        + (f" +{send_error}" if send_error else "")
        + (f" ({reader.error})" if reader.error else "")
    )


def wait_until_settled(server) -> dict:
    """Every fuzz connection closed and nothing in flight, within the idle timeout's reach."""
    deadline = time.monotonic() + IDLE_TIMEOUT_S + CLOSE_MARGIN_S
    while True:
        stats = server.stats()  # a correct request too: it must keep being answered
        if (stats["open_connections"], stats["in_flight"]) == (1, 0) or time.monotonic() > deadline:
            return stats


# -- the campaigns -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server():
    args = ("--workers", "2", "--idle-timeout-s", str(IDLE_TIMEOUT_S))
    with running_delay_server(extra_args=args) as server:
        yield server
        if PROFILE != "short":
            print(f"\nfuzz ({PROFILE}): {dict(TALLY)}; {len(OUTCOMES)} distinct outcomes:")
            for outcome, count in OUTCOMES.most_common():
                print(f"  {count:5d}  {outcome}")


@FUZZ_SETTINGS
@given(conversation=conversations())
def test_the_server_answers_right_whatever_it_is_sent(fuzz_server, conversation):
    sent, cuts, pauses, ending = conversation
    TALLY["conversations"] += 1
    TALLY["messages"] += len(sent)
    first_byte_at, reader, send_error = converse(host_port(fuzz_server), sent, cuts, pauses, ending)
    OUTCOMES[check_conversation(sent, first_byte_at, reader, send_error, ending)] += 1
    stats = wait_until_settled(fuzz_server)
    assert (stats["open_connections"], stats["in_flight"]) == (1, 0), "a connection or request left behind"
    assert fuzz_server.stderr_text() == "", fuzz_server.stderr_text()[-3000:]
    with socket.create_connection(host_port(fuzz_server), timeout=10) as canary:
        canary.sendall(b"GET /delay?ms=0&bytes=3 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert canary.recv(4096).endswith(b"\r\n\r\nxxx")


@pytest.fixture(scope="module")
def tls_fuzz_server():
    with local_ca() as ca:
        args = (
            "--workers",
            "1",
            "--idle-timeout-s",
            str(IDLE_TIMEOUT_S),
            "--tls-cert",
            ca.cert_file,
            "--tls-key",
            ca.key_file,
        )
        with running_delay_server(extra_args=args, ca_file=ca.ca_file) as server:
            yield server


def client_hello(server) -> bytes:
    """The first flight of a real TLS 1.3 client, made without a socket."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = server.ssl_context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@FUZZ_SETTINGS
@given(
    garbage=st.binary(min_size=1, max_size=600),
    kind=st.sampled_from(["before", "inside", "after-hello", "truncated-hello", "after-handshake"]),
    ending=st.sampled_from(["wait", "half-close", "close"]),
)
def test_tls_garbage_before_and_during_the_handshake_is_cut_off(tls_fuzz_server, garbage, kind, ending):
    TALLY["tls conversations"] += 1
    address = host_port(tls_fuzz_server)
    hello = client_hello(tls_fuzz_server)
    data = {
        "before": garbage,
        "inside": hello[: len(hello) // 2] + garbage,
        "after-hello": hello + garbage,
        "truncated-hello": hello[: max(1, len(garbage) % len(hello))],
    }.get(kind)
    started = time.monotonic()
    if kind == "after-handshake":  # a finished handshake, then garbage as the HTTP request
        raw = socket.create_connection(address, timeout=30)
        client = tls_fuzz_server.ssl_context.wrap_socket(raw, server_hostname="127.0.0.1")
        client.sendall(garbage)
        outcome = "handshake done"
    else:
        client = socket.create_connection(address, timeout=30)
        client.sendall(data)
        outcome = kind
    if ending == "half-close" and not isinstance(client, ssl.SSLSocket):
        client.shutdown(socket.SHUT_WR)
    if ending != "close":
        try:
            while client.recv(65536):
                pass
            outcome += ", closed by the server"
        except (ConnectionResetError, ssl.SSLError) as exc:
            outcome += f", {type(exc).__name__}"
        waited = time.monotonic() - started
        assert waited <= IDLE_TIMEOUT_S + CLOSE_MARGIN_S, f"the connection stayed open {waited:.2f} s"
    client.close()
    OUTCOMES[f"tls {ending}: {outcome}"] += 1
    stats = wait_until_settled(tls_fuzz_server)
    assert (stats["open_connections"], stats["in_flight"]) == (1, 0)
    assert tls_fuzz_server.stderr_text() == "", tls_fuzz_server.stderr_text()[-3000:]
