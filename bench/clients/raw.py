"""The floor of client cost: a keep-alive GET on a plain socket, written here in a few lines.

Whatever a strategy costs above this client is its concurrency model's own cost. One form
blocks (threads, greenlets), one uses asyncio streams, one trio streams; all speak through
``http11``'s reader.
Idle connections wait in a list (append and pop are atomic under the GIL and between
greenlet switches); a request that finds none opens one, so the pool never caps anything.
A connection is reused only after a whole, well-formed, keep-alive response.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from urllib.parse import urlsplit

from bench.clients.http11 import ResponseReader, request_bytes
from bench.clients.outcome import asyncio_fetch_from, blocking_fetch_from

RECEIVE_BYTES = 64 * 1024


@functools.lru_cache(maxsize=64)  # every request of a round has the same URL
def _target(url: str) -> tuple[str, int, str, bytes]:
    parts = urlsplit(url)
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path or "/"
    return (
        parts.hostname,
        parts.port or 80,
        parts.netloc,
        request_bytes(parts.hostname, parts.port or 80, target),
    )


def blocking_fetch(workload, pool_size: int):
    idle: dict[str, list[socket.socket]] = {}

    def get(url: str) -> int:
        host, port, netloc, request = _target(url)
        deadline = time.monotonic() + workload.timeout_s  # the whole request, not each recv
        pool = idle.setdefault(netloc, [])
        sock = pool.pop() if pool else socket.create_connection((host, port), timeout=workload.timeout_s)
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
        if response.keep_alive:
            pool.append(sock)
        else:
            sock.close()
        return response.status

    return blocking_fetch_from(get)


async def asyncio_fetch(workload, pool_size: int):
    idle: dict[str, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
    everything: set[asyncio.StreamWriter] = set()

    async def get(url: str) -> int:
        host, port, netloc, request = _target(url)
        async with asyncio.timeout(workload.timeout_s):
            pool = idle.setdefault(netloc, [])
            stream_reader, writer = pool.pop() if pool else await asyncio.open_connection(host, port)
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
        if response.keep_alive:
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

    idle: dict[str, list[trio.SocketStream]] = {}
    everything: set[trio.SocketStream] = set()

    async def get(url: str) -> int:
        host, port, netloc, request = _target(url)
        try:
            with trio.fail_after(workload.timeout_s):  # the whole request, connect included
                pool = idle.setdefault(netloc, [])
                # A numeric host: trio resolves it without its resolver thread.
                stream = pool.pop() if pool else await trio.open_tcp_stream(host, port)
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
        if response.keep_alive:
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
