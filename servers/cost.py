"""The delay server's own cost: ``python -m servers.cost [--workers 1] [--loop uvloop]``.

Starts the server (or drives one already running, ``--url``), pins it to one core and a cheap
raw client to another, sends ``/delay?ms=0`` over C keep-alive connections, then over a new
connection per request, then over a new TLS connection per request (a full TLS 1.3 handshake
each, against the same server started with a certificate), and prints the server's CPU per
request in microseconds, its own user + system time (``cpu_seconds`` in /stats, over its parent
and workers) divided by the requests it served, beside the client's (this process's CPU time
over the same requests). CPU time rather than wall time, because the machine is shared (issue
15); the client's beside the server's, because an instrument should cost a fraction of what it
measures (design rule 10; issue 24 for TLS).

A benchmark script, not a test: the figures depend on the machine, so nothing here asserts them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import trustme

from servers.process import running_delay_server

KEEP_ALIVE_REQUESTS = 40_000
# Fewer: each one leaves a client port in TIME_WAIT for 60 s (28,232 ports per destination here).
NEW_CONNECTION_REQUESTS = 10_000
# A full handshake costs the server ~350 us and the client ~550 us here: fewer still.
TLS_REQUESTS = 4_000
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


async def keep_alive(host: str, port: int, requests: int, connections: int, tls=None) -> None:
    loop = asyncio.get_running_loop()
    budget = [requests]
    finished = []
    for _ in range(connections):
        done = loop.create_future()
        await loop.create_connection(lambda done=done: KeepAliveClient(budget, done), host, port, ssl=tls)
        finished.append(done)
    await asyncio.gather(*finished)


async def new_connections(host: str, port: int, requests: int, connections: int, tls=None) -> None:
    loop = asyncio.get_running_loop()
    budget = [requests]

    async def one_after_another() -> None:
        while budget[0] > 0:
            budget[0] -= 1
            done = loop.create_future()
            await loop.create_connection(lambda done=done: OneRequestClient(done), host, port, ssl=tls)
            await done

    await asyncio.gather(*(one_after_another() for _ in range(connections)))


# mode: (how the client drives it, requests, over TLS)
MODES = {
    "keep-alive": (keep_alive, KEEP_ALIVE_REQUESTS, False),
    "new-connection": (new_connections, NEW_CONNECTION_REQUESTS, False),
    "tls-new-connection": (new_connections, TLS_REQUESTS, True),
}


def _stats(base_url: str, path: str, method: str = "GET", tls: ssl.SSLContext | None = None) -> dict:
    request = urllib.request.Request(base_url + path, method=method)
    with urllib.request.urlopen(request, timeout=10, context=tls) as response:
        return json.load(response)


def measure(
    base_url: str, mode: str, requests: int, connections: int, tls: ssl.SSLContext | None = None
) -> dict:
    """One mode's run: reset the server's window, drive it, read its CPU seconds and count,
    and this client's CPU seconds over the same run."""
    drive = MODES[mode][0]
    address = urlsplit(base_url)
    _stats(base_url, "/stats/reset", "POST", tls)
    started = time.perf_counter()
    client_started = time.process_time()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(drive(address.hostname, address.port, requests, connections, tls))
    client_cpu_s = time.process_time() - client_started
    elapsed = time.perf_counter() - started
    stats = _stats(base_url, "/stats", tls=tls)
    served = stats["served"]
    return {
        "mode": mode,
        "requests": served,
        "connections": connections,
        "server_cpu_seconds": stats["cpu_seconds"],
        "server_cpu_us_per_request": round(stats["cpu_seconds"] / served * 1e6, 1),
        "client_cpu_us_per_request": round(client_cpu_s / served * 1e6, 1),
        "server_to_client_cpu": round(stats["cpu_seconds"] / client_cpu_s, 2),
        "requests_per_second": round(served / elapsed),
    }


@contextlib.contextmanager
def local_certificate():
    """Files for an HTTPS server on 127.0.0.1, from a throwaway CA: (ca, cert, key)."""
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1")
    with tempfile.TemporaryDirectory(prefix="servers-cost-") as folder:
        files = [str(Path(folder, name)) for name in ("ca.pem", "cert.pem", "key.pem")]
        authority.cert_pem.write_to_path(files[0])
        for blob in issued.cert_chain_pems:
            blob.write_to_path(files[1], append=True)
        issued.private_key_pem.write_to_path(files[2])
        yield files


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
    if args.url and any(MODES[mode][2] for mode in modes):
        parser.error("the TLS mode starts its own HTTPS server: leave out --url or the mode")

    with contextlib.ExitStack() as stack:
        if args.url:
            servers = {False: (args.url.rstrip("/"), None)}
        else:  # the same server for the plain and the TLS modes, with a certificate for the latter
            servers = {tls: start_pinned(stack, args, tls) for tls in {MODES[mode][2] for mode in modes}}
        for mode in modes:
            base_url, client_tls = servers[MODES[mode][2]]
            requests = round(MODES[mode][1] * args.scale)
            print(json.dumps(measure(base_url, mode, requests, args.connections, client_tls)), flush=True)
    return 0


def start_pinned(
    stack: contextlib.ExitStack, args: argparse.Namespace, over_tls: bool
) -> tuple[str, ssl.SSLContext | None]:
    """Start the server (HTTPS ``over_tls``) on the first core, this client on the others;
    return its URL and the client's TLS context."""
    extra = ("--workers", str(args.workers), *(("--loop", args.loop) if args.loop else ()))
    ca_file = None
    if over_tls:
        ca_file, cert_file, key_file = stack.enter_context(local_certificate())
        extra += ("--tls-cert", cert_file, "--tls-key", key_file)
    server = stack.enter_context(running_delay_server(extra_args=extra, ca_file=ca_file))
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        _pin((server.process.pid, *server.worker_pids), {cores[0]})
        _pin([0], set(cores[1:]))
    return server.base_url, server.ssl_context


if __name__ == "__main__":
    sys.exit(main())
