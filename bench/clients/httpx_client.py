"""httpx: one library with a blocking and an asyncio client on the same parser and pool.

It is the fair same-client comparison across threads, greenlets and tasks (asyncio's or trio's). This is httpx2,
httpx's maintained fork with the same API: httpx 0.28.1 (Dec 2024, on httpcore 1.0.9)
rescans its whole pool for every queued request (httpcore PR 1035; fixed in httpx2 PRs 974
and 1075). Measured here at 200 in flight, threads with httpx 0.28.1 spent 10-14 ms of CPU
per request, with httpx2 1.8-2.3 ms: the old pool would measure its bookkeeping, not the model.
httpx 0.29.0 (Nov 2026) still requires httpcore 1.x, the same pool, and measured the same way
(issue 25) it still cost several times httpx2's CPU per request: the fork stays.
"""

from __future__ import annotations

from bench.clients.outcome import asyncio_fetch_from, blocking_fetch_from
from bench.clients.tls import client_context
from bench.workload import KEEPALIVE_IDLE_S


def _settings(workload, pool_size: int) -> dict:
    """Pool and timeout, the same for both forms.

    httpx allows 100 connections, keeps 20 alive for 5 s each, and raises PoolTimeout after 5 s
    in the queue: no connection cap, a keep-alive slot per request in flight, kept as long as
    the harness trusts an idle connection (a round can leave one idle longer than 5 s, and the
    next round would reconnect it), and the workload's timeout on connect, read, write and the
    (never used) pool wait. Its transports never
    retry a request (``retries`` counts connect attempts only, and defaults to 0). New
    connections: ``Connection: close`` on every request (httpcore then drops the connection).
    TLS: one verifying context per client.
    """
    import httpx2 as httpx

    return {
        "headers": workload.request_headers,
        "verify": client_context(workload) or True,
        "limits": httpx.Limits(
            max_connections=None, max_keepalive_connections=pool_size, keepalive_expiry=KEEPALIVE_IDLE_S
        ),
        "timeout": httpx.Timeout(workload.timeout_s),
    }


def blocking_fetch(workload, pool_size: int):
    import httpx2 as httpx

    client = httpx.Client(**_settings(workload, pool_size))

    def get(url: str) -> int:
        return client.get(url).status_code  # .get reads the body

    return blocking_fetch_from(get)


async def asyncio_fetch(workload, pool_size: int):
    import httpx2 as httpx

    client = httpx.AsyncClient(**_settings(workload, pool_size))

    async def get(url: str) -> int:
        return (await client.get(url)).status_code

    return asyncio_fetch_from(get, aclose=client.aclose)


# The same AsyncClient: httpx runs on whichever async library awaits it (through anyio), so
# built inside trio.run it connects, reads and times out with trio's sockets and deadlines.
trio_fetch = asyncio_fetch
