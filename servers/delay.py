"""Run the delay server: ``python -m servers.delay [--host 127.0.0.1] [--port 0] [--workers W]``
``[--tls-cert PEM --tls-key PEM] [--ipv6-loopback]``.

Prints exactly one line, ``listening on http://HOST:PORT``, once every worker accepts
connections, then serves until SIGTERM or SIGINT and exits 0; exits 1 if a worker dies.
The parent process only supervises (``servers.supervisor``); each of the W worker processes
runs aiohttp's low-level server on its own event loop, on its own socket bound to the shared
port (one more on ``::1`` with ``--ipv6-loopback``), and counts into the shared ``servers.stats``.
With ``--tls-cert``/``--tls-key`` it serves HTTPS only (``servers.tls``) and says so in its
ready line (``listening on https://...``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import signal
import socket
import ssl
import sys
from contextlib import ExitStack

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from servers.app import ArrivalStampingHandler, make_handler
from servers.lifetime import die_with_parent
from servers.stats import REJECTED, SharedStats
from servers.supervisor import Supervisor, listening_socket, reserve_port
from servers.tls import server_context

# The kernel caps the accept queue at min(backlog, net.core.somaxconn); asyncio's default
# of 100 (and gevent's or werkzeug's 128) drops SYNs once a thousand clients connect at once.
LISTEN_BACKLOG = 4096
# How long SIGTERM waits for in-flight responses before closing their connections.
SHUTDOWN_GRACE_S = 0.5
# Past this many open connections (over all workers), a new one gets a 503 and is closed.
# Below the open-files limit, so the server itself never fails on accept().
DEFAULT_MAX_CONNECTIONS = 15_000
# Worker processes sharing the port. On the 2-core development machine, with wrk on the same
# cores, 2 workers answered ~25% more requests/s than 1 in every interleaved round, and 3 no
# more than 2 (README, "The delay server").
DEFAULT_WORKERS = 2
MAX_WORKERS = 64
LOOPS = ("asyncio", "uvloop")
# How long a connection may sit idle or half-way through sending its request headers before
# it is closed: the cap on slow or stalled clients (aiohttp's keep-alive timer covers both).
DEFAULT_IDLE_TIMEOUT_S = 30.0
# aiohttp's own limits: a request line or header over 8 KiB, or over 128 headers, gets 400.
MAX_LINE_BYTES = 8190
MAX_HEADERS = 128
# The other address ``localhost`` may resolve to (issue 17, --bench-host name): glibc returns
# ::1 first where /etc/hosts says so, and a client that tries it first must find the server.
IPV6_LOOPBACK = "::1"
# With --port 0 the kernel picks a port free on 127.0.0.1; it may be taken on ::1 (rarely).
PORT_PICKS = 5

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

    def __init__(self, stats: SharedStats) -> None:
        super().__init__()
        self.stats = stats

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            self.stats.count(REJECTED)
            return False
        return True


class CappedServer(web.Server):
    """aiohttp's low-level server, refusing connections past a cap (over all workers) with a
    plain 503, and stamping each request's arrival (``ArrivalStampingHandler``)."""

    def __init__(self, handler, stats: SharedStats, max_connections: int, **kwargs) -> None:
        super().__init__(handler, **kwargs)
        self.stats = stats
        self.max_connections = max_connections

    def __call__(self) -> ArrivalStampingHandler:
        return ArrivalStampingHandler(self, loop=self._loop, **self._kwargs)

    def connection_made(self, handler, transport) -> None:
        super().connection_made(handler, transport)
        if self.stats.connection_opened() > self.max_connections:
            self.stats.count(REJECTED)
            transport.write(_TOO_MANY_RESPONSE)
            transport.close()

    def connection_lost(self, handler, exc=None) -> None:
        super().connection_lost(handler, exc)
        self.stats.connection_closed()


