"""asyncpg: asyncio only, its own implementation of the protocol (no libpq).

It cannot run under gevent (it needs an asyncio loop) or trio; those pairs are not generated.
"""

from __future__ import annotations

from bench.clients.outcome import asyncio_fetch_from
from bench.clients.sql import CONNECT_TIMEOUT_S, Connections, completed, dsn, sleep_seconds, statement_timeout_ms

QUERY = "SELECT pg_sleep($1)"


async def asyncio_fetch(workload, pool_size: int):
    import asyncio

    import asyncpg

    opened = await asyncio.gather(
        *(
            asyncpg.connect(
                dsn(workload),
                timeout=CONNECT_TIMEOUT_S,
                server_settings={"statement_timeout": str(statement_timeout_ms(workload))},
            )
            for _ in range(pool_size)
        )
    )
    connections = Connections(opened)

    async def query(url: str) -> None:
        with connections.borrowed() as connection:
            await connection.fetchval(QUERY, sleep_seconds(url))

    async def aclose() -> None:
        for connection in connections:
            await connection.close()

    return asyncio_fetch_from(query, aclose=aclose, error_of=completed)
