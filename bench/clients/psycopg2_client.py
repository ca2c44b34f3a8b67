"""psycopg2: the driver most code still uses; it blocks inside libpq, releasing the GIL.

Threads overlap its queries. Under gevent, with no wait callback, libpq's blocking call
freezes the hub: the greenlets' queries run one after another however the strategy spawns
them, a trap row (``gevent-joinall[psycopg2]``). ``psycopg2-psycogreen`` is the fix.
"""

from __future__ import annotations

from bench.clients.outcome import blocking_fetch_from
from bench.clients.sql import CONNECT_TIMEOUT_S, Connections, completed, dsn, sleep_seconds, statement_timeout_ms

QUERY = "SELECT pg_sleep(%s)"


def blocking_fetch(workload, pool_size: int):
    import psycopg2

    def connect():
        connection = psycopg2.connect(
            dsn(workload),
            connect_timeout=CONNECT_TIMEOUT_S,
            options=f"-c statement_timeout={statement_timeout_ms(workload)}",
        )
        connection.autocommit = True
        return connection

    connections = Connections(connect() for _ in range(pool_size))

    def query(url: str) -> None:
        with connections.borrowed() as connection, connection.cursor() as cursor:
            cursor.execute(QUERY, (sleep_seconds(url),))

    return blocking_fetch_from(query, error_of=completed)
