"""The delay server's own cost: ``python -m servers.cost [--workers 1] [--loop uvloop]``.

Starts the server (or drives one already running, ``--url``), pins it to one core and a cheap
raw client to another, sends ``/delay?ms=0`` over C keep-alive connections and then over a new
connection per request, and prints the server's CPU per request in microseconds: its own user
+ system time (``cpu_seconds`` in /stats, over its parent and workers) divided by the requests
it served. CPU time rather than wall time, because the machine is shared (issue 15).

A benchmark script, not a test: the figures depend on the machine, so nothing here asserts them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.request
from urllib.parse import urlsplit

from servers.process import running_delay_server

KEEP_ALIVE_REQUESTS = 40_000
# Fewer: each one leaves a client port in TIME_WAIT for 60 s (28,232 ports per destination here).
NEW_CONNECTION_REQUESTS = 10_000
CONNECTIONS = 100
_REQUEST = b"GET /delay?ms=0 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# /delay?ms=0 answers with no body, so a response ends with the blank line after its head.
_END_OF_RESPONSE = b"\r\n\r\n"


class KeepAliveClient(asyncio.Protocol):
    """One connection sending one request after another until the shared budget runs out."""

    def __init__(self, budget: list[int], done: asyncio.Future) -> None:
        self.budget, self.done, self.pending = budget, done, b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send_next()

    def _send_next(self) -> None:
        if self.budget[0] <= 0:
            self.transport.close()
            return
        self.budget[0] -= 1
        self.transport.write(_REQUEST)

    def data_received(self, data: bytes) -> None:
        self.pending += data
        if self.pending.endswith(_END_OF_RESPONSE):
            self.pending = b""
            self._send_next()

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(exc)


class OneRequestClient(asyncio.Protocol):
    """A new connection per request: connect, send, read the answer, hang up (as a client
    without a session does)."""

    def __init__(self, done: asyncio.Future) -> None:
        self.done, self.pending = done, b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(_REQUEST)

    def data_received(self, data: bytes) -> None:
        self.pending += data
        if self.pending.endswith(_END_OF_RESPONSE):
            self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(exc)


async def keep_alive(host: str, port: int, requests: int, connections: int) -> None:
    loop = asyncio.get_running_loop()
    budget = [requests]
    finished = []
    for _ in range(connections):
        done = loop.create_future()
        await loop.create_connection(lambda done=done: KeepAliveClient(budget, done), host, port)
        finished.append(done)
    await asyncio.gather(*finished)


async def new_connections(host: str, port: int, requests: int, connections: int) -> None:
    loop = asyncio.get_running_loop()
    budget = [requests]

    async def one_after_another() -> None:
        while budget[0] > 0:
            budget[0] -= 1
            done = loop.create_future()
            await loop.create_connection(lambda done=done: OneRequestClient(done), host, port)
            await done

    await asyncio.gather(*(one_after_another() for _ in range(connections)))


MODES = {
    "keep-alive": (keep_alive, KEEP_ALIVE_REQUESTS),
    "new-connection": (new_connections, NEW_CONNECTION_REQUESTS),
}


def _stats(base_url: str, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(base_url + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def measure(base_url: str, mode: str, requests: int, connections: int) -> dict:
    """One mode's run: reset the server's window, drive it, read its CPU seconds and count."""
    drive, _ = MODES[mode]
    address = urlsplit(base_url)
    _stats(base_url, "/stats/reset", "POST")
    started = time.perf_counter()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(drive(address.hostname, address.port, requests, connections))
    elapsed = time.perf_counter() - started
    stats = _stats(base_url, "/stats")
    served = stats["served"]
    return {
        "mode": mode,
        "requests": served,
        "connections": connections,
        "server_cpu_seconds": stats["cpu_seconds"],
        "server_cpu_us_per_request": round(stats["cpu_seconds"] / served * 1e6, 1),
        "requests_per_second": round(served / elapsed),
    }


def _loop_factory():
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop
    return None


def _pin(pids, cores: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, cores)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m servers.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="drive this running server instead of starting one (not pinned)")
    parser.add_argument("--workers", type=int, default=1, help="server workers (default 1)")
    parser.add_argument("--loop", help="server event loop (default: the server's default)")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help=f"default {CONNECTIONS}")
    parser.add_argument("--modes", default=",".join(MODES), help=f"default {','.join(MODES)}")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the request counts")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown mode {sorted(unknown)[0]!r}; known: {', '.join(MODES)}")

    cores = sorted(os.sched_getaffinity(0))
    with contextlib.ExitStack() as stack:
        if args.url:
            base_url = args.url.rstrip("/")
        else:
            extra = ("--workers", str(args.workers), *(("--loop", args.loop) if args.loop else ()))
            server = stack.enter_context(running_delay_server(extra_args=extra))
            base_url = server.base_url
            if len(cores) > 1:  # the server on the first core, this client on the others
                _pin((server.process.pid, *server.worker_pids), {cores[0]})
                _pin([0], set(cores[1:]))
        for mode in modes:
            requests = round(MODES[mode][1] * args.scale)
            print(json.dumps(measure(base_url, mode, requests, args.connections)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
