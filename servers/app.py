"""The delay server's request handling: ``/delay`` waits, ``/stats`` tells how well it kept up.

The hot path is the shape of the fastest Python HTTP servers (uvicorn's httptools_impl.py,
MagicStack vmbench's asyncio_http_server.py): an ``asyncio.Protocol`` per connection feeding
``httptools.HttpRequestParser``, whose callbacks do the work, with no task per request: a
delayed request is one ``loop.call_later``, a response is one ``transport.write`` of bytes
prepared once, and a URL seen before is not parsed again. So thousands of delayed requests cost
one timer each, and a keep-alive request costs ~11-13 us of the server's CPU rather than the
40-60 us of the aiohttp app this replaced (python -m servers.cost; issue 15).
The counters are shared by all workers (``servers.stats``). Lifecycle (binding, signals, the
ready line) lives in ``servers.delay``; starting it as a subprocess lives in ``servers.process``.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import heapq
import itertools
import json
import random
import re
import socket
import struct
import time
from urllib.parse import parse_qsl, unquote_to_bytes

import httptools

from servers.stats import DROPPED_ON_PURPOSE, FAILED_ON_PURPOSE, REJECTED, SERVED, STALLED, SharedStats

MAX_DELAY_MS = 60_000
MAX_BODY_BYTES = 10 * 1024 * 1024
# A stalled response (``stall=1``) holds its connection until the client gives up, or this long.
STALL_CAP_S = 60.0

_BODY = b"x" * MAX_BODY_BYTES
_NON_NEGATIVE_INT = re.compile(r"[0-9]{1,9}")
_FRACTION = re.compile(r"(0|1)(\.[0-9]{1,6})?|\.[0-9]{1,6}")
# The most requests a gather=K barrier waits for: more than any open-files limit lets in flight.
MAX_GATHER = 1_000_000
# How often a worker with gather requests waiting looks at the other workers' gathering counts
# and the shared release generation: one timer per worker, none per request.
GATHER_POLL_S = 0.002
# ms, bytes, stall and gather are integers up to these limits; fail and drop are fractions of requests.
_DELAY_PARAMETERS = ("ms", "bytes", "fail", "drop", "stall", "gather")
_INTEGER_LIMITS = {"ms": MAX_DELAY_MS, "bytes": MAX_BODY_BYTES, "stall": 1, "gather": MAX_GATHER}
# The limits aiohttp applied before: a request line or header over 8 KiB, or over 128 headers,
# gets 400; so does a request over 1 MiB in all (no endpoint takes a body), which also bounds
# what the parser buffers for a header that never ends.
MAX_LINE_BYTES = 8190
MAX_HEADERS = 128
MAX_REQUEST_BYTES = 1024 * 1024
# Distinct URLs whose routing is remembered; a client sends the same few over and over.
ROUTE_CACHE_SIZE = 1024


class BadRequest(ValueError):
    """A request the server refuses with 400; the message is the one-line reason."""


def parse_delay_query(query) -> dict[str, float]:
    """Validate ``/delay``'s query: every parameter known, given once, and within its limits."""
    unknown = sorted(set(query) - set(_DELAY_PARAMETERS))
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; known: {', '.join(_DELAY_PARAMETERS)}")
    values = {}
    for name in _DELAY_PARAMETERS:
        raw = query.getall(name, ["0"])
        if len(raw) > 1:
            raise BadRequest(f"{name} given {len(raw)} times")
        values[name] = _integer(name, raw[0]) if name in _INTEGER_LIMITS else _fraction(name, raw[0])
    if values["gather"] and (values["fail"] or values["drop"] or values["stall"]):
        raise BadRequest("gather=K is a warm-up barrier: no fail, drop or stall with it")
    return values


def _integer(name: str, raw: str) -> int:
    if not _NON_NEGATIVE_INT.fullmatch(raw):
        raise BadRequest(f"{name} must be a non-negative integer, got {raw[:40]!r}")
    value = int(raw)
    if value > _INTEGER_LIMITS[name]:
        raise BadRequest(f"{name} must be <= {_INTEGER_LIMITS[name]}, got {value}")
    return value


