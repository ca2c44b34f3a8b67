"""aiohttp's client: asyncio only, and the default for the asyncio strategies."""

from __future__ import annotations

from bench.clients.outcome import asyncio_fetch_from
from bench.clients.tls import client_context
from bench.workload import KEEPALIVE_IDLE_S


async def asyncio_fetch(workload, pool_size: int):
    """A session with no connection limit and the workload's timeout; it never resends.

    aiohttp's connector allows 100 connections by default (``limit``), which would quietly
    cap the unbounded strategy; 0 means no limit. It closes a connection idle for 15 s
    (``keepalive_timeout``): kept as long as the harness trusts an idle connection instead.
    New connections: ``force_close``, aiohttp's switch for "no pool" (it sends
    ``Connection: close``; no keep-alive timeout goes with it). TLS: one verifying context.
    """
    import aiohttp

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=0,
            limit_per_host=0,
            force_close=workload.new_connections,
            ssl=client_context(workload) or True,
            **({} if workload.new_connections else {"keepalive_timeout": KEEPALIVE_IDLE_S}),
        ),
        timeout=aiohttp.ClientTimeout(total=workload.timeout_s),
    )
    # aiohttp resends a GET whose keep-alive connection the server closed (RFC 9112 9.3.1.1;
    # client.py, retry_persistent_connection); the other clients do not. Measured with
    # --bench-drop-rate 0.2: aiohttp reported 3 of 20 drops. There is no public switch, so
    # turn the private one off; the server's request count catches it if this ever stops working.
    session._retry_connection = False

    async def get(url: str) -> int:
        async with session.get(url) as response:
            await response.read()
            return response.status

    return asyncio_fetch_from(get, aclose=session.close)
