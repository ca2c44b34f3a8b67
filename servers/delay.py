"""Run the delay server: ``python -m servers.delay [--host 127.0.0.1] [--port 0]``.

Prints exactly one line, ``listening on http://HOST:PORT``, once the socket accepts
connections, then serves until SIGTERM or SIGINT and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys

from aiohttp import web

from servers.app import DelayStats, make_handler

# The kernel caps the accept queue at min(backlog, net.core.somaxconn); asyncio's default
# of 100 (and gevent's or werkzeug's 128) drops SYNs once a thousand clients connect at once.
LISTEN_BACKLOG = 4096
# How long SIGTERM waits for in-flight responses before closing their connections.
SHUTDOWN_GRACE_S = 0.5


def raise_open_files_limit() -> None:
    """Each connection is a file descriptor; take the hard limit so thousands can be open."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # access_log=None: a log line per request would cost more CPU than the request itself.
    # aiohttp's protocol sets TCP_NODELAY on every accepted socket (base_protocol.py); without
    # it keep-alive clients stall ~40 ms on Nagle + delayed ACK (gevent issue 1233).
    # /stats reports the flag per connection so the tests can check it.
    web_server = web.Server(make_handler(DelayStats()), access_log=None)
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
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")

    raise_open_files_limit()
    try:
        asyncio.run(serve(args.host, args.port))
    except OSError as exc:
        print(f"servers.delay: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