def raise_open_files_limit() -> None:
    """Each connection is a file descriptor; take the hard limit so thousands can be open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(
    socks: list[socket.socket],
    stats: SharedStats,
    max_connections: int,
    idle_timeout_s: float,
    ready_fd: int,
    tls: ssl.SSLContext | None = None,
) -> None:
    """One worker: serve on ``socks`` until SIGTERM, having written a byte to ``ready_fd`` once
    it accepts connections on all of them."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    # access_log=None: a log line per request would cost more CPU than the request itself.
    # aiohttp's protocol sets TCP_NODELAY on every accepted socket (base_protocol.py); without
    # it keep-alive clients stall ~40 ms on Nagle + delayed ACK (gevent issue 1233).
    # /stats reports the flag per connection so the tests can check it.
    # handler_cancellation: a client that hangs up mid-delay frees its request at once.
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
    listeners = [
        await loop.create_server(web_server, sock=sock, backlog=LISTEN_BACKLOG, ssl=tls) for sock in socks
    ]
    os.write(ready_fd, b"r")
    os.close(ready_fd)

    await stop.wait()
    for listener in listeners:
        listener.close()
    await web_server.shutdown(SHUTDOWN_GRACE_S)


def run_worker(
    index: int, ready_fd: int, addresses: list[tuple], stats: SharedStats, args: argparse.Namespace
) -> int:
    """A worker process's life, after the fork: bind its own sockets, serve, return its exit status."""
    stats.attach(index)
    try:
        socks = [listening_socket(address, family) for address, family in addresses]
    except OSError as exc:
        print(f"servers.delay: cannot listen on {args.host}:{addresses[0][0][1]}: {exc}", file=sys.stderr)
        return 1
    tls = server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    loop_factory = None
    if args.loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(socks, stats, args.max_connections, args.idle_timeout_s, ready_fd, tls))
    return 0


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
        help="open connections, counted over all workers, past which new ones get 503 "
        f"(default {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--idle-timeout-s",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        help="close a connection idle, or stalled half-way through its request, this long "
        f"(default {DEFAULT_IDLE_TIMEOUT_S:.0f})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="worker processes sharing the port through SO_REUSEPORT, each with its own event loop "
        f"(default {DEFAULT_WORKERS})",
    )
    parser.add_argument(
        "--loop",
        choices=LOOPS,
        default="asyncio",
        help="event loop of each worker (default asyncio; uvloop must be installed)",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="PEM",
        help="serve HTTPS only (TLS 1.3, no session tickets) with this certificate chain; needs --tls-key",
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    parser.add_argument(
        "--ipv6-loopback",
        action="store_true",
        help=f"also listen on {IPV6_LOOPBACK}, on the same port, so a client resolving localhost to "
        "either loopback address finds the server",
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
    if not 1 <= args.workers <= MAX_WORKERS:
        parser.error(f"--workers must be in 1..{MAX_WORKERS}, got {args.workers}")
    if bool(args.tls_cert) != bool(args.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert:
        try:
            server_context(args.tls_cert, args.tls_key)  # a bad file fails here, once, not in every worker
        except (OSError, ssl.SSLError) as exc:
            parser.error(f"--tls-cert/--tls-key: {exc}")
    if args.loop == "uvloop":
        try:
            import uvloop  # noqa: F401  (imported before the fork, so a missing one fails here, once)
        except ImportError:
            parser.error("--loop uvloop needs uvloop installed (pip install uvloop)")

    if args.die_with_parent:
        die_with_parent()
    raise_open_files_limit()
    with ExitStack() as reservations:
        try:
            reserved = reserve_ports(args, reservations)
        except OSError as exc:
            print(f"servers.delay: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        addresses = [(sock.getsockname(), sock.family) for sock in reserved]
        stats = SharedStats(args.workers)

        def work(index: int, ready_fd: int) -> int:
            for sock in reserved:
                sock.close()  # the worker's copy; the parent keeps the port reserved
            return run_worker(index, ready_fd, addresses, stats, args)

        scheme = "https" if args.tls_cert else "http"
        host, port = addresses[0][0][:2]
        return Supervisor(args.workers, work).run(f"listening on {scheme}://{host}:{port}")


def reserve_ports(args: argparse.Namespace, reservations: ExitStack) -> list[socket.socket]:
    """The port on ``--host``, and with ``--ipv6-loopback`` the same port on ::1 too."""
    for _ in range(PORT_PICKS):
        first = reservations.enter_context(reserve_port(args.host, args.port))
        if not args.ipv6_loopback:
            return [first]
        try:
            return [first, reservations.enter_context(reserve_port(IPV6_LOOPBACK, first.getsockname()[1]))]
        except OSError:
            if args.port:
                raise
            reservations.close()  # taken on ::1: let the kernel pick another
    raise OSError(f"no port free on both {args.host} and {IPV6_LOOPBACK} after {PORT_PICKS} picks")


if __name__ == "__main__":
    sys.exit(main())