def _fraction(name: str, raw: str) -> float:
    if not _FRACTION.fullmatch(raw) or float(raw) > 1:
        raise BadRequest(f"{name} must be a fraction between 0 and 1, got {raw[:40]!r}")
    return float(raw)


# struct tcp_info (linux/tcp.h): tcpi_last_data_recv, ms since the last data segment arrived,
# and tcpi_last_data_sent, ms since the last one was sent.
_TCP_INFO_BYTES = 64
_TCP_INFO_U32 = struct.Struct("=I")
_LAST_DATA_RECV_OFFSET = 52
_LAST_DATA_SENT_OFFSET = 44


def unread_for_s(sock) -> float:
    """How long the data just read sat in the socket's buffer, by the kernel's count.

    A request's arrival is stamped when its first bytes reach ``data_received``, backdated by
    the kernel's ``tcpi_last_data_recv``: ms since the *last* data segment arrived (one
    getsockopt, ~1.6 us, at kernel-tick resolution of 1-4 ms). So a request that waited in the
    accept queue or in a socket buffer while the loop was busy shows that wait as lateness; the
    loop's own clock alone would start counting only once the loop got round to reading it.
    An HTTPS connection's ClientHello is stamped the same way (``servers.tls_accept``). The
    clock is ``time.monotonic`` rather than ``loop.time()``: uvloop's loop time has
    millisecond resolution and is cached per iteration.
    """
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except (OSError, AttributeError):
        return 0.0
    return _TCP_INFO_U32.unpack_from(info, _LAST_DATA_RECV_OFFSET)[0] / 1000


def _client_turn_s(sock) -> float:
    """How long a finished TLS handshake waited on the client, by the kernel's count: from the
    server's last segment sent (its flight, ServerHello to Finished; with no session tickets it
    sends nothing after it) to the client's last segment received (its Finished). That is the
    client's CPU and a round trip, not the server's lateness. Read once, in ``connection_made``."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except (OSError, AttributeError):
        return 0.0
    sent_ago = _TCP_INFO_U32.unpack_from(info, _LAST_DATA_SENT_OFFSET)[0]
    received_ago = _TCP_INFO_U32.unpack_from(info, _LAST_DATA_RECV_OFFSET)[0]
    return max(0, sent_ago - received_ago) / 1000


# -- responses, their heads built once ------------------------------------------------------

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}
_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_OCTETS = b"application/octet-stream"


def response_head(
    status: int, content_type: bytes, length: int, keep_alive: bool = True, allow: bytes = b""
) -> bytes:
    """``allow``: the methods a 405's target takes, which it must name (RFC 9110 15.5.6)."""
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s" % (
        status,
        _REASONS[status],
        content_type,
        length,
        b"Allow: %s\r\n" % allow if allow else b"",
    )
    return head + (b"\r\n" if keep_alive else b"Connection: close\r\n\r\n")


def text_response(
    status: int, reason: str, keep_alive: bool = True, head_only: bool = False, allow: bytes = b""
) -> bytes:
    """A one-line plain-text answer (its head alone for a HEAD request: RFC 9110 9.3.2)."""
    body = (reason + "\n").encode()
    return response_head(status, _TEXT, len(body), keep_alive, allow) + (b"" if head_only else body)


# Whole responses up to this size are kept, one per (size, keep-alive); larger ones are built.
_CACHED_BODY_BYTES = 64 * 1024
_FAILED = {
    keep_alive: text_response(500, "failed on purpose (fail=P)", keep_alive) for keep_alive in (True, False)
}


class _Responses(dict):
    """``responses[bytes, keep_alive]``: a /delay answer, built the first time it is asked for."""

    def __missing__(self, key: tuple[int, bool]) -> bytes:
        body_bytes, keep_alive = key
        response = response_head(200, _OCTETS, body_bytes, keep_alive) + _BODY[:body_bytes]
        if body_bytes <= _CACHED_BODY_BYTES:
            self[key] = response
        return response


# -- routing, remembered per URL ------------------------------------------------------------

