"""pg8000: pure Python over the ``socket`` module, so gevent's patch reaches it like any socket code."""

from __future__ import annotations

from urllib.parse import urlsplit

from bench.clients import sql
from bench.clients.outcome import blocking_fetch_from

QUERY = "SELECT pg_sleep(:seconds)"


def blocking_fetch(workload, pool_size: int):
    import pg8000.native

    parts = urlsplit(sql.dsn(workload))

    def connect():
        return pg8000.native.Connection(
            parts.username,
            host=parts.hostname,
            port=parts.port,
            database=parts.path.lstrip("/"),
            password=parts.password,
            timeout=sql.CONNECT_TIMEOUT_S + workload.timeout_s,
            startup_params={"statement_timeout": str(sql.statement_timeout_ms(workload))},
        )

    connections = sql.Connections(connect() for _ in range(pool_size))

    def query(url: str) -> None:
        with connections.borrowed() as connection:
            connection.run(QUERY, seconds=sql.sleep_seconds(url))

    return blocking_fetch_from(query, error_of=sql.completed)
