"""The delay server's request handling: ``/delay`` waits, ``/stats`` tells how well it kept up.

The app is plain aiohttp on one asyncio loop, so thousands of delayed requests cost one
timer each, not one thread each. Lifecycle (binding, signals, the ready line) lives in
``servers.delay``; starting it as a subprocess from Python lives in ``servers.process``.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
from collections import deque

from aiohttp import web

from servers.percentile import percentile

MAX_DELAY_MS = 60_000
MAX_BODY_BYTES = 10 * 1024 * 1024
# Lateness percentiles come from the most recent responses only, so /stats stays cheap
# and its memory bounded however long the server runs.
LATENESS_WINDOW = 100_000

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


class DelayStats:
    """Counters the client side reads to prove the server was not the bottleneck."""

    def __init__(self) -> None:
        self.served = 0
        self.rejected = 0
        self.failed_on_purpose = 0
        self.dropped_on_purpose = 0
        self.stalled = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lateness_ms: deque[float] = deque(maxlen=LATENESS_WINDOW)

    def reset(self) -> None:
        """Start a new observation window; ``in_flight`` is live state and is kept."""
        self.served = self.rejected = 0
        self.failed_on_purpose = self.dropped_on_purpose = self.stalled = 0
        self.max_in_flight = self.in_flight
        self.lateness_ms.clear()

    def as_dict(self) -> dict:
        late = sorted(self.lateness_ms)
        return {
            "served": self.served,
            "rejected": self.rejected,
            "failed_on_purpose": self.failed_on_purpose,
            "dropped_on_purpose": self.dropped_on_purpose,
            "stalled": self.stalled,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "lateness_ms": {
                "samples": len(late),
                "p50": percentile(late, 50) or 0.0,
                "p99": percentile(late, 99) or 0.0,
                "max": late[-1] if late else 0.0,
            },
        }


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


def make_handler(stats: DelayStats):
    """The low-level aiohttp handler: no router, no middleware, nothing per request but the work."""
    loop = asyncio.get_running_loop()

    async def delay(request: web.BaseRequest) -> web.StreamResponse:
        try:
            params = parse_delay_query(request.rel_url.query)
        except BadRequest as exc:
            stats.rejected += 1
            return _text(400, str(exc))
        due = loop.time() + params["ms"] / 1000
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            await asyncio.sleep(params["ms"] / 1000)
            stats.lateness_ms.append(max(0.0, (loop.time() - due) * 1000))
            if random.random() < params["drop"]:
                stats.dropped_on_purpose += 1
                return await _drop(request)
            if random.random() < params["fail"]:
                stats.failed_on_purpose += 1
                return _text(500, "failed on purpose (fail=P)")
            if params["stall"]:
                stats.stalled += 1
                return await _stall(request, params["bytes"])
            stats.served += 1
            return web.Response(body=_BODY[: params["bytes"]])
        finally:
            # A client that hangs up mid-delay cancels this task (handler_cancellation);
            # it must still leave in_flight.
            stats.in_flight -= 1

    async def show_stats(request: web.BaseRequest) -> web.Response:
        body = stats.as_dict()
        body["tcp_nodelay"] = _tcp_nodelay(request)
        return web.Response(text=json.dumps(body), content_type="application/json")

    async def reset_stats(request: web.BaseRequest) -> web.Response:
        if request.method != "POST":
            return _text(405, "use POST /stats/reset")
        stats.reset()
        return web.Response(text=json.dumps(stats.as_dict()), content_type="application/json")

    routes = {"/delay": delay, "/stats": show_stats, "/stats/reset": reset_stats}

    async def handle(request: web.BaseRequest) -> web.Response:
        route = routes.get(request.path)
        if route is None:
            stats.rejected += 1
            return _text(404, f"no such path {request.path[:80]!r}; try /delay?ms=D or /stats")
        return await route(request)

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