DELAY, SHOW_STATS, RESET_STATS, REFUSE, GATHER = range(5)


class DelayRequest:
    """What a valid /delay query asks for, in the form the hot path reads."""

    __slots__ = ("body_bytes", "delay_s", "drop", "fail", "gather", "stall")

    def __init__(self, params: dict) -> None:
        self.delay_s = params["ms"] / 1000
        self.body_bytes = params["bytes"]
        self.fail, self.drop, self.stall = params["fail"], params["drop"], params["stall"]
        self.gather = params["gather"]


class _Query(dict):
    """A query's values per name, in order: the ``getall`` that ``parse_delay_query`` reads
    (aiohttp's MultiDict has the same)."""

    @classmethod
    def parse(cls, query: str) -> _Query:
        values = cls()
        for name, value in parse_qsl(query, keep_blank_values=True):
            values.setdefault(name, []).append(value)
        return values

    def getall(self, name: str, default: list[str]) -> list[str]:
        return self.get(name, default)


def route(url: bytes) -> tuple[int, object]:
    """(DELAY | GATHER, DelayRequest), (SHOW_STATS | RESET_STATS, None), or (REFUSE, (status, reason))."""
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        return REFUSE, (400, f"invalid URL {url[:80].decode('latin-1')!r}")
    path = unquote_to_bytes(parsed.path).decode("utf-8", "replace")
    if path == "/delay":
        query = (parsed.query or b"").decode("latin-1")
        try:
            request = DelayRequest(parse_delay_query(_Query.parse(query)))
        except BadRequest as exc:
            return REFUSE, (400, str(exc))
        return (GATHER if request.gather else DELAY), request
    if path == "/stats":
        return SHOW_STATS, None
    if path == "/stats/reset":
        return RESET_STATS, None
    return REFUSE, (404, f"no such path {path[:80]!r}; try /delay?ms=D or /stats")


class RouteCache(dict):
    """``routes[url]``: ``route(url)``, parsed once per distinct URL (up to ROUTE_CACHE_SIZE)."""

    def __missing__(self, url: bytes) -> tuple[int, object]:
        if len(self) >= ROUTE_CACHE_SIZE:
            self.clear()
        found = self[url] = route(url)
        return found


# -- gather=K: the warm-up's barrier ---------------------------------------------------------


