"""Run the delay server: ``python -m servers.delay [--host 127.0.0.1] [--port 0] [--workers W]``.

Prints exactly one line, ``listening on http://HOST:PORT``, once every worker accepts
connections, then serves until SIGTERM or SIGINT and exits 0; exits 1 if a worker dies.
The parent process only supervises (``servers.supervisor``); each of the W worker processes
runs ``servers.app`` (an ``asyncio.Protocol`` per connection, parsed by httptools) on its own
event loop (uvloop when installed), on its own socket bound to the shared port (one more on
``::1`` with ``--ipv6-loopback``), and counts into its own slot of the shared ``servers.stats``.
With ``--tls-cert``/``--tls-key`` it serves HTTPS only (``servers.tls``; connections accepted by
``servers.tls_accept``, so lateness counts from the ClientHello) and says so in its
ready line (``listening on https://...``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import os
import resource
import signal
import socket
import ssl
import sys
from contextlib import ExitStack

from servers.app import DelayApp
from servers.lifetime import die_with_parent
from servers.stats import SharedStats
from servers.supervisor import Supervisor, listening_socket, reserve_port
from servers.tls import server_context
from servers.tls_accept import TlsAcceptor

# The kernel caps the accept queue at min(backlog, net.core.somaxconn); asyncio's default
# of 100 (and gevent's or werkzeug's 128) drops SYNs once a thousand clients connect at once.
# The backlog asked for is this or somaxconn, whichever is larger (listen_backlog()).
LISTEN_BACKLOG = 4096
_SOMAXCONN = "/proc/sys/net/core/somaxconn"
# How long SIGTERM waits for in-flight responses before closing their connections.
SHUTDOWN_GRACE_S = 0.5
# Past --max-connections open connections (over all workers), a new one gets a 503 and is
# closed. Its default is the open-files limit (hard, which every process raises its soft one
# to) minus this margin for a worker's own files (stdio, the listening socket, epoll, pipes,
# /proc reads): not times the workers, because the kernel spreads connections over the workers'
# sockets by a hash, not evenly, and one worker may end up holding all of them. So no worker
# ever fails on accept().
OWN_FILES_MARGIN = 100
# Worker processes sharing the port. On the 2-core development machine, with wrk on the same
# cores, 2 workers answered ~25% more requests/s than 1 in every interleaved round, and 3 no
# more than 2 (docs/reference/server.md).
DEFAULT_WORKERS = 2
MAX_WORKERS = 64
LOOPS = ("asyncio", "uvloop")
# uvloop when it is installed (it is a dependency): ~20 us of CPU a keep-alive request against
# ~45 us on asyncio's own loop, with this app (python -m servers.cost).
DEFAULT_LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
# How long a connection may sit idle or half-way through sending its request headers before
# it is closed: the cap on slow or stalled clients.
DEFAULT_IDLE_TIMEOUT_S = 30.0
# The other address ``localhost`` may resolve to (issue 17, --bench-host name): glibc returns
# ::1 first where /etc/hosts says so, and a client that tries it first must find the server.
IPV6_LOOPBACK = "::1"
# With --port 0 the kernel picks a port free on 127.0.0.1; it may be taken on ::1 (rarely).
PORT_PICKS = 5


EPILOG = """\
endpoints:
  GET /delay?ms=D&bytes=B   wait D ms (0..60000), answer B bytes (0..10 MiB); faults on purpose:
                            fail=P (500), drop=P (close, no answer), stall=1 (head, no body)
  GET /delay?ms=W&gather=K  the warm-up's barrier: wait until K requests are in flight over all
                            workers, or W ms, whichever comes first; then every gather request
                            waiting is answered at once (so K connections are open together)
  GET /stats                JSON: counts, in flight and its peak, lateness from arrival,
                            connections, listen-queue overflows, CPU seconds, per worker
  POST /stats/reset         start a new observation window

cost (python -m servers.cost: the server's own CPU per request, 1 worker on its own core,
a raw client on the other), measured on a quiet 2-core VM: 10-12 us per keep-alive request
and 48-59 us per new connection on uvloop (30 and 76 us on asyncio's loop), against 56-69 and
133-141 us for the aiohttp server it replaced (results/runs/instrument/server-cost.txt).

garbage collection: the workers run with Python's cyclic collector off (inherited from the
parent, which freezes what it imported), because a collection walks every live connection and
timer and made the server answer 80-120 ms late at 5,000 in flight; the worker that answers
POST /stats/reset collects before it starts the new window, outside any timed round.
"""


def raise_open_files_limit() -> int:
    """Each connection is a file descriptor; take the hard limit so thousands can be open.

    Returns the limit now in force (an unlimited hard limit is capped by fs.nr_open)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        # An unlimited hard limit above fs.nr_open cannot be taken: keep the soft one then.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def default_max_connections(open_files_limit: int) -> int:
    return max(1, open_files_limit - OWN_FILES_MARGIN)


def listen_backlog() -> int:
    """At least net.core.somaxconn, the kernel's own cap on any accept queue."""
    try:
        with open(_SOMAXCONN) as somaxconn:
            return max(LISTEN_BACKLOG, int(somaxconn.read()))
    except (OSError, ValueError):
        return LISTEN_BACKLOG


async def serve(
    socks: list[socket.socket],
    stats: SharedStats,
    max_connections: int,
    idle_timeout_s: float,
    ready_fd: int,
    tls: ssl.SSLContext | None = None,
) -> None:
    """One worker: serve on ``socks`` (HTTPS with ``tls``) until SIGTERM, having written a byte
    to ``ready_fd`` once it accepts connections on all of them."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)

    # One app for all the sockets: the same counters, caps and routes on both loopbacks.
    app = DelayApp(stats, max_connections, idle_timeout_s)
    backlog = listen_backlog()
    if tls:
        # A handshake that stalls is cut off like a stalled request head (asyncio's default waits 60 s).
        acceptor = TlsAcceptor(app, tls, handshake_timeout_s=idle_timeout_s)
        for sock in socks:
            acceptor.listen(sock, backlog)
        listeners = [acceptor]
    else:
        listeners = [await loop.create_server(app, sock=sock, backlog=backlog) for sock in socks]
    os.write(ready_fd, b"r")
    os.close(ready_fd)

    await stop.wait()
    for listener in listeners:
        listener.close()
    await app.shutdown(SHUTDOWN_GRACE_S)


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
    open_files_limit = raise_open_files_limit()
    parser = argparse.ArgumentParser(
        prog="python -m servers.delay",
        description="HTTP server whose GET /delay?ms=D&bytes=B answers after D ms with B bytes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        default=default_max_connections(open_files_limit),
        help="open connections, counted over all workers, past which new ones get 503 (default: "
        f"the open-files limit minus {OWN_FILES_MARGIN}, here {default_max_connections(open_files_limit)})",
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
        default=DEFAULT_LOOP,
        help=f"event loop of each worker (default {DEFAULT_LOOP}: uvloop when it is installed)",
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
    with ExitStack() as reservations:
        try:
            reserved = reserve_ports(args, reservations)
        except OSError as exc:
            print(f"servers.delay: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        addresses = [(sock.getsockname(), sock.family) for sock in reserved]
        stats = SharedStats(args.workers)
        # Off in every worker (a fork inherits it): a collection of the older generations walks
        # every live protocol, parser and timer, mid-round (design.md, "Known traps": 83-123 ms
        # late with it on, 4.7-4.9 ms with it off). What imports built is frozen out of any
        # collection; the resets collect (servers.app), between rounds.
        gc.collect()
        gc.freeze()
        gc.disable()

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
