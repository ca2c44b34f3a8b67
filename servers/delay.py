"""Run the delay server: ``python -m servers.delay [--host 127.0.0.1] [--port 0]``.

Prints exactly one line, ``listening on http://HOST:PORT``, once the socket accepts
connections, then serves until SIGTERM or SIGINT and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import signal
import sys

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from servers.app import DelayStats, make_handler
from servers.lifetime import die_with_parent

# The kernel caps the accept queue at min(backlog, net.core.somaxconn); asyncio's default
# of 100 (and gevent's or werkzeug's 128) drops SYNs once a thousand clients connect at once.
LISTEN_BACKLOG = 4096
# How long SIGTERM waits for in-flight responses before closing their connections.
SHUTDOWN_GRACE_S = 0.5
# Past this many open connections, a new one gets a 503 and is closed. Below the open-files
# limit, so the server itself never fails on accept().
DEFAULT_MAX_CONNECTIONS = 15_000
# How long a connection may sit idle or half-way through sending its request headers before
# it is closed: the cap on slow or stalled clients (aiohttp's keep-alive timer covers both).
DEFAULT_IDLE_TIMEOUT_S = 30.0
# aiohttp's own limits: a request line or header over 8 KiB, or over 128 headers, gets 400.
MAX_LINE_BYTES = 8190
MAX_HEADERS = 128

_TOO_MANY = b"too many connections; raise --max-connections\n"
_TOO_MANY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    + b"Content-Length: %d\r\n\r\n" % len(_TOO_MANY)
    + _TOO_MANY
)


class MalformedRequestFilter(logging.Filter):
    """Count, rather than log, requests aiohttp's parser refused with a 400.

    A flood of garbage would otherwise write a traceback per request to stderr: per-request
    logging by the back door. Anything else (a bug in a handler) is still logged.
    """

    def __init__(self, stats: DelayStats) -> None:
        super().__init__()
        self.stats = stats

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            self.stats.rejected += 1
            return False
        return True


class CappedServer(web.Server):
    """aiohttp's low-level server, refusing connections past a cap with a plain 503."""

    def __init__(self, handler, stats: DelayStats, max_connections: int, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.stats = stats
        self.max_connections = max_connections

    def connection_made(self, handler, transport) -> None:
        super().connection_made(handler, transport)
        if len(self.connections) > self.max_connections:
            self.stats.rejected += 1
            transport.write(_TOO_MANY_RESPONSE)
            transport.close()


def raise_open_files_limit() -> None:
    """Each connection is a file descriptor; take the hard limit so thousands can be open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(host: str, port: int, max_connections: int, idle_timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # access_log=None: a log line per request would cost more CPU than the request itself.
    # aiohttp's protocol sets TCP_NODELAY on every accepted socket (base_protocol.py); without
    # it keep-alive clients stall ~40 ms on Nagle + delayed ACK (gevent issue 1233).
    # /stats reports the flag per connection so the tests can check it.
    # handler_cancellation: a client that hangs up mid-delay frees its request at once.
    stats = DelayStats()
    logging.getLogger("aiohttp.server").addFilter(MalformedRequestFilter(stats))
    web_server = CappedServer(
        make_handler(stats),
        stats,
        max_connections,
        handler_cancellation=True,
        access_log=None,
        keepalive_timeout=idle_timeout_s,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_LINE_BYTES,
        max_headers=MAX_HEADERS,
    )
    listener = await loop.create_server(web_server, host, port, backlog=LISTEN_BACKLOG)
    bound_host, bound_port = listener.sockets[0].getsockname()[:2]
    print(f"listening on http://{bound_host}:{bound_port}", flush=True)

    await stop.wait()
    listener.close()
    await web_server.shutdown(SHUTDOWN_GRACE_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m servers.delay",
        description="HTTP server whose GET /delay?ms=D&bytes=B answers after D ms with B bytes.",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; anything else exposes the server to the network)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port to bind (default 0: the kernel picks a free one)"
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help=f"open connections past which new ones get 503 (default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--idle-timeout-s",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        help="close a connection idle, or stalled half-way through its request, this long "
        f"(default {DEFAULT_IDLE_TIMEOUT_S:.0f})",
    )
    parser.add_argument(
        "--die-with-parent",
        action="store_true",
        help="exit when the process that started this one dies (used by servers.process)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")
    if args.max_connections < 1:
        parser.error(f"--max-connections must be >= 1, got {args.max_connections}")
    if not args.idle_timeout_s > 0:
        parser.error(f"--idle-timeout-s must be > 0, got {args.idle_timeout_s}")

    if args.die_with_parent:
        die_with_parent()
    raise_open_files_limit()
    try:
        asyncio.run(serve(args.host, args.port, args.max_connections, args.idle_timeout_s))
    except OSError as exc:
        print(f"servers.delay: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
