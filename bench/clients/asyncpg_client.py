"""asyncpg: asyncio only, its own implementation of the protocol (no libpq).

It cannot run under gevent (it needs an asyncio loop) or trio; those pairs are not generated.
"""

from __future__ import annotations

from bench.clients import sql
from bench.clients.outcome import asyncio_fetch_from

QUERY = "SELECT pg_sleep($1)"


async def asyncio_fetch(workload, pool_size: int):
    import asyncio

    import asyncpg

    opened = await asyncio.gather(
        *(
            asyncpg.connect(
                sql.dsn(workload),
                timeout=sql.CONNECT_TIMEOUT_S,
                server_settings={"statement_timeout": str(sql.statement_timeout_ms(workload))},
            )
            for _ in range(pool_size)
        )
    )
    connections = sql.Connections(opened)

    async def query(url: str) -> None:
        with connections.borrowed() as connection:
            await connection.fetchval(QUERY, sql.sleep_seconds(url))

    async def aclose() -> None:
        for connection in connections:
            await connection.close()

    return asyncio_fetch_from(query, aclose=aclose, error_of=sql.completed)
