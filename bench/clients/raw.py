"""The floor of client cost: a keep-alive GET on a plain (or TLS) socket, written here in a few lines.

Whatever a strategy costs above this client is its concurrency model's own cost. One form
blocks (threads, greenlets), one uses asyncio streams, one trio streams; all speak through
``http11``'s reader.
Idle connections wait in a list (append and pop are atomic under the GIL and between
greenlet switches); a request that finds none opens one, so the pool never caps anything.
A connection is reused only after a whole, well-formed, keep-alive response, and never with
``--bench-connection new``: then every request says ``Connection: close`` on its own connection.
With ``--bench-tls`` each form wraps its connection in the workload's verifying context.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from urllib.parse import urlsplit

from bench.clients.http11 import ResponseReader, request_bytes
from bench.clients.outcome import asyncio_fetch_from, blocking_fetch_from
from bench.clients.tls import client_context
from bench.workload import CONNECTION_CLOSE

RECEIVE_BYTES = 64 * 1024


@functools.lru_cache(maxsize=64)  # every request of a round has the same URL
def _target(url: str, close: bool) -> tuple[str, int, str, bytes]:
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path or "/"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    headers = CONNECTION_CLOSE if close else None
    return parts.hostname, port, parts.netloc, request_bytes(parts.hostname, port, target, headers)


def blocking_fetch(workload, pool_size: int):
    idle: dict[str, list[socket.socket]] = {}
    context = client_context(workload)
    reuse = not workload.new_connections

    def connect(host: str, port: int) -> socket.socket:
        sock = socket.create_connection((host, port), timeout=workload.timeout_s)
        if context is None:
            return sock
        try:  # the handshake, within the connect timeout
            return context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise

    def get(url: str) -> int:
        host, port, netloc, request = _target(url, not reuse)
        deadline = time.monotonic() + workload.timeout_s  # the whole request, not each recv
        pool = idle.setdefault(netloc, [])
        sock = pool.pop() if pool else connect(host, port)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(max(deadline - time.monotonic(), 1e-6))
            sock.sendall(request)
            reader = ResponseReader()
            while True:
                sock.settimeout(max(deadline - time.monotonic(), 1e-6))
                if response := reader.feed(sock.recv(RECEIVE_BYTES)):
                    break
        except BaseException:
            sock.close()
            raise
        if response.keep_alive and reuse:
            pool.append(sock)
        else:
            sock.close()
        return response.status

    return blocking_fetch_from(get)


async def asyncio_fetch(workload, pool_size: int):
    idle: dict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
    everything: set[asyncio.StreamWriter] = set()
    context = client_context(workload)
    reuse = not workload.new_connections

    async def get(url: str) -> int:
        host, port, netloc, request = _target(url, not reuse)
        async with asyncio.timeout(workload.timeout_s):
            pool = idle.setdefault(netloc, [])
            stream_reader, writer = (
                pool.pop() if pool else await asyncio.open_connection(host, port, ssl=context)
            )
            everything.add(writer)
            try:
                writer.write(request)
                reader = ResponseReader()
                while not (response := reader.feed(await stream_reader.read(RECEIVE_BYTES))):
                    pass
            except BaseException:
                everything.discard(writer)
                writer.close()
                raise
        if response.keep_alive and reuse:
            pool.append((stream_reader, writer))
        else:
            everything.discard(writer)
            writer.close()
        return response.status

    async def aclose() -> None:
        for writer in everything:
            writer.close()
        everything.clear()
        idle.clear()

    return asyncio_fetch_from(get, aclose=aclose)


async def trio_fetch(workload, pool_size: int):
    import trio

    idle: dict[str, list[trio.abc.Stream]] = {}
    everything: set[trio.abc.Stream] = set()
    context = client_context(workload)
    reuse = not workload.new_connections

    async def connect(host: str, port: int) -> trio.abc.Stream:
        # A numeric host: trio resolves it without its resolver thread; a name, in a thread.
        if context is None:
            return await trio.open_tcp_stream(host, port)
        stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=context)
        await stream.do_handshake()  # now, as the other forms do, not on the first send
        return stream

    async def get(url: str) -> int:
        host, port, netloc, request = _target(url, not reuse)
        try:
            with trio.fail_after(workload.timeout_s):  # the whole request, connect included
                pool = idle.setdefault(netloc, [])
                stream = pool.pop() if pool else await connect(host, port)
                everything.add(stream)
                try:
                    await stream.send_all(request)
                    reader = ResponseReader()
                    while not (response := reader.feed(await stream.receive_some(RECEIVE_BYTES))):
                        pass
                except BaseException:
                    everything.discard(stream)
                    await trio.aclose_forcefully(stream)
                    raise
        except trio.TooSlowError:
            # Named like every other client's timeout, so an error sample reads the same.
            raise TimeoutError(f"timed out after {workload.timeout_s:g} s") from None
        if response.keep_alive and reuse:
            pool.append(stream)
        else:
            everything.discard(stream)
            await trio.aclose_forcefully(stream)
        return response.status

    async def aclose() -> None:
        for stream in everything:
            await trio.aclose_forcefully(stream)
        everything.clear()
        idle.clear()

    return asyncio_fetch_from(get, aclose=aclose)
