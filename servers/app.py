"""The delay server's request handling: ``/delay`` waits, ``/stats`` tells how well it kept up.

The app is plain aiohttp on one asyncio loop, so thousands of delayed requests cost one
timer each, not one thread each. Lifecycle (binding, signals, the ready line) lives in
``servers.delay``; starting it as a subprocess from Python lives in ``servers.process``.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections import deque

from aiohttp import web

MAX_DELAY_MS = 60_000
MAX_BODY_BYTES = 10 * 1024 * 1024
# Lateness percentiles come from the most recent responses only, so /stats stays cheap
# and its memory bounded however long the server runs.
LATENESS_WINDOW = 100_000

_BODY = b"x" * MAX_BODY_BYTES
_NON_NEGATIVE_INT = re.compile(r"[0-9]{1,9}")
_DELAY_PARAMETERS = {"ms": MAX_DELAY_MS, "bytes": MAX_BODY_BYTES}


class BadRequest(ValueError):
    """A request the server refuses with 400; the message is the one-line reason."""


class DelayStats:
    """Counters the client side reads to prove the server was not the bottleneck."""

    def __init__(self) -> None:
        self.served = 0
        self.rejected = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.lateness_ms: deque[float] = deque(maxlen=LATENESS_WINDOW)

    def reset(self) -> None:
        """Start a new observation window; ``in_flight`` is live state and is kept."""
        self.served = self.rejected = 0
        self.max_in_flight = self.in_flight
        self.lateness_ms.clear()

    def as_dict(self) -> dict:
        late = sorted(self.lateness_ms)
        return {
            "served": self.served,
            "rejected": self.rejected,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "lateness_ms": {
                "samples": len(late),
                "p50": _percentile(late, 50),
                "p99": _percentile(late, 99),
                "max": late[-1] if late else 0.0,
            },
        }


def _percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def parse_delay_query(query) -> dict[str, int]:
    """Validate ``/delay``'s query: every parameter known, each an integer within its limit."""
    unknown = sorted(set(query) - set(_DELAY_PARAMETERS))
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]!r}; known: ms, bytes")
    values = {}
    for name, limit in _DELAY_PARAMETERS.items():
        raw = query.getall(name, ["0"])
        if len(raw) > 1:
            raise BadRequest(f"{name} given {len(raw)} times")
        if not _NON_NEGATIVE_INT.fullmatch(raw[0]):
            raise BadRequest(f"{name} must be a non-negative integer, got {raw[0][:40]!r}")
        value = int(raw[0])
        if value > limit:
            raise BadRequest(f"{name} must be <= {limit}, got {value}")
        values[name] = value
    return values


def _text(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=reason + "\n")


def make_handler(stats: DelayStats):
    """The low-level aiohttp handler: no router, no middleware, nothing per request but the work."""
    loop = asyncio.get_running_loop()

    async def delay(request: web.BaseRequest) -> web.Response:
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
            stats.served += 1
        finally:
            # A client that hangs up mid-delay cancels this task; it must still leave in_flight.
            stats.in_flight -= 1
        return web.Response(body=_BODY[: params["bytes"]])

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
            return _text(404, f"no such path {request.path[:80]!r}; try /delay?ms=D&bytes=B or /stats")
        return await route(request)

    return handle


def _tcp_nodelay(request: web.BaseRequest) -> bool:
    """Whether this connection's socket has Nagle off, so tests can prove it rather than trust it."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    return bool(sock and sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