class Gathering:
    """One worker's ``/delay?ms=W&gather=K`` requests, each answered once K gather requests are
    waiting over all workers, or W ms after it arrived, whichever comes first. Only gather
    requests count: a request still in flight from someone else (a client killed mid-round
    whose answer is not due yet) once released a warm-up one request short, and left its
    last request waiting the whole W (15 s) for a barrier no one else would reach.

    The warm-up holds every connection a round will use open at once this way (issue 22): a
    model that finishes ``ms=0`` requests one after another would otherwise reuse a handful.
    Connections are spread over the workers by the kernel, so the worker that sees K waiting
    moves the shared release generation (``SharedStats.release``), and each worker answers
    the requests that have been waiting since an older generation. Checked as a request
    arrives, and by one poll timer per worker while any wait; a plain /delay never comes here.
    """

    def __init__(self, stats: SharedStats) -> None:
        self.stats = stats
        # The release generation a request arrived in -> its entries [protocol, target, arrival];
        # an answered entry's protocol is set to None.
        self.waiting: dict[int, list[list]] = {}
        self.deadlines: list[tuple[float, int, list]] = []  # heap of (arrival + W, order, entry)
        self.order = itertools.count()
        self.live = 0
        self.fewest = MAX_GATHER  # the smallest K among the requests waiting
        self.poll: asyncio.TimerHandle | None = None

    def wait(self, protocol: DelayProtocol, target: DelayRequest, arrival: float) -> None:
        entry = protocol.gather_entry = [protocol, target, arrival]
        self.waiting.setdefault(self.stats.release_generation, []).append(entry)
        heapq.heappush(self.deadlines, (arrival + target.delay_s, next(self.order), entry))
        self.live += 1
        self.stats.gathering_changed(1)
        self.fewest = min(self.fewest, target.gather)
        self._check()
        if self.live and self.poll is None:
            self.poll = protocol.loop.call_later(GATHER_POLL_S, self._poll, protocol.loop)

    def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        self.poll = None
        self._check()
        if self.live:
            self.poll = loop.call_later(GATHER_POLL_S, self._poll, loop)

    def _check(self) -> None:
        if self.stats.gathering_total() >= self.fewest:
            self.stats.release()
        generation = self.stats.release_generation
        released = [
            entry for g in [g for g in self.waiting if g != generation] for entry in self.waiting.pop(g)
        ]
        if released:
            # Answered at the pace they came, not all at once: 10,000 threads woken by 10,000
            # answers at one instant spent 72 s fighting over the GIL here (each waiter's timed
            # wait wakes every 5 ms), where answers spread as the requests came took no longer
            # than the requests took to send. What the barrier is for is only that every
            # connection was open at once.
            first = min(entry[2] for entry in released)
            loop = asyncio.get_running_loop()
            for entry in released:
                if entry[2] > first:
                    loop.call_later(entry[2] - first, self._answer, entry)
                else:
                    self._answer(entry)
        now = time.monotonic()
        while self.deadlines and self.deadlines[0][0] <= now:
            self._answer(heapq.heappop(self.deadlines)[2])
        if not self.live:
            self.waiting.clear()
            self.deadlines.clear()
            self.fewest = MAX_GATHER

    def _answer(self, entry: list) -> None:
        protocol, target, arrival = entry
        if protocol is None:
            return  # answered already (released, then its deadline came), or its client hung up
        self.forget(entry)
        if protocol.in_flight and not protocol.transport.is_closing():  # else the client hung up
            protocol._delay_over(target, arrival)

    def forget(self, entry: list) -> None:
        """It waits no more (answered, or its client hung up): it no longer counts toward a
        barrier. A reset gather request counted until its W ran out, and released the next
        warm-up early (outside review)."""
        if entry[0] is not None:
            entry[0] = None
            self.live -= 1
            self.stats.gathering_changed(-1)
            if not self.live:
                # At once, not at the next poll: a request arriving first would keep the last
                # barrier's K and be released with that many waiting (seen under load).
                self.fewest = MAX_GATHER


# -- the app and its connections ------------------------------------------------------------


class DelayApp:
    """What every connection of one worker shares: the counters, the caps and the routes."""

    def __init__(self, stats: SharedStats, max_connections: int, idle_timeout_s: float) -> None:
        self.stats = stats
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.routes = RouteCache()
        self.responses = _Responses()
        self.connections: set[DelayProtocol] = set()
        self.gathering = Gathering(stats)

    def __call__(self) -> DelayProtocol:
        """The protocol factory ``loop.create_server`` calls for each accepted plain connection.

        HTTPS connections are accepted, counted and stamped by ``servers.tls_accept``."""
        self.stats.connection_accepted()
        return DelayProtocol(self)

    async def shutdown(self, grace_s: float) -> None:
        """Let requests in flight finish for up to ``grace_s``, then close every connection."""
        deadline = time.monotonic() + grace_s
        while any(c.in_flight for c in self.connections) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self.connections):
            connection.transport.abort()


class _Refused(Exception):
    """A request over one of the size limits; the message is the one-line reason."""


