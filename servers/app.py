"""The delay server's request handling: ``/delay`` waits, ``/stats`` tells how well it kept up.

The app is plain aiohttp on an asyncio loop in each worker process, so thousands of delayed
requests cost one timer each, not one thread each; the counters are shared by all workers
(``servers.stats``). Lifecycle (binding, signals, the ready line) lives in
``servers.delay``; starting it as a subprocess from Python lives in ``servers.process``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
import time

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from servers.stats import DROPPED_ON_PURPOSE, FAILED_ON_PURPOSE, REJECTED, SERVED, STALLED, SharedStats

MAX_DELAY_MS = 60_000
MAX_BODY_BYTES = 10 * 1024 * 1024
# A stalled response (``stall=1``) holds its connection until the client gives up, or this long.
STALL_CAP_S = 60.0

_BODY = b"x" * MAX_BODY_BYTES
_NON_NEGATIVE_INT = re.compile(r"[0-9]{1,9}")
_FRACTION = re.compile(r"(0|1)(\.[0-9]{1,6})?|\.[0-9]{1,6}")
# ms, bytes and stall are integers up to these limits; fail and drop are fractions of requests.
_DELAY_PARAMETERS = ("ms", "bytes", "fail", "drop", "stall")
_INTEGER_LIMITS = {"ms": MAX_DELAY_MS, "bytes": MAX_BODY_BYTES, "stall": 1}


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


def _text(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n")


# struct tcp_info (linux/tcp.h): tcpi_last_data_recv, ms since the last data segment arrived.
_TCP_INFO_BYTES = 64
_LAST_DATA_RECV = struct.Struct("=I")
_LAST_DATA_RECV_OFFSET = 52


class ArrivalStampingHandler(RequestHandler):
    """aiohttp's per-connection protocol, noting when each request's first byte reached the host.

    The stamp is taken when a request's first bytes reach ``data_received``, backdated by the
    kernel's own count of how long they sat unread (``tcpi_last_data_recv``, one getsockopt,
    ~1.6 us, at kernel-tick resolution of 1-4 ms). So a request that waited in the accept queue
    or in a socket buffer while the loop was busy shows that wait as lateness; the loop's own
    clock alone would start counting only once the loop got round to reading it.

    The clock is ``time.monotonic`` rather than ``loop.time()``: uvloop's loop time has
    millisecond resolution and is cached per loop iteration.
    """

    __slots__ = ("_arrival", "_socket")

    def connection_made(self, transport) -> None:
        self._arrival = None
        self._socket = transport.get_extra_info("socket")
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        # A new request begins when nothing is stamped and no request is being handled
        # (a pipelined request arriving mid-response is stamped when its handler starts).
        if self._arrival is None and self._current_request is None:
            self._arrival = time.monotonic() - _unread_for_s(self._socket)
        super().data_received(data)

    def take_arrival(self) -> float:
        """The current request's arrival (``time.monotonic``), clearing it for the next request."""
        arrival, self._arrival = self._arrival, None
        return time.monotonic() if arrival is None else arrival


def _unread_for_s(sock) -> float:
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except (OSError, AttributeError):
        return 0.0
    return _LAST_DATA_RECV.unpack_from(info, _LAST_DATA_RECV_OFFSET)[0] / 1000


def make_handler(stats: SharedStats):
    """The low-level aiohttp handler: no router, no middleware, nothing per request but the work."""

    async def delay(request: web.BaseRequest, arrival: float) -> web.StreamResponse:
        try:
            params = parse_delay_query(request.rel_url.query)
        except BadRequest as exc:
            stats.count(REJECTED)
            return _text(400, str(exc))
        delay_s = params["ms"] / 1000
        stats.enter()
        finished = False
        try:
            await asyncio.sleep(delay_s)
            # Late by the whole wait beyond the asked delay: accept queue, parser and timer.
            lateness_ms = max(0.0, (time.monotonic() - arrival - delay_s) * 1000)
            if random.random() < params["drop"]:
                stats.record(DROPPED_ON_PURPOSE, lateness_ms)
                return await _drop(request)
            if random.random() < params["fail"]:
                stats.finish(FAILED_ON_PURPOSE, lateness_ms)
                finished = True
                return _text(500, "failed on purpose (fail=P)")
            if params["stall"]:
                stats.record(STALLED, lateness_ms)
                return await _stall(request, params["bytes"])
            stats.finish(SERVED, lateness_ms)
            finished = True
            return web.Response(body=_BODY[: params["bytes"]])
        finally:
            # A client that hangs up mid-delay cancels this task (handler_cancellation);
            # it must still leave in_flight.
            if not finished:
                stats.leave()

    async def show_stats(request: web.BaseRequest, _arrival: float) -> web.Response:
        body = stats.as_dict()
        body["tcp_nodelay"] = _tcp_nodelay(request)
        body["answered_by_worker"] = stats.worker_index
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def reset_stats(request: web.BaseRequest, _arrival: float) -> web.Response:
        if request.method != "POST":
            return _text(405, "use POST /stats/reset")
        stats.reset()
        return web.Response(text=json.dumps(stats.as_dict()), content_type="application/json")

    routes = {"/delay": delay, "/stats": show_stats, "/stats/reset": reset_stats}

    async def handle(request: web.BaseRequest) -> web.Response:
        # Taken for every request, so a /stats on a keep-alive connection leaves no stale stamp.
        arrival = request.protocol.take_arrival()
        route = routes.get(request.path)
        if route is None:
            stats.count(REJECTED)
            return _text(404, f"no such path {request.path[:80]!r}; try /delay?ms=D or /stats")
        return await route(request, arrival)

    return handle


async def _drop(request: web.BaseRequest) -> web.StreamResponse:
    """Close the connection without a byte of answer (drop=P), as a crashed backend would."""
    request.transport.abort()
    # The abort cancels this handler (handler_cancellation); this wait is never reached in full.
    await asyncio.sleep(STALL_CAP_S)
    raise ConnectionResetError("dropped on purpose")


async def _stall(request: web.BaseRequest, body_bytes: int) -> web.StreamResponse:
    """Send the headers and promise a body that never comes (stall=1), up to STALL_CAP_S."""
    response = web.StreamResponse(headers={"Content-Length": str(max(1, body_bytes))})
    await response.prepare(request)
    await asyncio.sleep(STALL_CAP_S)  # until the client hangs up, which cancels this handler
    request.transport.abort()
    return response


def _tcp_nodelay(request: web.BaseRequest) -> bool:
    """Whether this connection's socket has Nagle off, so tests can prove it rather than trust it."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    return bool(sock and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
