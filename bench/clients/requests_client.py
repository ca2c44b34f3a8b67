"""requests: the seed's client, and the default for the strategies that block."""

from __future__ import annotations

from bench.clients.outcome import blocking_fetch_from


def blocking_fetch(workload, pool_size: int):
    """One keep-alive session whose pool holds a connection per request in flight.

    requests' default pool keeps 10 connections per host: with more in flight, the extra
    connections are opened and thrown away after each request, so unbounded strategies would
    pay a connect per request that the pools do not. ``pool_block=False`` keeps the pool from
    ever making a request wait for a free connection; ``max_retries=0`` never resends.
    New connections: ``Connection: close`` on every request, so the server closes each one.
    TLS: ``verify`` names the suite's CA (requests builds a context per new connection), per
    request: a session's ``verify`` loses to ``REQUESTS_CA_BUNDLE`` (requests issue 3829).
    """
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, pool_block=False, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update(workload.request_headers)
    verify = workload.ca_file or True

    def get(url: str) -> int:
        return session.get(url, timeout=workload.timeout_s, verify=verify).status_code

    return blocking_fetch_from(get)
