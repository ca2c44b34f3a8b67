"""psycopg2: the driver most code still uses; it blocks inside libpq, releasing the GIL.

Threads overlap its queries. Under gevent, with no wait callback, libpq's blocking call
freezes the hub: the greenlets' queries run one after another however the strategy spawns
them, a trap row (``gevent-joinall[psycopg2]``). ``psycopg2-psycogreen`` is the fix.
"""

from __future__ import annotations

from bench.clients import sql
from bench.clients.outcome import blocking_fetch_from

QUERY = "SELECT pg_sleep(%s)"


def blocking_fetch(workload, pool_size: int):
    import psycopg2

    def connect():
        connection = psycopg2.connect(
            sql.dsn(workload),
            connect_timeout=sql.CONNECT_TIMEOUT_S,
            options=f"-c statement_timeout={sql.statement_timeout_ms(workload)}",
        )
        connection.autocommit = True
        return connection

    connections = sql.Connections(connect() for _ in range(pool_size))

    def query(url: str) -> None:
        with connections.borrowed() as connection, connection.cursor() as cursor:
            cursor.execute(QUERY, (sql.sleep_seconds(url),))

    return blocking_fetch_from(query, error_of=sql.completed)
