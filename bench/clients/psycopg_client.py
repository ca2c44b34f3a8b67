"""psycopg 3: the maintained libpq driver, with a blocking and an asyncio form of one API.

Under gevent it cooperates only if ``monkey.patch_all()`` ran before ``import psycopg``
(3.1.14+: psycopg/waiting.py picks its C wait function, which blocks the hub, unless
``select`` is already patched when it is imported). The gevent worker patches first; the
``psycopg-imported-first`` client shows the other order (``bench/harness/gevent_worker.py``).
"""

from __future__ import annotations

from bench.clients import sql
from bench.clients.outcome import asyncio_fetch_from, blocking_fetch_from

QUERY = "SELECT pg_sleep(%s)"


def _settings(workload) -> dict:
    return {
        "autocommit": True,
        "connect_timeout": sql.CONNECT_TIMEOUT_S,
        "options": f"-c statement_timeout={sql.statement_timeout_ms(workload)}",
    }


def blocking_fetch(workload, pool_size: int):
    import psycopg

    connections = sql.Connections(
        psycopg.connect(sql.dsn(workload), **_settings(workload)) for _ in range(pool_size)
    )

    def query(url: str) -> None:
        with connections.borrowed() as connection:
            connection.execute(QUERY, (sql.sleep_seconds(url),))

    return blocking_fetch_from(query, error_of=sql.completed)


async def asyncio_fetch(workload, pool_size: int):
    import asyncio

    import psycopg

    opened = await asyncio.gather(
        *(psycopg.AsyncConnection.connect(sql.dsn(workload), **_settings(workload)) for _ in range(pool_size))
    )
    connections = sql.Connections(opened)

    async def query(url: str) -> None:
        with connections.borrowed() as connection:
            await connection.execute(QUERY, (sql.sleep_seconds(url),))

    async def aclose() -> None:
        for connection in connections:
            await connection.close()

    return asyncio_fetch_from(query, aclose=aclose, error_of=sql.completed)


async def trio_fetch(workload, pool_size: int):
    """trio has no native PostgreSQL driver: the blocking fetch, each call in ``trio.to_thread``.

    trio's default limiter runs 40 threads at once; it is raised to the in-flight count, so
    the row is not capped by a limit its users would raise too.
    """
    import functools

    import trio

    fetch = blocking_fetch(workload, pool_size)
    limiter = trio.CapacityLimiter(pool_size)

    async def fetch_in_thread(url: str):
        return await trio.to_thread.run_sync(functools.partial(fetch, url), limiter=limiter)

    return fetch_in_thread