class DelayProtocol(asyncio.Protocol):
    """One connection: httptools calls ``on_url``, ``on_header`` and ``on_message_complete``
    as bytes arrive; one request is answered at a time, later pipelined ones wait in a queue
    (and reading pauses while they do)."""

    def __init__(self, app: DelayApp, hello_at: float | None = None) -> None:
        self.app = app
        # A TLS connection's start, for its first request's lateness: when its ClientHello
        # arrived (servers.tls_accept). None for plain HTTP.
        self.hello_at = hello_at
        # For a TLS connection until its first request arrives: when its handshake finished, and
        # how long of it the server waited on the client.
        self.handshake_done_at: float | None = None
        self.client_turn_s = 0.0
        self.stats = app.stats
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.socket = None
        self.url = b""
        self.headers = 0
        self.unparsed_bytes = 0
        self.arrival: float | None = None  # the current request's, time.monotonic()
        self.queue: collections.deque = collections.deque()  # complete requests waiting their turn
        self.busy = False  # a request is being answered (waiting, stalling)
        self.in_flight = False  # ...and counted in the server's in_flight
        self.gather_entry: list | None = None  # its gather request's place in Gathering, if any
        self.keep_alive = True
        # False once what arrives is no longer parsed: after a refusal, or after a head that asked
        # to switch protocols (what follows it is not HTTP/1.1).
        self.parsing = True
        # Written once every answer due is out, then the connection closes: b"" once the client
        # half-closed (shutdown(SHUT_WR)), a refusal for bytes that arrived while answers were due.
        self.last_words: bytes | None = None
        self.stalling = False  # a stall=1 answer is half sent and will never finish
        self.timer: asyncio.TimerHandle | None = None  # the current request's wait, or stall
        self.idle_timer: asyncio.TimerHandle | None = None
        self.idle_since = self.loop.time()

    # -- the connection ---------------------------------------------------------------------

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.app.connections.add(self)
        if self.stats.connection_opened() > self.app.max_connections:
            self._refuse(503, "too many connections; raise --max-connections")
            return
        # Our own socket object on the transport's descriptor, detached (never closed) when
        # the connection is lost: uvloop's get_extra_info("socket") builds a new socket object
        # per getsockopt call (socket(fileno=) + getsockname + detach), 3% of a request here.
        shared = transport.get_extra_info("socket")
        self.socket = socket.socket(shared.family, shared.type, shared.proto, fileno=shared.fileno())
        # Without it keep-alive requests stall ~40 ms each on Nagle + delayed ACK (gevent
        # issue 1233); asyncio and uvloop set it already, this makes it this server's rule.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.idle_timer = self.loop.call_later(self.app.idle_timeout_s, self._idle_check)
        if self.hello_at is not None:
            self.handshake_done_at = time.monotonic()
            self.client_turn_s = _client_turn_s(self.socket)

    def connection_lost(self, exc) -> None:
        if self.socket is not None:
            self.socket.detach()  # the transport owns the descriptor
        self.app.connections.discard(self)
        self.stats.connection_closed()
        for timer in (self.timer, self.idle_timer):
            if timer is not None:
                timer.cancel()
        self.queue.clear()
        # The parser holds this protocol (its callbacks) and this protocol the parser: with the
        # cyclic GC off in the workers (a collection only at a stats reset), every closed
        # connection would otherwise stay in memory until one, ~2 KB each (outside review).
        self.parser = None
        if self.in_flight:  # the client hung up mid-delay (or mid-stall): free its slot now
            self.in_flight = False
            self.stats.leave()
        if self.gather_entry is not None:
            self.app.gathering.forget(self.gather_entry)

    def _idle_check(self) -> None:
        """Close a connection idle, or half-way through a request's head, for the idle timeout.

        One timer per connection, re-armed lazily: a request does not touch it."""
        self.idle_timer = None
        if self.busy or self.queue:
            return  # re-armed when the answer is sent
        remaining = self.idle_since + self.app.idle_timeout_s - self.loop.time()
        if remaining > 0:
            self.idle_timer = self.loop.call_later(remaining, self._idle_check)
        else:
            self.transport.close()

    def eof_received(self) -> bool:
        """A client may half-close once it has sent its request (RFC 9112 9.6 lets it): its
        answers are still due, so the transport stays open until they are written (``_send``
        closes it then). Returning False lets the transport close at once.

        A FIN cannot say whether the client closed only its sending side or its whole socket:
        if it left, the answer written when due meets its kernel's RST, which ends the
        connection (and frees its place in flight) then. A stall is never finished, so a FIN
        ends it now, as a hang-up always did."""
        if self.last_words is None:
            self.last_words = b""
        return (self.busy or bool(self.queue)) and not self.stalling

    def data_received(self, data: bytes) -> None:
        if not self.parsing:
            return
        if self.arrival is None and not self.busy:
            self.arrival = time.monotonic() - unread_for_s(self.socket)
            if self.handshake_done_at is not None:
                self._count_from_the_handshake()
        self.unparsed_bytes += len(data)
        try:
            self.parser.feed_data(data)
            if self.unparsed_bytes > MAX_REQUEST_BYTES:
                raise _Refused(f"request over {MAX_REQUEST_BYTES} bytes")
        except (httptools.HttpParserError, _Refused) as exc:
            cause = exc.__context__ if isinstance(exc.__context__, _Refused) else exc
            self._refuse(
                400, "malformed request: " + (" ".join(str(cause).split())[:200] or type(cause).__name__)
            )
        except httptools.HttpParserUpgrade:
            # The head asked to switch protocols (Upgrade, or CONNECT), and llhttp stops there:
            # the request itself is answered as plain HTTP that closes the connection
            # (``on_message_complete``; RFC 9110 7.8 lets a server ignore Upgrade), and what
            # follows the head, in the other protocol, is not parsed.
            self.parsing = False

    def _count_from_the_handshake(self) -> None:
        """A TLS connection's first request is late from its ClientHello, not from its first byte.

        A ClientHello that waits for a busy server (in the accept queue, or in its socket's
        buffer), and the handshake's own CPU (~350 us a connection here), come before any
        request byte: counted from the first byte, a server swamped by handshakes would never be
        late (issue 24). So the first request arrives, for lateness, when its ClientHello did,
        moved on by the time the server waited on the client: its turn in the handshake (its
        CPU, ~550 us here, and a round trip: by the kernel's count, ``_client_turn_s``), and its
        pause, if it sent the request only after the handshake had finished (a pool opened ahead)."""
        done_at, self.handshake_done_at = self.handshake_done_at, None
        self.arrival = self.hello_at + self.client_turn_s + max(0.0, self.arrival - done_at)

    def _refuse(
        self, status: int, reason: str, keep_alive: bool = False, head_only: bool = False, allow: bytes = b""
    ) -> None:
        """Every refusal (a malformed or oversized request, a bad target, a wrong method, one
        connection too many) is answered and counted here, never logged: a flood of garbage
        must not become per-request logging."""
        self.stats.count(REJECTED)
        response = text_response(status, reason, keep_alive, head_only, allow)
        if not keep_alive:
            self.parsing = False
        if self.busy:  # answers are due first (only bad bytes arrive then): it follows them
            self.last_words = response
            self.transport.pause_reading()
            return
        self.keep_alive = keep_alive
        self._send(response)

    # -- httptools' callbacks -----------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.arrival is None and not self.busy:
            self.arrival = time.monotonic()  # a pipelined request, in the same read as the last

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > MAX_LINE_BYTES:
            raise _Refused(f"request line over {MAX_LINE_BYTES} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers += 1
        if self.headers > MAX_HEADERS:
            raise _Refused(f"over {MAX_HEADERS} headers")
        if len(name) + len(value) > MAX_LINE_BYTES:
            raise _Refused(f"header {name[:40].decode('latin-1')!r} over {MAX_LINE_BYTES} bytes")

    def on_message_complete(self) -> None:
        parser = self.parser
        request = (self.url, parser.get_method(), parser.should_keep_alive() and not parser.should_upgrade())
        self.url, self.headers, self.unparsed_bytes = b"", 0, 0
        if self.busy or self.queue:
            # Pipelined behind an answer still due: its arrival is stamped when its turn comes,
            # as before (head-of-line waiting is the client's choice, not the server's lateness).
            self.queue.append(request)
            self.transport.pause_reading()
            return
        arrival, self.arrival = self.arrival, None
        self._start(request, time.monotonic() if arrival is None else arrival)

    # -- answering --------------------------------------------------------------------------

    def _start(self, request: tuple[bytes, bytes, bool], arrival: float) -> None:
        url, method, self.keep_alive = request
        kind, target = self.app.routes[url]
        if method != b"GET" and method != b"POST":  # HEAD, CONNECT (no tunnels here), PUT, ...
            self._refuse(
                405,
                f"method {method.decode('latin-1')} not allowed: GET /delay, GET /stats, POST /stats/reset",
                keep_alive=self.keep_alive,
                head_only=method == b"HEAD",
                allow=b"GET, POST",
            )
        elif kind == DELAY:
            self.busy = self.in_flight = True
            self.stats.enter()
            if target.delay_s:
                self.timer = self.loop.call_later(target.delay_s, self._delay_over, target, arrival)
            else:
                self._delay_over(target, arrival)
        elif kind == GATHER:
            self.busy = self.in_flight = True
            self.stats.enter()
            self.app.gathering.wait(self, target, arrival)
        elif kind == REFUSE:
            self._refuse(*target, keep_alive=self.keep_alive)
        elif kind == SHOW_STATS:
            self._send(self._json(self._stats_body()))
        elif method != b"POST":
            self._refuse(405, "use POST /stats/reset", allow=b"POST")
        else:
            # The workers run with the cyclic GC off (servers.delay): a collection walks every
            # live protocol and timer, and made the server late mid-round. Here, between rounds
            # and before the new window, is where this worker collects what cycles there are.
            gc.collect()
            self.stats.reset()
            self._send(self._json(self.stats.as_dict()))

    def _delay_over(self, target: DelayRequest, arrival: float) -> None:
        self.timer = None
        # Late by the whole wait beyond the asked delay: accept queue, parser and timer.
        lateness_ms = max(0.0, (time.monotonic() - arrival - target.delay_s) * 1000)
        stats = self.stats
        if target.drop and random.random() < target.drop:
            stats.record(DROPPED_ON_PURPOSE, lateness_ms)
            self._drop()
        elif target.fail and random.random() < target.fail:
            self.in_flight = False
            stats.finish(FAILED_ON_PURPOSE, lateness_ms)
            self._send(_FAILED[self.keep_alive])
        elif target.stall:
            stats.record(STALLED, lateness_ms)
            self._stall(target.body_bytes)
        else:
            self.in_flight = False
            stats.finish(SERVED, lateness_ms)
            self._send(self.app.responses[target.body_bytes, self.keep_alive])

    def _drop(self) -> None:
        """Close the connection without a byte of answer (drop=P), as a crashed backend would."""
        self.transport.abort()  # connection_lost takes it out of in_flight

    def _stall(self, body_bytes: int) -> None:
        """Send the head and promise a body that never comes (stall=1), until the client hangs
        up (connection_lost takes it out of in_flight) or STALL_CAP_S pass."""
        self.stalling = True
        self.transport.write(response_head(200, _OCTETS, max(1, body_bytes)))
        self.timer = self.loop.call_later(STALL_CAP_S, self.transport.abort)

    def _send(self, response: bytes) -> None:
        """One write per answer; then the next pipelined request, or the idle clock."""
        transport = self.transport
        transport.write(response)
        self.busy = False
        if not self.keep_alive:
            transport.close()
            return
        if self.queue:
            self.loop.call_soon(self._next_in_queue)  # not recursively: a queue can be long
            return
        if self.last_words is not None:  # nothing more is read: the last answer, then close
            transport.write(self.last_words)
            transport.close()
            return
        self.idle_since = self.loop.time()
        if self.idle_timer is None:
            self.idle_timer = self.loop.call_later(self.app.idle_timeout_s, self._idle_check)

    def _next_in_queue(self) -> None:
        if self.busy or not self.queue or self.transport.is_closing():
            return
        request = self.queue.popleft()
        if not self.queue:
            self.transport.resume_reading()
        self._start(request, time.monotonic())

    # -- /stats -----------------------------------------------------------------------------

    def _json(self, body: dict) -> bytes:
        data = json.dumps(body).encode()
        return response_head(200, _JSON, len(data), self.keep_alive) + data

    def _stats_body(self) -> dict:
        body = self.stats.as_dict()
        # Whether this connection's socket has Nagle off, so tests can prove it rather than trust it.
        body["tcp_nodelay"] = bool(self.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        body["answered_by_worker"] = self.stats.worker_index
        return body
